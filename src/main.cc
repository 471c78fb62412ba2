// rdext: merge system and configuration extensions into a root, in the
// initramfs before switch-root or on a running system.
//
// main() reads as the pipeline: options -> kernel command line -> target
// root -> the command. Each step's failure is reported once, here.

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <openssl/crypto.h>

#include "base/log.h"
#include "boot_count/boot_count.h"
#include "cli/inspect_report.h"
#include "cli/options.h"
#include "cli/report.h"
#include "cmdline/cmdline.h"
#if RDEXT_WITH_FETCH
#include "fetch/fetch.h"
#include "fetch/http_source.h"
#endif
#include "merge/handoff.h"
#include "merge/merge.h"
#include "merge/trust.h"
#include "target/ext_conf.h"
#include "varlink/sysext_service.h"
#include "varlink/varlink.h"
#include "version.h"

using namespace rdext;

namespace {

constexpr const char* kRefusedWithIt = "; merge, refresh and inspect refuse to run with it";

// 2: what was asked is wrong (an unknown command, option or value; a root,
// file or image named that is not there); 1: the operation failed
// (inspect: the image would be refused); 0: success.
enum Exit { kOk = 0, kFailed = 1, kUsage = 2 };

// The commands that decide by the image policy. The others only look or
// undo: a bad policy is worth a warning there, never a refusal.
bool uses_policy(Command c) {
    return c == Command::Merge || c == Command::Refresh || c == Command::Inspect || c == Command::Varlink ||
           c == Command::Fetch;
}

// Whoever looks (status, list, inspect) reads stderr. The commands the
// units run (merge, refresh, unmerge, count-tries, mark-good) log to the
// kernel log in an initrd when stderr is not a terminal: there stderr may
// go nowhere, and the kernel log survives into the booted system's journal.
void setup_logging(const Options& o, const CmdlineSettings& cmdline) {
    bool looks = o.command == Command::Status || o.command == Command::List || o.command == Command::Inspect;
    if (!looks && running_in_initrd() && !::isatty(STDERR_FILENO)) log_set_sink(LogSink::Kmsg);
    LogLevel level;
    if (o.log_level && parse_log_level(*o.log_level, &level))
        log_set_level(level);
    else if (cmdline.log_level && parse_log_level(*cmdline.log_level, &level))
        log_set_level(level);
}

// The kernel command line's settings are the merge's; the mutable mode
// comes from --mutable=, else the environment, else sysext.conf /
// confext.conf, else the command line (target/target.h).
Settings settings_from(const Options& o, const CmdlineSettings& c, const ConfSources& conf) {
    Settings s;
    s.root = o.root;
    s.classes = c.classes;
    apply_mutable_mode_overrides(s.classes, o.mutable_mode, conf_mutable_modes(conf));
    s.force = o.force;
    s.noexec = o.noexec;
    s.always_refresh = o.always_refresh;
    return s;
}

// inspect's exit status says the verdict: 0 accept, 1 refuse; a request
// that cannot be answered (no such image, unreadable os-release) is 2.
int inspect(const Options& o, const Target& target, const Settings& settings) {
    auto report = inspect_image({o.image, o.os_release, o.certificates}, target, settings);
    if (!report) {
        log_error() << "inspect: " << report.error().what();
        return kUsage;
    }
    std::fputs(render_inspect(*report, o.json).c_str(), stdout);
    return report->accepted() ? kOk : kFailed;
}

// merge, refresh, unmerge, mark-good and count-tries: the failure on
// stderr, the record on stdout with --json (a failed one too).
int report_operation(const Options& o, const char* command, const MergeState& record) {
    if (!record.failure.empty()) log_error() << command << " failed: " << record.failure;
    if (o.json != JsonMode::Off)
        std::fputs((state_to_json(record, o.json == JsonMode::Pretty) + "\n").c_str(), stdout);
    return record.failure.empty() ? kOk : kFailed;
}

// varlink: io.systemd.sysext on the socket the socket unit passed, until
// the peer hangs up (Accept=yes) or no connection came for a while.
int serve_varlink(const Target& target, const Settings& settings) {
    auto fd = varlink_listen_fd(false);
    if (!fd) {
        log_error() << fd.error().what();
        return kUsage;
    }
    if (auto r = serve_sysext_varlink(*fd, target, settings); !r) {
        log_error() << r.error().what();
        return kFailed;
    }
    return kOk;
}

// The static merge binary carries no fetching (src/fetch, libcurl, TLS:
// its size budget): it hands `rdext fetch` to rdext-fetch beside it, the
// same program with them, which the initrd carries only when fetching is
// enabled. Returns only when that cannot be run.
[[maybe_unused]] int exec_fetch_binary(char** argv) {
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    std::string path = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string("/usr/bin/rdext");
    path = path.substr(0, path.rfind('/') + 1) + "rdext-fetch";
    argv[0] = path.data();
    ::execv(path.c_str(), argv);
    std::fprintf(stderr, "rdext: fetch: cannot run %s: %s (fetching is in rdext-fetch, installed beside rdext)\n",
                 path.c_str(), std::strerror(errno));
    return kFailed;
}

#if RDEXT_WITH_FETCH
// fetch: the record on stdout with --json; --refresh then refreshes the
// merge (its own record is not printed: one document per command).
int fetch_command(const Options& o, const Target& target, const Settings& settings) {
    FetchOptions fo;
    fo.keyring = o.keyring;
    fo.ca = o.ca;
    if (o.timeout) fo.timeout = std::chrono::seconds(*o.timeout);
    FetchRecord r = fetch(target, settings, fo);
    if (!r.failure.empty()) log_error() << "fetch failed: " << r.failure;
    if (o.json != JsonMode::Off) std::fputs((fetch_to_json(r, o.json == JsonMode::Pretty) + "\n").c_str(), stdout);
    int rc = r.failure.empty() ? kOk : kFailed;
    if (o.refresh) {
        auto m = merge(target, settings, MergeMode::Refresh);
        if (!m.failure.empty()) {
            log_error() << "refresh failed: " << m.failure;
            rc = kFailed;
        }
    }
    return rc;
}
#endif

// `bad_option_policy`: why --image-policy= was set aside (status, list and
// the other commands that use no policy go on without it).
int run(const Options& o, const CmdlineSettings& c, const std::string& bad_option_policy) {
    auto target = Target::open(o.root);
    if (!target) {
        log_error() << target.error().what();
        return kUsage;
    }
    auto conf = load_ext_confs(*target);
    if (!conf && uses_policy(o.command)) {
        log_error() << "configuration: " << conf.error().what();
        return o.command == Command::Inspect ? kUsage : kFailed;
    }
    if (!conf) log_warning() << "configuration: " << conf.error().what() << "; not used";
    const ConfSources confs = conf ? std::move(*conf) : ConfSources{};
    Settings settings = settings_from(o, c, confs);
    auto policy = load_policy_config(*target, {o.image_policy, c.of(ImageClass::Sysext).image_policy,
                                               c.of(ImageClass::Confext).image_policy, &confs});
    std::string unusable_policy = bad_option_policy;
    if (policy)
        settings.policy = std::move(*policy);
    else if (!uses_policy(o.command)) {
        unusable_policy = "image policy: " + policy.error().what();
        log_warning() << unusable_policy << kRefusedWithIt;
    }
    else {
        log_error() << "image policy: " << policy.error().what();
        return o.command == Command::Inspect ? kUsage : kFailed;
    }
    switch (o.command) {
        case Command::Merge:
        case Command::Refresh: {
            const bool merge_cmd = o.command == Command::Merge;
            auto r = merge(*target, settings, merge_cmd ? MergeMode::Merge : MergeMode::Refresh);
            const int rc = report_operation(o, merge_cmd ? "merge" : "refresh", r);
            if (rc == kOk && target->in_initrd) hand_off(*target);
            return rc;
        }
        case Command::Unmerge:
            return report_operation(o, "unmerge", unmerge(*target, settings));
        case Command::MarkGood:
            return report_operation(o, "mark-good", mark_good(*target));
        case Command::CountTries:
            return report_operation(o, "count-tries", count_pending_tries(*target));
        case Command::Inspect:
            return inspect(o, *target, settings);
        case Command::Varlink:
            return serve_varlink(*target, settings);
#if RDEXT_WITH_FETCH
        case Command::Fetch:
            return fetch_command(o, *target, settings);
#endif
        case Command::Status:
        case Command::List: {
            auto r = o.command == Command::Status ? render_status(*target, o.json)
                                                  : render_list(*target, settings, o.json, unusable_policy);
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
#if RDEXT_WITH_FETCH
    enable_http_sources();
#endif
    auto opts = parse_options(argc, argv);
    if (!opts) {
        std::fprintf(stderr, "rdext: %s\n", opts.error().message().c_str());
        return kUsage;
    }
    if (opts->command == Command::Help) {
        std::fputs(usage_text(), stdout);
        return kOk;
    }
    if (opts->command == Command::MutableHelp) {
        std::fputs(mutable_mode_list(), stdout);
        return kOk;
    }
    if (opts->command == Command::Version) {
        std::printf("rdext %s\n", RDEXT_VERSION);
        return kOk;
    }
#if !RDEXT_WITH_FETCH
    if (opts->command == Command::Fetch) return exec_fetch_binary(argv);
#endif
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
    if (auto h = apply_hierarchy_overrides(); !h) {
        log_error() << h.error().what();
        return kUsage;
    }
    for (const auto& w : c.warnings) log_warning() << "kernel command line: " << w;
    std::string bad_option_policy;
    if (opts->image_policy) {
        if (auto p = parse_option_policy(*opts->image_policy); !p) {
            if (uses_policy(opts->command)) {
                log_error() << p.error().what();
                return kUsage;
            }
            log_warning() << p.error().what() << kRefusedWithIt;
            bad_option_policy = p.error().what();
            opts->image_policy.reset();
        }
    }
    return run(*opts, c, bad_option_policy);
}
