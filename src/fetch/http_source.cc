#include "fetch/http_source.h"

#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include <memory>

#include "base/fs.h"
#include "base/log.h"
#include "version.h"

namespace rdext {
namespace {

// A connection that delivers less than a byte a second for this long is
// given up, even before the fetch's deadline.
constexpr long kStallSeconds = 30;
constexpr long kMaxRedirects = 5;

const char* const kPinnedCas[] = {"/etc/rdext/fetch-ca.pem", "/run/rdext/fetch-ca.pem", "/usr/lib/rdext/fetch-ca.pem"};
const char* const kCaBundles[] = {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                                  "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"};

class StringSink : public Sink {
public:
    Result<void> write(const char* data, size_t size) override {
        text.append(data, size);
        return {};
    }
    std::string text;
};

// One GET as it goes: where its body goes and what stopped it.
struct Get {
    CURL* curl;
    Sink& sink;
    uint64_t max;
    int too_big;  // E2BIG or EFBIG
    std::string url;
    uint64_t received = 0;
    std::string status_line;  // of the last response (redirects have their own)
    std::string location;     // where the last response redirected to
    std::optional<Error> error;
};

size_t on_header(char* data, size_t size, size_t n, void* p) {
    auto* g = static_cast<Get*>(p);
    std::string line(data, size * n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (starts_with(line, "HTTP/")) {
        g->status_line = line;
        g->location.clear();
    } else if (line.size() > 9 && strncasecmp(line.c_str(), "location:", 9) == 0) {
        g->location = line.substr(line.find_first_not_of(" \t", 9) == std::string::npos ? line.size()
                                                                                      : line.find_first_not_of(" \t", 9));
    }
    return size * n;
}

// The status says whether this is the file: anything but 200 is an error
// (404 and 410: the source does not have it).
std::optional<Error> status_error(Get& g) {
    long code = 0;
    curl_easy_getinfo(g.curl, CURLINFO_RESPONSE_CODE, &code);
    if (code == 200) return std::nullopt;
    Error e(code == 404 || code == 410 ? ENOENT : EIO);
    e << g.url << ": the server answered " << (g.status_line.empty() ? "HTTP " + std::to_string(code) : g.status_line);
    return e;
}

size_t on_body(char* data, size_t size, size_t n, void* p) {
    auto* g = static_cast<Get*>(p);
    const size_t len = size * n;
    if (g->received == 0 && (g->error = status_error(*g))) return 0;
    g->received += len;
    if (g->received > g->max) {
        g->error = Error(g->too_big) << g->url << " is larger than " << g->max << " bytes";
        return 0;
    }
    if (auto w = g->sink.write(data, len); !w) {
        g->error = w.error();
        return 0;
    }
    return len;
}

// libcurl's result as an errno and a message naming the URL, in rdext's
// words: a libcurl built without verbose strings explains nothing itself.
Error curl_error(const Get& g, CURLcode rc, const char* detail) {
    const std::string more = *detail ? std::string(" (") + detail + ")" : "";
    if (!g.location.empty() && !starts_with(g.location, "http://") && !starts_with(g.location, "https://") &&
        g.location.find("://") != std::string::npos)
        return Error(EPROTONOSUPPORT) << g.url << ": the redirect to " << g.location
                                      << " is refused: rdext follows redirects to http and https only";
    switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            return Error(ETIMEDOUT) << g.url << ": the fetch timed out, or the server stalled" << more;
        case CURLE_FILESIZE_EXCEEDED:
            return Error(g.too_big) << g.url << " is larger than " << g.max << " bytes";
        case CURLE_COULDNT_CONNECT:
            return Error(ECONNREFUSED) << g.url << ": cannot connect to the server" << more;
        case CURLE_COULDNT_RESOLVE_HOST:
            return Error(EHOSTUNREACH) << g.url << ": cannot resolve the host name" << more;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            return Error(EPROTONOSUPPORT) << g.url << ": refused: rdext fetches and follows redirects over http and "
                                             "https only, and from https to https only" << more;
        case CURLE_TOO_MANY_REDIRECTS:
            return Error(ELOOP) << g.url << ": more than " << kMaxRedirects << " redirects";
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
            return Error(EIO) << g.url << ": the connection ended before the whole file arrived (" << g.received
                              << " bytes)" << more;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
            return Error(EPROTO) << g.url << ": TLS: the server's certificate is not trusted, or the handshake failed"
                                 << more;
        default:
            return Error(EIO) << g.url << ": libcurl error " << static_cast<int>(rc) << more;
    }
}

class HttpSource : public Source {
public:
    HttpSource(std::string url, std::string ca_file)
        : url_(std::move(url)), ca_file_(std::move(ca_file)), https_(starts_with(url_, "https://")) {}

    std::string describe() const override { return url_; }

    Result<std::string> read_small(const std::string& name, size_t max, Deadline deadline) override {
        StringSink sink;
        RDEXT_TRY(get(name, max, E2BIG, deadline, sink));
        return std::move(sink.text);
    }

    Result<void> fetch(const std::string& name, uint64_t max, Deadline deadline, Sink& sink) override {
        return get(name, max, EFBIG, deadline, sink);
    }

private:
    Result<void> get(const std::string& name, uint64_t max, int too_big, Deadline deadline, Sink& sink) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
        if (!curl) return Error(ENOMEM) << "cannot set up libcurl";
        Get g{curl.get(), sink, max, too_big, file_url(curl.get(), name)};
        if (left.count() <= 0) return Error(ETIMEDOUT) << g.url << ": the fetch timed out";
        char detail[CURL_ERROR_SIZE] = "";
        CURL* c = curl.get();
        // Redirects keep to http(s), and an https source to https.
        const char* protocols = https_ ? "https" : "http,https";
        const std::string agent = std::string("rdext/") + RDEXT_VERSION;
        bool ok = curl_easy_setopt(c, CURLOPT_URL, g.url.c_str()) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protocols) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_MAXREDIRS, kMaxRedirects) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count())) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, kStallSeconds) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max)) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_USERAGENT, agent.c_str()) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_HEADERDATA, &g) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_WRITEDATA, &g) == CURLE_OK && set_tls(c);
        // No proxy, whatever http_proxy/https_proxy say: an initrd's
        // environment must not send the boot's downloads elsewhere. (A
        // libcurl built without proxy support refuses the option: then
        // there is no proxy to avoid.)
        const CURLcode proxy = curl_easy_setopt(c, CURLOPT_PROXY, "");
        if (!ok || (proxy != CURLE_OK && proxy != CURLE_UNKNOWN_OPTION && proxy != CURLE_NOT_BUILT_IN))
            return Error(EINVAL) << g.url << ": libcurl refuses an option rdext needs";
        log_debug() << "GET " << g.url;
        const CURLcode rc = curl_easy_perform(c);
        if (g.error) return std::move(*g.error);
        if (rc != CURLE_OK) return curl_error(g, rc, detail);
        if (g.received == 0)
            if (auto e = status_error(g)) return std::move(*e);
        return {};
    }

    // TLS always verifies the server against the CA file alone: no
    // compiled-in CA directory beside it (a pinned CA must be the only one).
    bool set_tls(CURL* c) const {
        return curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
               curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
               curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)) == CURLE_OK &&
               curl_easy_setopt(c, CURLOPT_CAINFO, ca_file_.empty() ? nullptr : ca_file_.c_str()) == CURLE_OK &&
               curl_easy_setopt(c, CURLOPT_CAPATH, nullptr) == CURLE_OK;
    }

    // The source's URL and the manifest's NAME, escaped.
    std::string file_url(CURL* c, const std::string& name) const {
        std::unique_ptr<char, decltype(&curl_free)> escaped(
            curl_easy_escape(c, name.c_str(), static_cast<int>(name.size())), curl_free);
        return url_ + (ends_with(url_, "/") ? "" : "/") + (escaped ? escaped.get() : name);
    }

    std::string url_;
    std::string ca_file_;
    bool https_;
};

Result<std::unique_ptr<Source>> open_http_source(const std::string& url, const NetworkOptions& o) {
    std::optional<std::string> ca = o.ca_file ? o.ca_file : default_ca_file();
    if (!ca && starts_with(url, "https://"))
        return Error(ENOENT) << url << ": no CA certificates to check the server with (--ca=, "
                             << kPinnedCas[0] << ", " << kCaBundles[0] << ")";
    if (ca && ::access(ca->c_str(), R_OK) != 0) return ErrnoError() << url << ": CA file " << *ca;
    return std::unique_ptr<Source>(new HttpSource(url, ca.value_or("")));
}

}  // namespace

std::optional<std::string> default_ca_file() {
    for (const char* f : kPinnedCas)
        if (::access(f, R_OK) == 0) return std::string(f);
    for (const char* f : kCaBundles)
        if (::access(f, R_OK) == 0) return std::string(f);
    return std::nullopt;
}

void enable_http_sources() {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_warning() << "libcurl cannot be initialised: no http(s) sources";
        return;
    }
    set_network_source_factory(open_http_source);
}

}  // namespace rdext
