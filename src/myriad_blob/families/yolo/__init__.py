"""YOLO from ultralytics: a `best.pt` of `yolo train` in, a blob the camera decodes out.

The first model family (families/base.py): recognize (is the file an ultralytics checkpoint, from
its pickle's opcodes), load (ultralytics' classes only, then cut the head for the camera), the
options the checkpoint implies (input shape from its imgsz, ultralytics' preprocessing), its check
(decode the IR's outputs on a photograph as the camera would and compare with ultralytics' own
prediction) and the outputs (the NN Archive's YOLO head, depthai v2's JSON). Nothing outside this
package knows about YOLO.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...artifacts import ModelFormat
from ...checks import Check, CheckContext
from ...errors import ConversionError, Stage
from ...findings import Finding
from ...numeric import load_sample, run_ir
from ...options import InputSpec
from .checkpoint import INSTALL_HINT, is_ultralytics_checkpoint, load_checkpoint, model_of, scan_checkpoint
from .detections import (
    decode_camera,
    decode_with_depthai,
    match,
    photograph,
    same_detections,
    ultralytics_prediction,
)
from .head import camera_model, full_model, output_names
from .markdown import yolo_section

__all__ = ["FAMILY", "INSTALL_HINT", "YoloModel", "load"]

# What `--yolo-head` chooses: the camera's decode (cut before the box decode), or the full model.
CAMERA, FULL = "camera", "full"
# Tasks cut for the camera's YOLO decoding, and the head classes whose outputs it knows (ultralytics'
# anchor-free heads; YOLO26's own Segment26/Pose26 and the open-vocabulary heads are not among them).
CAMERA_TASKS = ("detect", "segment", "pose")
CAMERA_HEADS = {"detect": ("Detect", "v10Detect"), "segment": ("Segment",), "pose": ("Pose",)}
# The thresholds written into the NN Archive and the v2 JSON (Luxonis's converters' defaults); the
# camera application can change them (DetectionNetwork.setConfidenceThreshold).
CONF_THRESHOLD, IOU_THRESHOLD, MAX_DET = 0.5, 0.5, 300
INPUT_NAME = "images"  # ultralytics' own export name
# ultralytics' preprocessing: RGB, pixel values divided by 255 (no mean). The camera sends BGR.
ULTRALYTICS_SCALE = (255.0, 255.0, 255.0)
_FAMILIES = (
    ("yolov5", "YOLOv5u"),
    ("yolov8", "YOLOv8"),
    ("yolov9", "YOLOv9"),
    ("yolov10", "YOLOv10"),
    ("yolo11", "YOLO11"),
    ("yolov11", "YOLO11"),
    ("yolo12", "YOLO12"),
    ("yolo26", "YOLO26"),
)


def _fail(message: str, stage: Stage = Stage.LOAD) -> ConversionError:
    return ConversionError(stage, message)


@dataclasses.dataclass
class YoloModel:
    """An ultralytics checkpoint, loaded: the module to export and what the camera needs to know
    (a families/base.FamilyModel)."""

    key: ClassVar[str] = "yolo"  # the report's section
    input_shape_source: ClassVar[str] = "as the checkpoint's train_args.imgsz makes it"

    module: object  # what is exported: the camera head or the full model
    original: object  # ultralytics' own model (fused, eval), for its prediction
    task: str
    family: str
    names: list
    strides: list
    imgsz: tuple  # (height, width)
    head: str  # CAMERA or FULL
    version: str | None = None  # the ultralytics version that trained it
    kpt_shape: tuple | None = None
    n_masks: int | None = None  # segment: mask coefficients per box = prototype channels

    @property
    def input_names(self) -> list[str]:
        return [INPUT_NAME]

    @property
    def output_names(self) -> list[str]:
        if self.head == CAMERA and self.task in CAMERA_TASKS:
            return output_names(len(self.strides), self.task)
        return ["output0", "output1"] if self.task == "segment" else ["output"]

    @property
    def box_outputs(self) -> list[str]:
        """The per-scale box outputs (`_yolo`), what depthai's YOLO decoding reads for the boxes."""
        return self.output_names[: len(self.strides)]

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "family": self.family,
            "classes": list(self.names),
            "n_classes": len(self.names),
            "strides": list(self.strides),
            "imgsz": list(self.imgsz),
            "head": self.head,
            "trained_with": self.version,
            "outputs": self.output_names,
        }

    # --- the options the checkpoint implies -------------------------------------------------
    def adjust_options(self, options):
        """Input shape from the checkpoint's imgsz; ultralytics' preprocessing (RGB from the camera's
        BGR, /255) unless the user gave --mean, --scale or --reverse-input-channels; the NN Archive;
        ultralytics' bus.jpg as the numeric check's sample unless --sample names one."""
        changes = {"nn_archive": True} if self.head == CAMERA else {}
        if not options.input_shapes:
            changes["input_shapes"] = (InputSpec(None, (1, 3, *self.imgsz)),)
        if not (options.mean or options.scale or options.reverse_input_channels):
            changes.update(reverse_input_channels=True, scale={None: ULTRALYTICS_SCALE})
        if options.sample is None:  # the numeric and FP16 range checks on a real photograph, not seeded data
            changes["sample"] = photograph()
        return dataclasses.replace(options, **changes), "reverse_input_channels" in changes

    # --- what the camera is told ------------------------------------------------------------
    def archive_head(self) -> dict | None:
        """The NN Archive head (luxonis-ml's HeadYOLOMetadata / HeadClassificationMetadata fields)."""
        names = [str(n) for n in self.names]
        if self.task == "classify":
            return {
                "parser": "ClassificationParser",
                "outputs": self.output_names,
                "metadata": {"classes": names, "n_classes": len(names), "is_softmax": True},
            }
        if self.head != CAMERA or self.task not in CAMERA_TASKS:
            return None
        metadata = {
            "yolo_outputs": self.box_outputs,
            "subtype": "yolov8",
            "classes": names,
            "n_classes": len(names),
            "iou_threshold": IOU_THRESHOLD,
            "conf_threshold": CONF_THRESHOLD,
            "max_det": MAX_DET,
            "strides": list(self.strides),
        }
        levels = len(self.strides)
        if self.task == "segment":  # mask coefficients per scale and the prototypes: depthai's mask decode
            metadata.update(
                mask_outputs=self.output_names[levels : 2 * levels],
                protos_outputs=self.output_names[-1],
                n_prototypes=self.n_masks,
                is_softmax=False,
            )
        elif self.task == "pose":  # keypoints per scale, in pixels: depthai's keypoint decode
            metadata.update(keypoints_outputs=self.output_names[levels:], n_keypoints=int(self.kpt_shape[0]))
        # The detect head is the one depthai's DetectionNetwork always took ("YOLO"); with masks or keypoints
        # Luxonis names the parser YOLOExtendedParser (depthai-nodes' host parser; DetectionNetwork takes both).
        return {
            "parser": "YOLO" if self.task == "detect" else "YOLOExtendedParser",
            "outputs": self.output_names,
            "metadata": metadata,
        }

    def depthai_v2_config(self, input_shape: tuple) -> dict | None:
        """depthai v2's JSON for YoloDetectionNetwork (the format Luxonis's converters write beside the blob)."""
        names = [str(n) for n in self.names]
        if self.task != "detect" or self.head != CAMERA:
            return None
        return {
            "nn_config": {
                "output_format": "detection",
                "NN_family": "YOLO",
                "input_size": f"{input_shape[-1]}x{input_shape[-2]}",
                "NN_specific_metadata": {
                    "classes": len(names),
                    "coordinates": 4,
                    "anchors": [],
                    "anchor_masks": {},
                    "iou_threshold": IOU_THRESHOLD,
                    "confidence_threshold": CONF_THRESHOLD,
                },
            },
            "mappings": {"labels": names},
            "version": 1,
        }

    # --- the report ---------------------------------------------------------------------------
    def report_section(self, options, defaulted: bool) -> dict:
        section = self.to_dict()
        if defaulted:
            section["preprocessing"] = (
                "ultralytics' own, applied by default: the blob takes the camera's BGR frame, "
                "reverses it to RGB and divides by 255 (--reverse-input-channels --scale 255)"
            )
        else:
            section["preprocessing"] = (
                "as given by --mean/--scale/--reverse-input-channels (ultralytics trains on RGB/255)"
            )
        extra = {
            "segment": "; per scale the mask coefficients, and the prototypes",
            "pose": "; per scale the keypoints (x, y in pixels, visibility logit)",
        }.get(self.task, "")
        section["cut"] = (
            (
                "before the box decode: per scale [4 DFL-decoded box distances, confidence, class scores]"
                f"{extra}, decoded with NMS by the camera's YOLO parser"
            )
            if self.head == CAMERA and self.task in CAMERA_TASKS
            else "nothing: the full model"
        )
        return section

    def checks(self) -> tuple[Check, ...]:
        return (Check("yolo detections", self._detections_check),)

    def _detections_check(self, context: CheckContext) -> list[Finding]:
        """The report's yolo.detections; a warning when the two decodes part."""
        with context.session.worker() as worker:
            section = self.check_detections(context.ir, context.toolchain, worker, context.options)
        context.report.family_sections[KEY]["detections"] = section
        if not section.get("parted"):
            return []
        reason = (
            f"YOLO detections: {section['parted']} of the camera's decode and ultralytics' own "
            "prediction on one side only"
        )
        return [Finding("yolo detections", reason, section["warnings"][0])]

    def check_detections(self, ir, toolchain, worker, options) -> dict:
        """The camera's decode of the IR's outputs on a photograph against ultralytics' own prediction."""
        if self.task not in CAMERA_TASKS or self.head != CAMERA:
            return {"compared": False, "why": f"{self.task} with --yolo-head {self.head}: no camera decode to compare"}
        image = photograph()
        first = ir.inputs[0]
        blob_input = load_sample(image, first.shape, options.reverse_input_channels)
        outputs = run_ir(ir, {first.name: blob_input}, toolchain, worker)
        size = tuple(first.shape[-2:])
        per_scale = [outputs[name] for name in self.box_outputs]
        ours = decode_camera(per_scale, self.strides, size, CONF_THRESHOLD, IOU_THRESHOLD)
        theirs, decoder = decode_with_depthai(
            dict(zip(self.box_outputs, per_scale)), self.names, self.strides, size, CONF_THRESHOLD, IOU_THRESHOLD
        )
        camera = theirs if theirs is not None else ours
        if theirs is None:
            decoder = f"myriad-blob's copy of depthai's TLBR decode ({decoder})"
        reference = ultralytics_prediction(
            self.original,
            load_sample(image, first.shape, False),
            CONF_THRESHOLD,
            IOU_THRESHOLD,
            MAX_DET,
            classes=len(self.names),
        )
        result = match(camera, reference, CONF_THRESHOLD)
        ious = [p["iou"] for p in result["pairs"]]
        score_gap = max((abs(p["camera_score"] - p["ultralytics_score"]) for p in result["pairs"]), default=0.0)
        section = {
            "compared": True,
            "image": f"ultralytics/assets/{image.name}",
            "input_size": list(size),
            "conf_threshold": CONF_THRESHOLD,
            "iou_threshold": IOU_THRESHOLD,
            "decoder": decoder,
            "own_decode_agrees": same_detections(ours, theirs) if theirs is not None else None,
            "camera": len(camera),
            "ultralytics": len(reference),
            "matched": len(result["pairs"]),
            "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
            "min_iou": round(float(min(ious)), 4) if ious else None,
            "max_score_difference": round(float(score_gap), 4),
            "borderline": result["borderline"],
            "parted": result["parted"],
            "pairs": result["pairs"][:50],
            "only_camera": result["only_camera"][:20],
            "only_ultralytics": result["only_ultralytics"][:20],
            "warnings": [],
        }
        if result["parted"]:
            section["warnings"].append(
                f"the camera's decode of the converted model parts from ultralytics' own prediction on {image.name}: "
                f"{len(camera)} detections against {len(reference)}, {len(result['pairs'])} matched (IoU ≥ 0.5, same class), "
                f"{result['parted']} on one side only. Both sides got the same photo with the preprocessing in the "
                "report (ultralytics trains on RGB/255); see the numeric check's diagnosis for where the blob parts"
            )
        return section


def _family(model, checkpoint: dict) -> str:
    yaml = getattr(model, "yaml", None) or {}
    source = str(yaml.get("yaml_file") or (checkpoint.get("train_args") or {}).get("model") or "")
    name = Path(source).name.lower()
    return next((title for prefix, title in _FAMILIES if name.startswith(prefix)), name or "unknown")


def _imgsz(checkpoint: dict, task: str) -> tuple:
    size = (checkpoint.get("train_args") or {}).get("imgsz") or (224 if task == "classify" else 640)
    if isinstance(size, (list, tuple)):
        return (int(size[0]), int(size[-1]))
    return (int(size), int(size))


def load(path: Path, options) -> YoloModel | None:
    """The checkpoint as a YoloModel, or None when the file is not an ultralytics checkpoint."""
    scan = scan_checkpoint(path)
    if not is_ultralytics_checkpoint(scan):
        return None
    checkpoint = load_checkpoint(path, scan, options.trust_pickle)
    model = model_of(checkpoint, path)
    checkpoint = checkpoint if isinstance(checkpoint, dict) else {}  # a bare model: its own attributes only
    from ultralytics.nn.tasks import guess_model_task

    task = getattr(model, "task", None) or guess_model_task(model)
    head = model.model[-1] if hasattr(model, "model") else None
    if head is not None and getattr(head, "end2end", False):
        head.end2end = False  # the one-to-many branch, decoded with NMS, as depthai does
    try:
        model.fuse(verbose=False)
    except TypeError:
        model.fuse()
    model.eval()
    class_names = getattr(model, "names", None) or {}
    class_names = [class_names[k] for k in sorted(class_names)] if isinstance(class_names, dict) else list(class_names)
    strides = [int(s) for s in getattr(model, "stride", [])]
    yolo_head = options.yolo_head
    head_type = type(head).__name__
    if yolo_head == CAMERA and task != "classify" and head_type not in CAMERA_HEADS.get(task, ()):
        raise _fail(
            f"{path} is an ultralytics {task} checkpoint with a {head_type} head, which depthai's YOLO "
            "decoding does not take (it takes the Detect, Segment and Pose heads of YOLOv5u/v8/11): pass "
            "--yolo-head full to convert the whole model and decode on the host",
            Stage.OPTIONS,
        )
    module = camera_model(model, task) if (yolo_head == CAMERA and task in CAMERA_TASKS) else full_model(model)
    return YoloModel(
        module=module,
        original=model,
        task=task,
        family=_family(model, checkpoint),
        names=class_names,
        strides=strides,
        imgsz=_imgsz(checkpoint, task),
        head=yolo_head,
        version=checkpoint.get("version"),
        kpt_shape=getattr(head, "kpt_shape", None),
        n_masks=getattr(head, "nm", None),
    )


KEY = YoloModel.key


class YoloFamily:
    """ultralytics' YOLO as a model family (families/base.py)."""

    key = KEY
    format = ModelFormat.ULTRALYTICS

    def recognize(self, path: Path) -> bool:
        return is_ultralytics_checkpoint(scan_checkpoint(path))

    def load(self, path: Path, options) -> YoloModel:
        model = load(path, options)
        if model is None:  # recognize() said it is one: the file changed in between
            raise _fail(f"{path} is no longer an ultralytics checkpoint: it changed while being converted")
        return model

    def render_markdown(self, section: dict) -> list[str]:
        return yolo_section(section)


FAMILY = YoloFamily()
