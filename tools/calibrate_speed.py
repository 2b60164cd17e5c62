"""Fit the speed estimate's coefficients on the published RVC2 figures, and benchmark it.

    python tools/calibrate_speed.py --compile   rebuild and compile the missing calibration graphs
                                                (one conversion per flock /tmp/myriad-heavy.lock hold)
    python tools/calibrate_speed.py --write     fit, write src/myriad_blob/data/speed_calibration.json
    python tools/calibrate_speed.py             (make bench-speed) fit and print, write nothing

Points: the rows of /work/shared/speed/myriad_fps_published.csv (a copy: tools/speed_calibration/
published.csv) from Luxonis' RVC2 table (8 SHAVEs, stated input); the other rows are left out and
the printout says why. Each architecture is rebuilt (tools/speed_models.py), compiled at 8 SHAVEs
with the pipeline, and its blob's stage table cached as JSON under tools/speed_calibration/ (a few
tens of KB each), so the fit and this benchmark rerun in seconds without the toolchain.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from speed_models import ARCHITECTURES, HOLDOUT, HOLDOUT_SHAVES, NOT_REBUILT  # noqa: E402

from myriad_blob import speed  # noqa: E402
from myriad_blob.blob import parse_blob  # noqa: E402
from myriad_blob.blob_stages import BlobBuffer, BlobStage, parse_stage_table  # noqa: E402

CACHE = ROOT / "tools" / "speed_calibration"
PUBLISHED = CACHE / "published.csv"
OUTPUT = ROOT / "src" / "myriad_blob" / "data" / "speed_calibration.json"
RVC2_TABLE = "https://docs.luxonis.com/hardware/platform/rvc/rvc2"
# Each feature's typical size for one frame: the fit runs on columns of similar magnitude.
SCALES = {
    "inference": 1.0,
    "stages": 100.0,
    "nce_macs": 1e9,
    "nce_data": 1e7,
    "ddr_bytes": 1e7,
    "dma_bytes": 1e6,
    "shave_activation": 1e6,
    "shave_eltwise": 1e6,
    "shave_move": 1e6,
    "shave_macs": 1e8,
    "shave_other": 1e6,
    "usb_bytes": 1e6,
}
# Each coefficient's floor: the unit's peak rate (Myriad X at 700 MHz; a SHAVE's 128-bit vector unit
# does 8 FP16 operations a cycle), so that a kind few calibration blobs hold is not fitted as free.
SHAVE_PEAK = 1 / (700e6 * 8)  # seconds per element (or MAC) on one SHAVE
FLOORS = {
    "shave_activation": 4 * SHAVE_PEAK,  # an exponential and a division per element at least
    "shave_eltwise": SHAVE_PEAK,
    "shave_move": SHAVE_PEAK,
    "shave_macs": SHAVE_PEAK,
    "shave_other": 2 * SHAVE_PEAK,
    "nce_macs": 1 / 500e9,  # the NCE's 1 TOPS: 500 G multiply-accumulates a second
}
# A kind is calibrated when a calibration blob spends at least this share of its time in it.
KIND_SEEN = 0.02


@dataclasses.dataclass
class Point:
    model: str
    key: str
    size: int
    shaves: int
    fps: float
    latency_ms: float | None
    newer: bool  # the RVC2 table's newer rows (YOLOv9 on): latency measured as 1000/FPS


def points() -> tuple[list[Point], list[tuple[str, str]]]:
    """(calibration points, [(row, why left out)])."""
    kept, left = [], []
    for row in csv.DictReader(PUBLISHED.open()):
        label = f"{row['model']} {row['input']} {row['shaves']} SHAVEs, {row['device']}: {row['fps']} FPS"
        if row["source"] != RVC2_TABLE:
            why = "not Luxonis' RVC2 table"
            if "NCS2" in row["device"]:
                why = "NCS2: bounded by the host or USB, not the chip"
            elif "unstated" in row["shaves"] or "unstated" in row["input"]:
                why = "input or SHAVEs unstated"
            elif row["fps"].startswith(("~", "2-")) or row["fps"].endswith("+"):
                why = "approximate figure"
            left.append((label, why))
            continue
        if row["model"] not in ARCHITECTURES:
            left.append((label, f"not rebuilt: {NOT_REBUILT.get(row['model'], 'no builder')}"))
            continue
        size = int(row["input"].split("x")[0])
        kept.append(
            Point(
                row["model"],
                ARCHITECTURES[row["model"]],
                size,
                int(row["shaves"]),
                float(row["fps"]),
                float(row["latency_ms"]) if row["latency_ms"] else None,
                "newer rows" in row["notes"] or "same as above" in row["notes"],
            )
        )
    return kept, left


def holdout_points() -> list[Point]:
    """The model zoo rows held out of the fit (speed_models.HOLDOUT), SHAVEs taken as 6."""
    points = []
    for row in csv.DictReader(PUBLISHED.open()):
        if row["model"] in HOLDOUT and row["source"].startswith("luxonis/depthai-model-zoo"):
            size = int(row["input"].split("x")[0])
            points.append(
                Point(row["model"], HOLDOUT[row["model"]], size, HOLDOUT_SHAVES, float(row["fps"]), None, False)
            )
    return points


def cache_path(point: Point) -> Path:
    return CACHE / f"{point.key}_{point.size}_{point.shaves}.json"


def compile_missing(kept: list[Point]) -> None:
    for point in kept:
        if cache_path(point).exists():
            continue
        work = Path("/tmp/speed-calibration")
        work.mkdir(exist_ok=True)
        blob = work / f"{point.key}_{point.size}_{point.shaves}.blob"
        print(f"compiling {point.model} {point.size} at {point.shaves} SHAVEs", flush=True)
        subprocess.run(
            ["flock", "/tmp/myriad-heavy.lock", sys.executable, str(ROOT / "tools" / "speed_compile.py"),
             point.key, str(point.size), str(point.shaves), str(blob)],
            check=True,
        )  # fmt: skip
        store(blob.read_bytes(), cache_path(point))


def store(blob: bytes, path: Path) -> None:
    """A blob's stage table as compact JSON (what the fit needs; no weights)."""
    info = parse_blob(blob)
    record = {
        "shaves": info.shaves,
        "io_bytes": sum(speed.tensor_bytes(t) for t in info.inputs + info.outputs),
        "stages": [_stage_record(s) for s in parse_stage_table(blob)],
    }
    path.write_text(json.dumps(record, separators=(",", ":")) + "\n")


def _stage_record(stage: BlobStage) -> list:
    return [
        stage.type,
        stage.shaves,
        [[list(b.dims), b.data_type, b.location] for b in stage.buffers],
        [_stage_record(s) for s in stage.injected],
    ]


def _stage(index: int, record: list) -> BlobStage:
    stage_type, shaves, buffers, injected = record
    return BlobStage(
        index,
        stage_type,
        shaves,
        tuple(BlobBuffer(tuple(d), t, loc) for d, t, loc in buffers),
        tuple(_stage(index, r) for r in injected),
    )


def load(point: Point) -> tuple[tuple[BlobStage, ...], int, int]:
    record = json.loads(cache_path(point).read_text())
    stages = tuple(_stage(i, r) for i, r in enumerate(record["stages"]))
    return stages, record["io_bytes"], record["shaves"]


def features(point: Point) -> list[float]:
    stages, io_bytes, shaves = load(point)
    return speed.totals(speed.blob_work(stages, io_bytes, shaves, shaves))


def fit(kept: list[Point]) -> dict:
    scales = [SCALES[name] for name in speed.FEATURES]
    floors = [FLOORS.get(name, 0.0) for name in speed.FEATURES]
    coefficients = speed.fit([(features(p), 1.0 / p.fps) for p in kept], scales, floors)
    return dict(zip(speed.FEATURES, coefficients))


def predict(point: Point, coefficients: dict) -> float:
    return 1.0 / sum(v * coefficients[name] for name, v in zip(speed.FEATURES, features(point)))


def leave_one_architecture_out(kept: list[Point]) -> dict[int, float]:
    """{point index: FPS predicted by a fit without the point's architecture}."""
    out = {}
    for model in dict.fromkeys(p.model for p in kept):
        coefficients = fit([p for p in kept if p.model != model])
        for i, p in enumerate(kept):
            if p.model == model:
                out[i] = predict(p, coefficients)
    return out


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        r = [0.0] * len(values)
        for rank, i in enumerate(order):
            r[i] = float(rank)
        return r

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))


def latency_fit(kept: list[Point], coefficients: dict) -> dict:
    """latency = per_frame x (time per frame) + fixed_ms, on the older rows (the newer ones give
    1000/FPS as latency: measured another way)."""
    pairs = [(1000.0 / predict(p, coefficients), p.latency_ms) for p in kept if p.latency_ms and not p.newer]
    n = len(pairs)
    mean_x, mean_y = sum(x for x, _ in pairs) / n, sum(y for _, y in pairs) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in pairs) / sum((x - mean_x) ** 2 for x, _ in pairs)
    return {"per_frame": round(slope, 4), "fixed_ms": round(mean_y - slope * mean_x, 3), "rows": n}


def seen_kinds(kept: list[Point], coefficients: dict) -> list[str]:
    seen = set()
    for p in kept:
        stages, io_bytes, shaves = load(p)
        rows = speed.blob_work(stages, io_bytes, shaves, shaves)
        seconds = speed._seconds(rows, coefficients)
        total = sum(seconds)
        share: dict[str, float] = {}
        for stage, s in zip(stages, seconds):
            share[speed._kind(stage)] = share.get(speed._kind(stage), 0) + s / total
        seen |= {kind for kind, value in share.items() if value >= KIND_SEEN}
    return sorted(seen)


def report(kept: list[Point], left: list, coefficients: dict, loao: dict[int, float]) -> dict:
    print(f"{'model':<18}{'input':>6}{'SHAVEs':>7}{'published':>10}{'fitted':>8}{'LOAO':>8}{'LOAO err':>10}")
    errors = []
    for i, p in enumerate(kept):
        fitted = predict(p, coefficients)
        error = loao[i] / p.fps - 1
        errors.append(abs(error))
        print(f"{p.model:<18}{p.size:>6}{p.shaves:>7}{p.fps:>10.1f}{fitted:>8.1f}{loao[i]:>8.1f}{error:>+10.0%}")
    ratio = max(max(loao[i] / p.fps, p.fps / loao[i]) for i, p in enumerate(kept))
    rho = spearman([p.fps for p in kept], [loao[i] for i in range(len(kept))])
    print(f"\nleave-one-architecture-out over {len(kept)} points ({len({p.model for p in kept})} architectures):")
    print(
        f"  median |error| {statistics.median(errors):.1%}, worst {max(errors):.1%} (x{ratio:.2f}), Spearman {rho:.3f}"
    )
    drops = []
    by_model: dict[str, dict[int, int]] = {}
    for i, p in enumerate(kept):
        by_model.setdefault(p.model, {})[p.size] = i
    print("\n416 -> 640 drop (FPS at 416 / FPS at 640), same fit (all points):")
    for model, sizes in by_model.items():
        if 416 in sizes and 640 in sizes:
            a, b = kept[sizes[416]], kept[sizes[640]]
            published = a.fps / b.fps
            estimated = predict(a, coefficients) / predict(b, coefficients)
            loao_drop = loao[sizes[416]] / loao[sizes[640]]
            drops.append({"model": model, "published": published, "estimated": estimated, "loao": loao_drop})
            print(
                f"  {model:<12} published {published:.2f}x, estimated {estimated:.2f}x ({estimated / published - 1:+.0%}),"
                f" LOAO {loao_drop:.2f}x ({loao_drop / published - 1:+.0%})"
            )
    print("\nleft out:")
    for label, why in left:
        print(f"  {label}: {why}")
    p90 = sorted(errors)[int(0.9 * (len(errors) - 1) + 0.5)]
    return {
        "median_relative": round(statistics.median(errors), 4),
        "p90_relative": round(p90, 4),
        "worst_relative": round(max(errors), 4),
        "worst_ratio": round(ratio, 3),
        "spearman": round(rho, 4),
        "drops_416_640": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()} for d in drops],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="compile the calibration graphs not cached")
    parser.add_argument("--write", action="store_true", help="write src/myriad_blob/data/speed_calibration.json")
    args = parser.parse_args()
    kept, left = points()
    if args.compile:
        compile_missing(kept + holdout_points())
    missing = [p for p in kept if not cache_path(p).exists()]
    if missing:
        sys.exit(f"not compiled yet: {', '.join(f'{p.model} {p.size}' for p in missing)} (--compile)")
    coefficients = fit(kept)
    loao = leave_one_architecture_out(kept)
    error = report(kept, left, coefficients, loao)
    held = [p for p in holdout_points() if cache_path(p).exists()]
    if held:
        print("\nheld out (model zoo rows, never fitted; SHAVEs unstated, taken as 6):")
        for p in held:
            estimated = predict(p, coefficients)
            print(
                f"  {p.model:<22}{p.size:>5} published {p.fps:7.1f}, estimated {estimated:7.1f} ({estimated / p.fps - 1:+.0%})"
            )
    latency = latency_fit(kept, coefficients)
    print(
        f"\nlatency (ms) = {latency['per_frame']} x time per frame + {latency['fixed_ms']}, fitted on the "
        f"{latency['rows']} older rows (the newer rows give 1000/FPS as latency):"
    )
    for p in kept:
        if p.latency_ms and not p.newer:
            estimated = latency["per_frame"] * 1000 / predict(p, coefficients) + latency["fixed_ms"]
            print(f"  {p.model:<18}{p.size:>5} published {p.latency_ms:6.1f}, estimated {estimated:6.1f}")
    print("\ncoefficients (seconds per unit):")
    for name, value in coefficients.items():
        print(f"  {name:<18}{value:.3e}")
    if args.write:
        toolchain = json.loads((CACHE / "toolchain.json").read_text())
        calibration = {
            "floors": {k: float(f"{v:.6g}") for k, v in FLOORS.items()},
            "coefficients": {k: float(f"{v:.6g}") for k, v in coefficients.items()},
            "kinds": seen_kinds(kept, coefficients),
            "error": error,
            "latency": latency_fit(kept, coefficients),
            "provenance": {
                "summary": (
                    f"Fitted on {len(kept)} published Luxonis RVC2 points (8 SHAVEs, 2 inference threads; "
                    f"{len({p.model for p in kept})} architectures), compiled with OpenVINO "
                    f"{toolchain['openvino']}; leave-one-architecture-out median error "
                    f"{error['median_relative']:.0%}, worst {error['worst_relative']:.0%}."
                ),
                "rows": [f"{p.model} {p.size}x{p.size} {p.shaves} SHAVEs {p.fps} FPS" for p in kept],
                "source": RVC2_TABLE,
                "toolchain": toolchain,
                "date": datetime.date.today().isoformat(),
                "method": (
                    "non-negative least squares on the relative error of the time per frame (1/FPS), "
                    "columns scaled, each coefficient at least its unit's peak rate (floors); architectures "
                    "rebuilt with fresh weights (tools/speed_models.py), compiled by myriad-blob's pipeline "
                    "at the published SHAVEs, their blobs' stage tables cached in tools/speed_calibration/"
                ),
            },
        }
        OUTPUT.write_text(json.dumps(calibration, indent=1) + "\n")
        print(f"\nwrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
