// What the merge records about a candidate before staging it, shared with
// `rdext list` (cli/report.h), which says what a merge now would record:
// the record's fields, the verdict on entries that are not staged at all
// (masked, shadowed, broken, excluded) and the block device rule.
//
// Covered by tests/integration/masking.sh and inspect_agreement.sh.
#pragma once

#include "discover/discover.h"
#include "state/state_file.h"
#include "target/target.h"

namespace rdext {

// The record of a candidate as discovery found it (name, class, path, kind).
ExtensionRecord record_for(const Candidate& c);

// Records the result of a candidate the merge does not stage (masked,
// shadowed, broken, excluded by rd.<class>.exclude=); false when it is one
// to stage and check.
bool record_unstaged(const Candidate& c, const Settings& settings, ExtensionRecord& rec);

// The root's device node can name any device of the machine (the root file
// system itself, another OS's disk): only the trusted side allows one.
Result<void> check_block_device_allowed(const Candidate& c, const Settings& settings);

}  // namespace rdext
