#include "target/ext_conf.h"

#include <fcntl.h>

#include <map>

#include "base/fs.h"
#include "base/log.h"
#include "target/target.h"

namespace rdext {
namespace {

constexpr size_t kConfMax = 64 * 1024;
constexpr size_t kDropInsMax = 1024;
const char* const kConfDirs[] = {"/etc/systemd", "/run/systemd", "/usr/local/lib/systemd", "/usr/lib/systemd"};

std::string_view trim(std::string_view s) {
    const char* ws = " \t\r";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Reads one file into `into`; false when it is not there.
Result<bool> read_one(int root_fd, const std::string& path, std::string_view section, ExtConf& into,
                      std::vector<std::string>& warnings) {
    auto fd = open_regular_in_root(root_fd, path);
    if (!fd) {
        if (fd.error().code() == ENOENT) return false;
        return std::move(fd.error());
    }
    auto text = read_regular_file(fd->get(), kConfMax);
    if (!text) return std::move(text.error().prefix(path + ": "));
    RDEXT_TRY(parse_ext_conf(*text, section, path, into, warnings));
    return true;
}

// NAME.conf.d/*.conf of every directory: file name -> path (the earlier
// directory's for one name), in file name order.
std::map<std::string, std::string> drop_ins(int root_fd, const std::string& dropin_dir) {
    std::map<std::string, std::string> out;
    for (const char* dir : kConfDirs) {
        const std::string d = std::string(dir) + "/" + dropin_dir;
        auto fd = open_in_root(root_fd, d, O_RDONLY | O_DIRECTORY);
        if (!fd) continue;
        auto names = list_directory(fd->get(), kDropInsMax);
        if (!names) continue;
        for (const auto& n : *names)
            if (ends_with(n, ".conf") && !out.count(n)) out[n] = d + "/" + n;
    }
    return out;
}

}  // namespace

Result<void> parse_ext_conf(std::string_view content, std::string_view section, const std::string& origin,
                            ExtConf& into, std::vector<std::string>& warnings) {
    std::string current;
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < content.size()) {
        lineno++;
        size_t nl = content.find('\n', pos);
        std::string_view line = trim(content.substr(pos, nl == std::string_view::npos ? nl : nl - pos));
        pos = nl == std::string_view::npos ? content.size() : nl + 1;
        const std::string where = origin + ":" + std::to_string(lineno);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line.front() == '[') {
            if (line.back() != ']') return Error(EINVAL) << where << ": malformed section header";
            current = std::string(line.substr(1, line.size() - 2));
            if (current != section) warnings.push_back(where + ": section [" + current + "] ignored");
            continue;
        }
        size_t eq = line.find('=');
        if (eq == std::string_view::npos) return Error(EINVAL) << where << ": expected KEY=VALUE";
        if (current != section) continue;
        const std::string key(trim(line.substr(0, eq)));
        ConfValue v{std::string(trim(line.substr(eq + 1))), where};
        if (key == "Mutable")
            into.mutable_mode = std::move(v);
        else if (key == "ImagePolicy")
            into.image_policy = std::move(v);
        else
            warnings.push_back(where + ": unknown key " + key + "= ignored");
    }
    return {};
}

Result<ExtConf> read_ext_conf(int root_fd, ImageClass cls, std::vector<std::string>& warnings) {
    const bool sysext = cls == ImageClass::Sysext;
    const std::string name = sysext ? "sysext.conf" : "confext.conf";
    const std::string_view section = sysext ? "Sysext" : "Confext";
    ExtConf conf;
    for (const char* dir : kConfDirs) {
        auto found = read_one(root_fd, std::string(dir) + "/" + name, section, conf, warnings);
        if (!found) return found.error();
        if (*found) break;  // only the first main file
    }
    for (const auto& [file, path] : drop_ins(root_fd, name + ".d"))
        if (auto r = read_one(root_fd, path, section, conf, warnings); !r) return r.error();
    return conf;
}

}  // namespace rdext

namespace rdext {

Result<ConfSources> load_ext_confs(const Target& target) {
    ConfSources out;
    auto slash = open_path("/", O_PATH | O_DIRECTORY);
    if (!slash) return slash.error();
    std::vector<std::string> warnings;
    for (ImageClass c : all_classes()) {
        auto conf = read_ext_conf(slash->get(), c, warnings);
        if (!conf) return conf.error();
        out.trusted[static_cast<size_t>(c)] = std::move(*conf);
    }
    if (!target.is_running_root())
        for (ImageClass c : all_classes()) {
            auto conf = read_ext_conf(target.root_fd.get(), c, warnings);
            if (!conf) {
                out.root_unusable = "root's " + conf.error().what();
                break;
            }
            out.root[static_cast<size_t>(c)] = std::move(*conf);
        }
    for (const auto& w : warnings) log_warning() << w;
    return out;
}

PerClassMode conf_mutable_modes(const ConfSources& confs) {
    PerClassMode out;
    for (ImageClass c : all_classes()) {
        const size_t i = static_cast<size_t>(c);
        // The running system's file over the root's.
        for (const ExtConf* conf : {&confs.root[i], &confs.trusted[i]}) {
            if (!conf->mutable_mode) continue;
            auto m = parse_mutable_mode(conf->mutable_mode->value);
            if (m)
                out[i] = *m;
            else
                log_warning() << conf->mutable_mode->origin << ": Mutable= ignored: " << m.error().message();
        }
    }
    return out;
}

}  // namespace rdext
