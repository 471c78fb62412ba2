#include "base/image_class.h"

#include <sys/mount.h>

#include <algorithm>

namespace rdext {

namespace {

ClassInfo& mutable_class_info(ImageClass c) {
    // /usr/lib/extensions is not searched: overlayfs refuses a lower layer
    // that lives inside the hierarchy it covers.
    static ClassInfo sysext{
        "sysext",
        ".systemd-sysext",
        "extensions",
        "usr/lib/extension-release.d",
        "SYSEXT_LEVEL",
        "SYSEXT_SCOPE",
        {"/etc/extensions", "/run/extensions", "/var/lib/extensions"},
        {"/usr", "/opt"},
        MS_RDONLY | MS_NODEV,
    };
    static ClassInfo confext{
        "confext",
        ".systemd-confext",
        "confexts",
        "etc/extension-release.d",
        "CONFEXT_LEVEL",
        "CONFEXT_SCOPE",
        {"/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts", "/usr/lib/confexts"},
        {"/etc"},
        MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC,
    };
    return c == ImageClass::Sysext ? sysext : confext;
}

}  // namespace

const ClassInfo& class_info(ImageClass c) { return mutable_class_info(c); }

void set_class_hierarchies(ImageClass c, std::vector<std::string> hierarchies) {
    mutable_class_info(c).hierarchies = std::move(hierarchies);
}

std::string hierarchy_dir_name(const std::string& hierarchy) {
    const size_t start = hierarchy.find_first_not_of('/');
    std::string name = start == std::string::npos ? "" : hierarchy.substr(start);
    while (!name.empty() && name.back() == '/') name.pop_back();
    std::replace(name.begin(), name.end(), '/', '.');
    return name;
}

const char* class_name(ImageClass c) { return class_info(c).name; }

std::optional<ImageClass> class_from_name(std::string_view name) {
    for (ImageClass c : all_classes())
        if (name == class_name(c)) return c;
    return std::nullopt;
}

const std::vector<ImageClass>& all_classes() {
    static const std::vector<ImageClass> classes{ImageClass::Sysext, ImageClass::Confext};
    return classes;
}

}  // namespace rdext
