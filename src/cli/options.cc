#include "cli/options.h"

#include <getopt.h>

#include <unistd.h>

#include <strings.h>

#include <cstdlib>
#include <cstring>

#include "target/mutable_mode.h"

namespace rdext {
namespace {

enum { OPT_ROOT = 0x100, OPT_CMDLINE_FILE, OPT_LOG_LEVEL, OPT_JSON, OPT_VERSION, OPT_IMAGE_POLICY, OPT_OS_RELEASE, OPT_CERTIFICATE, OPT_MUTABLE,
       OPT_FORCE, OPT_NOEXEC, OPT_ALWAYS_REFRESH, OPT_KEYRING, OPT_REFRESH, OPT_CA, OPT_TIMEOUT };

Result<Command> parse_command(const std::string& s) {
    static const struct {
        const char* name;
        Command cmd;
    } commands[] = {
        {"merge", Command::Merge},   {"unmerge", Command::Unmerge}, {"refresh", Command::Refresh},
        {"status", Command::Status}, {"list", Command::List},       {"mark-good", Command::MarkGood},
        {"count-tries", Command::CountTries}, {"inspect", Command::Inspect}, {"varlink", Command::Varlink},
        {"fetch", Command::Fetch},
    };
    for (const auto& c : commands)
        if (s == c.name) return c.cmd;
    return Error(EINVAL) << "unknown command '" << s << "' (see rdext --help)";
}

// A bare --json stays pretty, as it always printed.
Result<JsonMode> parse_json_mode(const char* arg) {
    if (!arg || std::strcmp(arg, "pretty") == 0) return JsonMode::Pretty;
    if (std::strcmp(arg, "short") == 0) return JsonMode::Short;
    if (std::strcmp(arg, "off") == 0) return JsonMode::Off;
    return Error(EINVAL) << "--json= expects short, pretty or off, not '" << arg << "'";
}

}  // namespace

Result<bool> parse_boolean(const char* t, const char* option) {
    for (const char* yes : {"1", "yes", "y", "true", "t", "on"})
        if (strcasecmp(t, yes) == 0) return true;
    for (const char* no : {"0", "no", "n", "false", "f", "off"})
        if (strcasecmp(t, no) == 0) return false;
    return Error(EINVAL) << option << " expects a boolean (yes or no), not '" << t << "'";
}

const char* usage_text() {
    return "Usage: rdext [OPTIONS] COMMAND\n"
           "\n"
           "Merge system extensions (sysext: /usr, /opt) and configuration extensions\n"
           "(confext: /etc) into a root file system, compatible with systemd-sysext.\n"
           "\n"
           "Commands:\n"
           "  merge      Merge the enabled extensions into the root\n"
           "  unmerge    Remove the merged extensions from the root\n"
           "  refresh    Merge again, replacing the current merge\n"
           "  status     Show what is merged, and what was skipped and why\n"
           "  list       List the extension images found in the root\n"
           "  mark-good  Mark the merged trial images (NAME_VER+LEFT-DONE.raw) as good\n"
           "  count-tries  Do the trial renames a read-only root left pending\n"
           "  inspect IMAGE  Report an image's kind, release, verity, signer and verdict\n"
           "  varlink    Serve io.systemd.sysext on the socket a socket unit passes\n"
           "  fetch      Download the extensions the root's sysupdate transfer files name\n"
           "\n"
           "Options:\n"
           "  --root=DIR           Root to extend (default: /sysroot in an initrd, else /)\n"
           "  --cmdline-file=FILE  Read the kernel command line from FILE, not /proc/cmdline\n"
           "  --log-level=LEVEL    err, warning, notice, info or debug (default: info)\n"
           "  --json[=MODE]        short (one line), pretty (indented, a bare --json) or off:\n"
           "                       print the result as JSON: status, list and inspect their\n"
           "                       report; merge, refresh, unmerge, mark-good and count-tries\n"
           "                       the record of the operation (\"operation\": merge, refresh,\n"
           "                       refresh-fallback, unchanged, unmerge, mark-good,\n"
           "                       count-tries; \"failure\" when it failed)\n"
           "  --image-policy=POLICY  Image policy (systemd.image-policy(7) syntax) for\n"
           "                       every image, in place of rd.sysext.image_policy= and\n"
           "                       rd.confext.image_policy=; a matching pattern of the\n"
           "                       trusted /etc/rdext/policy.conf still wins, and the\n"
           "                       root's own policy.conf may only tighten the result\n"
           "  --os-release=FILE    inspect: check against this os-release, not the root's\n"
           "  --certificate=FILE   inspect: trust this PEM certificate (repeatable), not\n"
           "                       the running system's verity.d\n"
           "  --keyring=FILE       fetch: the OpenPGP keyring SHA256SUMS.gpg is checked with\n"
           "                       (default: /etc/rdext/fetch-keyring.gpg of the running\n"
           "                       system, never the root's own)\n"
           "  --ca=FILE            fetch: the only CA (PEM) https servers are checked with\n"
           "                       (default: /etc/rdext/fetch-ca.pem of the running\n"
           "                       system, else its CA bundle; never the root's own)\n"
           "  --timeout=SECONDS    fetch: the time the whole fetch may take (default 300)\n"
           "  --refresh            fetch: refresh the merge afterwards\n"
           "  --mutable=MODE       no, auto, yes, import, ephemeral or ephemeral-import:\n"
           "                       a writable merge as systemd-sysext's --mutable=;\n"
           "                       overrides SYSTEMD_SYSEXT_MUTABLE_MODE and\n"
           "                       SYSTEMD_CONFEXT_MUTABLE_MODE, which override\n"
           "                       Mutable= of sysext.conf / confext.conf (below),\n"
           "                       which overrides rd.sysext.mutable= and\n"
           "                       rd.confext.mutable= (--mutable=help lists the modes)\n"
           "  --force              merge, refresh: merge extensions whose release does not\n"
           "                       fit the OS, or that carry none or ship os-release, as\n"
           "                       systemd-sysext --force; the image policy still applies\n"
           "  --noexec=BOOL        Mount the merged hierarchies noexec (yes) or not (no);\n"
           "                       default: noexec for confext only\n"
           "  --always-refresh=BOOL  refresh: merge again even when nothing changed\n"
           "                       (default no: such a refresh does nothing)\n"
           "  -h, --help           Show this help\n"
           "  --version            Show the version\n"
           "\n"
           "Configuration (systemd v259's sysext.conf(5)): [Sysext] in sysext.conf,\n"
           "[Confext] in confext.conf, under /etc/systemd, /run/systemd,\n"
           "/usr/local/lib/systemd, /usr/lib/systemd (the first found), then the\n"
           "drop-ins sysext.conf.d/*.conf (confext.conf.d/) of those directories;\n"
           "keys Mutable= and ImagePolicy=. The running system's files are trusted; the\n"
           "files of a root that is not the running system may only tighten the image\n"
           "policy. Environment: SYSTEMD_SYSEXT_HIERARCHIES, SYSTEMD_CONFEXT_HIERARCHIES\n"
           "(colon-separated absolute paths, in place of /usr:/opt and /etc).\n"
           "\n"
           "Kernel command line: rd.sysext=0|1, rd.confext=0|1, rd.sysext.exclude=NAME[,NAME...],\n"
           "rd.confext.exclude=NAME[,NAME...], rd.sysext.require=NAME[,NAME...],\n"
           "rd.confext.require=NAME[,NAME...], rd.sysext.pin=NAME=VERSION,\n"
           "rd.confext.pin=NAME=VERSION, rd.sysext.image_policy=POLICY,\n"
           "rd.confext.image_policy=POLICY, rd.sysext.mutable=MODE, rd.confext.mutable=MODE,\n"
           "rd.sysext.block_devices=0|1, rd.confext.block_devices=0|1,\n"
           "systemd.sysext=0, rd.systemd.sysext=0,\n"
           "systemd.confext=0, rd.systemd.confext=0, rd.rdext.log_level=LEVEL.\n"
           "\n"
           "Messages go to stderr; in an initrd, merge, refresh, unmerge, mark-good and\n"
           "count-tries log to the kernel log instead when stderr is not a terminal.\n"
           "\n"
           "Exit status: 0 success (skipped extensions are reported, not failures;\n"
           "inspect: the image would be merged), 1 the operation failed (inspect: the\n"
           "image would be refused), 2 what was asked is wrong: an unknown command,\n"
           "option or value (e.g. an invalid --image-policy=), or a root, file or image\n"
           "it names that cannot be opened.\n";
}

Result<Options> parse_options(int argc, char** argv) {
    static const struct option longopts[] = {
        {"root", required_argument, nullptr, OPT_ROOT},
        {"cmdline-file", required_argument, nullptr, OPT_CMDLINE_FILE},
        {"log-level", required_argument, nullptr, OPT_LOG_LEVEL},
        {"json", optional_argument, nullptr, OPT_JSON},
        {"image-policy", required_argument, nullptr, OPT_IMAGE_POLICY},
        {"mutable", required_argument, nullptr, OPT_MUTABLE},
        {"os-release", required_argument, nullptr, OPT_OS_RELEASE},
        {"certificate", required_argument, nullptr, OPT_CERTIFICATE},
        {"force", no_argument, nullptr, OPT_FORCE},
        {"noexec", required_argument, nullptr, OPT_NOEXEC},
        {"always-refresh", required_argument, nullptr, OPT_ALWAYS_REFRESH},
        {"keyring", required_argument, nullptr, OPT_KEYRING},
        {"refresh", no_argument, nullptr, OPT_REFRESH},
        {"ca", required_argument, nullptr, OPT_CA},
        {"timeout", required_argument, nullptr, OPT_TIMEOUT},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, OPT_VERSION},
        {nullptr, 0, nullptr, 0},
    };
    Options o;
    bool help = false, version = false;
    opterr = 0;
    optind = 1;
    int c;
    // Options may also follow the command (`rdext inspect IMAGE --json`):
    // getopt moves the command and its argument to the end.
    while ((c = getopt_long(argc, argv, "h", longopts, nullptr)) != -1) {
        switch (c) {
            case OPT_ROOT: o.root = optarg; break;
            case OPT_CMDLINE_FILE: o.cmdline_file = optarg; break;
            case OPT_LOG_LEVEL: o.log_level = optarg; break;
            case OPT_JSON: {
                auto m = parse_json_mode(optarg);
                if (!m) return m.error();
                o.json = *m;
                break;
            }
            case OPT_IMAGE_POLICY: o.image_policy = optarg; break;
            case OPT_MUTABLE: {
                // As systemd-sysext: --mutable=help lists the modes at once.
                if (std::strcmp(optarg, "help") == 0) {
                    o.command = Command::MutableHelp;
                    return o;
                }
                auto m = parse_mutable_mode(optarg);
                if (!m) return Error(EINVAL) << m.error().message();
                o.mutable_mode = *m;
                break;
            }
            case OPT_FORCE: o.force = true; break;
            case OPT_NOEXEC:
            case OPT_ALWAYS_REFRESH: {
                const bool noexec = c == OPT_NOEXEC;
                auto b = parse_boolean(optarg, noexec ? "--noexec=" : "--always-refresh=");
                if (!b) return b.error();
                if (noexec)
                    o.noexec = *b;
                else
                    o.always_refresh = *b;
                break;
            }
            case OPT_OS_RELEASE: o.os_release = optarg; break;
            case OPT_CERTIFICATE: o.certificates.push_back(optarg); break;
            case OPT_KEYRING: o.keyring = optarg; break;
            case OPT_REFRESH: o.refresh = true; break;
            case OPT_CA: o.ca = optarg; break;
            case OPT_TIMEOUT: {
                char* end = nullptr;
                errno = 0;
                unsigned long v = std::strtoul(optarg, &end, 10);
                if (errno || end == optarg || *end || v == 0 || v > 86400 || optarg[0] == '-')
                    return Error(EINVAL) << "--timeout=" << optarg << ": not a number of seconds from 1 to 86400";
                o.timeout = static_cast<unsigned>(v);
                break;
            }
            case 'h': help = true; break;
            case OPT_VERSION: version = true; break;
            default:
                return Error(EINVAL) << "unknown or incomplete option '" << argv[optind - 1] << "' (see rdext --help)";
        }
    }
    if (help) {
        o.command = Command::Help;
        return o;
    }
    if (version) {
        o.command = Command::Version;
        return o;
    }
    // As systemd-sysext: started with a socket named "varlink", serve it.
    const char* fd_names = std::getenv("LISTEN_FDNAMES");
    const bool socket_passed = fd_names && std::strcmp(fd_names, "varlink") == 0;
    if (optind >= argc && !socket_passed) return Error(EINVAL) << "no command given (see rdext --help)";
    auto cmd = optind >= argc ? Result<Command>(Command::Varlink) : parse_command(argv[optind]);
    if (!cmd) return cmd.error();
    o.command = *cmd;
    // inspect takes the image; no other command takes an argument.
    int args = o.command == Command::Inspect ? 2 : 1;
    if (o.command == Command::Inspect && argc - optind < 2) return Error(EINVAL) << "inspect: no image given";
    if (argc - optind > args) return Error(EINVAL) << "unexpected argument '" << argv[optind + args] << "'";
    if (o.command == Command::Inspect) o.image = argv[optind + 1];
    if (o.command != Command::Inspect && (o.os_release || !o.certificates.empty()))
        return Error(EINVAL) << "--os-release= and --certificate= are options of inspect only";
    if (o.command != Command::Fetch && (o.keyring || o.ca || o.timeout || o.refresh))
        return Error(EINVAL) << "--keyring=, --ca=, --timeout= and --refresh are options of fetch only";
    if (o.root.empty()) o.root = ::access("/etc/initrd-release", F_OK) == 0 ? "/sysroot" : "/";
    return o;
}

}  // namespace rdext
