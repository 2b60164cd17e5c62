"""The action's inputs, read once from the INPUT_* variables GitHub sets (hyphens kept, upper-cased)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import github_action_utils as gha

from myriad_blob.options import ACTION, OPTIONS, ConversionOptions, parse_options


class InputError(ValueError):
    """An input a user must fix; the message names the input."""


@dataclasses.dataclass(frozen=True)
class ActionInputs:
    options: ConversionOptions | None  # None with a manifest
    model: str  # the model or manifest path as the user wrote it (annotations, the comment marker)
    manifest: Path | None
    output_dir: str  # with a manifest: where the blobs go
    github_token: str
    comment_on_pr: bool
    upload_to_release: bool
    release_tag: str
    cache_dir: Path | None  # None: no cache for model:, the default cache for manifest:
    comment_from: Path | None = None  # comment mode: a pull_request run's report JSON (no model)


class OutsideWorkspace(InputError):
    """A path (an input's, or a manifest's) that leads out of the workspace."""


def inside_workspace(path: Path | str, workspace: Path, what: str) -> Path:
    """`path` if it stays in the workspace once `..` and symlinks are resolved, else OutsideWorkspace.
    A pull request controls the manifest and the files it names: reading /etc/passwd or
    ../../runner files as a "model" would put their digest and size in a comment, and writing
    through a committed symlink would write outside the checkout."""
    root = workspace.resolve()
    resolved = (root / path).resolve()  # an absolute `path` replaces root here
    if resolved != root and root not in resolved.parents:
        raise OutsideWorkspace(
            f"{what} {str(path)!r} is outside the workspace {str(workspace)!r} "
            f"(it leads to {str(resolved)!r}): give a path inside the repository"
        )
    return Path(path)


def _text(name: str, default: str = "") -> str:
    value = gha.get_user_input(name, trim_whitespace=True)
    return value if value else default


def _boolean(name: str, default: bool) -> bool:
    if not _text(name):
        return default
    try:
        return bool(gha.get_boolean_input(name))
    except ValueError:
        raise InputError(
            f"input {name} must be true or false (YAML 1.2: true, True, TRUE, false, False, FALSE), got {_text(name)!r}"
        ) from None


def _integer(name: str, default: int | None) -> int | None:
    text = _text(name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"input {name} must be a whole number, got {text!r}") from None


def _number(name: str, default: float | None) -> float | None:
    text = _text(name)
    try:
        return float(text) if text else default
    except ValueError:
        raise InputError(f"input {name} must be a number, got {text!r}") from None


def _lines(name: str) -> list[str]:
    """Several values, one per line (e.g. one --input-shape per model input)."""
    return gha.get_multiline_input(name)


def _conversion_inputs() -> dict:
    """parse_options' keywords from the inputs of the table of options (the conversion's own, but
    model and output); an empty input is left out, for parse_options' default."""
    values = {}
    for option in OPTIONS:
        if not option.on(ACTION) or option.key in ("", "output"):
            continue
        name = _input_name(option)
        if option.multiple:
            value = _lines(name) if option.action_lines is not False else _text(name)
        elif option.kind in ("flag", "switch"):
            value = _boolean(name, option.default)
        elif option.kind == "int":
            value = _integer(name, None)
        elif option.kind == "float":
            value = _number(name, None)
        else:
            value = _text(name) or None
        if value is not None:
            values[option.key] = value
    return values


def _input_name(option) -> str:
    """The input to read: a name the option had before a rename when the workflow sets it (it has
    no default in action.yml, so set means given; a warning says to rename it), else its name."""
    for old in option.renamed_from:
        if _text(old):
            gha.warning(option.deprecation(old, ACTION), title="myriad-blob: a renamed input")
            return old
    return option.name


def read_inputs(workspace: Path) -> ActionInputs:
    model, manifest, comment_from = _text("model"), _text("manifest"), _text("comment-from")
    if comment_from:
        if model or manifest:
            raise InputError("comment-from comments a report and converts nothing: leave out model and manifest")
        inside_workspace(comment_from, workspace, "input comment-from")
        inputs = ActionInputs(
            options=None,
            model="",
            manifest=None,
            output_dir="",
            github_token=_text("github-token"),
            comment_on_pr=True,
            upload_to_release=False,
            release_tag="",
            cache_dir=None,
            comment_from=Path(comment_from),
        )
        _forget_inputs()
        return inputs
    if bool(model) == bool(manifest):
        raise InputError(
            "give exactly one of the inputs model (a .pt/.onnx file in your repository) "
            "and manifest (a myriad-blob.toml)"
        )
    inside_workspace(model or manifest, workspace, "input model" if model else "input manifest")
    if _text("output"):
        inside_workspace(_text("output"), workspace, "input output")
    try:
        options = (
            None
            if manifest
            else parse_options(input=Path(model), output=_text("output") or None, **_conversion_inputs())
        )
    except InputError:
        raise
    except ValueError as error:
        raise InputError(str(error).replace("--", "input ")) from None
    inputs = ActionInputs(
        options=options,
        model=model or manifest,
        manifest=Path(manifest) if manifest else None,
        output_dir=_text("output") if manifest else "",
        github_token=_text("github-token"),
        comment_on_pr=_boolean("comment-on-pr", True),
        upload_to_release=_boolean("upload-to-release", True),
        release_tag=_text("release-tag"),
        cache_dir=Path(_text("cache-dir")) if _text("cache-dir") else None,
    )
    _forget_inputs()
    return inputs


def _forget_inputs() -> None:
    """Read once: nothing downstream (the toolchain's subprocesses included) sees the inputs or the token."""
    for key in [k for k in os.environ if k.startswith("INPUT_")]:
        del os.environ[key]
