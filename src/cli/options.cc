#include "cli/options.h"

#include <getopt.h>

#include <unistd.h>

#include <cstring>

#include "target/mutable_mode.h"

namespace rdext {
namespace {

enum { OPT_ROOT = 0x100, OPT_CMDLINE_FILE, OPT_LOG_LEVEL, OPT_JSON, OPT_VERSION, OPT_IMAGE_POLICY, OPT_OS_RELEASE, OPT_CERTIFICATE, OPT_MUTABLE, OPT_NO_RELOAD };

Result<Command> parse_command(const std::string& s) {
    static const struct {
        const char* name;
        Command cmd;
    } commands[] = {
        {"merge", Command::Merge},   {"unmerge", Command::Unmerge}, {"refresh", Command::Refresh},
        {"status", Command::Status}, {"list", Command::List},       {"mark-good", Command::MarkGood},
        {"count-tries", Command::CountTries}, {"inspect", Command::Inspect},
    };
    for (const auto& c : commands)
        if (s == c.name) return c.cmd;
    return Error(EINVAL) << "unknown command '" << s << "' (see rdext --help)";
}

}  // namespace

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
           "\n"
           "Options:\n"
           "  --root=DIR           Root to extend (default: /sysroot in an initrd, else /)\n"
           "  --cmdline-file=FILE  Read the kernel command line from FILE, not /proc/cmdline\n"
           "  --log-level=LEVEL    err, warning, notice, info or debug (default: info)\n"
           "  --json               Print status, list and inspect as JSON; merge and refresh\n"
           "                       print their record, with \"operation\" (merge, refresh,\n"
           "                       refresh-fallback, refresh-unmerged-first, unchanged)\n"
           "  --image-policy=POLICY  Image policy (systemd.image-policy(7) syntax) for\n"
           "                       every image; overrides rd.sysext.image_policy=\n"
           "  --os-release=FILE    inspect: check against this os-release, not the root's\n"
           "  --certificate=FILE   inspect: trust this PEM certificate (repeatable), not\n"
           "                       the running system's verity.d\n"
           "  --mutable=MODE       no, auto, yes, import, ephemeral or ephemeral-import:\n"
           "                       a writable merge as systemd-sysext's --mutable=;\n"
           "                       overrides rd.sysext.mutable= and rd.confext.mutable=\n"
           "  --no-reload          Do not reload the service manager or restart units after\n"
           "                       merge, refresh or unmerge, even when an extension asks\n"
           "                       (EXTENSION_RELOAD_MANAGER=, EXTENSION_RESTART_UNITS=,\n"
           "                       EXTENSION_RELOAD_OR_RESTART_UNITS=)\n"
           "  -h, --help           Show this help\n"
           "  --version            Show the version\n"
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
           "Exit status: 0 success (skipped extensions are reported, not failures),\n"
           "1 the operation failed (inspect: the image would be refused), 2 usage error.\n";
}

Result<Options> parse_options(int argc, char** argv) {
    static const struct option longopts[] = {
        {"root", required_argument, nullptr, OPT_ROOT},
        {"cmdline-file", required_argument, nullptr, OPT_CMDLINE_FILE},
        {"log-level", required_argument, nullptr, OPT_LOG_LEVEL},
        {"json", no_argument, nullptr, OPT_JSON},
        {"image-policy", required_argument, nullptr, OPT_IMAGE_POLICY},
        {"mutable", required_argument, nullptr, OPT_MUTABLE},
        {"no-reload", no_argument, nullptr, OPT_NO_RELOAD},
        {"os-release", required_argument, nullptr, OPT_OS_RELEASE},
        {"certificate", required_argument, nullptr, OPT_CERTIFICATE},
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
            case OPT_JSON: o.json = true; break;
            case OPT_IMAGE_POLICY: o.image_policy = optarg; break;
            case OPT_MUTABLE: {
                auto m = parse_mutable_mode(optarg);
                if (!m) return Error(EINVAL) << m.error().message();
                o.mutable_mode = *m;
                break;
            }
            case OPT_NO_RELOAD: o.no_reload = true; break;
            case OPT_OS_RELEASE: o.os_release = optarg; break;
            case OPT_CERTIFICATE: o.certificates.push_back(optarg); break;
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
    if (optind >= argc) return Error(EINVAL) << "no command given (see rdext --help)";
    auto cmd = parse_command(argv[optind]);
    if (!cmd) return cmd.error();
    o.command = *cmd;
    // inspect takes the image; no other command takes an argument.
    int args = o.command == Command::Inspect ? 2 : 1;
    if (o.command == Command::Inspect && argc - optind < 2) return Error(EINVAL) << "inspect: no image given";
    if (argc - optind > args) return Error(EINVAL) << "unexpected argument '" << argv[optind + args] << "'";
    if (o.command == Command::Inspect) o.image = argv[optind + 1];
    if (o.command != Command::Inspect && (o.os_release || !o.certificates.empty()))
        return Error(EINVAL) << "--os-release= and --certificate= are options of inspect only";
    if (o.root.empty()) o.root = ::access("/etc/initrd-release", F_OK) == 0 ? "/sysroot" : "/";
    return o;
}

}  // namespace rdext
