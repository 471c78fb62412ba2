#!/bin/bash
# Differential test of the extension-release compatibility rules: every case
# under cases/ is built as a directory extension, merged by rdext in one copy
# of a root and by the stock systemd-sysext (252) in another, and the set of
# extensions each one merged is compared with the case's expected verdict.
#
# A case directory holds:
#   case.conf            key=value lines ('#' starts a comment):
#     name=NAME          the image name (the directory's name in the root)
#     class=sysext|confext
#     expect=merged|skipped        the verdict per sysext-compat.md
#     systemd252=merged|skipped|failed|n/a  only where systemd 252 is known to
#                        differ (failed: its merge of this case alone fails)
#     note=TEXT          why it differs
#     initrd=1           the root carries etc/initrd-release
#     strict0=FILES / strict1=FILES  set user.extension-release.strict=0/1 on
#                        these release files (space separated)
#   os-release           the root's etc/os-release (absent: no etc/os-release;
#                        without usr-lib-os-release it is usr/lib/os-release
#                        and etc/os-release links to it)
#   usr-lib-os-release   optional separate usr/lib/os-release
#   extension-release.*  release files shipped by the image, names verbatim
#
# Cases sharing a host os-release are merged together in one root (a name
# clash opens another root). When a whole merge fails, the group's cases are
# re-run one per root so each still gets a verdict; for rdext that failure is
# itself an error (a bad extension must be skipped, not fail the merge). A
# case whose systemd-sysext merge fails even alone gets the verdict
# "failed", a disagreement unless the case documents it (systemd252=failed);
# a group that fails although each of its cases merges alone is an error.
#
# IMPL=systemd-sysext checks only systemd-sysext against the expectations.
TEST_NAME=differential   # read by lib.sh (the script is called run.sh)
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
require_root_env

CASES_DIR=$(cd "$(dirname "$0")" && pwd)/cases
W=$TEST_DIR/diff
mkdir -p "$W"

declare -A C_NAME C_CLASS C_EXPECT C_SD C_NOTE C_INITRD C_STRICT0 C_STRICT1 C_GROUP
declare -A R_RDEXT R_SD
declare -A GROUP_KEY_OF GROUP_NAMES
CASES=()
GROUPS_LIST=()
ERRORS=()

conf_get() {
    # conf_get FILE KEY: value of KEY (the first '=' splits), empty if absent
    sed -n "s/^$2=//p" "$1" | head -n1
}

load_cases() {
    local d c key gi n
    for d in "$CASES_DIR"/*/; do
        c=$(basename "$d")
        CASES+=("$c")
        C_NAME[$c]=$(conf_get "$d/case.conf" name)
        C_CLASS[$c]=$(conf_get "$d/case.conf" class)
        C_EXPECT[$c]=$(conf_get "$d/case.conf" expect)
        C_SD[$c]=$(conf_get "$d/case.conf" systemd252)
        C_NOTE[$c]=$(conf_get "$d/case.conf" note)
        C_INITRD[$c]=$(conf_get "$d/case.conf" initrd)
        C_STRICT0[$c]=$(conf_get "$d/case.conf" strict0)
        C_STRICT1[$c]=$(conf_get "$d/case.conf" strict1)
        : "${C_CLASS[$c]:=sysext}"
        [[ -n ${C_NAME[$c]} && ${C_EXPECT[$c]} =~ ^(merged|skipped)$ ]] ||
            fail "case $c: case.conf needs name= and expect=merged|skipped"
        [[ ${C_CLASS[$c]} =~ ^(sysext|confext)$ ]] || fail "case $c: bad class"

        # group key: everything about the root, not the image
        key=$( { cat "$d/os-release" 2>/dev/null || echo "<none>"
                 echo "--"; cat "$d/usr-lib-os-release" 2>/dev/null || echo "<none>"
                 echo "-- initrd=${C_INITRD[$c]}"; } | sha1sum | cut -c1-12)
        gi=0
        while [[ ${GROUP_NAMES[$key.$gi]+set} && " ${GROUP_NAMES[$key.$gi]} " == *" ${C_NAME[$c]} "* ]]; do
            gi=$((gi + 1))
        done
        n=$key.$gi
        if [[ -z ${GROUP_NAMES[$n]+set} ]]; then
            GROUPS_LIST+=("$n")
            GROUP_NAMES[$n]=""
            GROUP_KEY_OF[$n]=$c
        fi
        GROUP_NAMES[$n]+=" ${C_NAME[$c]}"
        C_GROUP[$c]=$n
    done
    (( ${#CASES[@]} )) || fail "no cases under $CASES_DIR"
}

# build_root DIR CASE-DEFINING-THE-HOST: the root a group shares
build_root() {
    local root=$1 d=$CASES_DIR/$2
    make_root "$root" ID=placeholder
    rm -f "$root/etc/os-release" "$root/usr/lib/os-release"
    if [[ -f $d/usr-lib-os-release ]]; then
        cp "$d/usr-lib-os-release" "$root/usr/lib/os-release"
        [[ ! -f $d/os-release ]] || cp "$d/os-release" "$root/etc/os-release"
    elif [[ -f $d/os-release ]]; then
        cp "$d/os-release" "$root/usr/lib/os-release"
        ln -s ../usr/lib/os-release "$root/etc/os-release"
    fi
    if [[ ${C_INITRD[$2]} == 1 ]]; then
        cp "$root/usr/lib/os-release" "$root/etc/initrd-release"
    fi
}

# add_case ROOT CASE: the case's image as a directory extension in ROOT
add_case() {
    local root=$1 c=$2 d=$CASES_DIR/$2 name=${C_NAME[$2]} img reldir payload f
    if [[ ${C_CLASS[$c]} == sysext ]]; then
        img=$root/etc/extensions/$name
        reldir=$img/usr/lib/extension-release.d
        payload=$img/usr/share/difftest/$name
    else
        img=$root/var/lib/confexts/$name
        reldir=$img/etc/extension-release.d
        payload=$img/etc/difftest/$name
    fi
    mkdir -p "$reldir" "$(dirname "$payload")"
    echo "$name" >"$payload"
    for f in "$d"/extension-release.*; do cp "$f" "$reldir/"; done
    for f in ${C_STRICT0[$c]}; do setfattr -n user.extension-release.strict -v 0 "$reldir/$f"; done
    for f in ${C_STRICT1[$c]}; do setfattr -n user.extension-release.strict -v 1 "$reldir/$f"; done
}

# verdicts ROOT IMPL-LABEL CASES...: print "CASE merged|skipped" from ROOT's
# metadata, cross-checked with the payload file visible through the overlay.
verdicts() {
    local root=$1 label=$2; shift 2
    local c name list dir v
    local usr_list etc_list
    usr_list=$(merged_names "$root" /usr)
    etc_list=$(merged_names "$root" /etc)
    for c in "$@"; do
        name=${C_NAME[$c]}
        if [[ ${C_CLASS[$c]} == sysext ]]; then list=$usr_list; dir=$root/usr/share/difftest
        else list=$etc_list; dir=$root/etc/difftest; fi
        if grep -qxF -- "$name" <<<"$list"; then v=merged; else v=skipped; fi
        if [[ $v == merged && ! -f $dir/$name ]]; then
            ERRORS+=("$c: $label lists $name as merged but $dir/$name is not visible")
        elif [[ $v == skipped && -f $dir/$name ]]; then
            ERRORS+=("$c: $label does not list $name, but its file is visible")
        fi
        echo "$c $v"
    done
}

# run_group_impl IMPL GROUP ROOT-TEMPLATE CASES...: merge a copy with IMPL,
# record verdicts; returns 1 if the merge as a whole failed.
run_impl() {
    local impl=$1 root=$2; shift 2
    local ok=0
    if [[ $impl == rdext ]]; then
        run_rdext --root="$root" merge
    else
        share_root "$root"
        run_cmd systemd-sysext --root="$root" merge
    fi
    cp "$TEST_DIR/last.err" "$root.merge.err"
    [[ $LAST_RC == 0 ]] || ok=1
    # systemd 252 exits 0 when the overlay mount fails: look at stderr too
    if [[ $impl == systemd-sysext ]] && grep -qE '^Failed to' "$TEST_DIR/last.err"; then ok=1; fi
    verdicts "$root" "$impl" "$@" >"$root.verdicts"
    unmount_all_under "$root"
    return $ok
}

record() {
    # record IMPL VERDICT-FILE
    local impl=$1 c v
    while read -r c v; do
        if [[ $impl == rdext ]]; then R_RDEXT[$c]=$v; else R_SD[$c]=$v; fi
    done <"$2"
}

run_group() {
    local g=$1 gdir=$W/${1//./-} impl c
    local members=()
    for c in "${CASES[@]}"; do [[ ${C_GROUP[$c]} == "$g" ]] && members+=("$c"); done
    mkdir -p "$gdir"
    build_root "$gdir/template" "${GROUP_KEY_OF[$g]}"
    for c in "${members[@]}"; do add_case "$gdir/template" "$c"; done

    local impls=()
    is_rdext && impls+=(rdext)
    impls+=(systemd-sysext)
    for impl in "${impls[@]}"; do
        local cases_for=("${members[@]}")
        if [[ $impl == systemd-sysext ]]; then
            cases_for=()
            for c in "${members[@]}"; do [[ ${C_CLASS[$c]} == sysext ]] && cases_for+=("$c"); done
            (( ${#cases_for[@]} )) || continue
        fi
        cp -a "$gdir/template" "$gdir/$impl"
        if run_impl "$impl" "$gdir/$impl" "${cases_for[@]}"; then
            record "$impl" "$gdir/$impl.verdicts"
            continue
        fi
        if [[ $impl == rdext ]]; then
            ERRORS+=("group $g: rdext merge failed as a whole (exit $LAST_RC); stderr: $(tr '\n' ' ' <"$gdir/$impl.merge.err" | head -c 600)")
        else
            printf 'note: systemd-sysext 252 failed the whole merge of group %s, re-running its cases one by one: %s\n' \
                "$g" "$(grep -E '^Failed' "$gdir/$impl.merge.err" | head -n3 | tr '\n' ' ')" >&2
        fi
        # one root per case so every case still gets a verdict
        local failed_alone=0
        for c in "${cases_for[@]}"; do
            local one=$gdir/$impl-$c
            build_root "$one" "${GROUP_KEY_OF[$g]}"
            add_case "$one" "$c"
            run_impl "$impl" "$one" "$c" || {
                failed_alone=$((failed_alone + 1))
                if [[ $impl == rdext ]]; then
                    ERRORS+=("$c: rdext merge of this single case failed (exit $LAST_RC): $(tr '\n' ' ' <"$one.merge.err" | head -c 400)")
                else
                    printf 'note: %s: systemd-sysext 252 failed the merge: %s\n' "$c" "$(grep -E '^Failed' "$one.merge.err" | head -n2 | tr '\n' ' ')" >&2
                    # A failed merge says nothing about the case: not "skipped".
                    echo "$c failed" >"$one.verdicts"
                fi
            }
            record "$impl" "$one.verdicts"
        done
        (( failed_alone )) ||
            ERRORS+=("group $g: $impl failed the merge of the group, but merged each of its cases alone")
    done
}

load_cases
log "${#CASES[@]} cases in ${#GROUPS_LIST[@]} roots"
for g in "${GROUPS_LIST[@]}"; do run_group "$g"; done

n_cases=${#CASES[@]} n_agree=0 n_doc=0 n_confext=0 n_fail=0
for c in "${CASES[@]}"; do
    exp=${C_EXPECT[$c]} rd=${R_RDEXT[$c]:-not-run} sd=${R_SD[$c]:-n/a} doc=${C_SD[$c]}
    status=ok
    if is_rdext && [[ $rd != "$exp" ]]; then
        ERRORS+=("$c: rdext $rd, expected $exp ($(sed -n '1s/^# //p' "$CASES_DIR/$c/case.conf"))")
        status=FAIL
    fi
    if [[ ${C_CLASS[$c]} == confext ]]; then
        n_confext=$((n_confext + 1))
    elif [[ -n $doc && $doc != n/a && $sd == "$doc" && $doc != "$exp" ]]; then
        n_doc=$((n_doc + 1))
        printf 'note: %s: systemd-sysext 252 says %s, expected %s: %s\n' "$c" "$sd" "$exp" "${C_NOTE[$c]}" >&2
    elif [[ $sd == "$exp" ]]; then
        n_agree=$((n_agree + 1))
        [[ -z $doc || $doc == n/a ]] ||
            printf 'note: %s: documented difference did not show: systemd-sysext 252 agrees (%s)\n' "$c" "$sd" >&2
    else
        ERRORS+=("$c: systemd-sysext 252 says $sd, expected $exp, and the case documents no difference (systemd252=$doc)")
        status=FAIL
    fi
    [[ $status == ok ]] || n_fail=$((n_fail + 1))
    printf '%-34s %-7s expect=%-7s rdext=%-7s systemd252=%s\n' "$c" "$status" "$exp" "$rd" "$sd" >&2
done

echo "differential: $n_cases cases, $n_agree agree with systemd-sysext 252, $n_doc documented differences ($n_confext confext cases checked against the expected verdict only)"
if (( ${#ERRORS[@]} )); then
    printf 'differential: FAIL: %s\n' "${ERRORS[@]}" >&2
    exit 1
fi
log "PASS"
