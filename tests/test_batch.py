"""Many models, many variants: the manifest, convert-all, the cache, the matrix, the SuperBlob."""

import hashlib
import json
import shutil
import textwrap

import depthai as dai
import pytest

from conftest import SHAPE_ARG, run_cli
from myriad_blob.manifest import ManifestError, load_manifest


def write_manifest(root, text):
    path = root / "myriad-blob.toml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def repo(tmp_path, model_files):
    """A model repository: two models and a manifest."""
    (tmp_path / "models").mkdir()
    shutil.copy(model_files["torchscript"], tmp_path / "models" / "cnn.pt")
    shutil.copy(model_files["onnx"], tmp_path / "models" / "cnn.onnx")
    write_manifest(
        tmp_path,
        f"""\
        [defaults]
        input-shape = "{SHAPE_ARG}"

        [[models]]
        name = "torch"
        model = "models/cnn.pt"

          [[models.variants]]
          name = "6-shaves"

          [[models.variants]]
          name = "4-shaves"
          nshaves = 4

        [[models]]
        name = "onnx"
        model = "models/cnn.onnx"
        """,
    )
    return tmp_path


@pytest.mark.unit
@pytest.mark.parametrize(
    "body, message",
    [
        (
            '[[models]]\nname = "a"\nmodel = "m.pt"\nnshave = 4\n',
            r"myriad-blob.toml:4: models\[0\].nshave is not an option \(did you mean 'nshaves'\?\)",
        ),
        (
            '[[models]]\nname = "a"\nmodel = "m.pt"\n\n[[models.variants]]\nname = "v"\nnshaves = "six"\n',
            r"myriad-blob.toml:7: models\[0\].variants\[0\].nshaves must be a whole number, got 'six'",
        ),
        ('[[models]]\nname = "a"\n', r"myriad-blob.toml:1: models\[0\].model is required"),
        (
            '[defaults]\nreverse-input-channels = "yes"\n[[models]]\nname = "a"\nmodel = "m"\n',
            r"myriad-blob.toml:2: defaults.reverse-input-channels must be true or false",
        ),
        (
            '[[models]]\nname = "a"\nmodel = "m.pt"\ninput-type = "U7"\n',
            r"myriad-blob.toml:4: models\[0\].input-type is invalid: --input-type must be one of",
        ),
        ('[[models]]\nname = "a b"\nmodel = "m"\n', r"myriad-blob.toml:2: models\[0\].name 'a b' may hold only"),
        (
            '[[models]]\nname = "a"\nmodel = "m"\n[[models.variants]]\nname = "v"\n[[models.variants]]\nname = "v"\n',
            r"myriad-blob.toml:7: models\[0\].variants\[1\].name 'v' is used twice",
        ),
        ('[[models]]\nname = "a"\nmodel = \n', r"not valid TOML: .*line 3"),
        ("", r"models is missing"),
    ],
)
def test_invalid_manifest_fields_are_named_with_their_line(tmp_path, body, message):
    with pytest.raises(ManifestError, match=message):
        load_manifest(write_manifest(tmp_path, body))


@pytest.mark.unit
def test_invalid_manifest_fails_convert_all_with_exit_16(tmp_path):
    write_manifest(tmp_path, '[[models]]\nname = "a"\nmodel = "m.pt"\nnshaves = 40\n')
    result = run_cli("convert-all", "--manifest", tmp_path / "myriad-blob.toml", "--output-dir", tmp_path / "out")
    assert result.returncode == 16
    assert result.stderr.startswith("myriad-blob: manifest failed: ") and "nshaves" in result.stderr
    assert ":4:" in result.stderr and "Traceback" not in result.stderr


def test_convert_all_then_a_cached_rerun_then_one_changed_option(repo):
    first = run_cli("convert-all", cwd=repo)
    assert first.returncode == 0, first.stderr
    names = ["torch-6-shaves", "torch-4-shaves", "onnx-default"]
    summary = json.loads((repo / "blobs" / "batch-report.json").read_text())
    assert [v["id"] for v in summary["variants"]] == ["torch/6-shaves", "torch/4-shaves", "onnx/default"]
    assert summary["succeeded"] == 3 and summary["cached"] == 0
    # Each variant's verdict, as its own report has it (the batch's is the worst of them).
    for variant, name in zip(summary["variants"], names):
        own = json.loads((repo / "blobs" / f"{name}.blob.report.json").read_text())["verdict"]
        assert variant["verdict"] == own and own["result"] in ("passed", "warnings")
    for name in names:
        assert dai.OpenVINO.Blob(str(repo / "blobs" / f"{name}.blob")).numShaves in (4, 6)
    four = json.loads((repo / "blobs" / "torch-4-shaves.blob.report.json").read_text())
    six = json.loads((repo / "blobs" / "torch-6-shaves.blob.report.json").read_text())
    # The two torch variants differ only in compile settings: one of them reused the other's IR.
    assert four["stages"][2]["reused"] != six["stages"][2]["reused"]
    digests = {n: hashlib.sha256((repo / "blobs" / f"{n}.blob").read_bytes()).hexdigest() for n in names}

    second = run_cli("convert-all", cwd=repo)
    assert second.returncode == 0, second.stderr
    assert json.loads((repo / "blobs" / "batch-report.json").read_text())["cached"] == 3
    assert second.stdout.count("(cached)") == 3
    assert {n: hashlib.sha256((repo / "blobs" / f"{n}.blob").read_bytes()).hexdigest() for n in names} == digests
    cached = json.loads((repo / "blobs" / "torch-4-shaves.blob.report.json").read_text())
    assert (
        cached["cache"]["hit"] is True
        and "from the cache" in (repo / "blobs" / "torch-4-shaves.blob.report.md").read_text()
    )

    manifest = (repo / "myriad-blob.toml").read_text().replace("nshaves = 4", "nshaves = 3")
    (repo / "myriad-blob.toml").write_text(manifest)
    third = run_cli("convert-all", cwd=repo)
    assert third.returncode == 0, third.stderr
    variants = {v["id"]: v for v in json.loads((repo / "blobs" / "batch-report.json").read_text())["variants"]}
    assert not variants["torch/4-shaves"]["cached"] and variants["torch/6-shaves"]["cached"]
    assert dai.OpenVINO.Blob(str(repo / "blobs" / "torch-4-shaves.blob")).numShaves == 3


def test_the_cache_serves_single_conversions_too(model_files, tmp_path):
    args = ["convert", "--input", model_files["onnx"], "--output", tmp_path / "a.blob"]
    assert run_cli(*args).returncode == 0
    again = run_cli(*args)
    assert again.returncode == 0 and "from the cache" in again.stdout
    changed = run_cli(*args, "--nshaves", "5")
    assert changed.returncode == 0 and "from the cache" not in changed.stdout
    assert run_cli(*args, "--no-cache").stdout.count("from the cache") == 0


def test_one_failing_variant_leaves_the_others(repo):
    manifest = (repo / "myriad-blob.toml").read_text() + textwrap.dedent("""\
          [[models.variants]]
          name = "wrong-shape"
          input-shape = "[1, 1, 64, 80]"
        """)
    (repo / "myriad-blob.toml").write_text(manifest)
    result = run_cli("convert-all", "--no-cache", cwd=repo)
    assert result.returncode == 17
    assert "FAILED  onnx/wrong-shape: ir:" in result.stderr
    summary = json.loads((repo / "blobs" / "batch-report.json").read_text())
    # Listing a variant replaces the model's implicit "default" one.
    assert summary["succeeded"] == 2 and summary["failed"] == 1
    status = {v["id"]: v["status"] for v in summary["variants"]}
    assert status == {"torch/6-shaves": "succeeded", "torch/4-shaves": "succeeded", "onnx/wrong-shape": "failed"}
    assert not (repo / "blobs" / "onnx-wrong-shape.blob").exists()
    assert json.loads((repo / "blobs" / "onnx-wrong-shape.blob.report.json").read_text())["error"]["stage"] == "ir"
    assert "1 failed" in (repo / "blobs" / "batch-report.md").read_text()


def test_matrix_is_valid_for_fromjson_and_drives_only(repo):
    result = run_cli("matrix", cwd=repo)
    assert result.returncode == 0
    assert result.stdout.count("\n") == 1  # one line, for $GITHUB_OUTPUT
    matrix = json.loads(result.stdout)
    assert matrix == {
        "include": [
            {"model": "torch", "variant": "6-shaves", "id": "torch/6-shaves"},
            {"model": "torch", "variant": "4-shaves", "id": "torch/4-shaves"},
            {"model": "onnx", "variant": "default", "id": "onnx/default"},
        ]
    }
    one = run_cli("convert-all", "--only", matrix["include"][1]["id"], cwd=repo)
    assert one.returncode == 0, one.stderr
    assert sorted(p.name for p in (repo / "blobs").glob("*.blob")) == ["torch-4-shaves.blob"]
    unknown = run_cli("convert-all", "--only", "torch/8-shaves", cwd=repo)
    assert unknown.returncode == 16 and "'torch/8-shaves' is not in the manifest" in unknown.stderr


def test_superblob_matches_separately_compiled_blobs(model_files, tmp_path):
    result = run_cli("convert", "--input", model_files["onnx"], "--output", tmp_path / "m.blob", "--superblob")
    assert result.returncode == 0, result.stderr
    superblob = dai.OpenVINO.SuperBlob(str(tmp_path / "m.superblob"))
    for shaves in (1, 4, 6, 13):
        single = tmp_path / f"s{shaves}.blob"
        assert (
            run_cli(
                "convert",
                "--input",
                model_files["onnx"],
                "--output",
                single,
                "--nshaves",
                str(shaves),
                "--nslices",
                str(shaves),
            ).returncode
            == 0
        )
        unpacked = superblob.getBlobWithNumShaves(shaves)
        assert unpacked.numShaves == shaves and unpacked.numSlices == shaves
        assert bytes(unpacked.data) == single.read_bytes()
    report = json.loads((tmp_path / "m.blob.report.json").read_text())
    assert report["superblob"]["size"] < sum(report["superblob"]["blob_sizes"].values()) / 4


def test_a_cache_hit_restores_the_superblob_and_nn_archive_too(model_files, tmp_path):
    args = ["convert", "--input", model_files["onnx"], "--superblob", "--nn-archive"]
    assert run_cli(*args, "--output", tmp_path / "a" / "m.blob").returncode == 0
    hit = run_cli(*args, "--output", tmp_path / "b" / "m.blob")
    assert hit.returncode == 0 and "from the cache" in hit.stdout
    assert (tmp_path / "b" / "m.superblob").read_bytes() == (tmp_path / "a" / "m.superblob").read_bytes()
    assert (tmp_path / "b" / "m.tar.xz").exists()
    report = json.loads((tmp_path / "b" / "m.blob.report.json").read_text())
    assert report["superblob"]["path"] == str(tmp_path / "b" / "m.superblob")
    assert report["nn_archive"]["path"] == str(tmp_path / "b" / "m.tar.xz")
