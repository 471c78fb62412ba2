// The one step that changes what the target's hierarchies show. Every
// overlay is attached, or (when one fails) none stays: what was attached
// is taken back and, for a refresh, the previous merge is put back.
#pragma once

#include <string>
#include <vector>

#include "base/fd.h"
#include "base/image_class.h"
#include "base/result.h"
#include "merge/target.h"

namespace rdext {

struct PreparedOverlay {
    ImageClass cls = ImageClass::Sysext;
    std::string hierarchy;   // "/usr"
    UniqueFd overlay_fd;     // detached overlay; invalid when nothing goes here
    std::vector<std::string> merged_names;
};

// replace: a refresh; an existing merge on a hierarchy is swapped for the
// new overlay (or removed when nothing goes there any more).
Result<void> commit_overlays(const Target& target, std::vector<PreparedOverlay>& overlays, bool replace);

// Removes merges (rdext's or systemd-sysext's, recognised by their
// metadata) from one hierarchy, stacked ones included.
Result<void> unmerge_hierarchy(const Target& target, ImageClass cls, const std::string& hierarchy);

}  // namespace rdext
