# shellcheck shell=bash
# Shared helpers for the privileged integration tests. Every test script does
#
#     source "$(dirname "$0")/lib.sh"
#     require_root_env
#
# require_root_env checks that the machine can run the test (root, overlayfs,
# loop devices), creates the per-test directory and re-runs the script inside
# a private mount namespace with a tmpfs on /run. Nothing a test mounts is
# visible outside that namespace, and the outer process removes the test
# directory once the namespace is gone, so no mount can pin it.
#
# Environment:
#   RDEXT        the rdext binary (CMake passes $<TARGET_FILE:rdext>)
#   CI=true      a missing privilege is a failure instead of a skip
#   KEEP=1       keep the test directory for inspection
#   VERBOSE=1    echo rdext's stderr after every call

set -Eeuo pipefail
shopt -s nullglob

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}
TEST_ARGS=("$@")
RDEXT=${RDEXT:-$LIB_DIR/../../build/src/rdext}


log() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }

# check "what is being verified": printed before each assertion group so a
# failure log reads as a list of what passed and where it stopped.
check() { printf '%s: CHECK %s\n' "$TEST_NAME" "$*" >&2; }

# fail MESSAGE: print the message plus the state a reader needs to understand
# it (mounts under the test dir, loop devices, the last command's output),
# then exit 1.
fail() {
    {
        printf '%s: FAIL: %s\n' "$TEST_NAME" "$*"
        if [[ -n ${TEST_DIR:-} ]]; then
            printf -- '--- mounts under %s:\n' "$TEST_DIR"
            mounts_under "$TEST_DIR" || true
            printf -- '--- loop devices backed by files under the test dir:\n'
            loops_under "$TEST_DIR" || true
            if [[ -n ${LAST_CMD:-} ]]; then
                printf -- '--- last command (exit %s): %s\n' "${LAST_RC:-?}" "$LAST_CMD"
                printf -- '--- its stdout:\n'; head -c 4000 "$TEST_DIR/last.out" 2>/dev/null || true
                printf -- '--- its stderr:\n'; head -c 4000 "$TEST_DIR/last.err" 2>/dev/null || true
            fi
        fi
    } >&2
    exit 1
}

# defer_fail MESSAGE: record a failure but keep going, so one finding does
# not hide the checks after it; finish exits 1 if any were recorded.
DEFERRED_FAILURES=()
defer_fail() {
    printf '%s: FAIL (continuing): %s\n' "$TEST_NAME" "$*" >&2
    if [[ -s ${TEST_DIR:-/nonexistent}/last.err ]]; then
        printf -- '--- stderr of %s:\n' "${LAST_CMD:-?}" >&2
        head -c 2000 "$TEST_DIR/last.err" >&2
    fi
    DEFERRED_FAILURES+=("$*")
}

finish() {
    if (( ${#DEFERRED_FAILURES[@]} )); then
        printf '%s: FAIL: %d failure(s):\n' "$TEST_NAME" "${#DEFERRED_FAILURES[@]}" >&2
        printf '  - %s\n' "${DEFERRED_FAILURES[@]}" >&2
        exit 1
    fi
    if (( ${#SKIPPED_PARTS[@]} )); then
        printf 'SKIP: the rest passed, left out: %s\n' "${SKIPPED_PARTS[*]}"
        exit 77
    fi
    log "PASS"
    exit 0
}

# skip_part WHY: a part of the test cannot run here (a missing tool). Under
# CI=true that fails the test; elsewhere the rest runs and finish reports
# the test as skipped (exit 77), so the gap shows in CTest's summary.
SKIPPED_PARTS=()
skip_part() {
    [[ ${CI:-} != true ]] || fail "(CI=true, cannot skip) $*"
    log "SKIP (part): $*"
    SKIPPED_PARTS+=("$*")
}

skip() {
    if [[ ${CI:-} == true ]]; then
        printf '%s: FAIL (CI=true, cannot skip): %s\n' "$TEST_NAME" "$*" >&2
        exit 1
    fi
    printf 'SKIP: %s\n' "$*"
    exit 77
}

_on_error() {
    local rc=$? line=$1
    fail "unexpected error (exit $rc) at ${TEST_NAME}.sh line $line: ${BASH_COMMAND}"
}

# ---------------------------------------------------------------------------
# Environment and namespace

require_root_env() {
    if [[ -n ${RDEXT_IT_INNER:-} ]]; then
        _inner_setup
        return 0
    fi
    [[ $(id -u) == 0 ]] || skip "needs root"
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
        skip "no overlay file system"
    grep -qw overlay /proc/filesystems || skip "no overlay file system"
    [[ -e /dev/loop-control ]] || skip "no /dev/loop-control"
    command -v unshare >/dev/null || skip "no unshare"
    [[ -x $RDEXT ]] || skip "rdext binary not found at $RDEXT (set RDEXT)"

    TEST_DIR=$(mktemp -d "/var/tmp/rdext-it.$TEST_NAME.XXXXXX")
    export TEST_DIR RDEXT RDEXT_IT_INNER=1
    local rc=0
    unshare -m --propagation private -- "$BASH" "$TEST_SCRIPT" "${TEST_ARGS[@]}" || rc=$?
    # A leak fails the test, even one that passed or skipped.
    _outer_cleanup || { (( rc != 0 && rc != 77 )) || rc=1; }
    exit "$rc"
}

# _outer_cleanup: fails (after clearing them up) if loop devices backed by
# the test's files are still attached.
_outer_cleanup() {
    # The namespace is gone, so its mounts are too; loop devices are global,
    # and one left behind is a leak. An autoclear device goes once the
    # namespace's mounts are released, which may trail the exit a little.
    local leaked
    for _ in {1..20}; do
        # a listing that keeps failing is no proof of "none left"
        leaked=$(loops_under "$TEST_DIR") || leaked="(cannot list the loop devices)"
        [[ -n $leaked ]] || break
        sleep 0.1
    done
    if [[ -n $leaked ]]; then
        printf '%s: FAIL: loop devices still attached after the test:\n%s\n' "$TEST_NAME" "$leaked" >&2
        loops_under "$TEST_DIR" names | while read -r dev _; do
            losetup -d "$dev" 2>/dev/null || true
        done
    fi
    if [[ ${KEEP:-} == 1 ]]; then
        printf '%s: keeping %s\n' "$TEST_NAME" "$TEST_DIR" >&2
    else
        rm -rf --one-file-system "$TEST_DIR" 2>/dev/null || rm -rf "$TEST_DIR"
    fi
    [[ -z $leaked ]]
}

_inner_setup() {
    trap '_on_error $LINENO' ERR
    # systemd-sysext 252 remounts /run as a slave; give it (and rdext) a
    # private /run of our own.
    mount -t tmpfs -o mode=755 tmpfs /run
    mkdir -p "$TEST_DIR/state"
    log "test dir $TEST_DIR, rdext $RDEXT"
}

# bind_root ROOT: make ROOT a mount point of its own, as /sysroot is in an
# initrd (and a shared one when the stock systemd-sysext does the merging).
bind_root() {
    mount --bind "$1" "$1"
    if [[ $IMPL == systemd-sysext ]]; then mount --make-rshared "$1"; fi
}

# share_root ROOT: make ROOT a shared mount so that mounts made by a forked
# child in its own namespace (systemd-sysext 252 does that) reach this one.
share_root() {
    local root=$1
    mount --bind "$root" "$root"
    mount --make-rshared "$root"
}

# ---------------------------------------------------------------------------
# Running things

# IMPL=systemd-sysext runs the rdext-agnostic parts of a test with the stock
# systemd-sysext instead (to check the harness itself, or compare); checks of
# rdext-only features (status --json, state file, confext) are then skipped.
IMPL=${IMPL:-rdext}
is_rdext() { [[ $IMPL == rdext ]]; }

# run_merge ROOT [ARGS...] / run_unmerge ROOT / run_refresh ROOT
run_merge() { _run_verb merge "$@"; }
run_unmerge() { _run_verb unmerge "$@"; }
run_refresh() { _run_verb refresh "$@"; }
_run_verb() {
    local verb=$1 root=$2; shift 2
    if is_rdext; then
        run_rdext --root="$root" "$@" "$verb"
    else
        run_cmd systemd-sysext --root="$root" "$@" "$verb"
    fi
}

# run_rdext ARGS...: run rdext, keep stdout/stderr in $TEST_DIR/last.{out,err}
# and the exit code in $LAST_RC (never fails itself).
run_rdext() {
    run_cmd "$RDEXT" "$@"
}

run_cmd() {
    LAST_CMD="$*"
    LAST_RC=0
    "$@" >"$TEST_DIR/last.out" 2>"$TEST_DIR/last.err" || LAST_RC=$?
    if [[ ${VERBOSE:-} == 1 ]]; then
        sed 's/^/    | /' "$TEST_DIR/last.err" >&2
    fi
    return 0
}

last_out() { cat "$TEST_DIR/last.out"; }
last_err() { cat "$TEST_DIR/last.err"; }

expect_rc() {
    local want=$1
    [[ $LAST_RC == "$want" ]] || fail "expected exit $want from: $LAST_CMD (got $LAST_RC)"
}

expect_rc_nonzero() {
    [[ $LAST_RC != 0 ]] || fail "expected a non-zero exit from: $LAST_CMD"
}

# expect_stderr_match ERE [ERE...]: some stderr line matches all the EREs
# (case-insensitive), e.g. the image name and the reason on one line.
expect_stderr_line() {
    local line re ok
    while IFS= read -r line; do
        ok=1
        for re in "$@"; do
            grep -qiE -- "$re" <<<"$line" || { ok=0; break; }
        done
        [[ $ok == 1 ]] && return 0
    done <"$TEST_DIR/last.err"
    fail "no stderr line of '$LAST_CMD' matches all of: $*"
}

# json_query FILE PY-EXPR: evaluate a Python expression over d = json.load(FILE)
# and print the result (str as-is, others as JSON).
json_query() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = eval(sys.argv[2], {"d": d})
print(r if isinstance(r, str) else json.dumps(r))
EOF
}

# ---------------------------------------------------------------------------
# Building roots and images: images.sh
source "$LIB_DIR/images.sh"

# ---------------------------------------------------------------------------
# State snapshots

mounts_under() {
    # mount point, fs type, source, per-mount options; no ids or device numbers
    awk -v d="$1" '{
        n = 7; while ($n != "-") n++
        if ($5 == d || index($5, d "/") == 1) print $5, $(n+1), $(n+2), $6
    }' /proc/self/mountinfo
}

# loops_under DIR: loop devices whose backing file is a file under DIR, one
# line per device: "NAME RELATIVE-PATH". Matched by device and inode, because
# the BACK-FILE path the kernel shows depends on the namespace that attached it.
loops_under() {
    python3 - "$1" "${2:-}" <<'PYEOF'
import json, os, subprocess, sys, time
top, with_names = sys.argv[1], sys.argv[2] == "names"
# losetup fails (exit 1, partial or no output) when a device it lists goes
# away under it, as another test's does: try again, and never take a failed
# listing for "no devices" (that would hide a leak or a missing device).
for attempt in range(20):
    r = subprocess.run(["losetup", "--list", "--json", "--output",
                        "NAME,BACK-MAJ:MIN,BACK-INO"], capture_output=True, text=True)
    if r.returncode == 0:
        break
    time.sleep(0.1)
else:
    sys.exit(f"loops_under: losetup --list failed: {r.stderr.strip()}")
devs = json.loads(r.stdout).get("loopdevices", []) if r.stdout.strip() else []
if not devs:
    sys.exit(0)
top_dev = os.stat(top).st_dev
files = {}
for d, subdirs, names in os.walk(top):
    # stay on the test dir's file system: never walk into a merged overlay
    def same_fs(s):
        try:
            return os.lstat(os.path.join(d, s)).st_dev == top_dev
        except FileNotFoundError:  # removed while we walk
            return False
    subdirs[:] = [s for s in subdirs if same_fs(s)]
    for n in names:
        p = os.path.join(d, n)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        files[(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)] = p
lines = []
for l in devs:
    mm, ino = l.get("back-maj:min") or "", l.get("back-ino")
    if ":" not in mm or ino is None:
        continue
    ma, mi = (int(x) for x in mm.split(":"))
    p = files.get((ma, mi, int(ino)))
    if p is not None:
        rel = os.path.relpath(p, top)
        lines.append(f'{l["name"]} {rel}' if with_names else rel)
for line in sorted(lines):
    print(line)
PYEOF
}

# namespace_mounts: the mounts of this namespace, "MOUNTPOINT FSTYPE SOURCE
# OPTIONS", in mountinfo's order, less copies of the host's mounts in
# scratch space (/var/tmp, /tmp, the cache) outside the test dir: the kernel
# takes a mount off in every namespace when its mount point is deleted, as a
# VM root build running alongside does with its own (a cold cache).
namespace_mounts() {
    awk -v d="$TEST_DIR" -v cache="${RDEXT_CACHE_DIR:-/var/cache/rdext}" '
        function under(p, dir) { return p == dir || index(p, dir "/") == 1 }
        under($5, d) || !(under($5, "/var/tmp") || under($5, "/tmp") || under($5, cache)) {
            n = 7; while ($n != "-") n++; print $5, $(n+1), $(n+2), $6 }' /proc/self/mountinfo
}

# snapshot_state ROOT NAME: record what a merge must not leave behind after
# unmerge or failure: mounts under the test dir and elsewhere in this
# namespace, loop devices backed by test files and the file list of ROOT/run
# (minus rdext's own state file, which may outlive an unmerge).
snapshot_state() {
    local root=$1 name=$2 f=$TEST_DIR/state/$2
    mounts_under "$TEST_DIR" >"$f.mounts"
    # everything else in this private namespace should not change either
    namespace_mounts | awk -v d="$TEST_DIR" '!($1 == d || index($1, d "/") == 1) { print "elsewhere:", $0 }' \
        >>"$f.mounts"
    loops_under "$TEST_DIR" >"$f.loops"
    find "$root/run" -mindepth 1 -printf '%y ./%P\n' | sort |
        { grep -vE '^(d \./rdext|f \./rdext/state\.json)$' || true; } >"$f.run"
}

assert_same_state() {
    local a=$TEST_DIR/state/$1 b=$TEST_DIR/state/$2 kind bad=0
    for kind in mounts loops run; do
        if ! diff -u "$a.$kind" "$b.$kind" >"$TEST_DIR/state/diff.$kind"; then
            printf '%s: state %s differs between %s and %s:\n' "$TEST_NAME" "$kind" "$1" "$2" >&2
            cat "$TEST_DIR/state/diff.$kind" >&2
            bad=1
        fi
    done
    [[ $bad == 0 ]] || fail "state after '$2' differs from '$1'"
}

# assert_no_staging ROOT: after a merge only run/rdext/state.json may remain.
assert_no_staging() {
    local root=$1 extra
    [[ -d $root/run/rdext ]] || return 0
    extra=$(cd "$root/run/rdext" && find . -mindepth 1 ! -path ./state.json -printf '%p\n')
    [[ -z $extra ]] || fail "staging left under $root/run/rdext: $extra"
    if [[ -n $(mounts_under "$root/run") ]]; then
        fail "mounts left under $root/run: $(mounts_under "$root/run")"
    fi
}

# ---------------------------------------------------------------------------
# Assertions about merged trees

assert_file_content() {
    local path=$1 want=$2 got
    [[ -e $path ]] || fail "$path does not exist (expected content '$want')"
    got=$(cat "$path") || fail "cannot read $path"
    [[ $got == "$want" ]] || fail "$path contains '$got', expected '$want'"
}

assert_absent() {
    [[ ! -e $1 && ! -L $1 ]] || fail "$1 exists but should not"
}

mount_field() {
    # mount_field MOUNTPOINT N: field after the separator (1 fstype, 2 source, 3 super opts)
    awk -v m="$1" -v k="$2" '$5 == m { n = 7; while ($n != "-") n++; r = $(n+k) } END { print r }' /proc/self/mountinfo
}

mount_opts() {
    awk -v m="$1" '$5 == m { r = $6 } END { print r }' /proc/self/mountinfo
}

# assert_merged ROOT HIER NAMES...: HIER (/usr, /opt, /etc) is a read-only
# overlay from rdext/systemd listing exactly NAMES (in any order) in its
# metadata, and the dev file matches the mount.
assert_merged() {
    local root=$1 hier=$2; shift 2
    local mp=$root$hier class meta
    case $hier in
        /etc) class=confext; meta=$mp/.systemd-confext/confexts ;;
        *) class=sysext; meta=$mp/.systemd-sysext/extensions ;;
    esac
    if (( $# > 8 )); then
        check "$hier is merged with: $1 $2 $3 ... ${!#} ($# names)"
    else
        check "$hier is merged with: $*"
    fi
    mountpoint -q "$mp" || fail "$mp is not a mount point"
    [[ $(mount_field "$mp" 1) == overlay ]] || fail "$mp is not an overlay (got $(mount_field "$mp" 1))"
    [[ $(mount_field "$mp" 2) == "$class" ]] || fail "$mp overlay source is '$(mount_field "$mp" 2)', expected $class"
    [[ ,$(mount_opts "$mp"), == *,ro,* ]] || fail "$mp is not mounted read-only ($(mount_opts "$mp"))"
    [[ -f $meta ]] || fail "$meta missing"
    local want got
    want=$(printf '%s\n' "$@" | sort)
    got=$(sort "$meta")
    if [[ $want != "$got" ]]; then
        diff <(echo "$want") <(echo "$got") | head -20 >&2 || true
        fail "$meta does not list exactly the expected names (diff above: < expected, > listed)"
    fi
    local dev st
    dev=$(cat "$(dirname "$meta")/dev")
    st=$(python3 -c 'import os,sys; s=os.lstat(sys.argv[1]).st_dev; print(f"{os.major(s)}:{os.minor(s)}")' "$mp")
    [[ $dev == "$st" ]] || fail "$(dirname "$meta")/dev says $dev, but $mp has st_dev $st"
}

assert_not_merged() {
    local root=$1 hier=$2
    check "$hier is not merged"
    if mountpoint -q "$root$hier"; then
        fail "$root$hier is a mount point ($(mount_field "$root$hier" 1) from $(mount_field "$root$hier" 2))"
    fi
}

# merged_names ROOT HIER: the names listed by the metadata, sorted, or nothing
# when HIER is not an overlay.
merged_names() {
    local root=$1 hier=$2 meta
    case $hier in
        /etc) meta=$root/etc/.systemd-confext/confexts ;;
        *) meta=$root$hier/.systemd-sysext/extensions ;;
    esac
    mountpoint -q "$root$hier" && [[ -f $meta ]] && sort "$meta"
    return 0
}

# tree_digest ROOT HIER...: a listing of ROOT/HIER with types, modes, owners,
# link targets and content hashes, leaving out the metadata files that name
# the mount (dev) or are newer than systemd 252 (backing v258, origin v260)
# or rdext's own (rdext).
tree_digest() {
    python3 - "$@" <<'PYEOF'
import hashlib, os, stat, sys
root = sys.argv[1]
skip = tuple(f"/.systemd-{c}/{f}" for c in ("sysext", "confext")
             for f in ("dev", "backing", "origin", "rdext"))
for top in sys.argv[2:]:
    for d, subdirs, files in os.walk(os.path.join(root, top)):
        subdirs.sort()
        for n in sorted(subdirs + files):
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if ("/" + rel).endswith(skip):
                continue
            st = os.lstat(p)
            extra = ""
            if stat.S_ISLNK(st.st_mode):
                extra = "-> " + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]
            print(rel, oct(st.st_mode), st.st_uid, st.st_gid, extra)
PYEOF
}

# unmount_all_under DIR: tear down everything mounted below DIR (deepest
# first), e.g. between phases of a test.
unmount_all_under() {
    local mp
    awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
}

# json_schema_check SCHEMA_FILE: stdin is one JSON document, valid against
# doc/json/SCHEMA_FILE (draft 2020-12; $refs between the schema files
# resolve offline, a remote $ref fails). Needs /usr/bin/python3 with
# jsonschema (Debian: python3-jsonschema; python3 on PATH may be another).
RDEXT_SCHEMAS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../doc/json" && pwd)
json_schema_check() {
    /usr/bin/python3 -c '
import json, pathlib, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
from jsonschema import Draft202012Validator, RefResolver
d = pathlib.Path(sys.argv[1])
store = {f.as_uri(): json.loads(f.read_text()) for f in d.glob("*.schema.json")}
path = d / sys.argv[2]
schema = store[path.as_uri()]
Draft202012Validator.check_schema(schema)
resolver = RefResolver(base_uri=path.as_uri(), referrer=schema, store=store,
                       handlers={s: lambda u: sys.exit("remote $ref " + u) for s in ("http", "https", "ftp")})
errors = sorted(Draft202012Validator(schema, resolver=resolver).iter_errors(json.loads(sys.stdin.read())), key=str)
for e in errors[:5]:
    print("%s: %s: %s" % (sys.argv[2], "/".join(map(str, e.absolute_path)), e.message), file=sys.stderr)
sys.exit(1 if errors else 0)
' "$RDEXT_SCHEMAS" "$1"
}

# find_trixie_tree: set TREE to the builders' trixie tree with systemd-sysext
# 257 (scripts/builders-env.sh builds it on first use), or skip the test.
find_trixie_tree() {
    TREE=$(bash -c 'source "$1/scripts/builders-env.sh"; builders_tree trixie' _ "$(cd "$LIB_DIR/../.." && pwd)") ||
        skip "no trixie tree (scripts/builders-env.sh)"
    [[ -x $TREE/usr/bin/systemd-sysext ]] || fail "the trixie tree has no systemd-sysext"
}

# in_trixie [--rbind] DIR SCRIPT [NAME=VALUE...]: SCRIPT, run by bash in
# the trixie tree ($TREE, from find_trixie_tree) as its root, in a mount
# namespace of its own with fresh /proc, /sys, /dev, /run and /tmp, DIR at
# /tmp/r (with --rbind, with what is mounted below it: a merge to look at),
# shared so that mounts made there reach the chroot's view, and R=/tmp/r
# and the NAME=VALUEs in its environment.
in_trixie() {
    local bind=--bind
    [[ $1 == --rbind ]] && { bind=--rbind; shift; }
    local dir=$1 script=$2
    shift 2
    unshare -m --propagation private -- bash -c '
        T=$1 bind=$2 dir=$3 script=$4
        shift 4
        mount --bind "$T" "$T"
        mount -t proc proc "$T/proc"; mount -t sysfs sysfs "$T/sys"; mount --rbind /dev "$T/dev"
        mount -t tmpfs tmpfs "$T/run"; mount -t tmpfs tmpfs "$T/tmp"
        mkdir -p "$T/tmp/r"; mount "$bind" "$dir" "$T/tmp/r"; mount --make-rshared "$T/tmp/r"
        exec chroot "$T" env R=/tmp/r "$@" bash -c "$script"' _ "$TREE" "$bind" "$dir" "$script" "$@"
}
