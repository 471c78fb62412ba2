#include "discover/discover.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "release/extension_release.h"
#include "release/version.h"

namespace rdext {
namespace {

// Why an entry cannot be opened, for a reason shown beside its path: the
// error of open_in_root() names the path again, its errno alone does not.
std::string unresolvable(const Error& e) {
    return std::string("cannot resolve it: ") + (e.code() ? std::strerror(e.code()) : e.what().c_str());
}

std::string image_name_for(const std::string& entry, ImageKind kind) {
    return kind == ImageKind::Raw ? raw_image_name(entry) : entry;
}

// The entry's link text (cut at 63 bytes, enough to recognise /dev/null);
// nullopt when the entry is not a symlink.
std::optional<std::string> link_text(int dir_fd, const std::string& entry) {
    char buf[64];
    ssize_t n = ::readlinkat(dir_fd, entry.c_str(), buf, sizeof(buf) - 1);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
}

bool is_null_device(const struct stat& st) {
    return S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
}

Result<bool> directory_is_empty(int fd) {
    auto names = list_directory(fd);
    if (!names) return names.error();
    return names->empty();
}

// Summary of why a versioned directory offers nothing (the full list goes
// into the record of the merge).
std::string no_usable_entry(const VersionedDir& v) {
    if (v.ignored.empty()) return "versioned directory without entries";
    std::string why = "no usable entry in the versioned directory (";
    for (size_t i = 0; i < v.ignored.size() && i < 3; i++)
        why += (i ? "; " : "") + v.ignored[i].path.substr(v.path.size() + 1) + ": " + v.ignored[i].reason;
    if (v.ignored.size() > 3) why += "; " + std::to_string(v.ignored.size() - 3) + " more";
    return why + ")";
}

// Reads one entry of a versioned directory; false (with the reason in
// `ignored`) when it is not one of the directory's images.
bool read_versioned_entry(int root_fd, int dir_fd, const VersionedDirName& dn, const std::string& file,
                          const std::vector<std::string>& archs, VersionedDir& v, VersionedImage* out) {
    const std::string path = v.path + "/" + file;
    auto ignore = [&](const std::string& why) {
        v.ignored.push_back({v.path + "/" + printable_name(file), why});
        return false;
    };
    auto parsed = parse_versioned_entry(file, dn, archs);
    if (!parsed) return ignore(parsed.error().what());
    auto fd = open_in_root(root_fd, path, O_PATH);
    if (!fd) return ignore(unresolvable(fd.error()));
    auto st = stat_fd(fd->get());
    if (!st) return ignore(st.error().what());
    struct stat lst;
    if (::fstatat(dir_fd, file.c_str(), &lst, AT_SYMLINK_NOFOLLOW) < 0) return ignore("vanished while being read");
    if (dn.holds_files() && S_ISREG(st->st_mode))
        out->kind = ImageKind::Raw;
    else if (dn.holds_files() && S_ISBLK(st->st_mode))
        out->kind = ImageKind::Block;
    else if (!dn.holds_files() && S_ISDIR(st->st_mode))
        out->kind = ImageKind::Directory;
    else
        return ignore(dn.holds_files() ? "not a regular file or block device, as entries of a .raw.v directory must be"
                                       : "not a directory, as entries of a .v directory without .raw must be");
    if (!parsed->note.empty()) v.notes.push_back(parsed->note);
    out->entry = std::move(*parsed);
    out->path = path;
    out->identity = entry_identity(lst);
    out->fd = std::make_shared<UniqueFd>(std::move(*fd));
    return true;
}

// A NAME.v/ or NAME.raw.v/ directory (systemd.v(7)) is one image, NAME,
// with one entry per version: all usable entries are kept, best first, and
// the merge picks the first that fits the OS. Without any usable entry the
// directory holds no name (systemd skips it the same way).
void classify_versioned(int root_fd, const std::string& entry, ImageClass cls, Candidate& c) {
    c.kind = ImageKind::Directory;
    c.fd.reset();
    auto dn = parse_versioned_dir_name(entry, cls);
    if (!dn) {
        c.name = printable_name(entry);
        c.state = EntryState::Broken;
        c.reason = dn.error().what();
        return;
    }
    c.name = dn->name;
    VersionedDir v;
    v.path = c.path;
    auto dir = open_in_root(root_fd, v.path, O_RDONLY | O_DIRECTORY);
    auto names = dir ? list_directory(dir->get(), kMaxVersionedEntries, &v.truncated)
                     : Result<std::vector<std::string>>(dir.error());
    if (!names) {
        c.state = EntryState::Broken;
        c.reason = "cannot read the versioned directory: " + names.error().what();
        return;
    }
    const auto archs = local_architectures();
    for (const auto& file : *names) {
        if (is_partial_download(file)) continue;
        VersionedImage img;
        if (read_versioned_entry(root_fd, dir->get(), *dn, file, archs, v, &img)) v.ranked.push_back(std::move(img));
    }
    std::sort(v.ranked.begin(), v.ranked.end(), [](const VersionedImage& a, const VersionedImage& b) {
        return compare_entries(a.entry, b.entry) < 0;
    });
    std::vector<VersionedEntry> entries;
    for (const auto& img : v.ranked) entries.push_back(img.entry);
    for (auto& note : duplicate_versions(entries)) v.notes.push_back(std::move(note));
    if (v.ranked.empty()) {
        c.state = EntryState::Broken;
        c.reason = no_usable_entry(v);
    } else {
        c.kind = v.ranked[0].kind;
        c.path = v.ranked[0].path;
        c.fd = v.ranked[0].fd;
    }
    c.versioned = std::move(v);
}

// A fault injected here stands for any failure to open the directory.
Result<UniqueFd> open_search_dir(int root_fd, const std::string& dir) {
    RDEXT_TRY(fault_point("open-dir"));
    return open_in_root(root_fd, dir, O_RDONLY | O_DIRECTORY);
}

// Classifies one directory entry. Returns false when the entry is not an
// image at all (ordinary files, sockets, names that are not valid).
bool classify(int root_fd, const std::shared_ptr<const DirListing>& listing, const std::string& dir,
              const std::string& entry, ImageClass cls, Candidate* out) {
    Candidate c;
    c.cls = cls;
    c.root_fd = root_fd;
    c.path = dir + "/" + entry;
    auto link = link_text(listing->fd.get(), entry);
    // Flatcar masks an extension by pointing its link at /dev/null; inside
    // an initrd the root's /dev is empty, so look at the link text.
    if (link && *link == "/dev/null") {
        c.kind = ends_with(entry, ".raw") ? ImageKind::Raw : ImageKind::Directory;
        c.state = EntryState::Masked;
        c.reason = "masked by a link to /dev/null";
    } else {
        auto fd = open_in_root(root_fd, c.path, O_PATH);
        if (!fd) {
            c.kind = ends_with(entry, ".raw") ? ImageKind::Raw : ImageKind::Directory;
            c.state = EntryState::Broken;
            c.reason = unresolvable(fd.error());
        } else {
            auto st = stat_fd(fd->get());
            if (!st) return false;
            if (S_ISDIR(st->st_mode)) {
                if (ends_with(entry, ".v")) {
                    classify_versioned(root_fd, entry, cls, c);
                    *out = std::move(c);
                    return true;
                }
                c.kind = ImageKind::Directory;
            } else if (S_ISREG(st->st_mode) && ends_with(entry, ".raw")) {
                c.kind = ImageKind::Raw;
                if (!link) c.siblings = listing;
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

std::string raw_image_name(const std::string& file) {
    if (!ends_with(file, ".raw")) return file;
    std::string n = file.substr(0, file.size() - 4);
    for (const char* infix : {".sysext", ".confext"})
        if (ends_with(n, infix) && n.size() > std::string(infix).size())
            return n.substr(0, n.size() - std::string(infix).size());
    return n;
}

bool is_partial_download(const std::string& entry) {
    return starts_with(entry, ".#") && ends_with(entry, kPartialSuffix);
}

std::string image_identity(int fd) {
    auto st = stat_fd(fd);
    if (!st) return "";
    // A block device may have more than one node: the device is the image.
    if (S_ISBLK(st->st_mode)) return "b" + std::to_string(st->st_rdev);
    return std::to_string(st->st_dev) + ":" + std::to_string(st->st_ino);
}

std::string entry_identity(const struct stat& st) {
    return std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev)) + ":" +
           std::to_string(st.st_ino);
}

Candidate versioned_entry_candidate(const Candidate& c, size_t index) {
    Candidate e = c;
    const VersionedImage& img = c.versioned->ranked.at(index);
    e.path = img.path;
    e.kind = img.kind;
    e.fd = img.fd;
    e.siblings.reset();
    return e;
}

Candidate discover_versioned(int root_fd, const std::string& path, ImageClass cls) {
    Candidate c;
    c.cls = cls;
    c.root_fd = root_fd;
    c.path = path;
    classify_versioned(root_fd, path.substr(path.rfind('/') + 1), cls, c);
    return c;
}

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
    std::map<std::string, std::string> seen;   // image identity -> path of the entry first found
    for (const auto& dir : class_info(cls).search_dirs) {
        auto dfd = open_search_dir(root_fd, dir);
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
        auto listing = std::make_shared<DirListing>();
        listing->fd = std::move(*dfd);
        listing->names.insert(names->begin(), names->end());
        for (const auto& entry : *names) {
            if (is_partial_download(entry)) continue;
            Candidate c;
            if (!classify(root_fd, listing, dir, entry, cls, &c)) continue;
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
            } else if (c.state == EntryState::Available && !c.versioned) {
                auto [first, fresh] = seen.emplace(image_identity(c.fd->get()), c.path);
                if (!fresh) {
                    c.state = EntryState::Broken;
                    c.reason = "same image as " + first->second + " (another name for it)";
                    c.fd.reset();
                }
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
