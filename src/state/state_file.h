// The record of the last merge: <runtime dir>/state.json, one entry per
// extension considered (merged or not, and why). `status` reads it; the
// mounts themselves stay the truth about what is merged.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace rdext {

struct ExtensionRecord {
    std::string name;
    std::string cls;       // "sysext" / "confext"
    std::string path;      // inside the root, where it was found
    std::string kind;      // "directory" / "raw" / "block"
    std::string fstype;    // file system of a raw image or block device
    std::string identity;  // what the merged image was: device, inode, mtime
    std::string result;    // "merged", "skipped", "excluded", "masked", "shadowed"
    std::string reason;    // why, when not merged
    std::vector<std::string> hierarchies;  // where it contributes, when merged
};

struct MergeState {
    std::string root;
    std::string time;  // ISO 8601, UTC
    std::vector<ExtensionRecord> extensions;
};

std::string state_to_json(const MergeState& s, bool pretty);
Result<MergeState> state_from_json(const std::string& text);

Result<void> write_state(int runtime_fd, const MergeState& s);
// ENOENT when no merge was recorded.
Result<MergeState> read_state(int runtime_fd);
Result<void> remove_state(int runtime_fd);

}  // namespace rdext
