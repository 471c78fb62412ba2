// Architecture names in systemd's spelling ("x86-64", "arm64", "ppc64-le"),
// the vocabulary of ARCHITECTURE= in release files and of the _ARCH part of
// versioned image names.
#pragma once

#include <string>

namespace rdext {

// The architecture rdext was built for, from compiler macros (systemd's
// native_architecture()).
std::string native_architecture();

// The architecture the kernel reports for this process (uname(2), so it
// follows personality(2)), mapped like systemd's uname_architecture(). That
// is what systemd-sysext compares ARCHITECTURE= with: a 32-bit x86 build on
// a 64-bit kernel says "x86-64". Falls back to native_architecture() for a
// machine name systemd would not know.
std::string uname_architecture();

}  // namespace rdext
