#include "cli/json_output.h"

#include <json-c/json.h>

namespace rdext {

std::string json_document(json_object* o, JsonMode mode) {
    const int layout = mode == JsonMode::Short ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY;
    return std::string(json_object_to_json_string_ext(o, layout | JSON_C_TO_STRING_NOSLASHESCAPE)) + "\n";
}

}  // namespace rdext
