// `rdext inspect IMAGE`: what merge would make of one image, on the machine
// that builds or ships it, without merging anything. It reads the image the
// way merge does (probe, sidecars, verity-sig partition, release file),
// checks protection without device-mapper (protection.h), and evaluates the
// same image policy and OS compatibility rules, reporting every finding
// rather than stopping at the first.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"
#include "image/probe.h"
#include "inspect/protection.h"
#include "policy/policy_file.h"
#include "release/os_release.h"
#include "target/target.h"

namespace rdext {

struct InspectRequest {
    std::string image;                       // path of a .raw file, directory or block device
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
    std::string image;          // as given
    std::string name;           // the image name merge would use
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

    bool accepted() const;
    // The first reason for a refusal, starting with the image's name.
    std::string reason() const;
};

// Errors are about the request (the image or the os-release file cannot be
// opened, a certificate file is unusable); everything about the image's
// contents is a finding in the report.
Result<InspectReport> inspect_image(const InspectRequest& req, const Target& target, const PolicyConfig& policy);

}  // namespace rdext
