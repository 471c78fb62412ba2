// The metadata systemd-sysext keeps inside a merged hierarchy
// (<hierarchy>/.systemd-sysext/ or .systemd-confext/), written into the
// topmost layer. Keeping the same files lets the stock systemd-sysext
// recognise, show and undo an rdext merge, and rdext recognise one of its.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"
#include "state/state_file.h"

namespace rdext {

// How a merge was made, beyond the list of images.
struct OriginInfo {
    std::string mutable_mode = "no";
    std::string work_dir;                  // mutable merges: written to `work_dir`
    std::string inputs;                    // everything the merge was made from (merge/refresh.h)
    std::vector<std::string> hierarchies;  // every hierarchy the class's merge covers
};

// Writes <meta>/<dot_dir>/{extensions|confexts, backing, rdext} (and
// work_dir in a mutable merge) before the overlay exists. `merged` are the
// merged images in layer order (every hierarchy gets the full list, as
// systemd does).
Result<void> write_meta_layer(int meta_fd, ImageClass cls, const std::vector<ExtensionRecord>& merged,
                              dev_t backing, const OriginInfo& info = {});

// rdext's own record of a merge, the `rdext` file: how it was made and
// from what (each image's path and identity, and the fingerprint of all
// the inputs), so rdext's refresh can tell "nothing changed" without
// mounting anything. systemd reads no file there but dev, the list,
// work_dir and origin, so an extra one is left alone. (Older rdext
// wrote this into `origin`, which systemd 260 took for its own.)
std::string rdext_record_json(ImageClass cls, const std::vector<ExtensionRecord>& merged, const OriginInfo& info = {});

// Writes the `rdext` record and systemd's `origin` (merge/sysext_origin.h)
// once every hierarchy of the merge is known.
Result<void> write_meta_origin(int meta_fd, ImageClass cls, const std::vector<ExtensionRecord>& merged,
                               const OriginInfo& info, const std::string& systemd_origin);

// rdext's record of the merge on the hierarchy hier_fd refers to, from
// `rdext`, or from `origin` as older rdext wrote it; empty `inputs` when
// there is none (a merge by systemd-sysext).
Result<OriginInfo> read_origin(int hier_fd, ImageClass cls);

// Writes <meta>/<dot_dir>/dev once the overlay exists: systemd treats a
// hierarchy as merged only when this matches the mount's st_dev.
Result<void> write_meta_dev(int meta_fd, ImageClass cls, dev_t overlay_dev);

std::string format_devnum(dev_t d);

struct MergedHierarchy {
    bool merged = false;                  // a mount of ours sits on the hierarchy
    std::vector<std::string> extensions;  // as listed in the metadata
};

// Reads what is merged on the hierarchy hier_fd refers to (an O_PATH fd of
// the hierarchy as resolved inside the root). Not merged when it is not a
// mount point, not an overlay, carries no metadata, or the metadata's dev
// does not match.
Result<MergedHierarchy> read_merged(int hier_fd, ImageClass cls);

}  // namespace rdext
