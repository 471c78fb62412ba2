#!/usr/bin/env bash
# rd.sysext.require= naming an extension that is not there: rdext fails and
# the initrd takes its emergency path (rd.emergency=poweroff rd.shell=0 in
# the tests) instead of booting without it.
source "$(dirname "$0")/../lib.sh"
kind=${1:?usage: require_missing.sh busybox|dracut|dracutng}
new_scenario
standard_extensions
root_disk
boot_vm "$(initrd_for "$kind")" "rd.sysext.require=rdmissing" "$WORK/root.img"
case $kind in
    busybox) expect_emergency 'required extension not merged: sysext rdmissing' \
        'rdext: EMERGENCY: merging the extensions into /sysroot failed \(rdext exit 1\) \(action: poweroff' ;;
    # systemd's status lines carry colour codes and cut descriptions.
    dracut | dracutng) expect_emergency 'required extension not merged: sysext rdmissing' \
        'Failed to start .*rdext-merg' 'Reached target .*emergency\.target' 'Boot has failed' ;;
esac
