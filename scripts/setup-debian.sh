#!/usr/bin/env bash
# Installs everything rdext needs to build and test on a fresh Debian 12
# machine. Idempotent: packages already present are not fetched again.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "setup-debian.sh: must run as root (it installs Debian packages)" >&2
    exit 1
fi

packages=(
    # build
    build-essential cmake ninja-build pkgconf
    libmount-dev libblkid-dev libcryptsetup-dev libkmod-dev libssl-dev
    libjson-c-dev doctest-dev
    # rdext fetch over http(s) (src/fetch/http_source.cc): libcurl with OpenSSL
    libcurl4-openssl-dev
    # fuzzers (tests/fuzz): clang with libFuzzer and the sanitizer runtimes
    clang-14 libclang-rt-14-dev
    # static build (scripts/static-deps.sh, cmake -DRDEXT_STATIC=ON)
    dpkg-dev autoconf automake libtool autopoint gettext
    zlib1g-dev liblzma-dev libzstd-dev
    # image tools used by the tests and the demo
    erofs-utils squashfs-tools e2fsprogs fdisk util-linux systemd
    attr python3 man-db
    # tests/integration/json_schema.sh validates every --json document (doc/json)
    python3-jsonschema
    # tests/integration/fetch.sh signs manifests (gpg); rdext fetch checks them with gpgv
    gpg gpgv
    # tests/integration/fetch_http.sh: its network namespace (ip), its CA (openssl, below)
    iproute2
    # dm-verity test images (veritysetup format) and their keys
    cryptsetup-bin openssl
    # VM tests (tests/vm): QEMU, the guest root, the busybox initrd, the
    # kernel's modules (depmod/modprobe on the host); dracut runs in the guest root
    qemu-system-x86 debootstrap busybox-static cpio kmod zstd xz-utils
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Image builders (tests/integration/realworld.sh, vm_realworld_dracut, the
# mkosi build): mkosi 24 with systemd 254 from bookworm-backports, and
# systemd-repart 257 (--make-ddi) from trixie, each in a chroot under
# $RDEXT_CACHE_DIR/builders: the host's own systemd stays at 252. Built once
# (a few minutes), then a no-op. RDEXT_SETUP_BUILDERS=0 leaves them out.
if [ "${RDEXT_SETUP_BUILDERS:-1}" = 1 ]; then
    (
        # shellcheck source=builders-env.sh
        source "$(dirname "$0")/builders-env.sh"
        builders_tree bookworm-backports >/dev/null
        builders_tree trixie >/dev/null
    )
fi
