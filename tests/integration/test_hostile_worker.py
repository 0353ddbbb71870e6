"""test_hostile_worker: the broker does not trust what a worker says (issue
"Slow, stuck and hostile peers", point 4). A fake worker speaking the wire
protocol with python3-zmq:

  A. announces capacity 65535 on a channel configured with capacity 4: the
     broker never has more than 4 of its tasks unanswered at once;
  B. answers RETRY with a delay of 2^53-1 ms and THROTTLED with 2^53-1 ms: the
     task comes back after at most the channel's backoff maximum (1 s here),
     and the channel is not paused for ever;
  C. registers 50 times (50 connections) on a channel with max_workers 5:
     the broker counts 5 workers and logs the refusals.

Runs under Debian's /usr/bin/python3 (python3-zmq)."""

import json
import time

import zmq

import harness

HUGE = str(2 ** 53 - 1).encode()     # the largest delay the protocol allows


class FakeWorker:
    def __init__(self, ctx, endpoint, channel, capacity, name="fake"):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.channel = channel.encode()
        self.sock.send_multipart([b"HERALD/1", b"READY", self.channel, str(capacity).encode(),
                                  name.encode()])
        self.last_beat = time.monotonic()

    def beat(self):
        if time.monotonic() - self.last_beat > 0.1:
            self.sock.send_multipart([b"HERALD/1", b"HEARTBEAT"])
            self.last_beat = time.monotonic()

    def tasks(self, seconds):
        """TASK messages received within seconds (heartbeating meanwhile)."""
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.beat()
            if self.sock.poll(50):
                msg = self.sock.recv_multipart()
                if msg[1] == b"TASK":
                    out.append(msg)
        return out

    def answer(self, task, command, *frames):
        self.sock.send_multipart([b"HERALD/1", command, task[2], task[3]] + list(frames))

    def close(self):
        self.sock.close()


def body(t):
    extra = {"email": {"capacity": "4", "retry": "{ max_attempts: 5, backoff: 100ms..1s }"},
             "inventory": {"max_workers": "5"}}
    h = t.deployment(channel_extra=extra)
    broker = h.start_broker()
    ctx = zmq.Context()
    endpoint = h.endpoint("workers")

    # A. capacity above the configured one
    greedy = FakeWorker(ctx, endpoint, "email", 65535, "greedy")
    h.wait_workers("email", 1)
    lines = harness.write_jsonl(h.tmp + "/orders.jsonl", (harness.order(i) for i in range(1, 21)))
    r = h.publish(file=lines, extra=["--quiet"])
    t.require(r.returncode == 0, "20 orders published", r.stderr[-300:])
    got = greedy.tasks(1.5)
    t.check(len(got) == 4, "a worker announcing capacity 65535 gets at most the channel's"
            " capacity (4) unanswered tasks: got %d" % len(got))

    # B. delay hints far in the future
    first = got[0]
    greedy.answer(first, b"RETRY", HUGE, b"try again in 285 millennia")
    second = got[1]
    greedy.answer(second, b"THROTTLED", HUGE, b"rate limited for ever")
    started = time.monotonic()
    back = {}
    while time.monotonic() - started < 10 and len(back) < 2:
        for msg in greedy.tasks(0.2):
            if msg[2] in (first[2], second[2]) and msg[2] not in back:
                back[msg[2]] = time.monotonic() - started
            else:
                greedy.answer(msg, b"DONE", b"")
    # 1 s of backoff, then it waits behind the other 16 orders in the queue
    t.check(first[2] in back and back[first[2]] < 6.0,
            "a RETRY asking 2^53-1 ms comes back after the backoff maximum (1s), not never"
            " (after %.1fs)" % back.get(first[2], -1))
    t.check(second[2] in back and back[second[2]] < 6.0,
            "a THROTTLED asking 2^53-1 ms pauses the channel at most the backoff maximum"
            " (back after %.1fs)" % back.get(second[2], -1))
    greedy.close()

    # C. too many registrations
    crowd = [FakeWorker(ctx, endpoint, "inventory", 1, "crowd-%d" % i) for i in range(50)]
    harness.wait_until(lambda: h.channel_status("inventory").get("workers", 0) >= 5, 10,
                       "5 inventory workers registered")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for w in crowd:
            w.beat()
        time.sleep(0.05)
    count = h.channel_status("inventory").get("workers", 0)
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
    ctx.term()


if __name__ == "__main__":
    harness.Test("hostile_worker", budget=120).run(body)
