"""test_up_supervise: `herald up` as an operator lives with it.

- A broker SIGKILLed several times in a row, each time once it is ready, is
  back (answers `herald status`) within about 2 s every time: a broker that
  answered its admin endpoint was healthy, so its backoff starts over.
- SIGHUP to `herald up` leaves every process running (forwarded: the broker
  and the workers log that they reloaded); publishing still works.
- One stack per store: a second `herald up` on the same config exits 75
  naming the lock and the first one's pid; a second broker on the same store
  (other endpoints) exits 75 naming the running broker's pid; the first stack
  is unaffected (same processes, publishing works).
- `--log-format json`: every line on `herald up`'s stderr, the children's
  included, is one JSON object.
"""

import json
import os
import signal
import subprocess
import time

import harness
from test_up import broker_of, workers_of

KILLS = 4
BACK_WITHIN = 2.5       # seconds from SIGKILL to `herald status` answering


def json_lines(path):
    """(objects, bad lines) of a log written in JSON lines."""
    objs, bad = [], []
    with open(path, "rb") as f:
        for raw in f.read().decode("utf-8", "replace").splitlines():
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                objs.append(obj)
            except ValueError:
                bad.append(raw)
    return objs, bad


def count_msg(path, msg, **fields):
    objs, _ = json_lines(path)
    return sum(1 for o in objs if o.get("msg") == msg and
               all(o.get(k) == v for k, v in fields.items()))


def quick_status(h):
    try:
        r = h.herald("status", "--json", "--timeout", "300", timeout=10)
    except harness.TestFailure:
        return False
    return r.returncode == 0


def body(t):
    h = t.deployment(workers={"email": 1, "inventory": 1, "courier": 1})
    up = h.spawn("up", [harness.binary("herald"), "up", "-c", h.config, "--log-format", "json"])
    h.wait_broker_ready(up)
    for ch in h.channels:
        h.wait_workers(ch, 1, up)
    harness.wait_until(lambda: count_msg(up.log, "broker ready", proc="up") >= 1, 10,
                       "herald up to log that the broker is ready")

    # -- a broker killed again and again, each time once ready
    delays = []
    for i in range(KILLS):
        ready_before = count_msg(up.log, "broker ready", proc="up")
        brokers = broker_of(up.pid)
        t.require(len(brokers) == 1, "kill %d: one broker child runs" % (i + 1), brokers)
        os.kill(brokers[0], signal.SIGKILL)
        killed = time.monotonic()
        harness.wait_until(lambda: quick_status(h), 15,
                           "the broker to answer again after kill %d" % (i + 1), interval=0.05)
        delays.append(time.monotonic() - killed)
        # herald up must have seen it ready too before the next kill
        harness.wait_until(lambda: count_msg(up.log, "broker ready", proc="up") > ready_before, 10,
                           "herald up to log the restarted broker ready")
    t.note("back after %s s" % ", ".join("%.2f" % d for d in delays))
    t.check(all(d <= BACK_WITHIN for d in delays),
            "each of %d SIGKILLs of a ready broker: back within %.1f s" % (KILLS, BACK_WITHIN),
            "delays %s" % ["%.2f" % d for d in delays])
    scheduled = [o for o in json_lines(up.log)[0] if o.get("msg") == "restart scheduled"
                 and o.get("child") == "broker"]
    t.check(len(scheduled) == KILLS and all(o.get("in_ms") == "1000" for o in scheduled),
            "every broker restart is scheduled after 1000 ms (was healthy)",
            [(o.get("in_ms"), o.get("was_healthy")) for o in scheduled])
    for ch in h.channels:
        h.wait_workers(ch, 1, up)
    r = h.publish(harness.order(1))
    t.check(r.returncode == 0, "publishing works after the kills", r.stderr[-300:])
    h.wait_counts(1, timeout=20, what="order 1 delivered")

    # -- SIGHUP: every process keeps running
    family = set(broker_of(up.pid)) | set(workers_of(up.pid))
    os.kill(up.pid, signal.SIGHUP)
    harness.wait_until(lambda: count_msg(up.log, "reload requested: SIGHUP forwarded to the "
                                         "broker and the workers") >= 1, 5,
                       "herald up to log the forwarded SIGHUP")
    harness.wait_until(lambda: sum(1 for o in json_lines(up.log)[0]
                                   if o.get("proc") == "worker" and o.get("msg") == "configuration reloaded") >= 3,
                       5, "the 3 workers to log their reload")
    r = h.publish(harness.order(2))
    t.check(r.returncode == 0, "publishing works after SIGHUP", r.stderr[-300:])
    h.wait_counts(2, timeout=20, what="order 2 delivered after SIGHUP")
    t.check(up.alive(), "herald up still runs after SIGHUP")
    after = set(broker_of(up.pid)) | set(workers_of(up.pid))
    t.check(after == family and len(family) == 4,
            "SIGHUP leaves the broker and the 3 workers running (same pids)",
            "before %s, after %s" % (sorted(family), sorted(after)))
    t.check(count_msg(up.log, "exited") == KILLS, "no child exited because of SIGHUP",
            [o for o in json_lines(up.log)[0] if o.get("msg") == "exited"][-3:])

    # -- a second herald up on the same config is refused
    lock = os.path.join(h.tmp, "herald.db.up.lock")
    second = h.spawn("up-second", [harness.binary("herald"), "up", "-c", h.config])
    rc = h.wait_exit(second, timeout=15)
    text = open(second.log).read()
    t.check(rc == harness.EX_TEMPFAIL, "a second herald up on the same config exits 75",
            "exit %s: %s" % (rc, text[-500:]))
    t.check(lock in text and ("pid %d" % up.pid) in text,
            "its message names the lock file and the first herald up's pid", text[-500:])
    t.check("msg=started" not in text, "it started no process", text[-500:])

    # -- a second broker on the same store, with its own endpoints, is refused
    other = os.path.join(h.tmp, "other.yaml")
    with open(h.config) as f:
        text = f.read()
    for name in ("producers", "workers", "admin"):
        text = text.replace("%s.sock" % name, "other-%s.sock" % name)
    with open(other, "w") as f:
        f.write(text)
    broker_pid = broker_of(up.pid)[0]
    rogue = h.spawn("broker-second", [harness.binary("herald-broker"), "-c", other])
    rc = h.wait_exit(rogue, timeout=15)
    text = open(rogue.log).read()
    t.check(rc == harness.EX_TEMPFAIL, "a second broker on the same store exits 75",
            "exit %s: %s" % (rc, text[-500:]))
    t.check("other_pid=%d" % broker_pid in text and "store in use by another broker" in text,
            "its log line names the running broker's pid", text[-500:])
    t.check(not os.path.exists(os.path.join(h.tmp, "other-producers.sock")),
            "it never bound its endpoints")

    # -- the first stack is unaffected
    now = set(broker_of(up.pid)) | set(workers_of(up.pid))
    t.check(now == family, "the first stack runs the same processes", "%s vs %s" % (now, family))
    r = h.publish(harness.order(3))
    t.check(r.returncode == 0, "publishing to the first stack still works", r.stderr[-300:])
    h.wait_counts(3, timeout=20, what="order 3 delivered")

    # -- stop; every line was JSON
    os.kill(up.pid, signal.SIGTERM)
    rc = h.wait_exit(up, timeout=30)
    t.check(rc == 0, "herald up exits 0 on SIGTERM", "exit %s" % rc)
    objs, bad = json_lines(up.log)
    procs = {o.get("proc") for o in objs}
    t.check(not bad, "--log-format json: every line of herald up's stderr is a JSON object",
            bad[:5])
    t.check({"up", "broker", "worker"} <= procs and
            all({"ts", "level", "proc", "pid", "msg"} <= set(o) for o in objs),
            "lines from up, the broker and the workers, each with ts, level, proc, pid, msg",
            sorted(p for p in procs if p))

    # -- herald up beside a broker it did not start, on the same store: 75
    alone = h.spawn("broker-alone", [harness.binary("herald-broker"), "-c", other])
    harness.wait_until(lambda: os.path.exists(os.path.join(h.tmp, "other-admin.sock")), 10,
                       "the lone broker to bind")
    third = h.spawn("up-third", [harness.binary("herald"), "up", "-c", h.config])
    rc = h.wait_exit(third, timeout=15)
    text = open(third.log).read()
    last = text.strip().splitlines()[-1] if text.strip() else ""
    t.check(rc == harness.EX_TEMPFAIL and
            last.startswith("herald up: the broker exited with status 75 during start-up: "
                            "store in use by another broker") and "other_pid=%d" % alone.pid in last,
            "herald up beside a lone broker of the same store exits 75 with its broker's reason",
            "exit %s: %s" % (rc, text[-800:]))
    t.check(alone.alive(), "the lone broker is unaffected")


if __name__ == "__main__":
    harness.Test("up_supervise", budget=120).run(body)
