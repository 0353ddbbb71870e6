"""test_index_yield: the index thread yields the CPU (SCHED_IDLE) while it
keeps up with the journal, and stops yielding (SCHED_OTHER, still at nice
19) once it is 8 MiB behind, until it has caught up: under SCHED_IDLE
alone a saturated machine gives it next to nothing (BENCHMARKS.md).

The index is held behind on purpose: its WAL's next fsync is held by the
fault library while 20,000 orders are published (their ACKs do not wait
for the index: the journal is not held). Released, the index logs that it
no longer yields, catches up (lag 0, every order counted pending), logs
that it yields again, and its thread is back under SCHED_IDLE.

A broker run by an unprivileged user (no CAP_SYS_NICE, RLIMIT_NICE 0)
could not leave SCHED_IDLE again: its index thread stays at nice 19 and
its segment preparer at the normal policy, and it says why at start.

Runs under Debian's /usr/bin/python3."""

import json
import os
import shutil

import faultlib
import harness

N = 20000
BEHIND = "index: behind the journal, no longer yielding the CPU until it catches up"
AGAIN = "index: caught up, yielding the CPU again"


def index_lag(h):
    return h.status().get("broker", {}).get("index_lag_bytes", -1)


def body(t):
    h = t.deployment()
    env, block, reached = faultlib.sync_hold_env(h, fsync_match="herald.db-wal")
    broker = faultlib.start_broker(h, env=env)
    t.check(harness.thread_sched(broker.pid).get("herald-index") == (19, harness.SCHED_IDLE),
            "at start the index thread yields (SCHED_IDLE, nice 19)", harness.thread_sched(broker.pid))

    # hold the index's next commit (its WAL's fsync), which one order brings
    with open(block, "w") as f:
        f.write("file")
    r = h.publish(data=harness.order(1))
    t.require(r.returncode == 0, "the first order is ACKed", r.stdout + r.stderr)
    harness.wait_until(lambda: os.path.exists(reached), 10, "the index's commit held in its WAL's fsync")

    lines = "".join(json.dumps(harness.order(100 + i)) + "\n" for i in range(N))
    r = h.publish(input=lines, extra=["--quiet"], timeout=120)
    t.require(r.returncode == 0, "%d orders ACKed while the index is held" % N, r.stdout[-500:] + r.stderr[-500:])
    lag = index_lag(h)
    t.check(lag > 8 << 20, "the index is more than 8 MiB behind the journal (%d bytes)" % lag)
    t.check(not faultlib.log_lines(broker, BEHIND), "no 'behind' line while the index is held")

    faultlib.remove(block)
    harness.wait_until(lambda: index_lag(h) == 0, 60, "the index caught up")
    harness.wait_until(lambda: faultlib.log_lines(broker, AGAIN), 10, "the index logs that it yields again")
    behind = faultlib.log_lines(broker, BEHIND)
    again = faultlib.log_lines(broker, AGAIN)
    t.check(len(behind) == 1 and "lag_bytes=" in behind[0], "one line: no longer yielding, with the lag", behind)
    t.check(len(again) == 1, "one line: yielding again", again)
    t.check(harness.thread_sched(broker.pid).get("herald-index") == (19, harness.SCHED_IDLE),
            "the index thread is back under SCHED_IDLE at nice 19", harness.thread_sched(broker.pid))
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("pending") == N + 1, "%s: every order counted pending (%s)" % (ch, c.get("pending")), c)

    h.kill(broker)

    # an unprivileged broker: no SCHED_IDLE it could not leave again
    setpriv = shutil.which("setpriv")
    t.require(setpriv, "setpriv (util-linux) is installed")
    h2 = t.deployment()
    os.chmod(h2.tmp, 0o777)
    # a copy of the binary where nobody may run it (the build tree may be
    # private to root); it needs no library of the build tree
    broker_copy = os.path.join(h2.tmp, "herald-broker")
    shutil.copy2(harness.binary("herald-broker"), broker_copy)
    os.chmod(broker_copy, 0o755)
    nobody = h2.spawn("broker-nobody", [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                                        broker_copy, "-c", h2.config])
    h2.wait_broker_ready(nobody)
    sched = harness.thread_sched(nobody.pid)
    t.check(sched.get("herald-index") == (19, harness.SCHED_OTHER)
            and sched.get("herald-prepare") == (0, harness.SCHED_OTHER),
            "run by nobody: the index thread at nice 19 and the preparer under SCHED_OTHER", sched)
    t.check(faultlib.log_lines(nobody, "not under SCHED_IDLE", "LimitNICE"),
            "run by nobody: the broker says why the index is not under SCHED_IDLE", harness.tail(nobody.log, 5))


if __name__ == "__main__":
    harness.Test("index_yield", budget=180).run(body)
