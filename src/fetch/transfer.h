// systemd-sysupdate's transfer definitions (sysupdate.d(5)) as rdext reads
// them from the root: sysupdate.d/ and every sysupdate.COMPONENT.d/ in
// /etc, /run, /usr/local/lib and /usr/lib (the first directory holding a
// name owns it; a link to /dev/null or an empty file masks it), *.transfer
// (or, when a directory set has none, *.conf as sysupdate before v257),
// their NAME.d/*.conf drop-ins, and *.feature files. Everything comes from
// the root, resolved inside it, and is untrusted: a file rdext acts on may
// only use what rdext implements; anything else is refused with the file
// and line, never ignored.
//
// Covered by tests/unit/fetch_transfer_test.cc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"
#include "fetch/pattern.h"
#include "release/os_release.h"

namespace rdext {

// The directory and the last component of an absolute path in the root.
std::string dirname_of(const std::string& p);
std::string basename_of(const std::string& p);

// One "Key=Value" of a definition file, and where it was written.
struct IniEntry {
    std::string section;
    std::string key;
    std::string value;
    std::string file;  // inside the root
    unsigned line = 0;
    std::string where() const { return file + ":" + std::to_string(line); }
};

// systemd's unit-file syntax: [Section], Key=Value, '#' and ';' comments,
// blank lines. A line of another form, or a key before any section, is an
// error naming the file and line.
Result<std::vector<IniEntry>> parse_ini(const std::string& text, const std::string& file);

// The values sysupdate's specifiers (%a, %A, %b, %B, %H, %l, %m, %M, %o,
// %v, %w, %W, %T, %V, %%) expand to. The os-release ones come from the
// root's os-release; machine id from the root's /etc/machine-id; the rest
// from the running kernel.
struct SpecifierValues {
    std::string architecture;  // %a, systemd's spelling ("x86-64")
    ReleaseFields os_release;  // %A IMAGE_VERSION %B BUILD_ID %M IMAGE_ID %o ID %w VERSION_ID %W VARIANT_ID
    std::string machine_id;    // %m ("" when the root has none: an error where used)
    std::string boot_id;       // %b
    std::string hostname;      // %H (%l: up to the first '.')
    std::string kernel;        // %v
};

SpecifierValues specifier_values(int root_fd);

// EINVAL on an unknown specifier, a trailing '%', or %m without a machine
// id (as systemd fails them).
Result<std::string> expand_specifiers(const std::string& text, const SpecifierValues& values);

enum class SourceType { UrlFile, RegularFile };
enum class TargetType { RegularFile, Directory };

// One transfer, as sysupdate would read it, plus what rdext derives: which
// extension the target holds.
struct Transfer {
    std::string id;    // the file name without .transfer/.conf
    std::string file;  // the definition, inside the root
    std::string component;  // "" for sysupdate.d, else COMPONENT
    bool enabled = true;    // by its Features=/RequisiteFeatures=
    std::string disabled_by;  // why not

    SourceType source_type = SourceType::UrlFile;
    std::string source_path;  // a URL (url-file) or a directory inside the root (regular-file)
    std::vector<Pattern> source_patterns;
    TargetType target_type = TargetType::RegularFile;
    std::string target_path;  // a directory inside the root
    std::vector<Pattern> target_patterns;  // default: the source's
    uint64_t instances_max = 3;            // sysupdate's default for files; at least 2
    std::string current_symlink;           // "" when none
    std::vector<std::string> protect_versions;
    std::optional<mode_t> mode;            // Mode=
    std::string min_version;
    bool verify = true;
    std::optional<uint64_t> tries_left, tries_done;  // TriesLeft=, TriesDone=: the new file's @l/@d
    std::vector<std::string> features, requisite_features;

    // What the merge will find: the image's class and name.
    ImageClass cls = ImageClass::Sysext;
    std::string image_name;
    // Where the merge finds it: the CurrentSymlink= in a search directory,
    // the target directory itself (a search directory or a NAME.v/ in one).
    enum class Placement { Symlink, SearchDir, VersionedDir } placement = Placement::Symlink;
};

struct Feature {
    std::string id;
    bool enabled = false;
};

// One definition file that is not acted on, or refused, and why.
struct TransferNote {
    std::string file;
    std::string reason;
    bool refused = false;  // an extension transfer rdext cannot carry out (an error); else not an extension's
};

struct TransferSet {
    std::vector<Transfer> transfers;  // the extension transfers, enabled or not, in name order
    std::vector<TransferNote> notes;
};

// Builds a transfer from a definition's entries (the file's, then its
// drop-ins'). Returns std::nullopt (with a note, not refused) when the
// target holds no extension images; an error (naming file and line) when
// it does but uses something rdext does not implement or gets wrong.
Result<std::optional<Transfer>> make_transfer(const std::string& id, const std::string& file,
                                              const std::vector<IniEntry>& entries, const SpecifierValues& values,
                                              const std::map<std::string, Feature>& features,
                                              TransferNote* note);

// Reads every definition of the root.
TransferSet read_transfers(int root_fd, const SpecifierValues& values);

}  // namespace rdext
