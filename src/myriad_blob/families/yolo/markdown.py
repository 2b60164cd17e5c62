"""The report's "YOLO" section (Markdown): what was cut, for which parser, and the detection check.

Class names, the task and the ultralytics version come from the checkpoint: they go through
markdown_text like every string a model sets.
"""

from __future__ import annotations

from ...markdown_text import code, markdown_table, message, text


def yolo_section(yolo: dict) -> list[str]:
    classes = ", ".join(code(name) for name in yolo["classes"][:20]) + (" …" if len(yolo["classes"]) > 20 else "")
    out = [
        f"**YOLO** ({text(yolo['family'])} {text(yolo['task'])}, trained with ultralytics "
        f"{text(yolo.get('trained_with') or '?')}): {text(yolo['n_classes'])} classes ({classes}), "
        f"strides {text(yolo['strides'])}, input {text(yolo['imgsz'][0])}×{text(yolo['imgsz'][1])}",
        "",
        f"- Cut: {message(yolo['cut'])}; outputs {', '.join(code(o) for o in yolo['outputs'])}",
        f"- Preprocessing: {message(yolo['preprocessing'])}",
    ]
    detections = yolo.get("detections")
    if detections and detections.get("compared"):
        icon = "⚠️" if detections["parted"] else "✅"
        iou = f", IoU ≥ {detections['min_iou']:.3f}, mean {detections['mean_iou']:.3f}" if detections["matched"] else ""
        out.append(
            f"- {icon} Detections on {code(detections['image'])} ({detections['input_size'][1]}×"
            f"{detections['input_size'][0]}, confidence ≥ {detections['conf_threshold']}, NMS IoU "
            f"{detections['iou_threshold']}): the camera's decode of the IR ({message(detections['decoder'])}) found "
            f"{detections['camera']}, "
            f"ultralytics' own prediction {detections['ultralytics']}; {detections['matched']} matched "
            f"(same class{iou}, largest score difference {detections['max_score_difference']:.4f}), "
            f"{detections['parted']} on one side only, {detections['borderline']} borderline"
        )
        names = yolo["classes"]
        rows = [
            [
                text(names[p["class"]] if p["class"] < len(names) else p["class"]),
                f"{p['iou']:.3f}",
                f"{p['camera_score']:.3f}",
                f"{p['ultralytics_score']:.3f}",
            ]
            for p in detections["pairs"][:10]
        ]
        if rows:
            out += ["", markdown_table(["class", "IoU", "camera score", "ultralytics score"], rows)]
    elif detections:
        out.append(f"- Detections: not compared ({message(detections.get('why'))})")
    return out + [""]
