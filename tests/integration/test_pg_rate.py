"""test_pg_rate: a channel's rate holds across brokers sharing PostgreSQL.

courier has `rate: 20/s` (burst 20). Two brokers, each with a courier worker:
each takes its share (10/s, burst 10), learnt from the other's liveness row,
so the channel as a whole is delivered at 20/s, not 20/s per broker. 120
orders are published, half to each broker; after the first 20 (the burst),
the next 100 courier deliveries take about 5 s (20/s), where two brokers each
using the whole rate would take 2.5 s. Without a worker on B, A alone
takes the whole rate again once B's liveness row says so.
"""

import os

import faultlib
import harness
import pglib
import pgtwo

RATE = 20


def span(deployments, channel, skip):
    """Seconds between the (skip+1)-th and the last delivery of channel (file
    times, every outbox)."""
    times = sorted(os.stat(os.path.join(h.outbox(channel), n)).st_mtime
                   for h in deployments.values() for n in h.delivery_names(channel))
    return times[-1] - times[skip] if len(times) > skip + 1 else 0, len(times)


def body(t):
    pglib.run_test(t, "rate", run)


def run(t, pg):
    a, b = pgtwo.pair(t, pg, channel_extra={"courier": {"rate": "%d/s" % RATE}})
    a.start_broker()
    b.start_broker()
    a.start_workers()
    workers_b = b.start_workers()
    both = {"A": a, "B": b}
    harness.wait_until(lambda: all(faultlib.logs_matching(h, "broker", "channel limits shared", "channel=courier",
                                                          "brokers=2") for h in (a, b)), 20,
                       "both brokers to take half of courier's rate")
    acks = pgtwo.publish_all(t, [faultlib.Producer(a, "to-A", 1, 60), faultlib.Producer(b, "to-B", 61, 60)],
                             timeout=60)
    pgtwo.wait_delivered(both, acks, timeout=60)
    seconds, count = span(both, "courier", RATE)
    t.note("%d courier deliveries, the last %d in %.2fs (%.1f/s)" % (count, count - RATE - 1, seconds,
                                                                     (count - RATE - 1) / max(seconds, 0.001)))
    expected = (count - RATE - 1) / RATE
    t.check(seconds >= 0.8 * expected, "courier at %d/s over both brokers: %d deliveries after the burst took"
            " >= %.1fs" % (RATE, count - RATE - 1, 0.8 * expected), "%.2fs" % seconds)
    per, files = pgtwo.delivered(both)
    by = {w: sum(1 for x in files["courier"].values() if x[0] == w) for w in both}
    t.check(by["A"] > 0 and by["B"] > 0, "both brokers delivered courier tasks", by)

    # B's courier worker leaves: A takes the whole rate again
    courier_b = [p for p in workers_b if p.name == "worker-courier"][0]
    b.kill(courier_b)
    harness.wait_until(lambda: faultlib.logs_matching(a, "broker", "channel limits shared", "channel=courier",
                                                      "brokers=1"), 20,
                       "A to take the whole of courier's rate once B has no courier worker")
    t.note("A took the whole of courier's rate back")


if __name__ == "__main__":
    harness.Test("pg_rate", budget=120).run(body)
