#include "fetch/transfer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <set>

#include "base/fs.h"
#include "base/log.h"
#include "discover/discover.h"
#include "release/release_architecture.h"
#include "state/state_file.h"
#include "vpick/vpick.h"

namespace rdext {
namespace {

// sysupdate's search path (CONF_PATHS): the first directory holding a
// name owns it.
const char* const kConfDirs[] = {"/etc/", "/run/", "/usr/local/lib/", "/usr/lib/"};
constexpr size_t kMaxDefinitionSize = 64 * 1024;
constexpr size_t kMaxDefinitionFiles = 1024;

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

std::string first_line(const std::string& text) {
    std::string l = text.substr(0, text.find('\n'));
    while (!l.empty() && (l.back() == ' ' || l.back() == '\r')) l.pop_back();
    return l;
}

// Words of a list value (MatchPattern=, Features=), quotes taken off.
std::vector<std::string> words(const std::string& v) {
    std::vector<std::string> out;
    std::string cur;
    char quote = 0;
    bool in_word = false;
    for (char c : v) {
        if (quote) {
            if (c == quote) quote = 0;
            else cur += c;
        } else if (c == '"' || c == '\'') {
            quote = c;
            in_word = true;
        } else if (c == ' ' || c == '\t') {
            if (in_word) out.push_back(cur);
            cur.clear();
            in_word = false;
        } else {
            cur += c;
            in_word = true;
        }
    }
    if (in_word) out.push_back(cur);
    return out;
}


std::optional<uint64_t> parse_u64(const std::string& s) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(s);
}

// Absolute and normalized, as sysupdate insists (a trailing '/' is taken off).
bool normalize_path(std::string& p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    if (!path_is_absolute(p)) return false;
    for (const auto& part : split(p.substr(1), '/'))
        if (part.empty() || part == "." || part == "..") return p == "/";
    return true;
}


std::optional<ImageClass> search_dir_class(const std::string& dir) {
    for (ImageClass cls : all_classes())
        for (const auto& d : class_info(cls).search_dirs)
            if (d == dir) return cls;
    return std::nullopt;
}

Error at(const IniEntry& e) { return std::move(Error(EINVAL) << e.where() << ": "); }

// The keys rdext carries out, by section. ChangeLog= and AppStream= only
// describe the transfer to a user interface.
const std::set<std::pair<std::string, std::string>>& known_keys() {
    static const std::set<std::pair<std::string, std::string>> keys{
        {"Transfer", "MinVersion"}, {"Transfer", "ProtectVersion"}, {"Transfer", "Verify"},
        {"Transfer", "Features"},   {"Transfer", "RequisiteFeatures"}, {"Transfer", "ChangeLog"},
        {"Transfer", "AppStream"},  {"Source", "Type"},  {"Source", "Path"},  {"Source", "MatchPattern"},
        {"Target", "Type"},         {"Target", "Path"},  {"Target", "MatchPattern"}, {"Target", "InstancesMax"},
        {"Target", "CurrentSymlink"}, {"Target", "Mode"}, {"Target", "TriesLeft"}, {"Target", "TriesDone"},
    };
    return keys;
}

// Where the merge will find the transfer's images; nullopt when nowhere.
// Sets cls, image_name and placement.
Result<bool> place(Transfer& t, const IniEntry* symlink_entry, const IniEntry* path_entry) {
    if (!t.current_symlink.empty()) {
        if (auto cls = search_dir_class(dirname_of(t.current_symlink))) {
            const std::string link = basename_of(t.current_symlink);
            if (!ends_with(link, ".raw"))
                return at(*symlink_entry) << "CurrentSymlink= in " << dirname_of(t.current_symlink)
                                          << " must end in .raw: the merge takes a regular file only by that name";
            t.cls = *cls;
            t.image_name = raw_image_name(link);
            t.placement = Transfer::Placement::Symlink;
            return true;
        }
    }
    if (auto cls = search_dir_class(t.target_path)) {
        t.cls = *cls;
        t.placement = Transfer::Placement::SearchDir;
        return true;
    }
    if (auto cls = search_dir_class(dirname_of(t.target_path)); cls && ends_with(t.target_path, ".v")) {
        auto dn = parse_versioned_dir_name(basename_of(t.target_path), *cls);
        if (!dn) return at(*path_entry) << dn.error().what();
        if (!dn->holds_files())
            return at(*path_entry) << basename_of(t.target_path)
                                   << " holds directory trees; a regular-file target needs a NAME.raw.v directory";
        t.cls = *cls;
        t.image_name = dn->name;
        t.placement = Transfer::Placement::VersionedDir;
        return true;
    }
    return false;
}

// Every target file name must be one the merge takes from where it lands.
Result<void> check_target_names(const Transfer& t, const IniEntry& where) {
    for (const auto& p : t.target_patterns) {
        const std::string& text = p.text();
        if (t.placement == Transfer::Placement::SearchDir && !ends_with(text, ".raw"))
            return at(where) << "target MatchPattern= " << text << " must end in .raw to be an extension in "
                             << t.target_path;
        if (t.placement == Transfer::Placement::VersionedDir) {
            auto dn = parse_versioned_dir_name(basename_of(t.target_path), t.cls);
            if (!starts_with(text, dn->name + "_") || !ends_with(text, dn->suffix))
                return at(where) << "target MatchPattern= " << text << " must be " << dn->name << "_@v..."
                                 << dn->suffix << " to be an entry of " << basename_of(t.target_path);
        }
    }
    return {};
}

struct Fields {
    const IniEntry* source_type = nullptr;
    const IniEntry* target_type = nullptr;
    const IniEntry* target_path = nullptr;
    const IniEntry* symlink = nullptr;
    const IniEntry* last = nullptr;
};

Result<void> set_patterns(std::vector<Pattern>& out, const IniEntry& e, const SpecifierValues& v) {
    out.clear();
    for (const auto& w : words(e.value)) {
        auto expanded = expand_specifiers(w, v);
        if (!expanded) return at(e) << expanded.error().what();
        auto p = Pattern::parse(*expanded);
        if (!p) return at(e) << p.error().what();
        out.push_back(std::move(*p));
    }
    return {};
}

Result<void> take_version(std::string& out, const IniEntry& e, const SpecifierValues& v) {
    auto x = expand_specifiers(e.value, v);
    if (!x) return at(e) << x.error().what();
    if (!x->empty() && !version_is_valid(*x)) return at(e) << e.key << "=" << *x << " is not a valid version";
    out = *x;
    return {};
}

// One key of an extension transfer into `t`.
Result<void> apply(Transfer& t, const IniEntry& e, const SpecifierValues& v, Fields& f) {
    const std::string& k = e.key;
    if (!known_keys().count({e.section, k}))
        return at(e) << "[" << e.section << "] " << k << "= is not supported by rdext fetch";
    auto expanded = [&]() -> Result<std::string> {
        auto x = expand_specifiers(e.value, v);
        if (!x) return at(e) << x.error().what();
        return x;
    };
    if (e.section == "Transfer") {
        if (k == "MinVersion") return take_version(t.min_version, e, v);
        if (k == "ProtectVersion") {
            if (e.value.empty()) t.protect_versions.clear();
            for (const auto& w : words(e.value)) {
                std::string ver;
                RDEXT_TRY(take_version(ver, {e.section, k, w, e.file, e.line}, v));
                if (!ver.empty()) t.protect_versions.push_back(ver);
            }
            return {};
        }
        if (k == "Verify") {
            auto b = parse_boolean(e.value);
            if (!b) return at(e) << "Verify= expects a boolean, not '" << e.value << "'";
            t.verify = *b;
            return {};
        }
        auto& list = k == "Features" ? t.features : t.requisite_features;
        if (k == "Features" || k == "RequisiteFeatures") {
            if (e.value.empty()) list.clear();
            for (const auto& w : words(e.value)) list.push_back(w);
        }
        return {};  // ChangeLog=, AppStream=: for user interfaces only
    }
    if (k == "Type") {
        (e.section == "Source" ? f.source_type : f.target_type) = &e;
        return {};
    }
    if (k == "Path") {
        auto x = expanded();
        if (!x) return x.error();
        (e.section == "Source" ? t.source_path : t.target_path) = *x;
        if (e.section == "Target") f.target_path = &e;
        return {};
    }
    if (k == "MatchPattern") return set_patterns(e.section == "Source" ? t.source_patterns : t.target_patterns, e, v);
    if (k == "CurrentSymlink") {
        auto x = expanded();
        if (!x) return x.error();
        t.current_symlink = *x;
        f.symlink = &e;
        return {};
    }
    if (k == "Mode") {
        if (e.value.empty() || e.value.size() > 4 || e.value.find_first_not_of("01234567") != std::string::npos)
            return at(e) << "Mode= expects an octal mode, not '" << e.value << "'";
        mode_t m = static_cast<mode_t>(std::stoul(e.value, nullptr, 8));
        if (m & ~0777) return at(e) << "Mode=" << e.value << ": an image needs no setuid, setgid or sticky bit";
        t.mode = m;
        return {};
    }
    auto n = parse_u64(e.value);
    if (!e.value.empty() && !n) return at(e) << k << "= expects a number, not '" << e.value << "'";
    if (k == "InstancesMax") t.instances_max = !n || *n == 0 ? 3 : std::max<uint64_t>(*n, 2);
    if (k == "TriesLeft") t.tries_left = n;
    if (k == "TriesDone") t.tries_done = n;
    return {};
}

bool decide_enabled(Transfer& t, const std::map<std::string, Feature>& features) {
    for (const auto& id : t.requisite_features) {
        auto it = features.find(id);
        if (it == features.end() || !it->second.enabled) {
            t.disabled_by = "its requisite feature " + id + " is disabled";
            return false;
        }
    }
    if (t.features.empty()) return true;
    for (const auto& id : t.features) {
        auto it = features.find(id);
        if (it != features.end() && it->second.enabled) return true;
    }
    t.disabled_by = "none of its features (" + join(t.features, ", ") + ") is enabled";
    return false;
}

// The type words, checked once the whole definition is read.
Result<void> check_types(Transfer& t, const Fields& f) {
    if (!f.source_type) return Error(EINVAL) << t.file << ": [Source] Type= is missing";
    const std::string& st = f.source_type->value;
    if (st == "url-file") t.source_type = SourceType::UrlFile;
    else if (st == "regular-file") t.source_type = SourceType::RegularFile;
    else return at(*f.source_type) << "[Source] Type=" << st << " is not supported by rdext fetch (url-file, regular-file)";
    if (f.target_type && f.target_type->value != "regular-file") {
        if (f.target_type->value == "directory")
            return at(*f.target_type) << "[Target] Type=directory needs a tar or directory source, which rdext "
                                         "fetch does not take; with a "
                                      << st << " source the target is a regular-file";
        return at(*f.target_type) << "[Target] Type=" << f.target_type->value << " is not supported by rdext fetch";
    }
    return {};
}

Result<void> check_paths(Transfer& t, const Fields& f) {
    if (t.source_path.empty()) return Error(EINVAL) << t.file << ": [Source] Path= is missing";
    if (t.source_type == SourceType::RegularFile && !normalize_path(t.source_path))
        return Error(EINVAL) << t.file << ": [Source] Path=" << t.source_path << " is not a normalized, absolute path";
    if (t.source_type == SourceType::UrlFile && !starts_with(t.source_path, "file://") &&
        !starts_with(t.source_path, "http://") && !starts_with(t.source_path, "https://"))
        return Error(EINVAL) << t.file << ": [Source] Path=" << t.source_path << " is not a file, http or https URL";
    if (t.source_patterns.empty()) return Error(EINVAL) << t.file << ": [Source] MatchPattern= is missing";
    if (t.target_patterns.empty()) t.target_patterns = t.source_patterns;
    if (!t.current_symlink.empty() && !normalize_path(t.current_symlink))
        return at(*f.symlink) << "CurrentSymlink=" << t.current_symlink << " is not a normalized, absolute path";
    return {};
}

struct ConfFile {
    std::string name;
    std::string path;  // inside the root
};

// Whether a definition file is masked: a link to /dev/null, the null
// device, or an empty file.
bool masked(int root_fd, int dir_fd, const std::string& name, const std::string& path) {
    char buf[PATH_MAX];
    ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf, sizeof buf - 1);
    if (n > 0 && std::string(buf, static_cast<size_t>(n)) == "/dev/null") return true;
    auto fd = open_in_root(root_fd, path, O_PATH);
    if (!fd) return false;
    auto st = stat_fd(fd->get());
    if (!st) return false;
    if (S_ISCHR(st->st_mode) && major(st->st_rdev) == 1 && minor(st->st_rdev) == 3) return true;
    return S_ISREG(st->st_mode) && st->st_size == 0;
}

// The files ending in `suffix` of `subdir` in sysupdate's search path, by
// name, the first directory holding a name owning it, masked names left out.
std::vector<ConfFile> conf_files(int root_fd, const std::string& subdir, const std::string& suffix) {
    std::map<std::string, std::string> owner;  // name -> path, "" when masked
    for (const char* base : kConfDirs) {
        const std::string dir = base + subdir;
        auto dfd = open_in_root(root_fd, dir, O_RDONLY | O_DIRECTORY);
        if (!dfd) {
            if (dfd.error().code() != ENOENT) log_warning() << "cannot read " << dir << ": " << dfd.error().what();
            continue;
        }
        auto names = list_directory(dfd->get(), kMaxDefinitionFiles);
        if (!names) continue;
        for (const auto& name : *names) {
            if (!ends_with(name, suffix) || name.size() == suffix.size() || owner.count(name)) continue;
            const std::string path = dir + "/" + name;
            owner[name] = masked(root_fd, dfd->get(), name, path) ? "" : path;
        }
    }
    std::vector<ConfFile> out;
    for (const auto& [name, path] : owner)
        if (!path.empty()) out.push_back({name, path});
    return out;
}

Result<std::vector<IniEntry>> read_ini(int root_fd, const std::string& path) {
    auto fd = open_regular_in_root(root_fd, path);
    if (!fd) return fd.error();
    auto text = read_regular_file(fd->get(), kMaxDefinitionSize);
    if (!text) return text.error().prefix(path + ": ");
    return parse_ini(*text, path);
}

// A definition and its drop-ins (SUBDIR/NAME.d/*.conf), in order.
Result<std::vector<IniEntry>> read_definition(int root_fd, const std::string& subdir, const ConfFile& f) {
    auto entries = read_ini(root_fd, f.path);
    if (!entries) return entries.error();
    for (const auto& d : conf_files(root_fd, subdir + "/" + f.name + ".d", ".conf")) {
        auto more = read_ini(root_fd, d.path);
        if (!more) return more.error();
        entries->insert(entries->end(), more->begin(), more->end());
    }
    return entries;
}

std::map<std::string, Feature> read_features(int root_fd, const std::string& subdir, TransferSet& set) {
    std::map<std::string, Feature> out;
    for (const auto& f : conf_files(root_fd, subdir, ".feature")) {
        Feature feat;
        feat.id = f.name.substr(0, f.name.size() - std::string(".feature").size());
        auto entries = read_definition(root_fd, subdir, f);
        std::string error = entries ? "" : entries.error().what();
        for (const auto& e : entries ? *entries : std::vector<IniEntry>{}) {
            if (e.section != "Feature" ||
                (e.key != "Enabled" && e.key != "Description" && e.key != "Documentation" && e.key != "AppStream")) {
                error = e.where() + ": [" + e.section + "] " + e.key + "= is not a feature setting";
                break;
            }
            if (e.key != "Enabled") continue;
            auto b = parse_boolean(e.value);
            if (!b) {
                error = e.where() + ": Enabled= expects a boolean, not '" + e.value + "'";
                break;
            }
            feat.enabled = *b;
        }
        if (!error.empty()) {
            // Taken as disabled, as a missing feature is.
            set.notes.push_back({f.path, error + "; the feature counts as disabled", true});
            feat.enabled = false;
        }
        out[feat.id] = feat;
    }
    return out;
}

void read_component(int root_fd, const std::string& component, const SpecifierValues& values, TransferSet& set) {
    const std::string subdir = component.empty() ? "sysupdate.d" : "sysupdate." + component + ".d";
    auto features = read_features(root_fd, subdir, set);
    auto files = conf_files(root_fd, subdir, ".transfer");
    std::string suffix = ".transfer";
    if (files.empty()) {
        // Before v257 transfers were *.conf; sysupdate still reads them when
        // a directory set has no *.transfer.
        files = conf_files(root_fd, subdir, ".conf");
        suffix = ".conf";
    }
    for (const auto& f : files) {
        TransferNote note{f.path, "", false};
        auto entries = read_definition(root_fd, subdir, f);
        if (!entries) {
            set.notes.push_back({f.path, entries.error().what(), true});
            continue;
        }
        auto t = make_transfer(f.name.substr(0, f.name.size() - suffix.size()), f.path, *entries, values, features,
                               &note);
        if (!t) {
            set.notes.push_back({f.path, t.error().what(), true});
        } else if (!*t) {
            set.notes.push_back(note);
        } else {
            (*t)->component = component;
            set.transfers.push_back(std::move(**t));
        }
    }
}

// COMPONENT of every sysupdate.COMPONENT.d directory in the search path.
std::set<std::string> components(int root_fd) {
    std::set<std::string> out;
    for (const char* base : kConfDirs) {
        auto dfd = open_in_root(root_fd, base, O_RDONLY | O_DIRECTORY);
        if (!dfd) continue;
        auto names = list_directory(dfd->get());
        if (!names) continue;
        for (const auto& n : *names)
            if (starts_with(n, "sysupdate.") && ends_with(n, ".d") && n.size() > 12 && n != "sysupdate.d")
                out.insert(n.substr(10, n.size() - 12));
    }
    return out;
}

std::string read_first_line(int root_fd, const std::string& path) {
    auto fd = open_regular_in_root(root_fd, path);
    if (!fd) return "";
    auto text = read_regular_file(fd->get(), 4096);
    return text ? first_line(*text) : "";
}

}  // namespace

std::string dirname_of(const std::string& p) {
    size_t slash = p.rfind('/');
    return slash == 0 || slash == std::string::npos ? "/" : p.substr(0, slash);
}
std::string basename_of(const std::string& p) { return p.substr(p.rfind('/') + 1); }

Result<std::vector<IniEntry>> parse_ini(const std::string& text, const std::string& file) {
    if (text.find('\0') != std::string::npos) return Error(EBADMSG) << file << ": binary content";
    std::vector<IniEntry> out;
    std::string section;
    unsigned line_no = 0;
    for (const auto& raw : split(text, '\n')) {
        line_no++;
        std::string line = trim(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line.back() == '\\')
            return Error(EINVAL) << file << ":" << line_no << ": continued lines are not supported";
        if (line[0] == '[') {
            if (line.back() != ']' || line.size() < 3)
                return Error(EINVAL) << file << ":" << line_no << ": malformed section header";
            section = line.substr(1, line.size() - 2);
            if (section != "Transfer" && section != "Source" && section != "Target" && section != "Feature")
                return Error(EINVAL) << file << ":" << line_no << ": unknown section [" << section << "]";
            continue;
        }
        size_t eq = line.find('=');
        if (eq == std::string::npos || eq == 0)
            return Error(EINVAL) << file << ":" << line_no << ": not a Key=Value line";
        if (section.empty()) return Error(EINVAL) << file << ":" << line_no << ": a setting before any [section]";
        out.push_back({section, trim(line.substr(0, eq)), trim(line.substr(eq + 1)), file, line_no});
    }
    return out;
}

SpecifierValues specifier_values(int root_fd) {
    SpecifierValues v;
    v.architecture = uname_architecture();
    if (auto os = read_host_os_release(root_fd)) v.os_release = std::move(*os);
    v.machine_id = read_first_line(root_fd, "/etc/machine-id");
    if (v.machine_id.size() != 32 || v.machine_id.find_first_not_of("0123456789abcdef") != std::string::npos)
        v.machine_id.clear();
    v.boot_id = current_boot_id();
    v.boot_id.erase(std::remove(v.boot_id.begin(), v.boot_id.end(), '-'), v.boot_id.end());
    struct utsname u {};
    if (::uname(&u) == 0) {
        v.hostname = u.nodename;
        v.kernel = u.release;
    }
    return v;
}

Result<std::string> expand_specifiers(const std::string& text, const SpecifierValues& v) {
    std::string out;
    auto os = [&](const char* key) { return release_value(v.os_release, key); };
    for (size_t i = 0; i < text.size(); i++) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (++i == text.size()) return Error(EINVAL) << "'" << text << "' ends in '%'";
        switch (text[i]) {
            case '%': out += '%'; break;
            case 'a': out += v.architecture; break;
            case 'A': out += os("IMAGE_VERSION"); break;
            case 'b': out += v.boot_id; break;
            case 'B': out += os("BUILD_ID"); break;
            case 'H': out += v.hostname; break;
            case 'l': out += v.hostname.substr(0, v.hostname.find('.')); break;
            case 'm':
                if (v.machine_id.empty()) return Error(EINVAL) << "'" << text << "': %m, but the root has no machine id";
                out += v.machine_id;
                break;
            case 'M': out += os("IMAGE_ID"); break;
            case 'o': out += os("ID"); break;
            case 'v': out += v.kernel; break;
            case 'w': out += os("VERSION_ID"); break;
            case 'W': out += os("VARIANT_ID"); break;
            case 'T': out += "/tmp"; break;
            case 'V': out += "/var/tmp"; break;
            default: return Error(EINVAL) << "'" << text << "': unknown specifier '%" << text[i] << "'";
        }
    }
    return out;
}

Result<std::optional<Transfer>> make_transfer(const std::string& id, const std::string& file,
                                              const std::vector<IniEntry>& entries, const SpecifierValues& values,
                                              const std::map<std::string, Feature>& features, TransferNote* note) {
    Transfer t;
    t.id = id;
    t.file = file;
    // Where the target is decides whether the file is an extension's at all:
    // read Path= and CurrentSymlink= first (the last one set wins).
    const IniEntry *path_e = nullptr, *link_e = nullptr;
    for (const auto& e : entries) {
        if (e.section == "Target" && e.key == "Path") path_e = &e;
        if (e.section == "Target" && e.key == "CurrentSymlink") link_e = &e;
        if (e.section == "Feature") return at(e) << "[Feature] belongs in a .feature file";
    }
    auto expand_path = [&](const IniEntry* e, std::string& out) -> Result<void> {
        if (!e) return {};
        auto x = expand_specifiers(e->value, values);
        if (!x) return at(*e) << x.error().what();
        out = *x;
        if (!out.empty() && !normalize_path(out))
            return at(*e) << e->key << "=" << out << " is not a normalized, absolute path";
        return {};
    };
    std::string link;
    if (auto r = expand_path(link_e, link); !r && link_e && starts_with(link_e->value, "/")) return r.error();
    if (auto r = expand_path(path_e, t.target_path); !r && path_e && starts_with(path_e->value, "/")) return r.error();
    t.current_symlink = link;
    auto placed = place(t, link_e, path_e);
    if (!placed) return placed.error();
    if (!*placed) {
        note->reason = "its target (" + (t.target_path.empty() ? std::string("none") : t.target_path) +
                       ") holds no extension images; left to systemd-sysupdate";
        return std::optional<Transfer>();
    }
    t.current_symlink.clear();
    Fields f;
    for (const auto& e : entries) RDEXT_TRY(apply(t, e, values, f));
    RDEXT_TRY(check_types(t, f));
    RDEXT_TRY(check_paths(t, f));
    RDEXT_TRY(place(t, f.symlink, f.target_path));
    RDEXT_TRY(check_target_names(t, f.target_path ? *f.target_path : entries.front()));
    t.enabled = decide_enabled(t, features);
    return std::optional<Transfer>(std::move(t));
}

TransferSet read_transfers(int root_fd, const SpecifierValues& values) {
    TransferSet set;
    read_component(root_fd, "", values, set);
    for (const auto& c : components(root_fd)) read_component(root_fd, c, values, set);
    return set;
}

}  // namespace rdext
