"""YOLO from ultralytics: a best.pt as `yolo train` leaves it, converted with the user's natural
command, checked with depthai's NNArchive and against ultralytics' own prediction; a pickle dressed
as a best.pt is refused and runs nothing."""

import json
import pathlib
import tarfile

import depthai as dai
import pytest
import torch

from conftest import run_cli
from myriad_blob.families.yolo.detections import decode_camera, nms
from test_convert import assert_depthai_agrees
from yolo_checkpoints import CLASS_NAMES, best_pt


def _archive_config(path):
    with tarfile.open(path) as archive:
        return json.loads(archive.extractfile("config.json").read())


class WritesAFile:
    """What an attacker pickles: unpickling it calls Path.write_text."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.target), "pwned"))


@pytest.mark.parametrize("dressed_as_ultralytics", [True, False], ids=["with-ultralytics-classes", "plain"])
def test_a_pickle_named_best_pt_is_refused_and_runs_nothing(tmp_path, dressed_as_ultralytics):
    from ultralytics.nn.modules import Conv

    target = tmp_path / "pwned.txt"
    checkpoint = {
        "model": None,
        "train_args": {"imgsz": 64, "task": "detect"},
        "payload": WritesAFile(target),
        "ema": Conv(3, 8) if dressed_as_ultralytics else None,
    }
    best = tmp_path / "runs" / "detect" / "train" / "weights" / "best.pt"
    best.parent.mkdir(parents=True)
    torch.save(checkpoint, best)
    result = run_cli("convert", "--input", best, "--output", tmp_path / "best.blob")
    assert result.returncode == 10, result.stderr
    assert "--trust-pickle" in result.stderr and "Traceback" not in result.stderr
    if dressed_as_ultralytics:
        assert "pathlib" in result.stderr and "ultralytics' model classes" in result.stderr
    assert not target.exists()
    assert not (tmp_path / "best.blob").exists()


@pytest.mark.parametrize("how", ["missing", "broken"])
def test_without_ultralytics_the_error_names_the_extra(tmp_path, how):
    best = best_pt(tmp_path, imgsz=64)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    if how == "missing":  # as if not installed: importlib finds no ultralytics
        (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['ultralytics'] = None\n")
    else:  # installed, but its own imports fail (OpenCV without libGL in a slim image)
        (blocker / "ultralytics").mkdir()
        (blocker / "ultralytics" / "__init__.py").write_text(
            "raise ImportError('libGL.so.1: cannot open shared object file')\n"
        )
    result = run_cli(
        "convert",
        "--input",
        best,
        "--output",
        tmp_path / "best.blob",
        env_extra={"PYTHONPATH": f"{blocker}:{pathlib.Path(__file__).parent}"},
    )
    assert result.returncode == 10, result.stderr
    assert "pip install 'myriad-blob[ultralytics]'" in result.stderr and "Traceback" not in result.stderr
    assert ("libGL" in result.stderr) == (how == "broken")


@pytest.mark.unit
def test_camera_decode_is_depthais(tmp_path):
    """decode_camera against hand-made outputs: one cell per scale, the TLBR formula, NMS over classes."""
    import numpy as np

    out = np.zeros((1, 5 + 2, 2, 2), dtype=np.float32)
    out[0, :, 1, 0] = [1.0, 0.5, 2.0, 1.5, 0.9, 0.1, 0.9]  # cell (row 1, col 0), class 1
    boxes = decode_camera([out], [8], (16, 16), 0.5, 0.5)
    assert boxes == [{"box": [0.0, 8.0, 16.0, 16.0], "score": pytest.approx(0.9, abs=1e-3), "class": 1}]  # FP16
    kept = nms(
        [{"box": [0, 0, 10, 10], "score": 0.6, "class": 0}, {"box": [1, 1, 10, 10], "score": 0.7, "class": 1}], 0.5
    )
    assert [k["score"] for k in kept] == [0.7]


@pytest.mark.unit
def test_the_written_out_decode_gives_what_depthais_parser_gives():
    """decode_camera (the fallback without depthai) against depthai's own DetectionParser on the host,
    on random per-scale outputs with a few hundred candidates, NMS included."""
    import numpy as np

    from myriad_blob.families.yolo.detections import decode_with_depthai, same_detections

    rng = np.random.default_rng(7)
    outputs = {}
    for index, cells in enumerate((40, 20, 10)):
        grid = np.zeros((1, 5 + 3, cells, cells), dtype=np.float32)
        grid[0, :4] = rng.uniform(0.2, 6.0, size=(4, cells, cells))
        grid[0, 5:] = rng.uniform(0, 1, size=(3, cells, cells)) ** 12  # tens of candidates, few FP16 ties
        grid[0, 4] = grid[0, 5:].max(0)
        outputs[f"output{index + 1}_yolov6r2"] = grid
    ours = decode_camera(list(outputs.values()), [8, 16, 32], (320, 320), 0.5, 0.5)
    theirs, decoder = decode_with_depthai(outputs, list(CLASS_NAMES), [8, 16, 32], (320, 320), 0.5, 0.5)
    assert theirs is not None, decoder
    assert len(ours) > 20 and same_detections(ours, theirs), (len(ours), len(theirs))


@pytest.fixture(scope="module")
def yolo11_detect(tmp_path_factory):
    """A YOLO11n detector with three custom classes, as best.pt; a few detections on bus.jpg."""
    return best_pt(tmp_path_factory.mktemp("yolo11"), "yolo11n.yaml", imgsz=320, confident=-3.0)


def test_best_pt_converts_for_the_camera(yolo11_detect, tmp_path):
    result = run_cli("convert", "--input", yolo11_detect, cwd=tmp_path)  # the natural command, nothing else
    assert result.returncode == 0, result.stderr
    blob = tmp_path / "best.blob"
    info = assert_depthai_agrees(blob)
    names = ["output1_yolov6r2", "output2_yolov6r2", "output3_yolov6r2"]
    assert [t.name for t in info.inputs] == ["images"] and info.inputs[0].shape == (1, 3, 320, 320)
    assert sorted((t.name, t.shape) for t in info.outputs) == [
        (names[0], (1, 8, 40, 40)),
        (names[1], (1, 8, 20, 20)),
        (names[2], (1, 8, 10, 10)),
    ]

    archive = dai.NNArchive(str(tmp_path / "best.tar.xz"))  # depthai v3 reads the archive as the camera would
    head = archive.getConfig().model.heads[0]
    assert head.parser == "YOLO" and head.metadata.subtype == "yolov8"
    assert list(head.metadata.classes) == list(CLASS_NAMES) and head.metadata.nClasses == 3
    assert list(head.metadata.yoloOutputs) == names
    config = _archive_config(tmp_path / "best.tar.xz")
    assert config["model"]["inputs"][0]["preprocessing"]["dai_type"] == "BGR888p"

    v2 = json.loads((tmp_path / "best.json").read_text())  # depthai v2's YoloDetectionNetwork config
    assert v2["mappings"]["labels"] == list(CLASS_NAMES)
    assert v2["nn_config"]["NN_family"] == "YOLO" and v2["nn_config"]["input_size"] == "320x320"
    assert v2["nn_config"]["NN_specific_metadata"]["classes"] == 3

    report = json.loads((tmp_path / "best.blob.report.json").read_text())
    assert report["source"]["format"] == "ultralytics checkpoint"
    assert report["preprocessing"]["reverse_input_channels"] is True
    assert report["preprocessing"]["scale"] == {"images": [255.0, 255.0, 255.0]}
    yolo = report["yolo"]
    assert (yolo["task"], yolo["family"], yolo["strides"], yolo["imgsz"]) == (
        "detect",
        "YOLO11",
        [8, 16, 32],
        [320, 320],
    )
    detections = yolo["detections"]
    assert detections["compared"] and detections["ultralytics"] >= 2
    assert detections["decoder"].startswith("depthai 3.12.0 DetectionParser")
    assert detections["own_decode_agrees"] is True  # the fallback decode gives what depthai's parser gives
    assert detections["parted"] == 0, detections
    assert detections["matched"] >= detections["ultralytics"] - detections["borderline"]
    assert detections["min_iou"] > 0.9
    markdown = (tmp_path / "best.blob.report.md").read_text()
    assert "YOLO" in markdown and "matched" in markdown


def test_a_wrong_preprocessing_parts_the_detections(yolo11_detect, tmp_path):
    """Mean/scale given by hand replace ultralytics' RGB/255: the comparison sees the camera part."""
    result = run_cli("convert", "--input", yolo11_detect, "--scale", "[1, 1, 1]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    detections = json.loads((tmp_path / "best.blob.report.json").read_text())["yolo"]["detections"]
    assert detections["parted"] > 0
    assert "parts from ultralytics' own prediction" in result.stderr


def test_full_head_keeps_ultralytics_output(tmp_path):
    best = best_pt(tmp_path, "yolov8n.yaml", imgsz=160)
    result = run_cli("convert", "--input", best, "--yolo-head", "full", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = assert_depthai_agrees(tmp_path / "best.blob")
    assert [(t.name, t.shape) for t in info.outputs] == [("output", (1, 4 + 3, 525))]
    report = json.loads((tmp_path / "best.blob.report.json").read_text())
    assert report["yolo"]["family"] == "YOLOv8" and report["yolo"]["head"] == "full"
    assert not (tmp_path / "best.json").exists()


@pytest.mark.parametrize(
    "yaml, imgsz, parser, extra",
    [
        ("yolo11n-cls.yaml", 64, "ClassificationParser", None),
        ("yolov8n-seg.yaml", 160, "YOLOExtendedParser", "mask_outputs"),
        ("yolo11n-pose.yaml", 160, "YOLOExtendedParser", "keypoints_outputs"),
    ],
    ids=["classify", "segment", "pose"],
)
def test_other_tasks_convert_for_the_camera(yaml, imgsz, parser, extra, tmp_path):
    best = best_pt(tmp_path, yaml, imgsz=imgsz, confident=-3.0)
    result = run_cli("convert", "--input", best, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_depthai_agrees(tmp_path / "best.blob")
    report = json.loads((tmp_path / "best.blob.report.json").read_text())
    assert report["yolo"]["imgsz"] == [imgsz, imgsz] and report["yolo"]["classes"] == list(CLASS_NAMES)
    archive = dai.NNArchive(str(tmp_path / "best.tar.xz"))
    head = archive.getConfig().model.heads[0]
    assert head.parser == parser and list(head.metadata.classes) == list(CLASS_NAMES)
    config = _archive_config(tmp_path / "best.tar.xz")
    metadata = config["model"]["heads"][0]["metadata"]
    if extra:  # the boxes for depthai's YOLO decoding, and the masks or keypoints beside them
        assert metadata["yolo_outputs"] == ["output1_yolov8", "output2_yolov8", "output3_yolov8"]
        assert len(metadata[extra]) == 3 and set(metadata[extra]) <= {o["name"] for o in config["model"]["outputs"]}
        assert report["yolo"]["detections"]["compared"] and report["yolo"]["detections"]["parted"] == 0
    if "seg" in yaml:
        assert metadata["protos_outputs"] == "protos_output" and metadata["n_prototypes"] == 32
    if "pose" in yaml:
        assert metadata["n_keypoints"] == 17


def test_a_head_depthai_cannot_decode_asks_for_the_full_head(tmp_path):
    best = best_pt(tmp_path, "yolo26n-seg.yaml", imgsz=64)  # YOLO26's own Segment26 head
    result = run_cli("convert", "--input", best, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Segment26" in result.stderr and "--yolo-head full" in result.stderr
    assert not (tmp_path / "best.blob").exists()


@pytest.mark.skipif(
    not __import__("os").environ.get("MYRIAD_BLOB_YOLO_FAMILIES"),
    reason="the other detect families: make test-yolo-families",
)
@pytest.mark.parametrize(
    "yaml, family", [("yolov5nu.yaml", "YOLOv5u"), ("yolov8n.yaml", "YOLOv8"), ("yolo26n.yaml", "YOLO26")]
)
def test_detect_families_convert_for_the_camera(yaml, family, tmp_path):
    best = best_pt(tmp_path, yaml, imgsz=320, confident=-3.0)
    result = run_cli("convert", "--input", best, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    head = dai.NNArchive(str(tmp_path / "best.tar.xz")).getConfig().model.heads[0]
    assert head.parser == "YOLO" and list(head.metadata.classes) == list(CLASS_NAMES)
    report = json.loads((tmp_path / "best.blob.report.json").read_text())
    assert report["yolo"]["family"] == family
    assert report["yolo"]["detections"]["parted"] == 0, report["yolo"]["detections"]
