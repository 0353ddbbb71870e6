"""test_protocol_versions: a HERALD/2 broker still serves producers and admin
tools of HERALD/1 (proto/PROTOCOL.md, Versioning), answering each request in
its own version, on every path a reply takes:

  - ACK of a new event (sent once the journal is durable),
  - ACK of a duplicate (sent after the index names the stored event),
  - NACK of an invalid event (sent at once) and of a malformed message,
  - ADMIN-REPLY of `status` (at once) and of `track` (after the index);

while HERALD/2 requests get HERALD/2 replies on the same paths, and a
version the broker does not speak gets NACK 505 naming HERALD/2.

Runs under Debian's /usr/bin/python3 (python3-zmq)."""

import json

import zmq

import harness


def envelope(order_id, event_id=None):
    return json.dumps({
        "specversion": "1.0", "id": event_id or "ev-%d" % order_id, "source": "test/versions",
        "type": harness.EVENT_TYPE, "data": harness.order(order_id),
    }).encode()


def body(t):
    h = t.deployment()
    h.start_broker()
    ctx = zmq.Context()

    def dealer(name):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(h.endpoint(name))
        return s

    def ask(sock, frames):
        sock.send_multipart(frames)
        t.require(sock.poll(10000), "an answer to %r" % frames[:3])
        return sock.recv_multipart()

    producer = dealer("producers")
    admin = dealer("admin")
    for sig in (b"HERALD/1", b"HERALD/2"):
        v = sig.decode()
        base = 1000 if sig == b"HERALD/1" else 2000
        r = ask(producer, [sig, b"PUBLISH", b"c-new", envelope(base)])
        t.check(r[:3] == [sig, b"ACK", b"c-new"] and r[4] == b"new",
                "%s PUBLISH of a new event: %s ACK new" % (v, v), r)
        r = ask(producer, [sig, b"PUBLISH", b"c-dup", envelope(base)])
        t.check(r[:3] == [sig, b"ACK", b"c-dup"] and r[4] == b"duplicate",
                "%s PUBLISH of the same order again: %s ACK duplicate (after the index)" % (v, v), r)
        r = ask(producer, [sig, b"PUBLISH", b"c-bad", b'{"specversion":"1.0"}'])
        t.check(r[:4] == [sig, b"NACK", b"c-bad", b"422"],
                "%s PUBLISH of an invalid event: %s NACK 422" % (v, v), r)
        r = ask(producer, [sig, b"PUBLISH", b"c-short"])
        t.check(r[:4] == [sig, b"NACK", b"c-short", b"400"] and b"event-json" in r[4],
                "%s PUBLISH without its event frame: %s NACK 400 naming event-json" % (v, v), r)
        r = ask(admin, [sig, b"ADMIN", b"a-status", b"status", b"{}"])
        t.check(r[:4] == [sig, b"ADMIN-REPLY", b"a-status", b"200"],
                "%s ADMIN status: %s ADMIN-REPLY 200" % (v, v), r[:4])
        r = ask(admin, [sig, b"ADMIN", b"a-track", b"track",
                        json.dumps({"event_id": "ev-%d" % base}).encode()])
        t.check(r[:4] == [sig, b"ADMIN-REPLY", b"a-track", b"200"] and b"ev-%d" % base in r[4],
                "%s ADMIN track (answered by the index): %s ADMIN-REPLY 200" % (v, v), r[:4])

    r = ask(producer, [b"HERALD/3", b"PUBLISH", b"c-3", envelope(3000)])
    t.check(r[:4] == [b"HERALD/2", b"NACK", b"c-3", b"505"] and b"HERALD/2" in r[4],
            "a HERALD/3 PUBLISH: NACK 505 naming HERALD/2", r)
    r = ask(admin, [b"HERALD/1", b"ADMIN", b"a-x", b"status"])
    t.check(r[:3] == [b"HERALD/1", b"ADMIN-REPLY", b"a-x"] and r[3] == b"400",
            "a HERALD/1 ADMIN without its arguments frame: HERALD/1 ADMIN-REPLY 400", r)
    producer.close()
    admin.close()
    ctx.term()


if __name__ == "__main__":
    harness.Test("protocol_versions", budget=60).run(body)
