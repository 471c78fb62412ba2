#!/bin/busybox sh
# /init of the busybox test initrd: the smallest initrd that boots a real
# root and runs rdext's hook (initrd/busybox-hook.sh) before switch_root.
# Kernel modules are loaded in the order listed in /etc/rdext-vm/modules
# (dependencies first, computed when the initrd is built).
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run

while read -r m args; do
    insmod "$m" $args 2>/dev/null
done </etc/rdext-vm/modules

root=/dev/vda rootfstype=ext4 rootflags=rw init=/sbin/init
for w in $(cat /proc/cmdline); do
    case $w in
        root=*) root=${w#root=} ;;
        rootfstype=*) rootfstype=${w#rootfstype=} ;;
        ro) rootflags=ro ;;
        rw) rootflags=rw ;;
        init=*) init=${w#init=} ;;
    esac
done

i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /sysroot
if ! mount -t "$rootfstype" -o "$rootflags" "$root" /sysroot; then
    echo "rdext-vm-init: cannot mount $root on /sysroot"
    poweroff -f
fi

/usr/lib/rdext/busybox-hook.sh /sysroot || poweroff -f

# For the checker: the initrd's view of the /usr overlay (see
# tests/vm/guest/rdext-check.sh). /run is already in /sysroot/run.
mkdir -p /sysroot/run/rdext-vmtest
awk '$5 == "/sysroot/usr"' /sysroot/proc/self/mountinfo >/sysroot/run/rdext-vmtest/initrd-usr.mountinfo

exec switch_root /sysroot "$init"
