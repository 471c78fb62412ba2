// Per-image work on every CPU the process may use: staging an image is
// mostly system calls on that image alone (probing it, mounting it, path
// lookups and reads inside it), so two images go through the kernel side by
// side. A merge's critical path is its slowest CPU, not the sum of its images.
#pragma once

#include <cstddef>
#include <functional>

namespace rdext {

// Runs work(i) for every i in [0, count), each exactly once, on up to
// max_threads threads (the caller's among them), and returns when all are
// done. Items run in no particular order; what they share must be locked.
// One thread when there is one CPU or one item, or when fault injection
// is active (its passes must come in a fixed order, base/fault.h), or when
// no thread can be started.
void for_each_parallel(size_t count, const std::function<void(size_t)>& work, size_t max_threads = 4);

// How many threads for_each_parallel would use for `count` items.
size_t parallel_threads(size_t count, size_t max_threads = 4);

// Raises the soft RLIMIT_NOFILE to the hard limit: a merge holds a few
// descriptors per image until its overlays exist (the layers go to the
// kernel as fds), and an initrd service starts with a soft limit of 1024.
// rdext uses no select(), which is what the low soft limit protects.
void raise_fd_limit();

// Grows the process's file descriptor table to hold `more` descriptors
// above the lowest free one (where new ones go), before threads start. Once a second thread
// shares the table, every growth waits for an RCU grace period (the old
// table may still be read): milliseconds each on a busy machine, and 100
// images need two of them.
void reserve_fds(size_t more);

}  // namespace rdext
