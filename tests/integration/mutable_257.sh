#!/bin/bash
# mutable_257: rdext against systemd-sysext 257 (Debian trixie's, run in the
# builders' trixie chroot) on identical roots, for the mutable-mode cases
# where rdext once differed: a hierarchy missing from the root, the mode
# from SYSTEMD_SYSEXT_MUTABLE_MODE (and --mutable= over it), auto with a
# dangling extensions.mutable/usr, import modes with extensions.mutable/usr
# linked to /usr (refused), elsewhere in the root (imported) or to a
# directory that overlaps /usr (the kernel refuses), yes/auto with its mode
# not the hierarchy's. Per case both must agree on: exit status, whether
# /usr and /opt are merged, whether /usr is writable, where a write lands,
# /opt's mode, and whether a base-tool shows at the top of /usr (imported
# through the link).
source "$(dirname "$0")/lib.sh"
require_root_env
find_trixie_tree

B=$TEST_DIR/build
make_ext_tree "$B/one" one sysext -- "usr/share/one/f=one" "opt/one/f=one"

# observe, run where the merge is visible ($R the root): one line of facts.
OBSERVE='
m() { mountpoint -q "$R$1" && echo merged || { [[ -e $R$1 ]] && echo plain || echo missing; }; }
w=ro; ( echo x >"$R/usr/share/probe" ) 2>/dev/null && w=rw
land=none; [[ -f $R/var/lib/extensions.mutable/usr/share/probe ]] && land=extensions.mutable
[[ -f $R/usr/share/probe && $w == rw ]] && [[ $(m /usr) == merged ]] && [[ $land == none ]] && land=elsewhere
imp=no; [[ -e $R/usr/base-tool ]] && imp=yes
echo "usr=$(m /usr) opt=$(m /opt) usr-write=$w lands=$land opt-mode=$(stat -c %a "$R/opt" 2>/dev/null || echo -) imported=$imp"'

# case NAME SETUP ENV ARGS: SETUP runs in the root (cd'ed), ENV is "VAR=VALUE" or "".
declare -a DIFFS=()
N=0
case_() {
    local name=$1 setup=$2 envs=$3 args=$4 r out_rd out_sd
    N=$((N + 1))
    check "$name"
    for impl in rdext sd; do
        r=$TEST_DIR/$name-$impl
        make_root "$r"
        mkdir -p "$r/var/lib/extensions.mutable"
        cp -a "$B/one" "$r/var/lib/extensions/one"
        (cd "$r" && eval "$setup")
    done
    r=$TEST_DIR/$name-rdext
    bind_root "$r"
    out_rd=$( rc=0; env $envs "$RDEXT" --root="$r" $args merge >"$TEST_DIR/$name.rd.log" 2>&1 || rc=1
        echo "rc=$rc $(R=$r bash -c "$OBSERVE")"; "$RDEXT" --root="$r" unmerge >/dev/null 2>&1 )
    out_sd=$(in_trixie "$TEST_DIR/$name-sd" "
        rc=0; env $envs systemd-sysext --root=/tmp/r $args merge >/tmp/log 2>&1 || rc=1
        echo \"rc=\$rc \$( $OBSERVE )\"" 2>"$TEST_DIR/$name.sd.log")
    printf '%-28s rdext:  %s\n%-28s 257:    %s\n' "$name" "$out_rd" "" "$out_sd" >&2
    [[ $out_rd == "$out_sd" ]] || DIFFS+=("$name")
}

case_ missing-opt          'rm -rf opt'                           ''                                 ''
case_ missing-opt-yes      'rm -rf opt'                           ''                                 '--mutable=yes'
case_ env-ephemeral        ':'                                    'SYSTEMD_SYSEXT_MUTABLE_MODE=ephemeral' ''
case_ env-yes              ':'                                    'SYSTEMD_SYSEXT_MUTABLE_MODE=yes'  ''
case_ env-unknown          ':'                                    'SYSTEMD_SYSEXT_MUTABLE_MODE=sometimes' ''
case_ option-over-env      ':'                                    'SYSTEMD_SYSEXT_MUTABLE_MODE=yes'  '--mutable=no'
case_ confext-env-no-usr   ':'                                    'SYSTEMD_CONFEXT_MUTABLE_MODE=yes' ''
case_ auto-dangling        'ln -s /nonexistent var/lib/extensions.mutable/usr' '' '--mutable=auto'
case_ auto-absent          ':'                                    ''                                 '--mutable=auto'
case_ import-linked        'ln -s /usr var/lib/extensions.mutable/usr' ''                          '--mutable=import'
case_ eph-import-linked    'ln -s /usr var/lib/extensions.mutable/usr' ''                          '--mutable=ephemeral-import'
case_ import-link-usrbin    'ln -s /usr/bin var/lib/extensions.mutable/usr' ''                      '--mutable=import'
case_ import-link-srv       'mkdir -p srv/imp && echo i >srv/imp/base-tool && ln -s /srv/imp var/lib/extensions.mutable/usr' '' '--mutable=import'
case_ eph-import-link-srv   'mkdir -p srv/imp && echo i >srv/imp/base-tool && ln -s /srv/imp var/lib/extensions.mutable/usr' '' '--mutable=ephemeral-import'
case_ import-link-root      'ln -s / var/lib/extensions.mutable/usr'  ''                             '--mutable=import'
case_ import-link-dotdot    'ln -s ../../../../../.. var/lib/extensions.mutable/usr' ''              '--mutable=import'
case_ yes-linked           'ln -s /usr var/lib/extensions.mutable/usr' ''                          '--mutable=yes'
case_ yes-mode-differs     'mkdir -m 0700 var/lib/extensions.mutable/usr' ''                       '--mutable=yes'
case_ auto-mode-differs    'mkdir -m 0700 var/lib/extensions.mutable/usr' ''                       '--mutable=auto'
case_ import-mode-differs  'mkdir -m 0700 var/lib/extensions.mutable/usr' ''                       '--mutable=import'
case_ yes-mode-same        'mkdir -m 0755 var/lib/extensions.mutable/usr' ''                       '--mutable=yes'

check "$N cases, ${#DIFFS[@]} differences"
(( ${#DIFFS[@]} == 0 )) || fail "rdext and systemd-sysext 257 differ in: ${DIFFS[*]} (logs in $TEST_DIR)"
finish
