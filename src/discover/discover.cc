#include "discover/discover.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "base/fs.h"
#include "base/log.h"
#include "release/extension_release.h"
#include "release/version.h"

namespace rdext {
namespace {

// Strips ".raw" and an optional ".sysext"/".confext" infix: the image name
// systemd-sysext reports for "foo.sysext.raw" is "foo".
std::string raw_image_name(const std::string& file) {
    std::string n = file.substr(0, file.size() - 4);
    for (const char* infix : {".sysext", ".confext"})
        if (ends_with(n, infix) && n.size() > std::string(infix).size())
            return n.substr(0, n.size() - std::string(infix).size());
    return n;
}

std::string image_name_for(const std::string& entry, ImageKind kind) {
    return kind == ImageKind::Raw ? raw_image_name(entry) : entry;
}

// Flatcar masks an extension by pointing its link at /dev/null; inside an
// initrd the root's /dev is empty, so look at the link text as well.
bool is_null_link(int dir_fd, const std::string& entry) {
    char buf[64];
    ssize_t n = ::readlinkat(dir_fd, entry.c_str(), buf, sizeof(buf) - 1);
    return n > 0 && std::string(buf, static_cast<size_t>(n)) == "/dev/null";
}

bool is_null_device(const struct stat& st) {
    return S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
}

Result<bool> directory_is_empty(int fd) {
    auto names = list_directory(fd);
    if (!names) return names.error();
    return names->empty();
}

// Classifies one directory entry. Returns false when the entry is not an
// image at all (ordinary files, sockets, names that are not valid).
bool classify(int root_fd, int dir_fd, const std::string& dir, const std::string& entry,
              ImageClass cls, Candidate* out) {
    Candidate c;
    c.cls = cls;
    c.path = dir + "/" + entry;
    if (is_null_link(dir_fd, entry)) {
        c.kind = ends_with(entry, ".raw") ? ImageKind::Raw : ImageKind::Directory;
        c.state = EntryState::Masked;
        c.reason = "masked by a link to /dev/null";
    } else {
        auto fd = open_in_root(root_fd, c.path, O_PATH);
        if (!fd) {
            c.kind = ends_with(entry, ".raw") ? ImageKind::Raw : ImageKind::Directory;
            c.state = EntryState::Broken;
            c.reason = "cannot resolve " + c.path + ": " + fd.error().what();
        } else {
            auto st = stat_fd(fd->get());
            if (!st) return false;
            if (S_ISDIR(st->st_mode)) {
                if (ends_with(entry, ".v")) {
                    log_info() << c.path << ": versioned directories are not supported yet, skipped";
                    return false;
                }
                c.kind = ImageKind::Directory;
            } else if (S_ISREG(st->st_mode) && ends_with(entry, ".raw")) {
                c.kind = ImageKind::Raw;
            } else if (S_ISBLK(st->st_mode)) {
                c.kind = ImageKind::Block;
            } else if (is_null_device(*st)) {
                c.kind = ends_with(entry, ".raw") ? ImageKind::Raw : ImageKind::Directory;
                c.state = EntryState::Masked;
                c.reason = "masked by a link to /dev/null";
            } else {
                log_debug() << c.path << ": not an image (neither directory, .raw file nor block device)";
                return false;
            }
            c.fd = std::make_shared<UniqueFd>(std::move(*fd));
        }
    }
    c.name = image_name_for(entry, c.kind);
    if (!image_name_is_valid(c.name)) {
        // Reported (not silently dropped) so status can say why it is missing.
        c.state = EntryState::Broken;
        c.reason = "image name is not valid (control characters, invalid UTF-8 or a '.#' prefix)";
        c.fd.reset();
    }
    if (c.state == EntryState::Available && c.kind == ImageKind::Directory) {
        // Reopen for reading: the O_PATH fd cannot list the directory.
        auto rd = open_in_root(root_fd, c.path, O_RDONLY | O_DIRECTORY);
        auto empty = rd ? directory_is_empty(rd->get()) : Result<bool>(rd.error());
        if (empty && *empty) {
            c.state = EntryState::Masked;
            c.reason = "masked by an empty directory";
        }
    }
    *out = std::move(c);
    return true;
}

}  // namespace

const char* kind_name(ImageKind k) {
    switch (k) {
        case ImageKind::Directory: return "directory";
        case ImageKind::Raw: return "raw";
        case ImageKind::Block: return "block";
    }
    return "unknown";
}

const char* entry_state_name(EntryState s) {
    switch (s) {
        case EntryState::Available: return "available";
        case EntryState::Masked: return "masked";
        case EntryState::Shadowed: return "shadowed";
        case EntryState::Broken: return "broken";
    }
    return "unknown";
}

Result<std::vector<Candidate>> discover(int root_fd, ImageClass cls) {
    std::vector<Candidate> out;
    std::map<std::string, std::string> owner;  // name -> path of the entry that owns it
    for (const auto& dir : class_info(cls).search_dirs) {
        auto dfd = open_in_root(root_fd, dir, O_RDONLY | O_DIRECTORY);
        if (!dfd) {
            if (dfd.error().code() == ENOTDIR)
                log_warning() << dir << " is not a directory, no extensions are taken from it";
            else if (dfd.error().code() != ENOENT)
                log_warning() << "cannot read " << dir << ", its extensions are skipped: "
                              << dfd.error().what();
            continue;
        }
        auto names = list_directory(dfd->get());
        if (!names) {
            log_warning() << "cannot list " << dir << ", its extensions are skipped: " << names.error().what();
            continue;
        }
        for (const auto& entry : *names) {
            Candidate c;
            if (!classify(root_fd, dfd->get(), dir, entry, cls, &c)) continue;
            // A broken entry holds no name: nothing could be read from it.
            if (c.state == EntryState::Broken) {
                out.push_back(std::move(c));
                continue;
            }
            auto [it, inserted] = owner.emplace(c.name, c.path);
            if (!inserted) {
                c.state = EntryState::Shadowed;
                c.reason = "shadowed by " + it->second;
                c.fd.reset();
            }
            out.push_back(std::move(c));
        }
    }
    std::stable_sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) {
        return compare_versions(a.name, b.name) < 0;
    });
    return out;
}

}  // namespace rdext
