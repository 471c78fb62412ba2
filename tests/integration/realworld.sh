#!/bin/bash
# Extension images made the way their users make them today, each merged by
# rdext and checked through the overlay:
#
#  Debian 12 root
#   bakery-tool    sysext-bakery style: mksquashfs -all-root -noappend
#                  (-xattrs-exclude '^btrfs.' on mksquashfs 4.6+), ID=_any,
#                  ARCHITECTURE=x86-64, EXTENSION_RELOAD_MANAGER=1    merged
#   bakery-arm     the same for ARCHITECTURE=arm64 (x86-64 machines)  skipped, reason
#   erofs-lz4      mkfs.erofs -zlz4hc --all-root, ID=debian VERSION_ID=12  merged
#   repart-plain   systemd-repart DDI (repart.d: squashfs root with Verity=data,
#                  Verity=hash; no signature): nothing to check the hash tree
#                  against, so used unprotected, as systemd does     merged
#   repart-signed  systemd-repart DDI with Verity=signature (--private-key,
#                  --certificate): the signature cannot be checked here (no
#                  certificate in the running system's verity.d, no
#                  device-mapper on the test host), and a signature that
#                  fails is a refusal, never a downgrade             skipped, reason
#                  (tests/vm/scenarios/realworld.sh merges it verified in a VM)
#   makeddi        `systemd-repart --make-ddi=sysext` (systemd 257 from a trixie
#                  chroot: scripts/builders-ddi.sh), erofs, signed: refused here
#                  like repart-signed
#   rdext-hello-sysext / -confext   built by mkosi 24 (Format=sysext/confext,
#                  signed, verity) from mkosi.images/: refused here like
#                  repart-signed; a policy that allows unprotected images
#                  does not let any signed image in unverified
#
#  Flatcar-style root (ID=flatcar, SYSEXT_LEVEL=1.0)
#   /etc/extensions/kubernetes.raw -> /opt/extensions/kubernetes/
#                  kubernetes-v1.30.1-x86-64.raw (absolute link; v1.29.2 and
#                  v1.31.0 lie beside it): the linked one merges, resolved
#                  inside the root (a decoy at the same path on the host's
#                  /opt, in this test's mount namespace, must not be used)
#   /etc/extensions/docker-flatcar.raw -> ../../usr/share/flatcar/sysext/
#                  docker-flatcar.raw (relative link, as Flatcar ships it)
#   bakery-tool    ID=_any merges on any OS
#
# Every merge is undone with unmerge and leaves no mount or loop device.
source "$(dirname "$0")/lib.sh"
require_root_env

for tool in mksquashfs mkfs.erofs systemd-repart openssl sfdisk debootstrap; do
    command -v "$tool" >/dev/null || skip "$tool missing (run scripts/setup-debian.sh)"
done
[[ $(uname -m) == x86_64 ]] || skip "the images here are built for x86-64"

SRC_DIR=$(cd "$LIB_DIR/../.." && pwd)
B=$TEST_DIR/build
S=$TEST_DIR/status.json
mkdir -p "$B"

# bakery_mksquashfs DIR OUT: sysext-bakery's mksquashfs call. Its
# -xattrs-exclude '^btrfs.' needs mksquashfs 4.6 (Debian 12 has 4.5.1);
# bakery's scripts leave it out on older ones, and so does this.
BAKERY_SQUASHFS=(-all-root -noappend)
if [[ $(printf '%s\n4.6\n' "$(mksquashfs -version | awk 'NR == 1 { print $3 }')" | sort -V | head -n 1) == 4.6 ]]; then
    BAKERY_SQUASHFS+=(-xattrs-exclude '^btrfs.')
fi
bakery_mksquashfs() { mksquashfs "$1" "$2" "${BAKERY_SQUASHFS[@]}" -quiet >/dev/null; }

# bakery_image NAME ARCH OUT: as sysext-bakery's bake.sh builds one.
bakery_image() {
    local name=$1 arch=$2 out=$3 d=$B/$1
    make_ext_tree "$d" "$name" sysext ID=_any "ARCHITECTURE=$arch" EXTENSION_RELOAD_MANAGER=1 -- \
        "usr/bin/$name=#!/bin/sh echo $name" \
        "usr/lib/systemd/system/$name.service=[Service] ExecStart=/usr/bin/$name"
    chmod 0755 "$d/usr/bin/$name"
    bakery_mksquashfs "$d" "$out"
}

# repart_image NAME OUT signed|plain: a DDI from systemd-repart definitions,
# as Flatcar's and systemd's own tooling make them (systemd 252 has no
# --make-ddi; these are the definitions it stands for).
KEYS=$TEST_DIR/keys
mkdir -p "$KEYS"
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rdext realworld test" \
    -keyout "$KEYS/test.key" -out "$KEYS/test.crt" 2>/dev/null
repart_image() {
    local name=$1 out=$2 how=$3 defs=$B/repart-$1
    make_ext_tree "$B/$name" "$name" sysext -- "usr/share/$name/file=$name"
    mkdir -p "$defs"
    printf '[Partition]\nType=root\nFormat=squashfs\nCopyFiles=%s:/\nVerity=data\nVerityMatchKey=v\nMinimize=guess\n' \
        "$B/$name" >"$defs/10-root.conf"
    printf '[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=v\nMinimize=best\n' >"$defs/20-verity.conf"
    local sign=()
    if [[ $how == signed ]]; then
        printf '[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=v\n' >"$defs/30-sig.conf"
        sign=(--private-key="$KEYS/test.key" --certificate="$KEYS/test.crt")
    fi
    systemd-repart --empty=create --size=auto --dry-run=no --definitions="$defs" "${sign[@]}" "$out" \
        >"$B/repart-$name.log" 2>&1 || { cat "$B/repart-$name.log" >&2; fail "systemd-repart $name failed"; }
    local want=3
    [[ $how == signed ]] || want=2
    sfdisk -J "$out" >"$B/$name.sfdisk.json"
    [[ $(json_query "$B/$name.sfdisk.json" 'len(d["partitiontable"]["partitions"])') == "$want" ]] ||
        fail "systemd-repart made $(cat "$B/$name.sfdisk.json") for $name, expected $want partitions"
}

# status_of NAME: "result|reason" of NAME in the last status --json.
status_of() {
    json_query "$S" "next((e['result'] + '|' + e['reason'] for e in d['extensions'] if e['name'] == '$1'), 'absent|')"
}
expect_skipped() {
    local name=$1 re=$2 got
    got=$(status_of "$name")
    [[ $got == skipped\|* ]] || fail "$name: expected skipped, status says '$got'"
    grep -qiE -- "$re" <<<"${got#*|}" || fail "$name: reason '${got#*|}' does not match /$re/"
    check "$name skipped: ${got#*|}"
}
save_status() {
    run_rdext --root="$1" --json status
    expect_rc 0
    last_out >"$S"
}

# ---------------------------------------------------------------------------
# Debian 12 root

R=$TEST_DIR/debian
make_root "$R"
E=$R/var/lib/extensions
bakery_image bakery-tool x86-64 "$E/bakery-tool.raw"
bakery_image bakery-arm arm64 "$E/bakery-arm.raw"
make_ext_tree "$B/erofs-lz4" erofs-lz4 sysext -- "usr/share/erofs-lz4/file=erofs-lz4" "opt/erofs-lz4/file=erofs-lz4 in /opt"
mkfs.erofs -zlz4hc --all-root "$R/etc/extensions/erofs-lz4.raw" "$B/erofs-lz4" >/dev/null
repart_image repart-plain "$E/repart-plain.raw" plain
repart_image repart-signed "$E/repart-signed.raw" signed

# systemd-repart 257 --make-ddi=sysext (erofs; a trixie chroot, cached).
make_ext_tree "$B/makeddi" makeddi sysext -- "usr/share/makeddi/file=makeddi"
"$SRC_DIR/scripts/builders-ddi.sh" sysext "$B/makeddi" "$E/makeddi.raw" "$KEYS/test.key" "$KEYS/test.crt" \
    >"$B/makeddi.roothash" || fail "scripts/builders-ddi.sh failed"

# The mkosi-built pair (cached by its inputs; the first run installs mkosi 24
# from bookworm-backports into a chroot under $RDEXT_CACHE_DIR/builders).
MKOSI_OUT=$("$SRC_DIR/scripts/builders-mkosi.sh" extensions) || fail "scripts/builders-mkosi.sh extensions failed"
for f in rdext-hello-sysext.raw rdext-hello-confext.raw; do
    [[ -s $MKOSI_OUT/$f ]] || fail "mkosi did not produce $f in $MKOSI_OUT"
done
check "mkosi's sysext is a GPT with root, root-verity and root-verity-sig partitions"
sfdisk -J "$MKOSI_OUT/rdext-hello-sysext.raw" >"$B/mkosi.sfdisk.json"
parts=$(json_query "$B/mkosi.sfdisk.json" '" ".join(p["name"] for p in d["partitiontable"]["partitions"])')
[[ $parts == "root-x86-64 root-x86-64-verity root-x86-64-verity-sig" ]] || fail "mkosi sysext partitions: $parts"
cp "$MKOSI_OUT/rdext-hello-sysext.raw" "$E/"
cp "$MKOSI_OUT/rdext-hello-confext.raw" "$R/var/lib/confexts/"

bind_root "$R"
snapshot_state "$R" before
check "the Debian root merges what it can"
run_merge "$R"
expect_rc 0
assert_merged "$R" /usr bakery-tool erofs-lz4 repart-plain
assert_merged "$R" /opt bakery-tool erofs-lz4 repart-plain
assert_not_merged "$R" /etc
assert_file_content "$R/usr/bin/bakery-tool" '#!/bin/sh echo bakery-tool'
[[ -x $R/usr/bin/bakery-tool ]] || fail "bakery-tool lost its mode through the overlay"
assert_file_content "$R/usr/lib/systemd/system/bakery-tool.service" '[Service] ExecStart=/usr/bin/bakery-tool'
assert_file_content "$R/usr/share/erofs-lz4/file" erofs-lz4
assert_file_content "$R/opt/erofs-lz4/file" 'erofs-lz4 in /opt'
assert_file_content "$R/usr/share/repart-plain/file" repart-plain
assert_absent "$R/usr/bin/bakery-arm"
assert_absent "$R/usr/share/repart-signed"
assert_absent "$R/usr/share/makeddi"
assert_absent "$R/usr/share/rdext-hello-sysext"
assert_file_content "$R/usr/bin/base-tool" base
save_status "$R"
check "status says why the others were skipped"
expect_skipped bakery-arm 'ARCHITECTURE'
expect_skipped repart-signed 'signature'
expect_skipped makeddi 'signature'
expect_skipped rdext-hello-sysext 'signature'
expect_skipped rdext-hello-confext 'signature'
check "status records the file systems: squashfs, erofs, squashfs in a GPT"
[[ $(json_query "$S" "[e['fstype'] for e in d['extensions'] if e['name'] in ('bakery-tool', 'erofs-lz4', 'repart-plain')]") == '["squashfs", "erofs", "squashfs"]' ]] ||
    fail "fstypes: $(json_query "$S" "[(e['name'], e['fstype']) for e in d['extensions']]")"
run_unmerge "$R"
expect_rc 0
snapshot_state "$R" after-unmerge
assert_same_state before after-unmerge

check "a policy that allows unprotected images does not let the signed ones in unverified"
run_merge "$R" --image-policy='root=unprotected+absent:usr=unprotected+absent'
expect_rc 0
assert_absent "$R/usr/share/repart-signed"
assert_absent "$R/usr/share/rdext-hello-sysext"
assert_absent "$R/etc/rdext-hello-confext.conf"
save_status "$R"
expect_skipped repart-signed 'signature|policy'
expect_skipped rdext-hello-sysext 'signature|policy'
assert_file_content "$R/usr/share/repart-plain/file" repart-plain
run_unmerge "$R"
expect_rc 0
snapshot_state "$R" after-unmerge2
assert_same_state before after-unmerge2

# ---------------------------------------------------------------------------
# Flatcar-style root

F=$TEST_DIR/flatcar
make_root "$F" ID=flatcar NAME='"Flatcar Container Linux by Kinvolk"' VERSION_ID=3975.2.0 SYSEXT_LEVEL=1.0
flatcar_image() { # NAME VERSION OUT
    local d=$B/flatcar-$1-$2
    make_ext_tree "$d" "$1" sysext ID=flatcar SYSEXT_LEVEL=1.0 ARCHITECTURE=x86-64 -- \
        "usr/share/$1/version=$2" "usr/lib/systemd/system/$1.service=[Service] ExecStart=/usr/bin/$1"
    bakery_mksquashfs "$d" "$3"
}
mkdir -p "$F/opt/extensions/kubernetes" "$F/usr/share/flatcar/sysext"
for v in v1.29.2 v1.30.1 v1.31.0; do
    # the release file is named after the link (the name the image is merged as)
    d=$B/k8s-$v
    make_ext_tree "$d" "kubernetes" sysext ID=flatcar SYSEXT_LEVEL=1.0 ARCHITECTURE=x86-64 -- \
        "usr/share/kubernetes/version=$v"
    mksquashfs "$d" "$F/opt/extensions/kubernetes/kubernetes-$v-x86-64.raw" -all-root -noappend -quiet >/dev/null
done
ln -s /opt/extensions/kubernetes/kubernetes-v1.30.1-x86-64.raw "$F/etc/extensions/kubernetes.raw"
flatcar_image docker-flatcar 24.0.9 "$F/usr/share/flatcar/sysext/docker-flatcar.raw"
ln -s ../../usr/share/flatcar/sysext/docker-flatcar.raw "$F/etc/extensions/docker-flatcar.raw"
bakery_image bakery-tool x86-64 "$F/etc/extensions/bakery-tool.raw"

# The decoy: the link's absolute target on the host's /opt (a tmpfs in this
# namespace only), holding another version.
mount -t tmpfs tmpfs /opt
mkdir -p /opt/extensions/kubernetes
make_ext_tree "$B/decoy" kubernetes sysext ID=flatcar SYSEXT_LEVEL=1.0 -- "usr/share/kubernetes/version=HOST DECOY"
mksquashfs "$B/decoy" /opt/extensions/kubernetes/kubernetes-v1.30.1-x86-64.raw -all-root -noappend -quiet >/dev/null

bind_root "$F"
snapshot_state "$F" before
check "the Flatcar layout merges the linked versions, resolved inside the root"
run_merge "$F"
expect_rc 0
assert_merged "$F" /usr bakery-tool docker-flatcar kubernetes
assert_file_content "$F/usr/share/kubernetes/version" v1.30.1
assert_file_content "$F/usr/share/docker-flatcar/version" 24.0.9
assert_file_content "$F/usr/bin/bakery-tool" '#!/bin/sh echo bakery-tool'
save_status "$F"
check "status names the links, not their targets"
[[ $(json_query "$S" "next(e['path'] for e in d['extensions'] if e['name'] == 'kubernetes')") == /etc/extensions/kubernetes.raw ]] ||
    fail "kubernetes path in status: $(json_query "$S" "[(e['name'], e['path']) for e in d['extensions']]")"
run_unmerge "$F"
expect_rc 0

check "after the link moves to v1.31.0 (as systemd-sysupdate does), the next merge takes it"
ln -sfn /opt/extensions/kubernetes/kubernetes-v1.31.0-x86-64.raw "$F/etc/extensions/kubernetes.raw"
run_merge "$F"
expect_rc 0
assert_file_content "$F/usr/share/kubernetes/version" v1.31.0
run_unmerge "$F"
expect_rc 0
snapshot_state "$F" after-unmerge
assert_same_state before after-unmerge
umount /opt

finish
