// Finding and reading an extension image's release file, with the lookup
// rules of systemd's open_extension_release() (v256+), so an image is
// accepted or refused by rdext exactly when systemd-sysext would.
#pragma once

#include <string>

#include "base/image_class.h"
#include "release/os_release.h"

namespace rdext {

// systemd's image_name_is_valid(): a file name (no '/', not "." or "..", at
// most 255 bytes), valid UTF-8, no control characters, not ".#...".
bool image_name_is_valid(const std::string& name);

// The part of an image name a release file may be named after: any
// ".sysext.raw" / ".confext.raw" / ".raw" suffix dropped, then everything
// from the first '_' or '+' (version and boot counter) cut off:
// "foo_1.2+3.raw" -> "foo". "" when nothing valid is left.
std::string image_base_name(const std::string& name);

// Reads the release file of image `name` inside the image tree rooted at
// image_root_fd (an O_PATH directory fd of the tree holding usr/ or etc/);
// every path, symlinks included, is resolved inside that tree.
//   1. <release_dir>/extension-release.NAME if it exists;
//   2. otherwise the one regular file extension-release.X (no symlink)
//      whose X equals image_base_name(name), or which carries the xattr
//      user.extension-release.strict set to a false boolean ("0", "no"...).
// Errors: ENOENT "no extension-release.NAME", ENOTUNIQ when two files
// qualify in step 2, EINVAL for an invalid name, else the reading error.
Result<ReleaseFields> read_extension_release(int image_root_fd, ImageClass cls, const std::string& name);

// Why merging the tree (an image of class `cls`) would replace or hide
// the OS's release file, or "" when it would not: any entry at all (a
// dangling link, a FIFO, a directory, a whiteout) at usr/lib/os-release
// (systemd's rule, for both classes) or, for a confext, at etc/os-release;
// for the hierarchy the class merges, a path there that is not plain
// directories (usr/lib a link) or a directory on it marked opaque or
// redirected for overlayfs (trusted.overlay.* or user.overlay.*, any
// value). A lookup error also gives a reason: refusing an image we cannot
// inspect is the safe side.
std::string os_release_conflict(int image_root_fd, ImageClass cls);

}  // namespace rdext
