// The record of the last merge: <runtime dir>/state.json, one entry per
// extension considered (merged or not, and why). `status` reads it; the
// mounts themselves stay the truth about what is merged.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"

namespace rdext {

// A trial entry's boot counting (boot_count.h); Unset until it is counted.
enum class TrialStatus { Unset, Counted, Pending, Exhausted, Failed, Good };
// "", "counted", "pending", "exhausted", "failed", "good": state.json's words.
const char* trial_status_name(TrialStatus s);
std::optional<TrialStatus> trial_status_from_name(std::string_view name);

// What became of an extension the merge considered.
enum class ExtensionResult { Merged, Skipped, Excluded, Masked, Shadowed };
// "merged", "skipped", "excluded", "masked", "shadowed": state.json's words.
const char* extension_result_name(ExtensionResult r);
std::optional<ExtensionResult> extension_result_from_name(std::string_view name);

// One entry of a versioned directory (NAME.raw.v/) and what became of it.
struct VersionCandidate {
    std::string path;
    std::string version;       // empty for an entry whose name does not parse
    std::string architecture;  // empty when the name carries none
    std::string verdict;       // "chosen", "passed over", "ignored"
    std::string reason;
};

// Boot counting of a chosen trial entry (NAME_VERSION+LEFT-DONE.raw).
struct TrialRecord {
    std::string dir;           // the versioned directory, inside the root
    std::string entry;         // the entry's name when it was chosen
    std::string counted_name;  // its name once this boot's try is counted ("" when none is left)
    std::string good_name;     // its name once marked good
    std::string identity;      // "MAJOR:MINOR:INODE": renames only ever touch this inode
    TrialStatus status = TrialStatus::Unset;
    std::string reason;
};

struct ExtensionRecord {
    std::string name;
    ImageClass cls = ImageClass::Sysext;
    std::string path;      // inside the root, where it was found
    std::string kind;      // "directory" / "raw" / "block"
    std::string fstype;    // file system of a raw image or block device
    std::string identity;  // what the merged image was: device, inode, mtime
    ExtensionResult result = ExtensionResult::Skipped;
    std::string reason;    // why, when not merged
    std::vector<std::string> hierarchies;  // where it contributes, when merged
    // Versioned directories only (all optional in state.json):
    std::string versioned_dir;                 // the NAME.v/ directory the image came from
    std::vector<VersionCandidate> candidates;  // its entries: chosen, passed over, ignored
    std::vector<std::string> notes;            // odd names, pins that could not be honoured
    std::optional<TrialRecord> trial;          // the chosen entry is a trial
};

// Whether a class took part in the operation, and if not, why.
struct ClassRecord {
    ImageClass cls = ImageClass::Sysext;
    bool enabled = true;
    std::string reason;  // "switched off by rd.sysext=0"; "" when enabled
};

// The record of an operation (doc/json/operation.schema.json): what
// merge, refresh, unmerge, mark-good and count-tries print with --json, and
// what state.json keeps of the last merge or refresh. state.json always
// describes what is mounted: a failed operation keeps the records of the
// merge that stays (none when nothing does) and says why in `failure`.
// A record read back with a word this version does not know (written by
// another version) counts as skipped, a trial's status as unset, a missing
// class as sysext (files older than the key); older files' "merged_at" is
// the time, their "refresh-unmerged-first" a refresh-fallback.
struct MergeState {
    // "merge", "refresh" (mount beneath), "refresh-fallback" (unmount and
    // mount), "unchanged", "unmerge", "mark-good", "count-tries".
    std::string operation;
    std::string root;
    std::string time;  // ISO 8601, UTC
    std::string boot_id;  // the kernel's boot id: boot counting counts a try once per boot
    std::string failure;  // why the operation failed; "" when it did not
    std::vector<ClassRecord> classes;
    std::vector<ExtensionRecord> extensions;
};

std::string state_to_json(const MergeState& s, bool pretty);
Result<MergeState> state_from_json(const std::string& text);

// ISO 8601, UTC, to the second.
std::string now_iso8601();
// The kernel's boot id (/proc/sys/kernel/random/boot_id), "" when unknown.
std::string current_boot_id();
// A record of `operation` on `root`, made now (time and boot id).
MergeState new_record(const std::string& operation, const std::string& root);

Result<void> write_state(int runtime_fd, const MergeState& s);
// ENOENT when no merge was recorded.
Result<MergeState> read_state(int runtime_fd);
Result<void> remove_state(int runtime_fd);

}  // namespace rdext
