"""test_store_migration: a store written by the previous release (herald/1:
one SQLite file, tasks numbered by the broker) is converted at start and
nothing in it is lost:

  - events whose tasks were all done stay done (counted in status);
  - a pending task is delivered (same task id as before);
  - a dead task is listed by `herald dead list`, with its attempt history in
    `herald dead show`, and `herald dead retry` delivers it;
  - idempotency keys carry over, in both forms a herald/1 store may hold
    (the older TYPE US VALUE and today's key US TYPE US s|n US VALUE) and for
    source+id: publishing those events again is ACKed as a duplicate with the
    stored event id."""

import json
import os
import sqlite3
import time

import harness

US = "\x1f"

SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL,
  type TEXT NOT NULL, dedup_key TEXT NOT NULL UNIQUE, received_at INTEGER NOT NULL,
  body TEXT NOT NULL, first_task INTEGER NOT NULL, fanout INTEGER NOT NULL);
CREATE INDEX events_id ON events (id);
CREATE TABLE tasks (id INTEGER PRIMARY KEY, key TEXT NOT NULL, event_seq INTEGER NOT NULL,
  channel TEXT NOT NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL,
  not_before INTEGER NOT NULL, last_error TEXT, updated_at INTEGER NOT NULL,
  retry_delay INTEGER NOT NULL DEFAULT 0);
CREATE INDEX tasks_open ON tasks (channel, id) WHERE state = 0;
CREATE INDEX tasks_dead ON tasks (channel, id) WHERE state = 2;
CREATE TABLE attempts (task_id INTEGER NOT NULL, attempt INTEGER NOT NULL, at INTEGER NOT NULL,
  outcome TEXT NOT NULL, error TEXT);
CREATE INDEX attempts_task ON attempts (task_id);
INSERT INTO meta (key, value) VALUES ('schema', 'herald/1');
"""

NOTE = {"name": "customer.note", "required": ["text"], "fanout": ["courier"]}


def envelope(order_id, event_id, typ=harness.EVENT_TYPE, data=None, source="shop"):
    return {"specversion": "1.0", "id": event_id, "source": source, "type": typ,
            "data": data if data is not None else harness.order(order_id)}


def make_v1_store(path, now_ms):
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V1)
    events = [
        # seq, id, dedup_key, body, states per channel (email, inventory, courier)
        (1, "ev-done", "order.confirmed" + US + "1001", envelope(1001, "ev-done"), (1, 1, 1)),
        (2, "ev-pending", "key" + US + "order.confirmed" + US + "n" + US + "1002",
         envelope(1002, "ev-pending"), (0, 1, 1)),
        (3, "ev-dead", "order.confirmed" + US + "1003", envelope(1003, "ev-dead"), (2, 1, 1)),
    ]
    task_id = 1
    for seq, eid, key, body, states in events:
        db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)",
                   (seq, eid, "shop", harness.EVENT_TYPE, key, now_ms, json.dumps(body), task_id, 3))
        for ch, state in zip(harness.CHANNELS, states):
            uid = "%032x" % (0xabc000 + seq)
            error = "HTTP 400: bad request" if state == 2 else None
            db.execute("INSERT INTO tasks VALUES (?,?,?,?,?,?,?,?,?,0)",
                       (task_id, "%s.%s" % (uid, ch), seq, ch, state, 1 if state else 0, 0, error, now_ms))
            if state == 2:
                db.execute("INSERT INTO attempts VALUES (?,?,?,?,?)",
                           (task_id, 1, now_ms, "failed", "HTTP 400: bad request"))
            task_id += 1
    note = envelope(0, "note-1", typ="customer.note", data={"text": "hello"})
    db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)",
               (4, "note-1", "shop", "customer.note", "ce" + US + "shop" + US + "note-1", now_ms,
                json.dumps(note), task_id, 1))
    db.execute("INSERT INTO tasks VALUES (?,?,?,?,?,?,?,?,?,0)",
               (task_id, "%032x.courier" % 0xabc004, 4, "courier", 1, 1, 0, None, now_ms))
    db.commit()
    db.close()


def body(t):
    h = t.deployment(events=[harness.ORDER_CONFIRMED, NOTE])
    store = os.path.join(h.tmp, "herald.db")
    make_v1_store(store, int(time.time() * 1000))
    broker = h.start_broker()
    t.check("store migrated from herald/1 to herald/4" in open(broker.log).read(),
            "the broker says it migrated the store", harness.tail(broker.log, 10))
    st = h.status()
    email = h._channel(st, "email")
    t.check(email.get("done") == 1 and email.get("dead") == 1 and email.get("pending") == 1,
            "email: 1 done, 1 dead, 1 pending after the migration", email)
    courier = h._channel(st, "courier")
    t.check(courier.get("done") == 4, "courier: 4 done (the note's task too)", courier)

    # keys carried over, both forms, and source+id
    for data, expect in ((harness.order(1001), "ev-done"), (harness.order(1003), "ev-dead")):
        r = h.publish(dict(data, order_id=str(data["order_id"])), json_out=True)
        ack = harness.parse_json_lines(r.stdout)[-1] if r.stdout.strip() else {}
        t.check(r.returncode == 0 and ack.get("duplicate") is True and ack.get("event_id") == expect,
                "order \"%s\" (older key form) is a duplicate of %s" % (data["order_id"], expect),
                (r.stdout, r.stderr[-300:]))
    r = h.publish(harness.order(1002), json_out=True)
    ack = harness.parse_json_lines(r.stdout)[-1] if r.stdout.strip() else {}
    t.check(ack.get("duplicate") is True and ack.get("event_id") == "ev-pending",
            "order 1002 (today's key form) is a duplicate of ev-pending", (r.stdout, r.stderr[-300:]))
    r = h.publish(json.dumps(envelope(0, "note-1", typ="customer.note", data={"text": "hello"})),
                  type="customer.note", json_out=True)
    ack = harness.parse_json_lines(r.stdout)[-1] if r.stdout.strip() else {}
    t.check(ack.get("duplicate") is True and ack.get("event_id") == "note-1",
            "the source+id event is a duplicate", (r.stdout, r.stderr[-300:]))

    # the dead task, with its history
    r = h.herald("dead", "list", "--json")
    dead = json.loads(r.stdout).get("tasks", []) if r.returncode == 0 else []
    t.require(len(dead) == 1 and dead[0]["task_id"] == "%032x.email" % 0xabc003,
              "dead list shows the migrated dead task under its old id", r.stdout + r.stderr)
    r = h.herald("dead", "show", dead[0]["task_id"], "--json")
    shown = json.loads(r.stdout).get("task", {}) if r.returncode == 0 else {}
    t.check(len(shown.get("history", [])) == 1 and "HTTP 400" in shown["history"][0]["error"],
            "dead show gives its attempt history", r.stdout[-500:])

    # the pending task is delivered under its old id; the dead one after a retry
    h.start_workers()
    def delivered(task_id):
        return any(n.startswith(task_id) for n in h.delivery_names("email"))
    harness.wait_until(lambda: delivered("%032x.email" % 0xabc002), 20,
                       "the migrated pending task delivered")
    r = h.herald("dead", "retry", dead[0]["task_id"])
    t.check(r.returncode == 0, "dead retry of the migrated task", r.stderr)
    harness.wait_until(lambda: delivered("%032x.email" % 0xabc003), 20,
                       "the retried task delivered")
    email = h.channel_status("email")
    t.check(email.get("dead") == 0 and email.get("pending") == 0,
            "email: nothing dead or pending at the end", email)


if __name__ == "__main__":
    harness.Test("store_migration", budget=90).run(body)
