#include "policy/policy.h"

#include <cerrno>

namespace rdext {

namespace pf = policy_flag;

namespace {

constexpr std::array<const char*, kDesignatorCount> kDesignatorNames = {
    "root",       "usr",        "home",           "srv",           "esp", "xbootldr", "swap",
    "root-verity", "usr-verity", "root-verity-sig", "usr-verity-sig", "tmp", "var",
};

struct FlagName {
    const char* name;
    PolicyFlags flag;
};
// Order is the canonical output order (systemd's).
constexpr FlagName kFlagNames[] = {
    {"verity", pf::Verity},           {"signed", pf::Signed},
    {"encrypted", pf::Encrypted},     {"unprotected", pf::Unprotected},
    {"unused", pf::Unused},           {"absent", pf::Absent},
    {"read-only-on", pf::ReadOnlyOn}, {"read-only-off", pf::ReadOnlyOff},
    {"growfs-off", pf::GrowfsOff},    {"growfs-on", pf::GrowfsOn},
    {"btrfs", pf::Btrfs},             {"erofs", pf::Erofs},
    {"ext4", pf::Ext4},               {"f2fs", pf::F2fs},
    {"squashfs", pf::Squashfs},       {"vfat", pf::Vfat},
    {"xfs", pf::Xfs},
};

std::string_view strip(std::string_view s) {
    const char* ws = " \t\n\r\v\f";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

std::optional<PolicyFlags> flag_from_name(std::string_view s) {
    if (s == "open") return pf::Open;
    if (s == "ignore") return pf::Ignore;
    for (const auto& f : kFlagNames)
        if (s == f.name) return f.flag;
    return std::nullopt;
}

// The data partition a verity (hash) or verity-sig partition protects.
std::optional<Designator> verity_data_of(Designator d) {
    if (d == Designator::RootVerity) return Designator::Root;
    if (d == Designator::UsrVerity) return Designator::Usr;
    return std::nullopt;
}
std::optional<Designator> verity_sig_data_of(Designator d) {
    if (d == Designator::RootVeritySig) return Designator::Root;
    if (d == Designator::UsrVeritySig) return Designator::Usr;
    return std::nullopt;
}
bool has_verity(Designator d) { return d == Designator::Root || d == Designator::Usr; }

// systemd's normalization of one rule for one designator.
PolicyFlags normalize(PolicyFlags flags, Designator d) {
    flags = extend_policy_flags(flags);
    // A verity or signature partition is the protection; it needs none.
    if (verity_data_of(d) || verity_sig_data_of(d)) flags &= ~(pf::Verity | pf::Signed | pf::Encrypted);
    if (!has_verity(d)) flags &= ~(pf::Verity | pf::Signed);
    // A partition that must be absent has no GPT flags to check.
    if ((flags & pf::UseMask) == pf::Absent) flags &= ~(pf::ReadOnlyMask | pf::GrowfsMask);
    return flags;
}

// systemd's image_policy_get(): the rule for d, or one derived for verity
// partitions from their data partition's rule; nullopt = use the default.
std::optional<PolicyFlags> lookup(const ImagePolicy& p, Designator d) {
    if (auto r = p.rule(d)) return normalize(*r, d);
    auto derive = [&](Designator data, PolicyFlags needed) -> std::optional<PolicyFlags> {
        auto df = lookup(p, data);
        if (!df || !(*df & needed)) return std::nullopt;
        PolicyFlags f = pf::Unprotected | (*df & (pf::Unused | pf::Absent)) |
                        (*df & (pf::ReadOnlyMask | pf::GrowfsMask));
        return normalize(f, d);
    };
    if (auto data = verity_data_of(d)) return derive(*data, pf::Signed | pf::Verity);
    if (auto data = verity_sig_data_of(d)) return derive(*data, pf::Signed);
    return std::nullopt;
}

bool all_match(const ImagePolicy& p, PolicyFlags expected) {
    if (extend_policy_flags(p.default_flags()) != extend_policy_flags(expected)) return false;
    for (Designator d : all_designators())
        if (p.effective(d) != normalize(expected, d)) return false;
    return true;
}

std::optional<PolicyFlags> fstype_flag(std::string_view fstype) {
    for (const auto& f : kFlagNames)
        if ((f.flag & pf::FstypeMask) && fstype == f.name) return f.flag;
    return std::nullopt;
}

}  // namespace

const char* designator_name(Designator d) { return kDesignatorNames[static_cast<size_t>(d)]; }

std::optional<Designator> designator_from_name(std::string_view name) {
    for (size_t i = 0; i < kDesignatorCount; i++)
        if (name == kDesignatorNames[i]) return static_cast<Designator>(i);
    return std::nullopt;
}

const std::array<Designator, kDesignatorCount>& all_designators() {
    static const std::array<Designator, kDesignatorCount> all = [] {
        std::array<Designator, kDesignatorCount> a{};
        for (size_t i = 0; i < kDesignatorCount; i++) a[i] = static_cast<Designator>(i);
        return a;
    }();
    return all;
}

Result<PolicyFlags> parse_policy_flags(std::string_view text) {
    text = strip(text);
    if (text.empty() || text == "-") return PolicyFlags{0};
    PolicyFlags flags = 0;
    size_t pos = 0;
    for (;;) {
        size_t plus = text.find('+', pos);
        std::string_view word = strip(text.substr(pos, plus == std::string_view::npos ? plus : plus - pos));
        if (word.empty())
            return Error(EINVAL) << "empty flag in '" << std::string(text) << "'";
        auto f = flag_from_name(word);
        if (!f) return Error(EINVAL) << "unknown policy flag '" << std::string(word) << "'";
        flags |= *f;
        if (plus == std::string_view::npos) break;
        pos = plus + 1;
    }
    return flags;
}

std::string format_policy_flags(PolicyFlags flags, bool simplify) {
    std::string out;
    auto add = [&](const char* s) {
        if (!out.empty()) out += '+';
        out += s;
    };
    PolicyFlags use = flags & pf::UseMask;
    if (simplify && use == pf::Open)
        add("open");
    else if (simplify && use == pf::Ignore)
        add("ignore");
    else
        for (const auto& f : kFlagNames)
            if ((f.flag & pf::UseMask) && (flags & f.flag)) add(f.name);
    for (PolicyFlags pair : {pf::ReadOnlyMask, pf::GrowfsMask}) {
        if (simplify && ((flags & pair) == pair || (flags & pair) == 0)) continue;
        for (const auto& f : kFlagNames)
            if ((f.flag & pair) && (flags & f.flag)) add(f.name);
    }
    for (const auto& f : kFlagNames)
        if ((f.flag & pf::FstypeMask) && (flags & f.flag)) add(f.name);
    return out.empty() ? "-" : out;
}

PolicyFlags extend_policy_flags(PolicyFlags flags) {
    if ((flags & pf::UseMask) == 0) flags |= pf::Open;
    if ((flags & pf::ReadOnlyMask) == 0) flags |= pf::ReadOnlyMask;
    if ((flags & pf::GrowfsMask) == 0) flags |= pf::GrowfsMask;
    return flags;
}

ImagePolicy ImagePolicy::allow_all() {
    ImagePolicy p;
    p.default_ = pf::Open;
    return p;
}
ImagePolicy ImagePolicy::ignore_all() { return ImagePolicy(); }
ImagePolicy ImagePolicy::deny_all() {
    ImagePolicy p;
    p.default_ = pf::Absent;
    return p;
}

PolicyFlags ImagePolicy::effective(Designator d) const {
    if (auto f = lookup(*this, d)) return *f;
    return normalize(default_, d);
}

bool ImagePolicy::equivalent(const ImagePolicy& other) const {
    if (extend_policy_flags(default_) != extend_policy_flags(other.default_)) return false;
    for (Designator d : all_designators())
        if (effective(d) != other.effective(d)) return false;
    return true;
}

std::string ImagePolicy::to_string() const {
    if (all_match(*this, pf::Open)) return "*";
    if (all_match(*this, pf::Ignore)) return "-";
    if (all_match(*this, pf::Absent)) return "~";
    std::string out;
    auto add = [&](const std::string& rule) {
        if (!out.empty()) out += ':';
        out += rule;
    };
    // A rule saying what the default (or, for verity partitions, the
    // derivation from the data partition) says anyway is left out. Unlike
    // systemd, which compares with the default only, the whole policy is
    // compared, so the text always parses back to the same policy.
    ImagePolicy shortest = *this;
    for (Designator d : all_designators()) {
        if (!rule(d)) continue;
        ImagePolicy without = shortest;
        without.rules_[static_cast<size_t>(d)].reset();
        if (without.equivalent(*this)) shortest = without;
    }
    for (Designator d : all_designators())
        if (auto r = shortest.rule(d)) add(std::string(designator_name(d)) + "=" + format_policy_flags(*r));
    if (extend_policy_flags(default_) != extend_policy_flags(pf::Ignore))
        add("=" + format_policy_flags(default_));
    return out.empty() ? "-" : out;
}

Result<ImagePolicy> parse_image_policy(std::string_view text) {
    // Only the exact words are symbolic, as in systemd ("* " is an error).
    if (text.empty() || text == "-") return ImagePolicy::ignore_all();
    if (text == "*") return ImagePolicy::allow_all();
    if (text == "~") return ImagePolicy::deny_all();

    ImagePolicy p;
    bool have_default = false;
    size_t pos = 0;
    for (;;) {
        size_t colon = text.find(':', pos);
        std::string_view rule = text.substr(pos, colon == std::string_view::npos ? colon : colon - pos);
        std::string shown(strip(rule));
        if (shown.empty())
            return Error(EINVAL) << "image policy '" << std::string(text) << "': empty rule";
        size_t eq = rule.find('=');
        if (eq == std::string_view::npos)
            return Error(EINVAL) << "image policy: rule '" << shown << "' has no '='";
        std::string_view name = strip(rule.substr(0, eq));
        auto flags = parse_policy_flags(rule.substr(eq + 1));
        if (!flags)
            return Error(EINVAL) << "image policy: rule '" << shown << "': " << flags.error().message();
        if (name.empty()) {
            if (have_default)
                return Error(EINVAL) << "image policy: default rule '" << shown << "' given twice";
            have_default = true;
            p.set_default_flags(*flags);
        } else {
            auto d = designator_from_name(name);
            if (!d)
                return Error(EINVAL) << "image policy: unknown partition designator '" << std::string(name)
                                     << "' in rule '" << shown << "'";
            if (p.rule(*d))
                return Error(EINVAL) << "image policy: partition designator '" << std::string(name)
                                     << "' given twice";
            p.set_rule(*d, *flags);
        }
        if (colon == std::string_view::npos) break;
        pos = colon + 1;
    }
    return p;
}

ImagePolicy default_image_policy(ImageClass c) {
    const PolicyFlags usable = pf::Verity | pf::Signed | pf::Encrypted | pf::Unprotected | pf::Absent;
    ImagePolicy p;
    p.set_rule(Designator::Root, usable);
    if (c == ImageClass::Sysext) p.set_rule(Designator::Usr, usable);
    return p;
}

const char* image_state_name(ImageState s) {
    switch (s) {
        case ImageState::Absent: return "absent";
        case ImageState::Unprotected: return "unprotected";
        case ImageState::Verity: return "verity (no signature)";
        case ImageState::Signed: return "signed verity";
        case ImageState::SignatureFailed: return "verity with a FAILED signature";
        case ImageState::Encrypted: return "encrypted";
    }
    return "?";
}

const char* partition_use_name(PartitionUse u) {
    switch (u) {
        case PartitionUse::Refused: return "refused";
        case PartitionUse::Absent: return "absent";
        case PartitionUse::Unused: return "unused";
        case PartitionUse::Unprotected: return "unprotected";
        case PartitionUse::Verity: return "verity";
        case PartitionUse::Signed: return "signed";
        case PartitionUse::Encrypted: return "encrypted";
    }
    return "?";
}

PolicyVerdict evaluate_partition(const ImagePolicy& policy, Designator d, ImageState state,
                                 std::string_view fstype) {
    const PolicyFlags flags = policy.effective(d);
    // Spelled out only for a refusal: every partition of every image of
    // a merge passes through here.
    auto refuse = [&](const std::string& what) {
        const std::string allows = format_policy_flags(flags & (pf::UseMask | pf::FstypeMask), false);
        return PolicyVerdict{PartitionUse::Refused, std::string(designator_name(d)) + ": " + what +
                                                        "; policy allows " + allows};
    };

    if (state == ImageState::Absent) {
        if (flags & pf::Absent) return {PartitionUse::Absent, {}};
        return refuse("partition is absent");
    }
    if (state == ImageState::SignatureFailed)
        return refuse("signature check FAILED, never accepted as verity or unprotected");

    struct Option {
        PolicyFlags flag;
        PartitionUse use;
    };
    std::vector<Option> options;  // strongest first
    switch (state) {
        case ImageState::Signed:
            options = {{pf::Signed, PartitionUse::Signed},
                       {pf::Verity, PartitionUse::Verity},
                       {pf::Unprotected, PartitionUse::Unprotected}};
            break;
        case ImageState::Verity:
            options = {{pf::Verity, PartitionUse::Verity}, {pf::Unprotected, PartitionUse::Unprotected}};
            break;
        case ImageState::Unprotected: options = {{pf::Unprotected, PartitionUse::Unprotected}}; break;
        case ImageState::Encrypted: options = {{pf::Encrypted, PartitionUse::Encrypted}}; break;
        default: break;
    }
    for (const Option& o : options) {
        if (!(flags & o.flag)) continue;
        if ((flags & pf::FstypeMask) && !fstype.empty()) {
            auto bit = fstype_flag(fstype);
            if (!bit || !(flags & *bit))
                return refuse("image offers " + std::string(image_state_name(state)) + " with file system " +
                              std::string(fstype));
        }
        return {o.use, {}};
    }
    if (flags & pf::Unused) return {PartitionUse::Unused, {}};
    return refuse("image offers " + std::string(image_state_name(state)));
}

namespace {

// systemd leaves an unused partition out of the image, and an extension
// without its root or usr is not used at all; rdext would mount it anyway.
PolicyVerdict refuse_unused_data(const ImagePolicy& policy, Designator d) {
    const std::string allows = format_policy_flags(policy.effective(d) & pf::UseMask, false);
    return {PartitionUse::Refused,
            std::string(designator_name(d)) + ": image has it, but the policy allows it no use (" + allows + ")"};
}

}  // namespace

PolicyVerdict evaluate_image(const ImagePolicy& policy, const std::vector<OfferedPartition>& offered) {
    PolicyVerdict accepted{PartitionUse::Absent, {}};
    std::optional<PolicyVerdict> unused_data;  // reported after any other refusal
    bool first = true;
    for (Designator d : all_designators()) {
        const OfferedPartition* o = nullptr;
        for (const auto& p : offered)
            if (p.designator == d) o = &p;
        PolicyVerdict v = o ? evaluate_partition(policy, d, o->state, o->fstype)
                            : evaluate_partition(policy, d, ImageState::Absent);
        if (!v.accepted()) return v;
        if (v.use == PartitionUse::Unused && (d == Designator::Root || d == Designator::Usr) && !unused_data)
            unused_data = refuse_unused_data(policy, d);
        if (o && first) {
            accepted = v;
            first = false;
        }
    }
    return unused_data ? *unused_data : accepted;
}

namespace {

// Intersects one part (use flags, a GPT flag pair or file system types) of
// two extended flag sets; see intersect_policies(). Empty when the two
// sides have nothing in common there.
PolicyFlags intersect_part(PolicyFlags t, PolicyFlags u, PolicyFlags mask, bool explicit_untrusted,
                           const std::string& where, std::vector<std::string>* warnings) {
    PolicyFlags tp = t & mask, up = u & mask;
    if (mask == pf::FstypeMask) {
        // No types listed means any type.
        if (tp == 0) return up;
        if (up == 0) return tp;
    }
    PolicyFlags dropped = up & ~tp;
    if (dropped && explicit_untrusted && warnings)
        warnings->push_back(where + ": " + format_policy_flags(dropped, false) +
                            " not allowed by the trusted policy, ignored");
    return tp & up;
}

// Both sides' conditions must hold. Where they cannot hold together (no use,
// GPT flag or type in common) for the root or usr partition, that partition
// may only be "unused", which no image passes (a root or usr partition it
// has must be used, one it lacks must be allowed absent): the root's rule
// takes away what the trusted policy allows, and is never set aside. For
// other partitions the trusted rule stays, with a warning.
PolicyFlags intersect_flags(PolicyFlags t, PolicyFlags u, bool explicit_untrusted, const std::string& where,
                            std::vector<std::string>* warnings, bool data_partition) {
    PolicyFlags out = 0;
    for (PolicyFlags mask : {pf::UseMask, pf::ReadOnlyMask, pf::GrowfsMask, pf::FstypeMask}) {
        PolicyFlags both = intersect_part(t, u, mask, explicit_untrusted, where, warnings);
        if (both == 0 && ((t & mask) != 0 || mask != pf::FstypeMask)) {
            if (warnings)
                warnings->push_back(where + ": nothing in common with the trusted policy (" +
                                    format_policy_flags(t & mask, false) + ")" +
                                    (data_partition ? ": no image passes" : ", rule ignored"));
            if (data_partition) return extend_policy_flags(pf::Unused);
            both = t & mask;
        }
        out |= both;
    }
    return out;
}

}  // namespace

ImagePolicy intersect_policies(const ImagePolicy& trusted, const ImagePolicy& untrusted,
                               const std::string& context, std::vector<std::string>* warnings) {
    ImagePolicy out;
    const std::string prefix = context.empty() ? "" : context + ": ";
    // An untrusted default of "ignore" is what an unwritten default means;
    // only another one is reported.
    const bool default_written =
        extend_policy_flags(untrusted.default_flags()) != extend_policy_flags(policy_flag::Ignore);
    out.set_default_flags(intersect_flags(extend_policy_flags(trusted.default_flags()),
                                          extend_policy_flags(untrusted.default_flags()), default_written,
                                          prefix + "default", warnings, false));
    // Data partitions come before their verity partitions in designator
    // order, so a derived rule below sees the final data rule.
    for (Designator d : all_designators()) {
        const bool written = untrusted.rule(d).has_value();
        // Only a rule the untrusted side wrote for d is reported: its
        // default's effect is reported once, above.
        PolicyFlags z = normalize(intersect_flags(extend_policy_flags(trusted.effective(d)),
                                                  extend_policy_flags(untrusted.effective(d)), written,
                                                  prefix + designator_name(d), written ? warnings : nullptr,
                                                  d == Designator::Root || d == Designator::Usr),
                                  d);
        // Rules are only written where needed: where a side had one, or
        // where the default or a derived rule would say something else.
        if (trusted.rule(d) || written || out.effective(d) != z) out.set_rule(d, z);
    }
    return out;
}

}  // namespace rdext
