#!/usr/bin/env bash
# Builds the project's mkosi configuration (mkosi.conf, mkosi.images/) with
# mkosi 24 from bookworm-backports, in a chroot under
# $RDEXT_CACHE_DIR/builders (the host keeps its systemd 252), and prints the
# output directory. Outputs are cached by their inputs.
#
#   scripts/builders-mkosi.sh extensions
#       the signed sysext and confext of mkosi.images/ only (rdext-hello-
#       sysext.raw, rdext-hello-confext.raw) and the certificate they are
#       signed with (mkosi.crt); ~30 s once the chroot exists
#   scripts/builders-mkosi.sh disk
#       the whole disk image: rdext-demo.raw, rdext-demo.vmlinuz,
#       rdext-demo.initrd (dracut, with the rdext module), the extensions
#       again, mkosi.crt; a few minutes
#
# Environment:
#   RDEXT_INITRD_BINARY  disk: the (static) rdext to put into the image
#                        (required; tests/vm passes the one its initrds use)
#   RDEXT_MKOSI_EXTRA    disk: a directory tree copied into the image as well
#                        (the VM test's checker)
#   RDEXT_CACHE_DIR      default /var/cache/rdext
set -euo pipefail
source "$(dirname "$0")/builders-env.sh"

[[ $(id -u) == 0 ]] || bdie "must run as root (debootstrap, chroot, mkosi's sandbox)"
mode=${1:-}
case $mode in extensions | disk) ;; *) bdie "usage: $0 extensions|disk" ;; esac
for tool in debootstrap unshare flock openssl; do
    command -v "$tool" >/dev/null || bdie "$tool missing (run scripts/setup-debian.sh)"
done

S=$BUILDERS_SRC_DIR
tree=$(builders_tree bookworm-backports)

# Inputs: the mkosi files, the tree and this script; for a disk also rdext
# and the extra tree.
inputs_hash() {
    {
        basename "$tree"
        local files=(mkosi.images mkosi.pkgmngr) f existing=()
        [[ $mode == extensions ]] ||
            files+=(mkosi.conf mkosi.conf.d mkosi.repart mkosi.skeleton mkosi.postinst.chroot mkosi.finalize)
        for f in "${files[@]}"; do [[ -e $S/$f ]] && existing+=("$f"); done
        (cd "$S" && find "${existing[@]}" -type f | LC_ALL=C sort | xargs sha256sum)
        sha256sum "$S/scripts/builders-mkosi.sh" "$S/scripts/builders-env.sh"
        if [[ $mode == disk ]]; then
            sha256sum "$RDEXT_INITRD_BINARY" "$S"/dracut-module/90rdext/*.sh "$S"/initrd/rdext-merge.service \
                "$S"/initrd/sysroot-dropin.conf
            [[ -z ${RDEXT_MKOSI_EXTRA:-} ]] || (cd "$RDEXT_MKOSI_EXTRA" && find . -type f | LC_ALL=C sort | xargs sha256sum)
        fi
    } | sha256sum | cut -c1-12
}

# run_mkosi DIR ARGS...: mkosi in the chroot, in DIR of the source tree.
run_mkosi() {
    local dir=$1; shift
    builders_chroot "$tree" bash -c 'cd "$1" && shift && exec mkosi "$@"' _ "$dir" "$@"
}

if [[ $mode == disk ]]; then
    [[ -n ${RDEXT_INITRD_BINARY:-} && -x ${RDEXT_INITRD_BINARY:-} ]] ||
        bdie "disk: set RDEXT_INITRD_BINARY to the static rdext to put into the image"
fi

key=$(inputs_hash)
out=$BUILDERS_CACHE/mkosi-$mode-$key
if [[ -f $out/.done ]]; then
    echo "$out"
    exit 0
fi
exec 9>"$BUILDERS_CACHE/.lock-mkosi-$mode"
flock 9
if [[ -f $out/.done ]]; then
    echo "$out"
    exit 0
fi

t=$SECONDS
rm -rf "$out"
mkdir -p "$out"
builders_keys "$out"
log=$out/mkosi.log
common=(--output-dir="$out" --verity-key="$out/mkosi.key" --verity-certificate="$out/mkosi.crt" --force)

if [[ $mode == extensions ]]; then
    # Each subimage alone, with the main image's universal settings spelled
    # out (mkosi 24 builds subimages only as part of the whole image).
    for image in rdext-hello-sysext rdext-hello-confext; do
        run_mkosi "$S/mkosi.images/$image" --distribution=debian --release=bookworm \
            --package-manager-tree="$S/mkosi.pkgmngr" "${common[@]}" build >>"$log" 2>&1 ||
            { tail -n 30 "$log" >&2; bdie "mkosi build of $image failed (log: $log)"; }
    done
else
    # rdext as installed: the binary, dracut's module, the certificate that
    # verifies the extensions (dracut copies /etc/verity.d into the initrd).
    stage=$out/stage
    m=$stage/usr/lib/dracut/modules.d/90rdext
    install -D -m 0755 "$RDEXT_INITRD_BINARY" "$stage/usr/bin/rdext"
    install -d "$m"
    install -m 0755 "$S"/dracut-module/90rdext/*.sh "$m/"
    install -m 0644 "$S/initrd/rdext-merge.service" "$S/initrd/sysroot-dropin.conf" "$m/"
    install -D -m 0644 "$out/mkosi.crt" "$stage/etc/verity.d/mkosi.crt"
    # A skeleton tree: in place before the kernel package's dracut run.
    extra=(--skeleton-tree="$stage")
    [[ -z ${RDEXT_MKOSI_EXTRA:-} ]] || extra+=(--extra-tree="$RDEXT_MKOSI_EXTRA")
    run_mkosi "$S" "${common[@]}" "${extra[@]}" build >>"$log" 2>&1 ||
        { tail -n 30 "$log" >&2; bdie "mkosi build failed (log: $log)"; }
    for f in rdext-demo.raw rdext-demo.vmlinuz rdext-demo.initrd; do
        [[ -s $out/$f ]] || bdie "mkosi left no $f in $out (log: $log)"
    done
    rm -rf "$stage"
fi
for f in rdext-hello-sysext.raw rdext-hello-confext.raw; do
    [[ -s $out/$f ]] || bdie "mkosi left no $f in $out (log: $log)"
done
touch "$out/.done"
builders_prune "mkosi-$mode"
blog "mkosi $mode built in $((SECONDS - t))s: $out"
echo "$out"
