"""test_store_pending: a task pending at its first attempt has no row in the
index's tasks table, only a bit of its event's pending bits (the table
pending, one small row per event: bit i for the i-th channel of
events.channels), which is what keeps the index's cost per event down
(BENCHMARKS.md), and every path that reads pending tasks still finds such a
task:

  - the counts and `herald track` say pending;
  - after a restart, a channel no longer in the configuration: its pending
    tasks become dead (rows), `herald dead list` shows them, the others'
    bits stay;
  - the backlog is loaded from the bits and each task delivered exactly
    once; the bits go as tasks are done (done at the first attempt: no row);
  - a herald/2 store (every pending task a row) is converted at start (the
    table of bits added, its rows kept and counted) and its tasks delivered;
  - a herald/3 store (the bits in a column of events) is converted at start:
    the bits move to their table, the column goes, and each task they hold
    is delivered once, as is one with a row;
  - tasks done at their first attempt after their event was written, in the
    same run (the index remembers such events' bits): the bits go, no row,
    the counts and the bits' done_at follow (track says when), and a
    restart finds them so; the same
    after an operator's record (a purge) made the index forget the bits it
    remembered (each event's first outcome reads its row again);
  - a task whose first attempt fails after its event was written loses its
    bit and gets a row (retrying), which its success then marks done.

Runs under Debian's /usr/bin/python3."""

import json
import os
import signal
import sqlite3
import time

import harness

N = 40
US = "\x1f"

# what herald/2 and herald/3 made alike: meta, tasks, attempts, counts
SCHEMA_COMMON = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tasks (seq INTEGER NOT NULL, ch INTEGER NOT NULL, channel TEXT NOT NULL,
  state INTEGER NOT NULL, attempts INTEGER NOT NULL, throttled INTEGER NOT NULL DEFAULT 0,
  not_before INTEGER NOT NULL DEFAULT 0, retry_delay INTEGER NOT NULL DEFAULT 0, last_error TEXT,
  updated_at INTEGER NOT NULL, requeued INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (seq, ch)) WITHOUT ROWID;
CREATE INDEX tasks_pending ON tasks (channel, seq) WHERE state = 0 AND requeued = 0;
CREATE INDEX tasks_requeued ON tasks (channel, requeued) WHERE state = 0 AND requeued > 0;
CREATE INDEX tasks_dead ON tasks (channel, seq) WHERE state = 2;
CREATE TABLE attempts (seq INTEGER NOT NULL, ch INTEGER NOT NULL, attempt INTEGER NOT NULL,
  at INTEGER NOT NULL, outcome TEXT NOT NULL, error TEXT);
CREATE INDEX attempts_task ON attempts (seq, ch);
CREATE TABLE counts (channel TEXT PRIMARY KEY, pending INTEGER NOT NULL, done INTEGER NOT NULL,
  dead INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('applied_lsn', '0');
"""

# the index as herald/2 made it (no pending bits)
SCHEMA_V2 = SCHEMA_COMMON + """
CREATE TABLE events (seq INTEGER PRIMARY KEY, uid TEXT NOT NULL, id TEXT NOT NULL,
  source TEXT NOT NULL, type TEXT NOT NULL, dedup_key TEXT NOT NULL, received_at INTEGER NOT NULL,
  channels TEXT NOT NULL, done_at INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL);
CREATE INDEX events_id ON events (id);
CREATE INDEX events_uid ON events (uid);
INSERT INTO meta (key, value) VALUES ('schema', 'herald/2');
INSERT INTO meta (key, value) VALUES ('next_seq', '3');
"""

# the index as herald/3 made it: the bits in events.pending
SCHEMA_V3 = SCHEMA_COMMON + """
CREATE TABLE events (seq INTEGER PRIMARY KEY, uid TEXT NOT NULL, id TEXT NOT NULL,
  source TEXT NOT NULL, type TEXT NOT NULL, dedup_key TEXT NOT NULL, received_at INTEGER NOT NULL,
  channels TEXT NOT NULL, done_at INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL,
  pending INTEGER NOT NULL DEFAULT 0);
CREATE INDEX events_id ON events (id);
CREATE INDEX events_pending ON events (seq) WHERE pending <> 0;
INSERT INTO meta (key, value) VALUES ('schema', 'herald/3');
INSERT INTO meta (key, value) VALUES ('next_seq', '4');
"""


def make_v2_store(path, now_ms):
    """Two orders: the first with its inventory task done after a retry (a
    row) and the others pending, the second all pending; every pending
    task a row, as herald/2 wrote them."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V2)
    for seq, order_id, states in ((1, 7001, (0, 1, 0)), (2, 7002, (0, 0, 0))):
        body = {"specversion": "1.0", "id": "ev-%d" % order_id, "source": "shop",
                "type": harness.EVENT_TYPE, "data": harness.order(order_id)}
        db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (seq, "%032x" % (0xfeed00 + seq), body["id"], "shop", harness.EVENT_TYPE,
                    "key" + US + harness.EVENT_TYPE + US + "n" + US + str(order_id), now_ms,
                    " ".join(harness.CHANNELS), 0, json.dumps(body)))
        for ch, (name, state) in enumerate(zip(harness.CHANNELS, states)):
            db.execute("INSERT INTO tasks (seq, ch, channel, state, attempts, updated_at)"
                       " VALUES (?,?,?,?,?,?)", (seq, ch, name, state, 2 if state else 0, now_ms))
    db.executemany("INSERT INTO counts VALUES (?,?,?,?)",
                   [("email", 2, 0, 0), ("inventory", 1, 1, 0), ("courier", 2, 0, 0)])
    db.commit()
    db.close()


def make_v3_store(path, now_ms):
    """Three orders as herald/3 wrote them: the first all pending (bits 7),
    the second with its inventory task done at the first attempt (bits 5,
    its done_at set), the third with email and courier done and inventory
    retrying after a failed attempt (a row, no bit)."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V3)
    for seq, order_id, bits, done_at in ((1, 7101, 7, 0), (2, 7102, 5, now_ms - 500),
                                         (3, 7103, 0, now_ms - 400)):
        body = {"specversion": "1.0", "id": "ev-%d" % order_id, "source": "shop",
                "type": harness.EVENT_TYPE, "data": harness.order(order_id)}
        db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (seq, "%032x" % (0xbeef00 + seq), body["id"], "shop", harness.EVENT_TYPE,
                    "key" + US + harness.EVENT_TYPE + US + "n" + US + str(order_id), now_ms - 1000,
                    " ".join(harness.CHANNELS), done_at, json.dumps(body), bits))
    db.execute("INSERT INTO tasks (seq, ch, channel, state, attempts, last_error, updated_at)"
               " VALUES (3, 1, 'inventory', 0, 1, 'stock service: 503', ?)", (now_ms - 300,))
    db.execute("INSERT INTO attempts VALUES (3, 1, 1, ?, 'retry', 'stock service: 503')", (now_ms - 300,))
    db.executemany("INSERT INTO counts VALUES (?,?,?,?)",
                   [("email", 2, 1, 0), ("inventory", 2, 1, 0), ("courier", 2, 1, 0)])
    db.commit()
    db.close()


def query(store, sql):
    db = sqlite3.connect("file:%s?mode=ro" % store, uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def publish_orders(t, h, first):
    """N orders, numbered from first, ACKed with no worker connected: their ACKs."""
    lines = "".join(json.dumps(harness.order(first + i)) + "\n" for i in range(N))
    r = h.publish(input=lines, json_out=True)
    acks = harness.parse_json_lines(r.stdout) if r.returncode == 0 else []
    t.require(len(acks) == N and all(a.get("event_id") for a in acks),
              "%d orders ACKed, no worker connected" % N, (r.returncode, r.stdout[-500:], r.stderr[-500:]))
    return acks


def work_off_written(t, first, between=None, after=""):
    """A fresh deployment: N orders (numbered from first) written to the
    index with their three bits and no worker, between(h) if given, then the
    workers: every bit goes, no task gets a row, each event's done_at and
    the counts table follow. Returns the deployment and its broker."""
    h = t.deployment()
    store = os.path.join(h.tmp, "herald.db")
    broker = h.start_broker()
    acks = publish_orders(t, h, first)
    h.herald("track", acks[0]["event_id"], "--json")   # the index writes what it holds
    harness.wait_until(lambda: query(store, "SELECT bits, count(*) FROM pending GROUP BY bits") == [(7, N)],
                       10, "the events written with their three bits")
    if between:
        between(h)
    h.start_workers()
    h.wait_counts({ch: N for ch in harness.CHANNELS}, timeout=30)
    harness.wait_until(lambda: all(h._channel(h.status(), ch).get("done") == N
                                   for ch in harness.CHANNELS), 15, "status: every task done" + after)
    harness.wait_until(lambda: query(store, "SELECT count(*) FROM pending WHERE bits <> 0")[0][0] == 0,
                       10, "every bit gone in the run that wrote it" + after)
    t.check(query(store, "SELECT count(*) FROM tasks")[0][0] == 0,
            "no task row for a task done at its first attempt after its event was written" + after,
            query(store, "SELECT * FROM tasks LIMIT 5"))
    late = query(store, "SELECT count(*) FROM events e LEFT JOIN pending p ON p.seq = e.seq"
                        " WHERE p.seq IS NULL OR p.done_at < e.received_at")[0][0]
    t.check(late == 0, "each event's bits say when its last task was done" + after, late)
    r = h.herald("track", acks[-1]["event_id"], "--json")
    tracked = json.loads(r.stdout) if r.returncode == 0 else {}
    tasks = [task for ev in tracked.get("events", []) for task in ev.get("channels", [])]
    done_at = query(store, "SELECT p.done_at FROM pending p JOIN events e ON e.seq = p.seq"
                           " WHERE e.id = '%s'" % acks[-1]["event_id"])
    t.check(len(tasks) == 3 and done_at and all(x.get("state") == "done" and x.get("updated_at") <= done_at[0][0]
                                                for x in tasks)
            and max(x.get("updated_at") for x in tasks) == done_at[0][0],
            "track: the last order's tasks done, the latest at its bits' done_at" + after,
            (done_at, r.stdout[-600:]))
    want = [(ch, 0, N, 0) for ch in sorted(harness.CHANNELS)]
    harness.wait_until(lambda: query(store, "SELECT channel, pending, done, dead FROM counts ORDER BY channel")
                       == want, 10, "the counts table: every task done" + after)
    return h, broker


def delivered_once(t, h, store, want, done, what):
    """Waits for want deliveries per channel and nothing pending, checks that
    no more came (what), then that the loaded bits went as their tasks were
    done (the index remembers the bits it loads), the rows left were marked
    done, and the counts table says done tasks per channel."""
    h.wait_counts(want, timeout=30)
    harness.wait_until(lambda: all(h._channel(h.status(), ch).get("pending") == 0
                                   for ch in harness.CHANNELS), 15, "nothing pending")
    t.check(h.counts() == want, what, h.counts())
    harness.wait_until(lambda: query(store, "SELECT count(*) FROM pending WHERE bits <> 0")[0][0] == 0
                       and query(store, "SELECT count(*) FROM tasks WHERE state <> 1")[0][0] == 0, 10,
                       "no pending bit and no unfinished row left")
    want_counts = [(ch, 0, done, 0) for ch in sorted(harness.CHANNELS)]
    harness.wait_until(lambda: query(store, "SELECT channel, pending, done, dead FROM counts ORDER BY channel")
                       == want_counts, 10, "the counts table: %d done per channel" % done)


def body(t):
    h = t.deployment()
    store = os.path.join(h.tmp, "herald.db")
    broker = h.start_broker()
    acks = publish_orders(t, h, 5000)

    # `track` makes the index write what it holds, then reads it
    r = h.herald("track", acks[0]["event_id"], "--json")
    tracked = json.loads(r.stdout) if r.returncode == 0 else {}
    states = [task.get("state") for ev in tracked.get("events", []) for task in ev.get("channels", [])]
    t.check(states == ["pending"] * 3, "track: the first order's three tasks are pending", r.stdout[-800:])
    harness.wait_until(lambda: query(store, "SELECT count(*) FROM events")[0][0] == N, 10,
                       "every event written to the index")
    rows = query(store, "SELECT count(*) FROM tasks")[0][0]
    t.check(rows == 0, "no task has a row of its own while pending at its first attempt", rows)
    bits = query(store, "SELECT bits, count(*) FROM pending GROUP BY bits")
    t.check(bits == [(7, N)], "each event has a pending bit for each of its three channels", bits)
    st = h.status()
    t.check(all(h._channel(st, ch).get("pending") == N for ch in harness.CHANNELS),
            "status: %d pending per channel" % N, st.get("channels"))

    # the courier channel leaves the configuration: its pending tasks die
    h.send_signal(broker, signal.SIGTERM)
    h.wait_exit(broker)
    h.write_config(channels=("email", "inventory"))
    broker = h.start_broker()
    def dead_listed():
        r = h.herald("dead", "list", "--channel", "courier", "--json")
        tasks = json.loads(r.stdout).get("tasks", []) if r.returncode == 0 else []
        return tasks if len(tasks) == N else None
    dead = harness.wait_until(dead_listed, 15, "the courier tasks listed dead")
    t.check(all("no longer in the configuration" in (d.get("last_error") or "") for d in dead),
            "each dead courier task says why", dead[:2])
    # no index on events.uid: dead show finds a task by its event's number
    t.check(query(store, "SELECT name FROM sqlite_master WHERE name = 'events_uid'") == [],
            "a new store has no index on events.uid")
    for d in (dead[0], dead[-1]):
        r = h.herald("dead", "show", d["task_id"], "--json")
        shown = json.loads(r.stdout).get("task", {}) if r.returncode == 0 else {}
        t.check(shown.get("task_id") == d["task_id"] and shown.get("event_id") == d.get("event_id")
                and shown.get("channel") == "courier",
                "dead show %s finds it (event %s)" % (d["task_id"], d.get("event_id")), r.stdout[-300:] + r.stderr)
    r = h.herald("dead", "show", dead[0]["task_id"][:-len(".courier")] + ".email", "--json")
    t.check(r.returncode != 0 and "no dead task" in r.stdout + r.stderr,
            "dead show of that event's email task (not dead): not found", r.stdout[-300:] + r.stderr)
    # what dead list read is in the index's open transaction: committed soon after
    def committed():
        rows = query(store, "SELECT channel, state, count(*) FROM tasks GROUP BY channel, state")
        bits = query(store, "SELECT bits, count(*) FROM pending GROUP BY bits")
        return (rows, bits) if rows == [("courier", 2, N)] and bits == [(3, N)] else None
    try:
        harness.wait_until(committed, 10, "the abandoned tasks committed")
    except harness.TestFailure:
        pass
    rows = query(store, "SELECT channel, state, count(*) FROM tasks GROUP BY channel, state")
    t.check(rows == [("courier", 2, N)], "the courier tasks got dead rows, and only they", rows)
    bits = query(store, "SELECT bits, count(*) FROM pending GROUP BY bits")
    t.check(bits == [(3, N)], "the email and inventory bits stay, the courier bit went", bits)

    # the backlog is loaded from the bits: each task delivered once
    h.start_worker("email")
    h.start_worker("inventory")
    h.wait_counts({"email": N, "inventory": N}, timeout=30)
    harness.wait_until(lambda: all(h._channel(h.status(), ch).get("done") == N
                                   for ch in ("email", "inventory")), 15,
                       "status: every email and inventory task done")
    for ch in ("email", "inventory"):
        names = h.delivery_names(ch)
        t.check(len(names) == N and len({harness.read_delivery(os.path.join(h.outbox(ch), n)).task_id
                                         for n in names}) == N,
                "%s: %d deliveries, one per task" % (ch, N), len(names))
    harness.wait_until(lambda: query(store, "SELECT count(*) FROM pending WHERE bits <> 0")[0][0] == 0,
                       10, "every pending bit gone once its task is done")
    rows = query(store, "SELECT channel, state, count(*) FROM tasks GROUP BY channel, state")
    t.check(rows == [("courier", 2, N)],
            "tasks done at their first attempt got no row (only the dead courier rows remain)", rows)

    # outcomes that come after their events were written (a backlog, here
    # the whole of it): each task done at its first attempt takes its bit
    # in the same run, no task gets a row, the counts follow, and a restart
    # finds them so
    h4, broker4 = work_off_written(t, 6000)
    h4.send_signal(broker4, signal.SIGTERM)
    h4.wait_exit(broker4)
    h4.start_broker()
    st = h4.status()
    got = {ch: (h4._channel(st, ch).get("pending"), h4._channel(st, ch).get("done")) for ch in harness.CHANNELS}
    t.check(got == {ch: (0, N) for ch in harness.CHANNELS},
            "after a restart: nothing pending, %d done per channel" % N, got)

    # the same after an operator's record (here a purge with nothing dead)
    # made the index forget the bits it remembered: the first outcome of
    # each event reads its row and remembers it again, its others clear
    # bits in memory
    def purge(h):
        r = h.herald("dead", "purge", "--all")
        t.check(r.returncode == 0, "dead purge --all with nothing dead", (r.stdout + r.stderr)[-300:])
    work_off_written(t, 7000, between=purge, after=" after the purge")

    # a herald/2 store
    h2 = t.deployment()
    store2 = os.path.join(h2.tmp, "herald.db")
    make_v2_store(store2, int(time.time() * 1000))
    broker2 = h2.start_broker()
    t.check("store migrated from herald/2 to herald/4" in open(broker2.log).read(),
            "the broker says it converted the herald/2 store", harness.tail(broker2.log, 10))
    t.check(query(store2, "SELECT value FROM meta WHERE key = 'schema'") == [("herald/4",)],
            "the store's schema is herald/4 now")
    t.check(query(store2, "SELECT name FROM sqlite_master WHERE name = 'events_uid'") == []
            and "index events_uid dropped" in open(broker2.log).read(),
            "its index on events.uid is dropped, and the broker says so", harness.tail(broker2.log, 10))
    st = h2.status()
    pending = {ch: h2._channel(st, ch).get("pending") for ch in harness.CHANNELS}
    t.check(pending == {"email": 2, "inventory": 1, "courier": 2},
            "its pending task rows are counted pending", pending)
    # five new orders: pending bits after the old rows; after a restart one
    # load reads both
    lines = "".join(json.dumps(harness.order(8000 + i)) + "\n" for i in range(5))
    r = h2.publish(input=lines)
    t.check(r.returncode == 0, "five more orders ACKed", r.stderr[-300:])
    h2.herald("track", "ev-7001", "--json")     # the index writes what it holds
    harness.wait_until(lambda: query(store2, "SELECT count(*) FROM pending WHERE bits = 7")[0][0] == 5,
                       10, "the new orders' pending bits committed")
    h2.send_signal(broker2, signal.SIGTERM)     # all of them loaded back from the index
    h2.wait_exit(broker2)
    broker2 = h2.start_broker()
    h2.start_workers()
    want = {"email": 7, "inventory": 6, "courier": 7}
    delivered_once(t, h2, store2, want, 7,
                   "each pending task delivered once, old rows and new bits alike, the done one not again")

    # a herald/3 store: the bits move to their table, the column goes
    h5 = t.deployment()
    store5 = os.path.join(h5.tmp, "herald.db")
    now_ms = int(time.time() * 1000)
    make_v3_store(store5, now_ms)
    broker5 = h5.start_broker()
    t.check("store migrated from herald/3 to herald/4" in open(broker5.log).read(),
            "the broker says it converted the herald/3 store", harness.tail(broker5.log, 10))
    t.check(query(store5, "SELECT value FROM meta WHERE key = 'schema'") == [("herald/4",)],
            "the store's schema is herald/4 now")
    t.check(query(store5, "SELECT seq, bits, done_at FROM pending ORDER BY seq") == [(1, 7, 0), (2, 5, 0)],
            "the bits moved to their table", query(store5, "SELECT * FROM pending"))
    columns = [r[1] for r in query(store5, "PRAGMA table_info(events)")]
    t.check("pending" not in columns and "done_at" in columns
            and query(store5, "SELECT name FROM sqlite_master WHERE name = 'events_pending'") == [],
            "events lost its pending column and that column's index", columns)
    st = h5.status()
    pending = {ch: h5._channel(st, ch).get("pending") for ch in harness.CHANNELS}
    t.check(pending == {"email": 2, "inventory": 2, "courier": 2},
            "its pending tasks are counted pending, bits and row alike", pending)
    r = h5.herald("track", "ev-7102", "--json")
    tracked = json.loads(r.stdout) if r.returncode == 0 else {}
    states = [(x.get("state"), x.get("updated_at")) for ev in tracked.get("events", [])
              for x in ev.get("channels", [])]
    t.check(states == [("pending", now_ms - 1000), ("done", now_ms - 500), ("pending", now_ms - 1000)],
            "track: the second order's inventory done when its event's row says, the others pending",
            r.stdout[-600:])
    h5.start_workers()
    want = {"email": 2, "inventory": 2, "courier": 2}
    delivered_once(t, h5, store5, want, 3, "each pending task delivered once, from the bits and from the row")

    # a first attempt that fails: the bit goes, a row comes
    h3 = t.deployment(channels=("email",))
    store3 = os.path.join(h3.tmp, "herald.db")
    h3.start_broker()
    r = h3.publish(harness.order(9001), json_out=True)
    acks = harness.parse_json_lines(r.stdout) if r.returncode == 0 else []
    t.require(len(acks) == 1, "one order ACKed", (r.stdout, r.stderr[-300:]))
    r = h3.herald("track", acks[0]["event_id"], "--json")  # the index writes the event: a bit
    tracked = json.loads(r.stdout) if r.returncode == 0 else {}
    task_id = tracked["events"][0]["channels"][0]["task_id"]
    harness.wait_until(lambda: query(store3, "SELECT bits FROM pending") == [(1,)], 10,
                       "the event written with its email bit")
    # a directory where the delivery's file goes (.eml for an email channel, else
    # .json): its rename fails, the attempt too
    in_the_way = [os.path.join(h3.outbox("email"), task_id + ext) for ext in (".eml", ".json")]
    for path in in_the_way:
        os.makedirs(os.path.join(path, "x"))
    h3.start_worker("email")
    # (each failed attempt is retried after the backoff: 1 attempt or more)
    retrying = harness.wait_until(
        lambda: [r for r in query(store3, "SELECT state, attempts FROM tasks WHERE seq = 1 AND ch = 0")
                 if r[0] == 0 and r[1] >= 1], 20, "a row for the failed first attempt")
    t.check(retrying and query(store3, "SELECT bits FROM pending") == [(0,)],
            "the failed first attempt took the bit and left a row (pending, attempts %s)"
            % (retrying[0][1] if retrying else "-"), query(store3, "SELECT * FROM tasks"))
    for path in in_the_way:
        os.rmdir(os.path.join(path, "x"))
        os.rmdir(path)
    h3.wait_counts({"email": 1}, timeout=30)
    done = harness.wait_until(lambda: [r for r in query(store3, "SELECT state, attempts FROM tasks")
                                       if r[0] == 1 and r[1] >= 2], 10, "the row marked done")
    r = h3.herald("track", acks[0]["event_id"], "--json")
    tracked = json.loads(r.stdout) if r.returncode == 0 else {}
    tasks = [task for ev in tracked.get("events", []) for task in ev.get("channels", [])]
    t.check([(x.get("state"), x.get("attempts")) for x in tasks] == [("done", done[0][1])],
            "track: done, after the failed attempts (%d in all)" % done[0][1], r.stdout[-500:])


if __name__ == "__main__":
    harness.Test("store_pending", budget=120).run(body)
