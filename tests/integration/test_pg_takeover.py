"""test_pg_takeover: SIGKILL of one of two brokers under load, PostgreSQL store.

Brokers A and B share a database (broker.takeover_timeout 3 s), with workers on
both and producers publishing to both; A's producer is `herald publish -e A,B`.
Once a few hundred events are stored, A is killed with SIGKILL: A's producer
fails over to B by itself, publishing again what A did not answer (the same
envelopes, so the same keys: what A had stored comes back as duplicates
carrying A's ids). Checks:
  - 0 ACKed events lost: every order ACKed by A or B is in the database and
    delivered on every channel, carrying its ACKed id;
  - A's tasks (owned by A when it died) are taken over by B after the
    timeout, not before, and delivered by B's workers;
  - duplicates only under the same task id (each order has one task id per
    channel);
  - afterwards no task is owned by A, and A's liveness row is gone.
"""

import datetime
import re
import signal
import time

import faultlib
import harness
import pglib
import pgtwo

TAKEOVER_S = 3


def body(t):
    pglib.run_test(t, "takeover", run)


def run(t, pg):
    # A's workers are stopped below so that A dies holding tasks
    a, b = pgtwo.pair(t, pg, takeover="%ds" % TAKEOVER_S, broker=pgtwo.HOLDING_STOPPED_WORKERS)
    broker_a = a.start_broker()
    broker_b = b.start_broker()
    workers_a = a.start_workers()
    b.start_workers()
    both = {"A": a, "B": b}
    id_a = pg.sql("SELECT min(id) FROM herald.brokers")

    to_a = faultlib.Producer(a, "to-A", 1, 3000, rate=1500, chunk=500,
                             extra_args=["-e", "%s,%s" % (a.endpoint("producers"), b.endpoint("producers"))])
    to_b = faultlib.Producer(b, "to-B", 3001, 3000, rate=1500)
    faultlib.run_producers([to_a, to_b])
    harness.wait_until(lambda: int(pg.sql("SELECT count(*) FROM herald.events WHERE broker = %s" % id_a)) >= 600,
                       40, "A to store 600 events")
    # A's workers stall (SIGSTOP): A dies holding tasks, some leased to them
    for w in workers_a:
        a.send_signal(w, signal.SIGSTOP)
    harness.wait_until(lambda: int(pg.sql("SELECT count(*) FROM herald.tasks WHERE owner = %s" % id_a)) >= 300,
                       20, "A to hold 300 tasks")
    owned = int(pg.sql("SELECT count(*) FROM herald.tasks WHERE owner = %s" % id_a))
    a.kill(broker_a, signal.SIGKILL)
    for w in workers_a:
        a.send_signal(w, signal.SIGCONT)
    killed_at = time.time()
    t.note("A (broker %s) killed with SIGKILL holding %d tasks" % (id_a, owned))

    # A's producer fails over to B: what A stored comes back as duplicates
    acked_by_a = to_a.acked
    acks = pgtwo.publish_all(t, [to_a, to_b], timeout=90)
    lost = {oid: (ids, acks.get(oid)) for oid, ids in acked_by_a.items() if acks.get(oid) != ids}
    t.check(acked_by_a and not lost, "every order A ACKed before it died is stored under the same id (%d orders)"
            % len(acked_by_a), list(lost.items())[:5])
    t.check(to_a.failovers > 0, "A's producer (herald publish -e A,B) failed over to B by itself",
            "failovers %d, exits %s" % (to_a.failovers, to_a.exits))

    harness.wait_until(lambda: faultlib.logs_matching(b, "broker", "took over dead brokers"), 3 * TAKEOVER_S + 10,
                       "B to take A's tasks over")
    took = faultlib.logs_matching(b, "broker", "took over dead brokers")
    stamp = re.search(r"ts=(\S+)Z", took[0]) if took else None
    took_after = (datetime.datetime.fromisoformat(stamp.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
                  - killed_at) if stamp else -1
    t.check(took and re.search(r'dead_brokers="%s"' % id_a, took[0]),
            "B took A over (%.1fs after the kill)" % took_after, took[:2])
    # A's row was last renewed at most a liveness beat (0.6 s) before the kill
    t.check(TAKEOVER_S - 1.0 <= took_after <= 3 * TAKEOVER_S,
            "the takeover came after broker.takeover_timeout (%ds), not before" % TAKEOVER_S, took_after)
    early = [line for line in took if "tasks=0" in line]
    t.check(not early, "the takeover freed A's tasks", took[:2])

    pgtwo.wait_delivered(both, acks, timeout=60)
    per, files = pgtwo.verify(t, both, acks)
    t.check(len(acks) == 6000, "6,000 orders ACKed in all", len(acks))
    stored = int(pg.sql("SELECT count(*) FROM herald.events"))
    t.check(stored == 6000, "the database holds 6,000 events, one per order", stored)
    t.check(pg.sql("SELECT count(*) FROM herald.tasks WHERE owner = %s" % id_a) == "0",
            "no task is owned by A any more")
    t.check(pg.sql("SELECT count(*) FROM herald.brokers WHERE id = %s" % id_a) == "0", "A's liveness row is gone")
    harness.wait_until(lambda: pg.sql("SELECT count(*) FROM herald.tasks WHERE state <> 1") == "0", 30,
                       lambda: "every task done: %s" % pg.sql("SELECT state, count(*) FROM herald.tasks GROUP BY 1"))
    t.check(broker_b.alive(), "B is still running")
    dups = sum(1 for ch in harness.CHANNELS for x in files[ch].values() if x[1].attempt and x[1].attempt > 1)
    t.note("A's producer: %d ACKed by A, %d NACKs %s; deliveries at attempt > 1 (redeliveries): %d; takeover %.1fs"
           % (len(acked_by_a), sum(to_a.nacks.values()), to_a.nacks, dups, took_after))


if __name__ == "__main__":
    harness.Test("pg_takeover", budget=180).run(body)
