"""test_store_housekeeping: what the store must keep doing over weeks
(issue "Checkout-speed ingest", point 4), with the real broker and workers
that decide each task's outcome (tests/integration/fakeworker.py):

  A. pruning goes past unfinished events: 2,500 old orders whose email task
     is dead stay (dead letters are kept until retried or purged), while 300
     old orders that are finished, behind them, are pruned with their
     attempt history and idempotency keys (publishing one again is new);
  B. task ids are never reused after a restart: a new event's tasks get ids
     (and event numbers) no earlier task had, and no inherited history;
  C. an operator's sqlite3 shell holding a read transaction on the index, and
     a large admin query (the 2,500 dead tasks listed), do not stall the loop:
     publishes keep being ACKed within a second, workers keep their sessions;
  D. `dead retry --channel email` on 2,500 dead tasks (more than one load of
     2,000) delivers each exactly once, with a fresh budget, its history kept.

The fake workers beat only while this script serves them: every CLI run or
SQL query between serves goes through beating(), or a slow one (the
sanitizers, a loaded machine) gets them dropped and their tasks sent twice.

The broker's wall clock is moved 3 minutes ahead for its second run (the
fault library's clock offset), so that events of the first run are past
broker.dedup_retention (1 minute) without waiting for it.

Runs under Debian's /usr/bin/python3 (python3-zmq)."""

import json
import os
import sqlite3
import subprocess
import threading
import time

import zmq

import faultlib
import harness
from fakeproducer import RawProducer
from fakeworker import FakeWorker, beating

DEAD = 2500          # old orders whose email task dies
DONE = 300           # old orders finished on every channel (some after a retry)


class Meanwhile:
    """Asks check() over and over on a thread of its own, while this thread
    serves the fake workers: a check is a `herald status` or an SQL query,
    and under a loaded machine and the sanitizers one can take longer than
    the workers' heartbeat liveness here (600 ms). A fake worker beats only
    while it is served, so a check on this thread made the broker drop it
    (and hand back the tasks it held: delivered twice)."""

    def __init__(self, check):
        self.check = check
        self.result = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                if self.check():
                    self.result = True
                    return
            except Exception:           # noqa: BLE001 (a status answered mid-restart): ask again
                pass
            time.sleep(0.05)

    def __call__(self):
        return self.result

    def stop(self):
        self.stopping.set()
        self.thread.join(60)


def sql(h, query):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.tmp, "herald.db"), uri=True, timeout=10)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def body(t):
    h = t.deployment(broker={"dedup_retention": "1m"},
                     channel_extra={"courier": {"retry": "{ max_attempts: 5, backoff: 10ms..20ms }"}})
    offset_file = os.path.join(h.tmp, "clock-offset")
    with open(offset_file, "w") as f:
        f.write("0\n")
    env = faultlib.preload_env(clock_offset_file=offset_file)
    broker = faultlib.start_broker(h, env=env)
    ctx = zmq.Context()
    endpoint = h.endpoint("workers")
    workers = {ch: FakeWorker(ctx, endpoint, ch, 64, "fake-" + ch) for ch in harness.CHANNELS}
    beating(workers.values(), lambda: [h.wait_workers(ch, 1) for ch in harness.CHANNELS])

    retried_once = set()

    def decide(channel):
        def answer(task):
            order_id = json.loads(task.body)["data"]["order_id"]
            if channel == "email" and order_id <= DEAD:
                return b"failed", b"0", b"550 mailbox unavailable"
            if channel == "courier" and order_id > DEAD and task.id not in retried_once:
                retried_once.add(task.id)
                return b"retry", b"0", b"courier API 503"
            return b"done", b"0", b"ok"
        return answer

    def serve_all(seconds, until):
        deadline = time.monotonic() + seconds
        seen = {ch: [] for ch in harness.CHANNELS}
        check = Meanwhile(until)
        while time.monotonic() < deadline and not check():
            for ch, w in workers.items():
                seen[ch].extend(w.serve(decide(ch), 0.05))
        check.stop()
        return seen

    lines = harness.write_jsonl(os.path.join(h.tmp, "old.jsonl"),
                                (harness.order(i) for i in range(1, DEAD + DONE + 1)))
    r = beating(workers.values(), lambda: h.publish(file=lines, extra=["--quiet"]))
    t.require(r.returncode == 0, "%d orders published" % (DEAD + DONE), r.stderr[-300:])

    def settled():
        st = h.status()
        ch = {c["name"]: c for c in st["channels"]}
        return (ch["email"]["dead"] == DEAD and ch["email"]["done"] == DONE
                and ch["inventory"]["done"] == DEAD + DONE and ch["courier"]["done"] == DEAD + DONE)

    first = serve_all(90, settled)
    t.require(settled(), "first run: email %d dead + %d done, inventory and courier all done"
              % (DEAD, DONE), h.status())
    old_ids = {task.id for tasks in first.values() for task in tasks}
    t.check(len(retried_once) == DONE, "courier retried each of the %d finished orders once" % DONE)

    h.send_signal(broker, 15)
    t.require(h.wait_exit(broker) == 0, "first broker stopped")
    events_before = sql(h, "SELECT count(*) FROM events")[0][0]
    history_before = sql(h, "SELECT count(*) FROM attempts a JOIN events e ON a.seq = e.seq"
                            " WHERE e.seq > (SELECT min(seq) + %d - 1 FROM events)" % DEAD)[0][0]
    max_seq = sql(h, "SELECT max(seq) FROM events")[0][0]
    t.check(events_before == DEAD + DONE, "the store holds %d events" % (DEAD + DONE), events_before)
    t.check(history_before >= DONE, "the finished orders have attempt history (courier retries)",
            history_before)
    # events written to the index before their tasks were done have a row
    # of pending bits (its bits 0 by now): the finished ones' go with them
    bits_before = sql(h, "SELECT count(*) FROM pending p JOIN events e ON e.seq = p.seq"
                         " WHERE e.seq > (SELECT min(seq) + %d - 1 FROM events)" % DEAD)[0][0]
    t.check(bits_before > 0, "some finished orders were written with pending bits", bits_before)

    # ---- A: the second run, 3 minutes later by the wall clock
    with open(offset_file, "w") as f:
        f.write("180\n")
    broker = faultlib.start_broker(h, env=env)
    for w in workers.values():
        w.close()
    workers = {ch: FakeWorker(ctx, endpoint, ch, 64, "fake2-" + ch) for ch in harness.CHANNELS}
    beating(workers.values(), lambda: [h.wait_workers(ch, 1) for ch in harness.CHANNELS])
    serve_all(30, lambda: sql(h, "SELECT count(*) FROM events")[0][0] == DEAD)

    def kept_sql(query):
        """An SQL query while the workers are kept beating."""
        return beating(workers.values(), lambda: sql(h, query))

    t.require(kept_sql("SELECT count(*) FROM events")[0][0] == DEAD,
              "the %d finished old events pruned (first prune 5 s after start)" % DONE)
    left = kept_sql("SELECT count(*) FROM events e WHERE EXISTS"
                    " (SELECT 1 FROM tasks t WHERE t.seq = e.seq AND t.state = 2)")[0][0]
    t.check(left == DEAD, "the %d events with a dead task are kept" % DEAD, left)
    history_after = kept_sql("SELECT count(*) FROM attempts a WHERE NOT EXISTS"
                             " (SELECT 1 FROM events e WHERE e.seq = a.seq)")[0][0]
    t.check(history_after == 0, "no attempt history is left without its event", history_after)
    bits_after = kept_sql("SELECT count(*) FROM pending p WHERE NOT EXISTS"
                          " (SELECT 1 FROM events e WHERE e.seq = p.seq)")[0][0]
    t.check(bits_after == 0, "no row of pending bits is left without its event", bits_after)

    def publish_one(order_id):
        r = beating(workers.values(), lambda: h.publish(harness.order(order_id), json_out=True))
        t.require(r.returncode == 0, "order %d published" % order_id, r.stderr[-300:])
        return json.loads(r.stdout)

    done_before = beating(workers.values(),
                          lambda: {ch: h.channel_status(ch).get("done", 0) for ch in harness.CHANNELS})
    again = publish_one(DEAD + 7)
    t.check(again.get("duplicate") is False, "a pruned event's key is new again", again)
    kept = publish_one(5)
    t.check(kept.get("duplicate") is True, "a kept event's key is still a duplicate", kept)

    # ---- B: ids never reused
    second = serve_all(20, lambda: all(h.channel_status(ch).get("done", 0) > done_before[ch]
                                       for ch in harness.CHANNELS))
    new_ids = {task.id for tasks in second.values() for task in tasks}
    t.require(len(new_ids) == 3, "the new order's 3 tasks were delivered", new_ids)
    t.check(not (new_ids & old_ids), "no new task id was used before", sorted(new_ids & old_ids)[:3])
    new_seqs = {int(i.split(b".")[0][:16], 16) for i in new_ids}
    t.check(min(new_seqs) > max_seq, "the new event's number (%s) is above every earlier one (%d)"
            % (sorted(new_seqs), max_seq))
    for tid in new_ids:
        r = beating(workers.values(), lambda: h.herald("dead", "show", tid.decode()))
        t.check(r.returncode == harness.EX_DATAERR, "the new task %s has no dead record nor inherited"
                " history" % tid.decode(), r.stdout[-200:])
        break

    # ---- C: a reader holding a snapshot, and a large admin query, stall nothing
    lost_before = len(faultlib.log_lines(broker, "worker lost"))
    shell = subprocess.Popen(["sqlite3", os.path.join(h.tmp, "herald.db")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    shell.stdin.write("BEGIN; SELECT count(*) FROM events;\n")
    shell.stdin.flush()
    # publishes go over a socket of their own, so the time is the broker's
    # (request to ACK), not an ASan CLI's start on a loaded machine
    producer = RawProducer(ctx, h.endpoint("producers"))
    slowest = 0.0
    dead_list = []
    for i in range(40):
        order_id = 100000 + i
        event = json.dumps({"specversion": "1.0", "id": "snapshot-%d" % order_id, "source": "test/housekeeping",
                            "type": harness.EVENT_TYPE, "data": harness.order(order_id)}).encode()
        reply, took = producer.publish(b"s%d" % order_id, event, 10,
                                       idle=lambda: [w.beat() for w in workers.values()])
        slowest = max(slowest, took)
        t.require(reply is not None and reply[1] == b"ACK", "order %d published" % order_id, reply)
        if i == 10:     # the last 30 publishes go while the broker answers it
            listing = threading.Thread(target=lambda: dead_list.append(
                h.herald("dead", "list", "--limit", "100000", "--json")), daemon=True)
            listing.start()
        for w in workers.values():
            w.serve(lambda task: (b"done", b"0", b"ok"), 0.01)
    shell.stdin.write("COMMIT;\n.quit\n")
    shell.stdin.flush()
    shell.wait(timeout=10)
    producer.close()
    listing.join(60)
    t.check(dead_list and dead_list[0].returncode == 0
            and len(json.loads(dead_list[0].stdout).get("tasks", [])) == DEAD,
            "a dead list of everything (%d) answers meanwhile" % DEAD,
            dead_list and dead_list[0].stderr[-200:])
    t.check(slowest < 1.0, "with a reader holding a snapshot, each publish is ACKed within 1 s"
            " (slowest %.3f s)" % slowest)
    lost = faultlib.log_lines(broker, "worker lost")[lost_before:]
    t.check(not lost, "no worker session was lost meanwhile", lost[:3])
    t.check(broker.alive(), "the broker is up")
    # ---- D: dead retry of 2,500 tasks: each delivered once, history kept
    sample = kept_sql("SELECT e.uid || '.email' FROM events e JOIN tasks t ON t.seq = e.seq"
                      " WHERE t.state = 2 LIMIT 1")[0][0]
    r = beating(workers.values(), lambda: h.herald("dead", "retry", "--channel", "email"))
    t.require(r.returncode == 0, "dead retry --channel email", r.stdout + r.stderr)
    got = []

    def email_done():
        st = h.channel_status("email")
        return st.get("dead", -1) == 0 and st.get("pending", -1) == 0 and st.get("in_flight", -1) == 0 \
            and st.get("retrying", -1) == 0

    retried_done = Meanwhile(email_done)

    def deliver_email():
        got.extend(workers["email"].serve(lambda task: (b"done", b"0", b"ok"), 0.2))
        for ch in ("inventory", "courier"):
            workers[ch].serve(lambda task: (b"done", b"0", b"ok"), 0.01)
        return retried_done()

    harness.wait_until(deliver_email, 90, "the %d retried tasks delivered" % DEAD)
    retried_done.stop()
    # C's orders may still have email tasks in flight: only the retried count
    ids = [task.id for task in got if json.loads(task.body)["data"]["order_id"] <= DEAD]
    t.check(len(ids) == DEAD and len(set(ids)) == DEAD,
            "each retried task delivered exactly once (%d deliveries, %d tasks)" % (len(ids), len(set(ids))))
    t.check(all(task.attempt == 1 for task in got), "a fresh budget: attempt 1 again")
    rows = kept_sql("SELECT count(*) FROM attempts a JOIN events e ON e.seq = a.seq"
                    " WHERE e.uid || '.email' = '%s'" % sample)[0][0]
    t.check(rows >= 1, "the retried task keeps its history (%d rows)" % rows)

    for w in workers.values():
        w.close()
    ctx.term()


if __name__ == "__main__":
    harness.Test("store_housekeeping", budget=240).run(body)
