// A scratch directory tree for release-file tests: created with mkdtemp,
// removed with everything in it when the test ends.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "base/fd.h"

namespace rdext::testing {

class TempTree {
public:
    TempTree() {
        char templ[] = "/tmp/rdext-release-test-XXXXXX";
        if (::mkdtemp(templ)) path_ = templ;
    }
    ~TempTree() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    TempTree(const TempTree&) = delete;
    TempTree& operator=(const TempTree&) = delete;

    bool ok() const { return !path_.empty(); }
    std::string path(const std::string& rel = "") const { return rel.empty() ? path_ : path_ + "/" + rel; }

    // Writes `content` to rel, creating parent directories.
    void write(const std::string& rel, const std::string& content) const {
        std::filesystem::create_directories(std::filesystem::path(path(rel)).parent_path());
        std::ofstream(path(rel), std::ios::binary) << content;
    }
    void mkdir(const std::string& rel) const { std::filesystem::create_directories(path(rel)); }
    void symlink(const std::string& target, const std::string& rel) const {
        std::filesystem::create_directories(std::filesystem::path(path(rel)).parent_path());
        std::filesystem::create_symlink(target, path(rel));
    }
    // An O_PATH directory fd of rel, like the ones rdext passes around.
    UniqueFd open(const std::string& rel = "") const {
        return UniqueFd(::open(path(rel).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    }

private:
    std::string path_;
};

}  // namespace rdext::testing
