#include "record/versioned_record.h"

#include "base/log.h"

namespace rdext {

void start_versioned_record(const Candidate& c, ExtensionRecord& rec) {
    const VersionedDir& v = *c.versioned;
    rec.versioned_dir = v.path;
    rec.notes = v.notes;
    for (const auto& img : v.ranked)
        rec.candidates.push_back(
            {img.path, img.entry.version, img.entry.architecture, "passed over", "not considered"});
    for (const auto& ign : v.ignored) rec.candidates.push_back({ign.path, "", "", "ignored", ign.reason});
    if (c.state == EntryState::Shadowed) return;
    if (v.truncated) {
        std::string note = v.path + " has more than " + std::to_string(kMaxVersionedEntries) +
                           " entries; only the first " + std::to_string(kMaxVersionedEntries) +
                           " read (in directory order) are considered";
        log_warning() << c.name << ": " << note;
        rec.notes.push_back(std::move(note));
    }
    for (const auto& ign : v.ignored) log_info() << c.name << ": ignoring " << ign.path << ": " << ign.reason;
    for (const auto& note : v.notes) log_notice() << c.name << ": " << note;
}

void record_selection(const Candidate& c, const Selection& sel, const std::string& pin, ExtensionRecord& rec) {
    const VersionedDir& v = *c.versioned;
    const std::string cls = class_name(c.cls);
    if (!sel.pin_note.empty()) {
        std::string note = "rd." + cls + ".pin=" + c.name + "=" + pin + ": " + sel.pin_note;
        log_warning() << note;
        rec.notes.push_back(note);
    }
    for (size_t i = 0; i < v.ranked.size() && i < rec.candidates.size(); i++) {
        const EntryOutcome& o = sel.outcomes[i];
        VersionCandidate& cand = rec.candidates[i];  // ranked entries come first, in order
        cand.verdict = verdict_name(o.verdict);
        cand.reason = o.reason;
        if (o.verdict == EntryVerdict::Chosen)
            log_info() << c.name << ": chose " << cand.path << " (" << o.reason << ")";
        else if (o.tried)
            log_notice() << c.name << ": passing over " << cand.path << ": " << o.reason;
        else
            log_debug() << c.name << ": passing over " << cand.path << ": " << o.reason;
    }
}

std::string no_entry_fits(const Candidate& c, const Selection& sel) {
    const VersionedDir& v = *c.versioned;
    std::string why = "no entry of " + v.path + " can be used";
    size_t shown = 0;
    for (size_t i = 0; i < v.ranked.size(); i++) {
        if (!sel.outcomes[i].tried) continue;
        if (shown == 3) {
            why += "; ...";
            break;
        }
        why += (shown++ ? "; " : " (") + printable_name(v.ranked[i].entry.file) + ": " + sel.outcomes[i].reason;
    }
    if (shown) why += ")";
    if (sel.not_tried) why += "; " + std::to_string(sel.not_tried) + " more not tried (at most " +
                              std::to_string(kMaxVersionedTries) + " entries are tried)";
    return why;
}

}  // namespace rdext
