// Where an image policy comes from. Trust anchors live in the initrd (or
// the running system) and on the kernel command line; the root being
// extended is untrusted, so its own policy file may only tighten.
//
// Covered by tests/integration/policy.sh.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "policy/policy.h"
#include "policy/policy_file.h"
#include "target/ext_conf.h"
#include "target/target.h"

namespace rdext {

struct PolicySources {
    std::optional<std::string> cli;              // --image-policy=, both classes
    std::optional<std::string> sysext_cmdline;   // rd.sysext.image_policy=
    std::optional<std::string> confext_cmdline;  // rd.confext.image_policy=
    const ConfSources* conf = nullptr;           // sysext.conf / confext.conf ImagePolicy=
};

// --image-policy='s value; the error says which option it is.
Result<ImagePolicy> parse_option_policy(const std::string& text);

// The running system's /etc/rdext/policy.conf (trusted; an invalid one is an
// error), the policies given on the command line (an invalid one refuses
// every image of its class: failing closed), and the root's
// /etc/rdext/policy.conf when the root is not the running system (one that
// is there but unusable, e.g. invalid or a FIFO, refuses every image with a
// warning: it could only have tightened, ignoring it would loosen). The
// same for ImagePolicy= of sysext.conf / confext.conf: the running
// system's as a trusted policy (an invalid one refuses every image of its
// class), the root's tightening only (unusable: every image refused).
Result<PolicyConfig> load_policy_config(const Target& target, const PolicySources& sources);

// The policy for one image and the check of what the image offers.
// Returns the refusal reason, naming the policy's source.
Result<void> check_image_policy(const PolicyConfig& config, ImageClass cls, const std::string& name,
                                const std::vector<OfferedPartition>& offered);

}  // namespace rdext
