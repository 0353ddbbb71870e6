"""test_http_durable: the HTTP endpoint's answer means what the ZeroMQ ACK
means, and slow or vanishing HTTP clients harm nobody else.

The broker runs under the fault library (tests/fault/faultinject.c), which can
hold fsync/fdatasync while a file exists.

  1. ACK after durable: with fdatasync held, a POST /events gets no answer
     (the socket stays silent) until fdatasync returns; then 201. The hold
     outlasts broker.http_timeout: a request waiting for the disk is not
     an idle connection.
  2. A client that disconnects while waiting loses its answer only: with
     fdatasync held it sends an event and hangs up; once fdatasync returns,
     the same order published again is a 200 duplicate with that event's id
     (it was stored), and the broker serves on.
  3. Slow clients (broker.http_timeout 2s, broker.http_max_connections 64):
     40 connections that trickle their headers a byte at a time and 10 that
     send half a body and stall do not slow ZeroMQ producers (`herald
     publish` of 200 events) nor another HTTP client (50 publishes), each
     done within seconds while the slow ones hang on; a stalled connection
     is closed by the broker after its idle timeout; past the connection
     cap a new connection waits (libmicrohttpd stops accepting: the kernel's
     listen backlog holds it) and is served once connections close.
  4. 1000 HTTP publishes (4 keep-alive clients): every one 201, 1000 new
     events in the metrics (run under ASan by the sanitizer build)."""

import json
import os
import select
import socket
import subprocess
import threading
import time

import faultlib
import harness
import httptest
from httptest import event, samples


def raw_post(port, ev):
    """A connected socket that has sent one POST /events (structured)."""
    body = json.dumps(ev).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    return s


def read_response(s, timeout=10):
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        rest += chunk
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    try:
        return status, json.loads(rest.decode())
    except ValueError:
        return status, rest.decode("latin-1")


def readable(s, seconds):
    r, _, _ = select.select([s], [], [], seconds)
    return bool(r)


def held(t, h, block, reached):
    # -- 1: no answer while fdatasync is held
    faultlib.remove(reached)
    faultlib.touch(block)
    ev = event(1)
    s = raw_post(h.port, ev)
    harness.wait_until(lambda: os.path.exists(reached), 10, "the broker to enter fdatasync")
    t.check(not readable(s, 2.5), "fdatasync held: no HTTP answer for 2.5 s (longer than broker.http_timeout: "
            "a request waiting for the disk is not idle)")
    faultlib.remove(block)
    status, body = read_response(s)
    s.close()
    t.check(status == 201 and body.get("id") == ev["id"], "fdatasync returned: 201 with the id", (status, body))

    # -- 2: the client hangs up while waiting
    faultlib.remove(reached)
    faultlib.touch(block)
    gone = event(2)
    s = raw_post(h.port, gone)
    harness.wait_until(lambda: os.path.exists(reached), 10, "the broker to enter fdatasync (2)")
    s.close()
    faultlib.remove(block)
    again = event(2)
    status, _, text, body = h.post_event(again)
    t.check(status == 200 and body == {"id": gone["id"], "status": "duplicate"},
            "a client gone while waiting: its event was stored (the same order again is a duplicate of it)", text)
    status, _, text, _ = h.request("GET", "/healthz")
    t.check(status == 200, "the broker serves on", text)


class Slow(threading.Thread):
    """Trickles a request's headers one byte every `pause` seconds."""

    def __init__(self, port, pause=0.25):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.pause = pause
        self.stop = threading.Event()
        self.closed_by_peer = False

    def run(self):
        head = b"POST /events HTTP/1.1\r\nHost: slow\r\nContent-Type: application/cloudevents+json\r\n" * 50
        for b in head:
            if self.stop.is_set():
                return
            try:
                self.sock.send(bytes([b]))
            except OSError:
                self.closed_by_peer = True
                return
            time.sleep(self.pause)


def slow_clients(t, h):
    slow = [Slow(h.port) for _ in range(40)]
    for s in slow:
        s.start()
    stalled = []
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", h.port), timeout=30)
        s.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"specversion\": \"1.0\",")
        stalled.append(s)
    started = time.monotonic()

    lines = os.path.join(h.tmp, "zmq.jsonl")
    harness.write_jsonl(lines, (harness.order(10000 + i) for i in range(200)))
    zmq_result = {}

    def zmq_publish():
        t0 = time.monotonic()
        r = h.herald("publish", "--type", harness.EVENT_TYPE, "--file", lines, timeout=60)
        zmq_result.update(rc=r.returncode, seconds=time.monotonic() - t0, err=r.stderr[-300:])

    zt = threading.Thread(target=zmq_publish)
    zt.start()
    conn = h.conn(timeout=10)
    t0 = time.monotonic()
    codes = [h.post_event(event(20000 + i), conn=conn)[0] for i in range(50)]
    http_seconds = time.monotonic() - t0
    conn.close()
    zt.join(60)
    t.note("with 50 slow clients: 50 HTTP publishes in %.2fs, 200 ZeroMQ publishes in %.2fs"
           % (http_seconds, zmq_result.get("seconds", -1)))
    t.check(codes == [201] * 50 and http_seconds < 5, "another HTTP client is served meanwhile (50 x 201 in < 5 s)",
            (http_seconds, codes[:5]))
    t.check(zmq_result.get("rc") == 0 and zmq_result.get("seconds", 99) < 10,
            "ZeroMQ producers are served meanwhile (200 ACKed in < 10 s)", zmq_result)
    t.check(all(s.is_alive() for s in slow) and time.monotonic() - started < 10,
            "the slow clients were still trickling all along")

    # a stalled body is closed by the broker after broker.http_timeout (2 s)
    s = stalled[0]
    t0 = time.monotonic()
    data = s.recv(4096) if readable(s, 6) else b"still open"
    closed_after = time.monotonic() - t0
    t.check(data == b"" or data.startswith(b"HTTP/1.1 408"),
            "a stalled request is closed by the broker after its idle timeout", (data[:100], closed_after))
    for s in stalled:
        s.close()
    for s in slow:
        s.stop.set()
    for s in slow:
        s.join(5)
        s.sock.close()

    # the connection cap: with 64 connections open, a new one waits in the
    # listen backlog (libmicrohttpd stops accepting) and is served once one closes
    idle = [socket.create_connection(("127.0.0.1", h.port), timeout=5) for _ in range(64)]
    harness.wait_until(lambda: _open_connections(h) >= 64 or None, 5, "64 connections accepted",
                       interval=0.05) if _open_connections(h) is not None else None
    waited = False
    try:
        h.request("GET", "/healthz", timeout=1)
    except OSError:
        waited = True
    t.check(waited, "past broker.http_max_connections a new connection is not served (it waits)")
    for s in idle:
        s.close()
    status = harness.wait_until(lambda: _healthz(h), 10, "the endpoint to serve again once connections close")
    t.check(status == 200, "connections closed: served again")


def _open_connections(h):
    """Established TCP connections to the broker's HTTP port (from /proc), or None."""
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return None
    port = "%04X" % h.port
    return sum(1 for r in rows if r.split()[1].endswith(":" + port) and r.split()[3] == "01")


def _healthz(h):
    try:
        return h.request("GET", "/healthz", timeout=2)[0] == 200 and 200
    except Exception:
        return None


def thousand(t, h):
    before = samples(h.metrics())['herald_events_acked_total{status="new"}']
    codes = {}
    lock = threading.Lock()

    def client(k):
        conn = h.conn(timeout=30)
        for i in range(250):
            status = h.post_event(event(100000 + k * 1000 + i), conn=conn)[0]
            with lock:
                codes[status] = codes.get(status, 0) + 1
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    t.note("1000 HTTP publishes in %.2fs" % (time.monotonic() - t0))
    t.check(codes == {201: 1000}, "1000 HTTP publishes: 1000 x 201", codes)
    after = samples(h.metrics())['herald_events_acked_total{status="new"}']
    t.check(after - before == 1000, "the metrics count 1000 new events", (before, after))


def body(t):
    h = httptest.HttpHerald("http-durable", broker={"http_max_connections": "64"})
    t.deployments.append(h)
    env, block, reached = faultlib.sync_hold_env(h)
    faultlib.start_broker(h, env=env)
    held(t, h, block, reached)
    slow_clients(t, h)
    thousand(t, h)


if __name__ == "__main__":
    harness.Test("http_durable", budget=150).run(body)
