#include "fetch/verify.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "base/fs.h"
#include "base/log.h"

extern char** environ;

namespace rdext {
namespace {

const char* const kKeyrings[] = {
    "/etc/rdext/fetch-keyring.gpg", "/run/rdext/fetch-keyring.gpg", "/usr/lib/rdext/fetch-keyring.gpg",
    "/etc/systemd/import-pubring.gpg", "/usr/lib/systemd/import-pubring.gpg",
};

// gpgv reads its inputs from paths: memfds, inherited as fds 3 and 4.
Result<UniqueFd> memfd_with(const std::string& name, const std::string& content) {
    UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC));
    if (fd.get() < 0) return ErrnoError() << "memfd_create";
    size_t off = 0;
    while (off < content.size()) {
        ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError() << "write " << name;
        off += static_cast<size_t>(n);
    }
    return fd;
}

// gpgv's verdict is its last line ("BAD signature from ...", "Can't check
// signature: No public key").
std::string tail(const std::string& text) {
    auto lines = split(text, '\n');
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    std::string last = lines.empty() ? "no output" : lines.back();
    return starts_with(last, "gpgv: ") ? last.substr(6) : last;
}

}  // namespace

std::optional<std::string> default_keyring() {
    for (const char* k : kKeyrings)
        if (::access(k, R_OK) == 0) return std::string(k);
    return std::nullopt;
}

Result<void> verify_signature(const std::string& keyring, const std::string& data, const std::string& signature,
                              const std::string& what) {
    auto sig = memfd_with("signature", signature);
    if (!sig) return sig.error();
    auto dat = memfd_with("data", data);
    if (!dat) return dat.error();
    auto out = memfd_with("gpgv-output", "");
    if (!out) return out.error();
    // An empty home of its own: nothing of root's ~/.gnupg (its default
    // trustedkeys) is consulted, only the keyring named.
    char home[] = "/tmp/rdext-gpgv.XXXXXX";
    if (!::mkdtemp(home)) return ErrnoError() << "mkdtemp";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sig->get(), 3);
    posix_spawn_file_actions_adddup2(&fa, dat->get(), 4);
    posix_spawn_file_actions_adddup2(&fa, out->get(), 1);
    posix_spawn_file_actions_adddup2(&fa, out->get(), 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> args{"gpgv", "--homedir", home, "--keyring", keyring, "/proc/self/fd/3", "/proc/self/fd/4"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string path_env = "PATH=/usr/bin:/bin:/usr/sbin:/sbin", lang = "LC_ALL=C";
    char* envp[] = {path_env.data(), lang.data(), nullptr};
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, "gpgv", &fa, nullptr, argv.data(), envp);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (rc == 0)
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    ::rmdir(home);
    if (rc != 0) return Error(rc == ENOENT ? ENOENT : rc) << what << ": cannot run gpgv: " << std::strerror(rc);
    std::string text;
    if (::lseek(out->get(), 0, SEEK_SET) == 0) {
        char buf[4096];
        ssize_t n = ::read(out->get(), buf, sizeof buf);
        if (n > 0) text.assign(buf, static_cast<size_t>(n));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        log_debug() << what << ": " << tail(text);
        return {};
    }
    return Error(EBADMSG) << what << ": the signature does not verify with " << keyring << " (gpgv: " << tail(text) << ")";
}

}  // namespace rdext
