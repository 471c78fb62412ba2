#!/usr/bin/env bash
# Makes a signed extension DDI the way Flatcar's OS extensions and systemd's
# own tooling are made today: `systemd-repart --make-ddi=sysext` (v255+;
# systemd 257 from a Debian trixie chroot under $RDEXT_CACHE_DIR/builders,
# since the host's 252 has no --make-ddi). The result is a GPT with an erofs
# root partition, its dm-verity hash partition and a verity-sig partition
# signed with KEY/CERT.
#
#   scripts/builders-ddi.sh sysext|confext SRC-DIR OUT.raw KEY CERT
#
# SRC-DIR is the extension's tree (with its extension-release file). Prints
# the root hash on stdout.
set -euo pipefail
source "$(dirname "$0")/builders-env.sh"

[[ $(id -u) == 0 ]] || bdie "must run as root (debootstrap, chroot)"
(( $# == 5 )) || bdie "usage: $0 sysext|confext SRC-DIR OUT.raw KEY CERT"
class=$1 src=$(realpath "$2") out=$(realpath -m "$3") key=$(realpath "$4") cert=$(realpath "$5")
case $class in sysext | confext) ;; *) bdie "class must be sysext or confext" ;; esac
tree=$(builders_tree trixie)

# The chroot sees the source tree and the cache at their own paths; the
# inputs and the output go through a scratch directory in the cache.
scratch=$(mktemp -d "$BUILDERS_CACHE/ddi.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -a "$src" "$scratch/src"
cp "$key" "$scratch/key.pem"
cp "$cert" "$scratch/cert.pem"
builders_chroot "$tree" systemd-repart --make-ddi="$class" --copy-source="$scratch/src" \
    --private-key="$scratch/key.pem" --certificate="$scratch/cert.pem" --json=short \
    "$scratch/out.raw" >"$scratch/repart.json" 2>"$scratch/repart.log" ||
    { cat "$scratch/repart.log" >&2; bdie "systemd-repart --make-ddi=$class failed"; }
mv "$scratch/out.raw" "$out"
python3 - "$scratch/repart.json" <<'EOF'
import json, sys
parts = json.load(open(sys.argv[1]))
hashes = {p.get("roothash") for p in parts if p.get("roothash")}
assert len(hashes) == 1, parts
print(hashes.pop())
EOF
