// The one step that changes what the target's hierarchies show. Every
// overlay is attached, or (when one fails) none stays: what was attached
// is taken back.
//
// Covered by tests/integration/merge_kinds.sh (commit), refresh.sh and refresh_gap.sh
// (swap), fault_enum.sh (every step failing: nothing stays half done).
#pragma once

#include <string>
#include <vector>

#include "base/fd.h"
#include "base/image_class.h"
#include "base/result.h"
#include "merge/run.h"
#include "state/state_file.h"
#include "target/target.h"

namespace rdext {

struct PreparedOverlay {
    ImageClass cls = ImageClass::Sysext;
    std::string hierarchy;   // "/usr"
    UniqueFd overlay_fd;     // detached overlay; invalid when nothing goes here
    std::vector<std::string> merged_names;  // images with files here, bottom to top
    bool writable = false;   // a mutable merge: the metadata gets a read-only bind
    UniqueFd meta_fd;        // the metadata layer (origin is written once all are built)
    std::vector<ExtensionRecord> merged;  // what the metadata lists
    std::string work_dir;    // systemd's name of the work dir of a mutable merge
    bool create_mount_point = false;  // the root lacks the hierarchy: commit creates it
};

Result<void> commit_overlays(const Target& target, std::vector<PreparedOverlay>& overlays);

// The refresh's commit: on each hierarchy, the prepared overlay replaces the
// current merge. With mount beneath (Linux 6.5+) the new overlay slides in
// under the old one before that is detached, so no lookup ever finds the
// bare hierarchy; mounts below the old merge (/usr/share/foo) are copied
// onto the new one first. Without it: unmount and mount, with a message.
// A hierarchy no longer merged is unmerged, a newly merged one mounted.
// Every hierarchy is swapped, or (when one fails) none stays swapped.
// Sets run.fell_back when a swap fell back to unmount and mount.
Result<void> swap_overlays(const Target& target, std::vector<PreparedOverlay>& overlays, Run& run);

// A detached copy of a merged hierarchy's mounts, taken before a refresh
// removes them, so a refresh that fails can put the old merge back.
struct SavedMerge {
    ImageClass cls;
    std::string hierarchy;
    UniqueFd copy;
};
Result<std::vector<SavedMerge>> save_merges(const Target& target, ImageClass cls);
void restore_merges(const Target& target, std::vector<SavedMerge>& saved) noexcept;

// Removes merges (rdext's or systemd-sysext's, recognised by their
// metadata) from one hierarchy, stacked ones included.
Result<void> unmerge_hierarchy(const Target& target, ImageClass cls, const std::string& hierarchy);

// EBUSY when a merge on the hierarchy is covered by another mount (a tmpfs
// mounted over the merged /usr), naming that mount. systemd-sysext would
// unmount the top mount, someone else's; unmerge refuses instead, and
// leaves the merge and its record as they are.
Result<void> refuse_if_covered(const Target& target, ImageClass cls, const std::string& hierarchy);

}  // namespace rdext
