"""test_nack: invalid events are refused with exit 65 and a reason that names
what is wrong, and produce no delivery. After each refusal a valid event is
published and awaited on every channel: that is the barrier before counting
(no sleeps)."""

import json
import os
import re

import harness

MAX_EVENT = 4096


def body(t):
    h = t.deployment(broker={"max_event_bytes": "4KiB"})
    h.start_broker()
    h.start_workers()
    t.note("broker and 3 workers up in %s" % h.tmp)

    barriers = [0]          # files expected per channel so far
    valid = []              # order ids that must be delivered

    def barrier(label):
        """Publishes a valid event and waits for it everywhere; then every
        channel must hold exactly one file per barrier so far."""
        barriers[0] += 1
        n = barriers[0]
        valid.append(10000 + n)
        r = h.publish(harness.order(10000 + n))
        t.require(r.returncode == 0, "barrier event after %s is ACKed" % label,
                  "exit %d: %s" % (r.returncode, r.stderr[-500:]))
        h.wait_counts(n, timeout=20, what="the barrier event after %s" % label)
        c = h.counts()
        t.check(all(v == n for v in c.values()),
                "no delivery from %s (exactly %d per channel)" % (label, n), c)

    def refused(label, r, patterns):
        err = r.stderr + r.stdout
        t.check(r.returncode == harness.EX_DATAERR, "%s: exit 65" % label,
                "exit %d\nstdout %r\nstderr %r" % (r.returncode, r.stdout[-500:], r.stderr[-500:]))
        for pat in patterns:
            t.check(re.search(pat, err, re.I), "%s: the reason matches /%s/" % (label, pat),
                    err[-500:])

    barrier("start")

    # invalid JSON: the CLI may refuse it before sending; either way 65 with a reason
    r = h.publish("{bad")
    refused("invalid JSON", r, [r"json"])
    barrier("invalid JSON")

    # missing required field
    data = harness.order(1)
    del data["customer"]["email"]
    r = h.publish(data)
    refused("missing customer.email", r, [r"data\.customer\.email"])
    barrier("missing customer.email")

    data = harness.order(2)
    del data["items"]
    r = h.publish(data)
    refused("missing items", r, [r"\bitems\b"])
    barrier("missing items")

    # unknown event type
    r = h.publish(harness.order(3), type="order.vanished")
    refused("unknown type", r, [r"order\.vanished"])
    barrier("unknown type")

    # larger than broker.max_event_bytes (4 KiB)
    data = harness.order(4)
    data["note"] = "x" * (2 * MAX_EVENT)
    r = h.publish(data)
    refused("oversized event", r, [r"size|large|limit|bytes|413|4096|4 ?KiB"])
    barrier("oversized event")

    # a whole envelope that is not CloudEvents 1.0
    envelope = {"specversion": "0.3", "id": "nack-specversion", "source": "test",
                "type": harness.EVENT_TYPE, "data": harness.order(5)}
    r = h.publish(json.dumps(envelope))
    refused("specversion 0.3", r, [r"specversion"])
    barrier("specversion 0.3")

    # a JSON-lines file with one bad line among good ones: the good ones are
    # ACKed and delivered, the bad one is refused, and the exit is not 0
    bad = harness.order(21)
    del bad["customer"]["email"]
    path = harness.write_jsonl(os.path.join(h.tmp, "mixed.jsonl"),
                               [harness.order(20), bad, harness.order(22)])
    r = h.publish(file=path)
    out = r.stdout + r.stderr
    t.check(r.returncode == harness.EX_DATAERR, "mixed file: exit 65 (not every line ACKed)",
            "exit %d: %s" % (r.returncode, out[-800:]))
    t.check(re.search(r"\b2\b[^\n]*acked|acked\D{0,20}\b2\b", out, re.I),
            "mixed file: summary says 2 acked", out[-800:])
    t.check(re.search(r"customer\.email", out), "mixed file: the bad line's reason is shown",
            out[-800:])
    barriers[0] += 2        # orders 20 and 22
    valid += [20, 22]
    barrier("the mixed file")

    def orders(ch):
        return sorted(d.order_id for d in h.deliveries(ch).values())
    want = sorted(valid)
    for ch in h.channels:
        t.check(orders(ch) == want, "%s: only the valid orders were delivered" % ch,
                "got %s\nwant %s" % (orders(ch), want))
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("done") == len(want) and c.get("dead", 0) == 0,
                "status %s: done %d, dead 0" % (ch, len(want)), c)


if __name__ == "__main__":
    harness.Test("nack", budget=90).run(body)
