"""Check the detections, not only the tensors: the camera's decode of the converted model against
ultralytics' own prediction, on a photograph.

The camera side: the IR (the blob's source, FP16 weights) runs on OpenVINO's CPU plugin with the
photograph as the camera would send it (BGR, resized to the input), and its per-scale outputs are
decoded as depthai's DetectionParser decodes the TLBR family (decode_camera: a candidate is a
cell whose confidence channel reaches the threshold, its class the best score, its box the cell's
centre minus/plus the four distances times the stride, clipped to the frame; then NMS over all
classes). The ultralytics side: the checkpoint's model on the same resized RGB/255 image, its boxes
clipped to the frame as the camera clips them, and ultralytics' own non_max_suppression (agnostic,
the same thresholds).
"""

from __future__ import annotations

import numpy as np

MATCH_IOU = 0.5  # a camera box and an ultralytics box of the same class overlapping this much are one detection
# A detection whose score lies this close to the confidence threshold may appear on one side only
# (FP16 moves scores by about 1e-3): it is listed as borderline, not as a disagreement.
BORDERLINE = 0.02


def photograph():
    """A real photograph that ships with ultralytics (its bus.jpg): no download."""
    from pathlib import Path

    import ultralytics

    return Path(ultralytics.__file__).parent / "assets" / "bus.jpg"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return float(overlap / union) if union > 0 else 0.0


def nms(candidates: list, iou_threshold: float) -> list:
    """depthai's: by score, descending; a box suppresses the later ones it overlaps by iou_threshold or more."""
    ordered = sorted(candidates, key=lambda c: -c["score"])
    kept = []
    for candidate in ordered:
        if all(iou(np.asarray(candidate["box"]), np.asarray(k["box"])) < iou_threshold for k in kept):
            kept.append(candidate)
    return kept


def decode_camera(
    outputs: list[np.ndarray], strides: list[int], size: tuple, conf_threshold: float, iou_threshold: float
) -> list[dict]:
    """outputs: per scale, (1, 5 + nc, h, w) in stride order. size: (height, width) of the input.
    The blob's outputs are FP16 on the camera, and depthai's parser reads them so: the values are
    rounded to FP16 first. Like depthai's, no cap on the number of detections."""
    height, width = size
    candidates = []
    for output, stride in zip(outputs, strides):
        grid = output[0].astype(np.float16).astype(np.float32)
        rows, cols = np.nonzero(grid[4] >= conf_threshold)
        for row, col in zip(rows, cols):
            scores = grid[5:, row, col]
            label = int(np.argmax(scores))
            score = float(scores[label])
            if score < conf_threshold:
                continue
            left, top, right, bottom = grid[:4, row, col]
            box = np.array(
                [
                    (col - left + 0.5) * stride,
                    (row - top + 0.5) * stride,
                    (col + right + 0.5) * stride,
                    (row + bottom + 0.5) * stride,
                ],
                dtype=np.float64,
            )
            box = np.clip(box, 0, [width, height, width, height])
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            candidates.append({"box": box.tolist(), "score": score, "class": label})
    return nms(candidates, iou_threshold)


def ultralytics_prediction(
    model, image_rgb: np.ndarray, conf_threshold: float, iou_threshold: float, max_det: int = 300, classes: int = 0
) -> list[dict]:
    """image_rgb: (1, 3, h, w) float, 0-255. ultralytics' model and its own NMS."""
    import torch
    from ultralytics.utils.nms import non_max_suppression

    height, width = image_rgb.shape[-2:]
    with torch.no_grad():
        prediction = model(torch.from_numpy(np.ascontiguousarray(image_rgb / 255.0, dtype=np.float32)))
    while isinstance(prediction, (list, tuple)):  # (decoded, raw); segment: ((decoded, protos), raw)
        prediction = prediction[0]
    prediction = prediction.clone()
    # The camera clips each box to the frame before its NMS (ultralytics' predictor clips after): the
    # same order here, so that both sides suppress the same boxes. Boxes are (cx, cy, w, h) rows.
    x1y1 = (prediction[:, :2] - prediction[:, 2:4] / 2).clamp(min=0)
    x2y2 = torch.minimum(
        prediction[:, :2] + prediction[:, 2:4] / 2, torch.tensor([width, height], dtype=prediction.dtype).view(1, 2, 1)
    )
    prediction[:, :2], prediction[:, 2:4] = (x1y1 + x2y2) / 2, (x2y2 - x1y1).clamp(min=0)
    kept = non_max_suppression(prediction, conf_threshold, iou_threshold, agnostic=True, max_det=max_det, nc=classes)[0]
    detections = []
    for x1, y1, x2, y2, score, label in (row[:6] for row in kept.tolist()):
        box = np.clip([x1, y1, x2, y2], 0, [width, height, width, height])
        detections.append({"box": [float(v) for v in box], "score": float(score), "class": int(label)})
    return detections


def match(camera: list[dict], reference: list[dict], conf_threshold: float) -> dict:
    """Pairs of one camera and one ultralytics detection of the same class (best IoU first)."""
    pairs, used = [], set()
    for c_index, det in enumerate(camera):
        best, best_iou = None, MATCH_IOU
        for r_index, ref in enumerate(reference):
            if r_index in used or ref["class"] != det["class"]:
                continue
            overlap = iou(np.asarray(det["box"]), np.asarray(ref["box"]))
            if overlap >= best_iou:
                best, best_iou = r_index, overlap
        if best is not None:
            used.add(best)
            pairs.append(
                {
                    "camera": c_index,
                    "ultralytics": best,
                    "iou": round(best_iou, 4),
                    "class": det["class"],
                    "camera_score": round(det["score"], 4),
                    "ultralytics_score": round(reference[best]["score"], 4),
                }
            )
    matched_camera = {p["camera"] for p in pairs}
    only_camera = [d for i, d in enumerate(camera) if i not in matched_camera]
    only_reference = [d for i, d in enumerate(reference) if i not in used]

    def borderline(d):
        return abs(d["score"] - conf_threshold) <= BORDERLINE

    parted = [d for d in only_camera + only_reference if not borderline(d)]
    return {
        "pairs": pairs,
        "only_camera": only_camera,
        "only_ultralytics": only_reference,
        "borderline": len(only_camera) + len(only_reference) - len(parted),
        "parted": len(parted),
    }


DEPTHAI_TIMEOUT_S = 20.0


def decode_with_depthai(
    outputs: dict, classes: list[str], strides: list[int], size: tuple, conf_threshold: float, iou_threshold: float
) -> tuple[list[dict] | None, str]:
    """depthai's own DetectionParser (the camera's decoder), run on the host (depthai v3 runs it
    without a device): (detections, what decoded them), or (None, why not) when depthai is not
    installed or its parser fails. The parser is set up as the NN Archive's YOLO head sets it."""
    import os

    os.environ.setdefault("DEPTHAI_LEVEL", "error")  # no "USB protocol not available" on a machine without cameras
    try:
        import depthai as dai
    except ImportError:
        return None, "depthai is not installed"
    height, width = size
    try:
        pipeline = dai.Pipeline(False)
        parser = pipeline.create(dai.node.DetectionParser)
        parser.setRunOnHost(True)
        parser.setNNFamily(dai.DetectionNetworkType.YOLO)
        parser.setSubtype("yolov8")
        parser.setClasses([str(c) for c in classes])
        parser.setCoordinateSize(4)
        parser.setStrides(list(strides))
        parser.setConfidenceThreshold(conf_threshold)
        parser.setIouThreshold(iou_threshold)
        inputs, results = parser.input.createInputQueue(), parser.out.createOutputQueue()
        pipeline.start()
        try:
            data = dai.NNData()
            for name, output in outputs.items():  # (1, C, H, W) as CHW: depthai's viewer refuses a batch of 1
                data.addTensor(name, np.ascontiguousarray(output[0], dtype=np.float32), dai.TensorInfo.StorageOrder.CHW)
            data.setTransformation(dai.ImgTransformation(width, height))
            inputs.send(data)
            import time

            deadline, message = time.monotonic() + DEPTHAI_TIMEOUT_S, None
            while message is None and time.monotonic() < deadline and pipeline.isRunning():
                message = results.tryGet()
                time.sleep(0.01)
        finally:
            pipeline.stop()
    except Exception as error:  # depthai's own failure: the check falls back to our decode, and says so
        return None, f"depthai's DetectionParser failed: {str(error).splitlines()[0] if str(error) else error!r}"
    if message is None:
        return None, "depthai's DetectionParser gave no result"
    detections = [
        {
            "box": [d.xmin * width, d.ymin * height, d.xmax * width, d.ymax * height],
            "score": float(d.confidence),
            "class": int(d.label),
        }
        for d in message.detections
    ]
    return detections, f"depthai {dai.__version__} DetectionParser, on the host"


def same_detections(
    ours: list[dict], theirs: list[dict], score_tolerance: float = 1e-3, box_tolerance: float = 0.5
) -> bool:
    """Our decode and depthai's: each detection of one has one in the other with the same class,
    the score within score_tolerance and every box coordinate within box_tolerance pixels."""
    if len(ours) != len(theirs):
        return False
    unmatched = list(theirs)
    for a in ours:
        match = next(
            (
                b
                for b in unmatched
                if a["class"] == b["class"]
                and abs(a["score"] - b["score"]) <= score_tolerance
                and max(abs(x - y) for x, y in zip(a["box"], b["box"])) <= box_tolerance
            ),
            None,
        )
        if match is None:
            return False
        unmatched.remove(match)
    return True
