"""myriad-blob.toml: the models of a repository, their shared options, and variants of each.

    [defaults]                      # optional; every model and variant starts from these
    nshaves = 6

    [[models]]
    name = "detector"               # required: letters, digits, . _ -
    model = "models/detector.pt"    # required: relative to the manifest
    input-shape = "[1, 3, 240, 320]"

    [[models.variants]]             # optional; without any, the model has one variant, "default"
    name = "4-shaves"               # required
    nshaves = 4

Option fields are the CLI flags without their dashes (the action's input names). Every invalid
field is reported with its name and line: `myriad-blob.toml:12: models[0].variants[1].nshaves ...`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
import tomllib
from pathlib import Path

from .options import BY_NAME, MANIFEST, OPTIONS, RENAMED, ConversionOptions, parse_options

# What a manifest value of each kind may be: (accepted Python types, what to call it in an error).
_KINDS = {
    "flag": ((bool,), "true or false"),
    "switch": ((bool,), "true or false"),
    "int": ((int,), "a whole number"),
    "float": ((int, float), "a number"),
    "text": ((str,), "a string"),
    "choice": ((str,), "a string"),
    "path": ((str,), "a path"),
}


def _field(option) -> tuple:
    types, expected = ((str, list), "a string or a list of them") if option.multiple else _KINDS[option.kind]
    return types, option.manifest_expected or expected


# field -> (accepted Python types, what to call it in an error), from the table of options.
OPTION_FIELDS = {option.name: _field(option) for option in OPTIONS if option.on(MANIFEST)}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ManifestError(ValueError):
    """One invalid field: where it is and what it should be."""


@dataclasses.dataclass(frozen=True)
class Variant:
    model: str
    name: str
    options: ConversionOptions

    @property
    def id(self) -> str:
        return f"{self.model}/{self.name}"


class _Lines:
    """Which line each field sits on (tomllib does not say): tracks [[models]] and
    [[models.variants]] headers and `key =` lines."""

    def __init__(self, text: str):
        self.lines: dict = {}
        section: tuple = ()
        models = variants = -1
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if line == "[defaults]":
                section = ("defaults",)
            elif line == "[[models]]":
                models, variants = models + 1, -1
                section = ("models", models)
            elif line == "[[models.variants]]":
                variants += 1
                section = ("models", models, "variants", variants)
            elif line.startswith("["):
                section = (line.strip("[]"),)
            else:
                match = re.match(r'([A-Za-z0-9_-]+|"[^"]*")\s*=', line)
                if match:
                    self.lines[section + (match.group(1).strip('"'),)] = number
                    continue
            self.lines.setdefault(section, number)

    def of(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def _where(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def load_manifest(path: Path) -> list[Variant]:
    if not path.exists():
        raise ManifestError(f"{path} does not exist: write a myriad-blob.toml (see the README) or pass --manifest")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"{path}: not valid TOML: {error}") from None
    lines = _Lines(text)

    def fail(where: tuple, message: str) -> ManifestError:
        line = lines.of(where)
        return ManifestError(f"{path}{f':{line}' if line else ''}: {_where(where)} {message}")

    unknown = set(data) - {"defaults", "models"}
    if unknown:
        key = sorted(unknown)[0]
        raise fail((key,), "is not a manifest field (expected [defaults] and [[models]])")
    defaults = _check_options(data.get("defaults", {}), ("defaults",), fail)
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise fail(("models",), "is missing: add at least one [[models]] table with name and model")
    variants, seen = [], set()
    for index, model in enumerate(models):
        where = ("models", index)
        for required in ("name", "model"):
            if not isinstance(model.get(required), str) or not model[required]:
                raise fail(where + (required,), "is required (a string) in every [[models]] table")
        if not NAME.fullmatch(model["name"]):
            raise fail(where + ("name",), f"{model['name']!r} may hold only letters, digits, '.', '_' and '-'")
        shared = {
            **defaults,
            **_check_options({k: v for k, v in model.items() if k not in ("name", "model", "variants")}, where, fail),
        }
        model_path = path.parent / model["model"]
        for vindex, variant in enumerate(model.get("variants") or [{"name": "default"}]):
            vwhere = where + ("variants", vindex)
            name = variant.get("name")
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise fail(vwhere + ("name",), "is required: letters, digits, '.', '_' and '-'")
            if (model["name"], name) in seen:
                raise fail(vwhere + ("name",), f"{name!r} is used twice for model {model['name']!r}")
            seen.add((model["name"], name))
            fields = {**shared, **_check_options({k: v for k, v in variant.items() if k != "name"}, vwhere, fail)}
            try:
                options = _to_options(model_path, fields, path.parent)
            except ValueError as error:
                key = next((k for k in fields if f"--{k}" in str(error)), None)
                # Point at the most specific table that sets the field: the variant, the model, or [defaults].
                origin = next(
                    (
                        w
                        for w, table in ((vwhere, variant), (where, model), (("defaults",), data.get("defaults", {})))
                        if key in table
                    ),
                    vwhere,
                )
                raise fail(origin + ((key,) if key else ()), f"is invalid: {error!s}") from None
            variants.append(Variant(model["name"], name, options))
    return variants


def _check_options(table: dict, where: tuple, fail) -> dict:
    table = dict(table)
    for old in [key for key in table if key in RENAMED and RENAMED[key].on(MANIFEST)]:
        option = RENAMED[old]
        if option.name in table:
            raise fail(where + (old,), f"and {option.name} are one field (renamed): give {option.name} only")
        print(f"myriad-blob: warning: {_where(where + (old,))}: {option.deprecation(old, MANIFEST)}", file=sys.stderr)
        table[option.name] = table.pop(old)
    for key, value in table.items():
        if key not in OPTION_FIELDS:
            close = difflib.get_close_matches(key, OPTION_FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise fail(where + (key,), f"is not an option{hint}")
        types, expected = OPTION_FIELDS[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise fail(where + (key,), f"must be {expected}, got {value!r}")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise fail(where + (key,), f"must be {expected}: every item a string, got {value!r}")
    return dict(table)


def _to_options(model_path: Path, fields: dict, root: Path) -> ConversionOptions:
    values = {}
    for key, value in fields.items():
        option = BY_NAME[key]
        if option.multiple:
            value = [value] if isinstance(value, str) else list(value)
        elif option.kind == "float":
            value = float(value)
        elif option.kind == "path":
            value = root / value  # relative to the manifest
        values[option.key] = value
    options = parse_options(input=model_path, output=Path("unused.blob"), **values)
    # The samples (a list: 'name=path' items) are relative to the manifest too.
    return dataclasses.replace(
        options,
        sample=root / options.sample if options.sample else None,
        sample_by_name={name: root / path for name, path in options.sample_by_name.items()},
    )
