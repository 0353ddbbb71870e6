"""test_bench_peers: herald_bench_peers --quick (what scripts/bench-peers.sh
runs) produces its table with every row filled for the systems that row
compares (end to end included: the floor's herald_floor_e2e), a verdict for
each target and a closing count of them, writes the same figures as JSON,
refuses bad options naming them, and leaves no process and no temp dir
behind. Speed is never asserted: only that each figure was measured."""

import json
import os
import re
import shutil
import tempfile
import time

import harness

# label -> which of (Redis, floor, Herald) that row measures
ROWS = [
    ("1. ACKed events/s, 1,000 outstanding", (True, True, True)),
    ("2. 8 processes x 1 outstanding, events/s", (True, True, True)),
    ("3. ACK latency p50, 1 outstanding, us", (True, True, True)),
    ("3. ACK latency p99, 1 outstanding, us", (True, True, True)),
    ("3. ACK latency p99.9, 1 outstanding, us", (True, True, True)),
    ("4. end to end, 3 channels, events/s", (True, True, True)),
    # shape 4 again with Herald at the floor's credit (FLOOR_CREDIT here)
    ("4. the same, Herald at credit 512 too", (True, True, True)),
    ("5. broker peak RSS (VmHWM) with the backlog, MiB", (False, False, True)),
]
FLOOR_CREDIT = 512      # not the default (1024): the option reaches the floor's workers
RUN_TIMEOUT = 150       # seconds; --quick takes 15-30 s on the 2-core machine


def body(t):
    bench = harness.binary("herald_bench_peers")

    rc, out, err = harness.run_bounded([bench, "--help"], 10)
    t.check(rc == 0 and all(o in out for o in ("--quick", "--seconds", "--events", "--json")),
            "--help exits 0 and lists --quick, --seconds, --events, --json", out + err)
    for bad, name in (("--seconds=0", "--seconds"), ("--shapes=7", "--shapes"),
                      ("--events=x", "--events"), ("--capacity=0", "--capacity"),
                      ("--prefetch=-1", "--prefetch"), ("--floor-credit=1025", "--floor-credit")):
        rc, out, err = harness.run_bounded([bench, bad], 10)
        t.check(rc == harness.EX_USAGE and name in err,
                "%s is refused with exit 64 and a message naming %s" % (bad, name),
                "exit %d: %s" % (rc, err))

    tmp = tempfile.mkdtemp(prefix="test-bench-peers-")
    try:
        result = os.path.join(tmp, "result.json")
        t.note("running %s --quick" % bench)
        started = time.monotonic()
        rc, out, err = harness.run_bounded([bench, "--quick", "--json", result, "--tmp", tmp,
                                            "--floor-credit", str(FLOOR_CREDIT)], RUN_TIMEOUT)
        t.note("--quick took %.0f s" % (time.monotonic() - started))
        t.require(rc == 0, "--quick exits 0", "exit %d\n%s\n%s" % (rc, out[-3000:], err[-3000:]))

        for shape in ("== 1.", "== 2.", "== 3.", "== 4.", "== 4. the same, Herald's workers at the floor's credit (512)",
                      "== 5."):
            t.check(shape in out, "progress of shape %s printed" % shape[3:], out[-2000:])
        t.check("Herald/Redis" in out and "Herald/floor" in out and "target (issue 9)" in out,
                "the table has the ratio and target columns", out[-3000:])

        for label, measured in ROWS:
            line = next((l for l in out.splitlines() if l.startswith(label)), None)
            if not t.check(line is not None, "row '%s' is printed" % label, out[-3000:]):
                continue
            cells = line[len(label):].split()
            values = [harness.number(c) for c in cells[:3]]
            want = [v is not None and v > 0 if m else cells[i] == "-"
                    for i, (v, m) in enumerate(zip(values, measured))]
            t.check(len(cells) >= 5 and all(want),
                    "row '%s': a figure for each system it compares, '-' for the others" % label,
                    line)
            if measured[1] and len(cells) >= 5:
                t.check(re.fullmatch(r"\d+\.\d\dx", cells[4]) is not None,
                        "row '%s': Herald/floor is a number" % label, line)
            target = line.split("  ")[-1]
            if ">=" in target or "<=" in target:
                t.check(re.search(r": (met|MISSED|out of reach: [\d.]+x Redis = [\d,]+ > floor "
                                  r"[\d,]+)", target) is not None,
                        "row '%s': a verdict on its target" % label, line)

        t.check(re.search(r"^CPU used", out, re.M) and re.search(r"herald-broker \d+%", out)
                and re.search(r"redis-server \d+%", out)
                and re.search(r"herald_floor_server \d+%", out)
                and re.search(r"herald_floor_e2e \d+%", out),
                "the CPU of each server process is printed", out[-2500:])
        t.check("How:" in out, "the output says how the systems were interleaved", out[-1500:])
        for shape in ("1", "2", "4"):
            t.check(re.search(r"^    %s round 1/1  Herald's index caught up \d+\.\d s after the turn$" % shape,
                              out, re.M),
                    "shape %s: the bench waits for Herald's index after its turn and says how long" % shape,
                    out[-3000:])
        summary = re.findall(r"^  (\d)\. [a-z ]+ +\d+\.\d s after \d+\.\d s of turns: [\d,]+ events/s "
                             r"with that time counted$", out, re.M)
        t.check(summary == ["1", "2", "4"],
                "the catch-up of Herald's index is summed per shape, with the rate that counts it",
                out[-2500:])
        t.check(re.search(r"^started\s+herald_floor_e2e, .* with 3 workers \(credit %d\)" % FLOOR_CREDIT,
                          out, re.M) and "herald_floor_e2e with one worker per channel (credit %d)"
                % FLOOR_CREDIT in out.replace("\n", " "),
                "--floor-credit is the floor's workers' credit, said where it starts and under How",
                out[-1500:])
        m = re.search(r"^Verdicts: (\d+) met, (\d+) MISSED, (\d+) out of reach\.$", out, re.M)
        t.check(m is not None and sum(int(g) for g in m.groups()) == 6,
                "the closing note counts the verdicts on the six targets", out[-1500:])
        if m and int(m.group(3)) > 0:
            t.check("Out of reach: the target, a multiple of Redis, is above the floor" in out,
                    "the closing note says what out of reach rests on", out[-1500:])

        # Herald's default credit (capacity 32 + prefetch 256), read back from its config
        t.check(re.search(r"^ +channels\.\*\.capacity 32, prefetch Herald's default: each worker's credit 288$",
                          out, re.M) and "noop worker per channel (credit 288)" in out.replace("\n", " "),
                "shape 4 runs Herald at its default credit, 288, said where it starts and under How",
                out[-2500:])
        with open(result) as f:
            data = json.load(f)
        table = data.get("table", [])
        t.check([r.get("shape") for r in table] == [label for label, _ in ROWS],
                "--json: the same rows as the table", [r.get("shape") for r in table])
        for row, (label, measured) in zip(table, ROWS):
            values = [row.get(s) for s in ("redis", "floor", "herald")]
            ok = all((isinstance(v, (int, float)) and v > 0) if m else v is None
                     for v, m in zip(values, measured))
            t.check(ok, "--json row '%s': figures where measured, null elsewhere" % label, row)
            if row.get("target"):
                t.check(row.get("verdict") in ("met", "missed", "out of reach")
                        and (row.get("verdict") != "out of reach" or "> floor" in row.get("note", "")),
                        "--json row '%s': a verdict, and the reason when out of reach" % label, row)
        herald_1 = (((data.get("shapes") or {}).get("pipelined") or {}).get("herald") or {})
        t.check(herald_1.get("index_catch_up_s", 0) > 0,
                "--json: Herald's index catch-up time in shape 1", herald_1)
        t.check(data.get("floor_credit") == FLOOR_CREDIT and data.get("herald_credit") == 288,
                "--json: the floor's credit and Herald's", (data.get("floor_credit"), data.get("herald_credit")))
        backlog = ((data.get("shapes") or {}).get("backlog") or {}).get("herald") or {}
        t.check(backlog.get("tasks", 0) >= 30000 and backlog.get("vmhwm_kib", 0) > 0,
                "--json: the backlog's task count and the broker's VmHWM", backlog)

        pids = [int(p) for p in re.findall(r"^started .*?, pid (\d+),", out, re.M)]
        t.check(len(pids) >= 5, "every server start is reported with its pid", pids)
        left = [p for p in pids if os.path.exists("/proc/%d" % p)]
        t.check(not left, "no process of the run is left", left)
        m = re.search(r"^temp dir\s+(\S+)", out, re.M)
        t.check(m and not os.path.exists(m.group(1)), "the run's temp dir is removed",
                m.group(1) if m else out[:500])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    harness.Test("bench_peers", budget=240).run(body)
