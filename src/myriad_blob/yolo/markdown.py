"""The report's "YOLO" section (Markdown): what was cut, for which parser, and the detection check."""

from __future__ import annotations


def yolo_section(yolo: dict) -> list[str]:
    classes = ", ".join(f"`{name}`" for name in yolo["classes"][:20]) + (" …" if len(yolo["classes"]) > 20 else "")
    out = [
        f"**YOLO** ({yolo['family']} {yolo['task']}, trained with ultralytics {yolo.get('trained_with') or '?'}): "
        f"{yolo['n_classes']} classes ({classes}), strides {yolo['strides']}, input {yolo['imgsz'][0]}×{yolo['imgsz'][1]}",
        "",
        f"- Cut: {yolo['cut']}; outputs {', '.join(f'`{o}`' for o in yolo['outputs'])}",
        f"- Preprocessing: {yolo['preprocessing']}",
    ]
    detections = yolo.get("detections")
    if detections and detections.get("compared"):
        icon = "⚠️" if detections["parted"] else "✅"
        iou = f", IoU ≥ {detections['min_iou']:.3f}, mean {detections['mean_iou']:.3f}" if detections["matched"] else ""
        out.append(
            f"- {icon} Detections on `{detections['image']}` ({detections['input_size'][1]}×"
            f"{detections['input_size'][0]}, confidence ≥ {detections['conf_threshold']}, NMS IoU "
            f"{detections['iou_threshold']}): the camera's decode of the IR ({detections['decoder']}) found "
            f"{detections['camera']}, "
            f"ultralytics' own prediction {detections['ultralytics']}; {detections['matched']} matched "
            f"(same class{iou}, largest score difference {detections['max_score_difference']:.4f}), "
            f"{detections['parted']} on one side only, {detections['borderline']} borderline"
        )
        names = yolo["classes"]
        rows = [
            f"| {names[p['class']] if p['class'] < len(names) else p['class']} | {p['iou']:.3f} | "
            f"{p['camera_score']:.3f} | {p['ultralytics_score']:.3f} |"
            for p in detections["pairs"][:10]
        ]
        if rows:
            out += ["", "| class | IoU | camera score | ultralytics score |", "|---|---|---|---|", *rows]
    elif detections:
        out.append(f"- Detections: not compared ({detections.get('why')})")
    return out + [""]
