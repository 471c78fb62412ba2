#!/usr/bin/env bash
# The service manager after a merge on the booted system, as a user of
# systemd-sysext expects it: nothing is merged at boot; the booted guest then
# puts the sysext rdreload (EXTENSION_RELOAD_MANAGER=1) into
# /var/lib/extensions. It ships the unit rdreload.service, the unit
# rdreload-ext.service and a drop-in for the root's own rdhost.service
# (Environment=RDRELOAD=1), and asks for
#   EXTENSION_RESTART_UNITS="rdhost.service rdreload-ext.service"
#   EXTENSION_RELOAD_OR_RESTART_UNITS=rdhost2.service  (the root's, with ExecReload=)
# 1. `rdext refresh --no-reload`: merged, but the manager was not reloaded
#    (rdhost.service still runs its old configuration and says
#    NeedDaemonReload=yes), nothing restarted, rdreload-ext.service not
#    started; `rdext unmerge --no-reload`, then a daemon-reload by hand.
# 2. `rdext refresh`: with no daemon-reload by hand, `systemctl cat` and
#    `systemctl start rdreload.service` work, rdhost.service was restarted
#    (new PID) with the drop-in in effect, rdreload-ext.service was started,
#    rdhost2.service was reloaded (ExecReload ran, same PID).
# 3. `rdext refresh` again, nothing changed: no restart.
# 4. `rdext unmerge`: the manager forgets the extension's units,
#    rdhost.service is restarted without the drop-in, and
#    rdreload-ext.service, whose unit file left with the extension, is
#    stopped.
source "$(dirname "$0")/../lib.sh"
kind=${1:-busybox}
new_scenario
t=$IMAGES/rdreload
ext_tree "$t" rdreload sysext ID=debian VERSION_ID=12 EXTENSION_RELOAD_MANAGER=1 \
    'EXTENSION_RESTART_UNITS="rdhost.service rdreload-ext.service"' \
    EXTENSION_RELOAD_OR_RESTART_UNITS=rdhost2.service
ext_file "$t" /usr/lib/systemd/system/rdreload.service <<'EOF'
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo ran >/run/rdreload.ran'
EOF
ext_file "$t" /usr/lib/systemd/system/rdreload-ext.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
EOF
ext_file "$t" /usr/lib/systemd/system/rdhost.service.d/50-rdreload.conf <<'EOF'
[Service]
Environment=RDRELOAD=1
EOF
mkdir -p "$OVERLAY/var/lib/rdreload-stash" "$OVERLAY/var/lib/extensions"
make_erofs "$t" "$OVERLAY/var/lib/rdreload-stash/rdreload.raw"
put /etc/systemd/system/rdhost.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
EOF
put /etc/systemd/system/rdhost2.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/sh -c 'echo reloaded >/run/rdhost2.reloaded'
EOF
expect EXPECT_SYSEXT="''" EXPECT_CONFEXT="''" FEATURES=skip
put /etc/rdext-check.d/reload.sh <<'EOF'
# The manager after rdext merges on the booted system (sourced by rdext-check).
pid_of() { systemctl show -P MainPID "$1"; }
prop() { systemctl show -P "$2" "$1"; }
rdext_ok() {  # what ARGS...: runs rdext, shows its output
    local what=$1 out rc
    shift
    out=$(rdext "$@" 2>&1)
    rc=$?
    echo "$out" | sed 's/^/RDEXT-CHECK: info rdext: /'
    check "$what (exit $rc)" [ "$rc" = 0 ]
}
systemctl start rdhost.service rdhost2.service
pid0=$(pid_of rdhost.service)
pid2=$(pid_of rdhost2.service)
check "rdreload.service is unknown before the merge" eval '! systemctl cat rdreload.service >/dev/null 2>&1'
cp /var/lib/rdreload-stash/rdreload.raw /var/lib/extensions/

# 1. --no-reload
rdext_ok "rdext refresh --no-reload" refresh --no-reload
check "--no-reload: the extension is merged" test -f /usr/lib/systemd/system/rdreload.service
check "--no-reload: the manager was not reloaded (rdhost.service needs a daemon-reload)" \
    test "$(prop rdhost.service NeedDaemonReload)" = yes
check "--no-reload: rdhost.service not restarted" test "$(pid_of rdhost.service)" = "$pid0"
check "--no-reload: rdreload-ext.service not started" eval '! systemctl -q is-active rdreload-ext.service'
check "--no-reload: rdhost2.service not reloaded" test ! -e /run/rdhost2.reloaded
rdext_ok "rdext unmerge --no-reload" unmerge --no-reload
systemctl daemon-reload

# 2. refresh: reload and restarts, no daemon-reload by hand
pid0=$(pid_of rdhost.service)
rdext_ok "rdext refresh" refresh
check "systemctl cat rdreload.service works after the refresh" systemctl cat rdreload.service
check "systemctl start rdreload.service works and it ran" eval 'systemctl start rdreload.service && test -f /run/rdreload.ran'
check "the manager was reloaded: rdhost.service needs no daemon-reload" \
    test "$(prop rdhost.service NeedDaemonReload)" = no
check "EXTENSION_RESTART_UNITS: rdhost.service restarted" \
    wait_for eval 'p=$(pid_of rdhost.service); [ "$p" != 0 ] && [ "$p" != "$pid0" ]'
check "rdhost.service runs with the extension's drop-in" \
    eval 'prop rdhost.service Environment | grep -qw RDRELOAD=1'
check "EXTENSION_RESTART_UNITS: the extension's rdreload-ext.service started" \
    wait_for systemctl -q is-active rdreload-ext.service
check "EXTENSION_RELOAD_OR_RESTART_UNITS: rdhost2.service reloaded" wait_for test -f /run/rdhost2.reloaded
check "EXTENSION_RELOAD_OR_RESTART_UNITS: rdhost2.service not restarted" test "$(pid_of rdhost2.service)" = "$pid2"

# 3. a refresh that changes nothing tells the manager nothing
pid1=$(pid_of rdhost.service)
rdext_ok "rdext refresh, nothing changed" refresh
check "unchanged refresh: rdhost.service not restarted" test "$(pid_of rdhost.service)" = "$pid1"

# 4. unmerge
rdext_ok "rdext unmerge" unmerge
check "after unmerge the manager no longer knows rdreload.service" \
    eval '! systemctl cat rdreload.service >/dev/null 2>&1'
check "after unmerge rdhost.service restarted" \
    wait_for eval 'p=$(pid_of rdhost.service); [ "$p" != 0 ] && [ "$p" != "$pid1" ]'
check "after unmerge rdhost.service runs without the drop-in" \
    eval '! prop rdhost.service Environment | grep -qw RDRELOAD=1'
check "after unmerge rdreload-ext.service (its file gone) is stopped" \
    wait_for eval '! systemctl -q is-active rdreload-ext.service'
EOF
root_disk
boot_vm "$(initrd_for "$kind")" "" "$WORK/root.img"
expect_check_pass
