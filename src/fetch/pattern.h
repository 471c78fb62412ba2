// systemd-sysupdate's MatchPattern= language (sysupdate.d(5)): literal text
// with "@" fields, e.g. "kubernetes-@v-%a.raw" once the specifiers are
// expanded. A pattern both matches names (the source's manifest, the
// target's directory) and formats the name a download is written under.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace rdext {

// What a name says through the pattern's fields.
struct PatternFields {
    std::string version;                  // @v
    std::optional<std::string> uuid;      // @u, canonical lowercase form
    std::optional<uint64_t> flags;        // @f (hex)
    std::optional<uint64_t> mtime;        // @t (µs since the epoch)
    std::optional<mode_t> mode;           // @m (octal, at most 0775)
    std::optional<uint64_t> size;         // @s
    std::optional<uint64_t> tries_done;   // @d
    std::optional<uint64_t> tries_left;   // @l
    std::optional<bool> no_auto;          // @a
    std::optional<bool> read_only;        // @r
    std::optional<bool> growfs;           // @g
    std::optional<std::string> sha256;    // @h, 64 lowercase hex digits
};

// systemd's parse_boolean(): 1/yes/y/true/t/on, 0/no/n/false/f/off.
std::optional<bool> parse_boolean(std::string s);

class Pattern {
public:
    // EINVAL with the reason, as sysupdate refuses it: an unknown "@x",
    // a field twice, two fields without literal text between them, no @v,
    // a trailing '@', a character sysupdate reserves ($*?[]!\|) or a
    // control character. A '/' (a source in subdirectories) is not
    // supported: a manifest names files.
    static Result<Pattern> parse(const std::string& text);

    // Whether `name` matches, and its fields when it does.
    bool match(const std::string& name, PatternFields* out = nullptr) const;

    // The name for `fields`; ENXIO when the pattern has a field they lack.
    Result<std::string> format(const PatternFields& fields) const;

    const std::string& text() const { return text_; }

private:
    struct Element {
        char field = 0;  // 0: literal
        std::string literal;
    };
    std::string text_;
    std::vector<Element> elements_;
};

}  // namespace rdext
