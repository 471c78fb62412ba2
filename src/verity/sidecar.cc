#include "verity/sidecar.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include "base/fs.h"
#include "verity/open_regular.h"

namespace rdext {
namespace {

// A sidecar file's content; nullopt when it does not exist.
Result<std::optional<std::string>> read_sidecar(int dir_fd, const std::string& name, size_t max,
                                                const std::set<std::string>* present) {
    if (present && !present->count(name)) return std::optional<std::string>();
    auto fd = open_regular_beneath(dir_fd, name);
    if (!fd) {
        if (fd.error().code() == ENOENT) return std::optional<std::string>();
        return std::move(fd.error().prefix(name + ": "));
    }
    auto data = read_regular_file(fd->get(), max);
    if (!data) return std::move(data.error().prefix(name + ": "));
    return std::optional<std::string>(std::move(*data));
}

// An xattr of the image; nullopt when it is not set (or the file system
// has no user xattrs).
Result<std::optional<std::string>> read_image_xattr(int image_fd, const char* attr) {
    char buf[kRootHashFileMaxBytes];
    ssize_t n = ::fgetxattr(image_fd, attr, buf, sizeof(buf));
    if (n < 0 && errno == EBADF) {
        // An O_PATH fd: reach the same inode through /proc.
        std::string path = proc_fd_path(image_fd);
        n = ::getxattr(path.c_str(), attr, buf, sizeof(buf));
    }
    if (n < 0) {
        if (errno == ENODATA || errno == ENOTSUP) return std::optional<std::string>();
        if (errno == ERANGE) return Error(E2BIG) << "xattr " << attr << " is larger than " << sizeof(buf) << " bytes";
        return ErrnoError() << "xattr " << attr;
    }
    return std::optional<std::string>(std::string(buf, static_cast<size_t>(n)));
}

// systemd's order: the xattr wins over the file.
Result<std::optional<SidecarHash>> find_hash(int dir_fd, int image_fd, const char* attr, const std::string& file,
                                             const std::set<std::string>* present) {
    auto x = read_image_xattr(image_fd, attr);
    if (!x) return std::move(x.error());
    std::string source = std::string("xattr ") + attr;
    std::optional<std::string> text = std::move(*x);
    if (!text) {
        auto f = read_sidecar(dir_fd, file, kRootHashFileMaxBytes, present);
        if (!f) return std::move(f.error());
        if (!*f) return std::optional<SidecarHash>();
        text = std::move(*f);
        source = file;
    }
    auto hash = parse_root_hash(*text);
    if (!hash) return Error(EBADMSG) << source << ": " << hash.error().message();
    return std::optional<SidecarHash>(SidecarHash{std::move(*hash), source});
}

Result<std::optional<SidecarSignature>> find_signature(int dir_fd, const std::string& file,
                                                      const std::set<std::string>* present) {
    auto f = read_sidecar(dir_fd, file, kSignatureFileMaxBytes, present);
    if (!f) return std::move(f.error());
    if (!*f) return std::optional<SidecarSignature>();
    if ((*f)->empty()) return Error(EBADMSG) << file << ": empty signature";
    return std::optional<SidecarSignature>(
        SidecarSignature{std::vector<uint8_t>((*f)->begin(), (*f)->end()), file});
}

}  // namespace

VerityDesignator VeritySidecars::designator() const {
    if (root_hash) return VerityDesignator::Root;
    if (usr_hash) return VerityDesignator::Usr;
    return VerityDesignator::None;
}

const SidecarHash* VeritySidecars::hash() const {
    switch (designator()) {
        case VerityDesignator::Root: return &*root_hash;
        case VerityDesignator::Usr: return &*usr_hash;
        case VerityDesignator::None: break;
    }
    return nullptr;
}

const SidecarSignature* VeritySidecars::signature() const {
    switch (designator()) {
        case VerityDesignator::Root: return root_hash_sig ? &*root_hash_sig : nullptr;
        case VerityDesignator::Usr: return usr_hash_sig ? &*usr_hash_sig : nullptr;
        case VerityDesignator::None: break;
    }
    return nullptr;
}

std::string sidecar_stem(const std::string& image_file_name) {
    if (ends_with(image_file_name, ".raw")) return image_file_name.substr(0, image_file_name.size() - 4);
    return image_file_name;
}

Result<VeritySidecars> find_verity_sidecars(int dir_fd, const std::string& image_file_name, int image_fd,
                                            const std::set<std::string>* present) {
    const std::string stem = sidecar_stem(image_file_name);
    VeritySidecars out;

    auto root = find_hash(dir_fd, image_fd, "user.verity.roothash", stem + ".roothash", present);
    if (!root) return std::move(root.error());
    out.root_hash = std::move(*root);
    auto usr = find_hash(dir_fd, image_fd, "user.verity.usrhash", stem + ".usrhash", present);
    if (!usr) return std::move(usr.error());
    out.usr_hash = std::move(*usr);

    auto root_sig = find_signature(dir_fd, stem + ".roothash.p7s", present);
    if (!root_sig) return std::move(root_sig.error());
    out.root_hash_sig = std::move(*root_sig);
    auto usr_sig = find_signature(dir_fd, stem + ".usrhash.p7s", present);
    if (!usr_sig) return std::move(usr_sig.error());
    out.usr_hash_sig = std::move(*usr_sig);

    const std::string tree = stem + ".verity";
    if (present && !present->count(tree)) return out;
    auto fd = open_regular_beneath(dir_fd, tree);
    if (fd) {
        auto st = stat_fd(fd->get());
        if (!st) return std::move(st.error().prefix(tree + ": "));
        out.hash_tree = SidecarHashTree{std::move(*fd), tree, static_cast<uint64_t>(st->st_size)};
    } else if (fd.error().code() != ENOENT) {
        return std::move(fd.error().prefix(tree + ": "));
    }
    return out;
}

Result<VeritySidecars> find_verity_sidecars_in_root(int root_fd, const std::string& path, int image_fd) {
    auto where = locate_in_root(root_fd, path, image_fd);
    if (!where) return where.error().prefix("sidecars: ");
    return find_verity_sidecars(where->dir.get(), where->name, image_fd);
}

}  // namespace rdext
