#include "mount/overlay.h"

#include <sys/mount.h>

#include "base/fault.h"
#include "base/log.h"
#include "kmod/modules.h"
#include "mount/mount_api.h"

namespace rdext {
namespace {

std::vector<FsParam> common_params(const OverlaySpec& spec) {
    // "ro": a superblock with only lower layers; the mount is read-only too.
    if (spec.upper.empty()) return {{"source", spec.source}, {"ro", "", true}};
    // index=off: the old and the new merge share the upper directory for
    // the moment of a refresh (the kernel only warns about that then).
    return {{"source", spec.source},       {"upperdir", spec.upper},    {"workdir", spec.work},
            {"redirect_dir", "on"},        {"metacopy", "off"},         {"index", "off"}};
}

uint64_t attrs_for(const OverlaySpec& spec) {
    if (spec.upper.empty()) return mount_attrs_from_flags(spec.flags);
    return mount_attrs_from_flags(spec.flags & ~static_cast<unsigned long>(MS_RDONLY)) | MOUNT_ATTR_NOATIME;
}

Result<UniqueFd> with_lowerdir_plus(const OverlaySpec& spec) {
    auto params = common_params(spec);
    for (const auto& l : spec.lowers) params.push_back({"lowerdir+", l});
    return mount_detached("overlay", params, attrs_for(spec));
}

Result<UniqueFd> with_lowerdir_string(const OverlaySpec& spec) {
    std::string joined;
    for (const auto& l : spec.lowers) {
        if (!joined.empty()) joined += ':';
        joined += escape_lowerdir(l);
    }
    // The kernel silently truncates longer option strings; refuse instead
    // of risking an overlay that lacks its lowest layers.
    if (joined.size() + sizeof("lowerdir=") > 4095)
        return Error(E2BIG) << "this kernel takes overlay layers as one option string, and "
                            << spec.lowers.size() << " layers do not fit in it";
    auto params = common_params(spec);
    params.push_back({"lowerdir", joined});
    return mount_detached("overlay", params, attrs_for(spec));
}

}  // namespace

std::string escape_lowerdir(const std::string& path) {
    std::string out;
    for (char c : path) {
        if (c == ':' || c == ',' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

Result<UniqueFd> create_overlay(const OverlaySpec& spec, bool& lowerdir_plus_refused) {
    if (spec.lowers.empty()) return Error(EINVAL) << "overlay without layers";
    if (spec.lowers.size() > kMaxOverlayLayers)
        return Error(E2BIG) << spec.lowers.size() << " layers exceed overlayfs' limit of "
                            << kMaxOverlayLayers;
    RDEXT_TRY(fault_point("overlay"));
    RDEXT_TRY(ensure_filesystem("overlay"));
    if (lowerdir_plus_refused) return with_lowerdir_string(spec);
    auto r = with_lowerdir_plus(spec);
    // EINVAL: a kernel before 6.8 without "lowerdir+". 6.5-6.7 reject the
    // parameter itself; before 6.5 overlay takes fsconfig() parameters only
    // as one legacy option string, and the kernel refuses that string when
    // the superblock is created, with a message that does not name the
    // parameter (seen on Debian's 6.1). Either way the one-string form
    // follows; a genuine EINVAL fails there too, and the message keeps the
    // first refusal so that it is not hidden behind the second.
    if (!r && r.error().code() == EINVAL) {
        log_debug() << "kernel lacks overlay lowerdir+, using one lowerdir= string";
        auto s = with_lowerdir_string(spec);
        if (!s) return s.error().prefix("lowerdir+ refused (" + r.error().what() + "); lowerdir=: ");
        lowerdir_plus_refused = true;
        return s;
    }
    return r;
}

}  // namespace rdext
