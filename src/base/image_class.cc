#include "base/image_class.h"

#include <sys/mount.h>

namespace rdext {

const ClassInfo& class_info(ImageClass c) {
    // /usr/lib/extensions is not searched: overlayfs refuses a lower layer
    // that lives inside the hierarchy it covers.
    static const ClassInfo sysext{
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
    static const ClassInfo confext{
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
