"""test_outcomes_stored: the workers' outcomes reach the store on their own.

Outcomes (done, retry, dead) ride with the next commit of events; with no
events coming they are committed on their own a few milliseconds later.
This test publishes a batch, then sends nothing more (no events, no admin
request) and reads the store file directly until every task is recorded
done. It then restarts the broker and checks that nothing is delivered
again: the outcomes were durable, not just in the broker's memory."""

import os
import signal
import sqlite3
import time

import harness

N = 200


def stored_done(db):
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        # the index counts done tasks per channel (a task done at its first attempt
        # has no row of its own)
        return conn.execute("SELECT coalesce (sum (done), 0) FROM counts").fetchone()[0]
    finally:
        conn.close()


def body(t):
    h = t.deployment()
    broker = h.start_broker()
    h.start_workers()
    db = os.path.join(h.tmp, "herald.db")

    events = os.path.join(h.tmp, "orders.jsonl")
    harness.write_jsonl(events, (harness.order(i) for i in range(1, N + 1)))
    r = h.publish(file=events, timeout=60)
    t.require(r.returncode == 0, "publish of %d events exits 0" % N, (r.stdout + r.stderr)[-1500:])
    # counted from the delivery files: no admin request reaches the broker
    h.wait_counts(N, timeout=45, what="%d deliveries per channel" % N)
    delivered_at = time.monotonic()

    harness.wait_until(lambda: stored_done(db) == 3 * N, 10,
                       lambda: "the store records %d tasks done (it has %d) with no further "
                       "traffic" % (3 * N, stored_done(db)))
    t.check(stored_done(db) == 3 * N,
            "every outcome reached the store with no event or admin request after it")
    t.note("outcomes stored %.0f ms after the last delivery file appeared"
           % ((time.monotonic() - delivered_at) * 1000))

    # the broker is killed outright: what is stored is all that survives
    h.kill(broker, signal.SIGKILL)
    files_before = h.counts()
    h.start_broker()
    for ch in h.channels:
        h.wait_workers(ch, 1)
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("pending") == 0 and c.get("done") == N,
                "%s after the restart: %d done, nothing pending" % (ch, N), c)
    # a redelivery would need a worker round trip: a fresh event going
    # through all three channels after the restart gives it that time
    r = h.publish(data=harness.order(N + 1), timeout=30)
    t.require(r.returncode == 0, "one more event is ACKed after the restart", r.stdout + r.stderr)
    h.wait_counts(N + 1, timeout=30, what="the new event delivered on every channel")
    files_after = h.counts()
    t.check(all(files_after[ch] == files_before[ch] + 1 for ch in h.channels),
            "no task done before the kill was delivered again (only the new event's tasks)",
            {"before": files_before, "after": files_after})


if __name__ == "__main__":
    harness.Test("outcomes_stored", budget=120).run(body)
