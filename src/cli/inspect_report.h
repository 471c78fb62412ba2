// Output of `rdext inspect`: a block of "key: value" lines for people, or
// one JSON object (--json) for CI and image builders.
#pragma once

#include <string>

#include "inspect/inspect.h"

namespace rdext {

std::string render_inspect(const InspectReport& report, bool json);

}  // namespace rdext
