# Every target sets up what it needs first (scripts/setup.sh is idempotent and quick when done).
VENV ?= .venv
BIN := $(VENV)/bin
export MYRIAD_BLOB_VENV := $(abspath $(VENV))

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/myriad-blob convert --input examples/tiny_cnn.pt --input-shape '[1, 3, 240, 320]' --output out/tiny_cnn.blob

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/bench.py

clean:
	rm -rf out .pytest_cache
