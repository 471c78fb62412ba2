#!/bin/bash
# sysext_options: systemd-sysext's options and settings beyond the mutable
# modes, as a drop-in must take them:
#  - against systemd-sysext 257 (Debian trixie's, run in the builders'
#    trixie chroot) on identical roots: --force (an extension for another
#    OS, one without a release file, one shipping usr/lib/os-release),
#    --noexec=yes/no, SYSTEMD_SYSEXT_HIERARCHIES (a replacement list, an
#    extra hierarchy, invalid lists); per case both must agree on the exit
#    status, what is merged where, noexec on the merged /usr and whether the
#    extension's files are visible;
#  - rdext alone (257 has neither): --always-refresh= (a refresh with
#    nothing changed is "unchanged", with --always-refresh=yes a real
#    refresh); sysext.conf / confext.conf (systemd v259, sysext.conf(5)):
#    Mutable= and ImagePolicy= from /etc/systemd/sysext.conf, its drop-ins
#    in sysext.conf.d/ (later names win, /etc over /usr/lib for one name),
#    the precedence --mutable= > SYSTEMD_SYSEXT_MUTABLE_MODE > file >
#    rd.sysext.mutable=, and the trust rule: the file of a root that is
#    not the running system may only tighten the image policy;
#  - confext: --noexec=no drops noexec from the merged /etc, and
#    SYSTEMD_CONFEXT_HIERARCHIES moves the confext merge.
source "$(dirname "$0")/lib.sh"
require_root_env
SRC_DIR=$(cd "$LIB_DIR/../.." && pwd)

B=$TEST_DIR/build
make_ext_tree "$B/one" one sysext -- "usr/share/one/f=one" "opt/one/f=one" "srv/data/one=one"
make_ext_tree "$B/foreign" foreign sysext ID=otheros VERSION_ID=1 -- "usr/share/foreign/f=foreign"
make_ext_tree "$B/norel" norel sysext @none -- "usr/share/norel/f=norel"
make_ext_tree "$B/osrel" osrel sysext -- "usr/share/osrel/f=osrel" "usr/lib/os-release=ID=debian"

# ---- part 1: against systemd-sysext 257 -------------------------------------
TREE=$(bash -c 'source "$1/scripts/builders-env.sh"; builders_tree trixie' _ "$SRC_DIR") || TREE=
if [[ -n $TREE && -x $TREE/usr/bin/systemd-sysext ]]; then
    # observe, run where the merge is visible ($R the root): one line of facts.
    OBSERVE='
m() { mountpoint -q "$R$1" && echo merged || { [[ -e $R$1 ]] && echo plain || echo missing; }; }
nx=-; mountpoint -q "$R/usr" && { findmnt -no OPTIONS "$R/usr" | grep -qw noexec && nx=noexec || nx=exec; }
seen=; for e in one foreign norel osrel; do [[ -e $R/usr/share/$e/f ]] && seen+=$e,; done
echo "usr=$(m /usr) opt=$(m /opt) srv-data=$(m /srv/data) usr-exec=$nx files=${seen:-none}"'

    declare -a DIFFS=()
    N=0
    # case NAME EXTS ENV ARGS: EXTS the extensions to install, ENV "VAR=VALUE" or "".
    case_() {
        local name=$1 exts=$2 envs=$3 args=$4 r out_rd out_sd e
        N=$((N + 1))
        check "257: $name"
        for impl in rdext sd; do
            r=$TEST_DIR/$name-$impl
            make_root "$r"
            mkdir -p "$r/srv/data"
            echo base >"$r/srv/data/base"
            for e in $exts; do cp -a "$B/$e" "$r/var/lib/extensions/$e"; done
        done
        r=$TEST_DIR/$name-rdext
        bind_root "$r"
        out_rd=$( rc=0; env $envs "$RDEXT" --root="$r" $args merge >"$TEST_DIR/$name.rd.log" 2>&1 || rc=1
            echo "rc=$rc $(R=$r bash -c "$OBSERVE")"; env $envs "$RDEXT" --root="$r" unmerge >/dev/null 2>&1 || true )
        out_sd=$(in_trixie "$TEST_DIR/$name-sd" "
            rc=0; env $envs systemd-sysext --root=/tmp/r $args merge >/tmp/log 2>&1 || rc=1
            echo \"rc=\$rc \$( $OBSERVE )\"; cat /tmp/log >&2" 2>"$TEST_DIR/$name.sd.log")
        printf '%-24s rdext:  %s\n%-24s 257:    %s\n' "$name" "$out_rd" "" "$out_sd" >&2
        if [[ -n ${EXPECTED[$name]:-} ]]; then
            [[ $out_rd == "${EXPECTED[$name]}" && $out_rd != "$out_sd" ]] ||
                DIFFS+=("$name (an expected difference that changed)")
            EXPLAINED+=("$name")
        elif [[ $out_rd != "$out_sd" ]]; then
            DIFFS+=("$name")
        fi
    }
    # Known differences, each with its reason (README "Differences from
    # systemd-sysext"): rdext skips a broken image and merges the rest; 257
    # fails the whole merge on an image that ships usr/lib/os-release (it
    # cannot read its metadata, --force or not).
    declare -A EXPECTED=(
        [force-os-release]="rc=0 usr=merged opt=merged srv-data=plain usr-exec=exec files=one,"
        [no-force-os-release]="rc=0 usr=merged opt=merged srv-data=plain usr-exec=exec files=one,"
    )
    declare -a EXPLAINED=()

    case_ foreign              'one foreign' ''  ''
    case_ force-foreign        'one foreign' ''  '--force'
    case_ force-no-release     'one norel'   ''  '--force'
    case_ force-os-release     'one osrel'   ''  '--force'
    case_ no-force-os-release  'one osrel'   ''  ''
    case_ noexec-default       'one'         ''  ''
    case_ noexec-yes           'one'         ''  '--noexec=yes'
    case_ noexec-no            'one'         ''  '--noexec=no'
    case_ noexec-false         'one'         ''  '--noexec=false'
    case_ hier-usr-only        'one'         'SYSTEMD_SYSEXT_HIERARCHIES=/usr'  ''
    case_ hier-extra           'one'         'SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/srv/data'  ''
    case_ hier-trailing-slash  'one'         'SYSTEMD_SYSEXT_HIERARCHIES=/usr/:/opt'  ''
    case_ hier-relative        'one'         'SYSTEMD_SYSEXT_HIERARCHIES=usr'  ''
    case_ hier-dotdot          'one'         'SYSTEMD_SYSEXT_HIERARCHIES=/usr/../opt'  ''
    case_ hier-empty           'one'         'SYSTEMD_SYSEXT_HIERARCHIES='  ''
    case_ hier-empty-element   'one'         'SYSTEMD_SYSEXT_HIERARCHIES=/usr::/opt'  ''
    case_ hier-slash           'one'         'SYSTEMD_SYSEXT_HIERARCHIES=/'  ''

    check "257: $N cases, ${#EXPLAINED[@]} explained differences (${EXPLAINED[*]}), ${#DIFFS[@]} others"
    (( ${#DIFFS[@]} == 0 )) || defer_fail "rdext and systemd-sysext 257 differ in: ${DIFFS[*]} (logs in $TEST_DIR)"
else
    skip_part "no trixie tree with systemd-sysext 257 (scripts/builders-env.sh)"
fi

# ---- part 2: rdext alone ----------------------------------------------------
R=$TEST_DIR/root
make_root "$R"
cp -a "$B/one" "$R/var/lib/extensions/one"
make_ext_tree "$B/cx" cx confext -- "etc/cx/f=cx"
cp -a "$B/cx" "$R/var/lib/confexts/cx"
bind_root "$R"
json_op() { grep -o '"operation":"[a-z-]*"' "$TEST_DIR/last.out" | head -1 | cut -d'"' -f4; }

check "--always-refresh: a refresh with nothing changed is unchanged; =yes refreshes"
run_rdext --root="$R" merge; expect_rc 0
# The first refresh after a merge rebuilds once (a merge does not walk
# directory images, refresh.h); the next one finds nothing changed.
run_rdext --root="$R" refresh; expect_rc 0
run_rdext --root="$R" --json=short refresh; expect_rc 0
[[ $(json_op) == unchanged ]] || fail "refresh with nothing changed: operation '$(json_op)', want unchanged"
run_rdext --root="$R" --json=short --always-refresh=yes refresh; expect_rc 0
[[ $(json_op) == refresh ]] || fail "--always-refresh=yes: operation '$(json_op)', want refresh"
run_rdext --root="$R" --json=short --always-refresh=no refresh; expect_rc 0
[[ $(json_op) == unchanged ]] || fail "--always-refresh=no: operation '$(json_op)', want unchanged"
run_rdext --root="$R" --always-refresh=perhaps refresh
expect_rc 2
expect_stderr_line "always-refresh" "perhaps"

check "--noexec=no: the merged /etc is not noexec; default and --noexec=yes are"
findmnt -no OPTIONS "$R/etc" | grep -qw noexec || fail "the confext merge is not noexec by default"
findmnt -no OPTIONS "$R/usr" | grep -qw noexec && fail "the sysext merge is noexec by default"
run_rdext --root="$R" --noexec=no refresh; expect_rc 0
findmnt -no OPTIONS "$R/etc" | grep -qw noexec && fail "--noexec=no: /etc is still noexec"
run_rdext --root="$R" --noexec=yes refresh; expect_rc 0
findmnt -no OPTIONS "$R/usr" | grep -qw noexec || fail "--noexec=yes: /usr is not noexec"
run_rdext --root="$R" --noexec=maybe merge
expect_rc 2
run_rdext --root="$R" unmerge; expect_rc 0

check "SYSTEMD_CONFEXT_HIERARCHIES moves the confext merge"
mkdir -p "$R/srv/conf" "$B/cx2/srv/conf"
make_ext_tree "$B/cx2" cx2 confext -- "srv/conf/f=cx2"
cp -a "$B/cx2" "$R/var/lib/confexts/cx2"
SYSTEMD_CONFEXT_HIERARCHIES=/srv/conf run_rdext --root="$R" merge; expect_rc 0
mountpoint -q "$R/srv/conf" || fail "/srv/conf is not merged"
mountpoint -q "$R/etc" && fail "/etc is merged although SYSTEMD_CONFEXT_HIERARCHIES=/srv/conf"
assert_file_content "$R/srv/conf/f" cx2
SYSTEMD_CONFEXT_HIERARCHIES=/srv/conf run_rdext --root="$R" status; expect_rc 0
grep -q /srv/conf "$TEST_DIR/last.out" || fail "status does not name /srv/conf"
check "a hierarchy both classes claim is refused"
SYSTEMD_CONFEXT_HIERARCHIES=/usr run_rdext --root="$R" refresh
expect_rc 2
expect_stderr_line "/usr" "sysext" "confext"
SYSTEMD_CONFEXT_HIERARCHIES=/srv/conf run_rdext --root="$R" unmerge; expect_rc 0
mountpoint -q "$R/srv/conf" && fail "/srv/conf still merged after unmerge"
rm -rf "$R/var/lib/confexts/cx2"

check "SYSTEMD_SYSEXT_HIERARCHIES: a mutable extra hierarchy uses extensions.mutable/srv.data"
mkdir -p "$R/srv/data"
SYSTEMD_SYSEXT_HIERARCHIES=/usr:/srv/data run_rdext --root="$R" --mutable=yes merge; expect_rc 0
( echo w >"$R/srv/data/written" ) 2>/dev/null || fail "/srv/data is not writable in mode yes"
assert_file_content "$R/var/lib/extensions.mutable/srv.data/written" w
[[ -d $R/var/lib/extensions.mutable/.systemd-srv.data-workdir ]] || fail "no .systemd-srv.data-workdir"
SYSTEMD_SYSEXT_HIERARCHIES=/usr:/srv/data run_rdext --root="$R" unmerge; expect_rc 0
mountpoint -q "$R/srv/data" && fail "/srv/data still merged after unmerge"
rm -rf "$R/var/lib/extensions.mutable"

# ---- configuration files ----
mkconf() { mkdir -p "$(dirname "$1")"; printf '%s\n' "${@:2}" >"$1"; }
usr_writable() { ( echo x >"$R/usr/share/probe" ) 2>/dev/null && rm -f "$R/usr/share/probe"; }
merged_with() {  # ARGS...: merge, report rw/ro for /usr, unmerge
    local w=ro
    run_rdext --root="$R" "$@" merge; expect_rc 0
    usr_writable && w=rw
    run_rdext --root="$R" unmerge; expect_rc 0
    echo $w
}
# The running system's configuration is not this root's: the root's own
# file is what rdext reads here (and may only tighten the image policy).
check "sysext.conf: Mutable=yes from the root's /etc/systemd/sysext.conf"
mkconf "$R/etc/systemd/sysext.conf" "[Sysext]" "Mutable=yes"
[[ $(merged_with) == rw ]] || fail "Mutable=yes in sysext.conf: /usr is read-only"
check "sysext.conf: --mutable= and SYSTEMD_SYSEXT_MUTABLE_MODE win over the file"
[[ $(merged_with --mutable=no) == ro ]] || fail "--mutable=no did not win over Mutable=yes"
[[ $(SYSTEMD_SYSEXT_MUTABLE_MODE=no merged_with) == ro ]] || fail "the environment did not win over Mutable=yes"
check "sysext.conf: the file wins over rd.sysext.mutable="
echo "rd.sysext.mutable=no" >"$TEST_DIR/cmdline-no"
[[ $(merged_with --cmdline-file="$TEST_DIR/cmdline-no") == rw ]] || fail "rd.sysext.mutable=no won over Mutable=yes"
check "sysext.conf.d: drop-ins after the main file, later names win, /etc over /usr/lib"
mkconf "$R/usr/lib/systemd/sysext.conf.d/10-a.conf" "[Sysext]" "Mutable=no"
[[ $(merged_with) == ro ]] || fail "drop-in 10-a.conf (Mutable=no) did not override the main file"
mkconf "$R/etc/systemd/sysext.conf.d/20-b.conf" "[Sysext]" "Mutable=yes"
[[ $(merged_with) == rw ]] || fail "drop-in 20-b.conf did not win over 10-a.conf"
mkconf "$R/etc/systemd/sysext.conf.d/10-a.conf" "[Sysext]" "Mutable=yes"
mkconf "$R/etc/systemd/sysext.conf.d/20-b.conf" "# empty"
[[ $(merged_with) == rw ]] || fail "/etc/systemd/sysext.conf.d/10-a.conf did not mask /usr/lib's"
rm -rf "$R/etc/systemd" "$R/usr/lib/systemd" "$R/var/lib/extensions.mutable"
check "confext.conf: [Confext] Mutable=yes makes /etc writable, /usr stays read-only"
mkconf "$R/etc/systemd/confext.conf" "[Confext]" "Mutable=yes"
run_rdext --root="$R" merge; expect_rc 0
( echo x >"$R/etc/probe" ) 2>/dev/null || fail "confext.conf Mutable=yes: /etc is read-only"
usr_writable && fail "confext.conf made /usr writable"
run_rdext --root="$R" unmerge; expect_rc 0
rm -rf "$R/etc/systemd" "$R/var/lib/extensions.mutable" "$R/etc/probe"
check "sysext.conf: an unknown Mutable= is warned about and ignored"
mkconf "$R/etc/systemd/sysext.conf" "[Sysext]" "Mutable=sometimes"
[[ $(merged_with) == ro ]] || fail "Mutable=sometimes changed the merge"
expect_stderr_line "sysext.conf" "sometimes"
rm -rf "$R/etc/systemd"

check "sysext.conf ImagePolicy= of the root may tighten: a directory image refused by root=verity"
mkconf "$R/etc/systemd/sysext.conf" "[Sysext]" "ImagePolicy=root=verity+absent:usr=verity+absent"
run_rdext --root="$R" --json=short merge; expect_rc 0
assert_not_merged "$R" /usr
grep -q '"name":"one"[^}]*"result":"skipped"' "$TEST_DIR/last.out" || fail "one was not skipped by the root's ImagePolicy="
run_rdext --root="$R" unmerge; expect_rc 0
check "sysext.conf ImagePolicy= of the root may not loosen --image-policy="
mkconf "$R/etc/systemd/sysext.conf" "[Sysext]" "ImagePolicy=*"
run_rdext --root="$R" --image-policy='root=verity+absent:usr=verity+absent' merge; expect_rc 0
assert_not_merged "$R" /usr
run_rdext --root="$R" unmerge; expect_rc 0
check "sysext.conf: an invalid ImagePolicy= of the root refuses every image (fail closed)"
mkconf "$R/etc/systemd/sysext.conf" "[Sysext]" "ImagePolicy=root=bogus"
run_rdext --root="$R" merge; expect_rc 0
assert_not_merged "$R" /usr
expect_stderr_line "sysext.conf" "bogus|invalid|unknown"
run_rdext --root="$R" unmerge; expect_rc 0
rm -rf "$R/etc/systemd"
check "no configuration: merged as before"
run_rdext --root="$R" merge; expect_rc 0
assert_merged "$R" /usr one
run_rdext --root="$R" unmerge; expect_rc 0

finish
