"""test_broker_kill: an ACK means durable. The broker is SIGKILLed right
after it ACKed, restarted on the same store, and every ACKed event reaches
every channel.

Phase 1: no workers at first, so every task is pending in the store: publish
N events, SIGKILL the broker the moment publish returns, restart it, start the
workers, and compare the ACKed event ids with the delivered ones.

Phase 2: workers running, a pipelined publish in flight: SIGKILL the broker
while ACKs and deliveries are flowing, restart it; the workers reconnect by
themselves; every event whose ACK the publisher received is delivered on
every channel (events published but not ACKed may or may not be)."""

import os
import signal

import harness

N1 = 2000
N2 = 6000
KILL_AFTER_ACKS = 1000      # phase 2: SIGKILL once the publisher has seen this many ACKs


def acked_ids(text):
    """{event_id: order_id or None} of the ACK objects in publish --json output."""
    out = {}
    for o in harness.parse_json_lines(text):
        if not isinstance(o, dict) or o.get("acked") is False or o.get("ok") is False:
            continue
        eid = o.get("event_id") or o.get("id")
        if eid and "code" not in o:
            out[eid] = o.get("order_id")
    return out


def delivered(h):
    return h.delivered_events()


def body(t):
    h = t.deployment()
    broker = h.start_broker()
    t.note("broker up (no workers yet) in %s" % h.tmp)

    # -- phase 1: tasks pending in the store when the broker dies
    path = harness.write_jsonl(os.path.join(h.tmp, "phase1.jsonl"),
                               (harness.order(i) for i in range(1, N1 + 1)))
    r = h.publish(file=path, json_out=True, timeout=60)
    h.kill(broker, signal.SIGKILL)
    acked = acked_ids(r.stdout)
    t.note("publish exit %d, %d ACKs, broker SIGKILLed" % (r.returncode, len(acked)))
    t.check(r.returncode == 0, "phase 1 publish exits 0", "exit %d: %s" % (r.returncode, r.stderr[-500:]))
    t.require(len(acked) == N1, "phase 1: %d distinct ACKed event ids printed" % N1,
              "parsed %d from %r" % (len(acked), r.stdout[-500:]))

    broker = h.start_broker()
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("pending") == N1, "after restart, status %s pending %d (recovered)" % (ch, N1), c)
    h.start_workers()
    h.wait_counts(N1, timeout=40, what="phase 1: the recovered tasks")
    got = delivered(h)
    for ch in h.channels:
        missing = set(acked) - got[ch]
        t.check(not missing, "phase 1: every ACKed event delivered on %s" % ch,
                "%d missing, e.g. %s" % (len(missing), sorted(missing)[:5]))
        t.check(len(got[ch]) == N1, "phase 1: no extra deliveries on %s" % ch, len(got[ch]))

    # -- phase 2: kill while publishing and delivering
    path = harness.write_jsonl(os.path.join(h.tmp, "phase2.jsonl"),
                               (harness.order(i) for i in range(N1 + 1, N1 + N2 + 1)))
    # stdout line-buffered (stdbuf), so the ACKs appear in the log as they arrive
    argv, env = harness.line_buffered([harness.binary("herald"), "publish", "-c", h.config,
                                       "--type", harness.EVENT_TYPE, "--file", path, "--json",
                                       "--timeout", "3000"])
    publisher = h.spawn("publish-2", argv, env=env)

    def acks_seen():
        with open(publisher.log) as f:
            return f.read().count('"event_id"') >= KILL_AFTER_ACKS or not publisher.alive()
    harness.wait_until(acks_seen, 30, "%d phase 2 ACKs" % KILL_AFTER_ACKS, interval=0.002)
    h.kill(broker, signal.SIGKILL)
    t.note("broker SIGKILLed%s; deliveries %s"
           % (" (after the publisher ended)" if not publisher.alive() else "", h.counts()))
    rc = h.wait_exit(publisher, timeout=60)
    with open(publisher.log) as f:
        acked2 = acked_ids(f.read())
    t.note("publisher exit %s after %d ACKs of %d" % (rc, len(acked2), N2))
    t.check(len(acked2) > 0, "phase 2: some events were ACKed before the kill")

    broker = h.start_broker()
    # the workers reconnect by themselves
    for ch in h.channels:
        h.wait_workers(ch, 1, timeout=20)
    harness.wait_until(lambda: all(acked2.keys() <= s for s in delivered(h).values()), 40,
                       lambda: "phase 2: ACKed events on every channel (%d ACKed, missing %s)"
                       % (len(acked2), {ch: len(set(acked2) - s) for ch, s in delivered(h).items()}))
    got = delivered(h)
    for ch in h.channels:
        t.check(not set(acked2) - got[ch], "phase 2: every ACKed event delivered on %s" % ch)
        t.check(not set(acked) - got[ch], "phase 2: phase 1 deliveries still there on %s" % ch)
    harness.wait_until(
        lambda: all(h.channel_status(ch).get("pending") == 0 and
                    h.channel_status(ch).get("in_flight") == 0 for ch in h.channels), 30,
        lambda: "every task done: %s" % h.status())
    c = h.counts()
    t.check(len({c[ch] for ch in h.channels}) == 1,
            "every stored event reached all three channels", c)


if __name__ == "__main__":
    harness.Test("broker_kill", budget=150).run(body)
