#include "cli/report.h"

#include <json-c/json.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>

#include "base/fs.h"
#include "cli/json_output.h"
#include "discover/discover.h"
#include "release/release_utf8.h"
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

}  // namespace

Result<std::string> render_status(const Target& target, JsonMode json) {
    auto hs = gather_hierarchies(target);
    std::optional<MergeState> st;
    if (auto runtime = target.runtime_dir(false); runtime)
        if (auto s = read_state(runtime->get()); s) st = std::move(*s);
    const MergeState* sp = st ? &*st : nullptr;
    if (json == JsonMode::Off) return status_text(hs, sp);
    JsonPtr o(status_json(target, hs, sp), &json_object_put);
    return json_document(o.get(), json);
}

Result<std::string> render_list(const Target& target, JsonMode json) {
    JsonPtr arr(json_object_new_array(), &json_object_put);
    std::ostringstream s;
    s << "NAME                     CLASS    KIND       STATE      PATH\n";
    for (ImageClass cls : all_classes()) {
        auto found = discover(target.root_fd.get(), cls);
        if (!found) return found.error();
        for (const auto& c : *found) {
            json_object* o = json_object_new_object();
            json_object_object_add(o, "name", str(c.name));
            json_object_object_add(o, "class", str(class_name(cls)));
            json_object_object_add(o, "kind", str(kind_name(c.kind)));
            json_object_object_add(o, "path", str(c.path));
            json_object_object_add(o, "state", str(entry_state_name(c.state)));
            if (!c.reason.empty()) json_object_object_add(o, "reason", str(c.reason));
            json_object_array_add(arr.get(), o);
            std::string name = cescape(c.name), k = kind_name(c.kind), stt = entry_state_name(c.state),
                        cl = class_name(cls);
            name.resize(std::max<size_t>(name.size() + 1, 25), ' ');
            cl.resize(9, ' ');
            k.resize(11, ' ');
            stt.resize(11, ' ');
            s << name << cl << k << stt << cescape(c.path) << "\n";
        }
    }
    if (json != JsonMode::Off) return json_document(arr.get(), json);
    return s.str();
}

}  // namespace rdext
