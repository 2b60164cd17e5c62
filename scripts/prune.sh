#!/usr/bin/env bash
# Deletes from a finished set-up what converting never loads: the action's image runs it
# (scripts/setup.sh with MYRIAD_BLOB_PRUNE=1, as the Dockerfile sets), so every job that pulls the
# image pulls less. Never run it on a set-up you still develop or test in: the test suites,
# headers, pip and the other devices' plugins it removes are gone until you set up afresh.
# Usage: prune.sh VENV TOOLCHAIN_DIR
# The table below is the one list of what goes; each line: what to do (delete the path, or strip
# a binary of its static symbol table with `strip --strip-unneeded`), where, a glob under it, why.
#   converter  VENV's site-packages (Python 3.11: torch, onnx, onnxruntime, ...)
#   legacy     TOOLCHAIN_DIR/venv's site-packages (openvino 2021.4.2, Model Optimizer)
#   frontend   TOOLCHAIN_DIR/venv-ov2022's site-packages (openvino 2022.3.1's ONNX reader)
#   venvs      each of the three venvs' site-packages
# tests/test_image.py runs the corpus inside the pruned image: a rule that breaks a conversion path
# fails there, with the blobs compared byte for byte with the host's.
set -euo pipefail
venv=${1:?usage: prune.sh VENV TOOLCHAIN_DIR}
toolchain=${2:?usage: prune.sh VENV TOOLCHAIN_DIR}

fail() { echo "myriad-blob prune: $*" >&2; exit 1; }

# The shared toolchain other work trees use is never pruned by accident.
case "$toolchain" in
    "$HOME"/.cache/*) [ "${MYRIAD_BLOB_PRUNE_SHARED:-}" = 1 ] || fail "refusing to prune the shared toolchain $toolchain (set MYRIAD_BLOB_PRUNE_SHARED=1 if you mean it)" ;;
esac
[ -f "$toolchain/toolchain.json" ] || fail "$toolchain holds no finished toolchain (toolchain.json)"

RULES=$(cat <<'TABLE'
delete converter torch/test                                   C++ unit-test binaries
delete converter torch/bin/*Test                              C++ test executables (torch_shm_manager stays)
delete converter torch/bin/test_*                             C++ test executables and their data
delete converter torch/bin/protoc*                            the protobuf compiler (building)
delete converter torch/bin/script_module_v4.ptl               test data
delete converter torch/include                                C++ headers (building extensions)
delete converter torch/share                                  CMake files (building extensions)
delete converter torch/lib/libjitbackend_test.so              a test library
delete converter torch/lib/libtorchbind_test.so               a test library
delete converter torch/lib/libbackend_with_compiler.so        a test library
delete converter torch/lib/libaoti_custom_ops.so              a test library
delete converter onnx/backend/test/data                       onnx's backend test models
delete converter onnxruntime/transformers                     onnxruntime's model optimizer scripts (never imported)
delete converter onnxruntime/tools                            onnxruntime's command-line tools (never imported)
delete converter sympy/*/tests                                sympy's test suites
delete converter networkx/*/tests                             networkx's test suites
delete legacy    onnx/backend/test/data                       onnx's backend test models
delete legacy    open_model_zoo                               openvino-dev's model downloader (never run)
delete legacy    accuracy_checker                             openvino-dev's accuracy checker (never run)
delete legacy    compression                                  openvino-dev's post-training optimisation (never run)
delete legacy    openvino/libs/libclDNNPlugin.so              the GPU plugin
delete legacy    openvino/libs/cache.json                     the GPU plugin's kernel cache
delete legacy    openvino/libs/pcie-ma2x8x.mvcmd              Myriad firmware for PCIe devices (booting a device; compiling boots none)
delete legacy    openvino/libs/usb-ma2x8x.mvcmd               Myriad firmware for USB devices (booting a device; compiling boots none)
delete frontend  onnx/backend/test/data                       onnx's backend test models
delete frontend  openvino/libs/libopenvino_intel_gpu_plugin.so       the GPU plugin
delete frontend  openvino/libs/libopenvino_auto_plugin.so            the AUTO device (no device is compiled for here)
delete frontend  openvino/libs/libopenvino_auto_batch_plugin.so      the BATCH device
delete frontend  openvino/libs/libopenvino_hetero_plugin.so          the HETERO device
delete frontend  openvino/libs/cache.json                            the GPU plugin's kernel cache
delete frontend  openvino/libs/libopenvino_paddle_frontend.so*       the PaddlePaddle reader
delete frontend  openvino/libs/libopenvino_tensorflow_frontend.so*   the TensorFlow reader
delete frontend  openvino/libs/libopenvino_gapi_preproc.so           inference-time preprocessing (no inference here)
delete venvs     pip                                          the installer (the image installs nothing at run time)
delete venvs     pip-*.dist-info                              the installer's metadata
delete venvs     numpy/*/tests                                numpy's test suites
delete venvs     numpy/tests                                  numpy's test suites
delete venvs     */include                                    C headers (building extensions)
delete venvs     numpy/core/include                           numpy's C headers (building extensions)
strip  converter torch/lib/*.so                    the static symbol tables (.symtab/.strtab, 90 MB; the dynamic ones stay)
strip  converter torch/bin/torch_shm_manager       its static symbol table
TABLE
)

site() {  # the site-packages directory of a venv
    local dir
    dir=$(ls -d "$1"/lib/python3.*/site-packages 2>/dev/null | head -n 1)
    [ -d "$dir" ] || fail "no site-packages in $1"
    echo "$dir"
}

converter=$(site "$venv")
legacy=$(site "$toolchain/venv")
frontend=$(site "$toolchain/venv-ov2022")
before=$(du -sm "$venv" "$toolchain" | awk '{s += $1} END {print s}')
command -v strip >/dev/null 2>&1 || fail "strip not found (binutils; g++ brings it)"
while read -r action where glob why; do
    [ -n "$action" ] || continue
    case "$where" in
        converter) roots=("$converter") ;;
        legacy) roots=("$legacy") ;;
        frontend) roots=("$frontend") ;;
        venvs) roots=("$converter" "$legacy" "$frontend") ;;
        *) fail "unknown place $where in the table" ;;
    esac
    for root in "${roots[@]}"; do
        # shellcheck disable=SC2086  # the glob is meant to expand
        for path in "$root"/$glob; do
            [ -e "$path" ] || [ -L "$path" ] || continue
            case "$action" in
                delete) rm -rf "$path" ;;
                strip) [ -L "$path" ] || strip --strip-unneeded "$path" ;;
                *) fail "unknown action $action in the table" ;;
            esac
        done
    done
done <<< "$RULES"
# The 2021.4 wheel ships libprotobuf twice (libprotobuf.so and libprotobuf.so.3.7.1.0, same bytes):
# one becomes a link to the other.
libs="$legacy/openvino/libs"
if [ -f "$libs/libprotobuf.so" ] && [ ! -L "$libs/libprotobuf.so" ] && cmp -s "$libs/libprotobuf.so" "$libs/libprotobuf.so.3.7.1.0"; then
    ln -sf libprotobuf.so.3.7.1.0 "$libs/libprotobuf.so"
fi
# Bytecode caches: the image runs with PYTHONDONTWRITEBYTECODE, and they are rebuilt where needed.
find "$venv" "$toolchain" -name __pycache__ -type d -prune -exec rm -rf {} +
# What remains still imports (a quick check here; the corpus in tests/test_image.py is the real one).
"$toolchain/venv/bin/python" -c 'import openvino.inference_engine, mo, onnx, numpy' \
    || fail "the legacy environment does not import after pruning; a rule above is wrong"
"$toolchain/venv-ov2022/bin/python" -W ignore -c 'import openvino.runtime, openvino.preprocess, openvino.offline_transformations, openvino.frontend' \
    || fail "the front-end environment does not import after pruning; a rule above is wrong"
"$venv/bin/python" -c 'import torch, onnx, onnxruntime, onnxscript, myriad_blob.pipeline' \
    || fail "the converter's environment does not import after pruning; a rule above is wrong"
find "$venv" "$toolchain" -name __pycache__ -type d -prune -exec rm -rf {} +
touch "$venv/.myriad-blob-pruned" "$toolchain/.myriad-blob-pruned"
echo "myriad-blob prune: $before MB -> $(du -sm "$venv" "$toolchain" | awk '{s += $1} END {print s}') MB"
