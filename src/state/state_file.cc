#include "state/state_file.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "base/fault.h"
#include "base/fs.h"
#include "release/release_utf8.h"
#include "state/fetch_record.h"

namespace rdext {
namespace {

constexpr const char* kStateFile = "state.json";

// One name table per enum, in the enum's order.
constexpr const char* kTrialStatusNames[] = {"", "counted", "pending", "exhausted", "failed", "good"};
constexpr const char* kExtensionResultNames[] = {"merged", "skipped", "excluded", "masked", "shadowed"};

template <typename E, size_t N>
std::optional<E> from_name(const char* const (&names)[N], std::string_view name) {
    for (size_t i = 0; i < N; i++)
        if (name == names[i]) return static_cast<E>(i);
    return std::nullopt;
}

using JsonPtr = std::unique_ptr<json_object, decltype(&json_object_put)>;

// Names and paths come from the root: a name that is not UTF-8 would make
// the whole file invalid JSON.
json_object* new_string(const std::string& v) {
    const std::string text = json_text(v);
    return json_object_new_string_len(text.data(), static_cast<int>(text.size()));
}

void add_string(json_object* o, const char* key, const std::string& v) {
    json_object_object_add(o, key, new_string(v));
}

std::string get_string(json_object* o, const char* key) {
    json_object* v = nullptr;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) return "";
    return json_object_get_string(v);
}

json_object* string_array(const std::vector<std::string>& v) {
    json_object* a = json_object_new_array();
    for (const auto& x : v) json_object_array_add(a, new_string(x));
    return a;
}

std::vector<std::string> get_strings(json_object* o, const char* key) {
    std::vector<std::string> out;
    json_object* a = nullptr;
    if (json_object_object_get_ex(o, key, &a) && json_object_is_type(a, json_type_array))
        for (size_t i = 0; i < json_object_array_length(a); i++) {
            json_object* e = json_object_array_get_idx(a, i);
            if (json_object_is_type(e, json_type_string)) out.push_back(json_object_get_string(e));
        }
    return out;
}

// The objects of o's array `key`; anything else in it is passed over.
std::vector<json_object*> objects(json_object* o, const char* key) {
    std::vector<json_object*> out;
    json_object* a = nullptr;
    if (json_object_object_get_ex(o, key, &a) && json_object_is_type(a, json_type_array))
        for (size_t i = 0; i < json_object_array_length(a); i++) {
            json_object* e = json_object_array_get_idx(a, i);
            if (json_object_is_type(e, json_type_object)) out.push_back(e);
        }
    return out;
}

json_object* candidate_to_json(const VersionCandidate& c) {
    json_object* o = json_object_new_object();
    add_string(o, "path", c.path);
    add_string(o, "version", c.version);
    if (!c.architecture.empty()) add_string(o, "architecture", c.architecture);
    add_string(o, "verdict", c.verdict);
    add_string(o, "reason", c.reason);
    return o;
}

VersionCandidate candidate_from_json(json_object* o) {
    return {get_string(o, "path"), get_string(o, "version"), get_string(o, "architecture"),
            get_string(o, "verdict"), get_string(o, "reason")};
}

json_object* trial_to_json(const TrialRecord& t) {
    json_object* o = json_object_new_object();
    add_string(o, "dir", t.dir);
    add_string(o, "entry", t.entry);
    add_string(o, "counted_name", t.counted_name);
    add_string(o, "good_name", t.good_name);
    add_string(o, "identity", t.identity);
    add_string(o, "status", trial_status_name(t.status));
    add_string(o, "reason", t.reason);
    return o;
}

TrialRecord trial_from_json(json_object* o) {
    return {get_string(o, "dir"),
            get_string(o, "entry"),
            get_string(o, "counted_name"),
            get_string(o, "good_name"),
            get_string(o, "identity"),
            trial_status_from_name(get_string(o, "status")).value_or(TrialStatus::Unset),
            get_string(o, "reason")};
}

json_object* record_to_json(const ExtensionRecord& r) {
    json_object* o = json_object_new_object();
    add_string(o, "name", r.name);
    add_string(o, "class", class_name(r.cls));
    // A merge known only by its metadata (systemd-sysext's) names no path.
    if (!r.path.empty()) add_string(o, "path", r.path);
    if (!r.kind.empty()) add_string(o, "kind", r.kind);
    if (!r.fstype.empty()) add_string(o, "fstype", r.fstype);
    if (!r.identity.empty()) add_string(o, "identity", r.identity);
    add_string(o, "result", extension_result_name(r.result));
    add_string(o, "reason", r.reason);
    json_object* h = json_object_new_array();
    for (const auto& x : r.hierarchies) json_object_array_add(h, json_object_new_string(x.c_str()));
    json_object_object_add(o, "hierarchies", h);
    if (!r.versioned_dir.empty()) {
        add_string(o, "versioned_dir", r.versioned_dir);
        json_object* c = json_object_new_array();
        for (const auto& x : r.candidates) json_object_array_add(c, candidate_to_json(x));
        json_object_object_add(o, "candidates", c);
        if (!r.notes.empty()) json_object_object_add(o, "notes", string_array(r.notes));
    }
    if (r.trial) json_object_object_add(o, "trial", trial_to_json(*r.trial));
    return o;
}

ExtensionRecord record_from_json(json_object* o) {
    ExtensionRecord r;
    r.name = get_string(o, "name");
    r.cls = class_from_name(get_string(o, "class")).value_or(ImageClass::Sysext);
    r.path = get_string(o, "path");
    r.kind = get_string(o, "kind");
    r.fstype = get_string(o, "fstype");
    r.identity = get_string(o, "identity");
    r.result = extension_result_from_name(get_string(o, "result")).value_or(ExtensionResult::Skipped);
    r.reason = get_string(o, "reason");
    r.hierarchies = get_strings(o, "hierarchies");
    r.versioned_dir = get_string(o, "versioned_dir");
    for (json_object* c : objects(o, "candidates")) r.candidates.push_back(candidate_from_json(c));
    r.notes = get_strings(o, "notes");
    json_object* t = nullptr;
    if (json_object_object_get_ex(o, "trial", &t) && json_object_is_type(t, json_type_object))
        r.trial = trial_from_json(t);
    return r;
}

json_object* class_to_json(const ClassRecord& c) {
    json_object* o = json_object_new_object();
    add_string(o, "class", class_name(c.cls));
    json_object_object_add(o, "enabled", json_object_new_boolean(c.enabled));
    add_string(o, "reason", c.reason);
    return o;
}

ClassRecord class_from_json(json_object* o) {
    ClassRecord c;
    c.cls = class_from_name(get_string(o, "class")).value_or(ImageClass::Sysext);
    json_object* v = nullptr;
    c.enabled = !json_object_object_get_ex(o, "enabled", &v) || json_object_get_boolean(v);
    c.reason = get_string(o, "reason");
    return c;
}

}  // namespace

const char* trial_status_name(TrialStatus s) { return kTrialStatusNames[static_cast<size_t>(s)]; }

std::optional<TrialStatus> trial_status_from_name(std::string_view name) {
    return from_name<TrialStatus>(kTrialStatusNames, name);
}

const char* extension_result_name(ExtensionResult r) { return kExtensionResultNames[static_cast<size_t>(r)]; }

std::optional<ExtensionResult> extension_result_from_name(std::string_view name) {
    return from_name<ExtensionResult>(kExtensionResultNames, name);
}

std::string state_to_json(const MergeState& s, bool pretty) {
    JsonPtr root(json_object_new_object(), &json_object_put);
    add_string(root.get(), "operation", s.operation);
    add_string(root.get(), "root", s.root);
    add_string(root.get(), "time", s.time);
    add_string(root.get(), "boot_id", s.boot_id);
    if (!s.failure.empty()) add_string(root.get(), "failure", s.failure);
    json_object* classes = json_object_new_array();
    for (const auto& c : s.classes) json_object_array_add(classes, class_to_json(c));
    json_object_object_add(root.get(), "classes", classes);
    json_object* exts = json_object_new_array();
    for (const auto& r : s.extensions) json_object_array_add(exts, record_to_json(r));
    json_object_object_add(root.get(), "extensions", exts);
    int flags = (pretty ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN) | JSON_C_TO_STRING_NOSLASHESCAPE;
    return json_object_to_json_string_ext(root.get(), flags);
}

Result<MergeState> state_from_json(const std::string& text) {
    JsonPtr root(json_tokener_parse(text.c_str()), &json_object_put);
    if (!root || !json_object_is_type(root.get(), json_type_object))
        return Error(EBADMSG) << "state file is not a JSON object";
    MergeState s;
    s.root = get_string(root.get(), "root");
    s.time = get_string(root.get(), "time");
    if (s.time.empty()) s.time = get_string(root.get(), "merged_at");
    s.boot_id = get_string(root.get(), "boot_id");
    s.operation = get_string(root.get(), "operation");
    if (s.operation == "refresh-unmerged-first") s.operation = "refresh-fallback";
    s.failure = get_string(root.get(), "failure");
    for (json_object* c : objects(root.get(), "classes")) s.classes.push_back(class_from_json(c));
    for (json_object* e : objects(root.get(), "extensions")) s.extensions.push_back(record_from_json(e));
    return s;
}

std::string now_iso8601() {
    // Calendar arithmetic only: glibc's gmtime() and strftime() load the
    // time zone file first, which is wasted on a UTC time stamp.
    using namespace std::chrono;
    const auto now = floor<seconds>(system_clock::now());
    const auto day = floor<days>(now);
    const year_month_day ymd{day};
    const hh_mm_ss hms{now - day};
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02ld:%02ld:%02ldZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<long>(hms.hours().count()), static_cast<long>(hms.minutes().count()),
                  static_cast<long>(hms.seconds().count()));
    return buf;
}

std::string current_boot_id() {
    auto fd = open_path("/proc/sys/kernel/random/boot_id", O_RDONLY);
    if (!fd) return "";
    auto text = read_regular_file(fd->get(), 128);
    if (!text) return "";
    std::string id = *text;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id;
}

MergeState new_record(const std::string& operation, const std::string& root) {
    MergeState s;
    s.operation = operation;
    s.root = root;
    s.time = now_iso8601();
    s.boot_id = current_boot_id();
    return s;
}

Result<void> write_state(int runtime_fd, const MergeState& s) {
    RDEXT_TRY(fault_point("state-file"));
    return write_file_atomic(runtime_fd, kStateFile, state_to_json(s, true) + "\n");
}

Result<MergeState> read_state(int runtime_fd) {
    auto fd = open_regular_in_root(runtime_fd, kStateFile, true);
    if (!fd) return fd.error();
    auto text = read_regular_file(fd->get(), 16 << 20);
    if (!text) return text.error().prefix("state.json: ");
    return state_from_json(*text);
}

Result<void> remove_state(int runtime_fd) {
    if (::unlinkat(runtime_fd, kStateFile, 0) < 0 && errno != ENOENT) return ErrnoError() << "remove state.json";
    return {};
}

// The fetch record (state/fetch_record.h), with the helpers above.
namespace {

constexpr const char* kFetchFile = "fetch.json";

json_object* instances_to_json(const std::vector<FetchInstance>& v) {
    json_object* a = json_object_new_array();
    for (const auto& i : v) {
        json_object* o = json_object_new_object();
        add_string(o, "path", i.path);
        add_string(o, "version", i.version);
        add_string(o, "reason", i.reason);
        json_object_array_add(a, o);
    }
    return a;
}

std::vector<FetchInstance> instances_from_json(json_object* o, const char* key) {
    std::vector<FetchInstance> out;
    for (json_object* e : objects(o, key))
        out.push_back({get_string(e, "path"), get_string(e, "version"), get_string(e, "reason")});
    return out;
}

json_object* transfer_to_json(const FetchTransferRecord& t) {
    json_object* o = json_object_new_object();
    add_string(o, "transfer", t.transfer);
    add_string(o, "name", t.name);
    add_string(o, "class", class_name(t.cls));
    add_string(o, "source", t.source);
    add_string(o, "path", t.path);
    add_string(o, "version", t.version);
    add_string(o, "previous_version", t.previous_version);
    add_string(o, "result", t.result);
    add_string(o, "reason", t.reason);
    json_object_object_add(o, "removed", instances_to_json(t.removed));
    json_object_object_add(o, "refused", instances_to_json(t.refused));
    return o;
}

FetchTransferRecord transfer_from_json(json_object* o) {
    FetchTransferRecord t;
    t.transfer = get_string(o, "transfer");
    t.name = get_string(o, "name");
    t.cls = class_from_name(get_string(o, "class")).value_or(ImageClass::Sysext);
    t.source = get_string(o, "source");
    t.path = get_string(o, "path");
    t.version = get_string(o, "version");
    t.previous_version = get_string(o, "previous_version");
    t.result = get_string(o, "result");
    t.reason = get_string(o, "reason");
    t.removed = instances_from_json(o, "removed");
    t.refused = instances_from_json(o, "refused");
    return t;
}

}  // namespace

std::string fetch_to_json(const FetchRecord& r, bool pretty) {
    JsonPtr root(json_object_new_object(), &json_object_put);
    add_string(root.get(), "operation", "fetch");
    add_string(root.get(), "root", r.root);
    add_string(root.get(), "time", r.time);
    add_string(root.get(), "boot_id", r.boot_id);
    if (!r.failure.empty()) add_string(root.get(), "failure", r.failure);
    json_object* ts = json_object_new_array();
    for (const auto& t : r.transfers) json_object_array_add(ts, transfer_to_json(t));
    json_object_object_add(root.get(), "transfers", ts);
    json_object* ds = json_object_new_array();
    for (const auto& d : r.definitions) {
        json_object* o = json_object_new_object();
        add_string(o, "path", d.path);
        add_string(o, "reason", d.reason);
        json_object_object_add(o, "refused", json_object_new_boolean(d.refused));
        json_object_array_add(ds, o);
    }
    json_object_object_add(root.get(), "definitions", ds);
    int flags = (pretty ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN) | JSON_C_TO_STRING_NOSLASHESCAPE;
    return json_object_to_json_string_ext(root.get(), flags);
}

Result<FetchRecord> fetch_from_json(const std::string& text) {
    JsonPtr root(json_tokener_parse(text.c_str()), &json_object_put);
    if (!root || !json_object_is_type(root.get(), json_type_object))
        return Error(EBADMSG) << "fetch record is not a JSON object";
    FetchRecord r;
    r.root = get_string(root.get(), "root");
    r.time = get_string(root.get(), "time");
    r.boot_id = get_string(root.get(), "boot_id");
    r.failure = get_string(root.get(), "failure");
    for (json_object* t : objects(root.get(), "transfers")) r.transfers.push_back(transfer_from_json(t));
    for (json_object* d : objects(root.get(), "definitions")) {
        json_object* v = nullptr;
        bool refused = json_object_object_get_ex(d, "refused", &v) && json_object_get_boolean(v);
        r.definitions.push_back({get_string(d, "path"), get_string(d, "reason"), refused});
    }
    return r;
}

Result<void> write_fetch_record(int runtime_fd, const FetchRecord& r) {
    return write_file_atomic(runtime_fd, kFetchFile, fetch_to_json(r, true) + "\n");
}

Result<FetchRecord> read_fetch_record(int runtime_fd) {
    auto fd = open_regular_in_root(runtime_fd, kFetchFile, true);
    if (!fd) return fd.error();
    auto text = read_regular_file(fd->get(), 16 << 20);
    if (!text) return text.error().prefix("fetch.json: ");
    return fetch_from_json(*text);
}

}  // namespace rdext
