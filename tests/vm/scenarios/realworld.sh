#!/usr/bin/env bash
# Extension images as their users make them today, merged on the first boot
# (tests/integration/realworld.sh checks the same kinds on the host, where
# signed images cannot be verified: no device-mapper there):
#
#   bakery-tool          sysext-bakery style squashfs (ID=_any, ARCHITECTURE)   /var/lib/extensions
#   erofs-lz4            mkfs.erofs -zlz4hc --all-root                        /etc/extensions
#   kubernetes           Flatcar layout: /etc/extensions/kubernetes.raw ->
#                        /opt/extensions/kubernetes/kubernetes-v1.30.1-x86-64.raw
#                        (absolute link, resolved inside /sysroot, not in the
#                        initrd; v1.29.2 lies beside it)
#   repart-signed        systemd-repart 252 repart.d DDI: squashfs, verity,
#                        verity-sig signed by the test CA                    /var/lib/extensions
#   makeddi              `systemd-repart --make-ddi=sysext` (systemd 257, the
#                        format Flatcar ships): erofs, verity, verity-sig      /var/lib/extensions
#   rdext-hello-sysext   built by mkosi 24 from mkosi.images/ (signed)        /var/lib/extensions
#   rdext-hello-confext  the same, Format=confext                              /var/lib/confexts
#
# The initrd carries the test CA and mkosi's certificate in /etc/verity.d and
# an /etc/rdext/policy.conf that wants the signed ones signed
# (`repart-* root=signed+absent:usr=signed+absent`, ...), so each of them is
# merged through a dm-verity device whose signature checked out; the
# checker counts those devices.
source "$(dirname "$0")/../lib.sh"
kind=${1:-dracut}
for tool in systemd-repart openssl mkfs.erofs mksquashfs debootstrap; do
    command -v "$tool" >/dev/null || skip "$tool missing (run scripts/setup-debian.sh)"
done
new_scenario
ext=$OVERLAY/var/lib/extensions
mkdir -p "$ext" "$OVERLAY/var/lib/confexts" "$OVERLAY/etc/extensions" "$WORK/keys"
keys=$WORK/keys
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rdext realworld test CA" \
    -keyout "$keys/test.key" -out "$keys/test.crt" 2>/dev/null

# sysext-bakery: bake.sh's mksquashfs options and release file.
marker_sysext "$IMAGES/bakery-tool" bakery-tool
printf 'ID=_any\nARCHITECTURE=x86-64\nEXTENSION_RELOAD_MANAGER=1\n' \
    >"$IMAGES/bakery-tool/usr/lib/extension-release.d/extension-release.bakery-tool"
# -xattrs-exclude '^btrfs.' only with mksquashfs 4.6+, as bakery does.
bakery_opts=(-all-root -noappend)
if [[ $(printf '%s\n4.6\n' "$(mksquashfs -version | awk 'NR == 1 { print $3 }')" | sort -V | head -n 1) == 4.6 ]]; then
    bakery_opts+=(-xattrs-exclude '^btrfs.')
fi
mksquashfs "$IMAGES/bakery-tool" "$ext/bakery-tool.raw" "${bakery_opts[@]}" -quiet >/dev/null

# mkfs.erofs, compressed.
marker_sysext "$IMAGES/erofs-lz4" erofs-lz4
mkfs.erofs -zlz4hc --all-root "$OVERLAY/etc/extensions/erofs-lz4.raw" "$IMAGES/erofs-lz4" >/dev/null

# Flatcar: versions under /opt/extensions/NAME/, the active one linked.
mkdir -p "$OVERLAY/opt/extensions/kubernetes"
for v in v1.29.2 v1.30.1; do
    rm -rf "$IMAGES/k8s"
    marker_sysext "$IMAGES/k8s" kubernetes
    printf 'ID=_any\nARCHITECTURE=x86-64\n' >"$IMAGES/k8s/usr/lib/extension-release.d/extension-release.kubernetes"
    echo "$v" >"$IMAGES/k8s/usr/share/kubernetes/version"
    make_squashfs "$IMAGES/k8s" "$OVERLAY/opt/extensions/kubernetes/kubernetes-$v-x86-64.raw"
done
ln -s /opt/extensions/kubernetes/kubernetes-v1.30.1-x86-64.raw "$OVERLAY/etc/extensions/kubernetes.raw"

# systemd-repart 252 from repart.d definitions (what --make-ddi stands for).
marker_sysext "$IMAGES/repart-signed" repart-signed
defs=$WORK/repart.d
mkdir -p "$defs"
printf '[Partition]\nType=root\nFormat=squashfs\nCopyFiles=%s:/\nVerity=data\nVerityMatchKey=v\nMinimize=guess\n' \
    "$IMAGES/repart-signed" >"$defs/10-root.conf"
printf '[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=v\nMinimize=best\n' >"$defs/20-verity.conf"
printf '[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=v\n' >"$defs/30-sig.conf"
systemd-repart --empty=create --size=auto --dry-run=no --definitions="$defs" \
    --private-key="$keys/test.key" --certificate="$keys/test.crt" "$ext/repart-signed.raw" >"$WORK/repart.log" 2>&1 ||
    { cat "$WORK/repart.log" >&2; die "systemd-repart failed"; }

# systemd-repart 257 --make-ddi=sysext (trixie chroot, cached).
marker_sysext "$IMAGES/makeddi" makeddi
"$SRC_DIR/scripts/builders-ddi.sh" sysext "$IMAGES/makeddi" "$ext/makeddi.raw" "$keys/test.key" "$keys/test.crt" \
    >"$WORK/makeddi.roothash" || die "scripts/builders-ddi.sh failed"
log "makeddi root hash $(cat "$WORK/makeddi.roothash")"

# mkosi 24's sysext and confext (bookworm-backports chroot, cached).
mkosi_out=$("$SRC_DIR/scripts/builders-mkosi.sh" extensions) || die "scripts/builders-mkosi.sh extensions failed"
cp "$mkosi_out/rdext-hello-sysext.raw" "$ext/"
cp "$mkosi_out/rdext-hello-confext.raw" "$OVERLAY/var/lib/confexts/"

# The initrd: certificates and the policy for the signed ones.
extra=$WORK/initrd-extra
mkdir -p "$extra/etc/verity.d" "$extra/etc/rdext"
cp "$keys/test.crt" "$extra/etc/verity.d/test-ca.crt"
cp "$mkosi_out/mkosi.crt" "$extra/etc/verity.d/mkosi.crt"
cat >"$extra/etc/rdext/policy.conf" <<'EOF'
# signed images must verify; the rest: systemd's default
repart-* root=signed+absent:usr=signed+absent
makeddi root=signed+absent:usr=signed+absent
rdext-hello-* root=signed+absent:usr=signed+absent
EOF
(cd "$extra" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$WORK/extra.cpio.gz"
cat "$(initrd_for "$kind")" "$WORK/extra.cpio.gz" >"$WORK/initrd.img"

# Beyond the common checker: the Flatcar link's version and one verified dm
# device per signed image.
put /etc/rdext-check.d/realworld.sh <<'EOF'
check "kubernetes: the linked version v1.30.1 is merged" content_is /usr/share/kubernetes/version v1.30.1
check "one dm-verity device per signed image (repart-signed, makeddi, rdext-hello-sysext, rdext-hello-confext)" verity_devices 4
EOF

expect EXPECT_SYSEXT="'bakery-tool erofs-lz4 kubernetes makeddi rdext-hello-sysext repart-signed'" \
    EXPECT_CONFEXT="'rdext-hello-confext'" FEATURES=skip CHECK_HANDOFF=1
root_disk
boot_vm "$WORK/initrd.img" "" "$WORK/root.img"
expect_check_pass
