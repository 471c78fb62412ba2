#!/bin/bash
# `rdext inspect IMAGE`: what a merge would make of one image, on a host
# without device-mapper. Images are built as the VM verity scenario builds
# them (erofs, `veritysetup format` sidecars, detached PKCS#7 over the hex
# root hash by `openssl smime`, a trusted test key and an attacker's key):
#   plain erofs, a directory, a GPT disk image: accepted by default policy
#   signed by the trusted key: accepted under a signed-only policy, signer
#     subject and SHA-256 fingerprint shown (from --certificate= and from the
#     running system's verity.d, as merge finds its anchors)
#   signed by the attacker, garbage .p7s, verity without signature under a
#     signed-only policy, a data block changed after signing, another OS:
#     refused (exit 1) with a reason naming the image
#   a signed confext: class confext, accepted
#   usage errors (no such image, invalid policy, no image): exit 2
# Every run leaves no mount and no loop device behind.
source "$(dirname "$0")/lib.sh"
require_root_env
command -v veritysetup >/dev/null || skip "veritysetup missing (cryptsetup-bin)"
command -v openssl >/dev/null || skip "openssl missing"

R=$TEST_DIR/root
B=$TEST_DIR/build
I=$TEST_DIR/images
K=$TEST_DIR/keys
make_root "$R"
mkdir -p "$I" "$K"
CMDLINE=$TEST_DIR/cmdline
: >"$CMDLINE"
signed_only='root=signed+absent:usr=signed+absent'

for who in trusted attacker; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rdext $who test key" \
        -keyout "$K/$who.key" -out "$K/$who.crt" 2>/dev/null
done
trusted_fp=$(openssl x509 -in "$K/trusted.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')

# sign HEX KEY OUT: a detached DER PKCS#7 over the hex string (no newline).
sign() {
    printf '%s' "$1" | openssl smime -sign -binary -noattr -nocerts -outform DER \
        -inkey "$K/$2.key" -signer "$K/$2.crt" -out "$3"
}

# verity_image NAME CLASS [KEY]: erofs image NAME.raw of CLASS in $I with
# NAME.verity and NAME.roothash, signed by KEY if given; sets ROOT_HASH.
verity_image() {
    local name=$1 class=$2 key=${3:-} file
    if [[ $class == sysext ]]; then file="usr/share/$name/marker=$name"; else file="etc/$name.conf=$name"; fi
    make_ext_tree "$B/$name" "$name" "$class" -- "$file"
    # Some bulk, so a data block can be changed without touching metadata.
    head -c 262144 /dev/zero | tr '\0' 'x' >"$B/$name/${file%%=*}.bulk"
    make_erofs "$B/$name" "$I/$name.raw"
    ROOT_HASH=$(veritysetup format "$I/$name.raw" "$I/$name.verity" | awk '/^Root hash:/ { print $3 }')
    [[ $ROOT_HASH =~ ^[0-9a-f]{64}$ ]] || fail "veritysetup format $name: no root hash"
    printf '%s\n' "$ROOT_HASH" >"$I/$name.roothash"
    [[ -z $key ]] || sign "$ROOT_HASH" "$key" "$I/$name.roothash.p7s"
}

# inspect EXPECTED-RC IMAGE [ARGS...]: text and --json runs, same exit code,
# nothing left mounted or attached; the JSON is in $TEST_DIR/inspect.json.
inspect() {
    local want=$1 image=$2; shift 2
    snapshot_state "$R" before-inspect
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" --json inspect "$image"
    [[ $LAST_RC == "$want" ]] || fail "inspect --json $image: exit $LAST_RC, expected $want"
    cp "$TEST_DIR/last.out" "$TEST_DIR/inspect.json"
    if [[ $want == 2 ]]; then
        # A request that cannot be answered: a message, no report.
        [[ ! -s $TEST_DIR/last.out && -s $TEST_DIR/last.err ]] || fail "inspect $image: expected only an error message"
    else
        python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$TEST_DIR/inspect.json" ||
            fail "inspect --json $image: not JSON: $(head -c 400 "$TEST_DIR/inspect.json")"
    fi
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" inspect "$image"
    [[ $LAST_RC == "$want" ]] || fail "inspect $image: exit $LAST_RC, expected $want"
    snapshot_state "$R" after-inspect
    assert_same_state before-inspect after-inspect
}
jq_() { json_query "$TEST_DIR/inspect.json" "$1"; }
expect_json() {  # expect_json PY-EXPR WANT
    local got
    got=$(jq_ "$1")
    [[ $got == "$2" ]] || fail "$LAST_CMD: $1 is '$got', expected '$2'"
}
expect_out() {  # expect_out ERE...: some stdout line matches each
    local re
    for re in "$@"; do
        grep -qE -- "$re" "$TEST_DIR/last.out" || fail "$LAST_CMD: no stdout line matches '$re'"
    done
}

check "a plain erofs sysext is accepted by the default policy"
make_ext_tree "$B/plain" plain sysext -- usr/share/plain/marker=plain
make_erofs "$B/plain" "$I/plain.raw"
inspect 0 "$I/plain.raw"
expect_out '^class: +sysext$' '^kind: +raw$' '^layout: +file system \(erofs\)$' '^root verity: +none' '^verdict: +accept$' \
    '^sysext release: +ID=debian VERSION_ID=12$'
expect_json 'd["verdict"]' accept
expect_json 'd["class"]' sysext
expect_json 'd["fstype"]' erofs
expect_json 'd["classes"][0]["policy"]["accepted"]' true
expect_json 'd["protection"][0]["state"]' unprotected

check "a directory image is accepted; unprotected"
make_ext_tree "$I/dirext" dirext sysext -- usr/share/dirext/marker=dirext
inspect 0 "$I/dirext"
expect_json 'd["kind"]' directory
expect_json 'd["path"]' "$I/dirext"
expect_json 'd["layout"]' directory
expect_json '[o["state"] for o in d["offered"]]' '["unprotected"]'

check "a GPT disk image: layout and partitions"
make_ext_tree "$B/gpt" gpt sysext -- usr/share/gpt/marker=gpt
make_gpt "$B/gpt" "$I/gpt.raw" root squashfs
inspect 0 "$I/gpt.raw"
expect_json 'd["layout"]' 'GPT disk image'
expect_json '[(p["designator"], p["fstype"], p["offset"]) for p in d["partitions"]]' '[["root", "squashfs", 1048576]]'
expect_out '^partition: +root #1 squashfs, offset 1048576'

check "signed by the trusted key: accepted under a signed-only policy, signer shown"
verity_image signed sysext trusted
signed_hash=$ROOT_HASH
inspect 0 "$I/signed.raw" --image-policy="$signed_only" --certificate="$K/trusted.crt"
expect_json 'd["protection"][0]["state"]' signed
expect_json 'd["protection"][0]["root_hash"]' "$signed_hash"
expect_json 'd["protection"][0]["hash_tree_check"]' verified
expect_json 'd["protection"][0]["signature"]["signer"]["subject"]' 'CN=rdext trusted test key'
expect_json 'd["protection"][0]["signature"]["signer"]["fingerprint"]' "$trusted_fp"
expect_json 'd["classes"][0]["policy"]["policy"]' "$signed_only"
expect_out "^root signature: +valid \(signed.roothash.p7s\), signed by CN=rdext trusted test key \(SHA-256 $trusted_fp"

check "the default trust anchors are the running system's verity.d (here /run/verity.d)"
inspect 1 "$I/signed.raw" --image-policy="$signed_only"
expect_json 'd["protection"][0]["signature"]["state"]' invalid
mkdir -p /run/verity.d
cp "$K/trusted.crt" /run/verity.d/test.crt
inspect 0 "$I/signed.raw" --image-policy="$signed_only"
expect_json '"/run/verity.d" in d["trust_anchors"]' true
expect_json 'd["protection"][0]["signature"]["signer"]["certificate"]' /run/verity.d/test.crt
# Certificates in the ROOT's verity.d are never anchors.
rm /run/verity.d/test.crt
mkdir -p "$R/etc/verity.d"
cp "$K/trusted.crt" "$R/etc/verity.d/test.crt"
inspect 1 "$I/signed.raw" --image-policy="$signed_only"

check "verity without a signature: verity under the default policy, refused under signed-only"
verity_image unsigned sysext
inspect 0 "$I/unsigned.raw" --certificate="$K/trusted.crt"
expect_json 'd["protection"][0]["state"]' verity
inspect 1 "$I/unsigned.raw" --image-policy="$signed_only" --certificate="$K/trusted.crt"
expect_json 'd["verdict"]' refuse
expect_json '"unsigned (sysext): refused by image policy" in d["reason"]' true

check "merging the verity image: with dm-verity in the kernel it merges; without, the message says why"
verity_only='root=verity+absent:usr=verity+absent'
cp "$I/unsigned.raw" "$I/unsigned.verity" "$I/unsigned.roothash" "$R/var/lib/extensions/"
bind_root "$R"
snapshot_state "$R" before-verity-merge
run_rdext --root="$R" --cmdline-file="$CMDLINE" --image-policy="$verity_only" merge
expect_rc 0
if [[ -d /sys/module/dm_verity ]] || modinfo dm_verity >/dev/null 2>&1; then
    assert_merged "$R" /usr unsigned
    run_rdext --root="$R" unmerge
    expect_rc 0
else
    tree=/lib/modules/$(uname -r)
    if [[ -d $tree ]]; then cause="is neither loaded nor in the module tree $tree"; else cause="is not loaded, and there is no module tree $tree"; fi
    expect_stderr_line "^rdext: warning: skipping sysext /var/lib/extensions/unsigned\.raw: dm-verity \(root hash from unsigned\.roothash\): the kernel has no dm-verity: kernel module dm_verity $cause: "
    assert_not_merged "$R" /usr
fi
snapshot_state "$R" after-verity-merge
assert_same_state before-verity-merge after-verity-merge
rm "$R"/var/lib/extensions/unsigned.*
umount "$R"

check "signed by an untrusted key: refused, the reason says the signature"
verity_image untrusted sysext attacker
inspect 1 "$I/untrusted.raw" --certificate="$K/trusted.crt"
expect_json 'd["protection"][0]["signature"]["state"]' invalid
expect_json 'd["protection"][0]["state"]' signature-failed
expect_json 'd["reason"].startswith("untrusted (sysext): refused by image policy")' true
expect_out '^root signature: +INVALID' '^verdict: +refuse$'

check "a garbage .p7s: refused"
verity_image garbage sysext
head -c 600 /dev/urandom >"$I/garbage.roothash.p7s"
inspect 1 "$I/garbage.raw" --certificate="$K/trusted.crt"
expect_json 'd["protection"][0]["signature"]["state"]' invalid

check "a data block changed after signing: the hash tree check fails, refused"
verity_image tampered sysext trusted
python3 - "$I/tampered.raw" <<'EOF'
import sys
p = sys.argv[1]
data = bytearray(open(p, 'rb').read())
i = data.find(b'x' * 4096)
assert i > 0, 'bulk data not found'
data[i + 4096 // 2] ^= 0xff
open(p, 'wb').write(data)
EOF
inspect 1 "$I/tampered.raw" --certificate="$K/trusted.crt"
expect_json 'd["protection"][0]["hash_tree_check"]' failed
expect_json '"does not match" in d["reason"] and d["reason"].startswith("tampered: root: ")' true
# Its contents are still reported.
expect_json 'd["class"]' sysext

check "another OS: refused, the reason names VERSION_ID"
make_ext_tree "$B/other" other sysext ID=debian VERSION_ID=13 -- usr/share/other/marker=other
make_erofs "$B/other" "$I/other.raw"
inspect 1 "$I/other.raw"
expect_json 'd["classes"][0]["compatible"]' false
expect_json '"VERSION_ID" in d["reason"] and d["reason"].startswith("other (sysext): ")' true
printf 'ID=debian\nVERSION_ID=13\n' >"$TEST_DIR/os-release-13"
inspect 0 "$I/other.raw" --os-release="$TEST_DIR/os-release-13"
expect_json 'd["os_release"]' "$TEST_DIR/os-release-13"
printf 'ID=fedora\nVERSION_ID=40\n' >"$TEST_DIR/os-release-fedora"
inspect 1 "$I/plain.raw" --os-release="$TEST_DIR/os-release-fedora"
expect_json '"ID" in d["reason"]' true

# ddi NAME KEY: a GPT disk image by systemd-repart: squashfs root partition,
# root-verity and root-verity-sig signed by KEY (as the VM scenario makes it).
ddi() {
    local name=$1 key=$2 defs=$TEST_DIR/repart-$1
    make_ext_tree "$B/$name" "$name" sysext -- "usr/share/$name/marker=$name"
    mkdir -p "$defs"
    printf '[Partition]\nType=root\nFormat=squashfs\nCopyFiles=%s:/\nVerity=data\nVerityMatchKey=v\nMinimize=guess\n' \
        "$B/$name" >"$defs/10-data.conf"
    printf '[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=v\nMinimize=best\n' >"$defs/20-verity.conf"
    printf '[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=v\n' >"$defs/30-sig.conf"
    systemd-repart --empty=create --size=auto --dry-run=no --definitions="$defs" \
        --private-key="$K/$key.key" --certificate="$K/$key.crt" "$I/$name.raw" >"$TEST_DIR/repart-$name.log" 2>&1 ||
        fail "systemd-repart $name: $(cat "$TEST_DIR/repart-$name.log")"
}
if command -v systemd-repart >/dev/null; then
    check "a signed GPT disk image (verity-sig partition): partitions, signer, accepted; the attacker's refused"
    ddi ddisigned trusted
    inspect 0 "$I/ddisigned.raw" --image-policy="$signed_only" --certificate="$K/trusted.crt"
    expect_json '[p["designator"] for p in d["partitions"]]' '["root", "root-verity", "root-verity-sig"]'
    expect_json 'd["protection"][0]["root_hash_source"]' 'root-verity-sig partition'
    expect_json 'd["protection"][0]["hash_tree_check"]' verified
    expect_json 'd["protection"][0]["signature"]["signer"]["fingerprint"]' "$trusted_fp"
    expect_json 'd["protection"][0]["state"]' signed
    ddi ddiattack attacker
    inspect 1 "$I/ddiattack.raw" --image-policy="$signed_only" --certificate="$K/trusted.crt"
    expect_json 'd["protection"][0]["signature"]["state"]' invalid
else
    skip_part "no systemd-repart: the GPT verity case"
fi

check "a signed confext: class confext, accepted under a signed-only policy"
verity_image csigned confext trusted
inspect 0 "$I/csigned.raw" --image-policy="$signed_only" --certificate="$K/trusted.crt"
expect_json 'd["class"]' confext
expect_json 'd["classes"][0]["release"]["ID"]' debian
verity_image cunsigned confext
inspect 1 "$I/cunsigned.raw" --image-policy="$signed_only" --certificate="$K/trusted.crt"

check "no release file: refused, the reason says so"
make_ext_tree "$B/norel" norel sysext @none -- usr/share/norel/marker=x
make_erofs "$B/norel" "$I/norel.raw"
inspect 1 "$I/norel.raw"
expect_json 'd["class"]' null
expect_json '"no extension-release.norel" in d["reason"]' true

check "an image shipping usr/lib/os-release: refused, its release still shown"
make_ext_tree "$B/osrel" osrel sysext -- usr/lib/os-release=ID=evil
make_erofs "$B/osrel" "$I/osrel.raw"
inspect 1 "$I/osrel.raw"
expect_json '"os-release" in d["reason"]' true
expect_json 'd["class"]' sysext

check "an erofs image the kernel refuses to mount (bad block size): refused, no loop device left"
cp "$I/plain.raw" "$I/badfs.raw"
printf '\x30' | dd of="$I/badfs.raw" bs=1 seek=$((1024 + 12)) conv=notrunc status=none
inspect 1 "$I/badfs.raw"
expect_json 'd["reason"].startswith("badfs: cannot mount: mount erofs")' true

check "not an image at all: refused"
head -c 65536 /dev/urandom >"$I/junk.raw"
inspect 1 "$I/junk.raw"

check "usage errors exit 2"
inspect 2 "$I/does-not-exist.raw"
inspect 2 "$I/plain.raw" --image-policy='root=bogus'
inspect 2 "$I/plain.raw" --os-release="$TEST_DIR/no-such-os-release"
run_rdext --root="$R" inspect
expect_rc 2
run_rdext --root="$R" --os-release="$TEST_DIR/os-release-13" status
expect_rc 2

[[ -z $(loops_under "$TEST_DIR") ]] || fail "loop devices left: $(loops_under "$TEST_DIR")"
finish
