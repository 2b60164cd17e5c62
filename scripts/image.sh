#!/usr/bin/env bash
# Builds the action's image here, with buildah and no Docker engine, from the unchanged Dockerfile:
#   scripts/image.sh tools   buildah (apt-get, as root) if missing; debootstrap too for the stand-ins
#   scripts/image.sh bases   local stand-ins for the Dockerfile's two base images (skipped when present)
#   scripts/image.sh build   tools; the Dockerfile's base images pulled by digest where a registry
#                            serves them (GitHub's runners), else the stand-ins; then `buildah bud`
#                            of a copy of the Dockerfile whose FROM lines name the stand-ins
#                            (nothing else in it changes; nothing at all with the real bases)
# `make image-test` runs `build`, then the container checks (tests/test_image.py, pytest -m image).
#
# The stand-ins behave as python:3.X-slim-bookworm does: Debian bookworm (debootstrap minbase, made
# slim as debian:bookworm-slim is) with CPython in /usr/local (this machine's pyenv builds, cut to the
# standard library, pip and setuptools) and the Debian libraries that CPython links against.
# Environment: MYRIAD_BLOB_IMAGE (default localhost/myriad-blob:test), MYRIAD_BLOB_IMAGE_BASES
# (auto: pull, else stand-ins; pull; standin), MYRIAD_BLOB_DEBIAN_MIRROR
# (default: the one apt uses here), PYENV_ROOT-style interpreters from MYRIAD_BLOB_STANDIN_PYTHON_3_9/_3_11.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${MYRIAD_BLOB_IMAGE:-localhost/myriad-blob:test}
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs
buildah=(buildah --storage-driver vfs)

fail() { echo "myriad-blob image: $*" >&2; exit 1; }
say() { echo "myriad-blob image: $*" >&2; }

tools() {  # buildah; with "debootstrap" as argument (the stand-ins), debootstrap too
    local missing=()
    command -v buildah >/dev/null 2>&1 || missing+=(buildah)
    [ "${1:-}" = debootstrap ] && ! command -v debootstrap >/dev/null 2>&1 && missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return
    [ "$(id -u)" = 0 ] || fail "missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or run as root"
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The stand-in image for one Python version, e.g. localhost/myriad-blob-standin/python:3.11-slim-bookworm.
standin_name() { echo "localhost/myriad-blob-standin/python:$1-slim-bookworm"; }
# The stand-ins' recipe, as a label: a stand-in made by an older recipe is made again.
#   2: CPython's binaries stripped, as the python images link them (-Wl,--strip-all)
STANDIN_RECIPE=2

mirror() {
    [ -n "${MYRIAD_BLOB_DEBIAN_MIRROR:-}" ] && { echo "$MYRIAD_BLOB_DEBIAN_MIRROR"; return; }
    local uri
    uri=$(grep -hoE '^(URIs:|deb) *(\[[^]]*\] *)?http[^ ]*' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -n 1 | grep -oE 'http[^ ]*' || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

pyenv_python() {  # the directory holding bin/pythonX.Y for version X.Y
    local var="MYRIAD_BLOB_STANDIN_PYTHON_${1/./_}" candidate
    [ -n "${!var:-}" ] && { echo "${!var}"; return; }
    command -v pyenv >/dev/null 2>&1 || fail "no pyenv to take CPython $1 from; set $var to a CPython $1 prefix"
    candidate=$(ls -d "$(pyenv root)/versions/$1".* 2>/dev/null | sort -V | tail -n 1)
    [ -x "$candidate/bin/python$1" ] || fail "no CPython $1 under $(pyenv root)/versions; set $var"
    echo "$candidate"
}

# Debian bookworm, minbase, with the libraries CPython's extension modules link against.
debian_rootfs() {
    local out=$1
    # Everything below writes under $out: never under the host's own / (an empty $out once wrote
    # Debian-image apt and dpkg settings into this machine's /etc).
    case "$out" in ""|/) fail "internal error: no directory for the stand-in root filesystem" ;; esac
    local packages=ca-certificates,netbase,tzdata,libssl3,libsqlite3-0,libffi8,liblzma5,libbz2-1.0,zlib1g,libreadline8,libncursesw6,libuuid1,libnsl2,libtirpc3,libgssapi-krb5-2,libexpat1,libcrypt1
    say "debootstrap bookworm into $out ($(mirror))"
    debootstrap --variant=minbase --include="$packages" bookworm "$out" "$(mirror)" >"$out.log" 2>&1 \
        || { tail -n 20 "$out.log" >&2; fail "debootstrap failed (log: $out.log)"; }
    # As the Debian images are: the sources the build's apt-get uses, no caches, lists, docs or device nodes.
    rm -f "$out/etc/apt/sources.list"
    cat > "$out/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $(mirror)
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $(mirror | sed 's#/debian/*$#/debian-security#')
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # apt and dpkg set up as in Debian's images (debuerreotype): no package caches or downloaded
    # .debs left behind by an apt-get in a later layer, no translations, no docs (slim).
    cat > "$out/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' > "$out/etc/apt/apt.conf.d/docker-no-languages"
    printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' > "$out/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' > "$out/etc/apt/apt.conf.d/docker-autoremove-suggests"
    cat > "$out/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
    rm -rf "$out"/var/lib/apt/lists/* "$out"/var/cache/apt/* "$out"/var/log/* "$out"/dev/* "$out"/proc/* "$out"/sys/* \
        "$out"/usr/share/doc/* "$out"/usr/share/man/* "$out"/usr/share/info/* "$out"/tmp/* "$out"/run/*
    find "$out/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
}

# CPython X.Y into <rootfs>/usr/local, as the python image lays it out.
add_python() {
    local rootfs=$1 version=$2 prefix name lib
    prefix=$(pyenv_python "$version")
    say "CPython $version from $prefix"
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib" "$rootfs/usr/local/include"
    cp -a "$prefix/lib/python$version" "$rootfs/usr/local/lib/"
    cp -a "$prefix"/lib/libpython* "$rootfs/usr/local/lib/"
    cp -a "$prefix/include/python$version" "$rootfs/usr/local/include/" 2>/dev/null || true
    for name in "python$version" "python$version-config" "pip$version" "pydoc$version" \
                python3 python pip3 pip pydoc3 pydoc python3-config; do
        [ -e "$prefix/bin/$name" ] && cp -a "$prefix/bin/$name" "$rootfs/usr/local/bin/"
    done
    lib="$rootfs/usr/local/lib/python$version"
    # The standard library, pip and setuptools; no test suites, no Tk (the slim images have neither).
    find "$lib/site-packages" -mindepth 1 -maxdepth 1 ! -name 'pip' ! -name 'pip-*' ! -name 'setuptools' \
        ! -name 'setuptools-*' ! -name 'pkg_resources' ! -name '_distutils_hack' ! -name 'distutils-precedence.pth' \
        ! -name README.txt -exec rm -rf {} +
    rm -rf "$lib/test" "$lib"/*/test "$lib"/*/tests "$lib/idlelib" "$lib/tkinter" "$lib"/lib-dynload/_tkinter* \
        "$lib"/config-*/*.a
    # The python images build CPython with LDFLAGS=-Wl,--strip-all: the interpreter, libpython and
    # the extension modules carry no symbol tables (pyenv's builds do: 46 MB for the two versions).
    strip --strip-all "$rootfs/usr/local/bin/python$version" "$rootfs"/usr/local/lib/libpython"$version".so* \
        "$lib"/lib-dynload/*.so
    find "$rootfs/usr/local" -name __pycache__ -type d -prune -exec rm -rf {} +
    # Scripts name the interpreter where pyenv put it; name it where it is now.
    grep -rlI "^#!$prefix/bin/python" "$rootfs/usr/local/bin" | while read -r script; do
        sed -i "1s|^#!.*|#!/usr/local/bin/python$version|" "$script"
    done
    chroot "$rootfs" /sbin/ldconfig
    chroot "$rootfs" "/usr/local/bin/python$version" -c \
        'import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, hashlib, pip, venv, ensurepip' \
        || fail "CPython $version does not import its standard modules in the stand-in (a Debian library missing?)"
}

bases() {
    local version name work ctr mnt
    tools debootstrap
    for version in 3.9 3.11; do
        name=$(standin_name "$version")
        if "${buildah[@]}" inspect --type image "$name" >/dev/null 2>&1; then
            if [ "$("${buildah[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "myriad-blob.standin-recipe"}}' "$name" 2>/dev/null)" = "$STANDIN_RECIPE" ]; then
                say "stand-in $name present"
                continue
            fi
            say "stand-in $name made by an older recipe: making it again (the new one takes its name)"
        fi
        work=$(mktemp -d /var/tmp/myriad-blob-standin.XXXXXX)
        debian_rootfs "$work/rootfs"
        add_python "$work/rootfs" "$version"
        ctr=$("${buildah[@]}" from scratch)
        mnt=$("${buildah[@]}" mount "$ctr")
        cp -a "$work/rootfs/." "$mnt/"
        "${buildah[@]}" umount "$ctr" >/dev/null
        "${buildah[@]}" config --label "myriad-blob.standin-recipe=$STANDIN_RECIPE" \
            --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env LANG=C.UTF-8 --env "PYTHON_VERSION=$("$(pyenv_python "$version")/bin/python$version" -c \
            'import platform; print(platform.python_version())')" --cmd python3 "$ctr"
        "${buildah[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
        rm -rf "$work"
        say "stand-in $name built ($("${buildah[@]}" images --format '{{.Size}}' "$name"))"
    done
}

# pip inside the build finds what pip finds here: this machine's pip config (`pip config list`: local
# wheels, file:// indexes) with the directories it names mounted read-only, and this machine's CA
# bundle (PyPI is reached through a TLS-terminating proxy). The Dockerfile's PIP_EXTRA_INDEX_URL
# (PyTorch's CPU index, unreachable here) overrides the config's extra-index-url; a short timeout
# and one retry keep its look-ups from costing minutes. torch comes from the local wheels.
pip_mounts() {
    local config dir value
    config=$(mktemp -d /var/tmp/myriad-blob-pipconf.XXXXXX)
    pip_config=$config  # removed after the build
    cp /etc/ssl/certs/ca-certificates.crt "$config/ca-certificates.crt"
    {
        echo "[global]"
        for key in index-url extra-index-url find-links; do
            value=$({ pip config list 2>/dev/null || true; } | sed -nE "s/^[^.]*\\.$key='(.*)'$/\\1/p" | tail -n 1)
            [ -n "$value" ] && echo "$key = $value"
        done
        echo "cert = /etc/myriad-blob-build/ca-certificates.crt"
        if [ "${real:-0}" = 0 ]; then  # here, where PyTorch's index cannot be reached
            echo "timeout = 30"
            echo "retries = 1"
        fi
    } > "$config/pip.conf"
    mounts=(-v "$config:/etc/myriad-blob-build:ro" -v "$config/pip.conf:/etc/pip.conf:ro")
    for dir in $(grep -oE '(file://)?/[^ ]+' "$config/pip.conf" | sed 's#^file://##' | grep -v '^/etc/myriad-blob-build'); do
        [ "$(basename "$dir")" = simple ] && dir=$(dirname "$dir")
        [ -d "$dir" ] && mounts+=(-v "$dir:$dir:ro")
    done
    say "pip in the build: $(grep -v '^\[' "$config/pip.conf" | tr '\n' ' ')"
}

# The Dockerfile's own base images, pinned by digest, where a registry serves them (GitHub's runners):
# then nothing in the Dockerfile changes at all. Here Docker Hub cannot be reached: stand-ins.
pull_real_bases() {
    [ "${MYRIAD_BLOB_IMAGE_BASES:-auto}" = standin ] && return 1
    local ref
    for ref in $(sed -nE 's/^FROM ([^ ]+@sha256:[0-9a-f]+).*/\1/p' "$root/Dockerfile" | sort -u); do
        "${buildah[@]}" pull --quiet --retry 0 "docker.io/library/$ref" >/dev/null 2>&1 || {
            [ "${MYRIAD_BLOB_IMAGE_BASES:-auto}" = pull ] && fail "cannot pull $ref (MYRIAD_BLOB_IMAGE_BASES=pull)"
            say "cannot pull $ref here: building on local stand-ins"
            return 1
        }
    done
}

build() {
    tools
    local context dockerfile started previous real=0
    pull_real_bases && real=1
    [ "$real" = 1 ] || bases
    context=$(mktemp -d /var/tmp/myriad-blob-context.XXXXXX)
    # The build context as git has it (committed or not, no venvs, caches or outputs).
    (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$context" 2>/dev/null) \
        || (cd "$root" && tar --exclude=.venv --exclude=.git --exclude=out --exclude=node_modules -cf - . | tar -xf - -C "$context")
    dockerfile="$context/Dockerfile"
    # Only the FROM lines change: each base image names its stand-in (digests cannot be checked here).
    [ "$real" = 1 ] || sed -i -E "s#^FROM python:(3\.[0-9]+)-slim-bookworm@sha256:[0-9a-f]+#FROM localhost/myriad-blob-standin/python:\1-slim-bookworm#" "$dockerfile"
    diff <(grep -v '^FROM ' "$root/Dockerfile") <(grep -v '^FROM ' "$dockerfile") >/dev/null \
        || fail "the Dockerfile copy differs beyond its FROM lines"
    [ "$real" = 1 ] || [ "$(grep -c '^FROM localhost/' "$dockerfile")" = "$(grep -c '^FROM ' "$dockerfile")" ] \
        || fail "a FROM line of the Dockerfile names no stand-in: $(grep '^FROM ' "$dockerfile" | grep -v localhost/)"
    pip_mounts
    if [ "$real" = 1 ]; then  # FROM python:... means Docker Hub, as for Docker, whatever registries.conf says
        printf 'unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n' > "$context.registries.conf"
        export CONTAINERS_REGISTRIES_CONF="$context.registries.conf"
    fi
    say "buildah bud $image (about 2 minutes here, on 2 cores)"
    started=$(date +%s)
    previous=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$image" 2>/dev/null || true)
    # pip's config, CA bundle and local wheel directories are mounted (pip_mounts); everything else
    # is as the Dockerfile says.
    "${buildah[@]}" bud --isolation chroot --layers=false -f "$dockerfile" -t "$image" "${mounts[@]}" \
        "$context" > "$context.log" 2>&1 || { tail -n 40 "$context.log" >&2; fail "buildah bud failed (log: $context.log)"; }
    say "built $image in $(( $(date +%s) - started )) s: $("${buildah[@]}" images --format '{{.Size}}' "$image")"
    # The image this build replaced, untagged now: removed (with vfs storage it is a full copy).
    if [ -n "$previous" ] && [ "$previous" != "$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$image")" ]; then
        "${buildah[@]}" rmi "$previous" >/dev/null 2>&1 || true
    fi
    rm -rf "$context" "$context.log" "$context.registries.conf" "$pip_config"
}

case "${1:-}" in
    tools) tools ;;
    bases) bases ;;
    build) build ;;
    *) fail "usage: scripts/image.sh tools|bases|build" ;;
esac
