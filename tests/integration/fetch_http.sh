#!/bin/bash
# rdext fetch over HTTP and HTTPS (libcurl), from servers of the test's own
# (fetch_http_server.py) on 127.0.0.1 inside a network namespace the test
# creates, which holds nothing but its loopback: no other address can be
# contacted. The HTTPS server's certificate comes from a CA the test makes.
#  - the newest compatible version is chosen over http and over https;
#  - TLS with a CA rdext does not trust is refused (the system bundle, and a
#    pinned --ca= of another CA);
#  - a checksum mismatch is refused and leaves nothing behind;
#  - a server that is down, one that stalls (before answering, or half way
#    through the image) and one that closes mid-file all end within the
#    timeout and leave nothing behind;
#  - a redirect to file:// is refused; one to the same server is followed;
#  - a 404 on the manifest and a 500 are reported naming the URL;
#  - http_proxy & co in the environment are not used.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fetch_lib.sh"
require_root_env

command -v gpg >/dev/null || skip "no gpg (scripts/setup-debian.sh installs it)"
command -v gpgv >/dev/null || skip "no gpgv (scripts/setup-debian.sh installs it)"
command -v openssl >/dev/null || skip "no openssl (scripts/setup-debian.sh installs it)"
command -v ip >/dev/null || skip "no ip (scripts/setup-debian.sh installs iproute2)"

# A network namespace of our own, with only the loopback up.
if [[ -z ${RDEXT_IT_NETNS:-} ]]; then
    RDEXT_IT_NETNS=1 exec unshare -n -- "$BASH" "$0"
fi
ip link set lo up
[[ $(ip -o link show | wc -l) == 1 ]] || fail "the network namespace has more than the loopback: $(ip -o link show)"

R=$TEST_DIR/root
B=$TEST_DIR/build
T=usr/share/rdext-test
WEB=$TEST_DIR/web
MODE=$TEST_DIR/mode
make_root "$R"
mkdir -p "$WEB" "$B"
fetch_setup

# Two CAs: the server's certificate is signed by the first; the second is
# one rdext may be told to trust instead.
pki() {
    local d=$TEST_DIR/pki
    mkdir -p "$d"
    for ca in ca other-ca; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=rdext test $ca" \
            -keyout "$d/$ca.key" -out "$d/$ca.pem" 2>/dev/null
    done
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -extfile "$d/ext" -out "$d/server.pem" 2>/dev/null
}
pki
CA=$TEST_DIR/pki/ca.pem

HTTP=127.0.0.1:8080
HTTPS=127.0.0.1:8443
DOWN=127.0.0.1:8081  # nothing listens there
echo normal >"$MODE"
server() {
    python3 "$(dirname "$0")/fetch_http_server.py" --dir "$WEB" --mode-file "$MODE" "$@" &
    SERVERS+=("$!")
}
SERVERS=()
trap 'kill "${SERVERS[@]}" 2>/dev/null || true' EXIT
server --port 8080
server --port 8443 --cert "$TEST_DIR/pki/server.pem" --key "$TEST_DIR/pki/server.key"
for port in 8080 8443; do
    for _ in {1..50}; do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
        sleep 0.1
    done
done

publish() {
    (cd "$WEB" && rm -f SHA256SUMS SHA256SUMS.gpg && sha256sum -- *.raw >SHA256SUMS)
    gpg --batch --quiet --local-user good@example.org --detach-sign -o "$WEB/SHA256SUMS.gpg" "$WEB/SHA256SUMS"
}
listing() { ls -A "$1" 2>/dev/null | sort | tr '\n' ' '; }
transfer_field() { json_query "$TEST_DIR/last.out" "[t for t in d['transfers'] if t['name'] == 'foo'][0]['$1']"; }
# source URL: the transfer fetches from URL
source_url() {
    mkdir -p "$R/etc/sysupdate.d"
    cat >"$R/etc/sysupdate.d/foo.transfer" <<EOT
[Source]
Type=url-file
Path=$1
MatchPattern=foo-@v-%a.raw

[Target]
Type=regular-file
Path=/opt/extensions/foo
CurrentSymlink=/etc/extensions/foo.raw
EOT
}
# fetch [ARGS...]: rdext fetch, timed (ELAPSED, seconds)
fetch() {
    local t0=$SECONDS
    run_rdext --root="$R" --keyring="$KEYRING" --json=short "$@" fetch
    ELAPSED=$((SECONDS - t0))
}
# unchanged: the target holds what it held before this check
unchanged() {
    [[ $(listing "$R/opt/extensions/foo") == "$BEFORE" ]] || fail "the target now holds: $(listing "$R/opt/extensions/foo")"
    [[ $(readlink "$R/etc/extensions/foo.raw") == "$LINK" ]] || fail "CurrentSymlink changed: $(readlink "$R/etc/extensions/foo.raw")"
}
remember() { BEFORE=$(listing "$R/opt/extensions/foo"); LINK=$(readlink "$R/etc/extensions/foo.raw" || true); }

image foo 1 "$WEB/foo-1-$ARCH.raw"
image foo 2 "$WEB/foo-2-$ARCH.raw"
image foo 3 "$WEB/foo-3-$ARCH.raw" 11  # newest by name, but its VERSION_ID does not fit
publish

check "http: the newest compatible version is chosen"
source_url "http://$HTTP/"
fetch
expect_rc 0
[[ $(listing "$R/opt/extensions/foo") == "foo-2-$ARCH.raw " ]] || fail "target holds: $(listing "$R/opt/extensions/foo")"
[[ $(transfer_field version) == 2 && $(transfer_field result) == fetched ]] || fail "record: $(last_out)"
[[ $(transfer_field source) == "http://$HTTP/" ]] || fail "source in the record: $(last_out)"

check "https: a CA rdext does not trust is refused (the system bundle, then another pinned CA)"
image foo 4 "$WEB/foo-4-$ARCH.raw"
publish
source_url "https://$HTTPS/"
remember
fetch
expect_rc 1
expect_stderr_line "https://$HTTPS/SHA256SUMS" "certificate|TLS|SSL"
unchanged
fetch --ca="$TEST_DIR/pki/other-ca.pem"
expect_rc 1
expect_stderr_line "https://$HTTPS/SHA256SUMS" "certificate|TLS|SSL"
unchanged

check "https: with the server's CA pinned, the newest compatible version is chosen"
fetch --ca="$CA"
expect_rc 0
[[ $(transfer_field version) == 4 ]] || fail "foo-4 not fetched over https: $(last_out)"
[[ $(listing "$R/opt/extensions/foo") == "foo-2-$ARCH.raw foo-4-$ARCH.raw " ]] || fail "target: $(listing "$R/opt/extensions/foo")"

check "a pinned CA of the root is not used: --ca= of the running system only"
mkdir -p "$R/etc/rdext" && cp "$CA" "$R/etc/rdext/fetch-ca.pem"
image foo 5 "$WEB/foo-5-$ARCH.raw"
publish
remember
fetch
expect_rc 1
unchanged
rm "$R/etc/rdext/fetch-ca.pem"

check "http: a checksum mismatch is refused and leaves nothing behind"
source_url "http://$HTTP/"
echo tampered >>"$WEB/foo-5-$ARCH.raw"
fetch
# foo-5 is refused; foo-4 stays the newest
expect_stderr_line "foo-5" "SHA-256"
unchanged
image foo 5 "$WEB/foo-5-$ARCH.raw"
publish

check "a server that is down: the fetch fails at once, nothing changes"
source_url "http://$DOWN/"
fetch --timeout=20
expect_rc 1
expect_stderr_line "http://$DOWN/SHA256SUMS" "connect|refused"
((ELAPSED < 10)) || fail "a refused connection took $ELAPSED s"
unchanged

check "a server that accepts and never answers: ends within the timeout, nothing changes"
source_url "http://$HTTP/"
echo stall >"$MODE"
fetch --timeout=3
expect_rc 1
expect_stderr_line "SHA256SUMS" "time"
((ELAPSED <= 6)) || fail "a stalled server held the fetch for $ELAPSED s (timeout 3 s)"
unchanged

check "a server that stalls half way through the image: ends within the timeout, nothing left"
echo stall-image >"$MODE"
fetch --timeout=3
expect_rc 1
expect_stderr_line "foo-5" "time"
((ELAPSED <= 6)) || fail "a stalled download held the fetch for $ELAPSED s (timeout 3 s)"
unchanged

check "a server that closes mid-file: the download fails, nothing left"
echo close-image >"$MODE"
fetch --timeout=20
expect_rc 1
expect_stderr_line "foo-5"
((ELAPSED < 10)) || fail "a closed connection took $ELAPSED s"
unchanged

check "a redirect to file:// is refused"
echo redirect-file >"$MODE"
fetch
expect_rc 1
expect_stderr_line "http://$HTTP/SHA256SUMS" "redirect|protocol"
unchanged

check "a 500 is reported with the URL and the status"
echo error >"$MODE"
fetch
expect_rc 1
expect_stderr_line "http://$HTTP/SHA256SUMS" "500"
unchanged

check "a 404 on the manifest is reported with the URL"
echo normal >"$MODE"
source_url "http://$HTTP/nothing/"
fetch
expect_rc 1
expect_stderr_line "http://$HTTP/nothing/SHA256SUMS" "404"
unchanged

check "a redirect within the server is followed"
source_url "http://$HTTP/"
echo redirect >"$MODE"
fetch
expect_rc 0
[[ $(transfer_field version) == 5 ]] || fail "foo-5 not fetched through a redirect: $(last_out)"
[[ -z $(ls -A "$R/opt/extensions/foo" | grep -v '^foo-[245]-') ]] || fail "left behind: $(listing "$R/opt/extensions/foo")"

check "a proxy named by the environment is not used"
echo normal >"$MODE"
http_proxy=http://$DOWN https_proxy=http://$DOWN HTTPS_PROXY=http://$DOWN ALL_PROXY=http://$DOWN fetch
expect_rc 0
[[ $(transfer_field result) == unchanged ]] || fail "with a proxy in the environment: $(last_out)"

finish
