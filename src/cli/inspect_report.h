// Output of `rdext inspect`: a block of "key: value" lines for people, or
// one JSON object (--json) for CI and image builders.
#pragma once

#include <string>

#include "cli/options.h"
#include "inspect/inspect.h"

namespace rdext {

std::string render_inspect(const InspectReport& report, JsonMode json);

}  // namespace rdext
