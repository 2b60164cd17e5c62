"""--compile-config: the 2021.4 Myriad plugin's own settings, one table.

Every key the plugin of openvino==2021.4.2 accepts at compile time (its LoadNetwork config; a key
it lacks fails there with "KEY key is not supported for VPU") is one row of MYRIAD_KEYS, with what
it is to a blob:
  blob    changes how the compiler builds the blob: accepted (its value checked here, as the plugin
          checks it: YES/NO switches are case-sensitive there, so they are upper-cased here)
  option  one of our own options sets it (--nshaves, ...): use that
  device  read only where a blob runs (a device connection, a watchdog, profiling): it is not in a
          blob, so setting it at compile time would do nothing
  debug   the plugin's debugging aids (dumps and logs written to files, layers skipped): not for a
          blob one ships
tests/test_layouts_and_config.py compiles with every row's example and checks that the plugin knows
each key (and refuses one it does not), so this table cannot drift from the plugin. The keys were
read from libmyriadPlugin.so and each tried on a compile (2026-11-30).
"""

from __future__ import annotations

import dataclasses
import difflib

SWITCH = ("YES", "NO")
INT_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class ConfigKey:
    name: str
    role: str  # blob, option, device, debug (see the module's docstring)
    what: str  # what it does, briefly
    values: tuple[str, ...] | str = SWITCH  # the values the plugin takes, or "int", "layers", "text"
    example: str = "NO"  # a value the plugin accepts on the tests' model (tests/test_layouts_and_config.py)
    use: str = ""  # role option: the flag to use instead; a renamed key: its new name


MYRIAD_KEYS: tuple[ConfigKey, ...] = (
    # What the compiler does: accepted.
    ConfigKey(
        "MYRIAD_ENABLE_HW_ACCELERATION",
        "blob",
        "run convolutions, poolings and fully connected layers on the "
        "neural compute engines (NO: everything on the SHAVEs, slower)",
        example="YES",
    ),
    ConfigKey(
        "MYRIAD_TILING_CMX_LIMIT_KB",
        "blob",
        "CMX memory, in KB, the hardware stages' tiling may use (less leaves CMX to networks running beside this one)",
        "int",
        "512",
    ),
    ConfigKey("MYRIAD_HW_EXTRA_SPLIT", "blob", "try more tilings of the hardware stages"),
    ConfigKey("MYRIAD_HW_POOL_CONV_MERGE", "blob", "merge a pooling into the convolution before it on the hardware"),
    ConfigKey(
        "MYRIAD_HW_BLACK_LIST",
        "blob",
        "IR layers (comma-separated names) kept off the neural compute engines",
        "layers",
        "none",
    ),
    ConfigKey(
        "MYRIAD_HW_WHITE_LIST",
        "blob",
        "the only IR layers (comma-separated names) put on the neural compute engines",
        "layers",
        "none",
    ),
    ConfigKey("MYRIAD_HW_INJECT_STAGES", "blob", "run SHAVE stages in parallel with hardware stages"),
    ConfigKey("MYRIAD_HW_DILATION", "blob", "dilated convolutions on the neural compute engines"),
    ConfigKey("MYRIAD_PACK_DATA_IN_CMX", "blob", "keep intermediate data in CMX where it fits"),
    ConfigKey("MYRIAD_COPY_OPTIMIZATION", "blob", "remove the copy stages the compiler can avoid"),
    ConfigKey("MYRIAD_ENABLE_WEIGHTS_ANALYSIS", "blob", "rescale weights to use FP16's range on hardware stages"),
    ConfigKey("MYRIAD_ENABLE_PERMUTE_MERGING", "blob", "merge consecutive permutes"),
    ConfigKey("MYRIAD_ENABLE_EARLY_ELTWISE_RELU_FUSION", "blob", "fuse a ReLU into the eltwise before it"),
    ConfigKey("MYRIAD_ENABLE_REPL_WITH_SCRELU", "blob", "replace a Scale and ReLU pair with one SCReLU stage"),
    ConfigKey("MYRIAD_ENABLE_REPLACE_WITH_REDUCE_MEAN", "blob", "replace a global average pooling with ReduceMean"),
    ConfigKey("MYRIAD_ENABLE_TENSOR_ITERATOR_UNROLLING", "blob", "unroll TensorIterator loops"),
    ConfigKey("MYRIAD_FORCE_PURE_TENSOR_ITERATOR", "blob", "keep TensorIterator loops as loops"),
    ConfigKey("MYRIAD_DISABLE_REORDER", "blob", "no layout reorders between stages"),
    ConfigKey("MYRIAD_DISABLE_CONVERT_STAGES", "blob", "no precision conversion stages (the inputs must then be FP16)"),
    ConfigKey(
        "MYRIAD_DETECT_NETWORK_BATCH",
        "blob",
        "YES compiles a batched IR as batch 1 for the plugin's runtime to run per item (depthai does not): "
        "refused with a batch above 1, which is compiled with NO, the whole batch in the blob",
        example="NO",
    ),
    ConfigKey("MYRIAD_ENABLE_CUSTOM_RESHAPE_PARAM", "blob", "honour a Reshape's own dims over its shape input"),
    ConfigKey(
        "MYRIAD_CHECK_PREPROCESSING_INSIDE_MODEL",
        "blob",
        "check the preprocessing kept inside the model",
        example="YES",
    ),
    ConfigKey(
        "MYRIAD_FORCE_DEPRECATED_CNN_CONVERSION", "blob", "convert the IR through the deprecated CNN network path"
    ),
    # Our own options set these.
    ConfigKey("MYRIAD_NUMBER_OF_SHAVES", "option", "SHAVE cores", "int", "6", use="--nshaves"),
    ConfigKey("MYRIAD_NUMBER_OF_CMX_SLICES", "option", "CMX slices", "int", "6", use="--nslices"),
    ConfigKey("MYRIAD_THROUGHPUT_STREAMS", "option", "throughput streams", "int", "1", use="--nstreams"),
    ConfigKey(
        "VPU_MYRIAD_PLATFORM",
        "option",
        "the VPU the blob is for",
        ("VPU_MYRIAD_2450", "VPU_MYRIAD_2480"),
        "VPU_MYRIAD_2480",
        use="nothing: every blob is compiled for the Myriad X (VPU_MYRIAD_2480)",
    ),
    ConfigKey(
        "VPU_HW_STAGES_OPTIMIZATION",
        "option",
        "the old name of MYRIAD_ENABLE_HW_ACCELERATION",
        use="MYRIAD_ENABLE_HW_ACCELERATION",
    ),
    ConfigKey(
        "VPU_DETECT_NETWORK_BATCH",
        "option",
        "the old name of MYRIAD_DETECT_NETWORK_BATCH",
        use="MYRIAD_DETECT_NETWORK_BATCH",
    ),
    # Read where the blob runs, not part of it.
    ConfigKey("MYRIAD_ENABLE_FORCE_RESET", "device", "reset the device on start"),
    ConfigKey("MYRIAD_DEVICE_CONNECT_TIMEOUT", "device", "seconds to wait for a device", "int", "1"),
    ConfigKey("MYRIAD_WATCHDOG", "device", "the device's watchdog"),
    ConfigKey(
        "MYRIAD_POWER_MANAGEMENT",
        "device",
        "the device's power policy",
        (
            "MYRIAD_POWER_FULL",
            "MYRIAD_POWER_INFER",
            "MYRIAD_POWER_STAGE",
            "MYRIAD_POWER_STAGE_SHAVES",
            "MYRIAD_POWER_STAGE_NCES",
        ),
        "MYRIAD_POWER_FULL",
    ),
    ConfigKey(
        "MYRIAD_DDR_TYPE",
        "device",
        "the device's DDR memory",
        (
            "MYRIAD_DDR_AUTO",
            "MYRIAD_DDR_MICRON_2GB",
            "MYRIAD_DDR_SAMSUNG_2GB",
            "MYRIAD_DDR_HYNIX_2GB",
            "MYRIAD_DDR_MICRON_1GB",
        ),
        "MYRIAD_DDR_AUTO",
    ),
    ConfigKey("MYRIAD_PROTOCOL", "device", "USB or PCIe", ("MYRIAD_USB", "MYRIAD_PCIE"), "MYRIAD_USB"),
    ConfigKey("MYRIAD_ENABLE_RECEIVING_TENSOR_TIME", "device", "time the output transfers"),
    ConfigKey(
        "MYRIAD_PERF_REPORT_MODE",
        "device",
        "per-layer or per-stage profiling",
        ("MYRIAD_PER_LAYER", "MYRIAD_PER_STAGE"),
        "MYRIAD_PER_LAYER",
    ),
    ConfigKey("PERF_COUNT", "device", "profiling counters"),
    ConfigKey("EXCLUSIVE_ASYNC_REQUESTS", "device", "one request at a time across networks"),
    ConfigKey("VPU_MYRIAD_FORCE_RESET", "device", "the old name of MYRIAD_ENABLE_FORCE_RESET"),
    ConfigKey("VPU_PRINT_RECEIVE_TENSOR_TIME", "device", "the old name of MYRIAD_ENABLE_RECEIVING_TENSOR_TIME"),
    # The plugin's debugging aids.
    ConfigKey("MYRIAD_NONE_LAYERS", "debug", "layers replaced by nothing", "layers", "none"),
    ConfigKey("MYRIAD_IGNORE_UNKNOWN_LAYERS", "debug", "compile past layers the plugin does not know"),
    ConfigKey("MYRIAD_DUMP_ALL_PASSES", "debug", "dump the graph after every compiler pass"),
    ConfigKey("MYRIAD_DUMP_INTERNAL_GRAPH_FILE_NAME", "debug", "a file to dump the internal graph to", "text", ""),
    ConfigKey("MYRIAD_DUMP_INTERNAL_GRAPH_DIRECTORY", "debug", "a directory to dump the internal graph to", "text", ""),
    ConfigKey("MYRIAD_COMPILER_LOG_FILE_PATH", "debug", "a file for the compiler's log", "text", ""),
    ConfigKey("MYRIAD_PLUGIN_LOG_FILE_PATH", "debug", "a file for the plugin's log", "text", ""),
    ConfigKey("MYRIAD_TENSOR_STRIDES", "debug", "strides forced on named tensors (the plugin's tests)", "text", "x"),
    ConfigKey("MYRIAD_SCALES_PATTERN", "debug", "scales for layers matching a pattern", "text", ""),
    ConfigKey("MYRIAD_CUSTOM_LAYERS", "debug", "an XML of custom OpenCL kernels", "text", ""),
    ConfigKey("VPU_CUSTOM_LAYERS", "debug", "the old name of MYRIAD_CUSTOM_LAYERS", "text", ""),
    ConfigKey(
        "LOG_LEVEL",
        "debug",
        "the plugin's log level",
        ("LOG_NONE", "LOG_ERROR", "LOG_WARNING", "LOG_INFO", "LOG_DEBUG", "LOG_TRACE"),
        "LOG_NONE",
    ),
    ConfigKey(
        "VPU_LOG_LEVEL",
        "debug",
        "the old name of LOG_LEVEL",
        ("LOG_NONE", "LOG_ERROR", "LOG_WARNING", "LOG_INFO", "LOG_DEBUG", "LOG_TRACE"),
        "LOG_NONE",
    ),
)
BY_KEY = {key.name: key for key in MYRIAD_KEYS}

_REFUSED = {
    "device": "is read where a blob runs (depthai, the device), not compiled into the blob: set it there",
    "debug": "is one of the plugin's debugging aids (files written, layers skipped), not for a blob to ship",
}


def parse_compile_config(values) -> dict[str, str]:
    """['KEY=VALUE', ...] -> {KEY: VALUE}, sorted by key; ValueError naming what to change: a key
    the 2021.4 plugin lacks (with the close ones), one an option of ours sets, one that is not a
    blob's, or a value the plugin would refuse."""
    items = [values] if isinstance(values, str) else list(values or ())
    config: dict[str, str] = {}
    for text in items:
        name, equals, value = str(text).strip().partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name:
            raise ValueError(f"--compile-config takes KEY=VALUE, e.g. MYRIAD_TILING_CMX_LIMIT_KB=512; got {text!r}")
        key = BY_KEY.get(name) or BY_KEY.get(name.upper())
        if key is None:
            close = close_keys(name)
            hint = (
                f"; close ones: {', '.join(close)}"
                if close
                else '; the keys it takes are in the README\'s "Compiler settings"'
            )
            raise ValueError(f"--compile-config {name}: the 2021.4 Myriad plugin has no such key{hint}")
        if key.role == "option":
            raise ValueError(f"--compile-config {key.name} ({key.what}) is set by {key.use}: use that instead")
        if key.role in _REFUSED:
            raise ValueError(f"--compile-config {key.name} ({key.what}) {_REFUSED[key.role]}")
        if key.name in config:
            raise ValueError(f"--compile-config gives {key.name} twice")
        config[key.name] = _checked_value(key, value)
    return dict(sorted(config.items()))


def close_keys(name: str) -> list[str]:
    """The table's keys a mistyped one may mean, compared without their MYRIAD_/VPU_ prefixes
    (a prefix shared by every key would make every key look close)."""

    def bare(key: str) -> str:
        return key.upper().removeprefix("MYRIAD_").removeprefix("VPU_")

    by_bare, given = {bare(key): key for key in BY_KEY}, bare(name)
    close = [by_bare[match] for match in difflib.get_close_matches(given, by_bare, n=3, cutoff=0.75)]
    part_of = [key for stem, key in by_bare.items() if len(given) >= 4 and given in stem and key not in close]
    return (close + part_of)[:3]


def _checked_value(key: ConfigKey, value: str) -> str:
    if key.values == "int":  # the plugin reads it with std::stoi: an int
        if not value.isdigit() or int(value) > INT_MAX:
            raise ValueError(
                f"--compile-config {key.name} takes a whole number from 0 to {INT_MAX} ({key.what}), got {value!r}"
            )
        return str(int(value))
    if key.values == "layers":
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError(f"--compile-config {key.name} takes comma-separated IR layer names, got {value!r}")
        return ",".join(names)
    if isinstance(key.values, tuple):
        match = next((choice for choice in key.values if choice == value.upper()), None)
        if match is None:
            raise ValueError(f"--compile-config {key.name} takes {' or '.join(key.values)}, got {value!r}")
        return match
    return value


def config_table_rows() -> list[tuple[str, str, str]]:
    """The README's "Compiler settings" rows: (key, values, what it does), the accepted keys."""
    shown = {"int": "a whole number", "layers": "layer names, comma-separated", "text": "text"}
    return [
        (key.name, shown.get(key.values, " or ".join(key.values) if isinstance(key.values, tuple) else ""), key.what)
        for key in MYRIAD_KEYS
        if key.role == "blob"
    ]
