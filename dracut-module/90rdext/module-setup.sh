#!/bin/bash
# dracut module "rdext": merges system and configuration extensions into the
# real root before switch-root (see README.md beside this directory).
# Works with dracut 059 (Debian 12) and dracut-ng (106 in bookworm-backports).
#
# The module directory, as installed (/usr/lib/dracut/modules.d/90rdext),
# holds this file, rdext-pre-pivot.sh and, from the project's initrd/
# directory, rdext-merge.service and sysroot-dropin.conf.

# The rdext binary to install: $RDEXT_BINARY, else the first one found.
rdext_binary() {
    local p
    for p in "${RDEXT_BINARY:-}" /usr/bin/rdext /usr/sbin/rdext /usr/local/bin/rdext /usr/local/sbin/rdext; do
        [[ -n $p && -x $dracutsysrootdir$p ]] && { echo "$p"; return 0; }
    done
    return 1
}

# The depmod rdext runs for the merged module index of extensions that ship
# kernel modules: $RDEXT_DEPMOD_BINARY, else the static one installed with
# rdext, else the system's (with its libraries).
rdext_depmod() {
    local p
    for p in "${RDEXT_DEPMOD_BINARY:-}" /usr/libexec/rdext/depmod /usr/local/libexec/rdext/depmod \
             /usr/sbin/depmod /sbin/depmod; do
        [[ -n $p && -x $dracutsysrootdir$p ]] && { echo "$p"; return 0; }
    done
    return 1
}

# Only when asked for (`dracut --add rdext`, or add_dracutmodules+=" rdext "
# in dracut.conf.d): merging extensions at boot changes what the booted
# system runs, which no initrd should start doing because a package was
# installed. Unusable (1) without the binary.
check() {
    rdext_binary >/dev/null || return 1
    return 255
}

depends() {
    # A systemd initrd runs rdext-merge.service; without systemd the
    # pre-pivot hook does the same (see install). "dm" for dm-verity: a
    # libdevmapper built with udev sync waits for udev cookies that only
    # dm's rules release.
    echo dm
    return 0
}

installkernel() {
    # rdext loads these itself (libkmod) right before it needs them; they
    # must be in the initrd. instmods skips modules the kernel has built in.
    instmods loop overlay erofs squashfs ext4 dm-verity
}

install() {
    local bin unitdir
    bin=$(rdext_binary) || return 1
    # A static build is copied as it is; a dynamic one brings its libraries.
    inst_binary "$bin" /usr/bin/rdext
    # Where rdext looks first. Without it, extensions that ship kernel
    # modules are skipped (their index cannot be merged), the rest merges.
    local depmod
    if depmod=$(rdext_depmod); then
        inst_binary "$depmod" /usr/libexec/rdext/depmod
    else
        dwarn "rdext: no depmod found; extensions shipping kernel modules will not be merged"
    fi

    if dracut_module_included "systemd"; then
        unitdir=${systemdsystemunitdir:-/usr/lib/systemd/system}
        inst_simple "$moddir/rdext-merge.service" "$unitdir/rdext-merge.service"
        # Enable it the way `systemctl enable` would (WantedBy=initrd.target).
        mkdir -p "$initdir$unitdir/initrd.target.wants"
        ln -sfn ../rdext-merge.service "$initdir$unitdir/initrd.target.wants/rdext-merge.service"
        # systemd's own initrd merge (v261+) steps aside: one owner of /sysroot.
        inst_simple "$moddir/sysroot-dropin.conf" "$unitdir/systemd-sysext-sysroot.service.d/50-rdext.conf"
        inst_simple "$moddir/sysroot-dropin.conf" "$unitdir/systemd-confext-sysroot.service.d/50-rdext.conf"
    else
        inst_hook pre-pivot 50 "$moddir/rdext-pre-pivot.sh"
    fi

    # Initrd-side configuration and the certificates that verify signed
    # images (read from the initrd, not from the root being extended).
    local d f
    for d in /etc/rdext /etc/verity.d /usr/lib/verity.d; do
        [[ -d $dracutsysrootdir$d ]] || continue
        while IFS= read -r -d '' f; do
            inst_simple "${f#"$dracutsysrootdir"}"
        done < <(find "$dracutsysrootdir$d" -type f -print0)
    done
}
