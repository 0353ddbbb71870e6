"""test_duplicate: publishing the same idempotency key again is ACKed as a
duplicate carrying the first event's id, and creates no new delivery.

  - order_id 42 twice, each time with a fresh CloudEvents id (key = order_id);
  - order_id 43 twice in one JSON-lines file (both lines in one group commit);
  - a type without a key field: the same source + id twice.
A barrier event published afterwards and awaited on every channel precedes
the counting (no sleeps)."""

import json
import os

import harness

NOTE = {"name": "customer.note", "required": ["text"], "fanout": ["courier"]}


def ack_of(r):
    """The ACK object printed by `herald publish --json` (last JSON object)."""
    objs = [o for o in harness.parse_json_lines(r.stdout) if isinstance(o, dict)]
    return objs[-1] if objs else {}


def event_id(ack):
    return ack.get("event_id") or ack.get("id")


def body(t):
    h = t.deployment(events=[harness.ORDER_CONFIRMED, NOTE])
    h.start_broker()
    h.start_workers()
    t.note("broker and 3 workers up in %s" % h.tmp)

    # -- the key field: order_id 42 twice, fresh CloudEvents ids
    r1 = h.publish(harness.order(42), json_out=True)
    a1 = ack_of(r1)
    t.require(r1.returncode == 0 and event_id(a1), "first order 42 is ACKed with an event id",
              "exit %d stdout %r stderr %r" % (r1.returncode, r1.stdout, r1.stderr[-500:]))
    t.check(a1.get("duplicate") is False, "first order 42: \"duplicate\": false", a1)
    t.check(a1.get("durability") in (None, "fsync"), "first order 42: durability fsync", a1)
    h.wait_counts(1, timeout=20, what="order 42 delivered")

    r2 = h.publish(harness.order(42), json_out=True)
    a2 = ack_of(r2)
    t.check(r2.returncode == 0, "second order 42 exits 0 (a duplicate is an ACK)",
            "exit %d stderr %r" % (r2.returncode, r2.stderr[-500:]))
    t.check(a2.get("duplicate") is True, "second order 42: \"duplicate\": true", a2)
    t.check(event_id(a2) == event_id(a1), "second order 42 carries the first one's event id",
            "first %r, second %r" % (event_id(a1), event_id(a2)))

    # without --json, a duplicate is still exit 0 and says so
    r3 = h.publish(harness.order(42))
    t.check(r3.returncode == 0 and event_id(a1) in r3.stdout,
            "third order 42 (text output): exit 0 and prints the first event id",
            "exit %d stdout %r stderr %r" % (r3.returncode, r3.stdout, r3.stderr[-300:]))
    t.check("duplicate" in (r3.stdout + r3.stderr).lower(), "text output says duplicate",
            r3.stdout + r3.stderr)

    # -- the same key twice inside one pipelined batch
    path = harness.write_jsonl(os.path.join(h.tmp, "twice.jsonl"),
                               [harness.order(43), harness.order(43)])
    r = h.publish(file=path, json_out=True)
    acks = [o for o in harness.parse_json_lines(r.stdout) if isinstance(o, dict) and event_id(o)]
    t.check(r.returncode == 0, "a file with order 43 twice exits 0",
            "exit %d: %s" % (r.returncode, (r.stdout + r.stderr)[-800:]))
    t.check(len(acks) == 2 and len({event_id(a) for a in acks}) == 1
            and sorted(bool(a.get("duplicate")) for a in acks) == [False, True],
            "order 43 twice in one file: two ACKs, one duplicate, one event id",
            r.stdout[-800:])

    # -- no key field: source + id is the key
    envelope = {"specversion": "1.0", "id": "note-1", "source": "test/duplicate",
                "type": "customer.note", "data": {"text": "hello"}}
    n1 = ack_of(h.publish(json.dumps(envelope), type="customer.note", json_out=True))
    n2 = ack_of(h.publish(json.dumps(envelope), type="customer.note", json_out=True))
    t.check(n1.get("duplicate") is False and n2.get("duplicate") is True
            and event_id(n1) == event_id(n2) == "note-1",
            "same source + id twice: the second is a duplicate of note-1", [n1, n2])
    other = dict(envelope, source="test/other")
    n3 = ack_of(h.publish(json.dumps(other), type="customer.note", json_out=True))
    t.check(n3.get("duplicate") is False, "same id from another source is not a duplicate", n3)

    # -- barrier, then exact counts
    rb = h.publish(harness.order(99))
    t.require(rb.returncode == 0, "barrier order 99 ACKed", rb.stderr[-500:])
    want = {"email": 3, "inventory": 3, "courier": 3 + 2}   # 42, 43, 99 (+ 2 notes on courier)
    h.wait_counts(want, timeout=20, what="the barrier")
    c = h.counts()
    t.check(c == want, "exactly one delivery per event and channel: %s" % want, c)
    for ch in h.channels:
        orders = sorted(d.order_id for d in h.deliveries(ch).values() if d.order_id is not None)
        t.check(orders == [42, 43, 99], "%s: orders 42, 43, 99 once each" % ch, orders)
    ids = {d.event_id for d in h.deliveries("inventory").values()}
    t.check(event_id(a1) in ids, "the delivered order 42 is the first event id", ids)
    notes = sorted(d.event_id for d in h.deliveries("courier").values() if d.order_id is None)
    t.check(notes == ["note-1", "note-1"],
            "courier: note-1 delivered once per source (two stored events)", notes)


if __name__ == "__main__":
    harness.Test("duplicate", budget=90).run(body)
