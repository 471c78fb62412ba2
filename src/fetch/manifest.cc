#include "fetch/manifest.h"

#include <algorithm>
#include <cctype>

#include "base/fs.h"
#include "release/version.h"
#include "vpick/vpick.h"

namespace rdext {
namespace {

bool is_hex64(const std::string& s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// A sha256sum line: 64 hex digits, a space, ' ' or '*', the name.
bool split_sum_line(const std::string& line, std::string* hash, std::string* name) {
    if (line.size() < 67 || !is_hex64(line.substr(0, 64)) || line[64] != ' ' || (line[65] != ' ' && line[65] != '*'))
        return false;
    *hash = lower(line.substr(0, 64));
    *name = line.substr(66);
    return true;
}

bool valid_name(const std::string& n) { return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos; }

// The architecture a version names at its end ("1.2-arm64", "3_x86-64"),
// or the version itself when it is one; "" when none.
std::string architecture_in(const std::string& version) {
    if (is_known_architecture(version)) return version;
    for (size_t i = version.size(); i-- > 0;)
        if ((version[i] == '_' || version[i] == '-') && is_known_architecture(version.substr(i + 1)))
            return version.substr(i + 1);
    return "";
}

std::optional<std::string> version_of(const Transfer& t, const std::string& name) {
    PatternFields f;
    for (const auto& p : t.source_patterns)
        if (p.match(name, &f)) return f.version;
    return std::nullopt;
}

}  // namespace

Result<std::map<std::string, std::string>> parse_manifest(const std::string& text) {
    std::map<std::string, std::string> out;
    unsigned n = 0;
    for (std::string line : split(text, '\n')) {
        n++;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        std::string hash, name;
        if (!split_sum_line(line, &hash, &name))
            return Error(EBADMSG) << "SHA256SUMS line " << n << " is not '<sha256>  NAME'";
        if (!valid_name(name)) return Error(EBADMSG) << "SHA256SUMS line " << n << " names no plain file";
        if (!out.emplace(name, hash).second) return Error(EBADMSG) << "SHA256SUMS line " << n << " lists " << name << " again";
    }
    return out;
}

Result<std::set<std::string>> parse_retracted(const std::string& text) {
    std::set<std::string> out;
    unsigned n = 0;
    for (std::string line : split(text, '\n')) {
        n++;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        std::string hash, name = line;
        split_sum_line(line, &hash, &name);
        if (!valid_name(name)) return Error(EBADMSG) << kRetractedName << " line " << n << " names no plain file";
        out.insert(name);
    }
    return out;
}

std::set<std::string> retracted_versions(const Transfer& t, const std::set<std::string>& retracted) {
    std::set<std::string> out;
    for (const auto& name : retracted)
        if (auto v = version_of(t, name)) out.insert(*v);
    return out;
}

std::vector<Offer> rank_offers(const Transfer& t, const std::map<std::string, std::string>& manifest,
                               const std::set<std::string>& retracted) {
    const auto gone = retracted_versions(t, retracted);
    const auto archs = local_architectures();
    std::vector<Offer> out;
    for (const auto& [name, hash] : manifest) {
        auto v = version_of(t, name);
        if (!v) continue;
        Offer o{name, hash, *v, "candidate"};
        const std::string arch = architecture_in(*v);
        if (!arch.empty() && std::find(archs.begin(), archs.end(), arch) == archs.end())
            o.verdict = "foreign architecture";
        else if (retracted.count(name) || gone.count(*v))
            o.verdict = "retracted";
        else if (!t.min_version.empty() && compare_versions(*v, t.min_version) < 0)
            o.verdict = "too old";
        out.push_back(std::move(o));
    }
    std::stable_sort(out.begin(), out.end(), [](const Offer& a, const Offer& b) { return version_less(b.version, a.version); });
    return out;
}

std::vector<size_t> instances_to_remove(const std::vector<Installed>& installed, uint64_t instances_max) {
    std::vector<size_t> order(installed.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    // Oldest first.
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return version_less(installed[a].version, installed[b].version);
    });
    uint64_t left = installed.size();
    std::vector<size_t> out;
    for (size_t i : order) {
        if (left <= instances_max) break;
        const Installed& x = installed[i];
        if (x.in_use || x.protected_ || x.current) continue;
        out.push_back(i);
        left--;
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace rdext
