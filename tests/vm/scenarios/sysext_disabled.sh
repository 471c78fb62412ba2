#!/usr/bin/env bash
# rd.sysext=0: /usr stays the root's own for the whole boot (the booted
# system's systemd-sysext.service must not merge it either); confexts still
# merge.
source "$(dirname "$0")/../lib.sh"
kind=${1:-busybox}
new_scenario
standard_extensions
expect EXPECT_SYSEXT="''" EXPECT_CONFEXT=rdconf FEATURES=absent CHECK_SYSEXT_IDLE=1
root_disk
boot_vm "$(initrd_for "$kind")" "rd.sysext=0" "$WORK/root.img"
expect_check_pass
