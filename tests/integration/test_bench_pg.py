"""test_bench_pg: bench/bench_pg.py --quick (what scripts/bench-pg.sh runs)
starts its own PostgreSQL, says what it does as it goes (each shape, each
round, each broker's pid, the ACK durability of each store), and ends with a
table whose every row has a figure for the embedded store, one broker and two
brokers on PostgreSQL, and the two ratios against the embedded store; bad
options are refused with exit 64 naming them; no process and no temporary
directory is left behind. Speed is never asserted: only that each figure was
measured. --quick takes about 15 s on the 2-core machine."""

import os
import re
import shutil
import tempfile
import time

import harness

PYTHON = "/usr/bin/python3"
BENCH = os.path.join(harness.SOURCE_DIR, "bench", "bench_pg.py")
SCRIPT = os.path.join(harness.SOURCE_DIR, "scripts", "bench-pg.sh")
ROWS = ["1. ACKed events/s, 1,000 outstanding", "2. 8 processes x 1 outstanding, events/s",
        "3. ACK latency p50, 1 outstanding, us", "3. ACK latency p99, 1 outstanding, us",
        "4. end to end, 3 channels, events/s"]
RUN_TIMEOUT = 150


def body(t):
    bin_dir = os.path.dirname(harness.binary("herald_bench_load"))
    for argv in ([PYTHON, BENCH, "--help"], [SCRIPT, "--help"]):
        rc, out, err = harness.run_bounded(argv, 20)
        t.check(rc == 0 and all(o in out for o in ("--quick", "--seconds", "--events", "--configs", "--shapes")),
                "%s --help exits 0 and lists --quick, --seconds, --events, --configs, --shapes"
                % os.path.basename(argv[1]), out + err)
    for bad, name in (("--seconds=0", "--seconds"), ("--configs=pg3", "--configs"), ("--shapes=5", "--shapes"),
                      ("--events=x", "--events"), ("--rounds=0", "--rounds")):
        rc, out, err = harness.run_bounded([PYTHON, BENCH, "--bin-dir", bin_dir, bad], 20)
        t.check(rc == harness.EX_USAGE and name in err,
                "%s is refused with exit 64 and a message naming %s" % (bad, name), "exit %d: %s" % (rc, err))

    # PostgreSQL's directory goes under --tmp and its server runs as postgres,
    # which must be able to enter it (mkdtemp makes it 0700, root's).
    tmp = tempfile.mkdtemp(prefix="test-bench-pg-")
    os.chmod(tmp, 0o755)
    try:
        t.note("running bench_pg.py --quick")
        started = time.monotonic()
        rc, out, err = harness.run_bounded([PYTHON, BENCH, "--quick", "--bin-dir", bin_dir, "--tmp", tmp],
                                           RUN_TIMEOUT)
        t.note("--quick took %.0f s" % (time.monotonic() - started))
        t.require(rc == 0, "--quick exits 0", "exit %d\n%s\n%s" % (rc, out[-3000:], err[-3000:]))

        for shape in ("== ingest", "== 1.", "== 2.", "== 3.", "== 4."):
            t.check(shape in out, "progress of '%s' printed" % shape, out[-2000:])
        t.check(len(re.findall(r"^  round 1/1 ", out, re.M)) == 12, "each shape reports each configuration's round",
                out[-3000:])
        t.check(re.search(r"ACK durability: embedded fsync, PG, 1 broker commit, PG, 2 brokers commit", out),
                "the ACK durability of each store is printed (fsync; commit with synchronous_commit on)", out[:2000])
        t.check(re.search(r"fsync on, synchronous_commit on", out), "PostgreSQL runs with fsync and "
                "synchronous_commit on, read back from the server", out[:1000])
        head = next((l for l in out.splitlines() if l.startswith("shape ")), "")
        t.check("embedded" in head and "PG, 1 broker" in head and "PG, 2 brokers" in head
                and "pg1/embedded" in head and "pg2/embedded" in head,
                "the table's columns: the three configurations and the two ratios", head)
        for label in ROWS:
            line = next((l for l in out.splitlines() if l.startswith(label)), None)
            if not t.check(line is not None, "row '%s' is printed" % label, out[-3000:]):
                continue
            cells = line[len(label):].split()
            values = [harness.number(c) for c in cells[:3]]
            t.check(len(cells) == 5 and all(v is not None and v > 0 for v in values)
                    and all(re.fullmatch(r"\d+\.\d\dx", c) for c in cells[3:]),
                    "row '%s': a figure for each configuration and both ratios" % label, line)

        pids = [int(p) for group in re.findall(r"\(pids ([\d, ]+)\)", out) for p in group.split(", ")]
        pids += [int(p) for p in re.findall(r"^bench_pg: PostgreSQL .*?, pid (\d+),", out, re.M)]
        t.check(len(pids) == 9, "every broker's pid (4 per phase) and PostgreSQL's are reported", pids)
        left = [p for p in pids if os.path.exists("/proc/%d" % p)
                and open("/proc/%d/stat" % p).read().rsplit(")", 1)[-1].split()[0] != "Z"]
        t.check(not left, "no broker and no PostgreSQL of the run is left", left)
        m = re.search(r"temp dir (\S+)$", out, re.M)
        t.check(m and not os.path.exists(m.group(1)), "the run's temp dir is removed", m.group(1) if m else out[:500])
        t.check(os.listdir(tmp) == [], "nothing left under --tmp (PostgreSQL's directory removed too)", os.listdir(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    harness.Test("bench_pg", budget=240).run(body)
