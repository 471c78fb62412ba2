#include "release/compat.h"

#include <fcntl.h>

#include <algorithm>
#include <vector>

#include "base/fs.h"

namespace rdext {
namespace {

// Space/tab/newline separated words, as systemd's strv_split(WHITESPACE).
std::vector<std::string> split_words(const std::string& s) {
    std::vector<std::string> words;
    size_t i = 0;
    while (i < s.size()) {
        size_t start = s.find_first_not_of(" \t\n\r", i);
        if (start == std::string::npos) break;
        size_t end = s.find_first_of(" \t\n\r", start);
        if (end == std::string::npos) end = s.size();
        words.push_back(s.substr(start, end - start));
        i = end;
    }
    return words;
}

bool contains(const std::vector<std::string>& words, const std::string& w) {
    return std::find(words.begin(), words.end(), w) != words.end();
}

// A refusal is a verdict, not an OS error: no errno, and the plain reason
// (the caller names the image).
Error refuse() { return Error(); }

Result<void> check_scope(ImageClass cls, const ReleaseFields& ext,
                         const std::string& scope) {
    if (scope.empty()) return {};  // no scope known: systemd skips the check too
    const std::string key = class_info(cls).scope_key;
    auto it = ext.find(key);
    // Without the key an extension serves the system and portable services;
    // with an empty value it serves nothing.
    std::vector<std::string> scopes =
        it == ext.end() ? std::vector<std::string>{"system", "portable"} : split_words(it->second);
    if (contains(scopes, scope)) return {};
    if (it == ext.end())
        return refuse() << "without " << key << " an extension is only for system and portable "
                            << "use, not for the " << scope << " scope";
    return refuse() << key << "=" << it->second << " does not include the target's scope " << scope;
}

Result<void> check_architecture(const ReleaseFields& ext, const std::string& arch) {
    std::string want = release_value(ext, "ARCHITECTURE");
    if (want.empty() || want == "_any" || want == arch) return {};
    return refuse() << "ARCHITECTURE=" << want << " does not match the running architecture " << arch;
}

Result<void> check_id(const std::string& id, const ReleaseFields& host) {
    std::string host_id = release_value(host, "ID");
    std::string host_like = release_value(host, "ID_LIKE");
    // Only the host's ID_LIKE counts: an extension cannot declare itself
    // compatible with more systems.
    if (id == host_id || contains(split_words(host_like), id)) return {};
    Error e = refuse() << "ID=" << id << " does not match the OS's ID=" << host_id;
    if (!host_like.empty()) e << " (ID_LIKE=" << host_like << ")";
    return e;
}

// The version rules, once ID has matched and the host has some version
// information: an API level on both sides wins over VERSION_ID.
Result<void> check_version(ImageClass cls, const ReleaseFields& ext,
                           const ReleaseFields& host) {
    const std::string level_key = class_info(cls).level_key;
    std::string host_level = release_value(host, level_key), ext_level = release_value(ext, level_key);
    if (!host_level.empty() && !ext_level.empty()) {
        if (host_level == ext_level) return {};
        return refuse() << level_key << "=" << ext_level << " does not match the OS's " << level_key
                            << "=" << host_level;
    }
    std::string host_version = release_value(host, "VERSION_ID");
    if (host_version.empty()) return {};  // host has only a level, the extension none
    std::string ext_version = release_value(ext, "VERSION_ID");
    if (ext_version.empty())
        return refuse() << "no VERSION_ID" << (host_level.empty() ? "" : " or " + level_key)
                            << " to match the OS's VERSION_ID=" << host_version;
    if (ext_version == host_version) return {};
    return refuse() << "VERSION_ID=" << ext_version << " does not match the OS's VERSION_ID=" << host_version;
}

}  // namespace

Result<void> check_host_release(const ReleaseFields& host) {
    if (release_value(host, "ID").empty())
        return Error(EINVAL) << "the OS's os-release has no ID, so no extension can be matched to it";
    return {};
}

Result<void> check_compatible(ImageClass cls, const std::string& /*name: messages leave naming to the caller*/, const ReleaseFields& ext,
                              const CompatContext& ctx) {
    RDEXT_TRY(check_host_release(ctx.host));
    if (ext.empty()) return refuse() << "the release file carries no data";
    RDEXT_TRY(check_scope(cls, ext, ctx.scope));
    RDEXT_TRY(check_architecture(ext, ctx.architecture));
    std::string id = release_value(ext, "ID");
    if (id.empty()) return refuse() << "the release file has no ID (use ID=_any for any OS)";
    // "_any": no dependency on the OS at all (static binaries, scripts).
    if (id == "_any") return {};
    RDEXT_TRY(check_id(id, ctx.host));
    // A rolling release has nothing to compare the version with.
    if (release_value(ctx.host, "VERSION_ID").empty() &&
        release_value(ctx.host, class_info(cls).level_key).empty())
        return {};
    return check_version(cls, ext, ctx.host);
}

std::string target_scope(int root_fd) {
    auto fd = open_in_root(root_fd, "/etc/initrd-release", O_PATH);
    return fd ? "initrd" : "system";
}

}  // namespace rdext
