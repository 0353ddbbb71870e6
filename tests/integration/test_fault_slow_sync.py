"""test_fault_slow_sync: the loop stops syncing small batches itself once
the disk is slow, so a slow disk holds the ACKs it must hold and nothing
else.

With quick syncs, a small batch that finds the journal's writer idle is
written and fdatasync'ed by the broker's loop itself (journal_commit_here):
one producer at a time, each sync is the loop's. The broker runs under the
fault library (tests/fault/faultinject.c), which holds fsync/fdatasync while
a file exists.

  1. One publish whose sync is held for HOLD seconds: it is ACKed once the
     sync returns. (The loop may be the one waiting: that one slow sync
     is what tells it the disk is slow.)
  2. Right after, another publish whose sync is held: this time the
     journal's writer thread waits for it, and the loop answers
     `herald status` (the admin endpoint, served by the loop alone) within
     a second, several times, while the publisher still has no ACK.
  3. Released: the second publish is ACKed; 200 more (one file, pipelined) are
     ACKed (syncs quick again); every ACKed event is in the store once."""

import os
import time

import faultlib
import harness

HOLD = faultlib.env_float("HERALD_FAULT_HOLD", 1.0)     # seconds the first sync is held


def timed_status(h):
    """Seconds `herald status --json` took, or None when it did not answer."""
    start = time.monotonic()
    r = h.herald("status", "--json", "--timeout", "3000", timeout=10)
    took = time.monotonic() - start
    return took if r.returncode == 0 else None


def body(t):
    h = t.deployment()
    env, block, reached = faultlib.sync_hold_env(h)
    broker = faultlib.start_broker(h, env=env)
    t.note("broker under %s in %s" % (faultlib.faultinject(), h.tmp))

    # Quick syncs first: the loop commits these small batches itself.
    for i in range(1, 21):
        r = h.publish(data=harness.order(i), timeout=30)
        t.check(r.returncode == 0, "warm-up publish %d ACKed" % i, r.stderr[-300:])
    baseline = [timed_status(h) for _ in range(3)]
    t.note("status with quick syncs: %s s" % ["%.3f" % s for s in baseline if s is not None])

    # -- 1: one slow sync
    first = faultlib.publish_held(h, block, reached, "publish-slow-1", order_id=1001, timeout_ms=30000)
    t.check(os.path.exists(reached), "1: the first publish's sync is held")
    time.sleep(HOLD)            # the held sync's length is what is being set up, not a wait for a condition
    t.check(first.alive() and not faultlib.acked(first), "1: no ACK while its sync is held")
    faultlib.remove(block)
    rc = h.wait_exit(first, timeout=20)
    t.check(rc == 0 and len(faultlib.acked(first)) == 1, "1: ACKed once the sync returned",
            harness.tail(first.log, 5))

    # -- 2: the next held sync is the writer thread's: the loop keeps serving
    second = faultlib.publish_held(h, block, reached, "publish-slow-2", order_id=1002, timeout_ms=30000)
    t.check(os.path.exists(reached), "2: the second publish's sync is held")
    answers = [timed_status(h) for _ in range(4)]
    t.note("status while the second sync is held: %s" % answers)
    t.check(all(a is not None and a < 1.0 for a in answers),
            "2: `herald status` answers within 1 s, 4 times, while the sync is held "
            "(the loop is not the one waiting)", answers)
    t.check(second.alive() and not faultlib.acked(second), "2: still no ACK for the held publish")
    faultlib.remove(block)
    rc = h.wait_exit(second, timeout=20)
    t.check(rc == 0 and len(faultlib.acked(second)) == 1, "2: ACKed once the sync returned",
            harness.tail(second.log, 5))

    # -- 3: quick again
    path = harness.write_jsonl(os.path.join(h.tmp, "more.jsonl"),
                               (harness.order(i) for i in range(2001, 2201)))
    r = h.publish(file=path, timeout=60)
    t.check(r.returncode == 0, "3: 200 more publishes ACKed", r.stderr[-300:])
    t.check(broker.alive(), "the broker is still up")
    h.start_workers()
    expected = 20 + 2 + 200
    h.wait_counts(expected, timeout=60, what="every ACKed event delivered")
    faultlib.wait_idle(h, timeout=30)
    c = h.counts()
    t.check(all(v == expected for v in c.values()),
            "exactly one delivery per channel of each of the %d ACKed events" % expected,
            "%s" % c)


if __name__ == "__main__":
    harness.Test("fault_slow_sync", budget=120).run(body)
