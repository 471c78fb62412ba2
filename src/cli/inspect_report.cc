#include "cli/inspect_report.h"

#include <json-c/json.h>

#include <memory>
#include <sstream>

#include "base/fs.h"
#include "cli/json_output.h"
#include "release/release_utf8.h"

namespace rdext {
namespace {

// JSON strings must be valid UTF-8; names and release fields from the
// image may not be.
json_object* str(const std::string& s) {
    const std::string text = json_text(s);
    return json_object_new_string_len(text.data(), static_cast<int>(text.size()));
}
json_object* str_or_null(const std::string& s) { return s.empty() ? nullptr : str(s); }

// The image's class; "sysext+confext" for an image that is both (JSON:
// null, its `classes` say which), "" when it has no release file.
std::string class_of(const InspectReport& r) {
    std::vector<std::string> names;
    for (const auto& c : r.classes) names.push_back(class_name(c.cls));
    return join(names, "+");
}

std::vector<const ImagePartition*> partitions_of(const ImageLayout& l) {
    std::vector<const ImagePartition*> out;
    for (const auto* p : {&l.root, &l.usr, &l.root_verity, &l.usr_verity, &l.root_verity_sig, &l.usr_verity_sig})
        if (*p) out.push_back(&**p);
    return out;
}

std::string release_line(const ReleaseFields& f) {
    std::vector<std::string> kv;
    for (const auto& [k, v] : f) kv.push_back(k + "=" + v);
    return join(kv, " ");
}

// ---- JSON -----------------------------------------------------------------

// Stable tokens for scripts (image_state_name() is prose for messages).
const char* state_token(ImageState s) {
    switch (s) {
        case ImageState::Absent: return "absent";
        case ImageState::Unprotected: return "unprotected";
        case ImageState::Verity: return "verity";
        case ImageState::Signed: return "signed";
        case ImageState::SignatureFailed: return "signature-failed";
        case ImageState::Encrypted: return "encrypted";
    }
    return "?";
}

json_object* partition_json(const ImagePartition& p) {
    json_object* o = json_object_new_object();
    json_object_object_add(o, "designator", str(partition_role_name(p.role)));
    json_object_object_add(o, "fstype", str_or_null(p.fstype));
    json_object_object_add(o, "offset", json_object_new_uint64(p.offset));
    json_object_object_add(o, "size", json_object_new_uint64(p.size));
    json_object_object_add(o, "uuid", str_or_null(p.uuid));
    json_object_object_add(o, "label", str_or_null(p.label));
    return o;
}

json_object* protection_json(const Protection& p) {
    json_object* o = json_object_new_object();
    json_object_object_add(o, "designator", str(designator_name(p.designator)));
    json_object_object_add(o, "fstype", str_or_null(p.fstype));
    json_object_object_add(o, "state", str(state_token(p.state())));
    json_object_object_add(o, "hash_tree", str_or_null(p.hash_tree_source));
    json_object_object_add(o, "root_hash", p.root_hash ? str(p.root_hash->hex) : nullptr);
    json_object_object_add(o, "root_hash_source", str_or_null(p.root_hash_source));
    json_object_object_add(o, "hash_tree_check", str(hash_tree_check_name(p.hash_tree)));
    json_object_object_add(o, "hash_tree_detail", str_or_null(p.hash_tree_detail));
    json_object* sig = json_object_new_object();
    json_object_object_add(sig, "state", str(signature_check_name(p.signature)));
    json_object_object_add(sig, "source", str_or_null(p.signature_source));
    json_object_object_add(sig, "error", str_or_null(p.signature_error));
    if (p.signer) {
        json_object* s = json_object_new_object();
        json_object_object_add(s, "subject", str(p.signer->subject));
        json_object_object_add(s, "fingerprint", str(p.signer->fingerprint));
        json_object_object_add(s, "certificate", str(p.signer->source));
        json_object_object_add(sig, "signer", s);
    } else {
        json_object_object_add(sig, "signer", nullptr);
    }
    json_object_object_add(o, "signature", sig);
    return o;
}

json_object* class_json(const ClassFindings& c) {
    json_object* o = json_object_new_object();
    json_object_object_add(o, "class", str(class_name(c.cls)));
    json_object* rel = json_object_new_object();
    for (const auto& [k, v] : c.release) json_object_object_add(rel, k.c_str(), str(v));
    json_object_object_add(o, "release", rel);
    json_object_object_add(o, "compatible", json_object_new_boolean(c.compat_error.empty()));
    json_object_object_add(o, "compatibility_reason", str_or_null(c.compat_error));
    json_object* pol = json_object_new_object();
    json_object_object_add(pol, "policy", str(c.policy));
    json_object_object_add(pol, "source", str(c.policy_source));
    json_object_object_add(pol, "accepted", json_object_new_boolean(c.policy_error.empty()));
    json_object_object_add(pol, "reason", str_or_null(c.policy_error));
    json_object_object_add(o, "policy", pol);
    json_object_object_add(o, "accepted", json_object_new_boolean(c.accepted()));
    return o;
}

// A versioned directory's entries, as the merge's record has them.
json_object* candidates_json(const std::vector<VersionCandidate>& candidates) {
    json_object* a = json_object_new_array();
    for (const auto& c : candidates) {
        json_object* x = json_object_new_object();
        json_object_object_add(x, "path", str(c.path));
        json_object_object_add(x, "version", str(c.version));
        if (!c.architecture.empty()) json_object_object_add(x, "architecture", str(c.architecture));
        json_object_object_add(x, "verdict", str(c.verdict));
        json_object_object_add(x, "reason", str(c.reason));
        json_object_array_add(a, x);
    }
    return a;
}

std::string render_json(const InspectReport& r, JsonMode mode) {
    std::unique_ptr<json_object, decltype(&json_object_put)> root(json_object_new_object(), json_object_put);
    json_object* o = root.get();
    json_object_object_add(o, "path", str(r.path));
    json_object_object_add(o, "name", str(r.name));
    json_object_object_add(o, "class", r.classes.size() == 1 ? str(class_of(r)) : nullptr);
    json_object_object_add(o, "kind", str(r.kind));
    json_object_object_add(o, "versioned_dir", str_or_null(r.versioned_dir));
    json_object_object_add(o, "version", str_or_null(r.version));
    if (!r.versioned_dir.empty()) json_object_object_add(o, "candidates", candidates_json(r.candidates));
    if (!r.notes.empty()) {
        json_object* notes = json_object_new_array();
        for (const auto& n : r.notes) json_object_array_add(notes, str(n));
        json_object_object_add(o, "notes", notes);
    }
    json_object_object_add(o, "layout", str_or_null(r.layout));
    json_object_object_add(o, "fstype", str_or_null(r.fstype));
    json_object* parts = json_object_new_array();
    if (r.partitions)
        for (const auto* p : partitions_of(*r.partitions)) json_object_array_add(parts, partition_json(*p));
    json_object_object_add(o, "partitions", parts);
    json_object* prot = json_object_new_array();
    for (const auto& p : r.protection) json_object_array_add(prot, protection_json(p));
    json_object_object_add(o, "protection", prot);
    json_object* offered = json_object_new_array();
    for (const auto& p : r.offered) {
        json_object* x = json_object_new_object();
        json_object_object_add(x, "designator", str(designator_name(p.designator)));
        json_object_object_add(x, "state", str(state_token(p.state)));
        json_object_array_add(offered, x);
    }
    json_object_object_add(o, "offered", offered);
    json_object_object_add(o, "trust_anchors", str(r.trust_source));
    json_object_object_add(o, "os_release", str(r.os_release_source));
    json_object* classes = json_object_new_array();
    for (const auto& c : r.classes) json_object_array_add(classes, class_json(c));
    json_object_object_add(o, "classes", classes);
    json_object_object_add(o, "image_error", str_or_null(r.image_error));
    json_object_object_add(o, "verdict", str(r.accepted() ? "accept" : "refuse"));
    json_object_object_add(o, "reason", str(r.reason()));
    return json_document(o, mode);
}

// ---- text -----------------------------------------------------------------

void line(std::ostringstream& out, const std::string& key, const std::string& value) {
    out << key << ":" << std::string(key.size() < 16 ? 16 - key.size() : 1, ' ') << value << "\n";
}

std::string signature_text(const Protection& p) {
    switch (p.signature) {
        case SignatureCheck::None: return "none";
        case SignatureCheck::Valid:
            return "valid (" + p.signature_source + "), signed by " + p.signer->subject + " (SHA-256 " +
                   p.signer->fingerprint + ", " + p.signer->source + ")";
        case SignatureCheck::Invalid: return "INVALID (" + p.signature_source + "): " + p.signature_error;
    }
    return "?";
}

void protection_text(std::ostringstream& out, const Protection& p) {
    std::string d = designator_name(p.designator);
    if (p.hash_tree_source.empty()) {
        line(out, d + " verity", "none (unprotected)");
        return;
    }
    std::string v = "hash tree " + p.hash_tree_source;
    if (p.root_hash) v += ", root hash " + p.root_hash->hex + " (" + p.root_hash_source + ")";
    v += ", check: " + std::string(hash_tree_check_name(p.hash_tree));
    if (!p.hash_tree_detail.empty()) v += " (" + p.hash_tree_detail + ")";
    line(out, d + " verity", v);
    line(out, d + " signature", signature_text(p));
}

std::string render_text(const InspectReport& r) {
    std::ostringstream out;
    line(out, "path", r.path);
    line(out, "name", r.name);
    std::string cls = class_of(r);
    line(out, "class", cls.empty() ? "unknown (no release file found)" : cls);
    line(out, "kind", r.kind);
    if (!r.versioned_dir.empty()) line(out, "versioned dir", r.versioned_dir);
    if (!r.version.empty()) line(out, "version", r.version);
    for (const auto& c : r.candidates)
        line(out, "candidate", c.path + (c.version.empty() ? "" : " (version " + c.version + ")") + ": " + c.verdict +
                                   (c.reason.empty() ? "" : ": " + c.reason));
    for (const auto& n : r.notes) line(out, "note", n);
    if (!r.layout.empty()) line(out, "layout", r.layout + (r.fstype.empty() ? "" : " (" + r.fstype + ")"));
    if (r.partitions && r.partitions->kind == ImageLayoutKind::Gpt)
        for (const auto* p : partitions_of(*r.partitions))
            line(out, "partition", std::string(partition_role_name(p->role)) + " #" + std::to_string(p->partno) +
                                       (p->fstype.empty() ? "" : " " + p->fstype) + ", offset " +
                                       std::to_string(p->offset) + ", size " + std::to_string(p->size) +
                                       ", uuid " + p->uuid);
    for (const auto& p : r.protection) protection_text(out, p);
    line(out, "trust", r.trust_source);
    line(out, "os-release", r.os_release_source);
    for (const auto& c : r.classes) {
        std::string cls = class_name(c.cls);
        line(out, cls + " release", release_line(c.release));
        line(out, cls + " compat", c.compat_error.empty() ? "compatible" : "INCOMPATIBLE: " + c.compat_error);
        line(out, cls + " policy", c.policy + " (from " + c.policy_source + "): " +
                                       (c.policy_error.empty() ? "accepted" : "REFUSED: " + c.policy_error));
    }
    if (!r.image_error.empty()) line(out, "problem", r.image_error);
    line(out, "verdict", r.accepted() ? "accept" : "refuse");
    line(out, "reason", r.reason());
    return out.str();
}

}  // namespace

std::string render_inspect(const InspectReport& report, JsonMode json) {
    return json != JsonMode::Off ? render_json(report, json) : render_text(report);
}

}  // namespace rdext
