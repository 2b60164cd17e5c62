"""One file for every shave count: depthai's SuperBlob.

Layout (depthai-core's OpenVINO::SuperBlob): a header of 17 big-endian uint64 (the base blob's
size, then the size of the patch for 1..16 shaves), the base blob, then the 16 bsdiff patches in
order. A patch of size 0 means the base blob already is the one for that shave count.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import struct
from pathlib import Path

import bsdiff4

from .artifacts import IRModel, LayerSupport
from .compile import compile_blob
from .options import ConversionOptions
from .toolchain import Toolchain

SHAVE_COUNTS = range(1, 17)


def build_superblob(base_shaves: int, blobs: dict[int, bytes]) -> bytes:
    base = blobs[base_shaves]
    patches = [b"" if n == base_shaves else bsdiff4.diff(base, blobs[n]) for n in SHAVE_COUNTS]
    header = struct.pack(">17Q", len(base), *(len(p) for p in patches))
    return header + base + b"".join(patches)


def compile_every_shave_count(
    ir: IRModel, support: LayerSupport, options: ConversionOptions, toolchain: Toolchain, workdir: Path, jobs: int = 2
) -> dict[int, bytes]:
    """The blob for 1..16 SHAVEs (CMX slices equal to SHAVEs), compiled across the cores."""

    def one(shaves: int) -> bytes:
        settings = dataclasses.replace(options, nshaves=shaves, nslices=shaves)
        return compile_blob(  # no stage graph: the verify stage checked the base blob's
            ir, lambda: support, settings, toolchain, workdir / f"shaves-{shaves}.blob", stage_graph=False
        ).path.read_bytes()

    workdir.mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        return dict(zip(SHAVE_COUNTS, pool.map(one, SHAVE_COUNTS)))
