// The staging area: a private tmpfs on a fresh directory inside rdext's
// runtime directory. Per-image mounts and the metadata layers are built
// here, out of sight of the target hierarchies; the destructor detaches the
// whole area and removes the directory, so a failed run leaves nothing.
// Finished overlays keep private clones of their layers, so the area can
// go once they are attached.
//
// Covered by tests/integration/fault_paths.sh and fault_enum.sh (nothing
// left behind).
#pragma once

#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace rdext {

class Staging {
public:
    // runtime_dir_fd: directory (e.g. /run/rdext) the area is created in.
    static Result<Staging> create(int runtime_dir_fd);

    Staging(Staging&& o) noexcept;
    Staging& operator=(Staging&&) = delete;
    Staging(const Staging&) = delete;
    ~Staging();

    const std::string& path() const { return path_; }
    int fd() const { return fd_.get(); }

    // Creates an empty directory in the area and returns its fd.
    Result<UniqueFd> make_slot(const std::string& name);

    // Path of a slot, for APIs that take strings (overlay layers).
    std::string slot_path(const std::string& name) const { return path_ + "/" + name; }

private:
    Staging(UniqueFd parent, std::string name, std::string path, UniqueFd fd)
        : parent_(std::move(parent)), name_(std::move(name)), path_(std::move(path)), fd_(std::move(fd)) {}

    UniqueFd parent_;   // runtime dir, to remove our directory from
    std::string name_;  // our directory's name in parent_
    std::string path_;  // absolute path of the mounted area
    UniqueFd fd_;       // the tmpfs root
};

}  // namespace rdext
