"""test_security_hostile: a CURVE broker (tcp://127.0.0.1) meets 1,000
connections each with no key (NULL mechanism), an unknown key, a key removed
by SIGHUP, and the wrong broker key. None gets a reply or stores an event;
every one is counted in `herald status` (security.refused, by reason) and
the log stays short (the first lines, then "limit reached"). Around the
reload: a producer of the removed key that had published loses its
connection at the reload; one that was connected but silent is cut off at
its first message; a producer whose key stays keeps publishing."""

import re

import zmq

import harness
import securitylib as sec

N = 1000
BATCH = 250             # sockets open at once (each is one connection attempt)


def hostile_round(t, h, ctx, label, reasons, make):
    """N connection attempts made by make(ctx), each sending a PUBLISH; waits
    until the refusals counted under reasons grew by N. Returns the number
    of replies they got."""
    def counted():
        refused = h.refused()
        return sum(refused.get(r, 0) for r in reasons)
    base = counted()
    got = 0
    for start in range(0, N, BATCH):
        batch = [make(ctx) for _ in range(BATCH)]
        for i, s in enumerate(batch):
            try:    # queued for the connection, unless it already failed (then nothing to send on)
                s.send_multipart(sec.publish_frames(start + i, 100000 + start + i, source="hostile"),
                                 zmq.DONTWAIT)
            except zmq.Again:
                pass
        want = base + start + BATCH
        harness.wait_until(lambda: counted() >= want, 30,
                           lambda: "%s: refusals %s to reach %d: %s" % (label, reasons, want, h.refused()))
        got += sec.replies(batch, 0.2)
        for s in batch:
            s.close(linger=0)
    t.note("%s: %d connections refused (%s)" % (label, N, ", ".join(reasons)))
    return got


def body(t):
    sec.raise_fd_limit()
    security = sec.default_security()
    security["producers"] = [sec.PRODUCER, "gone"]
    h = sec.SecureHerald("security-hostile", security=security, extra_keys=("gone",))
    t.deployments.append(h)
    broker = h.start_broker()
    endpoint = h.endpoint("producers")
    server = h.broker_public()
    ctx = zmq.Context()
    ctx.max_sockets = 4 * BATCH + 64
    try:
        gone_pub, gone_sec = sec.read_secret(h.key("gone", "secret"))
        # A: the removed key's producer, connected and publishing before the reload.
        a, a_mon = sec.dealer(ctx, endpoint, server, gone_pub, gone_sec, reconnect=False, monitor=True)
        reply = sec.request(a, sec.publish_frames(1, 1))
        t.require(reply and reply[1] == b"ACK", "a producer with key 'gone' publishes before the reload",
                  reply)
        # B: the removed key's producer, connected but silent.
        b, b_mon = sec.dealer(ctx, endpoint, server, gone_pub, gone_sec, reconnect=False, monitor=True)
        t.require(sec.wait_event(b_mon, {zmq.EVENT_HANDSHAKE_SUCCEEDED}, 5),
                  "a second producer with key 'gone' connects and says nothing")

        security["producers"] = [sec.PRODUCER]
        h.rewrite(security)
        line = h.reload(broker)
        t.check('msg="security reloaded"' in line and "removed=1" in line and "connections_closed=1" in line,
                "SIGHUP: the key is removed and the connection that used it is closed", line.strip())
        t.check(sec.wait_event(a_mon, {zmq.EVENT_DISCONNECTED}, 5),
                "the publishing producer of the removed key is disconnected by the reload")
        t.check(sec.request(a, sec.publish_frames(2, 2), timeout=1.0) is None,
                "it gets no reply any more")
        t.check(sec.request(b, sec.publish_frames(3, 3), timeout=1.0) is None,
                "the silent producer of the removed key gets no reply to its first message")
        t.check(sec.wait_event(b_mon, {zmq.EVENT_DISCONNECTED}, 5),
                "... and its connection is closed")
        for s in (a, b, a_mon, b_mon):
            s.close(linger=0)
        removed_before = h.refused().get("removed_key", 0)
        t.check(removed_before == 2, "both are counted as removed_key", h.refused())

        gone = (gone_pub, gone_sec)
        other_server = zmq.curve_keypair()[0]
        # A client without a key that hangs up as soon as it reads the broker's
        # greeting (it sees the mismatch first) cannot be told, from the
        # broker's side, from one that dropped the handshake: both reasons.
        rounds = [
            ("no key (NULL mechanism)", ("no_key", "handshake"),
             lambda c: sec.dealer(c, endpoint, reconnect=False)),
            ("unknown key", ("unknown_key",), lambda c: sec.dealer(c, endpoint, server, reconnect=False)),
            ("removed key", ("removed_key",),
             lambda c: sec.dealer(c, endpoint, server, *gone, reconnect=False)),
            ("wrong broker key", ("wrong_server_key",),
             lambda c: sec.dealer(c, endpoint, other_server, reconnect=False)),
        ]
        for label, reasons, make in rounds:
            got = hostile_round(t, h, ctx, label, reasons, make)
            t.check(got == 0, "%s: 0 replies to %d publishes" % (label, N), "%d replies" % got)

        # Nothing more trickles in: the counts are exact.
        harness.wait_until(lambda: True, 0.5, "settle")
        refused = h.refused()
        t.note("refused: %s" % {k: v for k, v in refused.items() if v and k != "by_endpoint"})
        expected = {"unknown_key": N, "removed_key": N + 2, "wrong_server_key": N}
        t.check(all(refused.get(k) == v for k, v in expected.items())
                and refused.get("no_key", 0) + refused.get("handshake", 0) == N and refused.get("no_key", 0) > 0,
                "status counts every refusal by reason: no_key + handshake %d, %s" % (N, expected),
                refused)
        total = 4 * N + 2
        t.check(refused.get("total") == total, "status security.refused.total is %d" % total, refused)
        t.check(refused.get("by_endpoint", {}).get("producers") == total,
                "all on the producer endpoint", refused.get("by_endpoint"))
        st = h.status()
        t.check(st["broker"]["events"] == 1, "0 events stored from them (only the 1 published before the reload)",
                st["broker"])

        r = h.herald("status")
        line = [l for l in r.stdout.splitlines() if l.startswith("security")]
        t.check(line and "CURVE" in line[0] and "refused %d" % total in line[0],
                "`herald status` shows a security line with the refusals", r.stdout[-600:])

        refusal_lines = sec.log_lines(broker, 'msg="connection refused"')
        limit = sec.log_lines(broker, "refusal log limit reached")
        t.note("broker log: %d refusal lines, %d limit lines for %d refusals"
               % (len(refusal_lines), len(limit), refused["total"]))
        t.check(len(refusal_lines) <= 40, "the log is rate-limited (at most 20 refusal lines a minute)",
                "%d lines" % len(refusal_lines))
        t.check(limit, "the log says when the limit is reached")
        t.check(any(re.search(r"reason=(no_key|handshake) address=127\.0\.0\.1:\d+", l) for l in refusal_lines),
                "refusal lines name the reason and the peer's address", "".join(refusal_lines[:3]))

        # The producer whose key stays is not affected.
        shop_pub, shop_sec = sec.read_secret(h.key(sec.PRODUCER, "secret"))
        shop = sec.dealer(ctx, endpoint, server, shop_pub, shop_sec)
        reply = sec.request(shop, sec.publish_frames(9, 9))
        t.check(reply and reply[1] == b"ACK", "a listed producer still publishes (ACK)", reply)
        shop.close(linger=0)
        t.check(broker.alive(), "the broker is still running")
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    harness.Test("security_hostile", budget=180).run(body)
