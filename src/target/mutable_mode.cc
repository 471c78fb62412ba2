#include "target/mutable_mode.h"

#include <string>

namespace rdext {

Result<MutableMode> parse_mutable_mode(std::string_view t) {
    if (t == "no" || t == "0" || t == "false" || t == "off") return MutableMode::No;
    if (t == "yes" || t == "1" || t == "true" || t == "on") return MutableMode::Yes;
    if (t == "auto") return MutableMode::Auto;
    if (t == "import") return MutableMode::Import;
    if (t == "ephemeral") return MutableMode::Ephemeral;
    if (t == "ephemeral-import") return MutableMode::EphemeralImport;
    return Error(EINVAL) << "unknown mutable mode '" << std::string(t)
                         << "' (no, auto, yes, import, ephemeral, ephemeral-import)";
}

const char* mutable_mode_list() { return "no\nyes\nauto\nimport\nephemeral\nephemeral-import\n"; }

const char* mutable_mode_name(MutableMode m) {
    switch (m) {
        case MutableMode::No: return "no";
        case MutableMode::Auto: return "auto";
        case MutableMode::Yes: return "yes";
        case MutableMode::Import: return "import";
        case MutableMode::Ephemeral: return "ephemeral";
        case MutableMode::EphemeralImport: return "ephemeral-import";
    }
    return "no";
}

}  // namespace rdext
