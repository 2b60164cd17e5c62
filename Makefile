# Every target sets up what it needs first (scripts/setup.sh is idempotent and quick when done).
VENV ?= .venv
BIN := $(VENV)/bin
export MYRIAD_BLOB_VENV := $(abspath $(VENV))

.PHONY: setup demo test test-unit test-yolo-families image image-test bench bench-speed corpus-table op-table onnx-suite report-screenshot clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/myriad-blob convert --input examples/tiny_cnn.pt --input-shape '[1, 3, 240, 320]' --output out/tiny_cnn.blob

test: setup tests/node_modules
	$(BIN)/python -m pytest

# The YOLO detect families beyond make test's YOLO11 (YOLOv5u, YOLOv8, YOLO26), each with the detection check.
test-yolo-families: setup
	MYRIAD_BLOB_YOLO_FAMILIES=1 $(BIN)/python -m pytest tests/test_yolo.py -k families

# The tests that need no toolchain (pytest -m unit), in seconds: the converter's venv only.
test-unit:
	@MYRIAD_BLOB_NO_TOOLCHAIN=1 bash scripts/setup.sh
	$(BIN)/python -m pytest -m unit

# The action's image built from the Dockerfile with buildah (root; no Docker engine needed), then
# run as GitHub's runner runs it: conversions, a pull request comment, failures, missing runner
# files, the corpus byte-identical to this machine's (tests/test_image.py). See the README's "The image".
image: setup
	bash scripts/image.sh build

image-test: image tests/node_modules
	$(BIN)/python -m pytest -m image tests/test_image.py

# GitHub's published webhook payloads, the action tests' event fixtures (npm registry).
tests/node_modules: tests/package.json tests/package-lock.json
	npm ci --prefix tests --silent
	@touch $@

bench: setup
	$(BIN)/python bench/bench.py

# The speed estimate against the published RVC2 figures: published vs estimated FPS per calibration point,
# leave-one-architecture-out errors (median, worst), the rank correlation, the 416 -> 640 drops and the
# latency fit (seconds: the calibration blobs' stage tables are cached in tools/speed_calibration/).
bench-speed: setup
	$(BIN)/python tools/calibrate_speed.py

# The README's "What converts" table, written from a real run of the corpus (tests/corpus.py).
corpus-table: setup
	$(BIN)/python tools/corpus_table.py

# The README's "Supported ops" table, written from a real run of the op sweep (tools/op_sweep.py).
op-table: setup
	$(BIN)/python tools/op_sweep.py --readme README.md

# ONNX's own conformance models (the test models inside the onnx wheel), each converted with its own inputs
# as --sample and the IR's outputs compared with the suite's expected ones (tools/onnx_suite.py): prints the
# table and writes the counts into the README's "ONNX conformance" (a few minutes).
onnx-suite: setup
	$(BIN)/python tools/onnx_suite.py --readme README.md

# The README's example report: a conversion with every section filled, rendered as GitHub shows it.
report-screenshot: setup
	@command -v chromium >/dev/null || { echo "needs chromium and fonts-noto-color-emoji (apt-get install chromium fonts-noto-color-emoji)"; exit 1; }
	npm ci --prefix docs --silent
	$(BIN)/myriad-blob convert --input examples/tiny_cnn.pt --input-shape '[1, 3, 240, 320]' \
	    --output out/example/tiny_cnn.blob --reverse-input-channels --nn-archive \
	    --mean '[123.675, 116.28, 103.53]' --scale '[58.4, 57.12, 57.38]'
	cp out/example/tiny_cnn.blob.report.md docs/example-report.md
	$(BIN)/python scripts/render_report.py docs/example-report.md docs/example-report.png

clean:
	rm -rf out .pytest_cache
