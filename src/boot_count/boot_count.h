// Boot counting for versioned extensions, the scheme of systemd's Automatic
// Boot Assessment applied to NAME.raw.v/ entries (systemd itself never
// changes the counters there):
//   - NAME_VERSION+LEFT-DONE.raw is on trial. Each boot that merges it uses
//     up one try: rdext renames it to +(LEFT-1)-(DONE+1), once per boot.
//   - `rdext mark-good`, run once the booted system is known to work,
//     renames it to NAME_VERSION.raw.
//   - An entry with no tries left ranks below every other one, so after LEFT
//     boots that never got to mark-good the previous version is merged again.
// Renames happen inside the versioned directory, through its fd, only when
// the name still refers to the inode that was chosen, and never over an
// existing name. A rename that cannot be done is logged and recorded; it
// never fails a merge.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "discover/discover.h"
#include "state/state_file.h"
#include "target/target.h"

namespace rdext {

// The record for merging `chosen` out of versioned directory `dir`, or
// nothing when it carries no counter. Its status is still empty.
std::optional<TrialRecord> trial_for(const std::string& dir, const VersionedImage& chosen);

// Renames `from` to `to` in dir_fd, only when `from` still is the inode
// `identity` names ("MAJOR:MINOR:INODE") and `to` does not exist (EEXIST).
// Already renamed (`from` gone, `to` that inode) is success. A read-only
// file system is EROFS.
Result<void> rename_entry(int dir_fd, const std::string& from, const std::string& to, const std::string& identity);

// After a merge: uses up one try of each merged trial entry (status
// "counted", or "pending" when the root is read-only, "exhausted" when no
// try is left, "failed" with the reason otherwise). An entry that the
// merge before (`previous`, same boot id) already counted is not counted
// again: a refresh is not a boot.
void count_trials(int root_fd, const MergeState* previous, MergeState& state);

// Before a merge: does the renames the previous merge left "pending"
// because the root was read-only then (the first write-capable moment).
void retry_pending_trials(int root_fd, MergeState& previous);

// `rdext count-tries`, run once the booted system has mounted its root
// writable (rdext-count-tries.service): does the renames this boot's merge
// left "pending" and records them in state.json. Nothing pending is
// success; a rename that still cannot be done is the error (the entry
// stays pending: no other name is touched). Returns the record of the
// operation: the entries it counted, `failure` when one could not be.
MergeState count_pending_tries(const Target& target);

// `rdext mark-good`: renames the trial entries of the current merge (per
// state.json) to their plain names and records that. Nothing to mark is
// success; renames that fail are all named in the record's `failure` (the
// others are still done). Returns the record of the operation: the
// entries marked good.
MergeState mark_good(const Target& target);

}  // namespace rdext
