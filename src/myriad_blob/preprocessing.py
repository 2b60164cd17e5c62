"""Do --mean, --scale and --reverse-input-channels fit the model's inputs: the one check, asked as
more becomes known.

1. parse_options, with the --input-shape values alone (model=False): a value's count against the
   channels of the input it names (an unnamed value: the only --input-shape's).
2. The pipeline, once the ONNX model is known (model=True), before any toolchain runs: the same
   against every model input (its asked shape, else its own), plus NCHW rank and channel reversal.
3. The IR stage (model=True), which bakes the values in by input name: an unnamed value with
   several inputs, or a name the model lacks, is the user's to fix (a naming misfit).
"""

from __future__ import annotations


class PreprocessingMisfit(ValueError):
    """Why the values do not fit; naming: they name no input of the model (or leave out which one)."""

    def __init__(self, message: str, naming: bool = False):
        super().__init__(message)
        self.message, self.naming = message, naming


def input_name(name: str | None, names: list[str], flag: str) -> str:
    """The model input a flag's value is for: its name, or the only input's when unnamed."""
    if name is None:
        if len(names) != 1:
            raise PreprocessingMisfit(
                f"the model has inputs {', '.join(names)}: name the one {flag} is for, e.g. {flag} '{names[0]}=[...]'",
                naming=True,
            )
        return names[0]
    if name not in names:
        raise PreprocessingMisfit(
            f"{flag} names input {name!r}, but the model's inputs are {', '.join(names)}", naming=True
        )
    return name


def per_channel_mismatch(flag: str, name: str, values: tuple, shape: tuple) -> str | None:
    """Why --mean/--scale values do not fit an input of this shape (None when they do): one value
    per channel of an NCHW input, or one value for all."""
    if len(shape) != 4 or len(values) == 1 or not isinstance(shape[1], int):
        return None
    if len(values) != shape[1]:
        return (
            f"{flag} gives {len(values)} value(s) for input {name!r}, which has {shape[1]} channel(s) "
            f"(shape {list(shape)}): give one value per channel"
        )
    return None


def fit_preprocessing(
    mean: dict, scale: dict, reverse_input_channels: bool, inputs: dict, *, model: bool = True
) -> dict:
    """The values by input name, {"reverse_input_channels", "mean": {name: [...]}, "scale": {...}},
    or PreprocessingMisfit. inputs: input name -> shape, in the model's order; with model=False the
    --input-shape values (a None name: the one unnamed value), whose count alone is judged, as
    reversal and rank are judged against the model's inputs, which the messages list. A naming
    misfit is raised only after every value whose input is known was judged."""
    if model and reverse_input_channels and not any(len(s) == 4 and s[1] == 3 for s in inputs.values()):
        listed = ", ".join(f"{name} {list(shape)}" for name, shape in inputs.items())
        raise PreprocessingMisfit(
            f"--reverse-input-channels swaps the 3 channels of an NCHW input "
            f"(dimension 1), but the model's inputs are {listed}: drop the flag, or "
            "reorder the channels on the host (or in the model)"
        )
    tables = (("--mean", mean), ("--scale", scale))
    for flag, table in tables:
        for name, values in table.items():
            key = _known_input(name, inputs, model)
            if key is _UNKNOWN:
                continue  # a name the model lacks: the naming misfit below (model=True), or not known yet
            shape = inputs[key]
            shown = key if model else name or (key or "input")
            if model and len(values) > 1 and len(shape) != 4:
                raise PreprocessingMisfit(
                    f"{flag} gives {len(values)} per-channel values, but input "
                    f"{key!r} is {list(shape)}, not NCHW: give one value"
                )
            problem = per_channel_mismatch(flag, shown, values, shape)
            if problem:
                raise PreprocessingMisfit(problem)
    fitted: dict = {"reverse_input_channels": reverse_input_channels, "mean": {}, "scale": {}}
    names = list(inputs)
    for flag, table in tables:
        fitted[flag.strip("-")] = {
            (input_name(name, names, flag) if model else name): list(values) for name, values in table.items()
        }
    return fitted


_UNKNOWN = object()


def _known_input(name: str | None, inputs: dict, model: bool):
    """The key in inputs a value's name means, or _UNKNOWN."""
    if name in inputs and (name is not None or not model):
        return name
    if name is None and len(inputs) == 1:
        return next(iter(inputs))
    return _UNKNOWN
