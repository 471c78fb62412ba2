// UTF-8 validation with systemd's rules (utf8_is_valid()), shared by the
// release-file parser and the image-name check so both refuse exactly what
// systemd refuses.
#pragma once

#include <string_view>

namespace rdext {

// False for malformed or truncated sequences, overlong forms, surrogates,
// code points past U+10FFFF and the non-characters U+FDD0..U+FDEF and
// U+xFFFE/U+xFFFF. NUL bytes are the caller's business.
bool utf8_is_valid(std::string_view s);

}  // namespace rdext
