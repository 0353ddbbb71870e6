"""test_spine: 1,000 order.confirmed events published from a JSON-lines file
reach every channel exactly once: 3,000 deliveries, one per event and channel,
and `herald status` counts 1,000 done and nothing pending per channel."""

import os
import re

import harness

N = 1000


def body(t):
    h = t.deployment()
    broker = h.start_broker()
    h.start_workers()
    # The index thread runs only on a CPU nothing else wants (SCHED_IDLE: it
    # must never hold the CPU the loop or the journal writer wakes up to on
    # the ACK path; nice 19 as well, should the policy be refused); they
    # keep the normal policy and nice 0.
    sched = harness.thread_sched(broker.pid)
    t.check(sched.get("herald-index") == (19, harness.SCHED_IDLE),
            "the index thread runs under SCHED_IDLE (and nice 19)", sched)
    t.check(sched.get("herald-journal") == (0, harness.SCHED_OTHER) and sched.get("herald-broker") == (0, harness.SCHED_OTHER),
            "the loop and the journal writer keep SCHED_OTHER and nice 0", sched)
    # The segment preparer zero-fills segments ahead of need under SCHED_IDLE
    # too (the normal policy only for one needed soon: none is, at rest)
    try:
        harness.wait_until(lambda: harness.thread_sched(broker.pid).get("herald-prepare") == (0, harness.SCHED_IDLE), 10,
                           "the segment preparer at rest under SCHED_IDLE")
        t.check(True, "the segment preparer at rest runs under SCHED_IDLE")
    except harness.TestFailure:
        t.check(False, "the segment preparer at rest runs under SCHED_IDLE", harness.thread_sched(broker.pid))
    t.note("broker and 3 workers up in %s" % h.tmp)

    events = os.path.join(h.tmp, "orders.jsonl")
    harness.write_jsonl(events, (harness.order(i) for i in range(1, N + 1)))
    r = h.publish(file=events, timeout=60)
    out = r.stdout + r.stderr
    t.check(r.returncode == 0, "publish of %d events exits 0" % N,
            "exit %d\n%s" % (r.returncode, out[-2000:]))
    t.check(re.search(r"\b%d\b[^\n]*\backed\b|\backed\b\D{0,20}\b%d\b" % (N, N), out, re.I),
            "publish summary says %d acked" % N, out[-1000:])
    printed_ids = set(re.findall(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s*$",
                                 r.stdout, re.M))
    t.note("publish printed %d event ids" % len(printed_ids))

    h.wait_counts(N, timeout=45, what="%d deliveries per channel" % N)
    # every task is done: let the status settle, then compare exact counts
    harness.wait_until(
        lambda: all(h.channel_status(ch).get("done") == N for ch in h.channels), 20,
        lambda: "status done=%d on every channel: %s" % (N, h.status()))

    by_channel = {}
    for ch in h.channels:
        d = h.deliveries(ch)
        by_channel[ch] = d
        orders = sorted(x.order_id for x in d.values() if x.order_id is not None)
        t.check(len(d) == N, "%s: exactly %d delivery files" % (ch, N), "found %d" % len(d))
        t.check(orders == list(range(1, N + 1)),
                "%s: one delivery per order_id 1..%d" % (ch, N),
                "missing %s, extra/dup %s" % (
                    sorted(set(range(1, N + 1)) - set(orders))[:20],
                    sorted(o for o in set(orders) if orders.count(o) > 1 or not 1 <= o <= N)[:20]))
        bad = [x.task_id for x in d.values() if not x.task_id.endswith("." + ch)]
        t.check(not bad, "%s: task ids are <uid>.%s" % (ch, ch), bad[:5])
        if ch != "email":
            ids = [x.event_id for x in d.values()]
            t.check(None not in ids and len(set(ids)) == N,
                    "%s: %d distinct event ids in the deliveries" % (ch, N),
                    "%d ids, %d distinct, %d unknown" % (len(ids), len(set(ids)), ids.count(None)))

    uids = {ch: {x.uid for x in by_channel[ch].values()} for ch in h.channels}
    first = uids[h.channels[0]]
    t.check(len(first) == N and all(u == first for u in uids.values()),
            "the three channels' task ids share the same %d event uids" % N,
            {ch: len(u ^ first) for ch, u in uids.items()})
    events = h.delivered_events()
    ids = events["inventory"]
    t.check(len(ids) == N and all(e == ids for e in events.values()),
            "the three channels hold the same %d event ids" % N,
            {ch: len(e ^ ids) for ch, e in events.items()})
    if printed_ids:
        t.check(printed_ids == ids, "the delivered event ids are the ones publish printed",
                "printed %d, delivered %d, differing %d"
                % (len(printed_ids), len(ids), len(printed_ids ^ ids)))
    total = sum(len(d) for d in by_channel.values())
    t.check(total == 3 * N, "%d deliveries in total" % (3 * N), "found %d" % total)

    # no fault here: every worker keeps its session and every task is
    # delivered once, at attempt 1
    silent = [line for p in h.procs if p.name.startswith("worker-")
              for line in open(p.log, errors="replace") if "broker silent" in line]
    t.check(not silent, "no worker dropped its session (no \"broker silent\" while the broker "
            "was sending)", "\n".join(l.strip()[:220] for l in silent[:6]))
    again = sorted("%s attempt %s" % (x.task_id, x.attempt) for d in by_channel.values()
                   for x in d.values() if isinstance(x.attempt, int) and x.attempt > 1)
    t.check(not again, "every delivery is attempt 1 (no redelivery without a fault)",
            "%d redelivered, e.g. %s" % (len(again), again[:3]))

    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("done") == N and c.get("pending") == 0
                and c.get("in_flight", 0) == 0 and c.get("dead", 0) == 0,
                "status %s: done %d, pending 0, in flight 0, dead 0" % (ch, N), c)
    ev = st.get("broker", {}).get("events")
    if ev is not None:
        t.check(ev == N, "status broker.events is %d" % N, ev)


if __name__ == "__main__":
    harness.Test("spine", budget=120).run(body)
