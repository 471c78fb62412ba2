#!/usr/bin/env bash
# rd.sysext.exclude=rdtools drops exactly that extension: the feature sysext
# and the confext still apply.
source "$(dirname "$0")/../lib.sh"
kind=${1:-dracut}
new_scenario
standard_extensions
expect EXPECT_SYSEXT=rdfeature EXPECT_CONFEXT=rdconf FEATURES=present CHECK_HANDOFF=1
root_disk
boot_vm "$(initrd_for "$kind")" "rd.sysext.exclude=rdtools" "$WORK/root.img"
expect_check_pass
