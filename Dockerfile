# syntax=docker/dockerfile:1
# The myriad-blob action image. The build stage runs scripts/setup.sh, the same set-up `make`
# runs on a laptop and in CI; the final stage keeps only what converting needs (no compiler), and
# MYRIAD_BLOB_PRUNE=1 has the set-up delete what converting never loads (scripts/prune.sh).
# Base images are pinned by digest (python:3.9-slim-bookworm, python:3.11-slim-bookworm).

# Python 3.9 for the legacy toolchain: openvino 2021.4.2, the last wheel with the Myriad plugin,
# exists only for CPython 3.6-3.9. Its files sit beside 3.11 in /usr/local without clashing.
FROM python:3.9-slim-bookworm@sha256:a02e9c5406c416c504d6c9a1a306ff4080c3173f1008d192f953bd20382a2d5c AS legacy-python

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build
COPY --from=legacy-python /usr/local/bin/python3.9 /usr/local/bin/python3.9
COPY --from=legacy-python /usr/local/lib/python3.9 /usr/local/lib/python3.9
COPY --from=legacy-python /usr/local/lib/libpython3.9.so.1.0 /usr/local/lib/libpython3.9.so.1.0
RUN ldconfig
ENV MYRIAD_BLOB_LEGACY_PYTHON=/usr/local/bin/python3.9 \
    MYRIAD_BLOB_PYTHON=/usr/local/bin/python3.11 \
    MYRIAD_BLOB_VENV=/opt/myriad-blob/venv \
    MYRIAD_BLOB_TOOLCHAIN=/opt/myriad-blob/toolchain \
    MYRIAD_BLOB_EXTRAS=action,ultralytics-runtime \
    MYRIAD_BLOB_PRUNE=1 \
    MYRIAD_BLOB_PRUNE_LEGACY_STDLIB=/usr/local/lib/python3.9 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /opt/myriad-blob/app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY scripts ./scripts
COPY src ./src
COPY entrypoint ./entrypoint
RUN bash scripts/setup.sh \
    && find /opt/myriad-blob -name __pycache__ -type d -prune -exec rm -rf {} +

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
# Runtime needs of the Myriad plugin (libusb, loaded even with no device) and of the fast clock.
# (No GLib: headless OpenCV 5 links none; scripts/prune.sh imports ultralytics, and so OpenCV, in
# the build stage, which has none either.)
# Pinned to the upstream version, any Debian revision: bookworm's point releases and security
# updates change only the revision (1.0.26-1 -> 1.0.26-1+deb12u1), and an exact pin would stop
# building the day the old revision leaves the mirror. What must not move is pinned by digest
# (the base images above); these two only move within bookworm's stable updates.
RUN apt-get update \
    && apt-get install -y --no-install-recommends 'libusb-1.0-0=2:1.0.26-*' 'libfaketime=0.9.10-*' \
    && rm -rf /var/lib/apt/lists/*
COPY --from=legacy-python /usr/local/bin/python3.9 /usr/local/bin/python3.9
# Python 3.9's library as the build stage left it: pruned of its pip, setuptools and ensurepip.
COPY --from=build /usr/local/lib/python3.9 /usr/local/lib/python3.9
COPY --from=legacy-python /usr/local/lib/libpython3.9.so.1.0 /usr/local/lib/libpython3.9.so.1.0
RUN ldconfig
COPY --from=build /opt/myriad-blob /opt/myriad-blob
# Absolute paths only: GitHub runs the container with its own working directory, PATH and HOME.
# -P keeps the workspace (a user's repository) off sys.path, so only our `entrypoint` package runs.
ENV MYRIAD_BLOB_TOOLCHAIN=/opt/myriad-blob/toolchain \
    PYTHONPATH=/opt/myriad-blob/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["/opt/myriad-blob/venv/bin/python", "-P", "-m", "entrypoint"]
