// The record of the last `rdext fetch`: <runtime dir>/fetch.json (beside
// state.json, which describes what is mounted and is rewritten by every
// merge; a fetch mounts nothing). `status` shows it, `fetch --json` prints
// it (doc/json/fetch.schema.json).
#pragma once

#include <string>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"

namespace rdext {

// An image the fetch removed (retracted, over InstancesMax) or refused
// after downloading it (checksum, extension-release, image policy).
struct FetchInstance {
    std::string path;  // inside the root (refused downloads: the name it would have had)
    std::string version;
    std::string reason;
};

// What one transfer did.
struct FetchTransferRecord {
    std::string transfer;  // its definition file, inside the root
    std::string name;      // the extension's name, as the merge will call it
    ImageClass cls = ImageClass::Sysext;
    std::string source;    // URL or directory
    std::string path;      // the current image afterwards ("" when none)
    std::string version;   // its version
    std::string previous_version;  // the one it replaced ("" when none or unchanged)
    // "fetched" (a new image is current), "unchanged" (the current one is
    // still the best), "failed", "disabled" (its features are off).
    std::string result;
    std::string reason;  // why, for failed and disabled; what it replaced for a downgrade
    std::vector<FetchInstance> removed;
    std::vector<FetchInstance> refused;
};

// A definition file not acted on (not an extension's target) or refused.
struct FetchDefinitionNote {
    std::string path;
    std::string reason;
    bool refused = false;
};

struct FetchRecord {
    std::string root;
    std::string time;
    std::string boot_id;
    std::string failure;  // "" when every transfer succeeded
    std::vector<FetchTransferRecord> transfers;
    std::vector<FetchDefinitionNote> definitions;
};

std::string fetch_to_json(const FetchRecord& r, bool pretty);
Result<FetchRecord> fetch_from_json(const std::string& text);

Result<void> write_fetch_record(int runtime_fd, const FetchRecord& r);
// ENOENT when nothing was fetched.
Result<FetchRecord> read_fetch_record(int runtime_fd);

}  // namespace rdext
