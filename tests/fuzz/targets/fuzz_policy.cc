// Image policies: policy strings (systemd syntax, from the kernel command
// line or a policy file) and policy files with per-name rules.
//
// Input: line 1 is a policy string (and also a flags string), line 2 an
// extension name; the whole input is also read as a policy file.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "policy/policy.h"
#include "policy/policy_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > rdext::kPolicyFileMax) return 0;
    std::string in(reinterpret_cast<const char*>(data), size);
    auto lines = rdext_fuzz::split_lines(in, 3);
    const std::string& text = lines[0];
    const std::string name = lines.size() > 1 ? lines[1] : "foo";

    if (auto flags = rdext::parse_policy_flags(text)) {
        rdext::format_policy_flags(*flags, true);
        rdext::format_policy_flags(*flags, false);
        rdext::extend_policy_flags(*flags);
    }

    // policy.h: to_string() "parses back to an equivalent policy".
    if (auto policy = rdext::parse_image_policy(text)) {
        std::string canonical = policy->to_string();
        auto again = rdext::parse_image_policy(canonical);
        FUZZ_CHECK(again.has_value());
        FUZZ_CHECK(again->equivalent(*policy));
        for (auto d : rdext::all_designators()) policy->effective(d);
    }

    if (auto file = rdext::parse_policy_file(in, "fuzz")) {
        const rdext::PolicyRule* rule = rdext::find_rule(*file, name);
        if (rule) FUZZ_CHECK(rdext::pattern_matches(rule->pattern, name));
        for (const auto& r : file->rules) rdext::more_specific(r.pattern, name);
    }
    rdext::is_glob_pattern(text);
    rdext::pattern_matches(text, name);
    return 0;
}
