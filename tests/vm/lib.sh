# shellcheck shell=bash
# Shared helpers of the VM harness (tests/vm). See README.md beside this file.
#
# Environment:
#   RDEXT_CACHE_DIR      cache root (default /var/cache/rdext); the VM tests keep
#                        downloads, the root tree and initrds in its vm/
#   RDEXT_VM_OUT_DIR     per-build output: assets.env, serial logs
#                        (CMake passes <build>/tests/vm)
#   RDEXT_INITRD_BINARY  the rdext put into the initrds and the guest root
#                        (default: the static build if there is one, in
#                        $RDEXT_STATIC_BUILD_DIR or build-static/, else
#                        $RDEXT, the build's rdext; see initrd_rdext)
#   RDEXT_VM_TIMEOUT     seconds one boot may take before it is killed (300)
#   CI=true              missing tools or assets fail instead of skipping
#   KEEP=1               keep the scenario's work directory

set -Eeuo pipefail
shopt -s nullglob

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(cd "$VM_DIR/../.." && pwd)
CACHE_DIR=${RDEXT_CACHE_DIR:-/var/cache/rdext}/vm
VM_OUT_DIR=${RDEXT_VM_OUT_DIR:-$SRC_DIR/build/tests/vm}
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}
VM_TIMEOUT=${RDEXT_VM_TIMEOUT:-300}

# Modules the initrds load: the root disk, rdext's images and overlays,
# dm-verity for later. virtio_pci is built in on 6.12, a module on 6.1.
VM_INITRD_MODULES=(virtio_pci virtio_blk ext4 loop overlay erofs squashfs dm_mod dm_verity)
# The guest root also gets dummy, which only the modules-load.d test loads.
VM_MODULES=("${VM_INITRD_MODULES[@]}" dummy)

log() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }
die() { printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }

skip() {
    if [[ ${CI:-} == true ]]; then
        die "(CI=true, cannot skip) $*"
    fi
    printf 'SKIP: %s\n' "$*"
    exit 77
}

# skip_part WHY: a part of the scenario cannot run here (a missing tool).
# Under CI=true that fails the test; elsewhere the rest runs and
# end_scenario reports the test as skipped (exit 77).
SKIPPED_PARTS=()
skip_part() {
    [[ ${CI:-} != true ]] || die "(CI=true, cannot skip) $*"
    log "SKIP (part): $*"
    SKIPPED_PARTS+=("$*")
}

# end_scenario: the last line of a scenario that may have used skip_part.
end_scenario() {
    (( ${#SKIPPED_PARTS[@]} == 0 )) || { printf 'SKIP: the rest passed, left out: %s\n' "${SKIPPED_PARTS[*]}"; exit 77; }
}

# Seconds since the script started, for the timing lines.
elapsed() { echo $((SECONDS - ${1:-0})); }

require_host_tools() {
    [[ $(id -u) == 0 ]] || skip "needs root (debootstrap, chroot, mkfs -d with owners)"
    local t missing=()
    for t in qemu-system-x86_64 debootstrap cpio zstd mkfs.ext4 mkfs.erofs mksquashfs depmod modprobe \
             dpkg-deb apt-get chroot unshare timeout; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    [[ -x /bin/busybox ]] || missing+=(busybox-static)
    (( ${#missing[@]} == 0 )) || skip "missing host tools: ${missing[*]} (run scripts/setup-debian.sh)"
}

# The rdext binary that goes into the initrds and the guest root:
# $RDEXT_INITRD_BINARY, else the static build (CTest's build-static, then the
# source tree's; its stripped copy when there is one), else the build's own
# (dynamic) rdext.
initrd_rdext() {
    local b=${RDEXT_INITRD_BINARY:-} s
    if [[ -z $b ]]; then
        for s in ${RDEXT_STATIC_BUILD_DIR:+"$RDEXT_STATIC_BUILD_DIR/src/rdext"} "$SRC_DIR/build-static/src/rdext"; do
            [[ -x $s.stripped ]] && { b=$s.stripped; break; }
            [[ -x $s ]] && { b=$s; break; }
        done
        [[ -n $b ]] || b=${RDEXT:-$SRC_DIR/build/src/rdext}
    fi
    [[ -x $b ]] || return 1
    echo "$b"
}

# with_cache_lock CMD...: one asset build at a time per cache directory.
with_cache_lock() {
    mkdir -p "$CACHE_DIR"
    (
        flock 9
        "$@"
    ) 9>"$CACHE_DIR/.lock"
}

# ldd exits 1 on a static binary: compare its output, not a pipeline's status.
is_static() { [[ $(LC_ALL=C ldd "$1" 2>&1) == *"not a dynamic executable"* ]]; }

# copy_with_libs BINARY DESTROOT [DEST-PATH]: BINARY at DEST-PATH (default its
# own path) in DESTROOT, plus every library ldd lists and the loader, at the
# paths ldd prints. A static binary is copied alone.
copy_with_libs() {
    local bin=$1 dest=$2 to=${3:-$1} lib
    install -D -m 0755 "$bin" "$dest$to"
    is_static "$bin" && return 0
    while read -r lib; do
        [[ -e $lib ]] || continue
        [[ -e $dest$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
    done < <(ldd "$bin" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]*ld-linux/ { print $1 }')
}

# ---------------------------------------------------------------------------
# Assets (built by assets.sh, described by $VM_OUT_DIR/assets.env)

load_assets() {
    local env=$VM_OUT_DIR/assets.env
    [[ -f $env ]] || skip "VM assets not built ($env missing): run the vm_assets test first"
    # shellcheck source=/dev/null
    source "$env"
    local f
    for f in "$VM_KERNEL" "$VM_BUSYBOX_INITRD" "$VM_DRACUT_INITRD" "$VM_DRACUTNG_INITRD" "$VM_ROOT_TREE/etc/os-release"; do
        [[ -e $f ]] || skip "VM asset $f missing: run the vm_assets test first"
    done
}

# ---------------------------------------------------------------------------
# Scenario work directory and root disk

# new_scenario: $WORK (the scenario's scratch directory on the cache's file
# system, so the root tree can be hard-linked), $OVERLAY (files that go on
# top of the root tree), $IMAGES (extension trees and images).
new_scenario() {
    require_host_tools
    load_assets
    mkdir -p "$CACHE_DIR/work" "$VM_OUT_DIR/logs"
    WORK=$(mktemp -d "$CACHE_DIR/work/$TEST_NAME.XXXXXX")
    OVERLAY=$WORK/overlay
    IMAGES=$WORK/images
    mkdir -p "$OVERLAY" "$IMAGES"
    trap _scenario_cleanup EXIT
    SCENARIO_START=$SECONDS
    guest_base_files
}

_scenario_cleanup() {
    local rc=$?
    if [[ ${KEEP:-} == 1 || $rc != 0 && ${KEEP:-} != 0 && ${CI:-} != true ]]; then
        log "keeping $WORK"
    else
        rm -rf "$WORK"
    fi
    # Work directories of killed runs.
    find "$CACHE_DIR/work" -mindepth 1 -maxdepth 1 -mmin +240 -exec rm -rf {} + 2>/dev/null || true
}

# put PATH [MODE] < CONTENT: a file in the overlay (PATH is absolute in the guest).
put() {
    local path=$OVERLAY$1 mode=${2:-0644}
    mkdir -p "$(dirname "$path")"
    cat >"$path"
    chmod "$mode" "$path"
}

# The checker, its unit and the rdext binary: the same in every scenario.
guest_base_files() {
    local bin
    bin=$(initrd_rdext) || skip "no rdext binary for the guest (set RDEXT_INITRD_BINARY)"
    install -D -m 0755 "$bin" "$OVERLAY/usr/local/bin/rdext"
    put /usr/local/sbin/rdext-check 0755 <"$VM_DIR/guest/rdext-check.sh"
    put /etc/systemd/system/rdext-check.service <"$VM_DIR/guest/rdext-check.service"
    mkdir -p "$OVERLAY/etc/systemd/system/multi-user.target.wants"
    ln -sfn ../rdext-check.service "$OVERLAY/etc/systemd/system/multi-user.target.wants/rdext-check.service"
}

# expect KEY=VALUE...: settings for the checker (/etc/rdext-check.conf).
expect() {
    mkdir -p "$OVERLAY/etc"
    printf '%s\n' "$@" >>"$OVERLAY/etc/rdext-check.conf"
}

# build_tree DIR: the cached root tree hard-linked,
# with the overlay copied on top. cp --remove-destination replaces a linked
# file instead of writing through the link into the cache. Overlay paths
# must be real directories of the root (/usr/lib, not the /lib symlink).
build_tree() {
    local dir=$1
    cp -al "$VM_ROOT_TREE" "$dir"
    cp -a --remove-destination "$OVERLAY/." "$dir/"
}

# mkfs_dir DIR IMAGE SIZE: an ext4 image holding DIR, without mounting.
mkfs_dir() {
    rm -f "$2"
    mkfs.ext4 -q -F -E root_owner=0:0 -L "$(basename "$2" .img)" -d "$1" "$2" "$3" >/dev/null
}

# root_disk: $WORK/root.img from the root tree plus the overlay.
root_disk() {
    build_tree "$WORK/tree"
    mkfs_dir "$WORK/tree" "$WORK/root.img" 1G
    rm -rf "$WORK/tree"
}

# ---------------------------------------------------------------------------
# Extension images

# ext_tree DIR NAME sysext|confext [RELEASE-LINE...]: an extension tree with
# its release file (default: the guest's ID=debian VERSION_ID=12).
ext_tree() {
    local dir=$1 name=$2 class=$3; shift 3
    local rel=("$@") reldir
    (( ${#rel[@]} )) || rel=(ID=debian VERSION_ID=12)
    case $class in
        sysext) reldir=$dir/usr/lib/extension-release.d ;;
        confext) reldir=$dir/etc/extension-release.d ;;
    esac
    mkdir -p "$reldir"
    printf '%s\n' "${rel[@]}" >"$reldir/extension-release.$name"
}

# ext_file TREE PATH [MODE] < CONTENT
ext_file() {
    local path=$1$2 mode=${3:-0644}
    mkdir -p "$(dirname "$path")"
    cat >"$path"
    chmod "$mode" "$path"
}

make_erofs() { mkfs.erofs -q "$2" "$1" >/dev/null 2>&1 || mkfs.erofs "$2" "$1" >/dev/null; }
make_squashfs() { mksquashfs "$1" "$2" -quiet -noappend -all-root >/dev/null; }

# feature_sysext DIR NAME: the sysext that proves "applies on the first boot":
# a unit enabled by a .wants/ link inside the extension, a udev rule that runs
# on coldplug, a modules-load.d entry for a module nothing else loads, a
# sysctl.d setting, a tmpfiles.d entry, and a file in /opt.
feature_sysext() {
    local t=$1 name=$2
    ext_tree "$t" "$name" sysext
    ext_file "$t" /usr/lib/systemd/system/rdext-feature.service <<'EOF'
[Unit]
Description=Unit shipped and enabled by an extension
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'mkdir -p /run/rdext-test && echo ran >/run/rdext-test/unit'
[Install]
WantedBy=multi-user.target
EOF
    mkdir -p "$t/usr/lib/systemd/system/multi-user.target.wants"
    ln -s ../rdext-feature.service "$t/usr/lib/systemd/system/multi-user.target.wants/rdext-feature.service"
    ext_file "$t" /usr/lib/udev/rules.d/99-rdext-feature.rules <<'EOF'
ACTION=="add", SUBSYSTEM=="block", KERNEL=="vda", RUN+="/bin/sh -c 'mkdir -p /run/rdext-test && echo fired >/run/rdext-test/udev-vda'"
EOF
    ext_file "$t" /usr/lib/modules-load.d/rdext-feature.conf <<<'dummy'
    ext_file "$t" /usr/lib/sysctl.d/90-rdext-feature.conf <<<'vm.swappiness = 13'
    ext_file "$t" /usr/lib/tmpfiles.d/rdext-feature.conf <<<'f /run/rdext-test/tmpfiles 0644 root root - created'
    ext_file "$t" /usr/share/rdext-feature/marker <<<"$name"
    ext_file "$t" /opt/rdext-feature/marker <<<"$name"
}

# marker_sysext DIR NAME: a sysext with only /usr/share/NAME/marker.
marker_sysext() {
    ext_tree "$1" "$2" sysext
    ext_file "$1" "/usr/share/$2/marker" <<<"$2"
}

# marker_confext DIR NAME: a confext with /etc/NAME.conf.
marker_confext() {
    ext_tree "$1" "$2" confext
    ext_file "$1" "/etc/$2.conf" <<<"$2"
}

# ---------------------------------------------------------------------------
# Booting

# boot_vm INITRD CMDLINE-EXTRA DISK...: boots the kernel with INITRD and the
# disks (the first is the root, vda), serial console to
# $VM_OUT_DIR/logs/$TEST_NAME.log (see qemu_run). The disks are opened with
# snapshot=on: nothing is written back.
boot_vm() {
    local initrd=$1 extra=$2; shift 2
    SERIAL_LOG=$VM_OUT_DIR/logs/$TEST_NAME.log
    local drives=() d
    for d in "$@"; do drives+=(-drive "file=$d,if=virtio,format=raw,snapshot=on"); done
    qemu_boot "$initrd" "rw " "$extra" "${drives[@]}"
}

# boot_persistent N INITRD EXTRA DISK: boot N of a scenario that boots one
# root disk several times: what the guest writes stays (no snapshot), the
# root is mounted read-only unless EXTRA says rw, one serial log per boot.
boot_persistent() {
    SERIAL_LOG=$VM_OUT_DIR/logs/$TEST_NAME.boot$1.log
    log "boot $1"
    qemu_boot "$2" "" "$3" -drive "file=$4,if=virtio,format=raw"
}

# qemu_boot INITRD ROOTMODE EXTRA QEMU_DRIVE_ARGS...: one boot of the
# harness kernel with the root on vda (see qemu_run).
qemu_boot() {
    local initrd=$1 rootmode=$2 extra=$3; shift 3
    local cmdline="console=ttyS0 root=/dev/vda rootfstype=ext4 ${rootmode}panic=-1 rd.emergency=poweroff rd.shell=0"
    cmdline+=" systemd.show_status=1 $extra"
    qemu_run "$VM_KERNEL" "$initrd" "$cmdline" "$@"
}

# qemu_run KERNEL INITRD CMDLINE QEMU-ARGS...: one boot, the serial console
# into $SERIAL_LOG; sets BOOT_SECONDS. The log of an earlier boot is removed
# first, and the command line carries rdext.testtoken=$BOOT_TOKEN, new for
# every boot, which the kernel echoes and the checker prints with its
# verdict: no verdict is ever read from another boot's log. Dies unless the
# VM powered off (QEMU exit 0): a QEMU that failed, or the timeout.
# RDEXT_VM_QEMU_ARGS: extra QEMU options (words).
qemu_run() {
    local kernel=$1 initrd=$2 cmdline=$3; shift 3
    BOOT_TOKEN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    cmdline+=" rdext.testtoken=$BOOT_TOKEN"
    rm -f "$SERIAL_LOG"
    log "booting $(basename "$initrd") with: $cmdline"
    local start=$SECONDS
    BOOT_RC=0
    # One vCPU: CI boots two VMs at a time on two cores. RDEXT_VM_SMP=2
    # (by hand) lets rdext stage images on two threads in the guest.
    # shellcheck disable=SC2086 # RDEXT_VM_QEMU_ARGS is a list of words
    timeout --foreground -k 10 "$VM_TIMEOUT" qemu-system-x86_64 \
        -accel tcg -cpu max -smp "${RDEXT_VM_SMP:-1}" -m 1G -nodefaults -display none -no-reboot \
        -serial "file:$SERIAL_LOG" \
        -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
        ${RDEXT_VM_QEMU_ARGS:-} "$@" </dev/null || BOOT_RC=$?
    BOOT_SECONDS=$((SECONDS - start))
    log "boot ended after ${BOOT_SECONDS}s (qemu exit $BOOT_RC), serial log: $SERIAL_LOG"
    case $BOOT_RC in
        0) ;;
        124 | 137) show_log_excerpt; die "the VM did not power off within ${VM_TIMEOUT}s" ;;
        *) show_log_excerpt; die "QEMU failed (exit $BOOT_RC): no boot to judge" ;;
    esac
    if ! grep -aqF "rdext.testtoken=$BOOT_TOKEN" "$SERIAL_LOG"; then
        show_log_excerpt
        die "the serial log does not show this boot's command line (token $BOOT_TOKEN)"
    fi
}

# ---------------------------------------------------------------------------
# Assertions on the serial log

show_log_excerpt() {
    if [[ ! -f $SERIAL_LOG ]]; then
        echo "--- no serial log ($SERIAL_LOG)" >&2
        return 0
    fi
    {
        echo "--- checker lines:"
        grep -aq 'RDEXT-CHECK' "$SERIAL_LOG" || echo "(none)"
        grep -a 'RDEXT-CHECK' "$SERIAL_LOG" | tr -d '\r' | sed 's/^.*RDEXT-CHECK/RDEXT-CHECK/' || true
        echo "--- rdext lines:"
        grep -a -i 'rdext' "$SERIAL_LOG" | grep -av 'RDEXT-CHECK' | tail -40 || true
        echo "--- last 40 lines of $SERIAL_LOG:"
        tail -n 40 "$SERIAL_LOG" | tr -d '\r'
    } >&2
}

# expect_check_pass: the checker ran in the booted system and passed this
# boot (its token), and every drop-in the scenario put into
# /etc/rdext-check.d reported the checks it ran.
expect_check_pass() {
    if ! grep -aqE "RDEXT-CHECK: PASS token=$BOOT_TOKEN"$'\r''?$' "$SERIAL_LOG"; then
        show_log_excerpt
        die "the checker in the booted system did not report PASS for this boot (token $BOOT_TOKEN)"
    fi
    local f name
    for f in "$OVERLAY"/etc/rdext-check.d/*.sh; do
        name=$(basename "$f" .sh)
        if ! grep -aqE "RDEXT-CHECK: dropin $name ran [1-9][0-9]* checks" "$SERIAL_LOG"; then
            show_log_excerpt
            die "the checker's drop-in $name reported no checks"
        fi
    done
    grep -a 'RDEXT-CHECK' "$SERIAL_LOG" | tr -d '\r' | sed 's/^.*RDEXT-CHECK/RDEXT-CHECK/' >&2
    log "PASS (boot ${BOOT_SECONDS}s, scenario $(elapsed "$SCENARIO_START")s)"
}

# expect_emergency REGEX...: the boot stopped in the initrd: the VM powered
# off by itself, never reached the checker, and each REGEX matches a line.
expect_emergency() {
    if grep -aq 'RDEXT-CHECK' "$SERIAL_LOG"; then
        show_log_excerpt
        die "the boot reached the booted system; it should have stopped in the initrd"
    fi
    local re
    for re in "$@"; do
        if ! grep -aqE -- "$re" "$SERIAL_LOG"; then
            show_log_excerpt
            die "no line of the serial log matches: $re"
        fi
        log "found: $(grep -aE -- "$re" "$SERIAL_LOG" | head -1 | tr -d '\r')"
    done
    log "PASS (boot ${BOOT_SECONDS}s, scenario $(elapsed "$SCENARIO_START")s)"
}

# ---------------------------------------------------------------------------
# Scenario building blocks

# initrd_for busybox|dracut
initrd_for() {
    case $1 in
        busybox) echo "$VM_BUSYBOX_INITRD" ;;
        dracut) echo "$VM_DRACUT_INITRD" ;;
        dracutng) echo "$VM_DRACUTNG_INITRD" ;;
        *) die "unknown initrd kind '$1' (busybox, dracut or dracutng)" ;;
    esac
}

# standard_extensions [VAR-PREFIX]: the feature sysext (erofs) and a confext
# (erofs) in /var/lib, a marker sysext (squashfs) in /etc/extensions. With
# VAR-PREFIX, the /var/lib ones go under that directory instead of the
# overlay's /var (for a separate /var disk).
standard_extensions() {
    local var=${1:-$OVERLAY/var}
    mkdir -p "$var/lib/extensions" "$var/lib/confexts" "$OVERLAY/etc/extensions"
    feature_sysext "$IMAGES/rdfeature" rdfeature
    make_erofs "$IMAGES/rdfeature" "$var/lib/extensions/rdfeature.raw"
    marker_sysext "$IMAGES/rdtools" rdtools
    make_squashfs "$IMAGES/rdtools" "$OVERLAY/etc/extensions/rdtools.raw"
    marker_confext "$IMAGES/rdconf" rdconf
    make_erofs "$IMAGES/rdconf" "$var/lib/confexts/rdconf.raw"
}

# expect_log REGEX...: lines that must be in the serial log as well.
expect_log() {
    local re
    for re in "$@"; do
        grep -aqE -- "$re" "$SERIAL_LOG" || { show_log_excerpt; die "no line of the serial log matches: $re"; }
        log "found: $(grep -aE -- "$re" "$SERIAL_LOG" | head -1 | tr -d '\r')"
    done
}
