"""test_security_stale: a CURVE broker under 1,000 raw TCP connections that
never complete a handshake. While they are open, a legitimate producer's
ACKs keep flowing: its ACK p99 is printed beside its baseline and must stay
within 5x the baseline or 50 ms, whichever is larger (a generous bound: this
is a shared 2-core machine). The stale connections are closed once
broker.handshake_timeout has passed, and counted. Then the connection cap:
with broker.max_connections 50, connections beyond it are closed at once
and counted, and the producer already connected keeps publishing."""

import selectors
import socket
import time

import zmq

import harness
import securitylib as sec

STALE = 1000
HANDSHAKE_S = 4.0


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def ack_run(sock, seconds, first_id):
    """Publishes one at a time for `seconds`; returns the ACK latencies (ms)."""
    out = []
    order_id = first_id
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        order_id += 1
        started = time.monotonic()
        reply = sec.request(sock, sec.publish_frames(order_id, order_id), timeout=5.0)
        if not reply or reply[1] != b"ACK":
            raise harness.TestFailure("publish %d: no ACK (%r)" % (order_id, reply))
        out.append((time.monotonic() - started) * 1000.0)
    return out


def open_raw(port, count):
    """count TCP connections that send nothing (a ZeroMQ greeting is never
    sent). Connected one after the other, so none waits in the listen queue;
    returns [(socket, monotonic time it was connected)]."""
    out = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        s.setblocking(False)
        out.append((s, time.monotonic()))
    return out


class Closed:
    """Watches raw sockets for the end of the stream (the broker closing them)."""

    def __init__(self, socks):
        self.sel = selectors.DefaultSelector()
        self.open = set(socks)
        self.closed_at = {}
        for s in socks:
            self.sel.register(s, selectors.EVENT_READ)

    def poll(self, timeout=0.0):
        """Reads what arrived (the broker's greeting, then the end); returns
        how many are still open."""
        for key, _ in self.sel.select(timeout):
            s = key.fileobj
            while True:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(s)
                    self.open.discard(s)
                    self.closed_at[s] = time.monotonic()
                    break
        return len(self.open)

    def close(self):
        for s in list(self.sel.get_map().values()):
            self.sel.unregister(s.fileobj)
        self.sel.close()


def stale_part(t, ctx):
    h = sec.SecureHerald("security-stale", broker={"handshake_timeout": "%dms" % int(HANDSHAKE_S * 1000)})
    t.deployments.append(h)
    h.start_broker()
    server = h.broker_public()
    shop = sec.dealer(ctx, h.endpoint("producers"), server, *sec.read_secret(h.key(sec.PRODUCER, "secret")))
    ack_run(shop, 0.5, 0)                       # warm up: connection, store, caches
    baseline = ack_run(shop, 2.0, 10000)

    opening = time.monotonic()
    pairs = open_raw(h.ports["producers"], STALE)
    opened = time.monotonic()
    t.note("%d raw connections opened in %.2fs" % (STALE, opened - opening))
    raw = [s for s, _ in pairs]
    connected_at = dict(pairs)
    watch = Closed(raw)
    during = ack_run(shop, 2.0, 20000)
    still_open = watch.poll()
    base99, during99 = percentile(baseline, 0.99), percentile(during, 0.99)
    print("# ACK latency, one publish at a time: baseline p50 %.2f ms p99 %.2f ms (%d ACKs); "
          "with %d stale connections p50 %.2f ms p99 %.2f ms (%d ACKs)"
          % (percentile(baseline, 0.5), base99, len(baseline), STALE, percentile(during, 0.5), during99,
             len(during)))
    bound = max(5 * base99, 50.0)
    t.check(during99 <= bound, "ACK p99 with %d stale connections stays within %.1f ms (5x baseline or 50 ms)"
            % (STALE, bound), "p99 %.2f ms, baseline %.2f ms" % (during99, base99))
    t.check(still_open >= STALE - 5, "the stale connections are still open before the handshake interval ends",
            "%d of %d open after %.1fs" % (still_open, STALE, time.monotonic() - opened))

    deadline = opened + HANDSHAKE_S + 6.0
    while watch.poll(0.2) and time.monotonic() < deadline:
        pass
    left = len(watch.open)
    t.check(left == 0, "every stale connection is closed by the broker after the handshake interval",
            "%d still open %.1fs after they were opened" % (left, time.monotonic() - opened))
    if watch.closed_at:
        ages = [watch.closed_at[s] - connected_at[s] for s in watch.closed_at]
        t.note("stale connections closed %.2fs to %.2fs after they were opened (handshake_timeout %.1fs)"
               % (min(ages), max(ages), HANDSHAKE_S))
        t.check(min(ages) >= HANDSHAKE_S - 0.5, "... not before the interval", "first closed at %.2fs" % min(ages))
    watch.close()
    for s in raw:
        s.close()
    harness.wait_until(lambda: h.refused().get("handshake", 0) >= STALE, 10,
                       lambda: "status to count %d handshake refusals: %s" % (STALE, h.refused()))
    st = h.status()["security"]
    t.check(st["refused"]["handshake"] == STALE and st["connections"]["producers"] == 1,
            "status counts %d handshake refusals, 1 producer connection left" % STALE,
            {"refused": st["refused"], "connections": st["connections"]})
    shop.close(linger=0)


def cap_part(t, ctx):
    cap = 50
    h = sec.SecureHerald("security-cap", broker={"max_connections": str(cap)})
    t.deployments.append(h)
    h.start_broker()
    server = h.broker_public()
    shop = sec.dealer(ctx, h.endpoint("producers"), server, *sec.read_secret(h.key(sec.PRODUCER, "secret")))
    ack_run(shop, 0.2, 0)
    raw = [s for s, _ in open_raw(h.ports["producers"], 2 * cap)]
    watch = Closed(raw)
    over = 2 * cap + 1 - cap
    harness.wait_until(lambda: h.refused().get("connection_cap", 0) >= over, 10,
                       lambda: "status to count %d connection_cap refusals: %s" % (over, h.refused()))
    started = time.monotonic()
    while watch.poll(0.1) > 2 * cap - over and time.monotonic() < started + 5:
        pass
    st = h.status()["security"]
    t.check(st["refused"]["connection_cap"] == over and st["connections"]["producers"] == cap,
            "with max_connections %d, %d connections beyond it are closed and counted" % (cap, over),
            {"refused": st["refused"]["connection_cap"], "connections": st["connections"]})
    t.check(len(watch.open) == 2 * cap - over, "those %d see their connection closed at once" % over,
            "%d of %d raw connections open" % (len(watch.open), 2 * cap))
    reply = sec.request(shop, sec.publish_frames(1, 1), timeout=5.0)
    t.check(reply and reply[1] == b"ACK", "the producer connected before keeps publishing", reply)
    watch.close()
    for s in raw:
        s.close()
    harness.wait_until(lambda: h.status()["security"]["connections"]["producers"] == 1, 10,
                       "the raw connections to be gone")
    late = sec.dealer(ctx, h.endpoint("producers"), server, *sec.read_secret(h.key(sec.PRODUCER, "secret")))
    reply = sec.request(late, sec.publish_frames(2, 2), timeout=5.0)
    t.check(reply and reply[1] == b"ACK", "below the cap again, a new connection is served", reply)
    for s in (shop, late):
        s.close(linger=0)


def body(t):
    sec.raise_fd_limit()
    ctx = zmq.Context()
    try:
        stale_part(t, ctx)
        cap_part(t, ctx)
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    harness.Test("security_stale", budget=120).run(body)
