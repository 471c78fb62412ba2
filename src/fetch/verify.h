// OpenPGP signatures of a source's manifest (SHA256SUMS.gpg, sysupdate's
// Verify=yes), checked by gpgv(1) in a child process: an existing verifier
// made for exactly this, not code of our own. The keyring is a trust
// anchor, so it comes from the running system (the initrd when fetching
// into /sysroot) or the command line, never from the root being extended.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"

namespace rdext {

// The running system's keyrings, in order: /etc/rdext/fetch-keyring.gpg,
// /run/rdext/fetch-keyring.gpg, /usr/lib/rdext/fetch-keyring.gpg, then
// systemd-sysupdate's own /etc/systemd/import-pubring.gpg and
// /usr/lib/systemd/import-pubring.gpg. The first that exists is used.
std::optional<std::string> default_keyring();

// Checks `signature` (a detached OpenPGP signature, binary or armored)
// over `data` against the keyring file. EBADMSG with gpgv's reason when
// the signature is bad or by a key not in the keyring; ENOENT when gpgv is
// not installed.
Result<void> verify_signature(const std::string& keyring, const std::string& data, const std::string& signature,
                              const std::string& what);

}  // namespace rdext
