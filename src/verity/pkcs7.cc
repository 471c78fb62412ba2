#include "verity/pkcs7.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "base/fs.h"
#include "verity/open_regular.h"
#include "verity/root_hash.h"

namespace rdext {
namespace {

constexpr size_t kCertificateMaxBytes = 1024 * 1024;

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct Pkcs7Free {
    void operator()(PKCS7* p) const { PKCS7_free(p); }
};
// Frees the stack only: the certificates belong to the TrustStore.
struct X509StackFree {
    void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// Drains OpenSSL's error queue into one line (it must not leak into the
// next, unrelated check).
std::string openssl_errors() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

std::string subject_of(X509* cert) {
    BioPtr b(BIO_new(BIO_s_mem()));
    if (!b || X509_NAME_print_ex(b.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) return "?";
    char* data = nullptr;
    long n = BIO_get_mem_data(b.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

std::string fingerprint_of(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1) return "";
    return hex_encode(md, n);
}

// A symlink to /dev/null masks a name, as in systemd's conf-files logic.
bool is_masking_symlink(int dir_fd, const std::string& name) {
    char buf[64];
    ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf, sizeof(buf));
    return n == 9 && std::string(buf, 9) == "/dev/null";
}

}  // namespace

Result<std::vector<VerityDir>> open_verity_dirs(int initrd_root_fd) {
    std::vector<VerityDir> dirs;
    for (const char* path : kVerityDirs) {
        auto fd = open_in_root(initrd_root_fd, path, O_PATH | O_DIRECTORY);
        if (!fd) {
            if (fd.error().code() == ENOENT) continue;
            return std::move(fd.error());
        }
        dirs.push_back(VerityDir{path, std::move(*fd)});
    }
    return dirs;
}

Result<TrustedCertificate> parse_pem_certificate(std::string_view pem, std::string source) {
    ERR_clear_error();
    BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!b) return Error(ENOMEM) << "BIO_new_mem_buf";
    X509* raw = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr);
    if (!raw) return Error(EBADMSG) << "not a PEM certificate: " << openssl_errors();
    TrustedCertificate c;
    c.cert.reset(raw, X509_free);
    c.source = std::move(source);
    c.subject = subject_of(raw);
    c.fingerprint = fingerprint_of(raw);
    return c;
}

Result<TrustStore> load_trusted_certificates(const std::vector<VerityDir>& dirs) {
    TrustStore store;
    std::set<std::string> seen;  // names claimed by an earlier directory
    std::vector<std::pair<std::string, std::string>> files;  // name, full path
    for (const auto& dir : dirs) {
        auto names = list_directory(dir.fd.get());
        if (!names) return std::move(names.error().prefix(dir.path + ": "));
        for (const auto& name : *names) {
            if (name.empty() || name[0] == '.' || !ends_with(name, ".crt")) continue;
            if (!seen.insert(name).second) continue;
            std::string path = dir.path + "/" + name;
            struct stat st;
            if (::fstatat(dir.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
                store.warnings.push_back(path + ": " + std::strerror(errno));
                continue;
            }
            if (S_ISLNK(st.st_mode) && is_masking_symlink(dir.fd.get(), name)) continue;
            auto fd = open_regular_beneath(dir.fd.get(), name);
            if (!fd) {
                store.warnings.push_back(path + ": " + fd.error().what());
                continue;
            }
            auto pem = read_regular_file(fd->get(), kCertificateMaxBytes);
            if (!pem) {
                store.warnings.push_back(path + ": " + pem.error().what());
                continue;
            }
            if (pem->empty()) continue;  // an empty file masks the name
            auto cert = parse_pem_certificate(*pem, path);
            if (!cert) {
                store.warnings.push_back(path + ": " + cert.error().what());
                continue;
            }
            store.certificates.push_back(std::move(*cert));
        }
    }
    // Name order across directories, as systemd enumerates them.
    std::stable_sort(store.certificates.begin(), store.certificates.end(),
                     [](const TrustedCertificate& a, const TrustedCertificate& b) {
                         auto base = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
                         return base(a.source) < base(b.source);
                     });
    return store;
}

Result<SignatureSigner> verify_root_hash_signature(std::string_view hex_root_hash,
                                                   const std::vector<uint8_t>& der_signature,
                                                   const TrustStore& trust) {
    // The signed content is the hex text exactly as systemd formats it.
    std::string content(hex_root_hash);
    std::transform(content.begin(), content.end(), content.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!parse_root_hash(content) || content.find_first_of(" \t\r\n") != std::string::npos)
        return Error(EINVAL) << "invalid root hash '" << hex_root_hash << "'";
    if (der_signature.empty()) return Error(EBADMSG) << "empty signature";
    if (trust.certificates.empty())
        return Error(EKEYREJECTED) << "no trusted certificates in verity.d to check the signature against";

    ERR_clear_error();
    const unsigned char* p = der_signature.data();
    std::unique_ptr<PKCS7, Pkcs7Free> p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der_signature.size())));
    if (!p7) {
        openssl_errors();
        return Error(EBADMSG) << "signature is not a DER PKCS#7 structure";
    }
    if (p != der_signature.data() + der_signature.size())
        return Error(EBADMSG) << "trailing data after the PKCS#7 structure";
    if (!PKCS7_type_is_signed(p7.get())) return Error(EBADMSG) << "PKCS#7 structure is not signedData";
    if (!PKCS7_get_detached(p7.get()))
        return Error(EBADMSG) << "PKCS#7 signature carries its content; expected a detached signature";

    std::unique_ptr<STACK_OF(X509), X509StackFree> certs(sk_X509_new_null());
    if (!certs) return Error(ENOMEM) << "sk_X509_new_null";
    for (const auto& c : trust.certificates)
        if (!sk_X509_push(certs.get(), c.cert.get())) return Error(ENOMEM) << "sk_X509_push";

    BioPtr in(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
    if (!in) return Error(ENOMEM) << "BIO_new_mem_buf";
    if (PKCS7_verify(p7.get(), certs.get(), nullptr, in.get(), nullptr, PKCS7_NOINTERN | PKCS7_NOVERIFY) != 1) {
        unsigned long e = ERR_peek_last_error();  // PKCS7_verify's own verdict
        std::string detail = openssl_errors();
        if (ERR_GET_LIB(e) == ERR_LIB_PKCS7 && ERR_GET_REASON(e) == PKCS7_R_SIGNER_CERTIFICATE_NOT_FOUND)
            return Error(EKEYREJECTED) << "signed by a certificate that is not in verity.d";
        if (ERR_GET_LIB(e) == ERR_LIB_PKCS7 &&
            (ERR_GET_REASON(e) == PKCS7_R_DIGEST_FAILURE || ERR_GET_REASON(e) == PKCS7_R_SIGNATURE_FAILURE))
            // Without signed attributes the signature covers the content
            // digest directly, so a different root hash and a corrupted
            // signature look the same.
            return Error(EKEYREJECTED) << "signature does not match root hash " << content
                                       << " (signed a different hash, or corrupted)";
        return Error(EKEYREJECTED) << "signature check failed: " << detail;
    }

    // PKCS7_verify succeeded, so every signer is one of ours; report the first.
    STACK_OF(X509)* signers = PKCS7_get0_signers(p7.get(), certs.get(), PKCS7_NOINTERN);
    std::unique_ptr<STACK_OF(X509), X509StackFree> signers_guard(signers);
    ERR_clear_error();
    if (!signers || sk_X509_num(signers) < 1) return Error(EKEYREJECTED) << "signature names no signer";
    X509* signer = sk_X509_value(signers, 0);
    for (const auto& c : trust.certificates)
        if (c.cert.get() == signer) return SignatureSigner{c.subject, c.fingerprint, c.source};
    return Error(EKEYREJECTED) << "signer is not a verity.d certificate";
}

}  // namespace rdext
