#!/bin/bash
# Test-only dracut module: records the initrd's view of the /sysroot/usr
# overlay right after rdext-merge.service, so the checker in the booted
# system can tell whether that very mount survived switch-root (and was not
# unmerged and merged again by the booted system's systemd-sysext.service).
check() { return 255; }
depends() { echo systemd rdext; }
install() {
    inst_multiple mkdir
    inst_script "$moddir/rdext-vmtest-record.sh" /usr/bin/rdext-vmtest-record
    inst_simple "$moddir/rdext-vmtest-record.service" "$systemdsystemunitdir/rdext-vmtest-record.service"
    mkdir -p "$initdir$systemdsystemunitdir/initrd.target.wants"
    ln -sfn ../rdext-vmtest-record.service "$initdir$systemdsystemunitdir/initrd.target.wants/rdext-vmtest-record.service"
}
