// How every command prints its JSON document (--json=short|pretty).
#pragma once

#include <string>

#include "cli/options.h"

struct json_object;

namespace rdext {

// The document as --json=MODE prints it: one line (short) or indented
// (pretty), ending with a newline. Takes no reference to `o`.
std::string json_document(json_object* o, JsonMode mode);

}  // namespace rdext
