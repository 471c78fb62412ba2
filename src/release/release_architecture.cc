#include "release/release_architecture.h"

#include <endian.h>
#include <sys/utsname.h>

#include <cstring>

namespace rdext {
namespace {

struct MachineName {
    const char* uname_machine;
    const char* systemd_name;
};

// uname machine strings systemd recognises for the architecture family we
// were built for (a kernel only ever reports one of its own family).
constexpr MachineName kMachines[] = {
#if defined(__aarch64__) || defined(__arm__)
    {"aarch64", "arm64"},   {"aarch64_be", "arm64-be"}, {"armv8l", "arm"},     {"armv8b", "arm-be"},
    {"armv7ml", "arm"},     {"armv7mb", "arm-be"},      {"armv7l", "arm"},     {"armv7b", "arm-be"},
    {"armv6l", "arm"},      {"armv6b", "arm-be"},       {"armv5tl", "arm"},    {"armv5tel", "arm"},
    {"armv5tejl", "arm"},   {"armv5tejb", "arm-be"},    {"armv5teb", "arm-be"}, {"armv5tb", "arm-be"},
    {"armv4tl", "arm"},     {"armv4tb", "arm-be"},      {"armv4l", "arm"},     {"armv4b", "arm-be"},
#elif defined(__alpha__)
    {"alpha", "alpha"},
#elif defined(__arc__)
    {"arc", "arc"}, {"arceb", "arc-be"},
#elif defined(__i386__) || defined(__x86_64__)
    {"x86_64", "x86-64"}, {"i686", "x86"}, {"i586", "x86"}, {"i486", "x86"}, {"i386", "x86"},
#elif defined(__ia64__)
    {"ia64", "ia64"},
#elif defined(__hppa__) || defined(__hppa64__)
    {"parisc64", "parisc64"}, {"parisc", "parisc"},
#elif defined(__loongarch_lp64)
    {"loongarch64", "loongarch64"},
#elif defined(__m68k__)
    {"m68k", "m68k"},
#elif defined(__mips__) || defined(__mips64__)
    {"mips64", "mips64"}, {"mips", "mips"},
#elif defined(__powerpc__) || defined(__powerpc64__)
    {"ppc64le", "ppc64-le"}, {"ppc64", "ppc64"}, {"ppcle", "ppc-le"}, {"ppc", "ppc"},
#elif defined(__riscv)
    {"riscv64", "riscv64"}, {"riscv32", "riscv32"},
#if __SIZEOF_POINTER__ == 8
    {"riscv", "riscv64"},
#else
    {"riscv", "riscv32"},
#endif
#elif defined(__s390__) || defined(__s390x__)
    {"s390x", "s390x"}, {"s390", "s390"},
#elif defined(__sh__) || defined(__sh64__)
    {"sh5", "sh64"}, {"sh4a", "sh"}, {"sh4", "sh"}, {"sh3", "sh"}, {"sh2a", "sh"}, {"sh2", "sh"},
#elif defined(__sparc__)
    {"sparc64", "sparc64"}, {"sparc", "sparc"},
#endif
    {nullptr, nullptr},
};

}  // namespace

std::string native_architecture() {
#if defined(__x86_64__)
    return "x86-64";
#elif defined(__i386__)
    return "x86";
#elif defined(__powerpc64__)
    return __BYTE_ORDER == __BIG_ENDIAN ? "ppc64" : "ppc64-le";
#elif defined(__powerpc__)
    return __BYTE_ORDER == __BIG_ENDIAN ? "ppc" : "ppc-le";
#elif defined(__ia64__)
    return "ia64";
#elif defined(__hppa64__)
    return "parisc64";
#elif defined(__hppa__)
    return "parisc";
#elif defined(__s390x__)
    return "s390x";
#elif defined(__s390__)
    return "s390";
#elif defined(__sparc__) && defined(__arch64__)
    return "sparc64";
#elif defined(__sparc__)
    return "sparc";
#elif defined(__mips64)
    return __BYTE_ORDER == __BIG_ENDIAN ? "mips64" : "mips64-le";
#elif defined(__mips__)
    return __BYTE_ORDER == __BIG_ENDIAN ? "mips" : "mips-le";
#elif defined(__alpha__)
    return "alpha";
#elif defined(__aarch64__)
    return __BYTE_ORDER == __BIG_ENDIAN ? "arm64-be" : "arm64";
#elif defined(__arm__)
    return __BYTE_ORDER == __BIG_ENDIAN ? "arm-be" : "arm";
#elif defined(__sh64__)
    return "sh64";
#elif defined(__sh__)
    return "sh";
#elif defined(__loongarch_lp64)
    return "loongarch64";
#elif defined(__m68k__)
    return "m68k";
#elif defined(__tilegx__)
    return "tilegx";
#elif defined(__cris__)
    return "cris";
#elif defined(__nios2__)
    return "nios2";
#elif defined(__riscv)
    return __SIZEOF_POINTER__ == 4 ? "riscv32" : "riscv64";
#elif defined(__arc__)
    return __BYTE_ORDER == __BIG_ENDIAN ? "arc-be" : "arc";
#else
#error "unknown architecture: add systemd's name for it here"
#endif
}

std::string uname_architecture() {
    struct utsname u;
    if (::uname(&u) == 0) {
        for (const MachineName* m = kMachines; m->uname_machine; m++)
            if (std::strcmp(m->uname_machine, u.machine) == 0) return m->systemd_name;
    }
    return native_architecture();
}

}  // namespace rdext
