// User-space check of a dm-verity root hash signature: a detached PKCS#7
// over the lower-case hex root hash (no newline), exactly what
// systemd-repart and `veritysetup --root-hash-signature` sign and what the
// kernel checks. It stands in for the kernel's keyring check when that
// fails, as in systemd: PKCS7_verify with the verity.d certificates as the
// only acceptable signers (PKCS7_NOINTERN: certificates carried inside the
// signature are ignored; PKCS7_NOVERIFY: no CA chain is required, a
// certificate is trusted because it sits in verity.d).
//
// Trust anchors come only from the INITRD's verity.d directories. The API
// takes directory fds explicitly so that nothing on the sysroot can become
// one: never pass a directory of the root being extended.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

struct x509_st;  // OpenSSL's X509

namespace rdext {

// systemd's search path for verity.d, in precedence order.
inline constexpr const char* kVerityDirs[] = {"/etc/verity.d", "/run/verity.d",
                                              "/usr/local/lib/verity.d", "/usr/lib/verity.d"};

struct VerityDir {
    std::string path;  // for messages, e.g. "/etc/verity.d"
    UniqueFd fd;       // O_PATH directory
};

// Opens those of kVerityDirs that exist below `initrd_root_fd` (the initrd's
// own "/" in production, a temporary directory in tests), resolving inside
// it. Missing directories are skipped.
Result<std::vector<VerityDir>> open_verity_dirs(int initrd_root_fd);

struct TrustedCertificate {
    std::shared_ptr<x509_st> cert;
    std::string source;       // "/etc/verity.d/vendor.crt"
    std::string subject;      // RFC 2253, e.g. "CN=Vendor,O=Example"
    std::string fingerprint;  // SHA-256 of the DER, lower-case hex
};

struct TrustStore {
    std::vector<TrustedCertificate> certificates;
    // Files that were skipped (unreadable PEM, not a regular file, ...),
    // each with its reason, for the caller to log once.
    std::vector<std::string> warnings;
};

// Loads the first PEM certificate of every `*.crt` in `dirs`. As with
// systemd's configuration directories, a name in an earlier directory hides
// the same name in later ones, and an empty file or a symlink to /dev/null
// masks it. Files are opened beneath their directory, non-blocking, and must
// be regular files of at most 1 MiB.
Result<TrustStore> load_trusted_certificates(const std::vector<VerityDir>& dirs);

// Parses a PEM certificate (tests and `rdext inspect --certificate=`).
Result<TrustedCertificate> parse_pem_certificate(std::string_view pem, std::string source);

struct SignatureSigner {
    std::string subject;
    std::string fingerprint;  // SHA-256 hex
    std::string source;       // the verity.d file that vouched for it
};

// Accepts only if `der_signature` is a well-formed detached PKCS#7
// signedData over `hex_root_hash` (any case; lower-cased before checking,
// as systemd formats it) made by a certificate in `trust`. Every failure is
// an EKEYREJECTED/EBADMSG error with the reason; nothing is ever reported
// as "unsigned".
Result<SignatureSigner> verify_root_hash_signature(std::string_view hex_root_hash,
                                                   const std::vector<uint8_t>& der_signature,
                                                   const TrustStore& trust);

}  // namespace rdext
