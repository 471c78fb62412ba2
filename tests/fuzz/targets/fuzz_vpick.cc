// Names in versioned directories (systemd.v(7)) and image names: directory
// entries of the root, i.e. whatever an update tool or an attacker with
// write access to /var/lib/extensions created.
//
// Input: line 1 is the ".v" directory's name, every further line an entry in
// it. Each entry that parses is ranked with the others, as discovery does.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/image_class.h"
#include "fuzz_util.h"
#include "release/extension_release.h"
#include "vpick/vpick.h"

namespace {

void check_entry(const rdext::VersionedEntry& e) {
    FUZZ_CHECK(rdext::version_is_valid(e.version));
    if (e.tries) {
        FUZZ_CHECK(e.tries_pos != std::string::npos && e.tries_pos + e.tries_len <= e.file.size());
        e.name_with_tries(e.tries->left > 0 ? e.tries->left - 1 : 0, e.tries->done + 1);
    }
    e.good_name();
    rdext::printable_name(e.file);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 64 * 1024) return 0;
    std::string in(reinterpret_cast<const char*>(data), size);
    auto lines = rdext_fuzz::split_lines(in, 64);
    const std::vector<std::string>& archs = rdext::local_architectures();

    for (const auto& line : lines) {
        if (rdext::image_name_is_valid(line)) {
            FUZZ_CHECK(line.find('/') == std::string::npos);
            FUZZ_CHECK(line.size() <= 255);
        }
        rdext::image_base_name(line);
        rdext::printable_name(line);
        rdext::is_known_architecture(line);
    }

    for (rdext::ImageClass cls : rdext::all_classes()) {
        auto dir = rdext::parse_versioned_dir_name(lines[0], cls);
        if (!dir) continue;
        dir->holds_files();
        std::vector<rdext::VersionedEntry> entries;
        for (size_t i = 1; i < lines.size(); i++) {
            auto e = rdext::parse_versioned_entry(lines[i], *dir, archs);
            if (!e) continue;
            check_entry(*e);
            entries.push_back(std::move(*e));
        }
        rdext::rank_entries(entries);
        for (size_t i = 0; i + 1 < entries.size(); i++) {
            FUZZ_CHECK(rdext::compare_entries(entries[i], entries[i + 1]) <= 0);
            rdext::why_ranked_before(entries[i], entries[i + 1]);
        }
        rdext::duplicate_versions(entries);
        std::string pin = entries.empty() ? std::string("1") : entries.back().version;
        rdext::select_entry(entries, pin, [&](size_t index) -> rdext::Result<void> {
            FUZZ_CHECK(index < entries.size());
            if (index % 2 == 0) return rdext::Error(EINVAL) << "unusable";
            return {};
        });
    }
    return 0;
}
