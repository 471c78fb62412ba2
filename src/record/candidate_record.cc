#include "record/candidate_record.h"

namespace rdext {

ExtensionRecord record_for(const Candidate& c) {
    ExtensionRecord r;
    r.name = c.name;
    r.cls = c.cls;
    r.path = c.path;
    r.kind = kind_name(c.kind);
    return r;
}

bool record_unstaged(const Candidate& c, const Settings& settings, ExtensionRecord& rec) {
    if (c.state != EntryState::Available) {
        rec.result = c.state == EntryState::Masked     ? ExtensionResult::Masked
                     : c.state == EntryState::Shadowed ? ExtensionResult::Shadowed
                                                       : ExtensionResult::Skipped;
        rec.reason = c.reason;
        return true;
    }
    if (settings.excluded(c.cls).count(c.name)) {
        rec.result = ExtensionResult::Excluded;
        rec.reason = std::string("excluded by rd.") + class_name(c.cls) + ".exclude=";
        return true;
    }
    return false;
}

Result<void> check_block_device_allowed(const Candidate& c, const Settings& settings) {
    if (c.kind == ImageKind::Block && !settings.block_devices_allowed(c.cls))
        return Error(EPERM) << "block device images are not allowed: rd." << class_name(c.cls)
                            << ".block_devices=1 is not on the kernel command line";
    return {};
}

}  // namespace rdext
