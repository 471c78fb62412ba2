// UTF-8 validation with systemd's rules (utf8_is_valid()), shared by the
// release-file parser and the image-name check so both refuse exactly what
// systemd refuses.
#pragma once

#include <string>
#include <string_view>

namespace rdext {

// False for malformed or truncated sequences, overlong forms, surrogates,
// code points past U+10FFFF and the non-characters U+FDD0..U+FDEF and
// U+xFFFE/U+xFFFF. NUL bytes are the caller's business.
bool utf8_is_valid(std::string_view s);

// Text from the root (names, paths, reasons) made fit for a terminal or a
// line-based reader, as systemd's cescape(): \\, \n, \t and the other C
// escapes, \xNN for the remaining control characters (C0, DEL, and C1 as
// its two UTF-8 bytes) and for every byte that is not part of valid UTF-8.
// Valid UTF-8 otherwise stays as it is.
std::string cescape(std::string_view s);

// For a JSON string, which must be valid UTF-8 (json-c escapes control
// characters itself, but copies other bytes as they are): `s` itself when
// it is valid UTF-8, else cescape(s).
std::string json_text(std::string_view s);

}  // namespace rdext
