#!/bin/bash
# Runs in the booted guest after multi-user.target (rdext-check.service):
# one "RDEXT-CHECK: ok|FAIL ..." line per check on the console, then
# "RDEXT-CHECK: PASS token=T" (T: rdext.testtoken= from the kernel command
# line, new for every boot) or "RDEXT-CHECK: FAIL"; the unit then powers off.
#
# What to expect comes from /etc/rdext-check.conf (written per scenario):
#   EXPECT_SYSEXT="a b"    exactly these names merged into /usr ("" = /usr not merged)
#   EXPECT_CONFEXT="c"     exactly these merged into /etc ("" = /etc not merged)
#   FEATURES=present|absent|skip   the feature sysext's effects (see lib.sh)
#   EXPECT_NOT_MERGED="x"  names rdext status reports as not merged
#   EXPECT_VAR_DEVICE=/dev/vdb   /var is a separate mount of this device
#   CHECK_HANDOFF=1        /usr is still the overlay the initrd made
#   CHECK_SYSEXT_IDLE=1    the booted system's systemd-sysext.service never ran
#                          (default: as CHECK_HANDOFF)
# and then sources /etc/rdext-check.d/*.sh, a scenario's own checks: each
# must load (no syntax error) and run at least one check, and is reported as
# "RDEXT-CHECK: dropin NAME ran K checks", which the host looks for.
# RDEXT_CHECK_CONF, RDEXT_CHECK_D and RDEXT_CHECK_CMDLINE replace those paths
# and /proc/cmdline (the harness test runs the checker on the host).
set -u
CONF=${RDEXT_CHECK_CONF:-/etc/rdext-check.conf}
DROPIN_DIR=${RDEXT_CHECK_D:-/etc/rdext-check.d}
TOKEN=$(tr ' ' '\n' <"${RDEXT_CHECK_CMDLINE:-/proc/cmdline}" | sed -n 's/^rdext\.testtoken=//p' | tail -n 1)
EXPECT_SYSEXT=""
EXPECT_CONFEXT=""
FEATURES=skip
EXPECT_NOT_MERGED=""
EXPECT_VAR_DEVICE=""
CHECK_HANDOFF=0
CHECK_SYSEXT_IDLE=""
# shellcheck source=/dev/null
[ -f "$CONF" ] && . "$CONF"
: "${CHECK_SYSEXT_IDLE:=$CHECK_HANDOFF}"

failures=0
checks=0
ok() { echo "RDEXT-CHECK: ok   $*"; checks=$((checks + 1)); }
bad() { echo "RDEXT-CHECK: FAIL $*"; failures=$((failures + 1)); checks=$((checks + 1)); }
check() { # check "what" COMMAND...
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# wait_for COMMAND...: effects of udev and late units may trail multi-user.target.
wait_for() {
    local i
    for i in $(seq 1 20); do "$@" && return 0; sleep 0.5; done
    return 1
}

mountinfo_line() { awk -v m="$1" '$5 == m' /proc/self/mountinfo | tail -n 1; }
fstype_of() { mountinfo_line "$1" | awk '{ n = 7; while ($n != "-") n++; print $(n + 1) }'; }
sorted_words() { tr ' ,' '\n\n' | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//'; }

# merged_as HIERARCHY METAFILE "NAMES": an overlay listing exactly NAMES.
merged_as() {
    local h=$1 meta=$2 want got
    want=$(echo "$3" | sorted_words)
    if [ -z "$want" ]; then
        [ "$(fstype_of "$h")" != overlay ] && return 0
        echo "RDEXT-CHECK: info $h is an overlay: $(mountinfo_line "$h")"
        return 1
    fi
    [ "$(fstype_of "$h")" = overlay ] || { echo "RDEXT-CHECK: info $h is not an overlay"; return 1; }
    got=$(sorted_words <"$meta")
    [ "$got" = "$want" ] || { echo "RDEXT-CHECK: info $meta lists '$got'"; return 1; }
}

content_is() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

check "/usr merged with exactly '$EXPECT_SYSEXT'" merged_as /usr /usr/.systemd-sysext/extensions "$EXPECT_SYSEXT"
check "/etc merged with exactly '$EXPECT_CONFEXT'" merged_as /etc /etc/.systemd-confext/confexts "$EXPECT_CONFEXT"

for n in $EXPECT_SYSEXT; do
    [ "$n" = rdfeature ] && continue
    check "sysext $n's file is in /usr" content_is "/usr/share/$n/marker" "$n"
done
for n in $EXPECT_CONFEXT; do
    check "confext $n's file is in /etc" content_is "/etc/$n.conf" "$n"
done

unit_ran() { [ -f /run/rdext-test/unit ] && systemctl -q is-active rdext-feature.service; }
udev_fired() { [ -f /run/rdext-test/udev-vda ]; }
module_loaded() { [ -d /sys/module/dummy ]; }
sysctl_set() { [ "$(cat /proc/sys/vm/swappiness)" = 13 ]; }
tmpfiles_made() { content_is /run/rdext-test/tmpfiles created; }
case $FEATURES in
    present)
        check "feature sysext: /usr and /opt content" content_is /opt/rdext-feature/marker rdfeature
        check "unit enabled by a .wants/ link in the extension has run" wait_for unit_ran
        check "udev rule from the extension fired on coldplug" wait_for udev_fired
        check "modules-load.d entry loaded the dummy module" wait_for module_loaded
        check "sysctl.d setting vm.swappiness=13 is in effect" sysctl_set
        check "tmpfiles.d entry /run/rdext-test/tmpfiles exists" tmpfiles_made
        ;;
    absent)
        check "feature sysext absent: its unit did not run" test ! -e /run/rdext-test/unit
        check "feature sysext absent: no udev rule fired" test ! -e /run/rdext-test/udev-vda
        check "feature sysext absent: dummy not loaded" test ! -e /sys/module/dummy
        check "feature sysext absent: /usr/share/rdext-feature missing" test ! -e /usr/share/rdext-feature
        ;;
esac

if [ -n "$EXPECT_VAR_DEVICE" ]; then
    var_source() { mountinfo_line /var | awk '{ n = 7; while ($n != "-") n++; print $(n + 2) }'; }
    check "/var is a separate mount of $EXPECT_VAR_DEVICE" test "$(var_source)" = "$EXPECT_VAR_DEVICE"
    var_opts() { mountinfo_line /var | awk '{ print "," $6 "," }'; }
    check "/var is mounted nosuid,nodev" eval 'case $(var_opts) in *,nosuid,*nodev,* | *,nodev,*nosuid,*) true ;; *) false ;; esac'
fi

# The stock systemd-sysext recognises the merge (252 reads the metadata).
if [ -n "$EXPECT_SYSEXT" ]; then
    status=$(systemd-sysext status 2>&1)
    for n in $EXPECT_SYSEXT; do
        check "systemd-sysext status lists $n" grep -qw -- "$n" <<<"$status"
    done
fi

# rdext status in the booted system: the merge, and what was skipped.
if status=$(rdext status 2>&1); then
    ok "rdext status runs"
    usr_line=$(awk '$1 == "/usr"' <<<"$status")
    for n in $EXPECT_SYSEXT; do
        check "rdext status lists $n on /usr" grep -qw -- "$n" <<<"$usr_line"
    done
    for n in $EXPECT_NOT_MERGED; do
        check "rdext status reports $n as not merged" grep -qE "^  $n " <<<"$status"
    done
else
    bad "rdext status failed: $status"
fi

handoff() {
    local rec=/run/rdext-vmtest/initrd-usr.mountinfo before after
    if [ ! -s $rec ]; then
        echo "RDEXT-CHECK: info no record of /sysroot/usr from the initrd ($rec)"
        return 1
    fi
    # Mount id, device, and everything after the separator (fstype,
    # source, super options with the layer list) must be unchanged.
    before=$(awk '{ s = $1 " " $3; n = 7; while ($n != "-") n++; for (i = n; i <= NF; i++) s = s " " $i; print s }' $rec)
    after=$(mountinfo_line /usr | awk '{ s = $1 " " $3; n = 7; while ($n != "-") n++; for (i = n; i <= NF; i++) s = s " " $i; print s }')
    [ "$before" = "$after" ] && return 0
    echo "RDEXT-CHECK: info initrd: $before"
    echo "RDEXT-CHECK: info booted: $after"
    return 1
}
sysext_service_idle() {
    # Never started: skipped by its condition or not wanted at all.
    [ "$(systemctl show -P ExecMainStartTimestampMonotonic systemd-sysext.service)" = 0 ]
}
if [ "$CHECK_HANDOFF" = 1 ]; then
    check "/usr is the overlay made in the initrd (not unmerged and merged again)" handoff
fi
if [ "$CHECK_SYSEXT_IDLE" = 1 ]; then
    echo "RDEXT-CHECK: info systemd-sysext.service: $(systemctl show -p ActiveState -p ConditionResult -p ExecMainStartTimestampMonotonic systemd-sysext.service | tr '\n' ' ')"
    check "systemd-sysext.service did not run in the booted system" sysext_service_idle
fi

# verity_devices N: exactly N dm-verity devices exist (scenarios' own checks).
verity_devices() {
    local d n=0
    for d in /sys/block/dm-*/dm/uuid; do
        [ -e "$d" ] || continue
        case $(cat "$d") in CRYPT-VERITY-*) n=$((n + 1)) ;; esac
    done
    echo "RDEXT-CHECK: info dm-verity devices: $n ($(cat /sys/block/dm-*/dm/name 2>/dev/null | tr '\n' ' '))"
    [ "$n" = "$1" ]
}

# A scenario's own checks (e.g. boot counting), written with check/ok/bad.
# One that does not load, or runs no check, fails the boot: its assertions
# would otherwise vanish without a trace.
for dropin_ in "$DROPIN_DIR"/*.sh; do
    [ -f "$dropin_" ] || continue
    dropin_name_=$(basename "$dropin_" .sh)
    if ! dropin_err_=$(bash -n "$dropin_" 2>&1); then
        bad "drop-in $dropin_name_ does not load: $(echo "$dropin_err_" | tr '\n' ' ')"
        continue
    fi
    dropin_before_=$checks
    # shellcheck source=/dev/null
    . "$dropin_"
    echo "RDEXT-CHECK: dropin $dropin_name_ ran $((checks - dropin_before_)) checks"
    [ "$checks" -gt "$dropin_before_" ] || bad "drop-in $dropin_name_ ran no check"
done

if [ "$failures" = 0 ]; then
    echo "RDEXT-CHECK: PASS token=${TOKEN:-none}"
    exit 0
fi
{
    echo "--- rdext status"; rdext status
    echo "--- systemd-sysext status"; systemd-sysext status
    echo "--- mounts"; awk '$5 ~ /^\/(usr|etc|opt|var)$/ || $5 ~ /^\/run\/rdext/' /proc/self/mountinfo
    echo "--- journal (rdext, systemd-sysext, units)"
    journalctl -b --no-pager -o short-monotonic | grep -Ei 'rdext|sysext|confext' | tail -n 40
    echo "--- failed units"; systemctl --failed --no-legend --no-pager
} 2>&1 | sed 's/^/RDEXT-CHECK: diag /'
echo "RDEXT-CHECK: FAIL ($failures)"
exit 1
