// `rdext inspect IMAGE`: what merge would make of one image, on the machine
// that builds or ships it, without merging anything. It reads the image the
// way merge does (probe, sidecars, verity-sig partition, release file),
// checks protection without device-mapper (protection.h), and evaluates the
// same image policy and OS compatibility rules, reporting every finding
// rather than stopping at the first. The image is judged under the name a
// merge gives it (an entry of NAME.raw.v/ is NAME), and a versioned
// directory's entries are tried as the merge tries them (vpick/vpick.h),
// so inspect's verdict is the merge's. `rdext list` judges every image of
// a root the same way (inspect_candidate()).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"
#include "discover/discover.h"
#include "image/probe.h"
#include "inspect/protection.h"
#include "policy/policy_file.h"
#include "release/compat.h"
#include "release/os_release.h"
#include "state/state_file.h"
#include "target/target.h"
#include "verity/pkcs7.h"

namespace rdext {

struct InspectRequest {
    std::string image;                       // a .raw file, directory, block device or versioned directory
    std::optional<std::string> os_release;   // the OS to check against; default: the root's
    std::vector<std::string> certificates;   // PEM files; default: the running system's verity.d
};

// One class the image declares itself as (it has that class's release file).
struct ClassFindings {
    ImageClass cls = ImageClass::Sysext;
    ReleaseFields release;
    std::string compat_error;   // empty: fits the OS
    std::string policy;         // the policy that applies, canonical form
    std::string policy_source;  // where it came from
    std::string policy_error;   // empty: the policy accepts what the image offers
    bool accepted() const { return compat_error.empty() && policy_error.empty(); }
};

struct InspectReport {
    std::string path;           // as given; for a versioned directory the entry a merge picks
    std::string name;           // the image name merge would use
    std::string kind;           // "directory", "raw", "block" (discover.h)
    std::string layout;         // "directory", "file system", "GPT disk image"
    std::string fstype;         // of the root (or usr) file system; empty for a directory
    std::optional<ImageLayout> partitions;  // raw images that could be probed
    std::vector<Protection> protection;
    std::vector<OfferedPartition> offered;  // what the policy saw
    std::string trust_source;               // where the certificates came from
    std::vector<std::string> trust_warnings;
    std::string os_release_source;
    std::vector<ClassFindings> classes;     // empty: no release file found
    // Why the image would not be merged, whatever the class: unreadable,
    // unusable sidecars, a hash tree that does not match, no release file...
    std::string image_error;
    // A versioned directory or one of its entries (systemd.v(7)): the
    // directory, the version picked (or of the entry), and every entry's
    // verdict as the merge's record has it (versioned_record.h).
    std::string versioned_dir;
    std::string version;
    std::vector<VersionCandidate> candidates;
    std::vector<std::string> notes;

    bool accepted() const;
    // The first reason for a refusal, starting with the image's name.
    std::string reason() const;
};

// What judging needs once for any number of images: the trust anchors,
// the OS to fit, the merge's settings (policy, pins, block devices).
struct InspectContext {
    TrustStore trust;
    std::string trust_source;               // where the certificates came from
    std::vector<std::string> trust_warnings;
    CompatContext compat;
    std::string os_release_source;
    const Settings* settings = nullptr;     // not owned
    // `rdext inspect IMAGE`: every class the image declares is judged (the
    // image is not in a search directory that would say which); `list`
    // judges the class whose search directory holds it, as the merge does.
    bool any_class = false;
    UniqueFd host_root;  // "/": an image given by its path is found in it
};

// Errors are about the request: the os-release file or a certificate file
// cannot be used.
Result<InspectContext> inspect_context(const InspectRequest& req, const Target& target, const Settings& settings);

// One image discovery found (not a versioned directory), judged for its
// class only, as the merge judges it: placement (block devices), policy,
// protection, release file, OS compatibility.
InspectReport inspect_candidate(const InspectContext& ctx, const Candidate& c);

// A versioned directory's entries tried best first, a pinned version first,
// as the merge tries them (select_entry()); the report is the chosen entry's
// (or says why none fits), `rec` gets the merge's record of the selection.
InspectReport inspect_versioned(const InspectContext& ctx, const Candidate& c, ExtensionRecord& rec);

// Errors are about the request (the image or the os-release file cannot be
// opened, a certificate file is unusable); everything about the image's
// contents is a finding in the report.
Result<InspectReport> inspect_image(const InspectRequest& req, const Target& target, const Settings& settings);

}  // namespace rdext
