#!/usr/bin/env bash
# The unit tests and the host integration tests (labels unit and root)
# against rdext built with AddressSanitizer and UndefinedBehaviorSanitizer.
#
# Configures this source tree again in its own build directory
# (RDEXT_ASAN_BUILD_DIR, default <repo>/build/build-asan) with g++ and
# -fsanitize=address,undefined, builds rdext and rdext_unit, and runs
# `ctest -L "unit|root"` there; those tests take the ASan rdext (their
# RDEXT is that build's binary). Any sanitizer report fails the test that
# triggered it: UBSan does not recover, ASan halts on the first error.
# Extra arguments go to that ctest (e.g. -R merge_kinds).
#
# Environment: RDEXT_ASAN_BUILD_DIR, RDEXT_ASAN_JOBS (ninja -j, default
# nproc), RDEXT_ASAN_CTEST_JOBS (ctest -j, default 2), CC/CXX (default
# gcc/g++), ASAN_OPTIONS/UBSAN_OPTIONS (replace the defaults below).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build_dir=${RDEXT_ASAN_BUILD_DIR:-$repo/build/build-asan}
jobs=${RDEXT_ASAN_JOBS:-$(nproc)}  # ninja -j

flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# -O1 -g with assertions on: quicker to build than -O2, and the usual
# optimisation level for sanitizer builds (readable traces).
cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_C_COMPILER="${CC:-gcc}" -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DRDEXT_FAULT_INJECTION=ON -DRDEXT_SANITIZE_BUILD=ON >/dev/null
ninja -C "$build_dir" -j "$jobs" rdext rdext_unit

# Reports go to stderr, which the integration tests show on failure; the
# exit code makes sure a report is never mistaken for an ordinary error exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
cd "$build_dir"
ctest --output-on-failure -j "${RDEXT_ASAN_CTEST_JOBS:-2}" -L "unit|root" "$@"
