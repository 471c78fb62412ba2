#!/bin/bash
# rdext against systemd-sysext and against the syscall floor (floor.c).
#
#   tests/bench/bench.sh [--short] [--reps K] [--sizes "1 10 ..."]
#                        [--kinds "erofs squashfs dir gpt"] [--no-sysext]
#
# Full mode (default): N = 1 10 50 100 200 499 extensions of each kind
# (erofs, squashfs, directory, GPT DDI with an erofs usr partition), 5
# repetitions. Short mode (--short, what CTest runs): N = 1 and 10, erofs
# and directories, 3 repetitions.
#
# The images are generated in a scratch dir under /var/tmp (removed at the
# end unless KEEP=1). Everything runs inside a private mount namespace with
# a tmpfs on /run; each root is bind-mounted on itself, gets a tmpfs on its
# own /run (as a booted system and the initrd have) and is made rshared (the
# stock systemd-sysext 252 needs that, see sysext-compat.md). bench.py then
# times, per kind and N, interleaved rep by rep (rdext, systemd-sysext,
# floor; the order rotates each rep): merge, refresh with nothing changed,
# refresh after the top extension was replaced, unmerge; and the floor's
# merge (loop devices; plus erofs straight from the file). Every result is
# checked (the top extension's file in the merged /usr); rdext getting it
# wrong fails the run (exit 1), systemd-sysext getting it wrong is reported
# as "fails". Timings never fail the run.
#
# Environment: RDEXT (binary; default: the static build if present, else
# build/src/rdext), SYSTEMD_SYSEXT (default: systemd-sysext in PATH),
# KEEP=1, CI=true (missing privileges fail instead of skip).
set -Eeuo pipefail
shopt -s nullglob

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)

skip() {
    echo "bench: SKIP: $*" >&2
    [[ ${CI:-} == true ]] && exit 1
    exit 77
}

MODE=full REPS='' SIZES='' KINDS='' SYSEXT=1
if [[ -n ${BENCH_INNER:-} ]]; then MODE=$BENCH_MODE REPS=$BENCH_REPS SIZES=$BENCH_SIZES KINDS=$BENCH_KINDS; fi
while (( $# )); do
    case $1 in
        --short) MODE=short ;;
        --reps) REPS=$2; shift ;;
        --reps=*) REPS=${1#*=} ;;
        --sizes) SIZES=$2; shift ;;
        --sizes=*) SIZES=${1#*=} ;;
        --kinds) KINDS=$2; shift ;;
        --kinds=*) KINDS=${1#*=} ;;
        --no-sysext) SYSEXT=0 ;;
        --inner) ;;  # internal
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "bench: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $MODE == short ]]; then
    : "${REPS:=3}" "${SIZES:=1 10}" "${KINDS:=erofs dir}"
else
    : "${REPS:=5}" "${SIZES:=1 10 50 100 200 498 499}" "${KINDS:=erofs squashfs dir gpt}"
fi

# ---- outside the namespace: checks, binary choice, floor build ------------
if [[ -z ${BENCH_INNER:-} ]]; then
    [[ $(id -u) == 0 ]] || skip "needs root"
    modprobe overlay 2>/dev/null || true
    modprobe loop 2>/dev/null || true
    grep -qw overlay /proc/filesystems || skip "no overlay file system"
    [[ -e /dev/loop-control ]] || skip "no loop devices"
    command -v unshare >/dev/null || skip "no unshare"
    command -v python3 >/dev/null || skip "no python3"
    for k in $KINDS; do
        case $k in
            erofs|gpt) command -v mkfs.erofs >/dev/null || skip "no mkfs.erofs" ;;
            squashfs) command -v mksquashfs >/dev/null || skip "no mksquashfs" ;;
        esac
        [[ $k == gpt ]] && { command -v sfdisk >/dev/null || skip "no sfdisk"; }
    done

    if [[ -z ${RDEXT:-} ]]; then
        for c in "$TOP/build/build-static/src/rdext" "$TOP/build-static/src/rdext" "$TOP/build/src/rdext"; do
            [[ -x $c ]] && { RDEXT=$c; break; }
        done
    fi
    [[ -n ${RDEXT:-} && -x $RDEXT ]] || skip "no rdext binary (set RDEXT)"
    RDEXT=$(realpath "$RDEXT")

    BENCH_DIR=$(mktemp -d /var/tmp/rdext-bench.XXXXXX)
    cleanup() { [[ ${KEEP:-} == 1 ]] && echo "bench: kept $BENCH_DIR" >&2 || rm -rf "$BENCH_DIR"; }
    trap cleanup EXIT
    # A private copy: a rebuild of the tree during the run must not swap
    # binaries between rows.
    cp "$RDEXT" "$BENCH_DIR/rdext"
    export RDEXT_ORIGIN=$RDEXT
    RDEXT=$BENCH_DIR/rdext
    FLOOR=
    if command -v cc >/dev/null && cc -O2 -o "$BENCH_DIR/floor" "$HERE/floor.c"; then
        FLOOR=$BENCH_DIR/floor
    else
        echo "bench: no C compiler, or floor.c failed to build: no floor column" >&2
    fi
    SYSTEMD_SYSEXT=${SYSTEMD_SYSEXT:-$(command -v systemd-sysext || true)}
    (( SYSEXT )) || SYSTEMD_SYSEXT=
    export BENCH_INNER=1 BENCH_DIR RDEXT FLOOR SYSTEMD_SYSEXT \
        BENCH_MODE=$MODE BENCH_REPS=$REPS BENCH_SIZES=$SIZES BENCH_KINDS=$KINDS
    rc=0
    unshare -m --propagation private -- "$BASH" "$0" --inner || rc=$?
    exit "$rc"
fi

# ---- inside the private mount namespace -----------------------------------
mount -t tmpfs -o mode=0755 tmpfs /run   # systemd-sysext remounts /run; keep the host's safe
mkdir -p /run/systemd

P=$BENCH_DIR/pool      # one tree/image per extension, hard-linked into the roots
ROOTS=$BENCH_DIR/roots
mkdir -p "$P" "$ROOTS"
MAXN=0
for n in $SIZES; do (( n > MAXN )) && MAXN=$n; done
T=usr/share/bench

# tree DIR NAME CONTENT: a minimal sysext tree; CONTENT goes into usr/share/bench/top
tree() {
    local d=$1 name=$2
    mkdir -p "$d/usr/lib/extension-release.d" "$d/$T" "$d/usr/bin"
    printf 'ID=debian\nVERSION_ID=12\n' >"$d/usr/lib/extension-release.d/extension-release.$name"
    printf '%s\n' "$3" >"$d/$T/top"
    printf '%s\n' "$name" >"$d/$T/$name"
    printf '#!/bin/sh\necho %s\n' "$name" >"$d/usr/bin/$name"
    chmod 755 "$d/usr/bin/$name"
}
# GPT DDI with one x86-64 usr partition (erofs) at 1 MiB; prints "OFFSET SIZE"
gpt() {
    local src=$1 out=$2 fs=$BENCH_DIR/gptfs.tmp
    mkfs.erofs --quiet "$fs" "$src/usr" >/dev/null
    local mib=$(( ($(stat -c %s "$fs") + 1048575) / 1048576 ))
    truncate -s $(( (mib + 2) * 1048576 )) "$out"
    printf 'label: gpt\nstart=2048, size=%d, type=8484680c-9521-48c6-9c11-b0720656f69e, name=usr-x86-64\n' \
        $(( mib * 2048 )) | sfdisk -q "$out" >/dev/null
    dd if="$fs" of="$out" bs=1M seek=1 conv=notrunc status=none
    rm -f "$fs"
}
ext_name() { printf 'ext-%03d' "$1"; }

t0=$EPOCHREALTIME
echo "bench: generating up to $MAXN extensions of kinds: $KINDS" >&2
mkdir -p "$P/tree"
for (( i = 1; i < MAXN; i++ )); do n=$(ext_name $i); tree "$P/tree/$n" "$n" "$n"; done
tree "$P/tree/zz-top.1" zz-top "zz-top v1"
tree "$P/tree/zz-top.2" zz-top "zz-top v2"
for k in $KINDS; do
    [[ $k == dir ]] && continue
    mkdir -p "$P/$k"
    for src in "$P"/tree/*; do
        b=$(basename "$src")
        case $k in
            erofs) mkfs.erofs --quiet "$P/$k/$b.raw" "$src" >/dev/null ;;
            squashfs) mksquashfs "$src" "$P/$k/$b.raw" -quiet -noappend -all-root >/dev/null ;;
            gpt) gpt "$src" "$P/$k/$b.raw" ;;
        esac
    done
done

# One root per kind and N: N-1 extensions ext-001... plus zz-top (the top
# layer, sorted last). The other variant of zz-top waits in ROOT/bench-alt.
for k in $KINDS; do
    for n in $SIZES; do
        R=$ROOTS/$k-$n
        mkdir -p "$R"/{usr/bin,usr/lib,usr/share,opt,etc,var/lib/extensions,run,bench-alt}
        printf 'ID=debian\nVERSION_ID=12\n' >"$R/usr/lib/os-release"
        ln -s ../usr/lib/os-release "$R/etc/os-release"
        echo base >"$R/usr/bin/base-tool"
        E=$R/var/lib/extensions
        for (( i = 1; i < n; i++ )); do
            e=$(ext_name $i)
            if [[ $k == dir ]]; then cp -al "$P/tree/$e" "$E/$e"; else ln "$P/$k/$e.raw" "$E/$e.raw"; fi
        done
        if [[ $k == dir ]]; then
            cp -a "$P/tree/zz-top.1" "$E/zz-top"; cp -a "$P/tree/zz-top.2" "$R/bench-alt/zz-top"
        else
            ln "$P/$k/zz-top.1.raw" "$E/zz-top.raw"; ln "$P/$k/zz-top.2.raw" "$R/bench-alt/zz-top.raw"
        fi
        mount --bind "$R" "$R"
        # A root's /run is a tmpfs on a running system and in the initrd,
        # where rdext keeps its state and staging area (systemd-sysext uses
        # the tmpfs /run above). As a directory on /var/tmp's file system
        # it cost rdext ~0.45 ms per merge here: removing the staging
        # directory from an ext4 mounted with `discard` waits for the discard.
        mount -t tmpfs -o mode=0755 tmpfs "$R/run"
        mount --make-rshared "$R"
    done
done
echo "bench: images ready in $(python3 -c "print(round($EPOCHREALTIME - $t0, 1))") s" >&2

export MODE REPS SIZES KINDS
exec python3 "$HERE/bench.py"
