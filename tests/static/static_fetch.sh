#!/usr/bin/env bash
# The fetching binary of the static build, rdext-fetch (the same program as
# rdext with libcurl and TLS), and the merge binary without them:
#  - rdext-fetch and its stripped copy are static; its size is printed
#    beside the merge binary's;
#  - the merge binary links neither libcurl nor libssl, nor fetch's own
#    code (src/fetch: its 4 MiB budget);
#  - in an empty chroot (its own network namespace, loopback only),
#    `rdext fetch` of an https source without rdext-fetch beside it fails
#    saying so; with rdext-fetch beside it, it runs rdext-fetch, which
#    fetches the manifest over TLS from a server of the test's own CA.
# Checks the build the static_binary test made (fixture static_rdext).
#
#   RDEXT_STATIC_BUILD_DIR   that build (default: build-static in the CTest tree)
set -euo pipefail

build=${RDEXT_STATIC_BUILD_DIR:-${RDEXT_STATIC_DEFAULT_BUILD_DIR:?}}
src=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }

main=$build/src/rdext
fetch=$build/src/rdext-fetch
if [ ! -f "$fetch.stripped" ] || [ ! -f "$main.stripped" ]; then
    if [ "${CI:-}" = true ]; then fail "no $fetch.stripped (the static_binary test builds it), and CI=true"; fi
    echo "SKIP: no $fetch.stripped (run the static_binary test first)"
    exit 77
fi
if [ "$(id -u)" != 0 ]; then
    if [ "${CI:-}" = true ]; then fail "needs root for chroot and unshare, and CI=true"; fi
    echo "SKIP: needs root"
    exit 77
fi

for b in "$fetch" "$fetch.stripped"; do
    if readelf -lW "$b" | grep -q INTERP; then fail "$b has a program interpreter"; fi
    if readelf -dW "$b" 2>/dev/null | grep NEEDED; then fail "$b needs shared libraries"; fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm "$fetch" >"$tmp/fetch.nm"
nm "$main" >"$tmp/main.nm"
grep -q ' T curl_easy_perform$' "$tmp/fetch.nm" || fail "$fetch does not contain libcurl"
grep -q ' T SSL_CTX_new$' "$tmp/fetch.nm" || fail "$fetch does not contain libssl"
if grep -E ' [TtDdBbRr] (curl_|Curl_|SSL_CTX_|SSL_connect)' "$tmp/main.nm"; then
    fail "the merge binary $main contains libcurl or libssl"
fi
if grep -q 'libcurl' "$main.stripped"; then fail "the stripped merge binary names libcurl"; fi
# rdext::fetch(...) is fetch's entry point (src/fetch/fetch.h).
grep -qE ' T _ZN5rdext5fetchERKNS_6Target' "$tmp/fetch.nm" || fail "$fetch does not contain rdext::fetch"
grep -qE ' T _ZN5rdext5fetchERKNS_6Target' "$tmp/main.nm" && fail "the merge binary $main contains rdext::fetch (src/fetch)"
echo "rdext: no libcurl, no libssl; rdext-fetch: static, libcurl and libssl" >&2

# An https server of the test's own CA on 127.0.0.1, in a network
# namespace with nothing but the loopback; the chroot holds the binaries,
# one transfer file and /proc (rdext finds rdext-fetch beside itself).
mkdir -p "$tmp/web" "$tmp/pki" "$tmp/root/etc/sysupdate.d" "$tmp/root/proc"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=rdext test ca" \
    -keyout "$tmp/pki/ca.key" -out "$tmp/root/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$tmp/pki/server.key" -out "$tmp/pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$tmp/pki/ext"
openssl x509 -req -in "$tmp/pki/server.csr" -CA "$tmp/root/ca.pem" -CAkey "$tmp/pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$tmp/pki/ext" -out "$tmp/pki/server.pem" 2>/dev/null
: >"$tmp/web/SHA256SUMS"
echo normal >"$tmp/mode"
cat >"$tmp/root/etc/sysupdate.d/foo.transfer" <<EOT
[Transfer]
Verify=no
[Source]
Type=url-file
Path=https://127.0.0.1:8443/
MatchPattern=foo-@v.raw
[Target]
Type=regular-file
Path=/opt/extensions/foo
CurrentSymlink=/etc/extensions/foo.raw
EOT
cp "$main.stripped" "$tmp/root/rdext"

# run_chroot: `rdext fetch` in the chroot, in a network namespace of its
# own with the https server; its stderr in $tmp/err.
run_chroot() {
    unshare -mn -- bash -euc '
        ip link set lo up
        python3 "$1" --dir "$2/web" --mode-file "$2/mode" --port 8443 \
            --cert "$2/pki/server.pem" --key "$2/pki/server.key" &
        server=$!
        for _ in $(seq 50); do
            python3 -c "import socket; socket.create_connection((\"127.0.0.1\", 8443), 1)" 2>/dev/null && break
            sleep 0.1
        done
        mount -t proc proc "$2/root/proc"
        rc=0
        chroot "$2/root" /rdext --root=/ --ca=/ca.pem --timeout=20 fetch 2>"$2/err" || rc=$?
        kill $server
        exit $rc
    ' run_chroot "$src/tests/integration/fetch_http_server.py" "$tmp" || true
    sed 's/^/    | /' "$tmp/err" >&2
}

run_chroot
grep -q "cannot run /rdext-fetch: .*fetching is in rdext-fetch" "$tmp/err" || fail "without rdext-fetch, fetch does not say it is missing"

cp "$fetch.stripped" "$tmp/root/rdext-fetch"
run_chroot
grep -q "cannot run /rdext-fetch" "$tmp/err" && fail "rdext fetch did not run rdext-fetch beside it"
grep -qi "TLS\|certificate" "$tmp/err" && fail "rdext-fetch's TLS failed"
grep -q "offers no file matching" "$tmp/err" || fail "rdext-fetch did not read the manifest over https"
echo "chroot: rdext fetch ran rdext-fetch, which read the manifest over https" >&2

m=$(stat -c %s "$main.stripped")
f=$(stat -c %s "$fetch.stripped")
awk -v m="$m" -v f="$f" 'BEGIN {
    printf "stripped static rdext: %d bytes (%.2f MiB); rdext-fetch: %d bytes (%.2f MiB), %+d bytes\n",
           m, m / 1048576, f, f / 1048576, f - m }'
echo "PASS"
