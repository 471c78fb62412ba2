// Discovery: which extension images a root offers, by the rules of
// systemd-sysext (search directories in precedence order, the first holding
// a name owns it, masking, image kinds). Nothing is mounted here.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/image_class.h"
#include "base/result.h"
#include "vpick/vpick.h"

namespace rdext {

enum class ImageKind { Directory, Raw, Block };
const char* kind_name(ImageKind k);

enum class EntryState {
    Available,  // an image to consider
    Masked,     // empty directory or link to /dev/null: owns the name, merges nothing
    Shadowed,   // a search directory earlier in the order holds this name
    Broken,     // could not be resolved (dangling link, loop), or another name
                // for an image found before (same inode): skipped
};
const char* entry_state_name(EntryState s);

// One usable entry of a versioned directory (NAME.raw.v/, NAME.v/).
struct VersionedImage {
    VersionedEntry entry;   // what its name says (version, architecture, boot counter)
    std::string path;       // inside the root
    ImageKind kind = ImageKind::Raw;
    std::string identity;   // "dev:ino" of the directory entry: a rename only ever touches this one
    std::shared_ptr<UniqueFd> fd;  // O_PATH fd of what the entry resolves to inside the root
};

// An entry of a versioned directory that is not considered, and why.
struct IgnoredEntry {
    std::string path;
    std::string reason;
};

// How many entries of a versioned directory are read. Each is resolved
// and listed in the record of the merge (state.json, status); a real
// directory holds a handful, a hostile one could hold millions.
inline constexpr size_t kMaxVersionedEntries = 4096;

struct VersionedDir {
    std::string path;                    // "/var/lib/extensions/foo.raw.v"
    std::vector<VersionedImage> ranked;  // best first, systemd.v(7) order
    std::vector<IgnoredEntry> ignored;
    std::vector<std::string> notes;      // odd names, two entries claiming one version
    bool truncated = false;              // more than kMaxVersionedEntries: the rest were not read
};

// A search directory as discovery read it. Raw images found in it
// directly (not through a symlink) take their sidecars from this listing
// instead of trying each possible name.
struct DirListing {
    UniqueFd fd;                  // the directory, O_RDONLY
    std::set<std::string> names;  // its entries when it was listed
};

struct Candidate {
    std::string name;        // image name: file name minus ".raw" and ".sysext"/".confext"
    ImageClass cls = ImageClass::Sysext;
    ImageKind kind = ImageKind::Directory;
    EntryState state = EntryState::Available;
    std::string path;        // where it was found, inside the root ("/etc/extensions/a.raw")
    std::string reason;      // for Masked/Shadowed/Broken: why
    // O_PATH fd of what the entry resolves to inside the root. Later stages
    // mount exactly this inode, never the path again (no swap in between).
    std::shared_ptr<UniqueFd> fd;
    // Set for a versioned directory: path, kind and fd above are then its
    // best ranked entry's, until the merge picks the entry that fits.
    std::optional<VersionedDir> versioned;
    // The search directory holding the image file itself; null when the
    // entry is a symlink or a versioned directory's entry.
    std::shared_ptr<const DirListing> siblings;
    // The root it was found in (not owned: the target's, alive for the
    // whole merge), to find what lies beside the file it resolves to.
    int root_fd = -1;
};

// The image name of a raw image file: without ".raw" and an optional
// ".sysext"/".confext" infix, as systemd-sysext reports "foo.sysext.raw"
// ("foo"); a name without ".raw" is used whole.
std::string raw_image_name(const std::string& file);

// Names `rdext fetch` writes a download (or a new CurrentSymlink=) under
// until it is complete and checked: ".#NAME.XXXXXX.rdext-partial". Discovery
// passes them over in search directories and versioned directories alike,
// so a merge never takes a half-written image.
inline constexpr const char* kPartialSuffix = ".rdext-partial";
bool is_partial_download(const std::string& entry);

// "MAJOR:MINOR:INODE" of a stat result: which inode a name referred to.
std::string entry_identity(const struct stat& st);

// Which image an fd of a candidate is: "DEV:INO" of the file or directory,
// the device number of a block device; empty when it cannot be stat'ed.
std::string image_identity(int fd);

// The candidate as if discovery had found entry `index` of its versioned
// directory instead of the best ranked one.
Candidate versioned_entry_candidate(const Candidate& c, size_t index);

// The versioned directory at `path` inside the root (its last component
// "NAME[.CLASS][.raw].v"), read as discovery reads one in a search
// directory: its entries ranked, the candidate the best ranked one (Broken,
// with the reason, when none is usable). For `rdext inspect DIR.v`.
Candidate discover_versioned(int root_fd, const std::string& path, ImageClass cls);

// All entries of the class's search directories, sorted by name (version
// aware, the top layer last), shadowed and masked ones included so callers
// can report them. A missing search directory is not an error. An entry
// that resolves to an image an earlier one does (search directories in
// precedence order, names in order within one; two links, a link and the
// file) is skipped: overlayfs refuses one directory twice in a stack.
// A versioned directory's entry is only chosen at merge time (merge.cc).
Result<std::vector<Candidate>> discover(int root_fd, ImageClass cls);

}  // namespace rdext
