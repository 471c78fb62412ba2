// Opening untrusted files next to an image: beneath a directory fd, never
// blocking on a FIFO, and only regular files.
#pragma once

#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace rdext {

// openat2(dir_fd, name, O_RDONLY|O_NONBLOCK|O_NOCTTY, RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS), then fstat: anything but a regular file is EBADFD.
// A symlink leaving dir_fd fails with EXDEV. Errors carry no file name; the
// caller names the file.
Result<UniqueFd> open_regular_beneath(int dir_fd, const std::string& name);

}  // namespace rdext
