#include "merge/handoff.h"

#include <fcntl.h>

#include "base/fs.h"
#include "base/log.h"

namespace rdext {
namespace {

constexpr const char* kDropIn =
    "# Written by rdext in the initrd: the extensions are already merged.\n"
    "# 'rdext refresh' or 'systemd-sysext refresh' merges again on demand.\n"
    "[Unit]\n"
    "ConditionPathExists=!/run/rdext/state.json\n";

}  // namespace

void hand_off(const Target&) {
    auto run = open_path("/run", O_PATH | O_DIRECTORY);
    if (!run) return;
    for (const char* unit : {"systemd-sysext.service.d", "systemd-confext.service.d"}) {
        auto dir = make_dirs(run->get(), std::string("systemd/system/") + unit, 0755);
        auto rd = dir ? open_in_root(dir->get(), ".", O_RDONLY | O_DIRECTORY) : Result<UniqueFd>(dir.error());
        auto w = rd ? write_file_atomic(rd->get(), "50-rdext.conf", kDropIn) : Result<void>(rd.error());
        if (!w) log_warning() << "cannot write the drop-in for " << unit << ": " << w.error().what();
    }
}

}  // namespace rdext
