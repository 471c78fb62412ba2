#!/usr/bin/env bash
# The unit tests and the host integration tests (labels unit and root)
# against rdext built with AddressSanitizer and UndefinedBehaviorSanitizer.
#
# Configures this source tree again in its own build directory
# (RDEXT_ASAN_BUILD_DIR, default <repo>/build/build-asan) with g++ and
# -fsanitize=address,undefined, builds rdext and rdext_unit, and runs
# `ctest -L "unit|root"` there; those tests take the ASan rdext (their
# RDEXT is that build's binary). Any sanitizer report fails the run, also
# one from an rdext whose exit status or stderr a test ignores on purpose:
# every report also goes to a file under <build>/sanitizer-reports (log_path),
# scanned with every test's output (Testing/Temporary/LastTest.log) at the
# end for AddressSanitizer, LeakSanitizer and UBSan's "runtime error". UBSan
# does not recover, ASan halts on the first error.
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

# The exit code makes sure a report is never mistaken for an ordinary error
# exit; log_path keeps every report (files <dir>/asan.PID, ubsan.PID) where
# no test can discard it.
reports=$build_dir/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}:log_path=$reports/asan
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}:log_path=$reports/ubsan
cd "$build_dir"
rc=0
ctest --output-on-failure -j "${RDEXT_ASAN_CTEST_JOBS:-2}" -L "unit|root" "$@" || rc=$?

sanitizer_re='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error'
found=$(grep -lE "$sanitizer_re" "$reports"/* Testing/Temporary/LastTest.log 2>/dev/null || true)
if [[ -n $found ]]; then
    for f in $found; do
        printf -- '--- sanitizer report in %s:\n' "$f" >&2
        grep -E -m 5 -A 25 "$sanitizer_re" "$f" >&2
    done
    echo "sanitize: FAIL: sanitizer reports (see above), whatever the tests' own verdicts" >&2
    exit 1
fi
exit "$rc"
