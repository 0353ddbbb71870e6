"""test_bench_sample: scripts/bench-sample.sh (the sample configuration's own
speed, end to end under `herald up`) with a small count: it prints one rate
per prefetch value and round, refuses bad options naming them, and leaves no
process and no temp dir behind. Speed is never asserted: only that each run
was measured."""

import glob
import os
import re
import subprocess

import harness


def body(t):
    script = os.path.join(os.environ.get("HERALD_SOURCE_DIR", "."), "scripts", "bench-sample.sh")
    env = dict(os.environ, BUILD_DIR=os.environ.get("HERALD_BUILD_DIR", "build"))
    r = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=10, env=env)
    t.check(r.returncode == 0 and "--prefetch" in r.stdout and "--events" in r.stdout,
            "--help exits 0 and lists --events and --prefetch", r.stdout + r.stderr)
    for argv, name in ((["--events", "0"], "--events"), (["--prefetch", "lots"], "--prefetch"),
                       (["--frobnicate"], "--frobnicate")):
        r = subprocess.run([script] + argv, capture_output=True, text=True, timeout=10, env=env)
        t.check(r.returncode == harness.EX_USAGE and name in r.stderr,
                "%s is refused with exit 64 and a message naming %s" % (" ".join(argv), name),
                "exit %d: %s" % (r.returncode, r.stderr))
    before = set(glob.glob("/tmp/herald-bench-sample.*"))
    # --no-build: the suite's binaries as they are (a build here would run
    # beside the other tests)
    r = subprocess.run([script, "--no-build", "--events", "200", "--rounds", "1", "--prefetch", "0,default"],
                       capture_output=True, text=True, timeout=240, env=env)
    t.check(r.returncode == 0, "a short run exits 0", r.stdout[-1500:] + r.stderr[-1500:])
    rates = re.findall(r"^round 1/1  prefetch (\S+): (\d+) orders/s end to end$", r.stdout, re.M)
    t.check([p for p, _ in rates] == ["0", "default"] and all(int(n) > 0 for _, n in rates),
            "one measured rate per prefetch value", r.stdout)
    t.check(re.search(r"^bench-sample: commit \S+, \d+ CPUs; etc/herald.yaml, 200 orders a run", r.stdout, re.M),
            "it says what it runs", r.stdout[:500])
    t.check("running..." in r.stderr, "it says what it is doing while it runs", r.stderr[-500:])
    left = set(glob.glob("/tmp/herald-bench-sample.*")) - before
    t.check(not left, "no temp dir is left", left)
    ps = subprocess.run(["pgrep", "-af", "herald-bench-sample"], capture_output=True, text=True)
    t.check(ps.stdout.strip() == "", "no process of the run is left", ps.stdout)


if __name__ == "__main__":
    harness.Test("bench_sample", budget=300).run(body)
