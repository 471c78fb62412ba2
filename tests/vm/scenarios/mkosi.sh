#!/usr/bin/env bash
# The project's mkosi configuration (mkosi.conf, mkosi.images/), built with
# mkosi 24 by scripts/builders-mkosi.sh (cached by its inputs) and booted:
# its own Debian 12 kernel and its dracut initrd with rdext, its disk image
# with the signed sysext and confext mkosi built. The common checker (copied
# in as an extra tree) asserts on the first boot that both were merged in
# the initrd, through dm-verity with the signature checked against the
# certificate the image's build put into the initrd's /etc/verity.d.
source "$(dirname "$0")/../lib.sh"
for tool in debootstrap flock openssl; do
    command -v "$tool" >/dev/null || skip "$tool missing (run scripts/setup-debian.sh)"
done
new_scenario

# The extra tree: the checker (new_scenario put it into $OVERLAY) and what
# it expects. No initrd record of /sysroot/usr here (that is the VM
# harness's own dracut module), so no handoff check; that the booted
# system's systemd-sysext.service never ran shows the merge is the initrd's.
put /etc/rdext-check.d/mkosi.sh <<'EOF'
check "the sysext and the confext are read through dm-verity" verity_devices 2
EOF
expect EXPECT_SYSEXT="'rdext-hello-sysext'" EXPECT_CONFEXT="'rdext-hello-confext'" FEATURES=skip \
    CHECK_HANDOFF=0 CHECK_SYSEXT_IDLE=1

bin=$(initrd_rdext) || die "no rdext binary for the image"
t=$SECONDS
out=$(RDEXT_INITRD_BINARY=$bin RDEXT_MKOSI_EXTRA=$OVERLAY "$SRC_DIR/scripts/builders-mkosi.sh" disk) ||
    die "scripts/builders-mkosi.sh disk failed"
log "mkosi image in $out ($((SECONDS - t))s)"

SERIAL_LOG=$VM_OUT_DIR/logs/$TEST_NAME.log
cmdline="console=ttyS0 root=/dev/vda1 rootfstype=ext4 rw panic=-1 rd.emergency=poweroff rd.shell=0"
# The image has the distribution kernel's full module set (the harness's
# root only the few it needs): udev's coldplug loads much more, and under
# TCG on a busy host the boot takes minutes. kvm is of no use in a TCG guest
# and the slowest to load.
cmdline+=" systemd.firstboot=off systemd.show_status=1 modprobe.blacklist=kvm,kvm_intel,kvm_amd"
VM_TIMEOUT=${RDEXT_VM_TIMEOUT:-900}
qemu_run "$out/rdext-demo.vmlinuz" "$out/rdext-demo.initrd" "$cmdline" \
    -drive "file=$out/rdext-demo.raw,if=virtio,format=raw,snapshot=on"
expect_check_pass
