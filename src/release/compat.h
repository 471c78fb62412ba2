// Whether an extension may be merged on top of the target OS: the checks of
// systemd's extension_release_validate(), in the same order, so rdext and
// systemd-sysext accept and refuse the same images.
#pragma once

#include <string>

#include "base/image_class.h"
#include "release/os_release.h"
#include "release/release_architecture.h"

namespace rdext {

struct CompatContext {
    ReleaseFields host;        // the target's os-release
    std::string scope;         // "system" or "initrd" (see target_scope())
    std::string architecture;  // systemd spelling, e.g. uname_architecture()
};

// The OS side must carry a non-empty ID; systemd refuses to merge anything
// at all otherwise, so call this once before looking at images.
Result<void> check_host_release(const ReleaseFields& host);

// Accepts, or says why not. Checks in order: release data present; the
// SYSEXT_SCOPE/CONFEXT_SCOPE list (default "system portable", present but
// empty matches nothing) contains ctx.scope; ARCHITECTURE (unless empty or
// "_any") equals ctx.architecture; ID is present; ID "_any" accepts; ID
// equals the host's ID or a word of the host's ID_LIKE; a host without
// VERSION_ID and level accepts; if both sides carry the level key they must
// be equal; else a host VERSION_ID must be matched exactly. Empty values
// count as absent (except for the scope). Comparisons are exact strings.
// Refusals have no errno (code() == 0) and a message starting with the image
// name; a host without ID is EINVAL (see check_host_release()).
Result<void> check_compatible(ImageClass cls, const std::string& name, const ReleaseFields& ext,
                              const CompatContext& ctx);

// "initrd" when <root>/etc/initrd-release exists, else "system": an image
// merged into the final root (/sysroot) serves the system, not the initrd.
std::string target_scope(int root_fd);

}  // namespace rdext
