#!/usr/bin/env bash
# dm-verity and signatures, under a policy that wants every sysext signed
# (rd.sysext.image_policy=root=signed+absent:usr=signed+absent). Images are
# erofs file systems with sidecars made by `veritysetup format`, signed with
# `openssl smime` as systemd-repart/veritysetup do (detached PKCS#7 over the
# hex root hash). The test CA is in the INITRD's /etc/verity.d (appended to
# the initrd as a second cpio archive); an attacker's certificate sits in the
# ROOT's /etc/verity.d and must not be trusted.
#
#   rdsigned     signed by the test CA                        merged, dm device
#   rdtampered   signed, one data block flipped afterwards    merged; reading that
#                                                             block fails (EIO), never
#                                                             the lower layer's data
#   rdwronghash  a signed root hash that is not the image's   refused before activation
#   rdbadtree    signed, top hash block changed afterwards    refused before activation
#   rduntrusted  signed by the attacker's certificate         refused, no dm device
#   rdgarbagesig .roothash.p7s full of random bytes           refused, no dm device
#   rdunsigned   verity, no signature (policy wants signed)   refused, no dm device
#   rdplain      no verity at all                             refused
#   rdddi        GPT disk image by systemd-repart: squashfs root, root-verity,
#                root-verity-sig signed by the test CA         merged, dm device
#   rdddiattack  the same, signed by the attacker             refused, no dm device
#   rdddiusr     usr, usr-verity, usr-verity-sig (test CA)     merged, dm device
#   rdddiswap    its root-verity-sig partition replaced by
#                rdddi's (a valid signature, another hash)     refused, no dm device
#
# Confexts (in /var/lib/confexts), under
# rd.confext.image_policy=root=signed+absent:usr=signed+absent:
#   rdcsigned    signed by the test CA                        merged into /etc, dm device
#   rdcunsigned  verity, no signature                         refused, no dm device
#   rdctampered  signed, a byte of data block 0 (the erofs
#                superblock's) flipped afterwards             activated, but the mount
#                                                             fails reading that block
#                                                             (EIO): refused, no dm device
#   rdctiny      the same with a one-block image, whose root
#                hash is that block's digest                  refused before activation
source "$(dirname "$0")/../lib.sh"
kind=${1:-busybox}
command -v veritysetup >/dev/null || skip "veritysetup missing (cryptsetup-bin; run scripts/setup-debian.sh)"
command -v openssl >/dev/null || skip "openssl missing"
new_scenario
ext=$OVERLAY/var/lib/extensions
cext=$OVERLAY/var/lib/confexts
mkdir -p "$ext" "$cext" "$WORK/keys"

# Keys: the trusted test CA and an attacker's self-signed certificate.
keys=$WORK/keys
for who in trusted attacker; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rdext $who test key" \
        -keyout "$keys/$who.key" -out "$keys/$who.crt" 2>/dev/null
done

# sign HEX KEY OUT: a detached DER PKCS#7 over the hex string (no newline).
sign() {
    printf '%s' "$1" | openssl smime -sign -binary -noattr -nocerts -outform DER \
        -inkey "$keys/$2.key" -signer "$keys/$2.crt" -out "$3"
}

# verity_image NAME [FILLER-KB]: marker sysext NAME as erofs in $ext with
# NAME.verity and NAME.roothash; sets ROOT_HASH.
verity_image() {
    local name=$1 filler=${2:-0}
    marker_sysext "$IMAGES/$name" "$name"
    if (( filler )); then
        # A recognisable, uncompressed block pattern to tamper with later.
        python3 -c "import sys; sys.stdout.buffer.write(b'RDEXT-TAMPER-ME!' * (64 * $filler))" \
            >"$IMAGES/$name/usr/share/$name/filler"
    fi
    make_erofs "$IMAGES/$name" "$ext/$name.raw"
    ROOT_HASH=$(veritysetup format "$ext/$name.raw" "$ext/$name.verity" | awk '/^Root hash:/ { print $3 }')
    [[ $ROOT_HASH =~ ^[0-9a-f]{64}$ ]] || die "veritysetup format $name: no root hash"
    printf '%s\n' "$ROOT_HASH" >"$ext/$name.roothash"
}
dm_name() { echo "rdext-${1:0:16}"; }

# verity_confext NAME [FILLER-KB]: marker confext NAME (/etc/NAME.conf) as
# erofs in $cext with NAME.verity and NAME.roothash; sets ROOT_HASH.
verity_confext() {
    local name=$1 filler=${2:-0}
    marker_confext "$IMAGES/$name" "$name"
    (( filler == 0 )) || head -c $((filler * 1024)) /dev/urandom >"$IMAGES/$name/etc/$name.filler"
    make_erofs "$IMAGES/$name" "$cext/$name.raw"
    ROOT_HASH=$(veritysetup format "$cext/$name.raw" "$cext/$name.verity" | awk '/^Root hash:/ { print $3 }')
    [[ $ROOT_HASH =~ ^[0-9a-f]{64}$ ]] || die "veritysetup format $name: no root hash"
    printf '%s\n' "$ROOT_HASH" >"$cext/$name.roothash"
}

verity_image rdsigned
sign "$ROOT_HASH" trusted "$ext/rdsigned.roothash.p7s"
expect_dm=("$(dm_name "$ROOT_HASH")")

verity_image rdtampered 64
sign "$ROOT_HASH" trusted "$ext/rdtampered.roothash.p7s"
expect_dm+=("$(dm_name "$ROOT_HASH")")
python3 - "$ext/rdtampered.raw" <<'EOF'
import sys
p = sys.argv[1]
data = bytearray(open(p, 'rb').read())
i = data.find(b'RDEXT-TAMPER-ME!' * 256)
if i < 0 or i % 4096:
    i = (i + 4095) // 4096 * 4096
assert i > 0 and data[i:i + 16] == b'RDEXT-TAMPER-ME!', 'pattern block not found'
data[i + 100] ^= 0xff
open(p, 'wb').write(data)
EOF

verity_image rdwronghash
wrong=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$wrong" >"$ext/rdwronghash.roothash"
sign "$wrong" trusted "$ext/rdwronghash.roothash.p7s"

verity_image rdbadtree 64
sign "$ROOT_HASH" trusted "$ext/rdbadtree.roothash.p7s"
printf '\xff\xff\xff\xff' | dd of="$ext/rdbadtree.verity" bs=1 seek=$((4096 + 8)) conv=notrunc status=none

verity_image rduntrusted
sign "$ROOT_HASH" attacker "$ext/rduntrusted.roothash.p7s"

verity_image rdgarbagesig
head -c 600 /dev/urandom >"$ext/rdgarbagesig.roothash.p7s"

verity_image rdunsigned

marker_sysext "$IMAGES/rdplain" rdplain
make_erofs "$IMAGES/rdplain" "$ext/rdplain.raw"

verity_confext rdcsigned
sign "$ROOT_HASH" trusted "$cext/rdcsigned.roothash.p7s"
expect_dm+=("$(dm_name "$ROOT_HASH")")

verity_confext rdcunsigned

# erofs keeps its superblock at byte 1024 of data block 0: every mount reads
# that block, so the image cannot be merged, whatever its size.
for name in rdctampered rdctiny; do
    verity_confext "$name" "$([[ $name == rdctampered ]] && echo 64 || echo 0)"
    sign "$ROOT_HASH" trusted "$cext/$name.roothash.p7s"
    printf '\xff' | dd of="$cext/$name.raw" bs=1 seek=$((1024 + 40)) conv=notrunc status=none
done
(( $(stat -c %s "$cext/rdctiny.raw") == 4096 )) || die "rdctiny.raw is not a one-block image"
confext_refused="rdcunsigned rdctampered rdctiny"

# ddi_image NAME KEY [root|usr]: a signed GPT disk image made by
# systemd-repart (252 can make squashfs, not erofs) with a root (or usr)
# partition and its verity and verity-sig partitions; sets ROOT_HASH.
ddi_image() {
    local name=$1 key=$2 part=${3:-root} defs=$WORK/repart-$1 src
    marker_sysext "$IMAGES/$name" "$name"
    src=$IMAGES/$name
    [[ $part == usr ]] && src=$IMAGES/$name/usr
    mkdir -p "$defs"
    printf '[Partition]\nType=%s\nFormat=squashfs\nCopyFiles=%s:/\nVerity=data\nVerityMatchKey=v\nMinimize=guess\n' \
        "$part" "$src" >"$defs/10-data.conf"
    printf '[Partition]\nType=%s-verity\nVerity=hash\nVerityMatchKey=v\nMinimize=best\n' "$part" >"$defs/20-verity.conf"
    printf '[Partition]\nType=%s-verity-sig\nVerity=signature\nVerityMatchKey=v\n' "$part" >"$defs/30-sig.conf"
    systemd-repart --empty=create --size=auto --dry-run=no --definitions="$defs" \
        --private-key="$keys/$key.key" --certificate="$keys/$key.crt" "$ext/$name.raw" >"$WORK/repart-$name.log" 2>&1 ||
        { cat "$WORK/repart-$name.log" >&2; die "systemd-repart $name failed"; }
    ROOT_HASH=$(awk -v t="$part-x86-64-verity" '$1 == t { print $NF }' "$WORK/repart-$name.log" |
        grep -E '^[0-9a-f]{64}$' | head -1)
    [[ -n $ROOT_HASH ]] || { cat "$WORK/repart-$name.log" >&2; die "systemd-repart $name: no root hash"; }
}
if command -v systemd-repart >/dev/null; then
    ddi_image rdddi trusted
    expect_dm+=("$(dm_name "$ROOT_HASH")")
    ddi_image rdddiattack attacker
    ddi_image rdddiusr trusted usr
    expect_dm+=("$(dm_name "$ROOT_HASH")")
    ddi_image rdddiswap trusted
    # rdddi's root-verity-sig partition (same size) over rdddiswap's.
    python3 - "$ext/rdddi.raw" "$ext/rdddiswap.raw" <<'EOF'
import json, subprocess, sys
def sig_extent(img):
    t = json.loads(subprocess.check_output(['sfdisk', '-J', img]))['partitiontable']
    p = [p for p in t['partitions'] if p['type'].lower() == '41092b05-9fc8-4523-994f-2def0408b176']
    assert len(p) == 1, p
    return p[0]['start'] * 512, p[0]['size'] * 512
(so, ss), (do, ds) = sig_extent(sys.argv[1]), sig_extent(sys.argv[2])
assert ss == ds, (ss, ds)
with open(sys.argv[1], 'rb') as f:
    f.seek(so); data = f.read(ss)
with open(sys.argv[2], 'r+b') as f:
    f.seek(do); f.write(data)
EOF
    ddi_merged="rdddi rdddiusr" ddi_refused="rdddiattack rdddiswap"
else
    skip_part "no systemd-repart: the GPT disk image cases"
    ddi_merged= ddi_refused=
fi

# The attacker's certificate on the root: never a trust anchor.
put /etc/verity.d/attacker.crt <"$keys/attacker.crt"

# The initrd: the standard one plus /etc/verity.d/test-ca.crt.
mkdir -p "$WORK/initrd-extra/etc/verity.d"
cp "$keys/trusted.crt" "$WORK/initrd-extra/etc/verity.d/test-ca.crt"
(cd "$WORK/initrd-extra" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
    gzip -1 >"$WORK/extra.cpio.gz"
cat "$(initrd_for "$kind")" "$WORK/extra.cpio.gz" >"$WORK/initrd.img"

# Checks beyond the common checker's, printed as VERITY-CHECK lines.
refused="rdwronghash rdbadtree rduntrusted rdgarbagesig rdunsigned rdplain $ddi_refused"
put /etc/rdext-verity-check.conf <<EOF
EXPECT_DM="${expect_dm[*]}"
REFUSED="$refused"
REFUSED_CONFEXT="$confext_refused"
EOF
put /usr/local/sbin/rdext-verity-check 0755 <<'EOF'
#!/bin/bash
. /etc/rdext-verity-check.conf
failures=0
ok() { echo "VERITY-CHECK: ok   $*"; }
bad() { echo "VERITY-CHECK: FAIL $*"; failures=$((failures + 1)); }
dm_names() { for d in /sys/block/dm-*/dm/name; do [ -e "$d" ] && cat "$d"; done | sort | tr '\n' ' ' | sed 's/ $//'; }
want=$(echo "$EXPECT_DM" | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')
got=$(dm_names)
echo "VERITY-CHECK: info dm devices: $got"
echo "VERITY-CHECK: info dmsetup ls: $(dmsetup ls 2>&1 | tr '\n' ';')"
if [ "$got" = "$want" ]; then ok "exactly the accepted images' dm devices exist ($want)"; else bad "dm devices '$got', expected '$want'"; fi
for d in /sys/block/dm-*; do
    [ -e "$d/dm/uuid" ] || continue
    case $(cat "$d/dm/uuid") in
        CRYPT-VERITY-*) ok "$(cat "$d/dm/name") is a dm-verity device" ;;
        *) bad "$(cat "$d/dm/name") is not a dm-verity device: $(cat "$d/dm/uuid")" ;;
    esac
done
[ -s /usr/share/rdsigned/marker ] && ok "rdsigned's file is readable" || bad "rdsigned's file is not readable"
if cat /usr/share/rdtampered/filler >/dev/null 2>/tmp/tamper.err; then
    bad "reading the tampered block of rdtampered succeeded"
else
    ok "reading the tampered block of rdtampered fails: $(cat /tmp/tamper.err)"
fi
for n in $REFUSED; do
    [ -e "/usr/share/$n" ] && bad "refused $n is visible in /usr" || ok "refused $n is not in /usr"
done
[ "$(cat /etc/rdcsigned.conf 2>/dev/null)" = rdcsigned ] && ok "signed confext rdcsigned's file is in /etc" ||
    bad "signed confext rdcsigned's file is not in /etc"
for n in $REFUSED_CONFEXT; do
    [ -e "/etc/$n.conf" ] && bad "refused confext $n is visible in /etc" || ok "refused confext $n is not in /etc"
done
loops=$(for l in /sys/block/loop*/loop/backing_file; do [ -e "$l" ] && cat "$l"; done | tr '\n' ' ')
echo "VERITY-CHECK: info loop devices: $loops"
for n in $REFUSED $REFUSED_CONFEXT; do
    case " $loops" in *"/$n."*) bad "a loop device of refused $n is left" ;; *) ok "no loop device of refused $n" ;; esac
done
[ "$failures" = 0 ] && echo "VERITY-CHECK: PASS" || echo "VERITY-CHECK: FAIL ($failures)"
EOF
put /etc/systemd/system/rdext-verity-check.service <<'EOF'
[Unit]
Description=rdext VM test: dm-verity checks
After=multi-user.target
Before=rdext-check.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rdext-verity-check
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$OVERLAY/etc/systemd/system/multi-user.target.wants"
ln -sfn ../rdext-verity-check.service "$OVERLAY/etc/systemd/system/multi-user.target.wants/rdext-verity-check.service"

expect EXPECT_SYSEXT="'rdsigned rdtampered $ddi_merged'" EXPECT_CONFEXT="'rdcsigned'" FEATURES=skip CHECK_HANDOFF=1 \
    EXPECT_NOT_MERGED="'$refused $confext_refused'"
root_disk
boot_vm "$WORK/initrd.img" \
    "rd.sysext.image_policy=root=signed+absent:usr=signed+absent rd.confext.image_policy=root=signed+absent:usr=signed+absent" \
    "$WORK/root.img"
grep -a 'VERITY-CHECK' "$SERIAL_LOG" | tr -d '\r' | sed 's/^.*VERITY-CHECK/VERITY-CHECK/' >&2 || true
if ! grep -aqE 'VERITY-CHECK: PASS'$'\r''?$' "$SERIAL_LOG"; then
    show_log_excerpt
    die "the dm-verity checks in the booted system did not pass"
fi
expect_check_pass
# Each refusal names the image and the reason.
expect_log 'rduntrusted.*signature' 'rdgarbagesig.*signature' 'rdunsigned.*polic' 'rdplain.*polic' \
    'rdwronghash.*does not match the hash tree' 'rdbadtree.*does not match the hash tree' \
    'rdcunsigned.*polic' 'rdctampered.*dm-verity refused a block' 'rdctiny.*does not match the hash tree'
[[ -z $ddi_refused ]] || expect_log 'rdddiattack.*signature rejected' 'rdddiswap.*root-verity-sig'
end_scenario
