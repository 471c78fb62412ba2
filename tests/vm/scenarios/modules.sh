#!/usr/bin/env bash
# Kernel modules shipped by extensions, on the first boot (busybox|dracut):
# rdmii (erofs) ships mii, rdnic (squashfs) ships 8139too, which needs mii;
# the guest root has neither. Each extension carries a modules.dep* of its
# own that knows only its module. The initrd's rdext builds one merged
# index, so in the booted system `modprobe 8139too` loads mii from the other
# extension, `modprobe mii` works, and the root's own modules (dummy) still
# resolve. With the busybox initrd, /init loads only the root disk's
# modules: the serial log shows rdext loading overlay, erofs, squashfs and
# loop itself (libkmod).
source "$(dirname "$0")/../lib.sh"
kind=${1:?usage: modules.sh busybox|dracut|dracutng}
new_scenario

debs=("$CACHE_DIR"/debs/linux-image-"$VM_KVER"_*.deb)
(( ${#debs[@]} )) || skip "the guest kernel's package is not in $CACHE_DIR/debs"
log "taking mii and 8139too from $(basename "${debs[-1]}")"
dpkg-deb --fsys-tarfile "${debs[-1]}" |
    tar -x -C "$WORK" --wildcards '*/drivers/net/mii.ko.xz' '*/drivers/net/ethernet/realtek/8139too.ko.xz'
mii=$(find "$WORK" -name mii.ko.xz) nic=$(find "$WORK" -name 8139too.ko.xz)
[[ -f $mii && -f $nic ]] || die "mii or 8139too not found in the kernel package"
[[ -z $(find "$VM_ROOT_TREE/usr/lib/modules" -name 'mii.ko*' -o -name '8139too.ko*') ]] ||
    die "the guest root already has mii or 8139too"

# module_sysext DIR NAME KO: NAME ships KO for the guest kernel, with an
# index of its own (which, merged as it is, would hide every other one).
module_sysext() {
    local t=$1 name=$2 ko=$3
    marker_sysext "$t" "$name"
    install -D -m 0644 "$ko" "$t/usr/lib/modules/$VM_KVER/updates/$name/$(basename "$ko")"
    depmod -b "$t/usr" "$VM_KVER" 2>/dev/null
}
mkdir -p "$OVERLAY/var/lib/extensions" "$OVERLAY/etc/extensions"
module_sysext "$IMAGES/rdmii" rdmii "$mii"
make_erofs "$IMAGES/rdmii" "$OVERLAY/var/lib/extensions/rdmii.raw"
module_sysext "$IMAGES/rdnic" rdnic "$nic"
grep -q mii "$IMAGES/rdnic/usr/lib/modules/$VM_KVER/modules.dep" && die "rdnic's own index should not know mii"
make_squashfs "$IMAGES/rdnic" "$OVERLAY/etc/extensions/rdnic.raw"

expect EXPECT_SYSEXT="'rdmii rdnic'" EXPECT_CONFEXT="''"
put /etc/rdext-check.d/modules.sh <<'EOF'
loaded() { [ -d "/sys/module/$1" ]; }
deps_of() { modprobe --show-depends "$1" 2>/dev/null | awk '$1 == "insmod" { print $2 }' | xargs -rn1 basename | tr '\n' ' '; }
echo "RDEXT-CHECK: info 8139too resolves to: $(deps_of 8139too)"
check "neither module is loaded before asking" eval '! loaded mii && ! loaded 8139too'
check "modprobe 8139too (rdnic) loads mii (rdmii) first" eval 'modprobe 8139too && loaded 8139too && loaded mii'
check "modprobe mii works" modprobe mii
check "the root's own module dummy still resolves" eval 'deps_of dummy | grep -q dummy.ko'
check "modules.dep lists both extensions' modules" eval 'grep -q "^updates/rdnic/8139too.ko.xz: updates/rdmii/mii.ko.xz" /usr/lib/modules/$(uname -r)/modules.dep'
EOF
root_disk
boot_vm "$(initrd_for "$kind")" "" "$WORK/root.img"
expect_check_pass
expect_log "rdext: merged module index for [^ ]+ built over 2 extension"
if [[ $kind == busybox ]]; then
    expect_log "rdext: loaded kernel module overlay" "rdext: loaded kernel module erofs" \
        "rdext: loaded kernel module squashfs" "rdext: loaded kernel module loop"
fi
