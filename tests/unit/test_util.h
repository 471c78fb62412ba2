// Helpers for unit tests that need a small directory tree on disk.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "base/fd.h"

namespace rdext::test {

// A temporary directory removed (recursively) when the test ends.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/rdext-unit.XXXXXX";
        path_ = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

    // Writes a file (creating parent directories).
    void write(const std::string& rel, const std::string& content) const {
        auto p = std::filesystem::path(path_) / rel;
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p) << content;
    }
    void mkdir(const std::string& rel) const { std::filesystem::create_directories(std::filesystem::path(path_) / rel); }
    void symlink(const std::string& target, const std::string& rel) const {
        auto p = std::filesystem::path(path_) / rel;
        std::filesystem::create_directories(p.parent_path());
        std::filesystem::create_symlink(target, p);
    }
    UniqueFd open_root() const { return UniqueFd(::open(path_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)); }

private:
    std::string path_;
};

}  // namespace rdext::test
