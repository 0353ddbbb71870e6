"""test_pg_two_brokers: two brokers on one PostgreSQL database, producers and
workers on both.

  - 600 orders published to A and 600 others to B at the same time, while 200
    more are published to both at once (the same keys on A and B together):
    1,400 events stored, each order's ACKs carry one id whichever broker
    answered, every order delivered once on every channel, by the workers of
    one broker or the other;
  - the dedup window across brokers: an order ACKed by A, published to B, is a
    duplicate carrying A's id;
  - a broker keeps no task of a channel it has no worker for: with A's
    courier worker gone, the courier tasks of orders published to A are
    delivered by B's courier worker; and when A's email worker dies (stalled
    first, so A holds 100 email tasks, some leased to it), A gives those
    tasks back and B's email worker delivers them;
  - `herald status` on either broker lists both brokers and counts over both.
"""

import signal

import faultlib
import harness
import pglib
import pgtwo


def body(t):
    pglib.run_test(t, "two", run)


def run(t, pg):
    # A's email worker is stopped below so that A holds its tasks
    a, b = pgtwo.pair(t, pg, broker=pgtwo.HOLDING_STOPPED_WORKERS)
    a.start_broker()
    b.start_broker()
    workers_a = a.start_workers()
    b.start_workers()
    both = {"A": a, "B": b}
    t.note("two brokers on PostgreSQL port %d, 3 workers each" % pg.port)

    producers = [faultlib.Producer(a, "to-A", 1, 600), faultlib.Producer(b, "to-B", 601, 600),
                 faultlib.Producer(a, "same-A", 1201, 200), faultlib.Producer(b, "same-B", 1201, 200)]
    acks = pgtwo.publish_all(t, producers, timeout=90)
    t.check(len(acks) == 1400, "1,400 orders ACKed", len(acks))
    both_ways = {oid: ids for oid, ids in acks.items() if oid > 1200}
    t.check(all(len(ids) == 1 for ids in both_ways.values()),
            "the 200 orders published to both brokers at once: one event id each",
            [(o, ids) for o, ids in both_ways.items() if len(ids) != 1][:3])
    t.check(pg.sql("SELECT count(*) FROM herald.events") == "1400", "the database holds 1,400 events",
            pg.sql("SELECT count(*) FROM herald.events"))
    pgtwo.wait_delivered(both, acks, timeout=60)
    per, files = pgtwo.verify(t, both, acks)
    by = {ch: {w: sum(1 for x in files[ch].values() if x[0] == w) for w in both} for ch in harness.CHANNELS}
    t.check(all(len(files[ch]) == 1400 for ch in harness.CHANNELS),
            "1,400 deliveries per channel (no duplicate without a fault)", by)
    t.check(all(by[ch]["A"] > 0 and by[ch]["B"] > 0 for ch in harness.CHANNELS),
            "both brokers' workers delivered on every channel", by)
    t.note("deliveries by broker: %s" % by)

    # the same key on A, then on B
    r = a.publish(data=harness.order(5000), json_out=True)
    first = harness.parse_json_lines(r.stdout)
    r2 = b.publish(data=harness.order(5000), json_out=True)
    second = harness.parse_json_lines(r2.stdout)
    t.check(first and not first[0].get("duplicate") and second and second[0].get("duplicate") is True
            and second[0].get("event_id") == first[0].get("event_id"),
            "order 5000 ACKed by A, then published to B: a duplicate carrying A's id",
            (r.stdout, r2.stdout, r2.stderr))

    # A without a courier worker: its courier tasks go to B's worker
    courier_a = [p for p in workers_a if p.name == "worker-courier"][0]
    a.kill(courier_a, signal.SIGTERM)
    harness.wait_until(lambda: a.channel_status("courier").get("workers") == 0, 15, "A's courier worker gone")
    p = faultlib.Producer(a, "to-A-no-courier", 2001, 100)
    more = pgtwo.publish_all(t, [p], timeout=60)
    pgtwo.wait_delivered(both, more, timeout=60)
    per, files = pgtwo.delivered(both)
    where = {x[0] for tid, x in files["courier"].items() if x[1].order_id in more}
    t.check(where == {"B"}, "orders published to A without a courier worker there: courier delivered by B",
            where)
    held_a = {x[0] for tid, x in files["email"].items() if x[1].order_id in more}
    t.check(held_a == {"A"}, "their email tasks, A having an email worker, delivered by A", held_a)

    # A's email worker stalls, A holds the email tasks, the worker dies:
    # A gives them back
    email_a = [p for p in workers_a if p.name == "worker-email"][0]
    a.send_signal(email_a, signal.SIGSTOP)
    stalled = pgtwo.publish_all(t, [faultlib.Producer(a, "to-A-email-stalled", 3001, 100)], timeout=60)
    held = pg.sql("SELECT count(*) FROM herald.tasks WHERE channel = 'email' AND state = 0 AND owner ="
                  " (SELECT min(id) FROM herald.brokers)")
    t.check(held == "100", "A holds the 100 email tasks while its email worker is stalled", held)
    a.kill(email_a, signal.SIGKILL)
    pgtwo.wait_delivered(both, stalled, timeout=30, channels=("email",))
    per, files = pgtwo.delivered(both)
    where = {x[0] for x in files["email"].values() if x[1].order_id in stalled}
    t.check(where == {"B"}, "A, left without an email worker, gave its email tasks back: B delivered them",
            where)
    t.check(faultlib.logs_matching(a, "broker", "no worker left for a channel", "channel=email"),
            "A says it gave the channel's tasks back")

    st = a.status()
    ids = [x.get("id") for x in st["broker"].get("postgresql", {}).get("brokers", [])]
    t.check(len(ids) == 2, "status on A lists both brokers", st["broker"].get("postgresql"))
    harness.wait_until(lambda: all(b.channel_status(ch).get("done", 0) >= 1500 for ch in ("email", "inventory")),
                       20, lambda: "status on B counts the deliveries of both: %s" % b.status().get("channels"))


if __name__ == "__main__":
    harness.Test("pg_two_brokers", budget=150).run(body)
