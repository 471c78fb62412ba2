#!/usr/bin/env bash
# The fully static rdext (cmake -DRDEXT_STATIC=ON), as it goes into an
# initramfs: configures and builds it in a build directory of its own, checks
# that it is statically linked (rdext-fetch, the fetching binary, is built
# beside it and checked by static_fetch.sh), then runs `--version` and `--help` in a chroot
# holding nothing but the binary, and prints its size.
#
# The first run builds the static C libraries (scripts/static-deps.sh, about
# two minutes; cached in /var/cache/rdext/static-deps, see that script).
# Needs root for chroot: without it SKIP (exit 77), or a failure when CI=true.
#
#   RDEXT_STATIC_BUILD_DIR   build directory (default: build-static in the
#                            CTest build tree, or ./build-static)
#   RDEXT_STATIC_BUILD_TYPE  CMAKE_BUILD_TYPE of that build (default: the
#                            project's default)
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    if [ "${CI:-}" = true ]; then
        echo "FAIL: needs root for chroot, and CI=true" >&2
        exit 1
    fi
    echo "SKIP: needs root"
    exit 77
fi

src=${RDEXT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${RDEXT_STATIC_BUILD_DIR:-${RDEXT_STATIC_DEFAULT_BUILD_DIR:-$src/build-static}}
cmake=${RDEXT_CMAKE:-cmake}
generator=${RDEXT_CMAKE_GENERATOR:-Ninja}

fail() { echo "FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "static build in $build" >&2
config=(-DRDEXT_STATIC=ON -DRDEXT_TESTS=OFF)
[ -z "${RDEXT_STATIC_BUILD_TYPE:-}" ] || config+=(-DCMAKE_BUILD_TYPE="$RDEXT_STATIC_BUILD_TYPE")
start=$SECONDS
if ! "$cmake" -S "$src" -B "$build" -G "$generator" "${config[@]}" >"$tmp/configure.log" 2>&1; then
    tail -n 60 "$tmp/configure.log" >&2
    fail "configure with RDEXT_STATIC=ON failed"
fi
# rdext-fetch too: static_fetch checks it, and the VM tests' initrds fetch with it.
if ! "$cmake" --build "$build" --target rdext rdext-fetch >"$tmp/build.log" 2>&1; then
    tail -n 60 "$tmp/build.log" >&2
    fail "static build failed"
fi
echo "configured and built in $((SECONDS - start)) s" >&2
# glibc's warnings about NSS functions (getpwnam_r & co) in a static link.
grep -o "warning: Using '[a-z_]*' in statically linked" "$tmp/build.log" | sort -u >&2 || true

bin=$build/src/rdext
stripped=$bin.stripped
[ -x "$bin" ] || fail "no $bin"
[ -x "$stripped" ] || fail "no $stripped"

for b in "$bin" "$stripped"; do
    out=$(ldd "$b" 2>&1 || true)
    if ! grep -q "not a dynamic executable" <<<"$out"; then
        kind=$(file -b "$b" 2>/dev/null || true)
        grep -q "statically linked" <<<"$kind" || fail "$b is not static: ldd says: $out"
    fi
    if grep -q 'INTERP' <<<"$(readelf -lW "$b")"; then fail "$b has a program interpreter"; fi
done
echo "ldd: not a dynamic executable" >&2

# Nothing but the binary: no loader, no libraries, no /proc, no /dev.
root=$tmp/root
mkdir "$root"
cp "$stripped" "$root/rdext"
[ "$(ls -A "$root")" = rdext ] || fail "chroot is not empty"
out=$(chroot "$root" /rdext --version) || fail "chroot /rdext --version failed"
grep -Eq '^rdext [0-9]' <<<"$out" || fail "unexpected --version output: $out"
echo "chroot: $out" >&2
out=$(chroot "$root" /rdext --help) || fail "chroot /rdext --help failed"
grep -q '^Usage: rdext' <<<"$out" || fail "unexpected --help output: $out"
echo "chroot: --help ok ($(wc -l <<<"$out") lines)" >&2

size=$(stat -c %s "$bin")
ssize=$(stat -c %s "$stripped")
awk -v u="$size" -v s="$ssize" 'BEGIN {
    printf "static rdext: %d bytes (%.2f MiB) unstripped, %d bytes (%.2f MiB) stripped\n",
           u, u / 1048576, s, s / 1048576 }'
echo "PASS"
