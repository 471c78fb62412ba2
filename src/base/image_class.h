// The two kinds of extension and everything that differs between them:
// where they are found, what they cover, how their metadata is named.
// Values follow systemd-sysext/confext so both tools agree on one tree.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rdext {

enum class ImageClass { Sysext, Confext };

struct ClassInfo {
    const char* name;              // "sysext" / "confext" (also the overlay's source)
    const char* dot_dir;           // metadata directory inside a merged hierarchy
    const char* list_file;         // file in dot_dir naming the merged images
    const char* release_dir;       // where an image carries its release file
    const char* level_key;         // SYSEXT_LEVEL / CONFEXT_LEVEL
    const char* scope_key;         // SYSEXT_SCOPE / CONFEXT_SCOPE
    std::vector<std::string> search_dirs;  // precedence order: first wins a name
    std::vector<std::string> hierarchies;  // what the overlays cover
    unsigned long overlay_flags;   // MS_* for the overlay mount
};

const ClassInfo& class_info(ImageClass c);
// SYSTEMD_SYSEXT_HIERARCHIES / SYSTEMD_CONFEXT_HIERARCHIES: the class's
// hierarchies in place of the built-in ones, for the whole run (set once,
// before anything looks at a hierarchy; target/target.h validates them).
void set_class_hierarchies(ImageClass c, std::vector<std::string> hierarchies);
// A hierarchy as one path component, as systemd-sysext names its mutable
// and work directories: "/usr" -> "usr", "/nix/store" -> "nix.store".
std::string hierarchy_dir_name(const std::string& hierarchy);
const char* class_name(ImageClass c);
// The class `name` ("sysext", "confext") names.
std::optional<ImageClass> class_from_name(std::string_view name);
// All classes, in the order rdext merges them.
const std::vector<ImageClass>& all_classes();

}  // namespace rdext
