// The merge pipeline: discover -> filter -> stage and check each image ->
// build one overlay per hierarchy out of sight -> commit them all at once.
// A broken image is skipped (and reported); only the commit step touches
// the target hierarchies, and a failed commit takes back what it did.
//
// Covered by tests/integration/merge_kinds.sh, bad_input.sh, cmdline.sh,
// fault_enum.sh and parallel.sh.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "merge/run.h"
#include "state/state_file.h"
#include "target/target.h"

namespace rdext {

// Returns the record of the operation: what was merged, skipped and why,
// and `failure` when it failed; state.json gets the records of what is
// mounted afterwards (state_file.h). A required extension
// (rd.sysext.require=) that would not be merged fails the run before
// anything is committed. A refresh of an unmerged root is a merge.
MergeState merge(const Target& target, const Settings& settings, MergeMode mode);

// Names required on the kernel command line (rd.sysext.require=) that the
// merge did not merge, each with the reason; empty when all are there.
std::vector<std::string> missing_required(const MergeState& state, const Settings& settings);

// Removes rdext's (or systemd-sysext's) overlays from the class's
// hierarchies. Hierarchies that are not merged are left alone. The record
// lists what was merged there (`failure` when some could not be taken off).
MergeState unmerge(const Target& target, const Settings& settings);

}  // namespace rdext
