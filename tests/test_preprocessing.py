"""The one "do --mean/--scale/--reverse-input-channels fit this input" check (preprocessing.py), as
parse_options, the pipeline and the IR stage ask it; the CLI's messages are in test_bad_values.py."""

import pytest

from myriad_blob.options import parse_options
from myriad_blob.preprocessing import PreprocessingMisfit, fit_preprocessing

pytestmark = pytest.mark.unit

RGB = (1, 3, 64, 80)


def test_values_are_bound_to_input_names():
    fitted = fit_preprocessing({"a": (1.0, 2.0, 3.0)}, {"b": (4.0,)}, True, {"a": RGB, "b": (1, 1, 8, 8)})
    assert fitted == {"reverse_input_channels": True, "mean": {"a": [1.0, 2.0, 3.0]}, "scale": {"b": [4.0]}}
    with pytest.raises(PreprocessingMisfit, match="the model has inputs a, b: name the one --mean is for") as misfit:
        fit_preprocessing({None: (1.0, 2.0, 3.0)}, {}, False, {"a": RGB, "b": (1, 1, 8, 8)})
    assert misfit.value.naming
    assert fit_preprocessing({None: (1.0, 2.0, 3.0)}, {}, False, {"a": RGB})["mean"] == {"a": [1.0, 2.0, 3.0]}


def test_a_name_the_model_lacks_is_a_naming_misfit_raised_after_the_shape_checks():
    with pytest.raises(PreprocessingMisfit, match="--mean gives 2 value") as misfit:
        fit_preprocessing({"image": (1.0,), "a": (1.0, 2.0)}, {}, False, {"a": RGB})
    assert not misfit.value.naming
    with pytest.raises(
        PreprocessingMisfit, match="--scale names input 'image', but the model's inputs are a"
    ) as misfit:
        fit_preprocessing({}, {"image": (1.0,)}, False, {"a": RGB})
    assert misfit.value.naming


@pytest.mark.parametrize(
    "mean, reverse, inputs, message",
    [
        (
            {"x": (1.0, 2.0, 3.0)},
            False,
            {"x": (1, 3, 64)},
            "--mean gives 3 per-channel values, but input 'x' is [1, 3, 64], not NCHW: give one value",
        ),
        (
            {"x": (1.0, 2.0)},
            False,
            {"x": RGB},
            "--mean gives 2 value(s) for input 'x', which has 3 channel(s) (shape [1, 3, 64, 80])",
        ),
        (
            {},
            True,
            {"x": (1, 16, 16, 3)},
            "--reverse-input-channels swaps the 3 channels of an NCHW input (dimension 1), but the model's inputs are x [1, 16, 16, 3]",
        ),
    ],
)
def test_against_the_model_inputs(mean, reverse, inputs, message):
    with pytest.raises(PreprocessingMisfit) as misfit:
        fit_preprocessing(mean, {}, reverse, inputs)
    assert message in misfit.value.message and not misfit.value.naming


def test_with_the_input_shape_values_alone_only_the_count_is_judged():
    """Before the model is read its input names are unknown: an unnamed --input-shape is 'input'
    in the message, and rank and reversal wait for the model."""
    with pytest.raises(ValueError, match=r"--mean gives 2 value\(s\) for input 'input', which has 3 channel\(s\)"):
        parse_options(input="m.onnx", input_shapes=["[1, 3, 8, 8]"], means=["[1, 2]"])
    with pytest.raises(ValueError, match=r"--scale gives 4 value\(s\) for input 'rgb'"):
        parse_options(input="m.onnx", input_shapes=["rgb=[1, 3, 8, 8]"], scales=["[1, 2, 3, 4]"])
    parse_options(input="m.onnx", input_shapes=["[1, 3, 8]"], means=["[1, 2, 3]"], reverse_input_channels=True)
    parse_options(input="m.onnx", input_shapes=["a=[1, 3, 8, 8]"], means=["b=[1, 2]"])  # b: judged with the model
