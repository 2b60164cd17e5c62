"""The package's own data (src/myriad_blob/data, README.md there): the numeric check's photo ships
with the package, so neither a `pip install` nor the action's image needs matplotlib for it."""

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from myriad_blob import numeric

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def test_the_photo_is_the_one_its_provenance_names():
    readme = (numeric.CHECK_PHOTO.parent / "README.md").read_text()
    (digest,) = re.findall(r"SHA-256 `([0-9a-f]{64})`", readme)
    assert hashlib.sha256(numeric.CHECK_PHOTO.read_bytes()).hexdigest() == digest


def test_the_check_photo_needs_no_matplotlib():
    probe = (
        "import sys; sys.modules['matplotlib'] = None\n"  # any import of it fails
        "from myriad_blob.numeric import check_photo\n"
        "photo = check_photo(48, 64)\n"
        "assert photo.size == (64, 48) and photo.mode == 'RGB'\n"
        "assert 'matplotlib' not in {name.split('.')[0] for name in sys.modules if sys.modules[name]}\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_built_wheel_carries_the_photo(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheel"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheel").glob("myriad_blob-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "myriad_blob/data/grace_hopper.jpg" in names and "myriad_blob/data/README.md" in names
    assert "myriad_blob/data/speed_calibration.json" in names  # the speed estimate's coefficients (speed.py)
    assert "myriad_blob/families/yolo/family.toml" in names  # a family's options and report key (options.py)
