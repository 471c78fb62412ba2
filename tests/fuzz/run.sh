#!/usr/bin/env bash
# Builds and runs rdext's libFuzzer targets (see README.md here).
#
#   run.sh build                 configure and build the fuzz build with clang
#   run.sh run TARGET [SECONDS]  fuzz TARGET (os_release, cmdline, vpick, state,
#                                version, policy, verity_sig, root_hash, probe) for SECONDS (default 15) from a copy
#                                of its seed corpus; fails on any crash
#   run.sh replay                every seed and regressions/TARGET/ input once
#   run.sh list                  the targets
#
# Environment: RDEXT_FUZZ_BUILD_DIR (default <repo>/build/build-fuzz),
# RDEXT_FUZZ_WORK_DIR (scratch corpus and crash files; default a temp dir,
# removed on success and kept on failure), CC_FUZZ/CXX_FUZZ (default clang,
# clang++), RDEXT_FUZZ_JOBS (ninja -j, default nproc),
# RDEXT_FUZZ_ARGS (more libFuzzer flags).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build_dir=${RDEXT_FUZZ_BUILD_DIR:-$repo/build/build-fuzz}
targets=(os_release cmdline vpick state version policy verity_sig root_hash probe)

die() { echo "fuzz: $*" >&2; exit 1; }

build() {
    # Debian's clang-14 package installs clang++-14; the clang package adds clang++.
    local cxx=${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14 || echo clang++)}
    local cc=${CC_FUZZ:-$(command -v clang || command -v clang-14 || echo clang)}
    command -v "$cxx" >/dev/null || die "$cxx not found (scripts/setup-debian.sh installs clang)"
    cmake -S "$here/targets" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=None \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
    ninja -C "$build_dir" -j "${RDEXT_FUZZ_JOBS:-$(nproc)}"
}

# Seeds for the probe target are made here rather than checked in as
# binaries: the first 4 KiB (the fuzzer's -max_len) of a GPT image with a
# root partition (a 4-entry table, so it fits) and of bare erofs, squashfs
# and ext4 images. Tools that are missing are skipped.
image_seeds() {
    local out=$1 tmp
    tmp=$(mktemp -d /tmp/rdext-fuzz-seeds.XXXXXX)
    mkdir -p "$tmp/tree/usr/lib/extension-release.d"
    echo ID=debian >"$tmp/tree/usr/lib/extension-release.d/extension-release.x"
    truncate -s 1M "$tmp/gpt"
    printf 'label: gpt\ntable-length: 4\nfirst-lba: 34\nstart=40, size=200, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709\n' |
        sfdisk -q "$tmp/gpt" >/dev/null 2>&1 && head -c 4096 "$tmp/gpt" >"$out/seed-gpt"
    mkfs.erofs "$tmp/erofs" "$tmp/tree" >/dev/null 2>&1 && head -c 4096 "$tmp/erofs" >"$out/seed-erofs"
    mksquashfs "$tmp/tree" "$tmp/squashfs" -quiet -noappend >/dev/null 2>&1 &&
        head -c 4096 "$tmp/squashfs" >"$out/seed-squashfs"
    mkfs.ext4 -q -F -d "$tmp/tree" "$tmp/ext4" 1M >/dev/null 2>&1 && head -c 4096 "$tmp/ext4" >"$out/seed-ext4"
    rm -rf "$tmp"
}

run() {
    local target=$1 seconds=${2:-15}
    [[ " ${targets[*]} " == *" $target "* ]] || die "unknown target $target (run.sh list)"
    local bin=$build_dir/fuzz_$target
    [ -x "$bin" ] || die "$bin not built (run.sh build)"
    local work=${RDEXT_FUZZ_WORK_DIR:-}
    local own_work=0
    if [ -z "$work" ]; then work=$(mktemp -d "/tmp/rdext-fuzz-$target.XXXXXX"); own_work=1; fi
    mkdir -p "$work/corpus" "$work/artifacts"
    # The fuzzer adds what it finds to its corpus: copy, so the repo stays as it is.
    cp "$here/corpus/$target"/* "$work/corpus/"
    [ "$target" = probe ] && image_seeds "$work/corpus"
    local log=$work/fuzz.log rc=0
    # -error_exitcode: any crash, leak, sanitizer report or timeout fails.
    "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
        ${RDEXT_FUZZ_ARGS:-} "$work/corpus" >"$log" 2>&1 || rc=$?
    local execs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$rc" -ne 0 ]; then
        tail -n 80 "$log" >&2
        echo "fuzz_$target: FAILED (exit $rc) after ${execs:-?} executions; reproducers:" >&2
        ls -l "$work/artifacts" >&2
        for f in "$work/artifacts"/*; do
            [ -f "$f" ] && { echo "--- $f (base64):" >&2; base64 -w0 "$f" >&2; echo >&2; }
        done
        echo "reproduce: $bin $work/artifacts/<file>" >&2
        exit 1
    fi
    echo "fuzz_$target: ${execs:-?} executions in ${seconds}s, no crash;" \
         "corpus $(ls "$here/corpus/$target" | wc -l) seeds -> $(ls "$work/corpus" | wc -l) inputs"
    [ "$own_work" = 1 ] && rm -rf "$work"
    return 0
}

# Every seed and every input that once crashed a target (regressions/TARGET/)
# run once through it: quick, so CI replays them all on each run.
replay() {
    local t bin files n=0
    for t in "${targets[@]}"; do
        bin=$build_dir/fuzz_$t
        [ -x "$bin" ] || die "$bin not built (run.sh build)"
        files=("$here/corpus/$t"/* "$here/regressions/$t"/*)
        local existing=()
        for f in "${files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
        [ ${#existing[@]} -gt 0 ] || continue
        "$bin" -runs=1 "${existing[@]}" >/dev/null 2>"$build_dir/replay_$t.log" || {
            tail -n 40 "$build_dir/replay_$t.log" >&2
            die "fuzz_$t fails on one of its seeds or regression inputs"
        }
        n=$(( n + ${#existing[@]} ))
    done
    echo "fuzz replay: $n inputs (seeds and regressions) through ${#targets[@]} targets, no crash"
}

case ${1:-} in
    build) build ;;
    replay) replay ;;
    run) shift; [ $# -ge 1 ] || die "usage: run.sh run TARGET [SECONDS]"; run "$@" ;;
    list) printf '%s\n' "${targets[@]}" ;;
    *) die "usage: run.sh build | run TARGET [SECONDS] | replay | list" ;;
esac
