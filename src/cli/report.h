// What `status` and `list` print, as text for people or JSON for tools.
#pragma once

#include <string>

#include "base/result.h"
#include "cli/options.h"
#include "target/target.h"

namespace rdext {

// Merged hierarchies (from the mounts and their metadata) plus the record
// of the last merge (state.json): what was skipped and why.
Result<std::string> render_status(const Target& target, JsonMode json);

// Every image the root offers, with masked and shadowed ones, and what a
// merge now would do with each (the entry of a versioned directory it
// would pick, why it would not merge one) and whether it is merged now.
// `unusable_policy`: why the image policy cannot be loaded ("" when it
// can); a merge would then refuse to run, so nothing would be merged.
Result<std::string> render_list(const Target& target, const Settings& settings, JsonMode json,
                                const std::string& unusable_policy = "");

}  // namespace rdext
