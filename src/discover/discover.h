// Discovery: which extension images a root offers, by the rules of
// systemd-sysext (search directories in precedence order, the first holding
// a name owns it, masking, image kinds). Nothing is mounted here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/image_class.h"
#include "base/result.h"

namespace rdext {

enum class ImageKind { Directory, Raw, Block };
const char* kind_name(ImageKind k);

enum class EntryState {
    Available,  // an image to consider
    Masked,     // empty directory or link to /dev/null: owns the name, merges nothing
    Shadowed,   // a search directory earlier in the order holds this name
    Broken,     // could not be resolved (dangling link, loop): skipped
};
const char* entry_state_name(EntryState s);

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
};

// All entries of the class's search directories, sorted by name (version
// aware, the top layer last), shadowed and masked ones included so callers
// can report them. A missing search directory is not an error.
Result<std::vector<Candidate>> discover(int root_fd, ImageClass cls);

}  // namespace rdext
