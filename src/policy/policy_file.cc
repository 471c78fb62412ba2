#include "policy/policy_file.h"

#include <fcntl.h>
#include <fnmatch.h>

#include <cerrno>

#include "base/fs.h"

namespace rdext {

namespace {

struct PatternShape {
    size_t literal_prefix = 0;
    size_t literals = 0;
    size_t wildcards = 0;
};

// Counts literal characters and wildcards; a bracket expression is one
// wildcard (a '[' without its ']' is a literal, as fnmatch treats it).
PatternShape shape_of(std::string_view p) {
    PatternShape s;
    bool in_prefix = true;
    for (size_t i = 0; i < p.size(); i++) {
        char c = p[i];
        if (c == '[') {
            size_t j = i + 1;
            if (j < p.size() && (p[j] == '!' || p[j] == '^')) j++;
            if (j < p.size() && p[j] == ']') j++;
            size_t close = p.find(']', j);
            if (close != std::string_view::npos) {
                s.wildcards++;
                in_prefix = false;
                i = close;
                continue;
            }
        } else if (c == '*' || c == '?') {
            s.wildcards++;
            in_prefix = false;
            continue;
        }
        s.literals++;
        if (in_prefix) s.literal_prefix++;
    }
    return s;
}

std::string describe_rule(const PolicyFile& f, unsigned line, const std::string& what) {
    return f.origin + ":" + std::to_string(line) + " (" + what + ")";
}

}  // namespace

bool is_glob_pattern(std::string_view pattern) { return shape_of(pattern).wildcards > 0; }

bool pattern_matches(std::string_view pattern, std::string_view name) {
    return ::fnmatch(std::string(pattern).c_str(), std::string(name).c_str(), 0) == 0;
}

bool more_specific(std::string_view a, std::string_view b) {
    PatternShape sa = shape_of(a), sb = shape_of(b);
    bool exact_a = sa.wildcards == 0, exact_b = sb.wildcards == 0;
    if (exact_a != exact_b) return exact_a;
    if (sa.literal_prefix != sb.literal_prefix) return sa.literal_prefix > sb.literal_prefix;
    if (sa.literals != sb.literals) return sa.literals > sb.literals;
    return sa.wildcards < sb.wildcards;
}

const PolicyRule* find_rule(const PolicyFile& file, std::string_view name) {
    const PolicyRule* best = nullptr;
    for (const auto& r : file.rules) {
        if (!pattern_matches(r.pattern, name)) continue;
        // Ties keep the earlier rule.
        if (!best || more_specific(r.pattern, best->pattern)) best = &r;
    }
    return best;
}

Result<PolicyFile> parse_policy_file(std::string_view content, const std::string& origin) {
    PolicyFile f;
    f.origin = origin;
    if (content.size() > kPolicyFileMax)
        return Error(E2BIG) << origin << ": larger than " << kPolicyFileMax << " bytes";
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < content.size()) {
        lineno++;
        size_t nl = content.find('\n', pos);
        std::string_view line = content.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
        pos = nl == std::string_view::npos ? content.size() : nl + 1;
        auto bad = [&] { return Error(EINVAL) << origin << ":" << lineno << ": "; };
        for (char c : line)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
                return bad() << "control character";
        if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);

        std::vector<std::string> fields;
        size_t i = 0;
        while (i < line.size()) {
            while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
            size_t start = i;
            while (i < line.size() && !(line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
            if (i > start) fields.emplace_back(line.substr(start, i - start));
        }
        if (fields.empty()) continue;
        if (fields.size() != 2)
            return bad() << "expected 'PATTERN POLICY', got " << fields.size() << " field"
                         << (fields.size() == 1 ? "" : "s") << " starting with '" << fields[0] << "'";
        const std::string& pattern = fields[0];
        auto policy = parse_image_policy(fields[1]);
        if (!policy) return bad() << policy.error().message();

        if (pattern == "default") {
            if (f.default_policy)
                return bad() << "'default' given again (first on line " << f.default_line << ")";
            f.default_policy = std::move(*policy);
            f.default_line = lineno;
            continue;
        }
        if (pattern.find_first_of("/\\") != std::string::npos)
            return bad() << "pattern '" << pattern << "' contains '/' or '\\'";
        for (const auto& r : f.rules)
            if (r.pattern == pattern)
                return bad() << "pattern '" << pattern << "' given again (first on line " << r.line << ")";
        f.rules.push_back(PolicyRule{pattern, std::move(*policy), lineno});
    }
    return f;
}

Result<std::optional<PolicyFile>> read_policy_file(int root_fd, const std::string& path,
                                                   const std::string& label) {
    const std::string lead = label.empty() ? "" : label + " ";
    // Never opened unless it is a regular file: a FIFO or a device planted
    // there would otherwise hang (or poke) the boot.
    auto fd = open_regular_in_root(root_fd, path);
    if (!fd) {
        if (fd.error().code() == ENOENT) return std::optional<PolicyFile>();
        return std::move(fd.error().prefix(lead));  // the error names the path
    }
    auto content = read_regular_file(fd->get(), kPolicyFileMax);
    if (!content) return std::move(content.error().prefix(lead + path + ": "));
    auto parsed = parse_policy_file(*content, lead + path);
    if (!parsed) return std::move(parsed.error());
    return std::optional<PolicyFile>(std::move(*parsed));
}

ResolvedPolicy resolve_policy(const PolicyConfig& config, ImageClass c, std::string_view name) {
    ResolvedPolicy out;
    const auto& cmdline = c == ImageClass::Sysext ? config.sysext_cmdline : config.confext_cmdline;
    const auto& conf = config.trusted_conf[static_cast<size_t>(c)];
    if (const PolicyRule* r = find_rule(config.trusted, name)) {
        out.policy = r->policy;
        out.source = describe_rule(config.trusted, r->line, r->pattern);
    } else if (conf && !(cmdline && config.from_option)) {
        out.policy = conf->policy;
        out.source = conf->origin + " (ImagePolicy=)";
    } else if (cmdline) {
        out.policy = *cmdline;
        out.source = config.from_option ? "--image-policy=" : std::string("rd.") + class_name(c) + ".image_policy=";
    } else if (config.trusted.default_policy) {
        out.policy = *config.trusted.default_policy;
        out.source = describe_rule(config.trusted, config.trusted.default_line, "default");
    } else {
        out.policy = default_image_policy(c);
        out.source = std::string("built-in ") + class_name(c) + " default";
    }
    if (config.sysroot_unusable) {
        out.policy = ImagePolicy::deny_all();
        out.source = *config.sysroot_unusable + " (unusable; it may only tighten: nothing allowed)";
        return out;
    }
    if (const auto& rc = config.sysroot_conf[static_cast<size_t>(c)]) {
        const std::string where = rc->origin + " (ImagePolicy=)";
        out.policy = intersect_policies(out.policy, rc->policy, where + " for " + std::string(name), &out.warnings);
        out.source += ", tightened by " + where;
    }
    if (!config.sysroot) return out;

    const PolicyFile& s = *config.sysroot;
    std::string where;
    const ImagePolicy* untrusted = nullptr;
    if (const PolicyRule* r = find_rule(s, name)) {
        untrusted = &r->policy;
        where = describe_rule(s, r->line, r->pattern);
    } else if (s.default_policy) {
        untrusted = &*s.default_policy;
        where = describe_rule(s, s.default_line, "default");
    }
    if (!untrusted) return out;
    out.policy = intersect_policies(out.policy, *untrusted, where + " for " + std::string(name), &out.warnings);
    out.source += ", tightened by " + where;
    return out;
}

}  // namespace rdext
