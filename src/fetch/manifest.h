// A source's manifest and what to take from it. SHA256SUMS lists every
// file with its SHA-256, as sha256sum(1) writes it and systemd-sysupdate
// reads it ("<64 hex>  NAME" or "<64 hex> *NAME"). Retractions are rdext's
// own addition, in a file sysupdate never reads (doc/rdext.8, FETCHING):
// SHA256SUMS.retracted lists names of the same source, one a line (a
// sha256sum-style line is taken too, its name counts), '#' comments; every
// version a listed name carries through the source's pattern is retracted.
//
// Covered by tests/unit/fetch_manifest_test.cc.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "fetch/pattern.h"
#include "fetch/transfer.h"

namespace rdext {

inline constexpr const char* kManifestName = "SHA256SUMS";
inline constexpr const char* kRetractedName = "SHA256SUMS.retracted";
// Manifests are small; the cap keeps a hostile source from making us
// allocate without bound.
inline constexpr size_t kMaxManifestSize = 4 << 20;

// name -> lowercase hex SHA-256. EBADMSG naming the line on a malformed
// line, a name with '/', or a name listed twice.
Result<std::map<std::string, std::string>> parse_manifest(const std::string& text);

// The retracted names. EBADMSG naming the line on a name with '/'.
Result<std::set<std::string>> parse_retracted(const std::string& text);

// One file of the source that matches the transfer's source pattern.
struct Offer {
    std::string name;
    std::string sha256;
    std::string version;
    std::string verdict;  // "candidate", "retracted", "too old", "foreign architecture"
};

// Every matching file of the manifest, newest version first; only those
// whose verdict is "candidate" may be fetched. Names carrying a known
// architecture other than this machine's (as "_ARCH"/"-ARCH" after the
// version, or as the whole @v) are foreign.
std::vector<Offer> rank_offers(const Transfer& t, const std::map<std::string, std::string>& manifest,
                               const std::set<std::string>& retracted);

// The versions the retracted names carry through the source patterns.
std::set<std::string> retracted_versions(const Transfer& t, const std::set<std::string>& retracted);

// An instance of the transfer's target (a file in its directory).
struct Installed {
    std::string name;
    std::string version;
    bool in_use = false;     // merged now: never removed
    bool protected_ = false; // ProtectVersion=
    bool current = false;    // what CurrentSymlink= points to (or will)
};

// Which installed instances to remove so at most InstancesMax stay: the
// oldest first, never one in use, protected or current. Returns indexes
// into `installed`.
std::vector<size_t> instances_to_remove(const std::vector<Installed>& installed, uint64_t instances_max);

}  // namespace rdext
