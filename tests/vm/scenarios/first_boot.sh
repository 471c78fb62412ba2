#!/usr/bin/env bash
# First boot with extensions, through the given initrd (busybox|dracut):
# everything the feature sysext ships is in effect (unit, udev rule,
# modules-load.d, sysctl.d, tmpfiles.d), the confext is in /etc, both
# systemd-sysext and rdext report the merge, and the booted system kept the
# initrd's overlay (systemd-sysext.service did not merge again).
source "$(dirname "$0")/../lib.sh"
kind=${1:?usage: first_boot.sh busybox|dracut|dracutng}
new_scenario
standard_extensions
expect EXPECT_SYSEXT="'rdfeature rdtools'" EXPECT_CONFEXT=rdconf FEATURES=present CHECK_HANDOFF=1
root_disk
# Requiring an extension that is there changes nothing.
boot_vm "$(initrd_for "$kind")" "rd.sysext.require=rdfeature" "$WORK/root.img"
expect_check_pass
