// The merged module index. Extensions may ship kernel modules for the
// running kernel under usr/lib/modules/KVER/, often with a modules.dep* of
// their own that covers only their modules: in a plain overlay the topmost
// such index hides every other extension's and the root's. At merge time
// depmod runs over the merged view (a writable overlay of the same layers,
// mounted out of sight in the staging area, whose upper directory catches
// what depmod writes); the index files become a layer of their own above
// the images, so the booted system's modprobe finds every module by name
// on the first boot. Without extension modules nothing of this runs.
//
// Unit tests: tests/unit/module_index_test.cc; the index over real images:
// tests/integration/modules.sh and the VM scenario "modules".
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "mount/staging.h"

namespace rdext {

// The running kernel's release (uname -r): the modules that matter.
std::string running_kernel_release();

// True when the tree layer_fd refers to (an image's /usr) has
// lib/modules/KVER as a directory of its own; false for -1. An error when
// lib, lib/modules or lib/modules/KVER is a symbolic link or not a
// directory: depmod walks the index's tree by name, so a link there would
// make it read and write wherever the link points, and merged, such an
// entry would hide the OS's modules from the index.
Result<bool> layer_carries_modules(int layer_fd, const std::string& kver);

// The depmod to run: $RDEXT_DEPMOD (tests), else the static one installed
// with rdext (RDEXT_DEPMOD_PATH, in the initrd too), else the system's
// /usr/sbin/depmod or /sbin/depmod.
Result<std::string> find_depmod();

// Runs depmod over the merged view of `layers` (absolute paths, topmost
// first, the root's own /usr last) for kernel `kver`, and returns the path
// of a new staging slot named `slot` holding lib/modules/KVER/modules.*
// (directories owned and moded as in the view). Leaves no mount behind.
// `lowerdir_plus_refused`: the run's knowledge of overlay (mount/overlay.h).
Result<std::string> build_module_index(Staging& staging, const std::vector<std::string>& layers,
                                       const std::string& kver, const std::string& slot,
                                       bool& lowerdir_plus_refused);

}  // namespace rdext
