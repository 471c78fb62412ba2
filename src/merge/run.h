// One run of `merge` or `refresh`: its mode, and what it learns on the way
// that later steps of the same run act on. Passed down explicitly; nothing
// of it outlives the run (no process-wide switch).
//
// Covered by tests/integration/refresh.sh and refresh_gap.sh; the kernel
// without mount beneath or lowerdir+ by the VM scenario
// tests/vm/scenarios/refresh_oldkernel.sh (Linux 6.1).
#pragma once

#include <memory>

#include "image/loop.h"

namespace rdext {

enum class MergeMode {
    Merge,    // refuse when a hierarchy is already merged
    Refresh,  // replace an existing merge (or merge when there is none)
};

struct Run {
    MergeMode mode = MergeMode::Merge;
    // The kernel refused overlay's "lowerdir+": later overlays of the run
    // go straight to one "lowerdir=" string (mount/overlay.h).
    bool lowerdir_plus_refused = false;
    // A refresh's swap fell back to unmount and mount (commit.h), said once.
    bool fell_back = false;
    // A refresh: images that stay in the merge keep their loop devices
    // (dm-verity devices are found by their root hash anyway).
    std::unique_ptr<LoopReuse> loop_reuse;

    bool refresh() const { return mode == MergeMode::Refresh; }
};

}  // namespace rdext
