"""pgtwo: two brokers on one PostgreSQL database, for the tests that need
them (tests/integration/test_pg_*.py).

Each broker is a harness deployment of its own (its temporary directory, its
ipc endpoints, its workers writing into its own outbox) whose broker.store is
the same postgresql:// URL; the deliveries of both are read together.
"""

import os

import faultlib
import harness


# broker keys for a test that stops a broker's workers (SIGSTOP) so that the
# broker holds their tasks: at the tests' liveness (200 ms x 3) it dropped
# them and gave the tasks back before a loaded machine got to the check
# (with a 1 s pause inserted there, every time); 200 ms x 25 = 5 s
HOLDING_STOPPED_WORKERS = {"heartbeat_liveness": "25"}


def pair(t, pg, takeover="3s", broker=None, **config):
    """Two deployments A and B on pg's database (not started)."""
    keys = {"takeover_timeout": takeover}
    keys.update(broker or {})
    os.environ.update(pg.env())         # brokers and the CLI read PGPASSWORD, never the YAML
    return (t.deployment(store=pg.url(), broker=keys, **config),
            t.deployment(store=pg.url(), broker=keys, **config))


def publish_all(t, producers, timeout):
    """Runs faultlib producers with a count (those not started yet) until
    every one of their orders is ACKed; returns {order_id: set(ids)}."""
    faultlib.run_producers([p for p in producers if p.ident is None])
    harness.wait_until(lambda: all(p.next_id >= p.first + p.count or p.done() for p in producers), timeout,
                       lambda: "every order handed to a publisher: %s"
                       % [(p.name, p.next_id - p.first, p.count) for p in producers])
    return faultlib.finish_producers(t, producers, timeout)


def delivered(deployments):
    """{channel: {order_id: set(task ids)}} and {channel: {task_id: (where,
    Delivery)}} over the outboxes of every deployment."""
    per, files = {}, {}
    for name, h in deployments.items():
        for ch in h.channels:
            for fname in h.delivery_names(ch):
                try:
                    d = harness.read_delivery(os.path.join(h.outbox(ch), fname))
                except OSError:
                    continue
                files.setdefault(ch, {})[d.task_id] = (name, d)
                if d.order_id is not None:
                    per.setdefault(ch, {}).setdefault(d.order_id, set()).add(d.task_id)
    return per, files


def missing(deployments, orders, channels=harness.CHANNELS):
    per, _ = delivered(deployments)
    return {ch: len(set(orders) - set(per.get(ch, {}))) for ch in channels}


def wait_delivered(deployments, orders, timeout, channels=harness.CHANNELS):
    harness.wait_until(lambda: all(v == 0 for v in missing(deployments, orders, channels).values()),
                       timeout, lambda: "every order delivered on every channel (missing %s of %d)"
                       % (missing(deployments, orders, channels), len(orders)), interval=0.25)


def verify(t, deployments, acks, channels=harness.CHANNELS):
    """Every ACKed order delivered on every channel under one task id (a
    duplicate delivery is the same task: the same idempotency key), carrying
    the ACKed event id; ACKs of one order all carry one id."""
    per, files = delivered(deployments)
    several = {oid: ids for oid, ids in acks.items() if len(ids) != 1}
    t.check(not several, "every order's ACKs carry one event id, on whichever broker",
            "%d orders with several ids, e.g. %s" % (len(several), list(several.items())[:3]))
    for ch in channels:
        got = per.get(ch, {})
        lost = sorted(set(acks) - set(got))
        t.check(not lost, "%s: every ACKed order delivered (%d)" % (ch, len(acks)),
                "%d missing, e.g. %s" % (len(lost), lost[:10]))
        split = {oid: ids for oid, ids in got.items() if len(ids) > 1}
        t.check(not split, "%s: each order under one task id" % ch,
                "%d orders under several task ids, e.g. %s" % (len(split), list(split.items())[:3]))
        wrong = [(tid, d.event_id) for tid, (_, d) in files.get(ch, {}).items()
                 if d.order_id in acks and d.event_id is not None and d.event_id not in acks[d.order_id]]
        t.check(not wrong, "%s: delivered event ids are the ACKed ones" % ch, wrong[:3])
    return per, files
