// Versioned directories (systemd.v(7)): NAME.raw.v/ holds one image file per
// version, NAME_VERSION[_ARCH][+LEFT[-DONE]].raw, and NAME.v/ one directory
// per version, NAME_VERSION[_ARCH][+LEFT[-DONE]]. This file reads those
// names and ranks the entries as systemd's vpick does, so both tools prefer
// the same entry; select_entry() then walks the ranking with an "is this one
// usable" callback, which is how rdext falls back to an older entry when the
// newest does not fit the booted OS (systemd takes the first and stops).
// Nothing here touches the file system.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"

namespace rdext {

// What the name of a ".v" directory says about its entries.
struct VersionedDirName {
    std::string name;    // the image's name: "foo" for foo.raw.v, foo.sysext.raw.v and foo.v
    std::string suffix;  // what every entry ends in: ".raw", ".sysext.raw", "" (directories)
    // Entries are image files (or block devices) when the suffix ends in
    // ".raw", directory trees otherwise.
    bool holds_files() const;
};

// Parses "NAME[.sysext|.confext][.raw].v" as systemd's image discovery does
// (only the class's own infix is taken off). EINVAL when the name does not
// end in ".v" or what is left is not a valid image name.
Result<VersionedDirName> parse_versioned_dir_name(const std::string& dir_entry, ImageClass cls);

struct TriesCounter {
    unsigned left = 0;
    unsigned done = 0;
};

// One entry of a versioned directory, read from its name.
struct VersionedEntry {
    std::string file;          // the entry's name in the directory
    std::string version;       // "12", "1.2.3"
    std::string architecture;  // systemd spelling; "" when the name carries none
    size_t arch_rank = 0;      // index in the accepted architectures; their count when none
    std::optional<TriesCounter> tries;  // "+LEFT[-DONE]": a trial entry
    std::string note;          // something odd about the name worth telling, or ""

    // The entry's name with the counter replaced, and without it (the name
    // of an entry marked good). The rest of the name is kept byte for byte.
    std::string name_with_tries(unsigned left, unsigned done) const;
    std::string good_name() const;

    // Where "+LEFT[-DONE]" sits in `file` (npos without a counter).
    size_t tries_pos = std::string::npos;
    size_t tries_len = 0;
};

// systemd's architecture vocabulary (ConditionArchitecture=).
bool is_known_architecture(const std::string& s);

// The architectures whose entries this machine takes, best first: the one
// rdext was built for and its secondary one (x86 on x86-64, arm on arm64),
// as systemd's vpick. Entries naming no architecture rank after them.
std::vector<std::string> local_architectures();

// A directory entry's name fit for messages and state.json: control
// characters (and every byte >= 0x80 when it is not valid UTF-8) as \xNN.
std::string printable_name(const std::string& name);

// systemd's version_is_valid(): non-empty, letters, digits and ".,_-+" only.
bool version_is_valid(const std::string& v);

// Reads one entry name of the directory `dir`, with systemd's parsing order:
// "NAME_" prefix, suffix, "+LEFT[-DONE]" after the last '+', architecture
// after the last '_', the rest is the version. EINVAL with the reason when
// the entry is not one to consider: another prefix or suffix, a foreign
// architecture, an invalid version, or a counter that starts with a digit
// but does not parse ("+3-", "+99999999999"; systemd would silently read
// it as part of the version). A word after the last '_' that is no
// architecture name is dropped, as systemd drops it; `note` says so.
Result<VersionedEntry> parse_versioned_entry(const std::string& file, const VersionedDirName& dir,
                                             const std::vector<std::string>& architectures);

// systemd's preference, <0 when `a` goes before `b`: entries with tries
// left (or no counter) before those with none; then the newer version;
// then the better architecture; then more tries left; then fewer done;
// last the name that sorts later.
int compare_entries(const VersionedEntry& a, const VersionedEntry& b);

// Sorts best first.
void rank_entries(std::vector<VersionedEntry>& entries);

// Why `better` goes before `worse`, in words ("no tries left", "older than
// ...", "same version, ...").
std::string why_ranked_before(const VersionedEntry& better, const VersionedEntry& worse);

// One message for each entry whose version another, better ranked entry
// claims too ("foo_12.raw and foo_012.raw both claim version 12; ...").
std::vector<std::string> duplicate_versions(const std::vector<VersionedEntry>& ranked);

// ---------------------------------------------------------------------------
// Selection

enum class EntryVerdict { Chosen, PassedOver };
const char* verdict_name(EntryVerdict v);  // "chosen", "passed over"

struct EntryOutcome {
    EntryVerdict verdict = EntryVerdict::PassedOver;
    bool tried = false;  // try_entry was called for it
    std::string reason;  // why it was passed over (or, when chosen, why it won)
};

struct Selection {
    std::optional<size_t> chosen;        // index into the ranking
    std::vector<EntryOutcome> outcomes;  // one per ranked entry
    std::string pin_note;                // what became of a pin that could not be honoured
    size_t not_tried = 0;                // entries left untried at the cap, none chosen
};

// How many entries of one versioned directory are tried at most. Each try
// stages an image (a bind mount, or a loop device, maybe dm-verity and a
// mount: milliseconds each), and a directory of thousands of entries that
// do not fit would hold the boot for a minute. An update tool keeps a few
// versions (systemd-sysupdate: 2 by default), and a rollback goes back one
// or two releases, so 16 tries find the fitting one in any sane directory.
inline constexpr size_t kMaxVersionedTries = 16;

// Stages and checks one entry (index into the ranking); an error is the
// reason it cannot be used.
using TryEntry = std::function<Result<void>(size_t index)>;

// Tries the ranked entries in order, stopping at the first that try_entry
// accepts, so only as many are staged as needed. With a pin, entries of
// exactly that version go first; when none exists or none is usable,
// pin_note says so and the others are tried as usual. Entries never tried
// are passed over with the reason they rank below the chosen one. After
// `max_tries` unusable entries the rest are passed over untried
// (not_tried counts them, their reason starts with "not tried").
Selection select_entry(const std::vector<VersionedEntry>& ranked, const std::string& pinned_version,
                       const TryEntry& try_entry, size_t max_tries = kMaxVersionedTries);

}  // namespace rdext
