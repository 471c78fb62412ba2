#!/bin/bash
# origin_v260: the `origin` file rdext writes is the object systemd-sysext
# 260's refresh computes for the same merge (src/sysext/sysext.c,
# merge_subprocess), so its "nothing changed" check skips a merge rdext made
# (the initrd hand-off included). The expected object is built here
# independently, from the file system, with Python (statx and
# name_to_handle_at through ctypes, xattrs, stat) and compared field by
# field: a raw image, a directory image, a raw image reached through a
# symlink, a versioned directory's entry; modes no, yes, auto, import and
# ephemeral (mutableDirs). rdext's own record lives beside it in
# .systemd-sysext/rdext; status (rdext and systemd-sysext) still sees the
# merge, and rdext's own refresh still finds it unchanged.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
T=usr/share/rdext-test
make_root "$R"
make_ext_tree "$B/a" a sysext -- "$T/a=a" "opt/a/file=a"
make_erofs "$B/a" "$R/var/lib/extensions/a.raw"
make_ext_tree "$B/b" b sysext -- "$T/b=b"
cp -a "$B/b" "$R/var/lib/extensions/b"
# A symlink in a search directory: systemd names the link, identifies the target.
make_ext_tree "$B/c" c sysext -- "$T/c=c"
mkdir -p "$R/srv/images"
make_erofs "$B/c" "$R/srv/images/c-image.raw"
ln -s ../../srv/images/c-image.raw "$R/run/extensions/c.raw"
# A versioned directory: systemd names the chosen entry inside it.
make_ext_tree "$B/v" v sysext -- "$T/v=v"
mkdir -p "$R/var/lib/extensions/v.raw.v"
make_erofs "$B/v" "$R/var/lib/extensions/v.raw.v/v_1.raw"
make_erofs "$B/v" "$R/var/lib/extensions/v.raw.v/v_2.raw"
make_ext_tree "$B/cx" cx confext -- "etc/rdext-test/cx=cx"
cp -a "$B/cx" "$R/var/lib/confexts/cx"
bind_root "$R"

# expected_origin ROOT CLASS MODE: systemd 260's origin object, from scratch.
expected_origin() {
    python3 - "$@" <<'PYEOF'
import ctypes, json, os, stat, struct, sys
root, cls, mode = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
AT_EMPTY_PATH, AT_HANDLE_FID = 0x1000, 0x200
STATX_BTIME, STATX_MNT_ID_UNIQUE = 0x800, 0x4000

def statx(path, mask):
    buf = ctypes.create_string_buffer(256)
    # x86-64 syscall 332: statx(dirfd, path, flags, mask, buf)
    if libc.syscall(332, -100, path.encode(), 0, mask, buf) != 0:
        raise OSError(ctypes.get_errno(), path)
    got = struct.unpack_from("<I", buf, 0)[0]
    btime = struct.unpack_from("<qI", buf, 0x50)      # stx_btime
    mnt_id = struct.unpack_from("<Q", buf, 0x90)[0]   # stx_mnt_id
    return got, btime, mnt_id

def file_handle(path):
    class FH(ctypes.Structure):
        _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("h", ctypes.c_ubyte * 128)]
    fh, mnt = FH(128, 0), ctypes.c_int()
    fd = os.open(path, os.O_PATH)
    try:
        r = libc.name_to_handle_at(fd, b"", ctypes.byref(fh), ctypes.byref(mnt), AT_EMPTY_PATH | AT_HANDLE_FID)
    finally:
        os.close(fd)
    if r != 0:
        return None
    return {"type": fh.type, "handle": bytes(fh.h[:fh.bytes]).hex()}

def crtime(path):
    got, (sec, nsec), _ = statx(path, STATX_BTIME)
    best = sec * 1000000 + nsec // 1000 if got & STATX_BTIME and sec else None
    try:
        x = struct.unpack("<Q", os.getxattr(path, "user.crtime_usec"))[0]
        best = x if best is None else min(best, x)
    except OSError:
        pass
    return best or 0

def identity(rel):
    p = root + rel
    st = os.stat(p)
    got, _, mnt = statx(p, STATX_MNT_ID_UNIQUE)
    assert got & STATX_MNT_ID_UNIQUE, "kernel without unique mount ids"
    e = {"path": rel, "onMountId": mnt}
    fh = file_handle(p)
    if fh: e["fileHandle"] = fh
    else: e["inode"] = st.st_ino
    raw = stat.S_ISREG(st.st_mode)
    e["crtime"] = 0 if stat.S_ISBLK(st.st_mode) else crtime(p)
    e["mtime"] = st.st_mtime_ns // 1000 if raw else 0
    return e

if cls == "sysext":
    hier = ["/usr", "/opt"]
    images = {"a": "/var/lib/extensions/a.raw", "b": "/var/lib/extensions/b",
              "c": "/run/extensions/c.raw", "v": "/var/lib/extensions/v.raw.v/v_2.raw"}
else:
    hier = ["/etc"]
    images = {"cx": "/var/lib/confexts/cx"}
m = {"mode": mode}
dirs = {}
for h in hier:
    comp = h.strip("/").replace("/", ".")
    if mode in ("ephemeral", "ephemeral-import"):
        dirs[h] = "/run/systemd/sysext/" + comp
    elif mode != "no":
        d = root + "/var/lib/extensions.mutable/" + comp
        if os.path.exists(d):
            dirs[h] = "/" + os.path.relpath(os.path.realpath(d), os.path.realpath(root))
if dirs: m["mutableDirs"] = dirs
print(json.dumps({"mutable": m, "extensions": {n: identity(p) for n, p in images.items()}}))
PYEOF
}

# compare_origin FILE EXPECTED-JSON LABEL: field by field, every difference named.
compare_origin() {
    python3 - "$@" <<'PYEOF' || fail "$3: origin differs from systemd 260's object (above)"
import json, sys
got = json.load(open(sys.argv[1]))
want = json.loads(sys.argv[2])
bad = []
def walk(g, w, at):
    if isinstance(w, dict) and isinstance(g, dict):
        for k in sorted(set(g) | set(w)):
            if k not in g: bad.append(f"{at}.{k}: missing, want {json.dumps(w[k])}")
            elif k not in w: bad.append(f"{at}.{k}: extra {json.dumps(g[k])}")
            else: walk(g[k], w[k], f"{at}.{k}")
    elif type(g) is not type(w) or g != w:
        bad.append(f"{at}: {json.dumps(g)}, want {json.dumps(w)}")
walk(got, want, sys.argv[3])
for b in bad: print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
}

check_origins() { # MODE LABEL
    local want
    want=$(expected_origin "$R" sysext "$1")
    compare_origin "$R/usr/.systemd-sysext/origin" "$want" "$2 /usr"
    compare_origin "$R/opt/.systemd-sysext/origin" "$want" "$2 /opt"
    want=$(expected_origin "$R" confext "$1")
    compare_origin "$R/etc/.systemd-confext/origin" "$want" "$2 /etc"
}

merge_mode() {
    run_rdext --root="$R" --mutable="$1" merge
    expect_rc 0
    [[ $(merged_names "$R" /usr | tr '\n' ' ') == "a b c v " ]] || fail "mode $1: /usr not merged with a b c v"
}
unmerge() { run_rdext --root="$R" unmerge; expect_rc 0; mountpoint -q "$R/usr" && fail "/usr still merged"; return 0; }

check "mode no: raw, directory, symlinked and versioned images as systemd 260 identifies them"
merge_mode no
check_origins no "no"
check "rdext's own record is .systemd-sysext/rdext, systemd's files are unchanged"
[[ -f $R/usr/.systemd-sysext/rdext ]] || fail "no .systemd-sysext/rdext"
grep -q '"inputs"' "$R/usr/.systemd-sysext/rdext" || fail "rdext record without inputs"
! grep -q '"inputs"' "$R/usr/.systemd-sysext/origin" || fail "origin still carries rdext's inputs"
[[ $(sort "$R/usr/.systemd-sysext/extensions" | tr '\n' ' ') == "a b c v " ]] ||
    fail "extensions file: $(cat "$R/usr/.systemd-sysext/extensions")"
check "rdext status and systemd-sysext status still see the merge"
run_rdext --root="$R" status
expect_rc 0
last_out | grep -q '/usr' || fail "rdext status: $(last_out)"
# 252's status --root reads the list outside the root: 257's (trixie chroot) does it right.
if TREE=$(bash -c 'source "$1/scripts/builders-env.sh"; builders_tree trixie' _ "$(cd "$LIB_DIR/../.." && pwd)") &&
    [[ -x $TREE/usr/bin/systemd-sysext ]]; then
    out=$(in_trixie --rbind "$R" 'systemd-sysext --root=/tmp/r status' 2>&1) ||
        fail "systemd-sysext 257 status failed: $out"
    grep -Eq '/usr +a' <<<"$out" || fail "systemd-sysext 257 status does not see the merge: $out"
else
    skip_part "no trixie tree with systemd-sysext 257 (scripts/builders-env.sh)"
fi
check "rdext refresh right after finds nothing changed"
run_rdext --root="$R" refresh
expect_rc 0
last_err | grep -qi 'unchanged\|no change\|nothing changed' || fail "refresh rebuilt an unchanged merge: $(last_err)"
check_origins no "no, after an unchanged refresh"
unmerge

check "mode yes: mutableDirs names every hierarchy's directory"
merge_mode yes
check_origins yes "yes"
unmerge

check "mode auto: only the existing mutable directory, through its symlink"
rm -rf "$R/var/lib/extensions.mutable"
mkdir -p "$R/var/lib/elsewhere/usr-upper"
chmod --reference="$R/usr" "$R/var/lib/elsewhere/usr-upper"
mkdir -p "$R/var/lib/extensions.mutable"
ln -s ../elsewhere/usr-upper "$R/var/lib/extensions.mutable/usr"
merge_mode auto
check_origins auto "auto"
unmerge

check "mode import: the imported directory, resolved"
merge_mode import
check_origins import "import"
unmerge

check "mode ephemeral: systemd's workspace directories"
merge_mode ephemeral
check_origins ephemeral "ephemeral"
unmerge

finish
