#!/usr/bin/env bash
# Deletes from a finished set-up what converting never loads: the action's image runs it
# (scripts/setup.sh with MYRIAD_BLOB_PRUNE=1, as the Dockerfile sets), so every job that pulls the
# image pulls less. Never run it on a set-up you still develop or test in: the test suites,
# headers, pip and the other devices' plugins it removes are gone until you set up afresh.
# Usage: prune.sh VENV TOOLCHAIN_DIR
# The table below is the one list of what goes; each line: what to do, where, a glob under it, why.
#   delete  the path
#   strip   a binary's static symbol table (`strip --strip-unneeded`; the dynamic symbols stay)
#   share   a frontend path byte-identical (bytecode aside) to the same path in the legacy venv
#           becomes a relative link to it (left as it is, with a note, when they differ)
# Where (globs may use ** for any depth):
#   converter  VENV's site-packages (Python 3.11: torch, onnx, onnxruntime, ...)
#   legacy     TOOLCHAIN_DIR/venv's site-packages (openvino 2021.4.2, Model Optimizer)
#   frontend   TOOLCHAIN_DIR/venv-ov2022's site-packages (openvino 2022.3.1's ONNX reader)
#   venvs      each of the three venvs' site-packages
#   python39   MYRIAD_BLOB_PRUNE_LEGACY_STDLIB, the legacy interpreter's own library directory
#              (/usr/local/lib/python3.9 in the image; rules skipped when unset, as on a laptop,
#              whose interpreters are never touched)
# What the rules remove was measured, not guessed: every kind of conversion (the corpus, both front
# ends, a YOLO best.pt of each task, .pt2, --new-export, a full-model pickle, the numeric check's
# second opinion) run in the image under `strace -f -e openat` never opened any of it.
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
delete converter onnxruntime/capi/libonnxruntime.so*          onnxruntime's C API library, 29 MB (for C/C++ programs; the Python module has the runtime built in)
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
delete legacy    openvino/libs/libinference_engine_onnx_reader.so  2021.4's ONNX reader: it reads only IR (Model Optimizer reads ONNX with the onnx package)
delete legacy    openvino/libs/libonnx_importer.so            the ONNX reader's importer
delete legacy    openvino/libs/libonnx_proto.so               the ONNX reader's protobuf schema
delete legacy    openvino/libs/libprotobuf.so*                protobuf for the ONNX reader (Model Optimizer uses the protobuf package)
delete legacy    _pyngraph*.so                                nGraph's old Python API (neither Model Optimizer nor our scripts import it)
delete legacy    ngraph                                       nGraph's old Python API
delete frontend  onnx/backend/test/data                       onnx's backend test models
delete frontend  openvino/libs/libopenvino_intel_gpu_plugin.so       the GPU plugin
delete frontend  openvino/libs/libopenvino_auto_plugin.so            the AUTO device (no device is compiled for here)
delete frontend  openvino/libs/libopenvino_auto_batch_plugin.so      the BATCH device
delete frontend  openvino/libs/libopenvino_hetero_plugin.so          the HETERO device
delete frontend  openvino/libs/cache.json                            the GPU plugin's kernel cache
delete frontend  openvino/libs/libopenvino_paddle_frontend.so*       the PaddlePaddle reader
delete frontend  openvino/libs/libopenvino_tensorflow_frontend.so*   the TensorFlow reader
delete frontend  openvino/libs/libopenvino_gapi_preproc.so           inference-time preprocessing (no inference here)
delete frontend  _pyngraph*.so                                nGraph's old Python API (openvino.runtime replaces it)
delete frontend  ngraph                                       nGraph's old Python API
delete venvs     pip                                          the installer (the image installs nothing at run time)
delete venvs     pip-*.dist-info                              the installer's metadata
delete venvs     numpy/*/tests                                numpy's test suites
delete venvs     numpy/tests                                  numpy's test suites
delete venvs     */include                                    C headers (building extensions)
delete venvs     numpy/core/include                           numpy's C headers (building extensions)
delete venvs     setuptools                                   the build tools (building packages; nothing imports them when converting)
delete venvs     setuptools-*.dist-info                       their metadata
delete venvs     pkg_resources                                setuptools' package API (never imported)
delete venvs     _distutils_hack                              setuptools' distutils shim
delete venvs     distutils-precedence.pth                     the shim's start-up hook (goes with it)
delete venvs     **/*.pyi                                     type stubs (read by type checkers, never by Python)
delete python39  site-packages/pip                            the base interpreter's installer (the venvs are made; nothing installs at run time)
delete python39  site-packages/pip-*.dist-info                its metadata
delete python39  site-packages/setuptools                     the base interpreter's build tools
delete python39  site-packages/setuptools-*.dist-info         their metadata
delete python39  site-packages/pkg_resources                  setuptools' package API
delete python39  site-packages/_distutils_hack                setuptools' distutils shim
delete python39  site-packages/distutils-precedence.pth       the shim's start-up hook
delete python39  site-packages/wheel                          wheel building
delete python39  site-packages/wheel-*.dist-info              its metadata
delete python39  ensurepip                                    pip's bundled wheels (making venvs; done at build time)
strip  converter torch/lib/*.so                    the static symbol tables (.symtab/.strtab, 90 MB; the dynamic ones stay)
strip  converter torch/bin/torch_shm_manager       its static symbol table
strip  converter cryptography/hazmat/bindings/_rust.abi3.so   its static symbol table, 3 MB (PyGithub's JWT signing)
strip  converter nacl/_sodium.abi3.so              its static symbol table, 3 MB (PyGithub's secrets API)
strip  converter yaml/_yaml.*.so                   its static symbol table, 2 MB (ultralytics reads its YAML)
share  frontend  numpy                             numpy 1.19.5, as in the legacy venv (both pin it): one copy, 53 MB less (its metadata stays: its RECORD names this venv's scripts)
share  frontend  numpy.libs                        numpy's OpenBLAS
TABLE
)

site() {  # the site-packages directory of a venv
    local dir
    dir=$(ls -d "$1"/lib/python3.*/site-packages 2>/dev/null | head -n 1)
    [ -d "$dir" ] || fail "no site-packages in $1"
    echo "$dir"
}

share() {  # share PATH OTHER: PATH becomes a relative link to OTHER when both hold the same files
    local path=$1 other=$2
    [ -L "$path" ] && return
    if [ -e "$other" ] && diff -rq -x __pycache__ "$path" "$other" >/dev/null 2>&1; then
        rm -rf "$path"
        ln -s "$(realpath --relative-to="$(dirname "$path")" "$other")" "$path"
    else
        echo "myriad-blob prune: note: $path differs from $other (not the same version?): kept, not shared" >&2
    fi
}

converter=$(site "$venv")
legacy=$(site "$toolchain/venv")
frontend=$(site "$toolchain/venv-ov2022")
python39=()
if [ -n "${MYRIAD_BLOB_PRUNE_LEGACY_STDLIB:-}" ]; then
    [ -f "$MYRIAD_BLOB_PRUNE_LEGACY_STDLIB/os.py" ] || fail "MYRIAD_BLOB_PRUNE_LEGACY_STDLIB=$MYRIAD_BLOB_PRUNE_LEGACY_STDLIB is no Python library directory"
    python39=("$MYRIAD_BLOB_PRUNE_LEGACY_STDLIB")
fi
pruned=("$venv" "$toolchain" "${python39[@]}")
before=$(du -sm "${pruned[@]}" | awk '{s += $1} END {print s}')
shopt -s globstar
command -v strip >/dev/null 2>&1 || fail "strip not found (binutils; g++ brings it)"
while read -r action where glob why; do
    [ -n "$action" ] || continue
    case "$where" in
        converter) roots=("$converter") ;;
        legacy) roots=("$legacy") ;;
        frontend) roots=("$frontend") ;;
        venvs) roots=("$converter" "$legacy" "$frontend") ;;
        python39) roots=("${python39[@]}") ;;
        *) fail "unknown place $where in the table" ;;
    esac
    for root in "${roots[@]}"; do
        # shellcheck disable=SC2086  # the glob is meant to expand
        for path in "$root"/$glob; do
            [ -e "$path" ] || [ -L "$path" ] || continue
            case "$action" in
                delete) rm -rf "$path" ;;
                strip) [ -L "$path" ] || strip --strip-unneeded "$path" ;;
                share) share "$path" "$legacy/${path#"$root"/}" ;;
                *) fail "unknown action $action in the table" ;;
            esac
        done
    done
done <<< "$RULES"
# Bytecode caches: the image runs with PYTHONDONTWRITEBYTECODE, and they are rebuilt where needed.
find "${pruned[@]}" -name __pycache__ -type d -prune -exec rm -rf {} +
# What remains still imports (a quick check here; the corpus in tests/test_image.py is the real one).
"$toolchain/venv/bin/python" -c 'import openvino.inference_engine, mo, onnx, numpy' \
    || fail "the legacy environment does not import after pruning; a rule above is wrong"
"$toolchain/venv-ov2022/bin/python" -W ignore -c 'import openvino.runtime, openvino.preprocess, openvino.offline_transformations, openvino.frontend' \
    || fail "the front-end environment does not import after pruning; a rule above is wrong"
"$venv/bin/python" -c 'import torch, onnx, onnxruntime, onnxscript, PIL.Image, myriad_blob.pipeline, myriad_blob.numeric as n; assert n.CHECK_PHOTO.is_file()' \
    || fail "the converter's environment does not import after pruning; a rule above is wrong"
# ultralytics (the image's YOLO runtime), where installed: it imports OpenCV and PyYAML on import.
"$venv/bin/python" -c 'import importlib.util as u; u.find_spec("ultralytics") is None or __import__("ultralytics.nn.tasks")' \
    || fail "ultralytics does not import after pruning; a rule above is wrong"
find "${pruned[@]}" -name __pycache__ -type d -prune -exec rm -rf {} +
touch "$venv/.myriad-blob-pruned" "$toolchain/.myriad-blob-pruned"
echo "myriad-blob prune: $before MB -> $(du -sm "${pruned[@]}" | awk '{s += $1} END {print s}') MB"
