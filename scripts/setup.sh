#!/usr/bin/env bash
# The one set-up, used by `make`, CI and the Dockerfile alike. Idempotent.
#   1. system packages the toolchain needs (installed with apt-get when run as root; otherwise named)
#   2. the converter's environment: a venv of the current Python with pinned packages
#   3. the legacy Myriad toolchain (src/myriad_blob/toolchain/setup-toolchain.sh)
#   4. with MYRIAD_BLOB_PRUNE=1 (the Dockerfile sets it): scripts/prune.sh deletes what converting
#      never loads (test suites, headers, pip, other devices' plugins); a pruned set-up is final
# Environment: MYRIAD_BLOB_VENV (default .venv), MYRIAD_BLOB_PYTHON (default python3),
#   MYRIAD_BLOB_TOOLCHAIN (default ~/.cache/myriad-blob/toolchain-openvino-2021.4.2), MYRIAD_BLOB_EXTRAS (default action,test,docs,ultralytics; ultralytics-runtime: the image's slim ultralytics),
#   MYRIAD_BLOB_TORCH_INDEX (default: PyTorch's CPU index when pip has no other source of torch; empty: none),
#   MYRIAD_BLOB_NO_TOOLCHAIN (set: the converter's environment only, steps 1 and 3 skipped; `make test-unit`).
#   MYRIAD_BLOB_PRUNE (default 0; 1: step 4).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MYRIAD_BLOB_VENV:-$root/.venv}
python=${MYRIAD_BLOB_PYTHON:-python3}
extras=${MYRIAD_BLOB_EXTRAS-action,test,docs,ultralytics}

fail() { echo "myriad-blob setup: $*" >&2; exit 1; }

# 1. System packages: libusb (the Myriad plugin loads it even with no device), a C++ compiler
#    for the compile helper, and libfaketime (shortens the plugin's 5 s device search; see README).
missing=()
[ -n "${MYRIAD_BLOB_NO_TOOLCHAIN:-}" ] || {
ldconfig -p 2>/dev/null | grep 'libusb-1.0.so.0' >/dev/null || missing+=(libusb-1.0-0)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || missing+=(libfaketime)
}
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "myriad-blob setup: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        fail "missing system packages: ${missing[*]}; install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and run this again"
    fi
fi

# 2. The converter's environment.
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || fail "$python is not Python 3.11 or newer (the manifest reader needs tomllib); set MYRIAD_BLOB_PYTHON to one"
stamp=$( { cat "$root/pyproject.toml" "$root/requirements/constraints.txt" "$root/requirements/ultralytics-runtime.txt"; echo "$extras"; "$python" -V; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.myriad-blob-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "myriad-blob setup: installing the converter into $venv"
    clear=(); [ -e "$venv/.myriad-blob-pruned" ] && clear=(--clear)  # pruned: no pip left to upgrade with
    "$python" -m venv "${clear[@]}" "$venv"
    # ultralytics-runtime is no extra of the package: ultralytics without its training-only
    # dependencies, for the action's image (requirements/ultralytics-runtime.txt), installed below.
    pip_extras=$(echo ",$extras," | sed 's/,ultralytics-runtime,/,/g; s/^,//; s/,$//')
    spec="$root"; [ -n "$pip_extras" ] && spec="$root[$pip_extras]"
    # torch's CPU build: PyPI's Linux torch is the CUDA build (several GB); the CPU build is on
    # PyTorch's own index. Add that index unless pip is told where torch comes from already
    # (PIP_INDEX_URL or PIP_EXTRA_INDEX_URL, as CI and the Dockerfile set) or can install the
    # pinned torch without any index (a local wheel via find-links). MYRIAD_BLOB_TORCH_INDEX
    # names another index; set it empty to add none.
    torch_index=()
    torch_pin=$(grep -E '^torch==' "$root/requirements/constraints.txt" || echo torch)
    if [ -z "${PIP_INDEX_URL:-}${PIP_EXTRA_INDEX_URL:-}" ] && [ -n "${MYRIAD_BLOB_TORCH_INDEX-unset}" ] \
        && ! "$venv/bin/python" -m pip install --disable-pip-version-check --dry-run --no-index --no-deps \
                --ignore-installed --quiet "$torch_pin" >/dev/null 2>&1; then
        torch_index=(--extra-index-url "${MYRIAD_BLOB_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}")
        echo "myriad-blob setup: torch from ${torch_index[1]} (the CPU build)"
    fi
    "$venv/bin/python" -m pip --disable-pip-version-check --quiet install "${torch_index[@]}" \
        -c "$root/requirements/constraints.txt" -e "$spec"
    if [ "$pip_extras" != "$extras" ]; then
        "$venv/bin/python" -m pip --disable-pip-version-check --quiet install --no-deps \
            -c "$root/requirements/constraints.txt" -r "$root/requirements/ultralytics-runtime.txt"
    fi
    echo "$stamp" > "$venv/.myriad-blob-stamp"
fi

# 3. The legacy toolchain, where the converter will look for it.
[ -n "${MYRIAD_BLOB_NO_TOOLCHAIN:-}" ] || "$venv/bin/myriad-blob" setup

# 4. For the action's image only: less to pull on every job.
if [ "${MYRIAD_BLOB_PRUNE:-0}" = 1 ]; then
    toolchain=$("$venv/bin/python" -c 'from myriad_blob import toolchain; print(toolchain.default_dir())')
    bash "$root/scripts/prune.sh" "$venv" "$toolchain"
fi
