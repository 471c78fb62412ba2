// Image policies in systemd's syntax (systemd.image-policy(7)) and the
// verdict they reach for what an image actually offers.
//
//   POLICY := "*" | "-" | "~" | "" | RULE { ":" RULE }
//   RULE   := [DESIGNATOR] "=" [FLAG { "+" FLAG }]
//
// "*" allows everything (=open), "-" and "" use nothing (=ignore, i.e.
// unused+absent: an image is refused, see evaluate_image), "~" wants
// every partition absent (=absent). A rule with an empty designator sets the
// default for partitions without a rule of their own (otherwise "ignore").
// A rule whose flags name no protection/use flag (e.g. "root=" or
// "root=read-only-on") means "open" for that part, exactly like systemd; the
// same holds for the read-only and growfs pairs. Parsing is strict (like
// systemd's --image-policy=): unknown designators or flags, a designator
// listed twice, two default rules, empty rules and empty flags are errors
// naming the offending token.
//
// Pure library: nothing here touches the file system.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/image_class.h"
#include "base/result.h"

namespace rdext {

// Partition designators in systemd's order (the canonical string lists
// rules in this order).
enum class Designator : uint8_t {
    Root,
    Usr,
    Home,
    Srv,
    Esp,
    Xbootldr,
    Swap,
    RootVerity,
    UsrVerity,
    RootVeritySig,
    UsrVeritySig,
    Tmp,
    Var,
};
inline constexpr size_t kDesignatorCount = 13;

const char* designator_name(Designator d);
std::optional<Designator> designator_from_name(std::string_view name);
const std::array<Designator, kDesignatorCount>& all_designators();

using PolicyFlags = uint32_t;

namespace policy_flag {
// How a partition may be used (the "use" part).
inline constexpr PolicyFlags Verity = 1u << 0;
inline constexpr PolicyFlags Signed = 1u << 1;
inline constexpr PolicyFlags Encrypted = 1u << 2;
inline constexpr PolicyFlags Unprotected = 1u << 3;
inline constexpr PolicyFlags Unused = 1u << 4;
inline constexpr PolicyFlags Absent = 1u << 5;
inline constexpr PolicyFlags Open = Verity | Signed | Encrypted | Unprotected | Unused | Absent;
inline constexpr PolicyFlags Ignore = Unused | Absent;
inline constexpr PolicyFlags UseMask = Open;
// GPT partition flags.
inline constexpr PolicyFlags ReadOnlyOn = 1u << 6;
inline constexpr PolicyFlags ReadOnlyOff = 1u << 7;
inline constexpr PolicyFlags ReadOnlyMask = ReadOnlyOn | ReadOnlyOff;
inline constexpr PolicyFlags GrowfsOn = 1u << 8;
inline constexpr PolicyFlags GrowfsOff = 1u << 9;
inline constexpr PolicyFlags GrowfsMask = GrowfsOn | GrowfsOff;
// File system types (newer systemd); none listed means any.
inline constexpr PolicyFlags Btrfs = 1u << 10;
inline constexpr PolicyFlags Erofs = 1u << 11;
inline constexpr PolicyFlags Ext4 = 1u << 12;
inline constexpr PolicyFlags F2fs = 1u << 13;
inline constexpr PolicyFlags Squashfs = 1u << 14;
inline constexpr PolicyFlags Vfat = 1u << 15;
inline constexpr PolicyFlags Xfs = 1u << 16;
inline constexpr PolicyFlags FstypeMask = Btrfs | Erofs | Ext4 | F2fs | Squashfs | Vfat | Xfs;
}  // namespace policy_flag

// "verity+signed" etc.; "" and "-" are 0 (which means "open" once extended).
Result<PolicyFlags> parse_policy_flags(std::string_view text);
// simplify: "open"/"ignore" shortcuts and don't-care read-only/growfs pairs
// left out (systemd's simplified form); 0 prints as "-".
std::string format_policy_flags(PolicyFlags flags, bool simplify = true);
// Fills unspecified parts with "anything" (no use flag = open, no
// read-only flag = both, no growfs flag = both).
PolicyFlags extend_policy_flags(PolicyFlags flags);

class ImagePolicy {
public:
    // The "-" policy: every partition ignored.
    ImagePolicy() = default;
    static ImagePolicy allow_all();   // "*"
    static ImagePolicy ignore_all();  // "-"
    static ImagePolicy deny_all();    // "~"

    // The rule as written for d (not normalized), if there is one.
    std::optional<PolicyFlags> rule(Designator d) const { return rules_[static_cast<size_t>(d)]; }
    void set_rule(Designator d, PolicyFlags flags) { rules_[static_cast<size_t>(d)] = flags; }
    PolicyFlags default_flags() const { return default_; }
    void set_default_flags(PolicyFlags flags) { default_ = flags; }

    // What the policy means for d, normalized like systemd's
    // image_policy_get_exhaustively(): unspecified parts extended; verity
    // and signature partitions without a rule derive theirs from the data
    // partition; designators without verity cannot be verity/signed.
    PolicyFlags effective(Designator d) const;

    // Same outcome for every designator (not necessarily the same text).
    bool equivalent(const ImagePolicy& other) const;

    // Canonical (systemd's simplified) form, e.g. "*", "-", "~",
    // "root=verity+signed:=absent". Parses back to an equivalent policy.
    std::string to_string() const;

private:
    std::array<std::optional<PolicyFlags>, kDesignatorCount> rules_{};
    PolicyFlags default_ = policy_flag::Ignore;
};

Result<ImagePolicy> parse_image_policy(std::string_view text);

// systemd's defaults for systemd-sysext / systemd-confext.
ImagePolicy default_image_policy(ImageClass c);

// What the image actually offers for one designator, as established by the
// verity/signature stage.
enum class ImageState {
    Absent,           // no such partition
    Unprotected,      // plain data, no verity, no LUKS
    Verity,           // verity hash tree, no signature
    Signed,           // verity hash tree and a signature that verified
    SignatureFailed,  // a signature was present and did NOT verify
    Encrypted,        // LUKS
};
const char* image_state_name(ImageState s);

// How the partition is to be used, or Refused.
enum class PartitionUse { Refused, Absent, Unused, Unprotected, Verity, Signed, Encrypted };
const char* partition_use_name(PartitionUse u);

struct PolicyVerdict {
    PartitionUse use = PartitionUse::Refused;
    std::string reason;  // for a refusal: designator, offered state, allowed flags
    bool accepted() const { return use != PartitionUse::Refused; }
};

// The verdict for one designator. The strongest use the policy allows is
// chosen: a signed image may be used as signed, else verity, else
// unprotected (systemd: a signed image also qualifies for verity and
// unprotected); a verity image as verity, else unprotected. A partition
// that is present but allowed no use is "unused" if the policy permits that.
// SignatureFailed is always refused: a failed signature is never a
// downgrade to verity or unprotected, whatever alternatives the policy
// lists. fstype (blkid's name, e.g. "erofs") is checked only when both the
// policy lists file system types and fstype is non-empty. The GPT
// read-only/growfs flags are not checked here (callers do not report them
// yet). For a raw file system image the caller reports it as Root (plus
// RootVerity as Unprotected when it has a verity sidecar), as systemd does.
PolicyVerdict evaluate_partition(const ImagePolicy& policy, Designator d, ImageState state,
                                 std::string_view fstype = {});

struct OfferedPartition {
    Designator designator;
    ImageState state;
    std::string fstype;
};

// Every designator is checked; those not offered are Absent. The result is
// the first refusal (in designator order) or an accepted verdict whose use
// is that of the first offered partition (Absent when none is offered).
// A root or usr partition the image has but the policy allows no use
// ("unused", e.g. under "-" or "root=unused+absent") refuses the image:
// systemd would ignore that partition, and an extension without its root
// or usr cannot be used for anything.
PolicyVerdict evaluate_image(const ImagePolicy& policy, const std::vector<OfferedPartition>& offered);

// Intersection: only what both policies allow (systemd's
// image_policy_intersect, on the extended flags of each part: use flags,
// read-only pair, growfs pair; file system types when both list some).
// Where a part of the intersection would be empty (the two policies have no
// allowed state in common), the trusted side's part is kept and a warning
// names the designator; `warnings` also names every flag the untrusted
// side allowed that the trusted side does not (a loosening attempt).
// `context` prefixes each warning (e.g. "sysroot policy.conf:3 (oem-*)").
ImagePolicy intersect_policies(const ImagePolicy& trusted, const ImagePolicy& untrusted,
                               const std::string& context, std::vector<std::string>* warnings);

}  // namespace rdext
