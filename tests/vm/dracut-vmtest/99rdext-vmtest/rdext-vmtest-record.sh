#!/bin/bash
# The mountinfo line of /sysroot/usr, kept in /run (which moves into the real root).
mkdir -p /run/rdext-vmtest
while IFS= read -r line; do
    read -r -a f <<<"$line"
    [[ ${f[4]} == /sysroot/usr ]] && echo "$line"
done </proc/self/mountinfo >/run/rdext-vmtest/initrd-usr.mountinfo
exit 0
