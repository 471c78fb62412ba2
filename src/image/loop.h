// A read-only loop device over an image file (or a range of it).
//
// Lifecycle: attach() configures a free device in one LOOP_CONFIGURE call,
// read-only and with autoclear set. Until the caller accepts it, the object
// owns the device: the destructor detaches it (LOOP_CLR_FD) so a failed
// mount leaves nothing behind. Once something holds the device (a mount),
// relinquish() closes our fd without detaching; autoclear then frees the
// device when the last user (the mount) goes away. The device node is never
// removed: LOOP_CTL_REMOVE cost ~47 ms per device where measured (most of
// systemd-sysext's ~55 ms per image, which removes each loop device it used
// for the metadata pass); a free node is simply reused by the next attach.
//
// Covered by tests/integration/merge_kinds.sh (raw images) and refresh.sh
// (devices reused by a refresh).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "base/fd.h"
#include "base/result.h"

namespace rdext {

class LoopReuse;

class LoopDevice {
public:
    // Attaches `backing_fd` read-only. `offset` and `size_limit` are bytes
    // (size_limit 0: up to the end of the file). With `try_direct_io` the
    // device reads the backing file with O_DIRECT (no double page cache);
    // when the backing file cannot do that, the device is set up without it.
    // With `reuse` (a refresh), a device an earlier merge attached for the
    // same region of the same file is handed out instead (LoopReuse).
    static Result<LoopDevice> attach(int backing_fd, uint64_t offset, uint64_t size_limit,
                                     bool try_direct_io, LoopReuse* reuse = nullptr);

    LoopDevice() = default;
    LoopDevice(LoopDevice&& o) noexcept;
    LoopDevice& operator=(LoopDevice&& o) noexcept;
    LoopDevice(const LoopDevice&) = delete;
    LoopDevice& operator=(const LoopDevice&) = delete;
    ~LoopDevice();

    bool valid() const { return fd_.valid(); }
    int fd() const { return fd_.get(); }
    const std::string& path() const { return path_; }  // "/dev/loopN"
    dev_t devnum() const { return devnum_; }
    int number() const { return number_; }  // N of /dev/loopN
    // Whether the device was configured with LO_FLAGS_DIRECT_IO.
    bool direct_io() const { return direct_io_; }
    // Set up by an earlier merge and reused (see index_attached()).
    bool reused() const { return reused_; }

    // Accepts the device: closes our fd but leaves it attached. Call this
    // once a mount (or dm table) holds the device; autoclear detaches it
    // when that last user goes. Calling it before anything holds the device
    // detaches it at once (autoclear on last close).
    void relinquish() noexcept;

    // Detaches now (what the destructor does). Safe to call twice.
    void detach() noexcept;

private:
    friend class LoopReuse;

    UniqueFd fd_;
    std::string path_;
    dev_t devnum_ = 0;
    int number_ = -1;
    bool direct_io_ = false;
    bool reused_ = false;
};

// One refresh's view of the read-only, autoclear loop devices attached
// (an earlier merge's, held by its mounts): attach() hands such a device
// out again for the same region of the same file instead of setting up a
// new one, so an image that stays in the merge keeps its device (and its
// mounted file system, which the kernel shares for one device). A reused
// device is never detached by us. Owned by the run (merge/run.h); scanned
// at the first attach that could use one, so a refresh of directory or
// erofs-from-file images never pays. Images are staged on several threads
// (base/parallel.h), hence the lock.
class LoopReuse {
public:
    using Key = std::tuple<dev_t, ino_t, uint64_t, uint64_t>;  // backing file and region

    std::optional<LoopDevice> take(int backing_fd, uint64_t offset, uint64_t size_limit);

private:
    std::mutex lock_;
    std::optional<std::map<Key, int>> by_key_;  // -> N of /dev/loopN
};

}  // namespace rdext
