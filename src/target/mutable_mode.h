// The mutable modes (--mutable=, SYSTEMD_SYSEXT_MUTABLE_MODE /
// SYSTEMD_CONFEXT_MUTABLE_MODE, rd.sysext.mutable=, rd.confext.mutable=):
// a setting the command line, the environment, the kernel command line and
// the merge share.
// What each mode builds is merge/mutable.h's.
#pragma once

#include <string_view>

#include "base/result.h"

namespace rdext {

enum class MutableMode { No, Auto, Yes, Import, Ephemeral, EphemeralImport };

// systemd's spellings; also its booleans (1/0, true/false, on/off).
Result<MutableMode> parse_mutable_mode(std::string_view text);
const char* mutable_mode_name(MutableMode m);

// What --mutable=help prints: the modes, one a line, in systemd's order.
const char* mutable_mode_list();

}  // namespace rdext
