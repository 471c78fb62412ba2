#include "cli/report.h"

#include <json-c/json.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>

#include "base/fs.h"
#include "base/log.h"
#include "cli/json_output.h"
#include "discover/discover.h"
#include "inspect/inspect.h"
#include "record/candidate_record.h"
#include "record/versioned_record.h"
#include "release/release_utf8.h"
#include "state/fetch_record.h"
#include "state/metadata.h"
#include "state/state_file.h"

namespace rdext {
namespace {

using JsonPtr = std::unique_ptr<json_object, decltype(&json_object_put)>;

// JSON strings must be valid UTF-8; names from the root may not be.
json_object* str(const std::string& s) {
    const std::string text = json_text(s);
    return json_object_new_string_len(text.data(), static_cast<int>(text.size()));
}

struct HierarchyStatus {
    ImageClass cls;
    std::string path;
    MergedHierarchy merged;
};

std::vector<HierarchyStatus> gather_hierarchies(const Target& target) {
    std::vector<HierarchyStatus> out;
    for (ImageClass cls : all_classes())
        for (const auto& h : class_info(cls).hierarchies) {
            HierarchyStatus s{cls, h, {}};
            if (auto fd = target.open_hierarchy(h); fd)
                if (auto m = read_merged(fd->get(), cls); m) s.merged = *m;
            out.push_back(std::move(s));
        }
    return out;
}

json_object* status_json(const Target& target, const std::vector<HierarchyStatus>& hs, const MergeState* st) {
    json_object* root = json_object_new_object();
    json_object_object_add(root, "root", str(target.root_path));
    json_object* arr = json_object_new_array();
    for (const auto& h : hs) {
        json_object* o = json_object_new_object();
        json_object_object_add(o, "class", str(class_name(h.cls)));
        json_object_object_add(o, "path", str(h.path));
        json_object_object_add(o, "merged", json_object_new_boolean(h.merged.merged));
        json_object* names = json_object_new_array();
        for (const auto& n : h.merged.extensions) json_object_array_add(names, str(n));
        json_object_object_add(o, "extensions", names);
        json_object_array_add(arr, o);
    }
    json_object_object_add(root, "hierarchies", arr);
    if (st) {
        // The fields of the last operation's record, in the state file's
        // own encoding (operation, time, boot_id, failure, classes, extensions).
        JsonPtr parsed(json_tokener_parse(state_to_json(*st, false).c_str()), &json_object_put);
        json_object_object_foreach(parsed.get(), key, value) {
            if (std::string_view(key) != "root") json_object_object_add(root, key, json_object_get(value));
        }
    } else {
        json_object_object_add(root, "classes", json_object_new_array());
        json_object_object_add(root, "extensions", json_object_new_array());
    }
    return root;
}

// Why a class's hierarchies are not merged, when the last operation knew.
std::string class_off_reason(const MergeState* st, ImageClass cls) {
    if (st)
        for (const auto& c : st->classes)
            if (c.cls == cls && !c.enabled) return c.reason;
    return "";
}

// Everything printed as text (names, paths, reasons, the merge metadata
// and the state file) comes from the root: escaped (cescape), so that no
// name can forge a line or send the terminal an escape sequence.
std::string status_text(const std::vector<HierarchyStatus>& hs, const MergeState* st) {
    std::ostringstream s;
    s << "HIERARCHY  CLASS    EXTENSIONS\n";
    for (const auto& h : hs) {
        std::string line = h.path;
        line.resize(11, ' ');
        std::string cls = class_name(h.cls);
        cls.resize(9, ' ');
        std::string off = h.merged.merged ? "" : class_off_reason(st, h.cls);
        s << line << cls << (h.merged.merged ? cescape(join(h.merged.extensions, " ")) : "none")
          << (off.empty() ? "" : " (" + cescape(off) + ")") << "\n";
    }
    if (st) {
        s << "\nLast operation: " << cescape(st->operation) << " at " << cescape(st->time);
        if (!st->failure.empty()) s << ", failed: " << cescape(st->failure);
        s << "\n";
        bool header = false;
        for (const auto& r : st->extensions) {
            if (r.result == ExtensionResult::Merged) continue;
            if (!header) s << "Not merged:\n";
            header = true;
            s << "  " << cescape(r.name) << " (" << class_name(r.cls) << ", " << cescape(r.path)
              << "): " << extension_result_name(r.result);
            if (!r.reason.empty()) s << ": " << cescape(r.reason);
            s << "\n";
        }
    }
    return s.str();
}

// The last fetch, one line a transfer: what is current, what it replaced
// and what went (retracted, over InstancesMax, refused downloads).
std::string fetch_text(const FetchRecord& f) {
    std::ostringstream s;
    s << "\nLast fetch: " << cescape(f.time);
    if (!f.failure.empty()) s << ", failed: " << cescape(f.failure);
    s << "\n";
    for (const auto& t : f.transfers) {
        s << "  " << cescape(t.name) << " (" << class_name(t.cls) << "): " << t.result;
        if (!t.version.empty()) s << ", version " << cescape(t.version);
        if (!t.previous_version.empty()) s << ", replaced " << cescape(t.previous_version);
        if (!t.reason.empty()) s << " (" << cescape(t.reason) << ")";
        for (const auto& r : t.removed) s << "; removed " << cescape(r.path) << ": " << cescape(r.reason);
        for (const auto& r : t.refused) s << "; refused " << cescape(r.path) << ": " << cescape(r.reason);
        s << "\n";
    }
    for (const auto& d : f.definitions)
        if (d.refused) s << "  refused: " << cescape(d.reason) << "\n";
    return s.str();
}

// ---- list -------------------------------------------------------------------

// One line of `list`: what a merge now would record, and whether it is
// merged now.
struct ListEntry {
    ExtensionRecord rec;
    std::string version;  // of the entry picked from a versioned directory
    bool merged = false;
};

bool is_directory(const Candidate& c) {
    if (!c.fd) return false;
    auto st = stat_fd(c.fd->get());
    return st && S_ISDIR(st->st_mode);
}

// The fd of the image a record names: the candidate's, or for a versioned
// directory the entry the selection chose.
int chosen_fd(const Candidate& c, const ExtensionRecord& rec) {
    if (c.versioned)
        for (const auto& img : c.versioned->ranked)
            if (img.path == rec.path) return img.fd->get();
    return c.fd ? c.fd->get() : -1;
}

// What the merge would record for the candidate (merge.cc's admission:
// the same record, the same unstaged verdicts, the versioned selection),
// each image judged as inspect judges it, mounted where nobody sees it.
ListEntry forecast(const InspectContext& ctx, const Candidate& c, std::map<std::string, std::string>& images) {
    ListEntry e{record_for(c), "", false};
    ExtensionRecord& rec = e.rec;
    if (record_unstaged(c, *ctx.settings, rec)) {
        if (c.versioned) start_versioned_record(c, rec);
        // A name masked by a link to /dev/null is no directory (an empty
        // directory masking one is).
        if (rec.result == ExtensionResult::Masked && !is_directory(c)) rec.kind = "masked";
        return e;
    }
    InspectReport r = c.versioned ? inspect_versioned(ctx, c, rec) : inspect_candidate(ctx, c);
    e.version = r.version;
    rec.fstype = r.fstype;
    if (r.accepted()) {
        auto [first, fresh] = images.emplace(image_identity(chosen_fd(c, rec)), rec.path);
        rec.result = fresh ? ExtensionResult::Merged : ExtensionResult::Skipped;
        if (!fresh) rec.reason = "same image as " + first->second + " (another name for it)";
    } else {
        rec.result = ExtensionResult::Skipped;
        rec.reason = r.reason();
    }
    return e;
}

// What is merged now: per class, the names in the hierarchies' metadata,
// and the last merge's record (which entry of a name it merged).
struct MergedNow {
    std::set<std::pair<ImageClass, std::string>> names;
    std::optional<MergeState> state;
};

MergedNow merged_now(const Target& target) {
    MergedNow m;
    for (const auto& h : gather_hierarchies(target))
        if (h.merged.merged)
            for (const auto& n : h.merged.extensions) m.names.insert({h.cls, n});
    if (auto runtime = target.runtime_dir(false); runtime)
        if (auto s = read_state(runtime->get()); s) m.state = std::move(*s);
    return m;
}

// The entry owning a merged name is merged; the record of the last merge
// says which entry that was (a versioned directory may have a newer one).
bool is_merged(const MergedNow& m, const Candidate& c, const ExtensionRecord& rec) {
    if (c.state != EntryState::Available || !m.names.count({c.cls, c.name})) return false;
    if (!m.state) return true;
    for (const auto& r : m.state->extensions)
        if (r.cls == c.cls && r.name == c.name && r.result == ExtensionResult::Merged) return r.path == rec.path;
    return false;
}

json_object* list_json(const Target& target, const std::vector<ListEntry>& entries) {
    // The records in the state file's own encoding (as status), plus
    // `merged` and the version picked.
    MergeState st;
    for (const auto& e : entries) st.extensions.push_back(e.rec);
    auto parsed = json_tokener_parse(state_to_json(st, false).c_str());
    json_object* exts = nullptr;
    json_object_object_get_ex(parsed, "extensions", &exts);
    for (size_t i = 0; i < entries.size(); i++) {
        json_object* o = json_object_array_get_idx(exts, i);
        if (!entries[i].version.empty()) json_object_object_add(o, "version", str(entries[i].version));
        json_object_object_add(o, "merged", json_object_new_boolean(entries[i].merged));
    }
    json_object* root = json_object_new_object();
    json_object_object_add(root, "root", str(target.root_path));
    json_object_object_add(root, "extensions", json_object_get(exts));
    json_object_put(parsed);
    return root;
}

// Escaped (cescape) like status: names and reasons come from the root.
std::string list_text(const std::vector<ListEntry>& entries) {
    std::ostringstream s;
    s << "NAME                     CLASS    KIND       RESULT     MERGED  PATH\n";
    for (const auto& e : entries) {
        std::string name = cescape(e.rec.name), k = e.rec.kind, result = extension_result_name(e.rec.result),
                    cl = class_name(e.rec.cls), merged = e.merged ? "yes" : "no";
        name.resize(std::max<size_t>(name.size() + 1, 25), ' ');
        cl.resize(9, ' ');
        k.resize(11, ' ');
        result.resize(11, ' ');
        merged.resize(8, ' ');
        s << name << cl << k << result << merged << cescape(e.rec.path) << "\n";
        if (e.rec.result != ExtensionResult::Merged && !e.rec.reason.empty())
            s << "    reason: " << cescape(e.rec.reason) << "\n";
    }
    return s.str();
}

}  // namespace

Result<std::string> render_status(const Target& target, JsonMode json) {
    auto hs = gather_hierarchies(target);
    std::optional<MergeState> st;
    if (auto runtime = target.runtime_dir(false); runtime)
        if (auto s = read_state(runtime->get()); s) st = std::move(*s);
    const MergeState* sp = st ? &*st : nullptr;
    std::optional<FetchRecord> fetched;
    if (auto runtime = target.runtime_dir(false); runtime)
        if (auto f = read_fetch_record(runtime->get()); f) fetched = std::move(*f);
    if (json == JsonMode::Off) return status_text(hs, sp) + (fetched ? fetch_text(*fetched) : "");
    JsonPtr o(status_json(target, hs, sp), &json_object_put);
    if (fetched)
        json_object_object_add(o.get(), "fetch", json_tokener_parse(fetch_to_json(*fetched, false).c_str()));
    return json_document(o.get(), json);
}

Result<std::string> render_list(const Target& target, const Settings& settings, JsonMode json,
                                const std::string& unusable_policy) {
    std::vector<ListEntry> entries;
    auto ctx = inspect_context({}, target, settings);
    if (!ctx) log_warning() << "cannot judge the images as a merge would: " << ctx.error().what();
    const auto merged = merged_now(target);
    for (ImageClass cls : all_classes()) {
        auto found = discover(target.root_fd.get(), cls);
        if (!found) return found.error();
        std::map<std::string, std::string> images;  // identity -> path, as the merge tells aliases apart
        for (const auto& c : *found) {
            ListEntry e = ctx ? forecast(*ctx, c, images) : ListEntry{record_for(c), "", false};
            if (!ctx && !record_unstaged(c, settings, e.rec)) e.rec.reason = ctx.error().what();
            if (!settings.class_enabled(cls) && e.rec.result == ExtensionResult::Merged) {
                e.rec.result = ExtensionResult::Excluded;
                e.rec.reason = std::string(class_name(cls)) + " merging is disabled on the kernel command line";
            }
            if (!unusable_policy.empty() && e.rec.result == ExtensionResult::Merged) {
                e.rec.result = ExtensionResult::Skipped;
                e.rec.reason = "a merge refuses to run: " + unusable_policy;
            }
            e.merged = is_merged(merged, c, e.rec);
            entries.push_back(std::move(e));
        }
    }
    if (json == JsonMode::Off) return list_text(entries);
    JsonPtr o(list_json(target, entries), &json_object_put);
    return json_document(o.get(), json);
}

}  // namespace rdext
