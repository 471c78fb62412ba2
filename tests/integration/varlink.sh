#!/bin/bash
# varlink: `rdext varlink` serves io.systemd.sysext as systemd-sysext 257
# does, socket-activated (LISTEN_FDS, the fd named "varlink"), and
# varlinkctl from systemd 257 (the builders' trixie tree) can call it.
#  - the same calls against rdext and against systemd-sysext 257 (in the
#    trixie chroot, its own varlink mode, on an identical root) give the
#    same replies and errors (paths relative to the root, timestamps
#    masked) and leave the same hierarchies merged: info's interfaces, the
#    three interface descriptions, List (sysext, confext, none found,
#    without the 'more' flag), Merge, Merge again (AlreadyMerged), Refresh,
#    Unmerge, confext Merge/Unmerge, an unknown method, unknown interface,
#    bad parameters of each kind, a oneway call;
#  - rdext only: a merge through varlink shows the extension's files; a
#    non-root peer is refused; a message over the size bound and one that
#    is not JSON close the connection; a listening socket (Accept=no) is
#    served one connection after another, and a bare `rdext` with an fd
#    named "varlink" serves as systemd-sysext does.
source "$(dirname "$0")/lib.sh"
require_root_env
SRC_DIR=$(cd "$LIB_DIR/../.." && pwd)
TREE=$(bash -c 'source "$1/scripts/builders-env.sh"; builders_tree trixie' _ "$SRC_DIR") ||
    skip "no trixie tree (scripts/builders-env.sh)"
[[ -x $TREE/usr/bin/varlinkctl && -x $TREE/usr/bin/systemd-sysext ]] ||
    fail "the trixie tree has no varlinkctl or systemd-sysext"
command -v systemd-socket-activate >/dev/null || skip "no systemd-socket-activate"

# varlinkctl 257 on this host, through the tree's own loader and libraries.
VCTL=("$TREE/usr/lib64/ld-linux-x86-64.so.2" --library-path
      "$TREE/usr/lib/x86_64-linux-gnu:$TREE/usr/lib/x86_64-linux-gnu/systemd" "$TREE/usr/bin/varlinkctl")

B=$TEST_DIR/build
make_ext_tree "$B/one" one sysext -- "usr/share/one/f=one" "opt/one/f=one"
make_ext_tree "$B/two" two sysext -- "usr/share/two/f=two"
make_erofs "$B/two" "$B/two.raw"
make_ext_tree "$B/conf" conf confext -- "etc/conf.d/f=conf"
populate() {
    make_root "$1"
    cp -a "$B/one" "$1/var/lib/extensions/one"
    cp "$B/two.raw" "$1/var/lib/extensions/two.raw"
    cp -a "$B/conf" "$1/var/lib/confexts/conf"
}

# The calls, run where $S (the socket's address) and $R (the root) are
# valid, with varlinkctl as "${V[@]}": one line per call, the reply (or
# error and its parameters) with the root's path as ROOT and timestamps
# as T, without json-seq's record separators; List's replies sorted (their order is a hash table's in systemd).
CALLS='
norm() { sed -E "s|$R|ROOT|g; s/\"(Creation|Modification)Timestamp\":[0-9]+/\"\1Timestamp\":T/g" | tr -d "\036" | tr "\n" " "; }
c() { local name=$1; shift; local out rc=0
      out=$("${V[@]}" --json=short "$@" 2>&1) || rc=$?
      echo "$name: rc=$rc $(printf "%s\n" "$out" | sort | norm)"; }
d() { local out; out=$("${V[@]}" introspect "$S" "$1" 2>&1); echo "describe $1: $(printf "%s" "$out" | md5sum | cut -c1-12)"; }
m() { local h out=""; for h in usr opt etc; do grep -q " $R/$h " /proc/self/mountinfo && out+="$h "; done; echo "merged: ${out:-none}"; }
n() { local o; o=$(awk -v p="$R/usr" "\$5 == p { o = \$6 } END { print o }" /proc/self/mountinfo); [[ $o == *noexec* ]] && echo "usr: noexec" || echo "usr: exec"; }
echo "interfaces: $("${V[@]}" info "$S" | sed -n "/Interfaces:/,\$p" | tr -s " \n" " ")"
d io.systemd.sysext; d org.varlink.service; d io.systemd
c list            call --more "$S" io.systemd.sysext.List "{}"
c list-sysext     call --more "$S" io.systemd.sysext.List "{\"class\":\"sysext\"}"
c list-confext    call --more "$S" io.systemd.sysext.List "{\"class\":\"confext\"}"
c list-no-more    call "$S" io.systemd.sysext.List "{}"
c list-bad-class  call --more "$S" io.systemd.sysext.List "{\"class\":\"portable\"}"
c list-null-class call --more "$S" io.systemd.sysext.List "{\"class\":null}"
c list-int-class  call --more "$S" io.systemd.sysext.List "{\"class\":5}"
c list-unknown    call --more "$S" io.systemd.sysext.List "{\"bogus\":1}"
c merge-bad-force call "$S" io.systemd.sysext.Merge "{\"force\":\"yes\"}"
c refresh-bad     call "$S" io.systemd.sysext.Refresh "{\"noReload\":1}"
c unmerge-bad     call "$S" io.systemd.sysext.Unmerge "{\"noexec\":true}"
c no-method       call "$S" io.systemd.sysext.Nope "{}"
c no-interface    call "$S" io.example.Nope "{}"
c describe-none   call "$S" org.varlink.service.GetInterfaceDescription "{\"interface\":\"io.example\"}"
c describe-noarg  call "$S" org.varlink.service.GetInterfaceDescription "{}"
c info-arg        call "$S" org.varlink.service.GetInfo "{\"x\":1}"
m
c merge           call "$S" io.systemd.sysext.Merge "{\"noReload\":true}"
m
c merge-again     call "$S" io.systemd.sysext.Merge "{}"
c refresh         call "$S" io.systemd.sysext.Refresh "{\"noReload\":true,\"class\":\"sysext\"}"
m
c unmerge         call "$S" io.systemd.sysext.Unmerge "{}"
m
c merge-noexec    call "$S" io.systemd.sysext.Merge "{\"noexec\":true}"
n
c unmerge-noexec  call "$S" io.systemd.sysext.Unmerge "{}"
m
c merge-confext   call "$S" io.systemd.sysext.Merge "{\"class\":\"confext\"}"
m
c unmerge-confext call "$S" io.systemd.sysext.Unmerge "{\"class\":\"confext\",\"noReload\":false}"
m
c refresh-merges  call "$S" io.systemd.sysext.Refresh "{}"
m
c unmerge-oneway  call --oneway "$S" io.systemd.sysext.Unmerge "{}"
sleep 1; m
rm -rf "$R"/var/lib/extensions/* "$R"/var/lib/confexts/*
c list-none       call --more "$S" io.systemd.sysext.List "{}"
c merge-none      call "$S" io.systemd.sysext.Merge "{}"
m
'

check "systemd-sysext 257 serving io.systemd.sysext (reference)"
populate "$TEST_DIR/sd"
out_sd=$(in_trixie "$TEST_DIR/sd" '
    systemd-socket-activate -l /run/sock --accept --fdname=varlink systemd-sysext --root=/tmp/r 2>/tmp/sd.log &
    for _ in {1..50}; do [[ -S /run/sock ]] && break; sleep 0.1; done
    V=(varlinkctl) S=unix:/run/sock; eval "$calls"
    kill $!' calls="$CALLS" 2>"$TEST_DIR/sd.err") ||
    fail "the reference run failed: $(tail -5 "$TEST_DIR/sd.err")"
[[ $out_sd == *'list: rc=0 {"Type"'* ]] || fail "the reference run listed nothing: $out_sd"

# serve MODE ARGS...: rdext serving on $SOCK ("accept": a process per
# connection, as the unit's Accept=yes; "listen": one process, the
# listening socket), its stderr in $TEST_DIR/rdext-MODE.log.
SOCKDIR=/run/rdext-varlink
mkdir -p -m 0777 "$SOCKDIR"
SOCK=$SOCKDIR/sock
SERVER=
serve() {
    local mode=$1; shift
    stop_server
    local accept=(); [[ $mode == accept ]] && accept=(--accept)
    systemd-socket-activate -l "$SOCK" "${accept[@]}" --fdname=varlink \
        "$RDEXT" "$@" 2>>"$TEST_DIR/rdext-$mode.log" &
    SERVER=$!
    for _ in {1..50}; do [[ -S $SOCK ]] && break; sleep 0.1; done
    [[ -S $SOCK ]] || fail "no socket from systemd-socket-activate"
    chmod 0666 "$SOCK"
}
stop_server() {
    [[ -n $SERVER ]] || return 0
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=
    rm -f "$SOCK"
}
trap stop_server EXIT

check "rdext varlink gives the replies systemd-sysext 257 gives"
R=$TEST_DIR/rd IMPL=rdext
populate "$R"
bind_root "$R"
serve accept --root="$R" varlink
out_rd=$(set +eE +o pipefail; trap - ERR; V=("${VCTL[@]}") S=unix:$SOCK; eval "$CALLS")
diffs=$(diff <(echo "$out_sd") <(echo "$out_rd")) || true
printf '%s\n' "$out_rd" >"$TEST_DIR/rdext.calls"
printf '%s\n' "$out_sd" >"$TEST_DIR/sd257.calls"
n_calls=$(grep -c . <<<"$out_sd")
n_diff=$(grep -c '^>' <<<"$diffs" || true)
log "$n_calls calls, $n_diff replies differ"
[[ $out_sd == *"usr: noexec"* && $out_rd == *"usr: noexec"* ]] ||
    defer_fail "Merge with noexec: true did not mount /usr noexec (257: $(grep -o 'usr: [a-z]*' <<<"$out_sd"), rdext: $(grep -o 'usr: [a-z]*' <<<"$out_rd"))"
[[ -z $diffs ]] || defer_fail "rdext's varlink replies differ from systemd-sysext 257's (< 257, > rdext):
$diffs"

check "a merge through varlink shows the extension's files"
populate "$R"
"${VCTL[@]}" call "unix:$SOCK" io.systemd.sysext.Merge '{}' >/dev/null ||
    defer_fail "Merge failed: $(tail -3 "$TEST_DIR/rdext-accept.log")"
[[ $(cat "$R/usr/share/one/f" 2>/dev/null) == one && $(cat "$R/usr/share/two/f" 2>/dev/null) == two ]] ||
    defer_fail "after Merge, /usr/share/one/f and two/f are not there"
"${VCTL[@]}" call "unix:$SOCK" io.systemd.sysext.Unmerge '{}' >/dev/null || defer_fail "Unmerge failed"
[[ ! -e $R/usr/share/one ]] || defer_fail "after Unmerge, /usr/share/one is still there"

check "a non-root peer is refused"
if setpriv --reuid=65534 --regid=65534 --clear-groups -- "${VCTL[@]}" call "unix:$SOCK" \
        io.systemd.sysext.Merge '{}' >"$TEST_DIR/nobody.out" 2>&1; then
    defer_fail "an unprivileged Merge succeeded: $(cat "$TEST_DIR/nobody.out")"
fi
if grep -q " $R/usr " /proc/self/mountinfo; then defer_fail "an unprivileged Merge merged /usr"; fi

# raw_exchange BYTES-PYTHON-EXPR: sends the bytes and hangs up its side,
# prints what came back and whether the server closed the connection.
raw_exchange() {
    python3 - "$SOCK" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(eval(sys.argv[2]))
    s.shutdown(socket.SHUT_WR)
except (BrokenPipeError, ConnectionResetError):
    pass
got = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except ConnectionResetError:
    pass
except socket.timeout:
    print("open", got[:400]); sys.exit(0)
print("closed", got[:400])
EOF
}

check "an oversized message closes the connection"
out=$(raw_exchange 'b"{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":{\"x\":\"" + b"a" * (8 << 20)')
[[ $out == closed* ]] || defer_fail "8 MiB without a NUL: $out"
check "a message that is not JSON closes the connection"
out=$(raw_exchange 'b"not json\0"')
[[ $out == closed* ]] || defer_fail "not JSON: $out"
check "two calls on one connection are both answered"
out=$(raw_exchange 'b"{\"method\":\"org.varlink.service.GetInfo\"}\0{\"method\":\"io.systemd.sysext.Nope\",\"parameters\":{}}\0"')
[[ $out == *'"interfaces"'*MethodNotFound* ]] || defer_fail "two calls on one connection: $out"

check "a listening socket (Accept=no): a bare rdext with the fd named varlink serves connection after connection"
serve listen --root="$R"
for i in 1 2 3; do
    "${VCTL[@]}" call --more "unix:$SOCK" io.systemd.sysext.List '{}' >"$TEST_DIR/listen.$i" 2>&1 ||
        defer_fail "List on the listening socket, call $i: $(cat "$TEST_DIR/listen.$i")"
done
check "the listening server exits once idle (5 s without a connection)"
for _ in {1..80}; do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER" 2>/dev/null; then defer_fail "rdext still runs 8 s after its last connection"; fi
stop_server

check "no fd: rdext varlink refuses to run"
rc=0; "$RDEXT" varlink >"$TEST_DIR/nofd.out" 2>&1 || rc=$?
[[ $rc == 2 ]] || defer_fail "rdext varlink without LISTEN_FDS: exit $rc ($(cat "$TEST_DIR/nofd.out"))"
finish
