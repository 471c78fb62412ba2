// rdext: merge system and configuration extensions into a root, in the
// initramfs before switch-root or on a running system.
//
// main() reads as the pipeline: options -> kernel command line -> target
// root -> the command. Each step's failure is reported once, here.

#include <unistd.h>

#include <cstdio>

#include <openssl/crypto.h>

#include "base/log.h"
#include "boot_count/boot_count.h"
#include "cli/inspect_report.h"
#include "cli/options.h"
#include "cli/report.h"
#include "cmdline/cmdline.h"
#include "merge/handoff.h"
#include "merge/merge.h"
#include "merge/trust.h"
#include "reload/reload.h"
#include "version.h"

using namespace rdext;

namespace {

enum Exit { kOk = 0, kFailed = 1, kUsage = 2 };

// In an initrd stderr may go nowhere; the kernel log survives into the
// booted system's journal.
void setup_logging(const Options& o, const CmdlineSettings& cmdline) {
    if (running_in_initrd() && !::isatty(STDERR_FILENO)) log_set_sink(LogSink::Kmsg);
    LogLevel level;
    if (o.log_level && parse_log_level(*o.log_level, &level))
        log_set_level(level);
    else if (cmdline.log_level && parse_log_level(*cmdline.log_level, &level))
        log_set_level(level);
}

// The kernel command line's settings are the merge's; --mutable= applies
// to both classes, over rd.sysext.mutable= and rd.confext.mutable=.
Settings settings_from(const Options& o, const CmdlineSettings& c) {
    Settings s;
    s.root = o.root;
    s.classes = c.classes;
    if (o.mutable_mode)
        for (auto& cls : s.classes) cls.mutable_mode = *o.mutable_mode;
    return s;
}

// As systemd-sysext: the service manager hears of a merge only on the
// running system's own root, never from the initrd (there is no manager
// of the real root yet), and not with --no-reload.
bool tells_manager(const Options& o, const Target& target) {
    return !o.no_reload && !target.in_initrd && target.is_running_root();
}

// After the mounts changed: the merge stays whatever the manager says.
bool notify(const std::vector<ExtensionRelease>& extensions) {
    auto r = notify_manager(extensions);
    if (!r) log_error() << "service manager: " << r.error().what();
    return static_cast<bool>(r);
}

// inspect's exit status says the verdict: 0 accept, 1 refuse; a request
// that cannot be answered (no such image, unreadable os-release) is 2.
int inspect(const Options& o, const Target& target, const PolicyConfig& policy) {
    auto report = inspect_image({o.image, o.os_release, o.certificates}, target, policy);
    if (!report) {
        log_error() << "inspect: " << report.error().what();
        return kUsage;
    }
    std::fputs(render_inspect(*report, o.json).c_str(), stdout);
    return report->accepted() ? kOk : kFailed;
}

int run(const Options& o, const CmdlineSettings& c) {
    auto target = Target::open(o.root);
    if (!target) {
        log_error() << target.error().what();
        return kFailed;
    }
    Settings settings = settings_from(o, c);
    auto policy = load_policy_config(*target, {o.image_policy, c.of(ImageClass::Sysext).image_policy, c.of(ImageClass::Confext).image_policy});
    if (!policy) {
        log_error() << "image policy: " << policy.error().what();
        return o.command == Command::Inspect ? kUsage : kFailed;
    }
    settings.policy = std::move(*policy);
    switch (o.command) {
        case Command::Merge:
        case Command::Refresh: {
            bool tell = tells_manager(o, *target);
            // A refresh may take away an extension that asked: the manager
            // must also forget its units.
            std::vector<ExtensionRelease> releases;
            if (tell && o.command == Command::Refresh) releases = merged_extension_releases(*target, settings);
            auto r = merge(*target, settings, o.command == Command::Merge ? MergeMode::Merge : MergeMode::Refresh);
            if (!r) {
                log_error() << (o.command == Command::Merge ? "merge" : "refresh") << " failed: " << r.error().what();
                return kFailed;
            }
            if (o.json) std::fputs((state_to_json(*r, true) + "\n").c_str(), stdout);
            if (target->in_initrd) hand_off(*target);
            if (!tell || r->operation == "unchanged") return kOk;
            for (auto& e : merged_extension_releases(*target, settings)) releases.push_back(std::move(e));
            return notify(releases) ? kOk : kFailed;
        }
        case Command::Unmerge: {
            // What asks for a reload is what is merged now, read before it goes.
            std::vector<ExtensionRelease> releases;
            if (tells_manager(o, *target)) releases = merged_extension_releases(*target, settings);
            auto r = unmerge(*target, settings);
            if (!r) log_error() << "unmerge failed: " << r.error().what();
            // Told even after a partial unmerge, as systemd-sysext does: some hierarchies may be gone.
            bool told = notify(releases);
            return r && told ? kOk : kFailed;
        }
        case Command::MarkGood: {
            auto r = mark_good(*target);
            if (!r) {
                log_error() << "mark-good failed: " << r.error().what();
                return kFailed;
            }
            return kOk;
        }
        case Command::CountTries: {
            auto r = count_pending_tries(*target);
            if (!r) {
                log_error() << "count-tries failed: " << r.error().what();
                return kFailed;
            }
            return kOk;
        }
        case Command::Inspect:
            return inspect(o, *target, settings.policy);
        case Command::Status:
        case Command::List: {
            auto r = o.command == Command::Status ? render_status(*target, o.json) : render_list(*target, o.json);
            if (!r) {
                log_error() << r.error().what();
                return kFailed;
            }
            std::fputs(r->c_str(), stdout);
            return kOk;
        }
        default:
            return kUsage;
    }
}

}  // namespace

int main(int argc, char** argv) {
    // OpenSSL fills its legacy name table with every cipher on first use
    // unless told not to; rdext uses no cipher (digests and signatures
    // only), and the table costs a fifth of a millisecond of every boot.
    // Its configuration file is not ours to follow either: the trust
    // anchors are the initrd's verity.d.
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
    auto opts = parse_options(argc, argv);
    if (!opts) {
        std::fprintf(stderr, "rdext: %s\n", opts.error().message().c_str());
        return kUsage;
    }
    if (opts->command == Command::Help) {
        std::fputs(usage_text(), stdout);
        return kOk;
    }
    if (opts->command == Command::Version) {
        std::printf("rdext %s\n", RDEXT_VERSION);
        return kOk;
    }
    if (opts->log_level) {
        LogLevel l;
        if (!parse_log_level(*opts->log_level, &l)) {
            std::fprintf(stderr, "rdext: unknown log level '%s'\n", opts->log_level->c_str());
            return kUsage;
        }
    }
    // The command line switches apply to every merge during this boot.
    auto cmdline = read_cmdline(opts->cmdline_file.empty() ? "/proc/cmdline" : opts->cmdline_file);
    CmdlineSettings c;
    if (cmdline)
        c = std::move(*cmdline);
    else if (!opts->cmdline_file.empty()) {
        std::fprintf(stderr, "rdext: %s\n", cmdline.error().what().c_str());
        return kUsage;
    }
    setup_logging(*opts, c);
    for (const auto& w : c.warnings) log_warning() << "kernel command line: " << w;
    return run(*opts, c);
}
