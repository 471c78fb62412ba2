#include "mount/beneath.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/fs.h"
#include "base/log.h"
#include "mount/mount_api.h"

#ifndef MOVE_MOUNT_BENEATH
#define MOVE_MOUNT_BENEATH 0x00000200
#endif

namespace rdext {
namespace {

struct MountLine {
    uint64_t id = 0;
    uint64_t parent = 0;
    std::string mount_point;
    std::string fstype, source;  // after the " - " separator
};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            int v = 0;
            if (std::sscanf(s.c_str() + i + 1, "%3o", &v) == 1) {
                out += static_cast<char>(v);
                i += 3;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

Result<std::vector<MountLine>> read_mountinfo() {
    std::ifstream in("/proc/self/mountinfo");
    if (!in) return ErrnoError() << "reading /proc/self/mountinfo";
    std::vector<MountLine> out;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        MountLine m;
        std::string devnum, root, mp;
        if (!(f >> m.id >> m.parent >> devnum >> root >> mp)) continue;
        m.mount_point = unescape_octal(mp);
        // Optional fields up to "-", then the file system type and source.
        for (std::string field; f >> field && field != "-";) {
        }
        f >> m.fstype >> m.source;
        m.source = unescape_octal(m.source);
        out.push_back(std::move(m));
    }
    return out;
}

Result<const MountLine*> find_line(const std::vector<MountLine>& lines, uint64_t id) {
    for (const auto& l : lines)
        if (l.id == id) return &l;
    return Error(ENOENT) << "mount " << id << " is not in this namespace's mountinfo";
}

// The mount table, and the line of the mount `fd` is on.
struct MountOf {
    std::vector<MountLine> lines;
    const MountLine* line;  // points into lines
};
Result<MountOf> mount_of(int fd) {
    auto id = mount_id_of(fd);
    if (!id) return id.error();
    auto lines = read_mountinfo();
    if (!lines) return lines.error();
    auto line = find_line(*lines, *id);
    if (!line) return line.error();
    return MountOf{std::move(*lines), *line};  // a moved vector keeps its elements where they are
}

// Test switch (test builds only): behave like a kernel without mount
// beneath (6.1), so the fallback can be tested on any kernel.
bool beneath_disabled_for_tests() {
#ifdef RDEXT_FAULT_INJECTION
    const char* s = std::getenv("RDEXT_TEST_NO_BENEATH");
    return s && *s == '1';
#else
    return false;
#endif
}

}  // namespace

Result<void> mount_beneath(int mount_fd, int top_fd) {
    if (beneath_disabled_for_tests()) return Error(EINVAL) << "move_mount beneath (disabled by RDEXT_TEST_NO_BENEATH)";
    if (::move_mount(mount_fd, "", top_fd, "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | MOVE_MOUNT_BENEATH) < 0)
        return ErrnoError() << "move_mount beneath";
    return {};
}

bool kernel_has_mount_beneath() {
    struct utsname u;
    unsigned major = 0, minor = 0;
    if (beneath_disabled_for_tests()) return false;
    if (::uname(&u) < 0 || std::sscanf(u.release, "%u.%u", &major, &minor) != 2) return false;
    return major > 6 || (major == 6 && minor >= 5);
}

Result<uint64_t> mount_id_of(int fd) {
    struct statx st = {};
    if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &st) < 0) return ErrnoError() << "statx";
    if (!(st.stx_mask & STATX_MNT_ID)) return Error(ENOTSUP) << "statx gives no mount id";
    return st.stx_mnt_id;
}

Result<uint64_t> parent_mount_id(uint64_t id) {
    auto lines = read_mountinfo();
    if (!lines) return lines.error();
    auto l = find_line(*lines, id);
    if (!l) return l.error();
    return (*l)->parent;
}

Result<std::string> mount_covering_overlay(int top_fd, const std::string& overlay_source) {
    auto top = mount_of(top_fd);
    if (!top) return top.error();
    // Mounts stacked on one place: each is the child of the one it covers.
    for (const MountLine* m = top->line;;) {
        auto below = find_line(top->lines, m->parent);
        if (!below || (*below)->id == m->id || (*below)->mount_point != top->line->mount_point) return std::string();
        if ((*below)->fstype == "overlay" && (*below)->source == overlay_source)
            return top->line->fstype + " (" + top->line->source + ")";
        m = *below;
    }
}

Result<std::vector<ChildMount>> copy_child_mounts(int top_fd, const std::string& skip_rel) {
    auto top = mount_of(top_fd);
    if (!top) return top.error();
    const uint64_t id = top->line->id;
    const std::string prefix = top->line->mount_point == "/" ? "/" : top->line->mount_point + "/";
    std::vector<ChildMount> out;
    for (const auto& l : top->lines) {
        if (l.parent != id || l.id == id || !starts_with(l.mount_point, prefix)) continue;
        std::string rel = l.mount_point.substr(prefix.size());
        if (rel.empty() || rel == skip_rel) continue;
        // Resolved below the top mount's root, crossing into the child.
        auto at = open_in_root(top_fd, rel, O_PATH | O_NOFOLLOW);
        if (!at) return at.error().prefix("submount " + l.mount_point + ": ");
        int copy = ::open_tree(at->get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (copy < 0) return ErrnoError() << "copying submount " << l.mount_point;
        out.push_back({rel, UniqueFd(copy)});
    }
    return out;
}

void attach_child_mounts(int new_root_fd, std::vector<ChildMount>& children) {
    for (auto& c : children) {
        auto at = open_in_root(new_root_fd, c.rel, O_PATH | O_NOFOLLOW);
        if (!at) {
            log_warning() << "the mount on " << c.rel << " cannot follow the refresh: " << at.error().what();
            continue;
        }
        if (auto r = attach_mount(c.copy.get(), at->get()); !r)
            log_warning() << "the mount on " << c.rel << " cannot follow the refresh: " << r.error().what();
    }
    children.clear();
}

}  // namespace rdext
