#!/bin/sh
# dracut pre-pivot hook (initrds without systemd): merge the extensions found
# on the real root into it before switch-root. Sourced by dracut's /init with
# the real root mounted at $NEWROOT. systemd initrds use rdext-merge.service
# instead; this hook is only installed when systemd is not in the initrd.

type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

if ! /usr/bin/rdext --root="${NEWROOT:-/sysroot}" merge; then
    # rd.shell (default) gives a shell, leaving it continues the boot;
    # rd.shell=0 takes the rd.emergency= action (halt when unset).
    emergency_shell -n rdext "rdext: merging the extensions into ${NEWROOT:-/sysroot} failed; see dmesg"
fi
