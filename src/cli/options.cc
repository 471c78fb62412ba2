#include "cli/options.h"

#include <getopt.h>

#include <unistd.h>

#include <cstring>

namespace rdext {
namespace {

enum { OPT_ROOT = 0x100, OPT_CMDLINE_FILE, OPT_LOG_LEVEL, OPT_JSON, OPT_VERSION, OPT_IMAGE_POLICY };

Result<Command> parse_command(const std::string& s) {
    static const struct {
        const char* name;
        Command cmd;
    } commands[] = {
        {"merge", Command::Merge},   {"unmerge", Command::Unmerge}, {"refresh", Command::Refresh},
        {"status", Command::Status}, {"list", Command::List},       {"mark-good", Command::MarkGood},
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
           "\n"
           "Options:\n"
           "  --root=DIR           Root to extend (default: /sysroot in an initrd, else /)\n"
           "  --cmdline-file=FILE  Read the kernel command line from FILE, not /proc/cmdline\n"
           "  --log-level=LEVEL    err, warning, notice, info or debug (default: info)\n"
           "  --json               Print status and list as JSON\n"
           "  --image-policy=POLICY  Image policy (systemd.image-policy(7) syntax) for\n"
           "                       every image; overrides rd.sysext.image_policy=\n"
           "  -h, --help           Show this help\n"
           "  --version            Show the version\n"
           "\n"
           "Kernel command line: rd.sysext=0|1, rd.confext=0|1, rd.sysext.exclude=NAME[,NAME...],\n"
           "rd.confext.exclude=NAME[,NAME...], rd.sysext.require=NAME[,NAME...],\n"
           "rd.confext.require=NAME[,NAME...], rd.sysext.pin=NAME=VERSION,\n"
           "rd.confext.pin=NAME=VERSION, rd.sysext.image_policy=POLICY,\n"
           "rd.confext.image_policy=POLICY, systemd.sysext=0, rd.systemd.sysext=0,\n"
           "systemd.confext=0, rd.systemd.confext=0, rd.rdext.log_level=LEVEL.\n"
           "\n"
           "Exit status: 0 success (skipped extensions are reported, not failures),\n"
           "1 the operation failed, 2 usage error.\n";
}

Result<Options> parse_options(int argc, char** argv) {
    static const struct option longopts[] = {
        {"root", required_argument, nullptr, OPT_ROOT},
        {"cmdline-file", required_argument, nullptr, OPT_CMDLINE_FILE},
        {"log-level", required_argument, nullptr, OPT_LOG_LEVEL},
        {"json", no_argument, nullptr, OPT_JSON},
        {"image-policy", required_argument, nullptr, OPT_IMAGE_POLICY},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, OPT_VERSION},
        {nullptr, 0, nullptr, 0},
    };
    Options o;
    bool help = false, version = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, nullptr)) != -1) {
        switch (c) {
            case OPT_ROOT: o.root = optarg; break;
            case OPT_CMDLINE_FILE: o.cmdline_file = optarg; break;
            case OPT_LOG_LEVEL: o.log_level = optarg; break;
            case OPT_JSON: o.json = true; break;
            case OPT_IMAGE_POLICY: o.image_policy = optarg; break;
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
    if (argc - optind > 1) return Error(EINVAL) << "unexpected argument '" << argv[optind + 1] << "'";
    auto cmd = parse_command(argv[optind]);
    if (!cmd) return cmd.error();
    o.command = *cmd;
    if (o.root.empty()) o.root = ::access("/etc/initrd-release", F_OK) == 0 ? "/sysroot" : "/";
    return o;
}

}  // namespace rdext
