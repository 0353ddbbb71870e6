"""test_hostile_worker: the broker does not trust what a worker says (issue
"Slow, stuck and hostile peers", point 4). A fake worker speaking the wire
protocol with python3-zmq:

  A. announces capacity 65535 on a channel configured with capacity 4 and
     prefetch 2: the broker never has more than 6 of its tasks unanswered at
     once;
  B. answers RETRY with a delay of 2^53-1 ms and THROTTLED with 2^53-1 ms: the
     task comes back after at most the channel's backoff maximum (1 s here),
     and the channel is not paused for ever;
  C. registers 50 times (50 connections) on a channel with max_workers 5:
     the broker counts 5 workers and logs the refusals;
  D. answers with a lease the task does not hold (a stale or forged result):
     the broker ignores it, and the task completes only with its own lease;
     a HERALD/1 worker (READY without max-batch) is answered NACK 505 in its
     own version, naming the version it must speak, and gets no task.

Runs under Debian's /usr/bin/python3 (python3-zmq)."""

import json
import time

import zmq

import harness
from fakeworker import FakeWorker, Task, beating

HUGE = str(2 ** 53 - 1).encode()     # the largest delay the protocol allows


def body(t):
    extra = {"email": {"capacity": "4", "prefetch": "2", "retry": "{ max_attempts: 5, backoff: 100ms..1s }"},
             "inventory": {"max_workers": "5"}}
    h = t.deployment(channel_extra=extra)
    broker = h.start_broker()
    ctx = zmq.Context()
    endpoint = h.endpoint("workers")

    # A. capacity above the configured one
    greedy = FakeWorker(ctx, endpoint, "email", 65535, "greedy")
    # the CLI runs beside the worker's heartbeats (a slow one must not get it dropped)
    beating([greedy], lambda: h.wait_workers("email", 1))
    lines = harness.write_jsonl(h.tmp + "/orders.jsonl", (harness.order(i) for i in range(1, 21)))
    r = beating([greedy], lambda: h.publish(file=lines, extra=["--quiet"]))
    t.require(r.returncode == 0, "20 orders published", r.stderr[-300:])
    got = greedy.tasks(1.5)
    t.check(len(got) == 6, "a worker announcing capacity 65535 gets at most the channel's"
            " capacity + prefetch (4 + 2) unanswered tasks: got %d" % len(got))

    # B. delay hints far in the future
    first = got[0]
    greedy.answer(first, b"retry", HUGE, b"try again in 285 millennia")
    second = got[1]
    greedy.answer(second, b"throttled", HUGE, b"rate limited for ever")
    started = time.monotonic()
    back = {}
    while time.monotonic() - started < 10 and len(back) < 2:
        for msg in greedy.tasks(0.2):
            if msg.id in (first.id, second.id) and msg.id not in back:
                back[msg.id] = time.monotonic() - started
            else:
                greedy.answer(msg, b"done")
    # 1 s of backoff, then it waits behind the other 16 orders in the queue
    t.check(first.id in back and back[first.id] < 6.0,
            "a RETRY asking 2^53-1 ms comes back after the backoff maximum (1s), not never"
            " (after %.1fs)" % back.get(first.id, -1))
    t.check(second.id in back and back[second.id] < 6.0,
            "a THROTTLED asking 2^53-1 ms pauses the channel at most the backoff maximum"
            " (back after %.1fs)" % back.get(second.id, -1))
    greedy.close()

    # C. too many registrations
    crowd = [FakeWorker(ctx, endpoint, "inventory", 1, "crowd-%d" % i) for i in range(50)]
    beating(crowd, lambda: harness.wait_until(
        lambda: h.channel_status("inventory").get("workers", 0) >= 5, 10, "5 inventory workers registered"))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for w in crowd:
            w.beat()
        time.sleep(0.05)
    count = beating(crowd, lambda: h.channel_status("inventory").get("workers", 0))
    t.check(count == 5, "50 registrations on a channel with max_workers 5: 5 workers counted"
            " (got %d)" % count)
    log = open(broker.log, errors="replace").read()
    t.check("worker refused: channel has max_workers" in log,
            "the broker logs the refused registrations", harness.tail(broker.log, 10))
    t.check(log.count("worker refused: channel has max_workers") < 45,
            "refusals are logged at a bounded rate (%d lines for 45 refusals)"
            % log.count("worker refused: channel has max_workers"))
    for w in crowd:
        w.close()

    # D. fencing: a result counts only with the task's current lease
    old = FakeWorker(ctx, endpoint, "courier", 1, "old-protocol", max_batch=0)
    t.require(old.sock.poll(5000), "the HERALD/1 worker gets an answer")
    reply = old.sock.recv_multipart()
    t.check(reply[:4] == [b"HERALD/1", b"NACK", b"READY", b"505"]
            and b"workers speak HERALD/2" in reply[4],
            "a HERALD/1 READY is answered NACK 505 in HERALD/1, naming HERALD/2: %r" % reply)
    t.check(not old.tasks(0.5), "the HERALD/1 worker gets no task")
    old.close()
    fenced = FakeWorker(ctx, endpoint, "courier", 1, "fenced")
    beating([fenced], lambda: (
        h.wait_workers("courier", 1),
        harness.wait_until(lambda: h.channel_status("courier").get("pending", 0)
                           + h.channel_status("courier").get("in_flight", 0) >= 20, 10,
                           "the 20 courier tasks are queued")))
    got = fenced.tasks(1.0)
    t.require(len(got) == 1, "capacity 1: one courier task leased (got %d)" % len(got))
    task = got[0]
    t.check(task.lease > 0 and task.attempt == 1, "the task carries a lease and attempt 1")
    fenced.answer(task, b"done", lease=task.lease + 1)
    fenced.answer(task, b"done", lease=task.lease - 1 if task.lease > 1 else task.lease + 2)
    fenced.answer(Task(b"no-such-task.courier", 1, task.lease, b""), b"done")
    more = fenced.tasks(1.0)
    status = beating([fenced], lambda: h.channel_status("courier"))
    t.check(not more and status.get("done", 0) == 0 and status.get("in_flight", 0) == 1,
            "results carrying another lease (or an unknown task) are ignored: the task stays"
            " in flight and no new task is sent (status %s, %d sent)" % (status, len(more)))
    fenced.answer(task, b"done")
    beating([fenced], lambda: harness.wait_until(
        lambda: h.channel_status("courier").get("done", 0) == 1, 10,
        "the result with the task's own lease completes it"))
    nxt = fenced.tasks(1.0)
    t.check(len(nxt) == 1 and nxt[0].lease > task.lease,
            "the next lease is a new, larger number (%s after %d)"
            % ([n.lease for n in nxt], task.lease))
    fenced.close()
    ctx.term()


if __name__ == "__main__":
    harness.Test("hostile_worker", budget=120).run(body)
