#!/usr/bin/env bash
# The VM harness's own safeguards, without booting a VM:
#  - the guest checker (guest/rdext-check.sh, run here on the host with a
#    scratch configuration) fails the verdict when a drop-in does not load
#    or runs no check, reports the checks each drop-in ran, and prints the
#    boot's token with PASS;
#  - expect_check_pass (lib.sh) wants PASS with this boot's token and a
#    report from every drop-in the scenario installed;
#  - a QEMU that fails to start fails the boot, even with an earlier
#    boot's log (PASS and all) in place.
# Needs qemu-system-x86_64 (it only has to fail to start) and RDEXT, the
# rdext the checker's "rdext status" runs.
source "$(dirname "$0")/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (run scripts/setup-debian.sh)"
[[ -x ${RDEXT:-} ]] || skip "RDEXT (the rdext binary) not set"

T=$(mktemp -d /tmp/rdext-vm-harness.XXXXXX)
trap 'rm -rf "$T"' EXIT
failures=0
bad() { printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2; failures=$((failures + 1)); }
good() { log "ok: $*"; }

mkdir -p "$T/bin"
ln -s "$RDEXT" "$T/bin/rdext"
# checker DROPIN-BODY...: runs the checker with one drop-in per argument
# (named d1, d2, ...), nothing else expected; output in $T/out, exit in $RC.
checker() {
    local i=0 body
    rm -rf "$T/check.d"
    mkdir -p "$T/check.d"
    for body in "$@"; do
        i=$((i + 1))
        printf '%s\n' "$body" >"$T/check.d/d$i.sh"
    done
    printf 'FEATURES=skip\n' >"$T/check.conf"
    printf 'console=ttyS0 rdext.testtoken=%s quiet\n' "$TOKEN" >"$T/cmdline"
    RC=0
    PATH=$T/bin:$PATH RDEXT_CHECK_CONF=$T/check.conf RDEXT_CHECK_D=$T/check.d RDEXT_CHECK_CMDLINE=$T/cmdline \
        bash "$VM_DIR/guest/rdext-check.sh" >"$T/out" 2>&1 || RC=$?
}
has() { grep -qE -- "$1" "$T/out"; }
TOKEN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

checker 'check "one passing check" true'
if [[ $RC == 0 ]] && has "^RDEXT-CHECK: PASS token=$TOKEN$" && has '^RDEXT-CHECK: dropin d1 ran 1 checks$'; then
    good "a drop-in with one check: PASS with the token, 1 check reported"
else
    bad "a drop-in with one check: exit $RC, $(tr '\n' '|' <"$T/out")"
fi

checker 'check "never reached" true
if then fi'
if [[ $RC != 0 ]] && ! has 'PASS' && has 'RDEXT-CHECK: FAIL drop-in d1 does not load'; then
    good "a drop-in with a syntax error fails the verdict"
else
    bad "a drop-in with a syntax error: exit $RC, $(tr '\n' '|' <"$T/out")"
fi

checker 'check "runs" true' 'echo "RDEXT-CHECK: info no assertion here"'
if [[ $RC != 0 ]] && ! has 'PASS' && has 'RDEXT-CHECK: FAIL drop-in d2 ran no check' &&
    has '^RDEXT-CHECK: dropin d2 ran 0 checks$'; then
    good "a drop-in that runs no check fails the verdict"
else
    bad "a drop-in that runs no check: exit $RC, $(tr '\n' '|' <"$T/out")"
fi

# The host side: expect_check_pass on logs written here. Each call runs in
# a subshell, as die exits.
OVERLAY=$T/overlay
mkdir -p "$OVERLAY/etc/rdext-check.d"
: >"$OVERLAY/etc/rdext-check.d/mine.sh"
SERIAL_LOG=$T/serial.log
SCENARIO_START=$SECONDS BOOT_SECONDS=0 BOOT_TOKEN=$TOKEN
host_verdict() { # host_verdict LOG-LINES...: 0 if expect_check_pass accepts them
    printf '%s\r\n' "$@" >"$SERIAL_LOG"
    (expect_check_pass) >"$T/host.out" 2>&1
}
if host_verdict "RDEXT-CHECK: dropin mine ran 2 checks" "RDEXT-CHECK: PASS token=$TOKEN"; then
    good "expect_check_pass accepts PASS with this boot's token and the drop-in's report"
else
    bad "expect_check_pass refused a good log: $(tr '\n' '|' <"$T/host.out")"
fi
if host_verdict "RDEXT-CHECK: dropin mine ran 2 checks" "RDEXT-CHECK: PASS token=0123456789abcdef"; then
    bad "expect_check_pass accepted the PASS of another boot (token)"
else
    good "expect_check_pass refuses another boot's PASS"
fi
if host_verdict "RDEXT-CHECK: PASS token=$TOKEN"; then
    bad "expect_check_pass accepted a log without the report of drop-in mine"
else
    good "expect_check_pass refuses a log where a drop-in reported nothing"
fi

# A QEMU that cannot start, with an old log that has everything in place:
# once with a missing kernel, once with an option QEMU does not know.
VM_KERNEL=$T/no-such-kernel
printf '%s\r\n' "RDEXT-CHECK: dropin mine ran 2 checks" "RDEXT-CHECK: PASS token=$TOKEN" >"$SERIAL_LOG"
if (qemu_boot "$T/no-such-initrd" "" "" && expect_check_pass) >"$T/host.out" 2>&1; then
    bad "a QEMU that could not start (missing kernel) passed on an old log"
elif grep -q 'QEMU failed' "$T/host.out" && ! grep -q PASS "$SERIAL_LOG" 2>/dev/null; then
    good "a QEMU that could not start fails the boot, and the old log is gone"
else
    bad "a QEMU that could not start: unexpected output: $(tr '\n' '|' <"$T/host.out")"
fi
: >"$T/kernel"
printf '%s\r\n' "RDEXT-CHECK: PASS token=$TOKEN" >"$SERIAL_LOG"
if (VM_KERNEL=$T/kernel RDEXT_VM_QEMU_ARGS=-no-such-option qemu_boot "$T/kernel" "" "" &&
    expect_check_pass) >"$T/host.out" 2>&1; then
    bad "a QEMU with a bad option passed on an old log"
else
    good "a QEMU with a bad option fails the boot"
fi

(( failures == 0 )) || die "$failures harness check(s) failed"
log "PASS"
