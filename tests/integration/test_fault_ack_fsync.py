"""test_fault_ack_fsync: no ACK before the fsync of its commit returned,
and a failed fsync is never ACKed: the broker stops.

The broker runs under the fault library (tests/fault/faultinject.c), which
wraps fsync and fdatasync.

Part 1, held fsync (HERALD_FAULT_FSYNC_BLOCK): with the block file present,
publish one event in the background; wait until the broker is inside fsync
(the library creates the "reached" file); for a while the publisher must
still be waiting (no ACK); remove the block file; the publisher exits 0
with the event id, and the event is in the store. Repeated ROUNDS times,
also with a pipelined batch of lines (all held, all ACKed after).

Part 2, failing fsync (HERALD_FAULT_FSYNC_FAIL, fsync returns EIO): a
publish gets no ACK (a NACK 507 or a timeout: exit 75, never 0), and the
broker exits by itself with status 74 (EX_IOERR): after a failed fsync the
page cache cannot be trusted, so it stops rather than pretend. Restarted
without the fault, the broker serves again; the event that was not ACKed
may or may not be in the store (its pages may have reached the file before
the fsync failed), but republishing it (same order_id) creates no second
event: one delivery per channel."""

import os
import signal
import subprocess
import time

import faultlib
import harness

ROUNDS = faultlib.env_int("HERALD_FAULT_ROUNDS", 5)
HOLD = faultlib.env_float("HERALD_FAULT_HOLD", 0.5)      # seconds fsync is held


def held_round(t, h, block, reached, n, order_ids):
    many = len(order_ids) > 1
    pub = faultlib.publish_held(h, block, reached, "publish-held-%d" % n,
                                order_id=None if many else order_ids[0], lines=order_ids if many else None)
    t.check(os.path.exists(reached), "round %d: the broker entered fsync (held)" % n)
    start = time.monotonic()
    while time.monotonic() - start < HOLD and pub.alive():
        time.sleep(0.01)
    held_ok = pub.alive() and not faultlib.acked(pub)
    t.check(held_ok, "round %d: no ACK while fsync is held (%.0f ms)" % (n, HOLD * 1000),
            "publisher exit %s, output %r" % (pub.popen.returncode, harness.tail(pub.log, 5)))
    faultlib.remove(block)
    rc = h.wait_exit(pub, timeout=20)
    ids = faultlib.acked(pub)
    t.check(rc == 0 and len(ids) == len(order_ids),
            "round %d: after fsync returned, %d ACK(s), exit 0" % (n, len(order_ids)),
            "exit %s, %d ids: %s" % (rc, len(ids), harness.tail(pub.log, 5)))
    return ids


def body(t):
    h = t.deployment()
    fail = os.path.join(h.tmp, "fsync.fail")
    env, block, reached = faultlib.sync_hold_env(h, fsync_fail=fail)
    broker = faultlib.start_broker(h, env=env)
    t.note("broker under %s in %s" % (faultlib.faultinject(), h.tmp))

    # -- part 1: held fsync
    all_ids = []
    next_order = 1
    for n in range(1, ROUNDS + 1):
        count = 1 if n % 2 else 100
        ids = held_round(t, h, block, reached, n, list(range(next_order, next_order + count)))
        next_order += count
        all_ids.extend(ids)
    t.check(broker.alive(), "the broker is still up after the held rounds")

    # -- part 2: failing fsync
    faultlib.touch(fail)
    bad_order = 900001
    r = h.publish(data=harness.order(bad_order), extra=["--timeout", "5000"], timeout=30)
    t.note("publish with failing fsync: exit %d, %s" % (r.returncode, r.stderr.strip()[-300:]))
    t.check(r.returncode != 0, "failing fsync: the event is not ACKed", r.stdout)
    t.check(r.returncode in (harness.EX_TEMPFAIL, harness.EX_DATAERR),
            "failing fsync: publish exits 75 (storage NACK or timeout)", r.returncode)
    t.check("507" in r.stderr or "no answer" in r.stderr,
            "failing fsync: the publisher is told NACK 507 storage (or times out)", r.stderr)
    try:
        rc = h.wait_exit(broker, timeout=15)
    except harness.TestFailure:
        rc = None
    t.check(rc == 74, "failing fsync: the broker stops by itself with exit 74 (EX_IOERR)",
            "exit %s; log: %s" % (rc, harness.tail(broker.log, 8)))
    errors = faultlib.log_lines(broker, "level=error")
    t.check(any("fsync" in l.lower() or "i/o" in l.lower() or "disk i/o" in l.lower() for l in errors),
            "the broker's error names the failure", "\n".join(errors[-5:]))
    if rc is None:
        h.kill(broker, signal.SIGKILL)

    # -- after the fault: restart, the republished event is stored once
    faultlib.remove(fail)
    broker = faultlib.start_broker(h, env=env)
    r2 = h.publish(data=harness.order(bad_order), json_out=True, timeout=30)
    t.check(r2.returncode == 0, "after restart: republishing the refused order is ACKed",
            r2.stderr[-300:])
    dup = harness.parse_json_lines(r2.stdout)
    was_stored = bool(dup and dup[0].get("duplicate"))
    t.note("the refused event %s in the store after the failed fsync (republish %s)"
           % ("WAS" if was_stored else "was not", "duplicate" if was_stored else "new"))
    h.start_workers()
    expected = len(all_ids) + 1
    h.wait_counts(expected, timeout=60, what="every stored event delivered")
    faultlib.wait_idle(h, timeout=30)
    c = h.counts()
    t.check(all(v == expected for v in c.values()),
            "exactly one delivery per channel of every ACKed event and of the republished one",
            "%s, expected %d" % (c, expected))
    got = h.delivered_events()
    for ch in h.channels:
        t.check(set(all_ids) <= got[ch], "%s: every ACKed event delivered" % ch)


if __name__ == "__main__":
    harness.Test("fault_ack_fsync", budget=180).run(body)
