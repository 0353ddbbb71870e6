"""test_fault_graceful: SIGTERM stops the broker and the workers in good order.

Phase 1: a pipelined publish of many events is running when the broker gets
SIGTERM. The broker must stop taking events, finish the commit in hand, send
its ACKs and exit 0 within broker.shutdown_timeout. Afterwards the store and
the producer must agree: every ACKed event is stored, and every stored event
was ACKed (no reply lost on the way out). A restarted broker delivers every
stored event to every channel.

Phase 2: a worker gets SIGTERM mid-stream. It must exit 0 after finishing or
handing back its tasks (the broker logs "worker left" with what was handed
back); every event still reaches every channel and nothing is dead."""

import json
import os
import signal
import sqlite3
import time

import harness

N1 = 30000
N2 = 2000
SHUTDOWN_S = 5


def stored_ids(h):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.tmp, "herald.db"), uri=True)
    try:
        return {row[0] for row in db.execute("SELECT id FROM events")}
    finally:
        db.close()


def body(t):
    h = t.deployment(broker={"shutdown_timeout": "%ds" % SHUTDOWN_S})
    broker = h.start_broker()
    h.start_workers()

    # -- phase 1: SIGTERM on the broker during a pipelined publish
    path = harness.write_jsonl(os.path.join(h.tmp, "orders.jsonl"),
                               (harness.order(i) for i in range(1, N1 + 1)))
    out = os.path.join(h.tmp, "acks.jsonl")
    publisher = h.spawn("publish", ["sh", "-c", 'exec "$0" "$@" > %s' % out,
                                    harness.binary("herald"), "publish", "-c", h.config,
                                    "--type", harness.EVENT_TYPE, "--file", path, "--json",
                                    "--timeout", "3000"])
    def some_stored():
        st = h.try_status() or {}
        return st.get("broker", {}).get("events", 0) >= 2000
    harness.wait_until(some_stored, 30, "2,000 events stored before SIGTERM", interval=0.005)
    t0 = time.monotonic()
    h.send_signal(broker, signal.SIGTERM)
    rc = h.wait_exit(broker, timeout=SHUTDOWN_S + 10)
    took = time.monotonic() - t0
    t.check(rc == 0, "the broker exits 0 on SIGTERM", "exit %s" % rc)
    t.check(took <= SHUTDOWN_S + 2, "within broker.shutdown_timeout (%ds): %.2fs" % (SHUTDOWN_S, took))
    log = open(broker.log, errors="replace").read()
    t.check("stopping: no new events" in log and "broker stopped" in log,
            "the broker logs its graceful stop", harness.tail(broker.log, 5))
    prc = h.wait_exit(publisher, timeout=60)
    t.check(prc != 0, "the publisher reports the events it could not publish (exit %s)" % prc)
    acked = set()
    with open(out) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                acked.add(json.loads(line)["event_id"])
    stored = stored_ids(h)
    t.note("SIGTERM after %.2fs of shutdown: %d ACKed, %d stored of %d published"
           % (took, len(acked), len(stored), N1))
    t.check(acked and acked <= stored, "every ACKed event is stored",
            "%d ACKed but not stored" % len(acked - stored))
    t.check(stored == acked, "every stored event was ACKed (no reply lost on the way out)",
            "%d stored but not ACKed" % len(stored - acked))
    t.check(len(stored) < N1, "the stop landed mid-stream (%d of %d stored)" % (len(stored), N1))

    # A restarted broker delivers everything that was stored.
    h.start_broker()
    n = len(stored)
    harness.wait_until(lambda: all(h.channel_status(ch).get("done") == n for ch in h.channels), 60,
                       lambda: "every stored event done on every channel: %s" % h.status())
    t.check(True, "after a restart, all %d stored events are done on every channel" % n)

    # -- phase 2: SIGTERM on a worker mid-stream
    email = [p for p in h.procs if p.name.startswith("worker-email") and p.alive()]
    t.require(email, "an email worker is running")
    path = harness.write_jsonl(os.path.join(h.tmp, "more.jsonl"),
                               (harness.order(i) for i in range(N1 + 1, N1 + N2 + 1)))
    before = h.count("email")
    publisher = h.spawn("publish-2", [harness.binary("herald"), "publish", "-c", h.config,
                                      "--type", harness.EVENT_TYPE, "--file", path])
    harness.wait_until(lambda: h.count("email") >= before + N2 // 10, 30,
                       "some phase-2 email deliveries", interval=0.005)
    h.send_signal(email[0], signal.SIGTERM)
    wrc = h.wait_exit(email[0], timeout=15)
    t.check(wrc == 0, "the email worker exits 0 on SIGTERM", "exit %s" % wrc)
    t.check(h.wait_exit(publisher, timeout=60) == 0, "phase 2 publish exits 0")
    current_broker = [p for p in h.procs if p.name == "broker"][-1]
    def left():
        return "worker left" in open(current_broker.log, errors="replace").read()
    try:
        harness.wait_until(left, 15, "the broker to log the worker's leave")
        t.check(True, "the broker took the worker's leave (worker left, handed back)")
    except harness.TestFailure as e:
        t.check(False, "the broker took the worker's leave (worker left, handed back)", str(e))
    h.start_worker("email")
    total = n + N2
    harness.wait_until(lambda: all(h.channel_status(ch).get("done") == total for ch in h.channels), 60,
                       lambda: "every event done on every channel: %s" % h.status())
    st = h.status()
    t.check(all(h._channel(st, ch).get("dead", 0) == 0 for ch in h.channels), "nothing is dead", st)


if __name__ == "__main__":
    harness.Test("fault_graceful", budget=200).run(body)
