#include "cmdline/cmdline.h"

#include <fcntl.h>

#include <algorithm>
#include <cstdio>

#include "base/fs.h"
#include "base/log.h"
#include "target/mutable_mode.h"
#include "vpick/vpick.h"

namespace rdext {
namespace {

// The kernel's own limit is a few KiB; anything far beyond that is not a
// command line.
constexpr size_t kMaxCmdlineSize = 64 * 1024;

// One word, split at the first '='.
struct Word {
    std::string text;                  // as it appeared, quotes removed
    std::string key;
    std::optional<std::string> value;  // absent: no '=' at all
};

using Handler = void (*)(CmdlineSettings&, const Word&);

bool is_separator(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0'; }

// Words end up in log messages: keep control characters out of them.
std::string printable(std::string_view s) {
    std::string out;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out;
}

void warn(CmdlineSettings& s, const Word& w, const std::string& why) {
    s.warnings.push_back(printable(w.text) + ": " + why + ", ignored");
}

// Handlers are instantiated per class: `C` is the class the key names.
template <ImageClass C, bool ClassSettings::*Field>
void set_bool(CmdlineSettings& s, const Word& w) {
    if (!w.value) {
        s.of(C).*Field = true;
        return;
    }
    std::optional<bool> b = parse_boolean(*w.value);
    if (!b) return warn(s, w, "not a boolean");
    s.of(C).*Field = *b;
}

// An image name as it may appear in a search directory: one path component.
bool valid_image_name(const std::string& n) {
    if (n.empty() || n == "." || n == "..") return false;
    return std::none_of(n.begin(), n.end(), [](unsigned char c) {
        return c == '/' || c < 0x20 || c == 0x7f;
    });
}

// rd.sysext=, systemd.sysext=...: the last word wins, and status names it.
template <ImageClass C>
void set_enabled(CmdlineSettings& s, const Word& w) {
    const size_t warnings = s.warnings.size();
    set_bool<C, &ClassSettings::enabled>(s, w);
    if (s.warnings.size() == warnings) s.of(C).disabled_by = s.of(C).enabled ? "" : printable(w.text);
}

template <ImageClass C, std::set<std::string> ClassSettings::*Field>
void add_names(CmdlineSettings& s, const Word& w) {
    if (!w.value || w.value->empty()) return warn(s, w, "expects a list of image names");
    for (const std::string& name : split(*w.value, ',')) {
        if (valid_image_name(name))
            (s.of(C).*Field).insert(name);
        else
            warn(s, w, "invalid image name \"" + printable(name) + "\"");
    }
}

template <ImageClass C>
void add_pin(CmdlineSettings& s, const Word& w) {
    size_t eq = w.value ? w.value->find('=') : std::string::npos;
    if (eq == std::string::npos) return warn(s, w, "expects NAME=VERSION");
    std::string name = w.value->substr(0, eq), version = w.value->substr(eq + 1);
    if (!valid_image_name(name)) return warn(s, w, "invalid image name \"" + printable(name) + "\"");
    if (!version_is_valid(version))
        return warn(s, w, "invalid version \"" + printable(version) + "\" (letters, digits and . , _ - + only)");
    s.of(C).pin[name] = version;
}

// An image policy is a trust decision: a key without '=' is not dropped
// (that would leave the permissive default) but kept as written, which is
// no valid policy, so the merge refuses every image of its class.
template <ImageClass C>
void set_policy(CmdlineSettings& s, const Word& w) {
    s.of(C).image_policy = w.value ? *w.value : w.text;
}

template <ImageClass C>
void set_mutable(CmdlineSettings& s, const Word& w) {
    auto mode = w.value ? parse_mutable_mode(*w.value) : Result<MutableMode>(Error(EINVAL));
    if (!mode) return warn(s, w, "expects a mutable mode (no, auto, yes, import, ephemeral, ephemeral-import)");
    s.of(C).mutable_mode = *mode;
}

void set_log_level(CmdlineSettings& s, const Word& w) {
    LogLevel level;
    if (!w.value || !parse_log_level(*w.value, &level))
        return warn(s, w, "expects a log level (err, warning, notice, info, debug)");
    s.log_level = *w.value;
}

constexpr ImageClass Sysext = ImageClass::Sysext;
constexpr ImageClass Confext = ImageClass::Confext;

// Adding a key is one line here.
const struct {
    const char* key;
    Handler handler;
} kOptions[] = {
    {"rd.sysext", set_enabled<Sysext>},
    {"rd.systemd.sysext", set_enabled<Sysext>},
    {"systemd.sysext", set_enabled<Sysext>},
    {"rd.confext", set_enabled<Confext>},
    {"rd.systemd.confext", set_enabled<Confext>},
    {"systemd.confext", set_enabled<Confext>},
    {"rd.sysext.exclude", add_names<Sysext, &ClassSettings::exclude>},
    {"rd.confext.exclude", add_names<Confext, &ClassSettings::exclude>},
    {"rd.sysext.require", add_names<Sysext, &ClassSettings::require>},
    {"rd.confext.require", add_names<Confext, &ClassSettings::require>},
    {"rd.sysext.pin", add_pin<Sysext>},
    {"rd.confext.pin", add_pin<Confext>},
    {"rd.rdext.log_level", set_log_level},
    {"rd.sysext.image_policy", set_policy<Sysext>},
    {"rd.confext.image_policy", set_policy<Confext>},
    {"rd.sysext.mutable", set_mutable<Sysext>},
    {"rd.confext.mutable", set_mutable<Confext>},
    {"rd.sysext.block_devices", set_bool<Sysext, &ClassSettings::block_devices>},
    {"rd.confext.block_devices", set_bool<Confext, &ClassSettings::block_devices>},
};

// Namespaces rdext owns: an unknown key in them is probably a typo.
const char* const kOwnedPrefixes[] = {"rd.sysext.", "rd.confext.", "rd.rdext."};

bool same_char(char a, char b) {
    return a == b || ((a == '-' || a == '_') && (b == '-' || b == '_'));
}

// Like systemd's proc_cmdline_key_streq(): '-' and '_' are interchangeable.
bool key_equal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), same_char);
}

bool key_has_prefix(std::string_view key, std::string_view prefix) {
    return key.size() >= prefix.size() && key_equal(key.substr(0, prefix.size()), prefix);
}

Word make_word(std::string text) {
    Word w;
    size_t eq = text.find('=');
    w.key = text.substr(0, eq);
    if (eq != std::string::npos) w.value = text.substr(eq + 1);
    w.text = std::move(text);
    return w;
}

}  // namespace

std::vector<std::string> split_cmdline(std::string_view text) {
    std::vector<std::string> words;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && is_separator(text[i])) i++;
        if (i == text.size()) break;
        std::string word;
        char quote = 0;
        for (; i < text.size(); i++) {
            char c = text[i];
            if (quote) {
                if (c == quote)
                    quote = 0;
                else
                    word += c;
            } else if (c == '"' || c == '\'') {
                quote = c;
            } else if (is_separator(c)) {
                break;
            } else {
                word += c;
            }
        }
        // A word made only of quotes ("") is empty; systemd returns it too,
        // it just matches no key.
        words.push_back(std::move(word));
    }
    return words;
}

std::optional<bool> parse_boolean(std::string_view s) {
    static const char* const yes[] = {"1", "yes", "y", "true", "t", "on"};
    static const char* const no[] = {"0", "no", "n", "false", "f", "off"};
    auto is = [&](const char* word) {
        std::string_view w(word);
        return s.size() == w.size() &&
               std::equal(s.begin(), s.end(), w.begin(), [](char a, char b) {
                   return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
               });
    };
    if (std::any_of(std::begin(yes), std::end(yes), is)) return true;
    if (std::any_of(std::begin(no), std::end(no), is)) return false;
    return std::nullopt;
}

CmdlineSettings parse_cmdline(std::string_view text) {
    CmdlineSettings s;
    for (std::string& text_word : split_cmdline(text)) {
        Word w = make_word(std::move(text_word));
        if (w.key.empty()) continue;
        auto opt = std::find_if(std::begin(kOptions), std::end(kOptions),
                                [&](const auto& o) { return key_equal(w.key, o.key); });
        if (opt != std::end(kOptions)) {
            opt->handler(s, w);
            continue;
        }
        for (const char* prefix : kOwnedPrefixes) {
            if (key_has_prefix(w.key, prefix)) {
                s.warnings.push_back("unknown option " + printable(w.text) + ", ignored");
                break;
            }
        }
    }
    return s;
}

Result<CmdlineSettings> read_cmdline(const std::string& path) {
    // O_NONBLOCK: a FIFO given as the file must not hang us (it is then
    // refused as not a regular file).
    auto fd = open_path(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!fd) return fd.error().prefix("cannot read the kernel command line: ");
    auto text = read_regular_file(fd->get(), kMaxCmdlineSize);
    if (!text)
        return text.error().prefix("cannot read the kernel command line from " + path + ": ");
    return parse_cmdline(*text);
}

}  // namespace rdext
