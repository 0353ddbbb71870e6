"""test_pg_spine: the spine on the PostgreSQL store, one broker.

A real PostgreSQL (pglib: initdb into a temporary directory, started on a free
port, the password in PGPASSWORD only). 1,000 order.confirmed events published
from a JSON-lines file are ACKed with durability "commit" (synchronous_commit
on, no standby), and reach every channel exactly once at attempt 1; the
database holds 1,000 events and 3,000 done tasks owned by nobody; `herald
status` counts 1,000 done per channel; `herald track` names each channel's
state; the same key published again is a duplicate carrying the first id. After
a restart of the broker (a new instance id) the duplicate is still one, and a
new event is delivered; the schema is versioned in herald.meta."""

import json
import os
import signal

import harness
import pglib

N = 1000


def body(t):
    pglib.run_test(t, "spine", run)


def run(t, pg):
    os.environ.update(pg.env())         # the broker and the CLI read PGPASSWORD, never the YAML
    h = t.deployment(store=pg.url())
    broker = h.start_broker()
    h.start_workers()
    t.note("PostgreSQL on port %d, broker and 3 workers up in %s" % (pg.port, h.tmp))

    events = os.path.join(h.tmp, "orders.jsonl")
    harness.write_jsonl(events, (harness.order(i) for i in range(1, N + 1)))
    r = h.publish(file=events, json_out=True, timeout=90)
    acks = harness.parse_json_lines(r.stdout)
    t.check(r.returncode == 0, "publish of %d events exits 0" % N, r.stderr[-1500:])
    t.check(len(acks) == N and all(a.get("durability") == "commit" and not a.get("duplicate") for a in acks),
            "%d ACKs, each new with durability \"commit\"" % N,
            "%d acks, durabilities %s" % (len(acks), sorted({a.get("durability") for a in acks})))
    ids = {a.get("event_id") for a in acks}

    h.wait_counts(N, timeout=60, what="%d deliveries per channel" % N)
    for ch in h.channels:
        d = h.deliveries(ch)
        orders = sorted(x.order_id for x in d.values())
        t.check(orders == list(range(1, N + 1)), "%s: one delivery per order 1..%d" % (ch, N),
                "%d deliveries, %d distinct" % (len(orders), len(set(orders))))
        again = [x.task_id for x in d.values() if isinstance(x.attempt, int) and x.attempt > 1]
        t.check(not again, "%s: every delivery at attempt 1" % ch, again[:5])
    t.check(h.delivered_events()["inventory"] == ids, "the delivered event ids are the ACKed ones")

    harness.wait_until(lambda: pg.sql("SELECT count(*) FROM herald.tasks WHERE state = 1") == str(3 * N), 30,
                       lambda: "3,000 done tasks in the database: %s"
                       % pg.sql("SELECT state, count(*) FROM herald.tasks GROUP BY state"))
    t.check(pg.sql("SELECT count(*) FROM herald.events") == str(N), "the database holds %d events" % N)
    t.check(pg.sql("SELECT count(*) FROM herald.tasks WHERE owner IS NOT NULL") == "0",
            "no task is owned once done")
    t.check(pg.sql("SELECT value FROM herald.meta WHERE key = 'schema'") == "herald-pg/1",
            "herald.meta says schema herald-pg/1")
    harness.wait_until(lambda: all(h.channel_status(ch).get("done") == N for ch in h.channels), 20,
                       lambda: "status done=%d per channel: %s" % (N, h.status().get("channels")))
    st = h.status()
    t.check(st["broker"].get("events") == N and st["broker"].get("postgresql", {}).get("durability") == "commit",
            "status: %d events, store postgresql with durability commit" % N, st["broker"])

    one = acks[41]["event_id"]
    r = h.herald("track", one)
    t.check(r.returncode == 0 and r.stdout.count("done") >= 3, "track %s: three channels done" % one,
            r.stdout + r.stderr)

    r = h.publish(data=harness.order(42), json_out=True)
    dup = harness.parse_json_lines(r.stdout)
    t.check(r.returncode == 0 and dup and dup[0].get("duplicate") is True and dup[0].get("event_id") == one,
            "order 42 again: a duplicate ACK carrying the first event's id", r.stdout + r.stderr)

    # a restart: the keys come back from the database, numbering goes on
    first_id = pg.sql("SELECT min(id) FROM herald.brokers")
    t.check(h.kill(broker, signal.SIGTERM) == 0, "the broker stops cleanly on SIGTERM")
    t.check(pg.sql("SELECT count(*) FROM herald.brokers") == "0",
            "a clean stop deletes the broker's liveness row")
    h.start_broker()
    t.check(int(pg.sql("SELECT min(id) FROM herald.brokers")) > int(first_id),
            "the restarted broker has a new instance id (lease ids never repeat)")
    r = h.publish(data=harness.order(42), json_out=True)
    dup = harness.parse_json_lines(r.stdout)
    t.check(r.returncode == 0 and dup and dup[0].get("duplicate") is True and dup[0].get("event_id") == one,
            "after the restart, order 42 is still a duplicate", r.stdout + r.stderr)
    r = h.publish(data=harness.order(N + 1), json_out=True)
    t.check(r.returncode == 0, "a new order after the restart is ACKed", r.stderr)
    h.wait_counts(N + 1, timeout=30, what="order %d delivered after the restart" % (N + 1))
    t.check(pg.sql("SELECT count(*) FROM herald.events") == str(N + 1), "the database holds %d events" % (N + 1))


if __name__ == "__main__":
    harness.Test("pg_spine", budget=150).run(body)
