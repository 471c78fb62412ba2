#!/usr/bin/env bash
# Fault injection at the dm-verity steps, proven in the VM: ONE boot runs the
# whole fault-point enumeration of a merge, a refresh and an unmerge
# (guest/rdext-fault-enum.sh with tests/integration/fault_enum_lib.sh, the
# method it shares with tests/integration/fault_enum.sh)
# against a root that carries dm-verity images, which the host (no device
# mapper) cannot do. The enumeration needs the fault-injection static rdext
# (vm_fault_binary builds it: <build>/build-static-fault); it goes onto this
# scenario's root disk as /usr/local/bin/rdext-fault, never into an initrd.
#
# Why in the booted system and not in the initrd's /init: the enumeration is
# a bash script that needs find -printf, md5sum, losetup, dmsetup, udevadm
# and unshare, which the booted Debian has and the busybox initrd does not;
# device mapper, loop and the kernel are the same. It runs in a private
# mount namespace on a test root (/var/lib/rdext-fault/root), so the
# system's own mounts stay out of its mount-table comparisons.
#
# The test root, under the policy (the running system's trusted
# /etc/rdext/policy.conf) "fv* root=signed+absent:usr=signed+absent", with
# the test CA in /etc/verity.d:
#   fvsig   sysext, erofs + .verity/.roothash/.roothash.p7s   /var/lib/extensions
#   fvddi   sysext, GPT disk image by systemd-repart: squashfs root,
#           root-verity, root-verity-sig                       /run/extensions
#   fvconf  confext, erofs + signed sidecars                   /var/lib/confexts
#   fplain  sysext, plain erofs (no verity; the policy's
#           default lets it in), with /opt content             /etc/extensions
#   fvnew   sysext, erofs + signed sidecars, for the refresh: it comes in
#           and fvsig goes
# The test fails when the enumeration fails a point, or when verity-activate
# was never hit. Prints "fault points covered: N (...)" and the number of
# verity-activate occurrences.
#
#   RDEXT_FAULT_BINARY=FILE   another static fault-injection rdext
#   RDEXT_FAULT_POINTS=merge,refresh,unmerge   only these phases
source "$(dirname "$0")/../lib.sh"
kind=${1:-busybox}
# About 90 points, each a few rdext runs under TCG: 11-12 minutes of the
# guest's time on a busy 2-core host.
VM_TIMEOUT=${RDEXT_VM_TIMEOUT:-2100}
command -v veritysetup >/dev/null || skip "veritysetup missing (cryptsetup-bin; run scripts/setup-debian.sh)"
command -v openssl >/dev/null || skip "openssl missing"
command -v systemd-repart >/dev/null || skip "systemd-repart missing (for the GPT disk image)"

fault_bin=${RDEXT_FAULT_BINARY:-${RDEXT_STATIC_FAULT_BUILD_DIR:-$SRC_DIR/build-static-fault}/src/rdext}
[[ -x $fault_bin ]] || skip "no fault-injection static rdext at $fault_bin (the vm_fault_binary test builds it)"
is_static "$fault_bin" || die "$fault_bin is not static"

new_scenario
strings -a "$fault_bin" >"$WORK/fault-strings"   # a file: grep -q would cut the pipe
grep -qx RDEXT_FAULT "$WORK/fault-strings" || die "$fault_bin is not a fault-injection build"
log "fault-injection rdext: $fault_bin"
install -D -m 0755 "$fault_bin" "$OVERLAY/usr/local/bin/rdext-fault"

TR=/var/lib/rdext-fault/root   # the test root, in the guest
TA=/var/lib/rdext-fault/aside  # images out of the root (refresh)
R=$OVERLAY$TR
A=$OVERLAY$TA
mkdir -p "$R"/{usr/lib,usr/share,opt,etc,run,var/lib} "$A" "$WORK/keys"
mkdir -p "$R"/{etc/extensions,run/extensions,var/lib/extensions,run/confexts,var/lib/confexts}
printf 'ID=debian\nVERSION_ID=12\n' >"$R/usr/lib/os-release"
ln -s ../usr/lib/os-release "$R/etc/os-release"
echo base >"$R/usr/share/base-file"
echo base >"$R/opt/base-file"
echo base >"$R/etc/base.conf"

keys=$WORK/keys
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rdext fault test key" \
    -keyout "$keys/ca.key" -out "$keys/ca.crt" 2>/dev/null

# signed_sidecar NAME DIR: the erofs of $IMAGES/NAME in DIR with its hash
# tree, root hash and a detached PKCS#7 signature over the hex root hash.
signed_sidecar() {
    local name=$1 dir=$2 hash
    make_erofs "$IMAGES/$name" "$dir/$name.raw"
    hash=$(veritysetup format "$dir/$name.raw" "$dir/$name.verity" | awk '/^Root hash:/ { print $3 }')
    [[ $hash =~ ^[0-9a-f]{64}$ ]] || die "veritysetup format $name: no root hash"
    printf '%s\n' "$hash" >"$dir/$name.roothash"
    printf '%s' "$hash" | openssl smime -sign -binary -noattr -nocerts -outform DER \
        -inkey "$keys/ca.key" -signer "$keys/ca.crt" -out "$dir/$name.roothash.p7s"
}

marker_sysext "$IMAGES/fvsig" fvsig
ext_file "$IMAGES/fvsig" /usr/share/fault-shared <<<fvsig
signed_sidecar fvsig "$R/var/lib/extensions"

marker_sysext "$IMAGES/fvnew" fvnew
ext_file "$IMAGES/fvnew" /opt/fvnew/marker <<<fvnew
signed_sidecar fvnew "$A"

marker_confext "$IMAGES/fvconf" fvconf
signed_sidecar fvconf "$R/var/lib/confexts"

marker_sysext "$IMAGES/fplain" fplain
ext_file "$IMAGES/fplain" /opt/fplain/marker <<<fplain
ext_file "$IMAGES/fplain" /usr/share/fault-shared <<<fplain
make_erofs "$IMAGES/fplain" "$R/etc/extensions/fplain.raw"

# A signed DDI as systemd-repart makes it (252 makes squashfs, not erofs).
marker_sysext "$IMAGES/fvddi" fvddi
defs=$WORK/repart-fvddi
mkdir -p "$defs"
printf '[Partition]\nType=root\nFormat=squashfs\nCopyFiles=%s:/\nVerity=data\nVerityMatchKey=v\nMinimize=guess\n' \
    "$IMAGES/fvddi" >"$defs/10-data.conf"
printf '[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=v\nMinimize=best\n' >"$defs/20-verity.conf"
printf '[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=v\n' >"$defs/30-sig.conf"
systemd-repart --empty=create --size=auto --dry-run=no --definitions="$defs" \
    --private-key="$keys/ca.key" --certificate="$keys/ca.crt" "$R/run/extensions/fvddi.raw" >"$WORK/repart.log" 2>&1 ||
    { cat "$WORK/repart.log" >&2; die "systemd-repart fvddi failed"; }

# Trust and policy: the running system's (trusted) files; the test root has none.
put /etc/verity.d/test-ca.crt <"$keys/ca.crt"
put /etc/rdext/policy.conf <<<'fv* root=signed+absent:usr=signed+absent'

put /etc/rdext-fault-enum.conf <<EOF
R=$TR
ASIDE=$TA
W=/var/lib/rdext-fault/work
SYSEXTS="fplain fvsig fvddi"
CONFEXTS="fvconf"
VERITY_NAMES="fvsig fvddi fvconf"
DIRS="fplain=etc/extensions fvsig=var/lib/extensions fvddi=run/extensions fvconf=var/lib/confexts fvnew=var/lib/extensions"
REFRESH_GONE=fvsig
REFRESH_GONE_DIR=var/lib/extensions
REFRESH_NEW=fvnew
REFRESH_NEW_DIR=var/lib/extensions
REFRESHED="fplain fvddi fvnew fvconf"
POINTS="${RDEXT_FAULT_POINTS:-}"
EOF
put /usr/local/sbin/rdext-fault-enum 0755 <"$VM_DIR/guest/rdext-fault-enum.sh"
# the method itself, shared with tests/integration/fault_enum.sh
put /usr/local/lib/rdext/fault-enum-lib.sh <"$SRC_DIR/tests/integration/fault_enum_lib.sh"
put /etc/systemd/system/rdext-fault-enum.service <<'EOF'
[Unit]
Description=rdext VM test: fault points enumerated on a dm-verity root
After=multi-user.target
Before=rdext-check.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rdext-fault-enum
TimeoutStartSec=infinity
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$OVERLAY/etc/systemd/system/multi-user.target.wants"
ln -sfn ../rdext-fault-enum.service "$OVERLAY/etc/systemd/system/multi-user.target.wants/rdext-fault-enum.service"

# The checker: nothing of the system itself merged, and no device left over
# once the enumeration has finished.
expect EXPECT_SYSEXT="''" EXPECT_CONFEXT="''" FEATURES=skip
put /etc/rdext-check.d/fault.sh <<'EOF'
no_dm_left() { ! ls /sys/block | grep -q '^dm-'; }
no_loop_left() { [ -z "$(losetup -ln)" ]; }
enum_succeeded() { [ "$(systemctl show -P Result rdext-fault-enum.service)" = success ] &&
    [ "$(systemctl show -P ExecMainStatus rdext-fault-enum.service)" = 0 ]; }
check "the enumeration service ran and succeeded" enum_succeeded
check "no dm device is left after the enumeration" no_dm_left
check "no loop device is left after the enumeration" no_loop_left
EOF

root_disk
boot_vm "$(initrd_for "$kind")" "" "$WORK/root.img"
grep -a 'FAULT-ENUM' "$SERIAL_LOG" | tr -d '\r' | sed 's/^.*FAULT-ENUM/FAULT-ENUM/' >&2 || true
if ! grep -aqE 'FAULT-ENUM: PASS'$'\r''?$' "$SERIAL_LOG"; then
    show_log_excerpt
    die "the fault-point enumeration in the booted system did not pass"
fi
covered=$(grep -a 'FAULT-ENUM: fault points covered:' "$SERIAL_LOG" | tr -d '\r' | sed 's/^.*FAULT-ENUM: //')
verity=$(grep -a 'FAULT-ENUM: verity-activate occurrences:' "$SERIAL_LOG" | tr -d '\r' | sed 's/^.*FAULT-ENUM: //')
[[ -n $covered && -n $verity ]] || die "no summary lines from the enumeration"
n=$(awk '{ print $3 }' <<<"$verity")
(( n > 0 )) || die "verity-activate was never hit: $verity"
expect_check_pass
echo "$covered"
echo "$verity"
