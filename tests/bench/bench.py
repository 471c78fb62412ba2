#!/usr/bin/env python3
"""Timing half of bench.sh (run by it, inside the private mount namespace,
once the roots are ready). See bench.sh for what is measured."""
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time

D = os.environ["BENCH_DIR"]
RDEXT = os.environ["RDEXT"]
RDEXT_ORIGIN = os.environ.get("RDEXT_ORIGIN", RDEXT)   # RDEXT is bench.sh's copy of it
FLOOR = os.environ.get("FLOOR") or None
SYSEXT = os.environ.get("SYSTEMD_SYSEXT") or None
MODE = os.environ["MODE"]
REPS = int(os.environ["REPS"])
SIZES = [int(x) for x in os.environ["SIZES"].split()]
KINDS = os.environ["KINDS"].split()
T = "share/bench"   # under the merged /usr
OPS = ["merge", "refresh", "refresh-changed", "unmerge"]
ERRLOG = os.path.join(D, "stderr.log")
rdext_failures = []


def run(argv, env=None):
    """Spawn argv (stdout to /dev/null, stderr to ERRLOG); returns
    (seconds, exit status, peak RSS KiB, stderr text)."""
    fa = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
          (os.POSIX_SPAWN_OPEN, 2, ERRLOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
    t0 = time.perf_counter()
    try:
        pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ, file_actions=fa)
    except OSError as e:
        return 0.0, 127, 0, f"cannot run {argv[0]}: {e}"
    _, status, ru = os.wait4(pid, 0)
    dt = time.perf_counter() - t0
    with open(ERRLOG, errors="replace") as f:
        err = f.read()
    return dt, os.waitstatus_to_exitcode(status), ru.ru_maxrss, err


def sh(*argv):
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read(p):
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return None


def gpt_range(path):
    """Byte offset and size of partition 1 of a GPT image."""
    with open(path, "rb") as f:
        f.seek(1024)
        e = f.read(128)
    first, last = struct.unpack_from("<QQ", e, 32)
    return first * 512, (last - first + 1) * 512


class Row:
    def __init__(self, kind, n):
        self.kind, self.n = kind, n
        self.R = os.path.join(D, "roots", f"{kind}-{n}")
        self.usr = os.path.join(self.R, "usr")
        self.E = os.path.join(self.R, "var/lib/extensions")
        self.suffix = "" if kind == "dir" else ".raw"
        self.variant = 1
        names = [f"ext-{i:03d}" for i in range(1, n)] + ["zz-top"]
        self.layers = [os.path.join(self.E, x + self.suffix) for x in reversed(names)]  # top first

    def merged_ok(self):
        if not os.path.ismount(self.usr):
            return "no overlay on /usr"
        got = read(os.path.join(self.usr, T, "top"))
        if got != f"zz-top v{self.variant}":
            return f"top file says {got!r}, wanted 'zz-top v{self.variant}'"
        if self.n > 1:
            last = f"ext-{self.n - 1:03d}"
            if read(os.path.join(self.usr, T, last)) != last or read(os.path.join(self.usr, T, "ext-001")) != "ext-001":
                return "lower extensions' files missing"
        return None

    def unmerged_ok(self):
        if os.path.ismount(self.usr):
            return "/usr still an overlay"
        if os.path.exists(os.path.join(self.usr, T)):  # the base /usr has no share/bench
            return "extension files still visible"
        return None

    def swap_top(self):
        cur = os.path.join(self.E, "zz-top" + self.suffix)
        alt = os.path.join(self.R, "bench-alt", "zz-top" + self.suffix)
        tmp = os.path.join(self.R, "bench-alt", "tmp")
        os.rename(cur, tmp)
        os.rename(alt, cur)
        os.rename(tmp, alt)
        self.variant = 3 - self.variant

    def force_clean(self):
        sh(RDEXT, f"--root={self.R}", "unmerge")
        for _ in range(5):
            if not os.path.ismount(self.usr):
                break
            sh("umount", "-l", self.usr)


SETTLE = shutil.which("nsenter") and shutil.which("udevadm") and os.path.exists("/proc/1/ns/mnt")


def settle():
    """Untimed: let the host's udev finish with the loop devices the previous
    program attached or removed (systemd-sysext removes all of its own), so
    their probing does not land in the next program's time. udev's control
    socket is in the host's /run, hidden here by our tmpfs: ask from PID 1's
    mount namespace."""
    global SETTLE
    if SETTLE:
        r = subprocess.run(["nsenter", "-t", "1", "-m", "--", "udevadm", "settle", "-t", "10"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:   # not allowed here (a container), or no udev: stop trying
            SETTLE = False


def bench_impl(row, name, binary, res, rss):
    """One rep of merge / refresh / refresh-changed / unmerge by rdext or
    systemd-sysext. Returns False once the implementation failed."""
    for op in OPS:
        if op == "refresh-changed":
            row.swap_top()
        settle()
        dt, rc, _, err = run([binary, f"--root={row.R}", op.split("-")[0]])
        bad = row.unmerged_ok() if op == "unmerge" else row.merged_ok()
        if rc != 0 and not bad:
            bad = f"exit status {rc}"
        if bad:
            res.setdefault((name, op), []).append(None)
            msg = f"{name} {op} of {row.n} {row.kind}: {bad}"
            if name == "rdext":
                print(f"bench: FAIL: {msg}\n{err.strip()[-2000:]}", file=sys.stderr)
                rdext_failures.append(msg)
            else:   # systemd-sysext over ~95 layers: expected
                print(f"bench: {msg} (reported as 'fails'): ...{err.strip()[-200:]}", file=sys.stderr)
            row.force_clean()
            return False
        res.setdefault((name, op), []).append(dt * 1000)
    return True


def measure_rss(row):
    """rdext's peak RSS (KiB) for one merge, through /usr/bin/time: wait4's
    ru_maxrss of a child spawned straight from Python would count Python's
    own pages, which the child shares until exec."""
    if not shutil.which("time") and not os.path.exists("/usr/bin/time"):
        return None
    out = os.path.join(D, "rss")
    _, rc, _, _ = run(["/usr/bin/time", "-f", "%M", "-o", out, RDEXT, f"--root={row.R}", "merge"])
    ok = rc == 0 and not row.merged_ok()
    row.force_clean()
    try:
        return int(read(out).split()[-1]) if ok else None
    except (AttributeError, ValueError, IndexError):
        return None


def bench_floor(row, mode, res):
    env = dict(os.environ)
    env["FSTYPE"] = {"squashfs": "squashfs"}.get(row.kind, "erofs")
    if row.kind in ("erofs", "squashfs"):
        env["SUBDIR"] = "usr"
        layers = row.layers
    elif row.kind == "gpt":
        layers = ["%s@%d@%d" % ((p,) + gpt_range(p)) for p in row.layers]
    else:
        layers = [os.path.join(p, "usr") for p in row.layers]
    settle()
    dt, rc, _, err = run([FLOOR, mode, row.usr] + layers, env)
    bad = row.merged_ok() or (f"exit status {rc}" if rc else None)
    key = ("floor-" + mode, "merge")
    if bad:
        res.setdefault(key, []).append(None)
        print(f"bench: floor ({mode}) of {row.n} {row.kind} fails: {bad} {err.strip()[-300:]}", file=sys.stderr)
    else:
        res.setdefault(key, []).append(dt * 1000)
    row.force_clean()
    return not bad


def median(v):
    if not v:
        return None
    if any(x is None for x in v):
        return "fails"
    return statistics.median(v)


def fmt(x):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def ratio(a, b):
    if not isinstance(a, float) or not isinstance(b, float) or b <= 0:
        return "-"
    r = a / b
    return f"{r:.3f}" if r < 0.1 else f"{r:.2f}"


def main():
    facts = {
        "mode": MODE, "reps": REPS,
        "rdext": RDEXT_ORIGIN,
        "rdext_version": subprocess.run([RDEXT, "--version"], capture_output=True, text=True).stdout.strip(),
        "rdext_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(RDEXT_ORIGIN))),
        "rdext_static": "statically linked" in subprocess.run(["file", "-L", RDEXT], capture_output=True, text=True).stdout
        if shutil.which("file") else None,
        "systemd_sysext": (subprocess.run([SYSEXT, "--version"], capture_output=True, text=True).stdout.splitlines() or ["?"])[0]
        if SYSEXT else None,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "loadavg_start": read("/proc/loadavg"),
    }
    if shutil.which("strip"):
        out = os.path.join(D, "rdext.stripped")
        subprocess.run(["strip", "-o", out, RDEXT], check=False)
        if os.path.exists(out):
            facts["stripped_size"] = os.path.getsize(out)
    print(f"bench: rdext = {RDEXT_ORIGIN} ({'static' if facts['rdext_static'] else 'dynamic'} build)", file=sys.stderr)

    table = []
    sysext_failed_at = {}
    for kind in KINDS:
        for n in SIZES:
            row = Row(kind, n)
            res, rss = {}, []
            impls = [("rdext", RDEXT)] + ([("systemd-sysext", SYSEXT)] if SYSEXT else [])
            floors = [] if not FLOOR else (["loop", "file"] if kind == "erofs" else ["dir"] if kind == "dir" else ["loop"])
            alive = {name: True for name, _ in impls} | {f: True for f in floors}
            if sysext_failed_at.get(kind):   # it mounts every image before failing: no need to wait again
                alive["systemd-sysext"] = False
                res[("systemd-sysext", "merge")] = [None]
            t0 = time.time()
            for rep in range(REPS):
                order = impls + [("floor", None)]
                k = rep % len(order)
                for name, binary in order[k:] + order[:k]:   # rotate: drift and order effects cancel
                    if name == "floor":
                        for f in floors:
                            if alive[f]:
                                alive[f] = bench_floor(row, f, res)
                    elif alive[name]:
                        alive[name] = bench_impl(row, name, binary, res, rss)
            if alive["rdext"] and os.path.exists("/usr/bin/time"):
                r = measure_rss(row)
                if r:
                    rss.append(r)
            for op in OPS:
                rd = median(res.get(("rdext", op)))
                sy = median(res.get(("systemd-sysext", op))) if SYSEXT else None
                fl = median(res.get(("floor-loop", op))) or median(res.get(("floor-dir", op)))
                ff = median(res.get(("floor-file", op)))
                table.append({"kind": kind, "n": n, "op": op, "rdext": rd, "sysext": sy, "floor": fl, "floor_file": ff,
                              "rss_kib": max(rss) if (rss and op == "merge") else None})
            if SYSEXT and median(res.get(("systemd-sysext", "merge"))) == "fails":
                sysext_failed_at.setdefault(kind, n)
            print(f"bench: {kind} N={n}: {time.time() - t0:.1f} s: " + "; ".join(
                f"{t['op']} {fmt(t['rdext'])}/{fmt(t['sysext'])}/{fmt(t['floor'])}/{fmt(t['floor_file'])}"
                for t in table[-4:]) + " (rdext/sysext/floor/floor-file ms)", file=sys.stderr)
    facts["loadavg_end"] = read("/proc/loadavg")

    hdr = ["kind", "N", "operation", "rdext ms", "sysext ms", "floor ms", "floor(file) ms",
           "rdext/sysext", "rdext/floor", "rdext/floor(file)", "rdext RSS MiB"]
    lines = []
    for t in table:
        lines.append([t["kind"], str(t["n"]), t["op"], fmt(t["rdext"]), fmt(t["sysext"]), fmt(t["floor"]),
                      fmt(t["floor_file"]), ratio(t["rdext"], t["sysext"]), ratio(t["rdext"], t["floor"]),
                      ratio(t["rdext"], t["floor_file"]),
                      f"{t['rss_kib'] / 1024:.1f}" if t["rss_kib"] else "-"])
    print(f"\nrdext merge benchmark ({MODE} mode, median of {REPS} interleaved runs, ms; "
          f"'fails' = the merge result was wrong or missing; "
          f"systemd-sysext is not run again for larger N once it failed)")
    print(f"rdext: {RDEXT_ORIGIN} ({'static' if facts['rdext_static'] else 'dynamic'}, {facts['rdext_version']}, "
          f"built {facts['rdext_mtime']} UTC)"
          + (f", stripped {facts['stripped_size'] / 1048576:.2f} MiB" if "stripped_size" in facts else ""))
    print(f"systemd-sysext: {facts['systemd_sysext']}; floor: {'tests/bench/floor.c' if FLOOR else 'not built'}")
    print(f"kernel {facts['kernel']}, {facts['cpus']} CPUs ({facts['cpu']}); "
          f"loadavg at start {facts['loadavg_start']}, at end {facts['loadavg_end']}\n")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "|".join("---" for _ in hdr) + "|")
    for l in lines:
        print("| " + " | ".join(l) + " |")
    with open(os.path.join(D, "results.json"), "w") as f:
        json.dump({"facts": facts, "rows": table}, f, indent=1)
    if os.environ.get("BENCH_OUT"):
        shutil.copy(os.path.join(D, "results.json"), os.environ["BENCH_OUT"])
    if rdext_failures:
        print("\nbench: rdext FAILED:\n  " + "\n  ".join(rdext_failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
