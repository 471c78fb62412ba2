#include "vpick/vpick.h"

#include <algorithm>
#include <climits>

#include "base/fs.h"
#include "release/extension_release.h"
#include "release/release_architecture.h"
#include "release/release_utf8.h"
#include "release/version.h"

namespace rdext {
namespace {

// systemd's architecture table (architecture_to_string()).
constexpr const char* kArchitectures[] = {
    "alpha", "arc",   "arc-be",   "arm",   "arm64",   "arm64-be", "arm-be",  "cris",     "ia64",
    "loongarch64",    "m68k",     "mips",  "mips64",  "mips64-le", "mips-le", "nios2",   "parisc",
    "parisc64",       "ppc",      "ppc64", "ppc64-le", "ppc-le",  "riscv32", "riscv64",  "s390",
    "s390x",          "sh",       "sh64",  "sparc",   "sparc64", "tilegx",  "x86",      "x86-64",
};

// ARCHITECTURE_SECONDARY of systemd's architecture.h: what a machine of the
// first kind also runs natively.
constexpr struct {
    const char* native;
    const char* secondary;
} kSecondary[] = {
    {"x86-64", "x86"}, {"arm64", "arm"}, {"ppc64", "ppc"}, {"ppc64-le", "ppc-le"}, {"s390x", "s390"},
};

constexpr unsigned kNone = UINT_MAX;  // systemd's "no counter" value in comparisons

unsigned tries_left(const VersionedEntry& e) { return e.tries ? e.tries->left : kNone; }
unsigned tries_done(const VersionedEntry& e) { return e.tries ? e.tries->done : kNone; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A decimal number that fits an unsigned int (systemd's safe_atou()).
std::optional<unsigned> parse_count(const std::string& s) {
    if (s.empty()) return std::nullopt;
    unsigned long long v = 0;
    for (char c : s) {
        if (!is_digit(c)) return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
        if (v > UINT_MAX) return std::nullopt;
    }
    return static_cast<unsigned>(v);
}

// "LEFT" or "LEFT-DONE" (the text after '+').
std::optional<TriesCounter> parse_tries(const std::string& s) {
    size_t dash = s.find('-');
    auto left = parse_count(s.substr(0, dash));
    if (!left) return std::nullopt;
    if (dash == std::string::npos) return TriesCounter{*left, 0};
    auto done = parse_count(s.substr(dash + 1));
    if (!done) return std::nullopt;
    return TriesCounter{*left, *done};
}

}  // namespace

std::string printable_name(const std::string& s) {
    const bool utf8_ok = utf8_is_valid(s);
    std::string out;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8_ok)) {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += ch;
        }
    }
    return out;
}

namespace {

Error not_considered(const std::string& why) { return Error(EINVAL) << why; }

// Which criterion puts `better` before `worse` when their versions are equal.
std::string tie_break(const VersionedEntry& better, const VersionedEntry& worse) {
    if ((tries_left(better) != 0) != (tries_left(worse) != 0)) return "the other has no tries left";
    if (better.arch_rank != worse.arch_rank) {
        std::string a = better.architecture.empty() ? "no architecture" : better.architecture;
        std::string b = worse.architecture.empty() ? "no architecture" : worse.architecture;
        return "on this machine " + a + " is preferred over " + b;
    }
    if (tries_left(better) != tries_left(worse)) return "it has more tries left";
    if (tries_done(better) != tries_done(worse)) return "it has fewer tries done";
    return "its name sorts later";
}

}  // namespace

bool VersionedDirName::holds_files() const { return ends_with(suffix, ".raw"); }

Result<VersionedDirName> parse_versioned_dir_name(const std::string& dir_entry, ImageClass cls) {
    if (!ends_with(dir_entry, ".v") || dir_entry.size() <= 2)
        return Error(EINVAL) << "'" << printable_name(dir_entry) << "' is not a versioned directory name";
    VersionedDirName d;
    std::string name = dir_entry.substr(0, dir_entry.size() - 2);
    if (ends_with(name, ".raw")) {
        d.suffix = ".raw";
        name.resize(name.size() - 4);
    }
    std::string infix = std::string(".") + class_name(cls);
    if (ends_with(name, infix)) {
        d.suffix = infix + d.suffix;
        name.resize(name.size() - infix.size());
    }
    if (!image_name_is_valid(name))
        return Error(EINVAL) << "'" << printable_name(dir_entry) << "' does not start with a valid image name";
    d.name = std::move(name);
    return d;
}

std::string VersionedEntry::name_with_tries(unsigned left, unsigned done) const {
    std::string counter = "+" + std::to_string(left) + "-" + std::to_string(done);
    if (tries_pos == std::string::npos) return file;  // not a trial entry: nothing to count
    return file.substr(0, tries_pos) + counter + file.substr(tries_pos + tries_len);
}

std::string VersionedEntry::good_name() const {
    if (tries_pos == std::string::npos) return file;
    return file.substr(0, tries_pos) + file.substr(tries_pos + tries_len);
}

bool is_known_architecture(const std::string& s) {
    for (const char* a : kArchitectures)
        if (s == a) return true;
    return false;
}

std::vector<std::string> local_architectures() {
    std::vector<std::string> archs{native_architecture()};
    for (const auto& s : kSecondary)
        if (archs[0] == s.native) archs.push_back(s.secondary);
    return archs;
}

bool version_is_valid(const std::string& v) {
    if (v.empty() || v.size() > NAME_MAX) return false;
    for (char c : v) {
        bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == ',' ||
                  c == '_' || c == '-' || c == '+';
        if (!ok) return false;
    }
    return true;
}

Result<VersionedEntry> parse_versioned_entry(const std::string& file, const VersionedDirName& dir,
                                             const std::vector<std::string>& architectures) {
    VersionedEntry e;
    e.file = file;
    const std::string prefix = dir.name + "_";
    if (!starts_with(file, prefix))
        return not_considered("the name does not start with '" + prefix + "'");
    std::string rest = file.substr(prefix.size());
    if (!dir.suffix.empty()) {
        if (!ends_with(rest, dir.suffix)) return not_considered("the name does not end in '" + dir.suffix + "'");
        rest.resize(rest.size() - dir.suffix.size());
    }

    size_t plus = rest.rfind('+');
    if (plus != std::string::npos) {
        std::string counter = rest.substr(plus + 1);
        if (auto t = parse_tries(counter)) {
            e.tries = *t;
            e.tries_pos = prefix.size() + plus;
            e.tries_len = counter.size() + 1;
            rest.resize(plus);
        } else if (!counter.empty() && is_digit(counter[0])) {
            // Meant as a boot counter, but it is not one: refuse rather than
            // read "+3-" as part of the version and rank it as a release.
            return not_considered("the boot counter '+" + printable_name(counter) +
                                  "' does not parse (expected +LEFT or +LEFT-DONE, numbers up to " +
                                  std::to_string(UINT_MAX) + ")");
        }
        // Otherwise ('+' then a letter) it belongs to the version, as in systemd.
    }

    e.arch_rank = architectures.size();
    size_t underscore = rest.rfind('_');
    if (underscore != std::string::npos) {
        std::string word = rest.substr(underscore + 1);
        if (is_known_architecture(word)) {
            size_t rank = 0;
            while (rank < architectures.size() && architectures[rank] != word) rank++;
            if (rank == architectures.size())
                return not_considered("built for " + word + ", which this machine (" + join(architectures, ", ") +
                                      ") does not run");
            e.architecture = word;
            e.arch_rank = rank;
        } else {
            e.note = "'_" + printable_name(word) + "' in " + printable_name(file) +
                     " is no architecture name; it is left out of the version, as systemd does";
        }
        rest.resize(underscore);
    }

    if (rest.empty()) return not_considered("the name carries no version");
    if (!version_is_valid(rest))
        return not_considered("the version '" + printable_name(rest) +
                              "' is not valid (letters, digits and . , _ - + only)");
    e.version = std::move(rest);
    return e;
}

int compare_entries(const VersionedEntry& a, const VersionedEntry& b) {
    bool a_usable = tries_left(a) != 0, b_usable = tries_left(b) != 0;
    if (a_usable != b_usable) return a_usable ? -1 : 1;
    if (int v = compare_versions(a.version, b.version); v != 0) return v > 0 ? -1 : 1;
    if (a.arch_rank != b.arch_rank) return a.arch_rank < b.arch_rank ? -1 : 1;
    if (tries_left(a) != tries_left(b)) return tries_left(a) > tries_left(b) ? -1 : 1;
    if (tries_done(a) != tries_done(b)) return tries_done(a) < tries_done(b) ? -1 : 1;
    if (int c = a.file.compare(b.file); c != 0) return c > 0 ? -1 : 1;
    return 0;
}

void rank_entries(std::vector<VersionedEntry>& entries) {
    std::sort(entries.begin(), entries.end(),
              [](const VersionedEntry& a, const VersionedEntry& b) { return compare_entries(a, b) < 0; });
}

std::string why_ranked_before(const VersionedEntry& better, const VersionedEntry& worse) {
    if (tries_left(better) != 0 && tries_left(worse) == 0) return "no tries left";
    if (compare_versions(better.version, worse.version) != 0) {
        const bool older = compare_versions(better.version, worse.version) > 0;
        return (older ? "older than " : "newer, but ranked after ") + printable_name(better.file);
    }
    return "same version as " + printable_name(better.file) + ", which goes first: " + tie_break(better, worse);
}

std::vector<std::string> duplicate_versions(const std::vector<VersionedEntry>& ranked) {
    std::vector<std::string> out;
    for (size_t j = 1; j < ranked.size(); j++)
        for (size_t i = 0; i < j; i++) {
            if (compare_versions(ranked[i].version, ranked[j].version) != 0) continue;
            std::string version = ranked[i].version == ranked[j].version
                                      ? ranked[i].version
                                      : ranked[i].version + " = " + ranked[j].version;
            out.push_back(printable_name(ranked[i].file) + " and " + printable_name(ranked[j].file) +
                          " claim the same version (" + version + "); " + printable_name(ranked[i].file) +
                          " goes first (" + tie_break(ranked[i], ranked[j]) + ")");
            break;
        }
    return out;
}

const char* verdict_name(EntryVerdict v) { return v == EntryVerdict::Chosen ? "chosen" : "passed over"; }

Selection select_entry(const std::vector<VersionedEntry>& ranked, const std::string& pinned_version,
                       const TryEntry& try_entry, size_t max_tries) {
    Selection s;
    s.outcomes.resize(ranked.size());
    const bool pin = !pinned_version.empty();
    std::vector<size_t> pinned, rest;
    for (size_t i = 0; i < ranked.size(); i++)
        (pin && ranked[i].version == pinned_version ? pinned : rest).push_back(i);

    bool passed_over_some = false;
    size_t tries = 0;
    auto attempt = [&](size_t i) {
        if (tries == max_tries) return true;  // stop here, nothing chosen
        tries++;
        s.outcomes[i].tried = true;
        auto r = try_entry(i);
        if (r) {
            s.chosen = i;
            return true;
        }
        s.outcomes[i].reason = r.error().what();
        passed_over_some = true;
        return false;
    };
    for (size_t i : pinned)
        if (attempt(i)) break;
    if (pin && !s.chosen) {
        s.pin_note = pinned.empty() ? "no entry has the pinned version " + pinned_version + ", picking as usual"
                                    : "no entry of the pinned version " + pinned_version +
                                          " can be used, picking as usual";
        for (size_t i : rest)
            if (attempt(i)) break;
    }
    if (!pin)
        for (size_t i : rest)
            if (attempt(i)) break;

    for (size_t i = 0; i < ranked.size(); i++) {
        EntryOutcome& o = s.outcomes[i];
        if (s.chosen && *s.chosen == i) {
            o.verdict = EntryVerdict::Chosen;
            if (pin && s.pin_note.empty())
                o.reason = "version " + pinned_version + " is pinned";
            else
                o.reason = passed_over_some ? "the best ranked entry that can be used" : "the best ranked entry";
            if (tries_left(ranked[i]) == 0) o.reason += " (it has no tries left)";
            continue;
        }
        if (o.tried) continue;  // reason set by try_entry
        if (!s.chosen) {  // untried without a choice: beyond the cap
            o.reason = "not tried: at most " + std::to_string(max_tries) + " entries are tried";
            s.not_tried++;
            continue;
        }
        const VersionedEntry& chosen = ranked[*s.chosen];
        if (pin && s.pin_note.empty() && ranked[i].version != pinned_version)
            o.reason = "version " + pinned_version + " is pinned";
        else
            o.reason = why_ranked_before(chosen, ranked[i]);
    }
    return s;
}

}  // namespace rdext
