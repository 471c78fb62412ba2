// What rdext leaves for the booted system when it merged in the initrd.
//
// Covered by the VM scenarios (tests/vm/scenarios/first_boot.sh and the
// others that merge in the initrd).
#pragma once

#include "target/target.h"

namespace rdext {

// Runtime drop-ins (/run/systemd/system/systemd-{sysext,confext}.service.d/)
// that keep the booted system's systemd-sysext/confext services from
// unmerging and merging again what rdext merged: /run moves into the real
// root at switch-root, and systemd reads units from /run/systemd/system.
// Failures are logged, not fatal: the merge itself is in place.
void hand_off(const Target& target);

}  // namespace rdext
