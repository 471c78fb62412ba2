// The `origin` file of a merge as systemd-sysext 260 and later write and
// compare it (src/sysext/sysext.c, merge_subprocess): a refresh skips the
// merge when the object it computes now equals the one in the first merged
// hierarchy's .systemd-<class>/origin. rdext writes exactly that object, so
// systemd's refresh after an rdext merge (the initrd hand-off included)
// finds nothing changed; rdext's own record is the `rdext` file beside it
// (state/metadata.h). What is verified, and how: doc/design.md (refresh).
//
// Covered by tests/integration/origin_v260.sh.
#pragma once

#include <string>
#include <vector>

#include "base/image_class.h"
#include "target/mutable_mode.h"

namespace rdext {

// One merged image, as systemd names and identifies it.
struct OriginImage {
    std::string name;         // image name: the key in "extensions"
    std::string path;         // inside the root, as systemd names it (systemd_image_path)
    std::string verity_hash;  // lower-case hex root hash when it went through dm-verity
};

// The path systemd gives an image: its search directory resolved (symlinks
// followed inside the root), then the entry's own name (a symlink is named,
// not followed) and, for a versioned directory, the chosen entry's name in
// it. `path` and `versioned_dir` are ExtensionRecord's. Falls back to
// `path` when the directory cannot be resolved.
std::string systemd_image_path(int root_fd, const std::string& path, const std::string& versioned_dir);

// The origin object systemd 260 computes for a merge of `images` (in any
// order) in `mode`, on the root as it is now: each image opened through
// its path (following symlinks) for its mount id, file handle and times;
// the mutable directories resolved. Paths are inside the root.
std::string systemd_origin_json(int root_fd, ImageClass cls, MutableMode mode, const std::vector<OriginImage>& images);

}  // namespace rdext
