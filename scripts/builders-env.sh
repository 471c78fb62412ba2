# shellcheck shell=bash
# Build environments for the image-builder tests (sourced by
# scripts/builders-mkosi.sh, scripts/builders-ddi.sh): Debian chroots under
# $RDEXT_CACHE_DIR/builders with tools the host's Debian 12 lacks, so the
# host's own systemd (252, which other tests use) is never replaced:
#
#   bookworm-backports   mkosi 24 and systemd 254 from bookworm-backports
#   trixie               systemd-repart 257 (--make-ddi, erofs verity DDIs) and
#                        systemd-sysext 257 (the mutable differential test)
#
# Each tree is keyed by its recipe (the package list and this file's
# functions), built once under a lock and reused.
set -euo pipefail

BUILDERS_SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDERS_CACHE=${RDEXT_CACHE_DIR:-/var/cache/rdext}/builders
BUILDERS_MIRROR=${RDEXT_BUILDERS_MIRROR:-http://deb.debian.org/debian}

blog() { printf 'builders: %s\n' "$*" >&2; }
bdie() { printf 'builders: FAIL: %s\n' "$*" >&2; exit 1; }

# Packages per tree. mkosi 24 wants bubblewrap for its sandbox, systemd-repart
# >= 254 for Format=sysext/confext/disk, ssh-keygen when a certificate is
# configured, and the mkfs tools of the partitions it makes.
BUILDERS_BPO_PACKAGES=(mkosi systemd systemd-container bubblewrap apt debian-archive-keyring dpkg-dev
    erofs-utils squashfs-tools e2fsprogs dosfstools mtools cryptsetup-bin openssl openssh-client
    python3 zstd xz-utils cpio kmod fdisk)
BUILDERS_TRIXIE_PACKAGES=(systemd systemd-repart libcryptsetup12 erofs-utils squashfs-tools openssl fdisk)

# builders_chroot TREE CMD...: CMD in a chroot of TREE with /proc, /sys, /dev,
# a fresh /tmp, and this source tree and the cache at their own paths, in a
# private mount namespace. The tree is a mount point of its own (bind), so
# bubblewrap's pivot_root works inside.
builders_chroot() {
    unshare -m --propagation private -- bash -euc '
        c=$1 src=$2 cache=$3; shift 3
        mount --bind "$c" "$c"
        mount -t proc proc "$c/proc"
        mount -t sysfs sysfs "$c/sys"
        mount --rbind /dev "$c/dev"
        mount -t tmpfs tmpfs "$c/tmp"
        mkdir -p "$c$src" "$c$cache"
        mount --bind "$src" "$c$src"
        mount --bind "$cache" "$c$cache"
        exec chroot "$c" "$@"
    ' _ "$1" "$BUILDERS_SRC_DIR" "${RDEXT_CACHE_DIR:-/var/cache/rdext}" "${@:2}"
}

# builders_tree bookworm-backports|trixie: prints the tree's path, building
# it first if needed.
builders_tree() {
    local flavour=$1 suite pkgs key tree
    case $flavour in
        bookworm-backports) suite=bookworm; pkgs=("${BUILDERS_BPO_PACKAGES[@]}") ;;
        trixie) suite=trixie; pkgs=("${BUILDERS_TRIXIE_PACKAGES[@]}") ;;
        *) bdie "unknown builders tree $flavour" ;;
    esac
    key=$( { echo "$flavour ${pkgs[*]} $BUILDERS_MIRROR"; declare -f builders_tree _builders_make_tree; } |
        sha256sum | cut -c1-12)
    tree=$BUILDERS_CACHE/$flavour-$key
    mkdir -p "$BUILDERS_CACHE"
    (
        flock 9
        [[ -f $tree.done ]] && exit 0
        _builders_make_tree "$flavour" "$suite" "$tree" "${pkgs[@]}"
    ) 9>"$BUILDERS_CACHE/.lock-$flavour"
    echo "$tree"
}

_builders_make_tree() {
    local flavour=$1 suite=$2 tree=$3; shift 3
    local t=$SECONDS tmp=$tree.tmp log=$BUILDERS_CACHE/$flavour.log
    rm -rf "$tmp"
    blog "building the $flavour tree (debootstrap $suite, then ${*}); log: $log"
    debootstrap --variant=minbase "$suite" "$tmp" "$BUILDERS_MIRROR" >"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; bdie "debootstrap $suite failed (log: $log)"; }
    local target=$suite
    if [[ $flavour == bookworm-backports ]]; then
        echo "deb $BUILDERS_MIRROR bookworm-backports main" >"$tmp/etc/apt/sources.list.d/backports.list"
        target=bookworm-backports
    fi
    cp --remove-destination /etc/resolv.conf "$tmp/etc/resolv.conf"
    builders_chroot "$tmp" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends -t '"$target"' "$@"' _ "$@" >>"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; bdie "installing ${*} into the $flavour tree failed (log: $log)"; }
    rm -rf "$tmp"/var/cache/apt/archives/*.deb
    rm -rf "$tree"
    mv "$tmp" "$tree"
    touch "$tree.done"
    blog "$flavour tree ready in $((SECONDS - t))s"
}

# builders_keys DIR: a verity signing key and certificate (mkosi's names).
builders_keys() {
    local dir=$1
    [[ -s $dir/mkosi.key && -s $dir/mkosi.crt ]] && return 0
    mkdir -p "$dir"
    openssl req -new -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rdext image builders test" \
        -keyout "$dir/mkosi.key.tmp" -out "$dir/mkosi.crt" 2>/dev/null
    mv "$dir/mkosi.key.tmp" "$dir/mkosi.key"
}

# builders_prune PREFIX: keep the newest 3 outputs named PREFIX-*.
builders_prune() {
    local old=()
    mapfile -t old < <(find "$BUILDERS_CACHE" -mindepth 1 -maxdepth 1 -type d -name "$1-*" -printf '%T@ %p\n' |
        sort -rn | tail -n +4 | cut -d' ' -f2-)
    (( ${#old[@]} == 0 )) || rm -rf "${old[@]}"
}
