"""test_keys: two different events are never one (issue "Slow, stuck and
hostile peers", points 3 and 12), through the real broker.

  - order_id 1042 (a number) and "1042" (a string) are two orders;
  - a key longer than the limit is refused (it used to be cut at 255 bytes,
    so two keys sharing their first 255 bytes were one), naming the field;
  - a key or a CloudEvents source with a control character is refused;
  - source + id: ("a", "b-c") and ("a-b", "c") are two events, and a source
    holding the old separator (U+001F) is refused;
  - required fields mean present and not empty, with their configured type:
    "customer": {"email": ""} gets a NACK at checkout (it used to be ACKed
    and the email task went dead at once, "no recipient")."""

import json

import harness

NOTE = {"name": "customer.note", "required": ["text"], "fanout": ["courier"]}
ORDER = dict(harness.ORDER_CONFIRMED,
             required=["order_id: string|number", "customer.email: email", "items: array"])


def ack_of(r):
    objs = [o for o in harness.parse_json_lines(r.stdout) if isinstance(o, dict)]
    return objs[-1] if objs else {}


def envelope(source, event_id, text="hello"):
    return json.dumps({"specversion": "1.0", "id": event_id, "source": source,
                       "type": "customer.note", "data": {"text": text}})


def body(t):
    h = t.deployment(events=[ORDER, NOTE])
    h.start_broker()

    def publish(data, **kw):
        r = h.publish(data, json_out=True, **kw)
        return r, ack_of(r)

    # number and string
    r1, a1 = publish(harness.order(1042))
    r2, a2 = publish(dict(harness.order(1042), order_id="1042"))
    t.check(r1.returncode == 0 and r2.returncode == 0 and a1.get("duplicate") is False
            and a2.get("duplicate") is False and a1.get("event_id") != a2.get("event_id"),
            "order_id 1042 and \"1042\" are two new events", (a1, a2, r2.stderr[-300:]))

    # long keys
    long_a = "k" * 255 + "A" + "x" * 100
    long_b = "k" * 255 + "B" + "x" * 100
    r3, _ = publish(dict(harness.order(1), order_id=long_a))
    t.check(r3.returncode == harness.EX_DATAERR
            and "data.order_id: idempotency key longer than 256 bytes" in r3.stderr,
            "a 356-byte key is refused (exit 65) naming the field and the limit",
            "exit %d stderr %r" % (r3.returncode, r3.stderr[-300:]))
    r4, _ = publish(dict(harness.order(1), order_id=long_b))
    t.check(r4.returncode == harness.EX_DATAERR,
            "another long key sharing its first 255 bytes is refused too (never taken for the first)")
    key_256 = "q" * 256
    r5, a5 = publish(dict(harness.order(1), order_id=key_256))
    r6, a6 = publish(dict(harness.order(1), order_id=key_256[:-1] + "r"))
    t.check(r5.returncode == 0 and r6.returncode == 0 and a6.get("duplicate") is False,
            "two 256-byte keys differing in the last byte are two new events", (a5, a6))

    # control characters
    r7, _ = publish(dict(harness.order(1), order_id="a\u0001b"))
    t.check(r7.returncode == harness.EX_DATAERR and "control character" in r7.stderr
            and "data.order_id" in r7.stderr,
            "a key with a control character is refused, naming the field", r7.stderr[-300:])

    # source + id
    r8, a8 = publish(envelope("a", "b-c"), type="customer.note")
    r9, a9 = publish(envelope("a-b", "c"), type="customer.note")
    t.check(r8.returncode == 0 and r9.returncode == 0 and a9.get("duplicate") is False,
            "source+id (\"a\",\"b-c\") and (\"a-b\",\"c\") are two events", (a8, a9))
    r10, _ = publish(envelope("a\u001fb", "c"), type="customer.note")
    r11, a11 = publish(envelope("a", "b\u001fc"), type="customer.note")
    t.check(r10.returncode == harness.EX_DATAERR and "source: contains a control character" in r10.stderr
            and r11.returncode == harness.EX_DATAERR,
            "a source or id holding U+001F is refused", (r10.stderr[-200:], r11.stderr[-200:]))
    r12, a12 = publish(envelope("a", "b-c"), type="customer.note")
    t.check(r12.returncode == 0 and a12.get("duplicate") is True
            and a12.get("event_id") == a8.get("event_id"),
            "the same source+id again is a duplicate (the key still works)", a12)

    # required: present, not empty, typed
    empty = harness.order(77)
    empty["customer"]["email"] = ""
    r13, _ = publish(empty)
    t.check(r13.returncode == harness.EX_DATAERR
            and "data.customer.email: required field is empty" in r13.stderr,
            "an empty customer.email gets a NACK at checkout naming the field", r13.stderr[-300:])
    bad = harness.order(78)
    bad["customer"]["email"] = "not an address"
    r14, _ = publish(bad)
    t.check(r14.returncode == harness.EX_DATAERR
            and "data.customer.email: must be an email address" in r14.stderr,
            "a customer.email that is not an address gets a NACK", r14.stderr[-300:])
    no_items = dict(harness.order(79), items=[])
    r15, _ = publish(no_items)
    t.check(r15.returncode == harness.EX_DATAERR and "data.items: required field is empty" in r15.stderr,
            "an order with no items gets a NACK", r15.stderr[-300:])
    st = h.status()
    t.check(st["broker"]["events"] == 6,
            "6 events stored (1042 twice, two 256-byte keys, two notes), none of the refused ones",
            st["broker"])


if __name__ == "__main__":
    harness.Test("keys", budget=120).run(body)
