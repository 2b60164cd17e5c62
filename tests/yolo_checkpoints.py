"""ultralytics checkpoints as `yolo train` leaves them, built offline: a model from ultralytics' own
YAML (seeded weights, no download), saved with the keys and types of its trainer's save_model
(ultralytics/engine/trainer.py): the EMA model in half precision under `ema`, `model` None,
train_args as a dict, metrics, dates, version, license."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path

CLASS_NAMES = ("bus", "person", "stop sign")


def build_model(yaml: str, nc: int = len(CLASS_NAMES), seed: int = 0, confident: float | None = None):
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel, PoseModel, SegmentationModel

    torch.manual_seed(seed)
    task = "segment" if "-seg" in yaml else "pose" if "-pose" in yaml else "classify" if "-cls" in yaml else "detect"
    cls = {"detect": DetectionModel, "segment": SegmentationModel, "pose": PoseModel, "classify": ClassificationModel}[
        task
    ]
    model = cls(yaml, nc=nc, verbose=False)
    model.names = dict(enumerate(CLASS_NAMES[:nc]))
    model.args = get_cfg(overrides={"model": yaml, "task": task, "imgsz": 320, "data": "custom.yaml"})
    calibrate_batch_norm(model)
    if confident is not None and task != "classify":
        # Seeded weights detect nothing (ultralytics' bias_init puts every class score near 1e-4):
        # raise the class biases so that some cells pass the camera's threshold, a few detections.
        # Trained heads give moderate logits; seeded ones on calibrated features give huge ones, which
        # make the DFL softmax a hair-trigger argmax: both final convolutions are scaled down.
        head = model.model[-1]
        for branch in head.cv3:
            branch[-1].weight.data *= 0.01
            branch[-1].bias.data[:] = confident
        for branch in head.cv2:
            branch[-1].weight.data *= 0.01
    return model, task


def calibrate_batch_norm(model, size: int = 160) -> None:
    """Batch-norm statistics from image-like data (as training would set them), so that activations
    have realistic magnitudes rather than the near-zero ones of untouched statistics."""
    import torch

    generator = torch.Generator().manual_seed(1)
    ramp = torch.linspace(0, 1, size)
    images = [
        (0.5 * (ramp[None, :] + ramp[:, None]) * level + 0.15 * torch.rand(3, size, size, generator=generator)).clamp(
            0, 1
        )
        for level in (0.4, 0.7, 1.0, 0.55)
    ]
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.stack(images))
    model.eval()


def save_like_trainer(model, task: str, path: Path, imgsz: int = 320) -> Path:
    """torch.save of the dict ultralytics' BaseTrainer.save_model writes (best.pt / last.pt)."""
    import torch
    import ultralytics

    ema = copy.deepcopy(model).half()
    train_args = dict(vars(model.args))
    train_args.update(imgsz=imgsz, task=task, save_dir=str(path.parent.parent))
    checkpoint = {
        "epoch": -1,
        "best_fitness": 0.5,
        "stopper": {"best_fitness": 0.5, "best_epoch": 99},
        "model": None,
        "ema": ema,
        "updates": 1000,
        "modelopt": None,
        "optimizer": None,
        "scaler": {},
        "train_args": train_args,
        "train_metrics": {"metrics/mAP50(B)": 0.5, "fitness": 0.5},
        "train_results": {"epoch": [1.0]},
        "date": datetime(2026, 1, 1).isoformat(),
        "version": ultralytics.__version__,
        "git": {"root": None, "branch": None, "commit": None, "message": None, "origin": None},
        "license": "AGPL-3.0 (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def best_pt(
    directory: Path, yaml: str = "yolo11n.yaml", imgsz: int = 320, confident: float | None = None, seed: int = 0
) -> Path:
    """runs/<task>/train/weights/best.pt under directory."""
    model, task = build_model(yaml, seed=seed, confident=confident)
    return save_like_trainer(model, task, directory / "runs" / task / "train" / "weights" / "best.pt", imgsz)
