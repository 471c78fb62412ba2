#!/usr/bin/env bash
# The VM harness's assets, built once and cached (CTest fixture "vm_assets"):
#
#   kernel   Debian's 6.12 kernel (bookworm-security, or $RDEXT_VM_KERNEL_DEB),
#            the .deb kept in $RDEXT_CACHE_DIR/debs because superseded
#            versions vanish from the archive; modules trimmed to what the
#            guests need, depmod'ed.
#   root     debootstrap minbase bookworm + systemd, udev, kmod, dracut, with
#            the kernel's modules; kept as a tarball and as an extracted tree
#            that scenarios hard-link. Keyed by the recipe below.
#   old kernel  bookworm's 6.1 (no mount beneath), trimmed the same way, with
#            its own busybox initrd; its modules go on the scenario's disk.
#   initrds  a busybox initrd (rebuilt every run, < 1 s) and two dracut
#            initrds built in a chroot of the root with dracut-module/90rdext:
#            by bookworm's dracut 059 and by backports' dracut-ng (the root
#            with it is cached too); cached by the hash of what goes in.
#
# Writes $RDEXT_VM_OUT_DIR/assets.env for the scenarios. Timings go to stderr.
source "$(dirname "$0")/lib.sh"

SUITE=${RDEXT_VM_SUITE:-bookworm}
MIRROR=${RDEXT_VM_MIRROR:-http://deb.debian.org/debian}
ROOT_PACKAGES=systemd,systemd-sysv,udev,kmod,dracut

# ---------------------------------------------------------------------------
# Kernel

kernel_deb() {
    local deb=${RDEXT_VM_KERNEL_DEB:-}
    if [[ -n $deb ]]; then echo "$deb"; return; fi
    mkdir -p "$CACHE_DIR/debs"
    # The newest cached 6.12 kernel: no network once it is there.
    local cached=("$CACHE_DIR"/debs/linux-image-6.12*.deb)
    if (( ${#cached[@]} )); then
        printf '%s\n' "${cached[@]}" | sort -V | tail -n 1
        return
    fi
    if [[ -z $deb ]]; then
        local meta=${RDEXT_VM_KERNEL_PKG:-linux-image-6.12-amd64} pkg
        pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-6/ { print $2; exit }')
        if [[ -z $pkg ]]; then
            apt-get update -qq >&2
            pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-6/ { print $2; exit }')
        fi
        [[ -n $pkg ]] || die "cannot resolve $meta to a kernel package (is bookworm-security in the apt sources?)"
        log "downloading $pkg"
        (cd "$CACHE_DIR/debs" && apt-get download -q "$pkg" >&2 2>/dev/null) ||
            (cd "$CACHE_DIR/debs" && apt-get download "$pkg" >&2)
        cached=("$CACHE_DIR"/debs/"$pkg"_*.deb)
        (( ${#cached[@]} )) || die "apt-get download $pkg left no .deb in $CACHE_DIR/debs"
        deb=${cached[-1]}
    fi
    echo "$deb"
}

# kernel_has_modules: every one of VM_MODULES is in $KERNEL_DIR's trimmed
# tree or built in.
kernel_has_modules() {
    local m
    for m in "${VM_MODULES[@]}"; do
        modprobe -d "$KERNEL_DIR/modules" -S "$KVER" --show-depends "$m" >/dev/null 2>&1 || return 1
    done
}

# prepare_kernel DEB: $CACHE_DIR/kernel/$KVER/{vmlinuz,modules/lib/modules/$KVER}
prepare_kernel() {
    local deb=$1 pkg
    pkg=$(dpkg-deb -f "$deb" Package)
    KVER=${pkg#linux-image-}
    KVER=${KVER%-unsigned}
    KERNEL_DIR=$CACHE_DIR/kernel/$KVER
    # Prepared again when VM_MODULES has grown since (virtio_pci for 6.1).
    [[ -f $KERNEL_DIR/.done ]] && kernel_has_modules && return 0
    local t=$SECONDS tmp
    rm -rf "$KERNEL_DIR"
    tmp=$(mktemp -d "$CACHE_DIR/kernel.XXXXXX")
    dpkg -x "$deb" "$tmp/deb"
    local full=$tmp/deb/lib/modules/$KVER
    [[ -d $full ]] || full=$tmp/deb/usr/lib/modules/$KVER
    mkdir -p "$tmp/full/lib/modules"
    mv "$full" "$tmp/full/lib/modules/$KVER"
    depmod -b "$tmp/full" "$KVER"
    # The closure of VM_MODULES, at the same relative paths.
    local mods=$tmp/modules/lib/modules/$KVER m path
    mkdir -p "$mods"
    cp "$tmp/full/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$mods/"
    for m in "${VM_MODULES[@]}"; do
        modprobe -d "$tmp/full" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
    done | sort -u | while read -r path; do
        install -D -m 0644 "$path" "$mods/${path#"$tmp/full/lib/modules/$KVER/"}"
    done
    depmod -b "$tmp/modules" "$KVER"
    mkdir -p "$KERNEL_DIR"
    cp "$tmp/deb/boot/vmlinuz-$KVER" "$KERNEL_DIR/vmlinuz"
    mv "$tmp/modules" "$KERNEL_DIR/modules"
    rm -rf "$tmp"
    touch "$KERNEL_DIR/.done"
    log "kernel $KVER prepared in $(elapsed $t)s ($(du -sh "$KERNEL_DIR/modules" | cut -f1) of modules)"
}

# ---------------------------------------------------------------------------
# Root file system

# root_recipe DIR: everything that makes the guest root. Its text is part of
# the cache key, so editing it rebuilds the root.
root_recipe() {
    local dir=$1
    debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$SUITE" "$dir" "$MIRROR" \
        >"$CACHE_DIR/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    # The guest kernel's modules, for modules-load.d and dracut.
    mkdir -p "$dir/usr/lib/modules"
    cp -a "$KERNEL_DIR/modules/lib/modules/$KVER" "$dir/usr/lib/modules/"
    # A fixed identity: no first-boot logic, same machine every boot.
    echo 5ef3a1d2c0de4b7e9a1b2c3d4e5f6a7b >"$dir/etc/machine-id"
    echo rdext-vm >"$dir/etc/hostname"
    printf '/dev/vda / ext4 rw 0 0\n' >"$dir/etc/fstab"
    # Nothing logs in: no getty on the serial console (it would also
    # scribble over the log). No rescue waits for a password.
    ln -sfn /dev/null "$dir/etc/systemd/system/serial-getty@.service"
    ln -sfn /dev/null "$dir/etc/systemd/system/getty@.service"
    ln -sfn /dev/null "$dir/etc/systemd/system/getty-static.service"
    # apt's timers have nothing to do in a test VM.
    ln -sfn /dev/null "$dir/etc/systemd/system/apt-daily.timer"
    ln -sfn /dev/null "$dir/etc/systemd/system/apt-daily-upgrade.timer"
    # Size: caches and documentation.
    rm -rf "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
        "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
    # The search directories the scenarios fill.
    mkdir -p "$dir"/{etc/extensions,run/extensions,var/lib/extensions,var/lib/confexts}
}

prepare_root() {
    local key
    key=$( { echo "$SUITE $MIRROR $ROOT_PACKAGES $KVER"; declare -f root_recipe; } | sha256sum | cut -c1-12)
    ROOT_TARBALL=$CACHE_DIR/root-$key.tar.zst
    VM_ROOT_TREE=$CACHE_DIR/root-$key
    if [[ ! -f $ROOT_TARBALL ]]; then
        local t=$SECONDS tmp
        tmp=$(mktemp -d "$CACHE_DIR/root-build.XXXXXX")
        root_recipe "$tmp/root"
        tar --zstd --numeric-owner -C "$tmp/root" -cf "$tmp/root.tar.zst" .
        mv "$tmp/root.tar.zst" "$ROOT_TARBALL"
        rm -rf "$tmp"
        log "root tarball built in $(elapsed $t)s ($(du -h "$ROOT_TARBALL" | cut -f1))"
    fi
    if [[ ! -f $VM_ROOT_TREE.done ]]; then
        local t=$SECONDS
        rm -rf "$VM_ROOT_TREE"
        mkdir -p "$VM_ROOT_TREE"
        tar --zstd --numeric-owner -C "$VM_ROOT_TREE" -xpf "$ROOT_TARBALL"
        touch "$VM_ROOT_TREE.done"
        log "root tree extracted in $(elapsed $t)s"
    fi
    # Older roots (another recipe or kernel) only take space.
    local old
    for old in "$CACHE_DIR"/root-*; do
        case $old in "$VM_ROOT_TREE"* | "$ROOT_TARBALL" | */root-build.*) continue ;; esac
        rm -rf "$old"
    done
}

# ---------------------------------------------------------------------------
# Initrds

# The depmod rdext runs for the merged module index: the static one the
# static build leaves beside rdext (rdext-depmod), else the host's.
initrd_depmod() {
    local d
    d=$(dirname "$RDEXT_BIN")/rdext-depmod
    if [[ -x $d ]]; then echo "$d"; else command -v depmod; fi
}

# The rdext files that go into the initrds, laid out as installed.
stage_rdext_files() {
    local dest=$1
    copy_with_libs "$RDEXT_BIN" "$dest" /usr/bin/rdext
    copy_with_libs "$(initrd_depmod)" "$dest" /usr/libexec/rdext/depmod
    install -D -m 0755 "$SRC_DIR/initrd/busybox-hook.sh" "$dest/usr/lib/rdext/busybox-hook.sh"
}

# What the busybox /init loads itself: the root disk. The rest is rdext's.
BUSYBOX_PRELOAD_MODULES=(virtio_pci virtio_blk ext4)

# build_busybox_initrd [NAME]: $VM_OUT_DIR/NAME.cpio.gz (busybox-initrd) for
# $KVER, named in $VM_BUSYBOX_INITRD.
build_busybox_initrd() {
    local out=$VM_OUT_DIR/${1:-busybox-initrd}.cpio.gz t=$SECONDS
    mkdir -p "$VM_OUT_DIR"
    local d
    d=$(mktemp -d "$CACHE_DIR/busybox-initrd.XXXXXX")
    mkdir -p "$d"/{bin,dev,proc,sys,run,sysroot,etc/rdext-vm,usr/bin,lib/modules}
    cp /bin/busybox "$d/bin/busybox"
    install -m 0755 "$VM_DIR/busybox-init.sh" "$d/init"
    : >"$d/etc/initrd-release"
    stage_rdext_files "$d"
    # /init loads the root disk's modules, decompressed (busybox insmod
    # reads plain .ko), in load order. The others (loop, overlay, erofs,
    # squashfs, dm-verity) are rdext's job: it loads them through libkmod
    # from the module tree below when it first needs them.
    local mods=$KERNEL_DIR/modules m path ko tree=$d/lib/modules/$KVER
    for m in "${BUSYBOX_PRELOAD_MODULES[@]}"; do
        modprobe -d "$mods" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { $1 = ""; print }'
    done | awk '!seen[$1]++' | while read -r path args; do
        ko=/lib/modules/$(basename "${path%.xz}")
        case $path in  # 6.12 ships .ko.xz, 6.1 plain .ko
            *.xz) xz -dc "$path" >"$d$ko" ;;
            *) cp "$path" "$d$ko" ;;
        esac
        echo "$ko $args" >>"$d/etc/rdext-vm/modules"
    done
    mkdir -p "$tree"
    cp "$mods/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$tree/"
    for m in "${VM_INITRD_MODULES[@]}"; do
        modprobe -d "$mods" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
    done | sort -u | while read -r path; do
        install -D -m 0644 "$path" "$tree/${path#"$mods/lib/modules/$KVER/"}"
    done
    depmod -b "$d" "$KVER"
    (cd "$d" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out.tmp"
    mv "$out.tmp" "$out"
    rm -rf "$d"
    VM_BUSYBOX_INITRD=$out
    log "busybox initrd built in $(elapsed $t)s ($(du -h "$out" | cut -f1))"
}

# The dracut module as installed (mirrors dracut-module/CMakeLists.txt).
assemble_dracut_module() {
    local dest=$1
    mkdir -p "$dest"
    install -m 0755 "$SRC_DIR"/dracut-module/90rdext/*.sh "$dest/"
    install -m 0644 "$SRC_DIR/initrd/rdext-merge.service" "$SRC_DIR/initrd/sysroot-dropin.conf" "$dest/"
}

DRACUT_ARGS=(
    --force --no-hostonly --no-hostonly-cmdline --no-early-microcode
    # systemd initrd, root on a block device; nothing else.
    --modules "bash systemd systemd-initrd dracut-systemd base fs-lib rootfs-block kernel-modules udev-rules"
    --add "rdext rdext-vmtest"
    --drivers "virtio_blk ext4"
    --compress "gzip -1"
)

# in_chroot DIR CMD...: CMD in a chroot of DIR with /proc, /sys and /dev
# mounted (dracut silently leaves things out without them), in a private
# mount namespace that takes them away again.
in_chroot() {
    unshare -m --propagation private -- bash -euc '
        c=$1; shift
        mount -t proc proc "$c/proc"
        mount -t sysfs sysfs "$c/sys"
        mount --rbind /dev "$c/dev"
        chroot "$c" "$@"
    ' _ "$@"
}

# The root with dracut-ng from bookworm-backports instead of dracut 059, for
# the module's other supported dracut. A full copy: dpkg must not write
# through hard links into the root tree.
prepare_dracutng_tree() {
    NG_TREE=$VM_ROOT_TREE-dracutng
    [[ -f $NG_TREE.done ]] && return 0
    local t=$SECONDS
    rm -rf "$NG_TREE"
    cp -a "$VM_ROOT_TREE" "$NG_TREE"
    echo "deb $MIRROR $SUITE-backports main" >"$NG_TREE/etc/apt/sources.list.d/backports.list"
    cp --remove-destination /etc/resolv.conf "$NG_TREE/etc/resolv.conf"
    in_chroot "$NG_TREE" bash -c 'apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t '"$SUITE"'-backports dracut' \
        >"$CACHE_DIR/dracutng.log" 2>&1 || { tail -n 20 "$CACHE_DIR/dracutng.log" >&2; die "installing dracut-ng failed"; }
    rm -rf "$NG_TREE"/var/lib/apt/lists/* "$NG_TREE"/var/cache/apt/*
    touch "$NG_TREE.done"
    log "dracut-ng root prepared in $(elapsed $t)s ($(chroot "$NG_TREE" dpkg-query -W -f '${Version}' dracut))"
}

# build_dracut_initrd TREE: an initrd built by TREE's dracut, in
# $CACHE_DIR/initrd/, named in $DRACUT_OUT.
build_dracut_initrd() {
    local tree=$1 key
    key=$( {
        echo "$KVER ${DRACUT_ARGS[*]} $(basename "$tree")"
        sha256sum "$RDEXT_BIN" "$(initrd_depmod)" "$SRC_DIR"/dracut-module/90rdext/*.sh "$SRC_DIR"/initrd/rdext-merge.service \
            "$SRC_DIR"/initrd/sysroot-dropin.conf "$VM_DIR"/dracut-vmtest/99rdext-vmtest/* | cut -d' ' -f1
        declare -f assemble_dracut_module build_dracut_initrd in_chroot
    } | sha256sum | cut -c1-12)
    DRACUT_OUT=$CACHE_DIR/initrd/dracut-$key.img
    [[ -f $DRACUT_OUT ]] && return 0
    local t=$SECONDS chroot
    mkdir -p "$CACHE_DIR/initrd" "$CACHE_DIR/work"
    chroot=$(mktemp -d "$CACHE_DIR/work/dracut-chroot.XXXXXX")
    rmdir "$chroot"
    # A hard-linked copy of the root: dracut only adds files to it.
    cp -al "$tree" "$chroot"
    local mdir=$chroot/usr/lib/dracut/modules.d
    assemble_dracut_module "$mdir/90rdext"
    cp -a "$VM_DIR/dracut-vmtest/99rdext-vmtest" "$mdir/"
    copy_with_libs "$RDEXT_BIN" "$chroot" /usr/bin/rdext
    copy_with_libs "$(initrd_depmod)" "$chroot" /usr/libexec/rdext/depmod
    in_chroot "$chroot" dracut "${DRACUT_ARGS[@]}" --kver "$KVER" /tmp/initrd.img >"$CACHE_DIR/work/dracut.log" 2>&1 || {
        tail -n 30 "$CACHE_DIR/work/dracut.log" >&2
        rm -rf "$chroot"
        die "dracut failed (log: $CACHE_DIR/work/dracut.log)"
    }
    mv "$chroot/tmp/initrd.img" "$DRACUT_OUT.tmp"
    mv "$DRACUT_OUT.tmp" "$DRACUT_OUT"
    rm -rf "$chroot"
    # Keep the newest few.
    ls -1t "$CACHE_DIR"/initrd/dracut-*.img | tail -n +7 | xargs -r rm -f
    log "dracut initrd ($(chroot "$tree" dpkg-query -W -f '${Version}' dracut)) built in $(elapsed $t)s ($(du -h "$DRACUT_OUT" | cut -f1))"
}

# ---------------------------------------------------------------------------
# The old kernel: bookworm's 6.1, which has no mount beneath, no overlay
# lowerdir+ and no erofs straight from a file; for the fallback scenarios.
# Same root tree: a scenario puts $VM_OLD_MODULES into its disk's
# /usr/lib/modules (no second debootstrap).

# The newest cached 6.1 .deb ($CACHE_DIR/debs-6.1), else bookworm's
# linux-image-amd64 resolved and downloaded (or $RDEXT_VM_OLD_KERNEL_DEB).
old_kernel_deb() {
    local dir=$CACHE_DIR/debs-6.1 cached pkg
    [[ -n ${RDEXT_VM_OLD_KERNEL_DEB:-} ]] && { echo "$RDEXT_VM_OLD_KERNEL_DEB"; return; }
    mkdir -p "$dir"
    cached=("$dir"/linux-image-6.1.*.deb)
    if (( ${#cached[@]} )); then
        printf '%s\n' "${cached[@]}" | sort -V | tail -n 1
        return
    fi
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1\./ { print $2; exit }')
    if [[ -z $pkg ]]; then
        apt-get update -qq >&2
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1\./ { print $2; exit }')
    fi
    [[ -n $pkg ]] || die "linux-image-amd64 does not resolve to a 6.1 kernel (bookworm's) in the apt sources"
    log "downloading $pkg"
    (cd "$dir" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed"
    cached=("$dir/$pkg"_*.deb)
    (( ${#cached[@]} )) || die "apt-get download $pkg left no .deb in $dir"
    echo "${cached[-1]}"
}

# Sets VM_OLD_KVER, VM_OLD_KERNEL, VM_OLD_MODULES, VM_OLD_BUSYBOX_INITRD;
# the main kernel's KVER, KERNEL_DIR and busybox initrd stay as they are.
prepare_old_kernel() {
    local KVER KERNEL_DIR VM_BUSYBOX_INITRD deb
    deb=$(old_kernel_deb)
    prepare_kernel "$deb"
    [[ $KVER == 6.1.* ]] || die "$deb is kernel $KVER, not 6.1"
    build_busybox_initrd busybox-initrd-6.1
    VM_OLD_KVER=$KVER
    VM_OLD_KERNEL=$KERNEL_DIR/vmlinuz
    VM_OLD_MODULES=$KERNEL_DIR/modules/lib/modules/$KVER
    VM_OLD_BUSYBOX_INITRD=$VM_BUSYBOX_INITRD
}

# ---------------------------------------------------------------------------

build_assets() {
    local t=$SECONDS
    # Scratch left by an interrupted build (we hold the cache lock).
    rm -rf "$CACHE_DIR"/{kernel,root-build,busybox-initrd}.* "$CACHE_DIR"/work/dracut-chroot.*
    local deb
    deb=$(kernel_deb)
    prepare_kernel "$deb"
    prepare_root
    build_busybox_initrd
    build_dracut_initrd "$VM_ROOT_TREE"
    VM_DRACUT_INITRD=$DRACUT_OUT
    prepare_dracutng_tree
    build_dracut_initrd "$NG_TREE"
    VM_DRACUTNG_INITRD=$DRACUT_OUT
    prepare_old_kernel
    mkdir -p "$VM_OUT_DIR"
    cat >"$VM_OUT_DIR/assets.env.tmp" <<EOF
VM_KVER='$KVER'
VM_KERNEL='$KERNEL_DIR/vmlinuz'
VM_ROOT_TREE='$VM_ROOT_TREE'
VM_BUSYBOX_INITRD='$VM_BUSYBOX_INITRD'
VM_DRACUT_INITRD='$VM_DRACUT_INITRD'
VM_DRACUTNG_INITRD='$VM_DRACUTNG_INITRD'
VM_RDEXT='$RDEXT_BIN'
VM_OLD_KVER='$VM_OLD_KVER'
VM_OLD_KERNEL='$VM_OLD_KERNEL'
VM_OLD_MODULES='$VM_OLD_MODULES'
VM_OLD_BUSYBOX_INITRD='$VM_OLD_BUSYBOX_INITRD'
EOF
    mv "$VM_OUT_DIR/assets.env.tmp" "$VM_OUT_DIR/assets.env"
    log "assets ready in $(elapsed $t)s"
}

require_host_tools
RDEXT_BIN=$(initrd_rdext) || skip "no rdext binary (build it, or set RDEXT_INITRD_BINARY)"
log "rdext for the initrds: $RDEXT_BIN ($(is_static "$RDEXT_BIN" && echo static || echo dynamic, with its libraries))"
rm -f "$VM_OUT_DIR/assets.env"
with_cache_lock build_assets
