// Mutable merges, as systemd-sysext v256 offers them (--mutable=,
// rd.sysext.mutable=, rd.confext.mutable=): a writable upper layer over the
// extensions, kept in /var/lib/extensions.mutable/<h> (persistent) or in a
// tmpfs that goes with the merge (ephemeral), and the "import" modes that
// show that directory's content as one more read-only layer.
//
// Covered by tests/integration/mutable.sh (every mode, links that leave the
// root) and refresh.sh (a mutable /etc across a refresh).
#pragma once

#include <string>

#include "base/fd.h"
#include "base/image_class.h"
#include "base/result.h"
#include "mount/staging.h"
#include "target/mutable_mode.h"

namespace rdext {

// What a hierarchy's overlay gets on top of the extensions: O_PATH fds of
// the directories found and checked, for the kernel to take as they are
// (their /proc/self/fd links), not by a path it would walk again.
struct MutableLayers {
    UniqueFd import_dir;         // read-only layer below the metadata (import modes)
    UniqueFd upper, work;        // none: a read-only overlay
    bool upper_is_base = false;  // extensions.mutable/<h> links to the hierarchy itself
    std::string work_for_meta;   // the work dir as systemd names it, for the `work_dir` file
    bool writable() const { return upper.valid(); }
};

// Decides and prepares (creating directories where the mode asks for them)
// the writable parts for `hierarchy` ("/usr"). `root_fd` is the target
// root, `current_fd` the hierarchy as it resolves now (the merge, during a
// refresh), `base_fd` the hierarchy's own directory the overlay sits on,
// whose owner and mode a new upper directory takes.
Result<MutableLayers> mutable_layers(int root_fd, int current_fd, Staging& staging, ImageClass cls,
                                     const std::string& hierarchy, int base_fd, MutableMode mode);

}  // namespace rdext
