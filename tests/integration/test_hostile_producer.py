"""test_hostile_producer: one producer that never reads its replies must not
stop the others (issue "Slow, stuck and hostile peers", point 2).

A DEALER with a tiny receive buffer sends 120,000 publishes (malformed
frames, invalid JSON, unknown types, duplicates, good events) and never
reads a reply. Meanwhile, and after it has closed its connection, a
well-behaved producer publishes one event at a time: each must get its ACK
within 2 s. The broker reports the hostile peer (log and `herald status`),
keeps its memory bounded, and SIGTERM then stops it within its
shutdown_timeout.

Runs under Debian's /usr/bin/python3 (python3-zmq)."""

import json
import signal
import threading
import time

import zmq

import harness
from fakeproducer import RawProducer

HOSTILE_MESSAGES = 120000
ACK_LIMIT_S = 2.0
SHUTDOWN_TIMEOUT_S = 3


def event(order_id):
    return json.dumps({
        "specversion": "1.0", "id": "ev-%d" % order_id, "source": "test/hostile",
        "type": harness.EVENT_TYPE,
        "data": harness.order(order_id),
    }, separators=(",", ":")).encode()


def hostile_frames(i):
    kind = i % 5
    if kind == 0:
        return [b"HERALD/1", b"PUBLISH"]                      # malformed: frames missing
    if kind == 1:
        return [b"HERALD/1", b"PUBLISH", b"h%d" % i, b"{not json"]
    if kind == 2:
        return [b"HERALD/1", b"PUBLISH", b"h%d" % i,
                b'{"specversion":"1.0","id":"x","source":"s","type":"no.such.type","data":{}}']
    if kind == 3:
        return [b"HERALD/1", b"PUBLISH", b"h%d" % i, event(1)]  # the same order again and again
    return [b"HERALD/1", b"PUBLISH", b"h%d" % i, event(500000 + i)]


class GoodProducer:
    """Publishes one event at a time and records each ACK's latency."""

    def __init__(self, ctx, endpoint, first_id):
        self.raw = RawProducer(ctx, endpoint)
        self.next_id = first_id
        self.latencies = []
        self.failures = []

    def publish_one(self):
        order_id = self.next_id
        self.next_id += 1
        reply, took = self.raw.publish(b"g%d" % order_id, event(order_id), ACK_LIMIT_S)
        if reply is None:
            # a late reply is dropped: it carries another corr than the next one's
            self.failures.append("order %d: no reply within %.1fs" % (order_id, ACK_LIMIT_S))
            return False
        if reply[1] != b"ACK":
            self.failures.append("order %d: %r" % (order_id, reply))
            return False
        self.latencies.append(took)
        return True

    def close(self):
        self.raw.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def body(t):
    h = t.deployment(broker={"shutdown_timeout": "%ds" % SHUTDOWN_TIMEOUT_S})
    broker = h.start_broker()
    endpoint = h.endpoint("producers")
    ctx = zmq.Context()

    good = GoodProducer(ctx, endpoint, 1000)
    t.require(good.publish_one(), "a producer is answered before the hostile one starts",
              good.failures)

    hostile = ctx.socket(zmq.DEALER)
    hostile.setsockopt(zmq.RCVBUF, 4096)
    hostile.setsockopt(zmq.RCVHWM, 1)
    hostile.setsockopt(zmq.SNDHWM, 0)
    hostile.setsockopt(zmq.LINGER, 0)
    hostile.connect(endpoint)
    sent = [0]

    def flood():
        for i in range(HOSTILE_MESSAGES):
            hostile.send_multipart(hostile_frames(i))
            sent[0] += 1

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    during = 0
    peak_rss = rss_kib(broker.pid)
    while flooder.is_alive() or during < 50:
        good.publish_one()
        during += 1
        peak_rss = max(peak_rss, rss_kib(broker.pid))
        if len(good.failures) > 5:
            break
    flooder.join(timeout=120)
    t.note("hostile producer sent %d messages; the good one published %d meanwhile"
           % (sent[0], during))
    # let the broker work through what the hostile peer queued, still publishing
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(good.failures) <= 5:
        good.publish_one()
        peak_rss = max(peak_rss, rss_kib(broker.pid))
    t.check(not good.failures and during >= 50,
            "while the hostile producer floods, every publish of another producer is ACKed "
            "within %.0fs (%d publishes)" % (ACK_LIMIT_S, len(good.latencies)), good.failures[:5])
    if good.latencies:
        lat = sorted(good.latencies)
        t.note("good producer ACK latency p50 %.1f ms, max %.1f ms"
               % (lat[len(lat) // 2] * 1000, lat[-1] * 1000))

    hostile.close()
    after = GoodProducer(ctx, endpoint, 900000)
    for _ in range(200):
        after.publish_one()
        if after.failures:
            break
    t.check(not after.failures,
            "after the hostile producer closed, a new producer's publishes are all ACKed "
            "within %.0fs" % ACK_LIMIT_S, after.failures[:5])
    t.note("broker RSS peak %d KiB" % peak_rss)

    log = open(broker.log, errors="replace").read()
    t.check("producer dropped" in log,
            "the broker logs that it dropped the producer that does not read its replies",
            harness.tail(broker.log, 20))
    st = h.status()
    producers = st.get("producers", {})
    t.check(producers.get("dropped", 0) >= 1,
            "`herald status` counts the dropped producer", json.dumps(st)[:600])

    started = time.monotonic()
    h.send_signal(broker, signal.SIGTERM)
    rc = h.wait_exit(broker, timeout=SHUTDOWN_TIMEOUT_S + 10)
    took = time.monotonic() - started
    t.check(rc == 0 and took < SHUTDOWN_TIMEOUT_S + 2,
            "SIGTERM stops the broker within shutdown_timeout (%ds): exit %s after %.1fs"
            % (SHUTDOWN_TIMEOUT_S, rc, took))
    good.close()
    after.close()
    ctx.term()


if __name__ == "__main__":
    harness.Test("hostile_producer", budget=240).run(body)
