#include "fetch/source.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>

#include "base/fs.h"

namespace rdext {
namespace {

constexpr size_t kChunk = 1 << 20;

Result<void> check_deadline(Deadline deadline, const std::string& what) {
    if (std::chrono::steady_clock::now() > deadline) return Error(ETIMEDOUT) << what << ": the fetch timed out";
    return {};
}

// A directory inside the root: Type=regular-file's Path=, or a file:// URL.
class DirectorySource : public Source {
public:
    DirectorySource(int root_fd, std::string dir, std::string shown)
        : root_fd_(root_fd), dir_(std::move(dir)), shown_(std::move(shown)) {}

    std::string describe() const override { return shown_; }

    Result<std::string> read_small(const std::string& name, size_t max, Deadline deadline) override {
        RDEXT_TRY(check_deadline(deadline, name));
        auto fd = open(name);
        if (!fd) return fd.error();
        auto text = read_regular_file(fd->get(), max);
        if (!text) return text.error().prefix(name + ": ");
        return text;
    }

    Result<void> fetch(const std::string& name, uint64_t max, Deadline deadline, Sink& sink) override {
        auto fd = open(name);
        if (!fd) return fd.error();
        auto st = stat_fd(fd->get());
        if (!st) return st.error();
        if (static_cast<uint64_t>(st->st_size) > max)
            return Error(EFBIG) << name << " is larger than " << max << " bytes";
        std::string buf(kChunk, '\0');
        uint64_t total = 0;
        for (;;) {
            RDEXT_TRY(check_deadline(deadline, name));
            ssize_t n = ::read(fd->get(), buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return ErrnoError() << "read " << name;
            if (n == 0) return {};
            total += static_cast<uint64_t>(n);
            if (total > max) return Error(EFBIG) << name << " grew beyond " << max << " bytes";
            RDEXT_TRY(sink.write(buf.data(), static_cast<size_t>(n)));
        }
    }

private:
    // Only plain file names of the manifest get here; resolved in the root.
    Result<UniqueFd> open(const std::string& name) {
        auto fd = open_regular_in_root(root_fd_, dir_ + "/" + name);
        if (!fd) {
            Error e(fd.error().code());
            if (fd.error().code() == ENOENT) return std::move(e << shown_ << " has no " << name);
            return std::move(e << fd.error().what());
        }
        return fd;
    }

    int root_fd_;
    std::string dir_;
    std::string shown_;
};

// file:///a/b%20c/ -> /a/b c; nullopt when it is not a local file URL.
std::optional<std::string> file_url_path(const std::string& url) {
    std::string rest = url.substr(std::string("file://").size());
    if (starts_with(rest, "localhost/")) rest = rest.substr(9);
    if (!starts_with(rest, "/")) return std::nullopt;
    std::string out;
    for (size_t i = 0; i < rest.size(); i++) {
        if (rest[i] == '%' && i + 2 < rest.size() && std::isxdigit(static_cast<unsigned char>(rest[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(rest[i + 2]))) {
            out += static_cast<char>(std::stoi(rest.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += rest[i];
        }
    }
    if (out.find('\0') != std::string::npos) return std::nullopt;
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    return out;
}

NetworkSourceFactory network_factory = nullptr;

}  // namespace

void set_network_source_factory(NetworkSourceFactory f) { network_factory = f; }

bool network_sources_available() { return network_factory != nullptr; }

Result<std::unique_ptr<Source>> open_source(const Transfer& t, int root_fd, const NetworkOptions& net) {
    if (t.source_type == SourceType::RegularFile)
        return std::unique_ptr<Source>(new DirectorySource(root_fd, t.source_path, t.source_path));
    if (starts_with(t.source_path, "file://")) {
        auto path = file_url_path(t.source_path);
        if (!path) return Error(EINVAL) << t.source_path << " is not a local file URL";
        return std::unique_ptr<Source>(new DirectorySource(root_fd, *path, t.source_path));
    }
    if (starts_with(t.source_path, "http://") || starts_with(t.source_path, "https://")) {
        if (network_factory) return network_factory(t.source_path, net);
        return Error(EPROTONOSUPPORT) << t.source_path
                                      << ": this rdext fetches from files only; http and https are in rdext-fetch, "
                                         "which is not installed beside it";
    }
    return Error(EPROTONOSUPPORT) << t.source_path << ": rdext fetches from file://, http:// and https:// URLs only";
}

}  // namespace rdext
