"""test_index_rows: each event's row in the index holds what was published.

The index thread copies an event's strings (id, source, type, key, channel
list, body) out of the journal and holds them until it writes the row:
small events share chunks of memory that are reused from one write to the
next, an event bigger than a quarter of a chunk gets a block of its own.
This test publishes events of many sizes, from a few bytes of padding to
several chunks' worth in one burst and past the chunk threshold, with no
worker connected, and then reads every row back from herald.db: the id,
source, type, key, channel list and the body's data must be the ones
sent, byte for byte. It then restarts the broker, which loads the backlog's
bodies from the index, and checks that each inventory delivery carries
its own order's data.

Runs under Debian's /usr/bin/python3."""

import json
import os
import signal
import sqlite3

import harness

# padding per order (bytes): small, medium, up to just under a quarter of
# the index's 256 KiB chunk, and every 12th order past it (its own block)
SIZES = (0, 200, 5000, 40000, 65000)
BIG = (70000, 140000, 240000)
N = 240


def padding(i):
    if i % 12 == 11:
        size = BIG[(i // 12) % len(BIG)]
    else:
        size = SIZES[i % len(SIZES)]
    # different bytes per order, so that a row holding another order's
    # padding (or a chunk overwritten) is seen
    unit = "%05d-" % i
    return (unit * (size // len(unit) + 1))[:size]


def orders(first):
    out = []
    for i in range(N):
        o = harness.order(first + i)
        o["note"] = padding(i)
        out.append(o)
    return out


def query(store, sql, args=()):
    db = sqlite3.connect("file:%s?mode=ro" % store, uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def body(t):
    h = t.deployment()
    store = os.path.join(h.tmp, "herald.db")
    broker = h.start_broker()
    sent = orders(9000)
    path = os.path.join(h.tmp, "orders.jsonl")
    harness.write_jsonl(path, sent)
    r = h.publish(file=path, json_out=True, timeout=120)
    acks = harness.parse_json_lines(r.stdout) if r.returncode == 0 else []
    t.require(len(acks) == N and all(a.get("event_id") for a in acks),
              "%d orders of %d to %d bytes ACKed" % (N, len(json.dumps(sent[0])), max(len(json.dumps(o)) for o in sent)),
              (r.returncode, r.stdout[-500:], r.stderr[-500:]))

    # a clean stop writes everything the index holds
    h.send_signal(broker, signal.SIGTERM)
    h.wait_exit(broker)
    rows = query(store, "SELECT id, source, type, dedup_key, channels, body FROM events ORDER BY seq")
    t.check(len(rows) == N, "%d rows in the index" % N, len(rows))
    wrong = []
    for o, ack, row in zip(sent, acks, rows):
        ev_id, source, ev_type, key, channels, text = row
        try:
            ev = json.loads(text)
        except ValueError as e:
            wrong.append((o["order_id"], "body is not JSON: %s" % e, text[:80]))
            continue
        if ev_id != ack["event_id"] or ev.get("id") != ev_id:
            wrong.append((o["order_id"], "id", ev_id, ack["event_id"], ev.get("id")))
        if ev.get("data") != o:
            wrong.append((o["order_id"], "data", len(text), str(ev.get("data"))[:80]))
        if source != ev.get("source") or ev_type != harness.EVENT_TYPE:
            wrong.append((o["order_id"], "source or type", source, ev_type))
        if not key.endswith("\x1f" + str(o["order_id"])):
            wrong.append((o["order_id"], "key", key))
        if channels != " ".join(harness.CHANNELS):
            wrong.append((o["order_id"], "channels", channels))
    t.check(not wrong, "every row holds its own order's id, source, type, key, channels and body",
            wrong[:5])

    # the backlog's bodies come back from the index after a restart
    h.start_broker()
    h.start_worker("inventory")
    h.wait_counts({"inventory": N}, timeout=60)
    got = {}
    for name in h.delivery_names("inventory"):
        d = harness.read_delivery(os.path.join(h.outbox("inventory"), name))
        got.setdefault(d.order_id, []).append(d)
    t.check(sorted(got) == sorted(o["order_id"] for o in sent) and all(len(v) == 1 for v in got.values()),
            "one inventory delivery per order after the restart",
            (len(got), [k for k, v in got.items() if len(v) > 1][:5]))
    mismatched = [o["order_id"] for o in sent if o["order_id"] in got
                  and ((got[o["order_id"]][0].body or {}).get("event") or {}).get("data") != o]
    t.check(not mismatched, "each delivery carries its own order's data, padding included", mismatched[:5])

if __name__ == "__main__":
    harness.Test("index_rows", budget=180).run(body)
