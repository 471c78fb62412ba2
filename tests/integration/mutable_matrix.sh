#!/bin/bash
# mutable_matrix: rdext against systemd-sysext 257 (Debian trixie's, run in
# the builders' trixie chroot) on identical roots, for every combination of
#   - the mutable mode: no, auto, yes, import, ephemeral, ephemeral-import;
#   - the state of the hierarchy under test: read-only (/usr on a read-only
#     bind mount), writable (/usr), missing (no /opt), empty (/opt with no
#     files). /usr for the first two (a read-only /usr is the common case,
#     Flatcar's or a verity /usr); /opt for the last two, since a root
#     without /usr or with an empty one is no OS to extend, while a root
#     without /opt or with an empty one is the everyday case. The other
#     hierarchy is the control: plain, writable, no mutable directory;
#   - the state of /var/lib/extensions.mutable/<hierarchy under test>:
#     absent, present (0755, as the hierarchy), a link elsewhere in the root,
#     a dangling link, a link to the hierarchy itself, present with 0700;
#   - where the mode comes from: --mutable=, SYSTEMD_SYSEXT_MUTABLE_MODE, or
#     the root's /etc/systemd/sysext.conf [Sysext] Mutable=. systemd 257
#     reads no sysext.conf (v258+), so in that column 257 gets the same mode
#     through --mutable= (the file is in both roots all the same).
# 6 x 4 x 6 x 3 = 432 cases. Per case both tools run in the same way (one
# driver script, run by each in its own mount namespace) and must agree on
# one observation line: exit status of merge and unmerge; the hierarchies'
# modes before, during and after the merge; which are overlays; which files
# show (the extension's, the base's, the mutable directory's, the link
# target's); whether a write to each hierarchy succeeds and where it is
# found after the unmerge (the hierarchy itself, extensions.mutable, the
# link's target, nowhere: a tmpfs); what extensions.mutable holds after.
# A difference must be explained by the EXPLAINED table (the README's
# "Differences from systemd-sysext"), else the test fails; an explanation
# that no longer explains anything fails it too.
source "$(dirname "$0")/lib.sh"
require_root_env
find_trixie_tree
umask 022

MODES=(no auto yes import ephemeral ephemeral-import)
HSTATES=(ro rw missing empty)   # ro, rw: /usr; missing, empty: /opt
DSTATES=(absent present elsewhere dangling hier perms)
SOURCES=(option env conf)

# Known, intended differences: case glob (MODE/HSTATE/DSTATE/SOURCE) and the
# reason. Every difference must match one; every entry must match one. In
# each, rdext merges (exit 0) and neither shows nor writes the link's target
# (explained_shape), so a change there is no longer "explained".
declare -A EXPLAINED=(
    ['auto/*/elsewhere/*']="extensions.mutable/<h> links elsewhere in the root: 257 takes the link's target as \
the upper layer, rdext merges <h> read-only with a warning (the target would receive the writes and its \
parent the work directory; README, Differences: Mutable merges)"
    ['yes/*/elsewhere/*']="extensions.mutable/<h> links elsewhere in the root: 257 fails the whole merge \
(its mkdir of the link: File exists), rdext merges <h> read-only with a warning and the rest as asked \
(a link's target would receive the writes; a broken piece is skipped, not fatal)"
    ['yes/*/dangling/*']="extensions.mutable/<h> a dangling link: 257 fails the whole merge (its mkdir \
of the link: File exists), rdext merges <h> read-only with a warning and the rest as asked (a broken \
piece is skipped, not fatal; creating the link's target would write outside extensions.mutable)"
)

explained_shape() { [[ $1 == "rc=0 "* && $1 != *elsewhere* ]]; }

C=$TEST_DIR/c   # templates, case list, driver and per-case roots
mkdir -p "$C/tpl" "$C/w"
make_ext_tree "$TEST_DIR/one" one sysext -- "usr/share/one/f=one" "opt/one/f=one"

# Templates, one per (hierarchy state, mutable directory state).
for hs in "${HSTATES[@]}"; do
    case $hs in ro | rw) h=usr ;; *) h=opt ;; esac
    for ds in "${DSTATES[@]}"; do
        t=$C/tpl/$hs-$ds
        mkdir -p "$t"/{etc,usr/share,usr/lib,opt,srv/elsewhere,var/lib/extensions.mutable}
        # /etc/os-release a file of its own, so the root is an OS whatever /usr holds
        printf 'ID=debian\nVERSION_ID=12\n' >"$t/etc/os-release"
        echo base >"$t/usr/share/base-file"
        echo base >"$t/opt/base-file"
        echo elsewhere >"$t/srv/elsewhere/from-elsewhere"
        mkdir -p "$t/var/lib/extensions"
        cp -a "$TEST_DIR/one" "$t/var/lib/extensions/one"
        case $hs in missing) rm -rf "$t/opt" ;; empty) rm -f "$t/opt/base-file" ;; esac
        m=$t/var/lib/extensions.mutable/$h
        case $ds in
            absent) ;;
            present) mkdir -m 0755 "$m"; echo mutable >"$m/from-mutable" ;;
            perms) mkdir -m 0700 "$m"; echo mutable >"$m/from-mutable" ;;
            elsewhere) ln -s /srv/elsewhere "$m" ;;
            dangling) ln -s /nonexistent "$m" ;;
            hier) ln -s "/$h" "$m" ;;
        esac
    done
done

N=0
for mode in "${MODES[@]}"; do for hs in "${HSTATES[@]}"; do for ds in "${DSTATES[@]}"; do
    for src in "${SOURCES[@]}"; do echo "$mode $hs $ds $src"; N=$((N + 1)); done
done; done; done >"$C/list"

# The driver: KIND (rdext|sd) TOOL CASES-DIR; one observation line per case
# on stdout, "MODE/HSTATE/DSTATE/SOURCE observation". It runs in the tool's
# mount namespace, so the read-only bind mount is made there.
cat >"$C/driver.sh" <<'EOF'
kind=$1 tool=$2 C=$3
umask 022
# top_fs PATH: the file system type of the topmost mount at PATH, or "-"
top_fs() {
    local fs=- l f
    while read -r -a f; do
        [[ ${f[4]} == "$1" ]] || continue
        for ((l = 6; l < ${#f[@]}; l++)); do [[ ${f[l]} == - ]] && { fs=${f[l + 1]}; break; }; done
    done </proc/self/mountinfo
    echo "$fs"
}
modes() { local h s; for h in usr opt; do s=$(stat -c %a "$R/$h" 2>/dev/null) || s=-; printf '%s:%s,' $h "$s"; done; }
merged() { local h; for h in usr opt; do [[ $(top_fs "$R/$h") == overlay ]] && printf '%s,' $h; done; }
files() {
    local h f
    for h in usr opt; do
        for f in share/one/f one/f share/base-file base-file from-mutable from-elsewhere; do
            [[ -f $R/$h/$f ]] && printf '%s/%s,' $h "$f"
        done
    done
}
mut() {
    local h m
    for h in usr opt; do
        m=$R/var/lib/extensions.mutable/$h
        if [[ -L $m ]]; then printf '%s:link,' $h
        elif [[ -d $m ]]; then printf '%s:dir%s,' $h "$(stat -c %a "$m")"
        else printf '%s:absent,' $h; fi
    done
}
while read -r mode hs ds src; do
    id=$mode/$hs/$ds/$src
    R=$C/w/${id//\//-}-$kind
    cp -a "$C/tpl/$hs-$ds" "$R"
    if [[ $src == conf ]]; then
        mkdir -p "$R/etc/systemd"
        printf '[Sysext]\nMutable=%s\n' "$mode" >"$R/etc/systemd/sysext.conf"
    fi
    mount --bind "$R" "$R"
    if [[ $hs == ro ]]; then mount --bind "$R/usr" "$R/usr"; mount -o remount,bind,ro "$R/usr"; fi
    args=() envs=()
    case $src in
        option) args=(--mutable="$mode") ;;
        env) envs=(SYSTEMD_SYSEXT_MUTABLE_MODE="$mode") ;;
        conf) [[ $kind == sd ]] && args=(--mutable="$mode") ;;  # 257 reads no sysext.conf
    esac
    before=$(modes)
    rc=0; env "${envs[@]}" "$tool" --root="$R" "${args[@]}" merge >"$R.merge.log" 2>&1 || rc=$?
    during=$(modes) on=$(merged) seen=$(files)
    wrote=
    for h in usr opt; do ( echo probe >"$R/$h/probe-$h" ) 2>/dev/null && wrote+=$h,; done
    urc=0; env "${envs[@]}" "$tool" --root="$R" "${args[@]}" unmerge >"$R.unmerge.log" 2>&1 || urc=$?
    lands=
    for h in usr opt; do
        l=
        [[ $(top_fs "$R/$h") != overlay && -f $R/$h/probe-$h ]] && l+=hierarchy+
        m=$R/var/lib/extensions.mutable/$h
        [[ ! -L $m && -f $m/probe-$h ]] && l+=mutable+
        [[ -f $R/srv/elsewhere/probe-$h ]] && l+=elsewhere+
        [[ $wrote == *$h,* && ! $l ]] && l=tmpfs+
        lands+="$h:${l:-refused},"
    done
    echo "$id rc=$rc before=$before during=$during merged=${on:-none} files=${seen:-none} writes=$lands unmerge-rc=$urc after=$(modes) merged-after=$(merged) mutable-after=$(mut)"
    umount -R "$R"
    # the logs stay; thousands of files left would slow the cleanup's walk
    [[ ${KEEP:-} == 1 ]] || rm -rf "$R"
done <"$C/list"
EOF

# rdext in this namespace, 257 in the trixie chroot (the case roots under
# its /tmp/r, see in_trixie); both at once, one per core.
t0=$SECONDS
bash "$C/driver.sh" rdext "$RDEXT" "$C" >"$TEST_DIR/rdext.out" 2>"$TEST_DIR/rdext.err" &
rd_pid=$!
sd_rc=0
in_trixie "$C" 'exec bash /tmp/r/driver.sh sd systemd-sysext /tmp/r' \
    >"$TEST_DIR/sd.out" 2>"$TEST_DIR/sd.err" || sd_rc=$?
rd_rc=0; wait "$rd_pid" || rd_rc=$?
log "both ran $N cases in $((SECONDS - t0)) s"
(( rd_rc == 0 )) || { cat "$TEST_DIR/rdext.err" >&2; fail "the rdext driver failed (exit $rd_rc)"; }
(( sd_rc == 0 )) || { cat "$TEST_DIR/sd.err" >&2; fail "the 257 driver failed (exit $sd_rc)"; }
[[ $(wc -l <"$TEST_DIR/rdext.out") == "$N" && $(wc -l <"$TEST_DIR/sd.out") == "$N" ]] ||
    fail "expected $N observations from each tool (rdext $(wc -l <"$TEST_DIR/rdext.out"), 257 $(wc -l <"$TEST_DIR/sd.out"))"

D=0 E=0
declare -a UNEXPLAINED=()
declare -A USED=()
while read -r id rd_obs && read -r id2 sd_obs <&3; do
    [[ $id == "$id2" ]] || fail "observations out of step: $id vs $id2"
    [[ $rd_obs == "$sd_obs" ]] && continue
    D=$((D + 1))
    why=
    for pat in "${!EXPLAINED[@]}"; do
        # shellcheck disable=SC2053  # a glob on purpose
        if [[ $id == $pat ]] && explained_shape "$rd_obs"; then why=${EXPLAINED[$pat]}; USED[$pat]=1; break; fi
    done
    if [[ $why ]]; then
        E=$((E + 1))
        printf 'explained %s\n  rdext: %s\n  257:   %s\n  why:   %s\n' "$id" "$rd_obs" "$sd_obs" "$why" >&2
    else
        UNEXPLAINED+=("$id")
        printf 'DIFFERS %s\n  rdext: %s\n  257:   %s\n' "$id" "$rd_obs" "$sd_obs" >&2
    fi
done <"$TEST_DIR/rdext.out" 3<"$TEST_DIR/sd.out"

for pat in "${!EXPLAINED[@]}"; do
    [[ ${USED[$pat]:-} ]] || defer_fail "the explanation for '$pat' matches no difference: remove it"
done
check "$N cases, $D differences ($E explained)"
echo "$N cases, $D differences ($E explained)"
(( ${#UNEXPLAINED[@]} == 0 )) ||
    defer_fail "${#UNEXPLAINED[@]} unexplained differences: ${UNEXPLAINED[*]} (KEEP=1 keeps the logs)"
finish
