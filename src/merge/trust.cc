#include "merge/trust.h"

#include <fcntl.h>

#include "base/fs.h"
#include "base/log.h"

namespace rdext {
namespace {

constexpr const char* kPolicyFile = "/etc/rdext/policy.conf";

std::optional<ImagePolicy> command_line_policy(const std::optional<std::string>& text, const char* key) {
    if (!text) return std::nullopt;
    auto p = parse_image_policy(*text);
    if (p) return *p;
    log_error() << key << " is not a valid image policy (" << p.error().what()
                << "); refusing every image it governs";
    return ImagePolicy::deny_all();
}


// ImagePolicy= of the configuration files into `config`.
void add_conf_policies(const ConfSources& conf, PolicyConfig& config) {
    for (ImageClass c : all_classes()) {
        const size_t i = static_cast<size_t>(c);
        if (const auto& v = conf.trusted[i].image_policy) {
            const std::string key = v->origin + ": ImagePolicy=";
            config.trusted_conf[i] = PolicyConfig::ConfPolicy{*command_line_policy(v->value, key.c_str()), v->origin};
        }
        const auto& v = conf.root[i].image_policy;
        if (!v || config.sysroot_unusable) continue;
        auto p = parse_image_policy(v->value);
        if (p)
            config.sysroot_conf[i] = PolicyConfig::ConfPolicy{std::move(*p), v->origin};
        else
            config.sysroot_unusable = "root's " + v->origin + ": ImagePolicy= is not a valid image policy (" +
                                      p.error().what() + ")";
    }
    if (!config.sysroot_unusable && conf.root_unusable) config.sysroot_unusable = conf.root_unusable;
}

}  // namespace

Result<ImagePolicy> parse_option_policy(const std::string& text) {
    auto p = parse_image_policy(text);
    if (!p) return Error(EINVAL) << "--image-policy= is not a valid image policy (" << p.error().message() << ")";
    return p;
}

Result<PolicyConfig> load_policy_config(const Target& target, const PolicySources& sources) {
    PolicyConfig config;
    auto slash = open_path("/", O_PATH | O_DIRECTORY);
    if (!slash) return slash.error();
    auto trusted = read_policy_file(slash->get(), kPolicyFile, "trusted policy file");
    if (!trusted) return trusted.error();
    if (*trusted) config.trusted = std::move(**trusted);
    config.sysext_cmdline = command_line_policy(sources.sysext_cmdline, "rd.sysext.image_policy=");
    config.confext_cmdline = command_line_policy(sources.confext_cmdline, "rd.confext.image_policy=");
    if (sources.cli) {
        auto p = parse_option_policy(*sources.cli);
        if (!p) return p.error();
        config.sysext_cmdline = config.confext_cmdline = *p;
        config.from_option = true;
    }
    if (!target.is_running_root()) {
        auto untrusted = read_policy_file(target.root_fd.get(), kPolicyFile, "root's policy file");
        if (!untrusted) {
            config.sysroot_unusable = untrusted.error().what();
            log_warning() << *config.sysroot_unusable
                          << "; unusable, and it may only tighten the image policy: every image is refused";
        } else if (*untrusted)
            config.sysroot = std::move(**untrusted);
    }
    if (sources.conf) {
        const bool was_unusable = config.sysroot_unusable.has_value();
        add_conf_policies(*sources.conf, config);
        if (!was_unusable && config.sysroot_unusable)
            log_warning() << *config.sysroot_unusable
                          << "; unusable, and it may only tighten the image policy: every image is refused";
    }
    return config;
}

Result<void> check_image_policy(const PolicyConfig& config, ImageClass cls, const std::string& name,
                                const std::vector<OfferedPartition>& offered) {
    ResolvedPolicy resolved = resolve_policy(config, cls, name);
    for (const auto& w : resolved.warnings) log_warning() << name << ": " << w;
    PolicyVerdict v = evaluate_image(resolved.policy, offered);
    if (v.accepted()) return {};
    return Error(EPERM) << "refused by image policy " << resolved.policy.to_string() << " (from "
                        << resolved.source << "): " << v.reason;
}

}  // namespace rdext
