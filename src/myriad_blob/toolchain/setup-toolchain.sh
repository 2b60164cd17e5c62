#!/usr/bin/env bash
# Sets up the legacy Myriad toolchain in one directory, idempotently:
#   <dir>/venv                      Python 3.8/3.9 with openvino 2021.4.2 and Model Optimizer
#   <dir>/venv-ov2022               the same Python with openvino 2022.3.1: the ONNX front end writing IR v10
#   <dir>/bin/myriad_compile_blob   our compile helper, linked against the wheel's libraries
#   <dir>/toolchain.json            what was installed (read by the converter for its report)
# Usage: setup-toolchain.sh DIR
# The legacy interpreter is found from MYRIAD_BLOB_LEGACY_PYTHON, then pyenv, then PATH.
set -euo pipefail

dir=${1:?usage: setup-toolchain.sh DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
requirements="$here/legacy-requirements.txt"
frontend_requirements="$here/frontend-requirements.txt"
source_cpp="$here/compile_blob.cpp"

fail() { echo "myriad-blob setup: $*" >&2; exit 1; }

find_legacy_python() {
    local candidate
    if [ -n "${MYRIAD_BLOB_LEGACY_PYTHON:-}" ]; then
        [ -x "$MYRIAD_BLOB_LEGACY_PYTHON" ] || fail "MYRIAD_BLOB_LEGACY_PYTHON=$MYRIAD_BLOB_LEGACY_PYTHON is not an executable"
        echo "$MYRIAD_BLOB_LEGACY_PYTHON"; return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in $(ls -d "$(pyenv root)"/versions/3.8.* "$(pyenv root)"/versions/3.9.* 2>/dev/null | sort -V -r); do
            [ -x "$candidate/bin/python" ] && { echo "$candidate/bin/python"; return; }
        done
    fi
    for candidate in python3.8 python3.9; do
        command -v "$candidate" >/dev/null 2>&1 && { command -v "$candidate"; return; }
    done
    fail "no Python 3.8 or 3.9 found (the Myriad plugin ships only for those): install one, e.g. 'pyenv install 3.8.18', or set MYRIAD_BLOB_LEGACY_PYTHON to its interpreter"
}

command -v g++ >/dev/null 2>&1 || fail "g++ not found: install it (Debian/Ubuntu: apt-get install g++)"
ldconfig -p 2>/dev/null | grep 'libusb-1.0.so.0' >/dev/null || [ -e /usr/lib/x86_64-linux-gnu/libusb-1.0.so.0 ] \
    || fail "libusb-1.0 not found; the Myriad plugin needs it even with no device: install it (Debian/Ubuntu: apt-get install libusb-1.0-0)"

legacy_python=$(find_legacy_python)
# Two stamps: the venvs' (requirements, interpreter) and the whole toolchain's (that, the compile
# helper's source, g++). A changed helper alone is rebuilt in seconds, the venvs kept.
venv_stamp=$( { cat "$requirements" "$frontend_requirements"; "$legacy_python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
stamp=$( { echo "$venv_stamp"; cat "$source_cpp"; g++ --version | head -n 1; } | sha256sum | cut -d' ' -f1)
if [ -f "$dir/toolchain.json" ] && grep -q "\"stamp\": \"$stamp\"" "$dir/toolchain.json" && [ -x "$dir/bin/myriad_compile_blob" ]; then
    echo "myriad-blob setup: toolchain up to date in $dir"
    exit 0
fi

if [ -f "$dir/toolchain.json" ] && grep -q "\"venv_stamp\": \"$venv_stamp\"" "$dir/toolchain.json" \
    && [ -x "$dir/venv/bin/python" ] && [ -x "$dir/venv-ov2022/bin/python" ]; then
    echo "myriad-blob setup: rebuilding the compile helper in $dir"
    rm "$dir/toolchain.json"  # written last again: an interrupted rebuild starts over
else
    echo "myriad-blob setup: building the Myriad toolchain in $dir (Python: $legacy_python)"
    # The directory is replaced whole, so it must be ours: new, empty, or marked by an earlier set-up
    # (a directory someone pointed --dir at by mistake is never deleted).
    if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -e "$dir/.myriad-blob-toolchain" ] && [ ! -e "$dir/toolchain.json" ]; then
        fail "$dir is not empty and holds no myriad-blob toolchain: choose another --dir (or MYRIAD_BLOB_TOOLCHAIN); nothing was deleted"
    fi
    # toolchain.json is written last: without it (an interrupted set-up) the next run starts over.
    rm -rf "$dir"
    mkdir -p "$dir/bin"
    touch "$dir/.myriad-blob-toolchain"
    "$legacy_python" -m venv "$dir/venv"
    "$dir/venv/bin/python" -m pip --disable-pip-version-check --quiet install --no-deps -r "$requirements"
    "$dir/venv/bin/python" -c 'import openvino.inference_engine, mo' \
        || fail "the legacy environment does not import OpenVINO; see the messages above"
    # A second venv: openvino 2022.3.1 and 2021.4.2 both install the top-level package `openvino`.
    "$legacy_python" -m venv "$dir/venv-ov2022"
    "$dir/venv-ov2022/bin/python" -m pip --disable-pip-version-check --quiet install --no-deps -r "$frontend_requirements"
    "$dir/venv-ov2022/bin/python" -W ignore -c 'import openvino.runtime, openvino.preprocess, openvino.offline_transformations' \
        || fail "the front-end environment does not import OpenVINO 2022.3; see the messages above"
fi
libs=$("$dir/venv/bin/python" -c 'import os, openvino; print(os.path.join(os.path.dirname(openvino.__file__), "libs"))')
# The old libstdc++ string ABI, as the wheel is built; rpath so no LD_LIBRARY_PATH is needed.
g++ -O2 -std=c++14 -D_GLIBCXX_USE_CXX11_ABI=0 -Wall -Wextra "$source_cpp" \
    -o "$dir/bin/myriad_compile_blob" -L"$libs" -linference_engine -Wl,-rpath,"$libs"
"$dir/bin/myriad_compile_blob" version >/dev/null || fail "the compile helper does not run; see the messages above"
cat > "$dir/toolchain.json" <<JSON
{
  "stamp": "$stamp",
  "venv_stamp": "$venv_stamp",
  "legacy_python": "$("$dir/venv/bin/python" -c 'import platform; print(platform.python_version())')",
  "openvino": "$("$dir/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("openvino"))')",
  "openvino_dev": "$("$dir/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("openvino-dev"))')",
  "openvino_frontend": "$("$dir/venv-ov2022/bin/python" -c 'import importlib.metadata as m; print(m.version("openvino"))')",
  "inference_engine_build": "$("$dir/bin/myriad_compile_blob" version)",
  "gxx": "$(g++ -dumpfullversion)"
}
JSON
echo "myriad-blob setup: toolchain ready in $dir"
