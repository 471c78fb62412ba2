#!/usr/bin/env bash
# The built-in demo, from a fresh Debian 12 machine: installs what is
# missing, builds rdext, generates a demo root with extensions of several
# kinds, merges them in a private mount namespace, shows the result and
# unmerges. Run as root. Nothing outside the namespace is changed; the demo
# directory is removed at the end (DEMO_KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo needs no image builders (mkosi, newer systemd-repart): skip their chroots.
RDEXT_SETUP_BUILDERS=0 ./scripts/setup-debian.sh >/dev/null
./scripts/build.sh >/dev/null
RDEXT=$PWD/${RDEXT_BUILD_DIR:-build}/src/rdext

if [ "${1:-}" != --inside ]; then
    export DEMO_DIR; DEMO_DIR=$(mktemp -d /var/tmp/rdext-demo.XXXXXX)
    trap '[ "${DEMO_KEEP:-0}" = 1 ] || rm -rf "$DEMO_DIR"' EXIT
    # A private mount namespace: the merge is seen here and nowhere else.
    unshare -m --propagation private "$0" --inside
    exit
fi

TEST_DIR=$DEMO_DIR
fail() { echo "demo: $*" >&2; exit 1; }
# shellcheck source=../tests/integration/images.sh
source tests/integration/images.sh

root=$DEMO_DIR/root
trees=$DEMO_DIR/trees
make_root "$root" ID=debian VERSION_ID=12
echo "demo: root at $root (ID=debian VERSION_ID=12)"

make_ext_tree "$trees/hello" hello sysext -- usr/bin/hello='echo hello from a directory sysext'
cp -a "$trees/hello" "$root/etc/extensions/hello"

make_ext_tree "$trees/tools" tools sysext ID=_any -- usr/bin/tool='erofs image' opt/tools/README='opt from erofs'
make_erofs "$trees/tools" "$root/var/lib/extensions/tools.raw"

make_ext_tree "$trees/extras" extras sysext -- usr/share/extras/info='squashfs image'
make_squashfs "$trees/extras" "$root/var/lib/extensions/extras.raw"

make_ext_tree "$trees/lib" lib sysext -- usr/lib/demo/lib.txt='ext4 image'
make_ext4 "$trees/lib" "$root/var/lib/extensions/lib.raw"

make_ext_tree "$trees/ddi" ddi sysext -- usr/share/ddi/info='GPT disk image, usr partition'
make_gpt "$trees/ddi" "$root/var/lib/extensions/ddi.raw" usr erofs

make_ext_tree "$trees/motd" motd confext -- etc/motd.d/demo='from a confext'
make_erofs "$trees/motd" "$root/var/lib/confexts/motd.raw"

make_ext_tree "$trees/old" old sysext ID=debian VERSION_ID=11 -- usr/bin/old='for Debian 11'
cp -a "$trees/old" "$root/etc/extensions/old"
head -c 65536 /dev/urandom >"$root/var/lib/extensions/broken.raw"

echo
echo "\$ rdext --root=$root list"
"$RDEXT" --root="$root" list
echo
echo "\$ rdext --root=$root merge"
"$RDEXT" --root="$root" merge
echo
echo "\$ rdext --root=$root status"
"$RDEXT" --root="$root" status
echo
for f in usr/bin/hello usr/bin/tool opt/tools/README usr/share/extras/info usr/lib/demo/lib.txt \
         usr/share/ddi/info etc/motd.d/demo usr/bin/base-tool; do
    printf '%-24s %s\n' "/$f:" "$(cat "$root/$f")"
done
echo
echo "\$ rdext --root=$root unmerge"
"$RDEXT" --root="$root" unmerge
[ ! -e "$root/usr/bin/hello" ] && echo "demo: unmerged, /usr is the root's own again"
