#!/bin/sh
# rdext hook for a plain (non-systemd) initrd /init, e.g. busybox.
#
# Call it after the real root is mounted and before switch_root:
#
#     /usr/lib/rdext/busybox-hook.sh /sysroot || poweroff -f
#     exec switch_root /sysroot /sbin/init
#
# It merges the extensions found on the real root into it (`rdext merge`),
# then moves /run, /dev, /sys and /proc into the new root so that the
# per-image mounts under /run/rdext, rdext's state file and its hand-off
# drop-ins reach the booted system. (busybox switch_root does not move them;
# set RDEXT_MOVE_MOUNTS=0 when the /init moves them itself, as util-linux
# switch_root does.)
#
# When the merge fails (rdext exits non-zero: an error, or an extension named
# by rd.sysext.require= / rd.confext.require= was not merged), the hook
# prints one line starting with "rdext: EMERGENCY" on the console and takes
# the emergency action:
#   RDEXT_EMERGENCY=shell|poweroff|reboot|halt|continue   (environment), else
#   rd.emergency=poweroff|reboot|halt                      (kernel command line,
#                                                          dracut's spelling), else
#   shell, or poweroff when rd.shell=0 is on the command line.
# "shell" starts an interactive shell on the console; leaving it continues the
# boot. "continue" boots on without the failed merge's guarantees.
# Exit status: 0 when the boot should go on, 1 when the emergency action
# itself failed (the caller should then stop the boot).
#
# Needs: /etc/initrd-release in the initrd (rdext uses it to know it runs in
# an initrd: root /sysroot, state in /run/rdext, logs to /dev/kmsg; the hook
# creates it when missing), /proc, /dev (devtmpfs) and /run (tmpfs) mounted,
# and the loop, overlay and file system modules loaded or built in.
#
# A merge that does not finish within RDEXT_TIMEOUT seconds (default 180;
# 0: no limit) is stopped and counts as failed, so a hang (e.g. a stuck
# device) ends in the emergency action instead of a boot that never ends.
# Needs a `timeout` command (busybox's, either syntax, or coreutils').
#
# Environment: RDEXT (default /usr/bin/rdext), RDEXT_ARGS (extra arguments
# before the command, e.g. --log-level=debug), RDEXT_EMERGENCY,
# RDEXT_MOVE_MOUNTS (default 1), RDEXT_TIMEOUT (default 180).

newroot=${1:-/sysroot}
rdext=${RDEXT:-/usr/bin/rdext}
limit=${RDEXT_TIMEOUT:-180}

say() { echo "rdext: $*"; }

cmdline_value() {
    # cmdline_value KEY: the value of the last KEY=VALUE word, if any.
    v=
    [ -r /proc/cmdline ] || return 0
    for w in $(cat /proc/cmdline); do
        case $w in "$1"=*) v=${w#*=} ;; esac
    done
    echo "$v"
}

is_mount_point() {
    # The mount table, not stat: a bind mount of a directory onto itself
    # shares the device number with its parent.
    awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo 2>/dev/null
}

emergency() {
    action=${RDEXT_EMERGENCY:-$(cmdline_value rd.emergency)}
    if [ -z "$action" ]; then
        action=shell
        [ "$(cmdline_value rd.shell)" = 0 ] && action=poweroff
    fi
    say "EMERGENCY: $* (action: $action; the kernel log, dmesg, says why)"
    case $action in
        continue) return 0 ;;
        shell)
            say "starting a shell; leave it to continue booting"
            sh -i </dev/console >/dev/console 2>&1
            return 0
            ;;
        poweroff | reboot | halt)
            sync
            "$action" -f
            # If the applet is missing or fails, the sysrq trigger still works.
            case $action in
                poweroff) echo o >/proc/sysrq-trigger ;;
                reboot) echo b >/proc/sysrq-trigger ;;
            esac 2>/dev/null
            sleep 5
            return 1
            ;;
        *)
            say "unknown emergency action '$action', stopping the boot"
            return 1
            ;;
    esac
}

run_bounded() {
    # run_bounded CMD...: CMD, stopped after $limit seconds where a timeout
    # command can do it ("timeout SECS", or busybox before 1.30's "-t SECS").
    if [ "$limit" != 0 ] && command -v timeout >/dev/null 2>&1; then
        if timeout "$limit" true 2>/dev/null; then
            timeout "$limit" "$@"
            return
        elif timeout -t "$limit" true 2>/dev/null; then
            timeout -t "$limit" "$@"
            return
        fi
    fi
    "$@"
}

move_api_mounts() {
    # /proc last: is_mount_point reads the mount table through it.
    for d in /run /dev /sys /proc; do
        is_mount_point "$d" || continue
        if [ ! -d "$newroot$d" ]; then
            say "warning: $newroot$d does not exist, $d stays in the initrd"
            continue
        fi
        mount -o move "$d" "$newroot$d" 2>/dev/null || mount --move "$d" "$newroot$d" ||
            say "warning: cannot move $d to $newroot$d"
    done
}

main() {
    if ! is_mount_point "$newroot"; then
        emergency "$newroot is not mounted, nothing to merge into"
        return
    fi
    if [ ! -e /etc/initrd-release ]; then
        # rdext tells an initrd from a running system by this file.
        : >/etc/initrd-release
    fi
    rc=0
    # shellcheck disable=SC2086  # RDEXT_ARGS is a list of words
    run_bounded "$rdext" --root="$newroot" ${RDEXT_ARGS:-} merge || rc=$?
    case $rc in
        0) ;;
        # 124: coreutils' timeout; 143: killed by SIGTERM (busybox's)
        124 | 143) emergency "merging the extensions into $newroot did not finish within ${limit}s" || return 1 ;;
        *) emergency "merging the extensions into $newroot failed (rdext exit $rc)" || return 1 ;;
    esac
    [ "${RDEXT_MOVE_MOUNTS:-1}" = 0 ] || move_api_mounts
    return 0
}

main
