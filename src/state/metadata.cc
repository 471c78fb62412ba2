#include "state/metadata.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <json-c/json.h>
#include <optional>
#include <sys/sysmacros.h>

#include "base/fault.h"
#include "base/fs.h"

namespace rdext {
namespace {

Result<UniqueFd> open_dot_dir(int meta_fd, ImageClass cls) {
    return make_dirs(meta_fd, class_info(cls).dot_dir, 0755);
}

// The metadata layer is a slot of the private staging area until the
// overlay over it is attached: nobody can see a file half written.
Result<void> write_in(int dir_fd, const std::string& name, const std::string& content) {
    return write_file(dir_fd, name, content);
}

bool parse_devnum(const std::string& s, dev_t* out) {
    unsigned maj = 0, min = 0;
    char extra = 0;
    if (std::sscanf(s.c_str(), "%u:%u%c", &maj, &min, &extra) < 2) return false;
    if (extra != 0 && extra != '\n') return false;
    *out = makedev(maj, min);
    return true;
}

// The record in `name`; nullopt when there is no such file or it is not
// rdext's (no "inputs": systemd 260's own origin).
Result<std::optional<OriginInfo>> read_record(int hier_fd, ImageClass cls, const std::string& name) {
    auto fd = open_regular_in_root(hier_fd, std::string(class_info(cls).dot_dir) + "/" + name, true);
    if (!fd) {
        // Missing, or not a regular file: not ours.
        if (fd.error().code() == ENOENT || fd.error().code() == EBADFD) return std::optional<OriginInfo>();
        return fd.error();
    }
    auto text = read_regular_file(fd->get(), 1 << 20);
    if (!text) return text.error();
    json_object* o = json_tokener_parse(text->c_str());
    if (!o) return std::optional<OriginInfo>();
    OriginInfo info;
    json_object* v = nullptr;
    const bool ours = json_object_object_get_ex(o, "inputs", &v) && json_object_is_type(v, json_type_string);
    if (ours) info.inputs = json_object_get_string(v);
    if (json_object_object_get_ex(o, "mutable", &v) && json_object_is_type(v, json_type_string))
        info.mutable_mode = json_object_get_string(v);
    if (json_object_object_get_ex(o, "hierarchies", &v) && json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object* h = json_object_array_get_idx(v, i);
            if (json_object_is_type(h, json_type_string)) info.hierarchies.push_back(json_object_get_string(h));
        }
    json_object_put(o);
    if (!ours) return std::optional<OriginInfo>();
    return std::optional<OriginInfo>(std::move(info));
}

}  // namespace

std::string format_devnum(dev_t d) { return std::to_string(major(d)) + ":" + std::to_string(minor(d)); }

std::string rdext_record_json(ImageClass cls, const std::vector<ExtensionRecord>& merged, const OriginInfo& info) {
    json_object* o = json_object_new_object();
    json_object_object_add(o, "class", json_object_new_string(class_name(cls)));
    json_object_object_add(o, "mutable", json_object_new_string(info.mutable_mode.c_str()));
    const bool writable = !info.work_dir.empty();
    std::string opts = writable ? "rw,noatime,nodev" : "ro,nodev";
    if (cls == ImageClass::Confext) opts += ",nosuid,noexec";
    json_object_object_add(o, "mountOptions", json_object_new_string(opts.c_str()));
    json_object_object_add(o, "inputs", json_object_new_string(info.inputs.c_str()));
    json_object* hs = json_object_new_array();
    for (const auto& h : info.hierarchies) json_object_array_add(hs, json_object_new_string(h.c_str()));
    json_object_object_add(o, "hierarchies", hs);
    json_object* exts = json_object_new_array();
    for (const auto& r : merged) {
        json_object* e = json_object_new_object();
        json_object_object_add(e, "name", json_object_new_string(r.name.c_str()));
        json_object_object_add(e, "path", json_object_new_string(r.path.c_str()));
        json_object_object_add(e, "identity", json_object_new_string(r.identity.c_str()));
        json_object_array_add(exts, e);
    }
    json_object_object_add(o, "extensions", exts);
    std::string out = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    json_object_put(o);
    return out + "\n";
}

Result<OriginInfo> read_origin(int hier_fd, ImageClass cls) {
    for (const char* name : {"rdext", "origin"}) {
        auto r = read_record(hier_fd, cls, name);
        if (!r) return r.error();
        if (*r) return std::move(**r);
    }
    return OriginInfo{};  // a merge by systemd-sysext: "unknown inputs"
}

Result<void> write_meta_layer(int meta_fd, ImageClass cls, const std::vector<ExtensionRecord>& merged,
                              dev_t backing, const OriginInfo& info) {
    RDEXT_TRY(fault_point("metadata"));
    auto dot = open_dot_dir(meta_fd, cls);
    if (!dot) return dot.error();
    std::string list;
    for (const auto& r : merged) list += r.name + "\n";
    RDEXT_TRY(write_in(dot->get(), class_info(cls).list_file, list));
    RDEXT_TRY(write_in(dot->get(), "backing", format_devnum(backing) + "\n"));
    if (!info.work_dir.empty()) RDEXT_TRY(write_in(dot->get(), "work_dir", info.work_dir + "\n"));
    return write_in(dot->get(), "rdext", rdext_record_json(cls, merged, info));
}

Result<void> write_meta_origin(int meta_fd, ImageClass cls, const std::vector<ExtensionRecord>& merged,
                               const OriginInfo& info, const std::string& systemd_origin) {
    auto dot = open_dot_dir(meta_fd, cls);
    if (!dot) return dot.error();
    RDEXT_TRY(write_in(dot->get(), "rdext", rdext_record_json(cls, merged, info)));
    return write_in(dot->get(), "origin", systemd_origin);
}

Result<void> write_meta_dev(int meta_fd, ImageClass cls, dev_t overlay_dev) {
    auto dot = open_dot_dir(meta_fd, cls);
    if (!dot) return dot.error();
    return write_in(dot->get(), "dev", format_devnum(overlay_dev) + "\n");
}

Result<MergedHierarchy> read_merged(int hier_fd, ImageClass cls) {
    MergedHierarchy out;
    auto mount_root = is_mount_root(hier_fd);
    if (!mount_root) return mount_root.error();
    if (!*mount_root) return out;
    // Only an overlay is a merge (rdext's or systemd's): metadata in any
    // other mount (a bind mount of /usr carrying its own st_dev) is the
    // root's say-so, and taking it for a merge would refuse the merge and
    // make unmerge take that mount off.
    struct statfs fs;
    if (::fstatfs(hier_fd, &fs) < 0) return ErrnoError() << "statfs";
    if (fs.f_type != OVERLAYFS_SUPER_MAGIC) return out;
    std::string dot = class_info(cls).dot_dir;
    auto dev_fd = open_regular_in_root(hier_fd, dot + "/dev", true);
    if (!dev_fd) {
        // Missing, or not a regular file: no merge made this.
        if (dev_fd.error().code() == ENOENT || dev_fd.error().code() == EBADFD) return out;
        return dev_fd.error();
    }
    auto text = read_regular_file(dev_fd->get(), 64);
    dev_t recorded;
    if (!text || !parse_devnum(*text, &recorded)) return out;
    auto st = stat_fd(hier_fd);
    if (!st) return st.error();
    if (st->st_dev != recorded) return out;  // an unpacked copy of a merge, not a live one
    out.merged = true;
    auto list_fd = open_regular_in_root(hier_fd, dot + "/" + class_info(cls).list_file, true);
    if (list_fd) {
        auto list = read_regular_file(list_fd->get(), 1 << 20);
        if (list)
            for (auto& n : split(*list, '\n'))
                if (!n.empty()) out.extensions.push_back(n);
    }
    return out;
}

}  // namespace rdext
