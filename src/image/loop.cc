#include "image/loop.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>

#include "base/fault.h"
#include "base/log.h"
#include "kmod/modules.h"

namespace rdext {
namespace {

// Each round trip (GET_FREE, open, CONFIGURE) is lost only when another
// process configures the same device in between; a few dozen rounds cover
// any realistic contention while still ending on a broken /dev.
constexpr int kMaxAttempts = 64;

bool device_absent(int err) { return err == ENOENT || err == ENXIO || err == ENODEV; }

struct loop_config make_config(int backing_fd, uint64_t offset, uint64_t size_limit, bool dio) {
    struct loop_config cfg = {};
    cfg.fd = static_cast<__u32>(backing_fd);
    cfg.block_size = 0;  // keep the default (512), matching what the image was built for
    cfg.info.lo_offset = offset;
    cfg.info.lo_sizelimit = size_limit;
    // No LO_FLAGS_PARTSCAN: partitions are found by probing and mapped with
    // their own offset/size, so no partition devices appear for udev.
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | (dio ? LO_FLAGS_DIRECT_IO : 0);
    return cfg;
}

using LoopKey = LoopReuse::Key;

// What the open loop device reads, if it is attached read-only with
// autoclear (as rdext attaches). The kernel reports the backing file's
// device with huge_encode_dev(), the encoding of stat()'s dev_t.
std::optional<LoopKey> attached_key(int dev_fd) {
    struct loop_info64 info = {};
    if (::ioctl(dev_fd, LOOP_GET_STATUS64, &info) < 0) return std::nullopt;  // ENXIO: not attached
    const auto want = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    if ((info.lo_flags & want) != want) return std::nullopt;
    return LoopKey(static_cast<dev_t>(info.lo_device), info.lo_inode, info.lo_offset, info.lo_sizelimit);
}

UniqueFd open_loop(int nr) {
    return UniqueFd(::open(("/dev/loop" + std::to_string(nr)).c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
}

std::map<LoopKey, int> scan_attached() {
    std::map<LoopKey, int> out;
    DIR* d = ::opendir("/sys/block");
    if (!d) return out;
    while (struct dirent* e = ::readdir(d)) {
        int nr = 0;
        if (std::sscanf(e->d_name, "loop%d", &nr) != 1) continue;
        UniqueFd dev = open_loop(nr);
        if (!dev) continue;
        if (auto key = attached_key(dev.get())) out.emplace(*key, nr);
    }
    ::closedir(d);
    log_debug() << out.size() << " read-only loop devices attached, reusable by this refresh";
    return out;
}

}  // namespace

std::optional<LoopDevice> LoopReuse::take(int backing_fd, uint64_t offset, uint64_t size_limit) {
    std::lock_guard<std::mutex> hold(lock_);
    struct stat st;
    if (::fstat(backing_fd, &st) < 0) return std::nullopt;
    if (!by_key_) by_key_ = scan_attached();
    const LoopKey key(st.st_dev, st.st_ino, offset, size_limit);
    auto it = by_key_->find(key);
    if (it == by_key_->end()) return std::nullopt;
    // Held open now: autoclear cannot take the device away, so check that
    // it still reads this region before handing it out.
    UniqueFd dev = open_loop(it->second);
    struct stat ds;
    if (!dev || attached_key(dev.get()) != key || ::fstat(dev.get(), &ds) < 0) return std::nullopt;
    LoopDevice d;
    d.fd_ = std::move(dev);
    d.path_ = "/dev/loop" + std::to_string(it->second);
    d.devnum_ = ds.st_rdev;
    d.number_ = it->second;
    d.reused_ = true;
    log_debug() << "reusing " << d.path_ << " (offset " << offset << ", size limit " << size_limit << ")";
    return d;
}

Result<LoopDevice> LoopDevice::attach(int backing_fd, uint64_t offset, uint64_t size_limit,
                                      bool try_direct_io, LoopReuse* reuse) {
    if (backing_fd < 0) return Error(EBADF) << "loop device: no backing file";
    RDEXT_TRY(fault_point("loop-attach"));
    if (reuse)
        if (auto reused = reuse->take(backing_fd, offset, size_limit)) return std::move(*reused);

    RDEXT_TRY(ensure_module("loop"));
    int ctl_raw = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl_raw < 0)
        return ErrnoError() << "cannot open /dev/loop-control (is the loop driver available?)";
    UniqueFd control(ctl_raw);

    bool dio = try_direct_io;
    int last_err = 0;
    std::string last_path;
    for (int attempt = 0; attempt < kMaxAttempts; attempt++) {
        int nr = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
        if (nr < 0) return ErrnoError() << "no free loop device (LOOP_CTL_GET_FREE)";

        std::string path = "/dev/loop" + std::to_string(nr);
        int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (raw < 0) {
            // The node can vanish (or not exist yet) between GET_FREE and
            // open; ask for another one.
            if (!device_absent(errno)) return ErrnoError() << "cannot open " << path;
            last_err = errno;
            last_path = path;
            continue;
        }
        UniqueFd dev(raw);

        for (;;) {
            struct loop_config cfg = make_config(backing_fd, offset, size_limit, dio);
            if (::ioctl(dev.get(), LOOP_CONFIGURE, &cfg) == 0) {
                struct stat st;
                if (::fstat(dev.get(), &st) < 0) {
                    Error e = ErrnoError() << "fstat " << path;
                    ::ioctl(dev.get(), LOOP_CLR_FD);
                    return e;
                }
                LoopDevice d;
                d.fd_ = std::move(dev);
                d.path_ = std::move(path);
                d.devnum_ = st.st_rdev;
                d.number_ = nr;
                d.direct_io_ = dio;
                log_debug() << "attached " << d.path_ << " (offset " << offset << ", size limit "
                            << size_limit << (dio ? ", direct I/O" : "") << ")";
                return d;
            }
            // Some kernels refuse direct I/O outright (backing file system
            // without O_DIRECT support, misaligned offset): buffered I/O
            // works everywhere.
            if (errno == EINVAL && dio) {
                log_debug() << path << ": LOOP_CONFIGURE refused direct I/O, retrying without";
                dio = false;
                continue;
            }
            break;
        }
        // EBUSY: another process configured this device after our GET_FREE.
        if (errno == EBUSY || device_absent(errno)) {
            last_err = errno;
            last_path = path;
            continue;
        }
        if (errno == ENOTTY)
            return Error(ENOTTY) << path << ": LOOP_CONFIGURE is not supported by this kernel";
        return ErrnoError() << "cannot configure " << path;
    }
    return Error::sys(last_err) << "no usable loop device after " << kMaxAttempts
                           << " attempts (last tried " << last_path << ")";
}

LoopDevice::LoopDevice(LoopDevice&& o) noexcept
    : fd_(std::move(o.fd_)),
      path_(std::move(o.path_)),
      devnum_(std::exchange(o.devnum_, 0)),
      number_(std::exchange(o.number_, -1)),
      direct_io_(std::exchange(o.direct_io_, false)),
      reused_(std::exchange(o.reused_, false)) {}

LoopDevice& LoopDevice::operator=(LoopDevice&& o) noexcept {
    if (this != &o) {
        detach();
        fd_ = std::move(o.fd_);
        path_ = std::move(o.path_);
        devnum_ = std::exchange(o.devnum_, 0);
        number_ = std::exchange(o.number_, -1);
        direct_io_ = std::exchange(o.direct_io_, false);
        reused_ = std::exchange(o.reused_, false);
    }
    return *this;
}

LoopDevice::~LoopDevice() { detach(); }

void LoopDevice::relinquish() noexcept { fd_.reset(); }

void LoopDevice::detach() noexcept {
    if (!fd_.valid()) return;
    if (reused_) {  // the earlier merge's mounts hold it: not ours to detach
        fd_.reset();
        return;
    }
    // If something else still holds the device, the kernel only (re)arms
    // autoclear here and detaches on the last close; either way nothing of
    // ours stays attached once that user is gone.
    if (::ioctl(fd_.get(), LOOP_CLR_FD) < 0 && errno != ENXIO) {
        log_debug() << path_ << ": LOOP_CLR_FD failed: " << std::strerror(errno);
    }
    fd_.reset();
}

}  // namespace rdext
