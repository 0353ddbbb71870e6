"""test_worker_frozen: a worker frozen (SIGSTOP) while its broker is stopped
and started again registers with the new broker once it is continued.

Each of 3 rounds: the email worker is frozen; 100 orders are published (the
broker leases it tasks it cannot take and, its heartbeats gone, declares it
lost); the broker is stopped (SIGTERM) and started again on the same store;
after a freeze long enough for the worker's own silence timer to expire, the
worker is continued (SIGCONT). At that moment its ZeroMQ I/O thread has the
old connection's end to report and its loop closes the socket to reconnect:
libzmq blocked the I/O thread for good on a monitor event whose reader had
just been closed, so the worker logged "registered" for ever and the broker
never saw it (its handshakes timed out); the race hit in about half of the
runs of this test before the fix (hw_watch_close: the monitor is stopped
before the socket and its watch are closed). Checked: the worker registers with
the new broker within 15 s every round, and at the end every order is
delivered on every channel."""

import os
import signal
import time

import harness

ROUNDS = 3
FREEZE_S = 6        # longer than the worker's 5 s silence timer at heartbeat 200ms x 3 (+ backoff)


def body(t):
    h = t.deployment()
    broker = h.start_broker()
    email = h.start_worker("email")
    h.start_worker("inventory")
    h.start_worker("courier")
    for r in range(ROUNDS):
        h.send_signal(email, signal.SIGSTOP)
        frozen_at = time.monotonic()
        path = harness.write_jsonl(os.path.join(h.tmp, "orders-%d.jsonl" % r),
                                   (harness.order(i) for i in range(r * 100 + 1, r * 100 + 101)))
        p = h.publish(file=path, extra=["--quiet"])
        t.require(p.returncode == 0, "round %d: 100 orders ACKed" % r, p.stderr[-300:])
        harness.wait_until(lambda: any("worker lost" in line and "channel=email" in line
                                       for line in open(broker.log, errors="replace")),
                           15, "the broker to declare the frozen email worker lost")
        h.send_signal(broker, signal.SIGTERM)
        t.require(h.wait_exit(broker, timeout=20) == 0, "round %d: the broker stopped" % r)
        broker = h.start_broker()
        # the freeze is the fault injected, not a wait for a condition
        time.sleep(max(0.0, FREEZE_S - (time.monotonic() - frozen_at)))
        h.send_signal(email, signal.SIGCONT)
        try:
            h.wait_workers("email", 1, email, timeout=15)
            t.check(True, "round %d: the continued worker registers with the new broker" % r)
        except harness.TestFailure as e:
            t.check(False, "round %d: the continued worker registers with the new broker" % r,
                    "%s\n%s" % (e, harness.tail(email.log, 6)))
            break
    if t.failed == 0:
        want = ROUNDS * 100
        harness.wait_until(lambda: all(h.channel_status(ch).get("done", 0) == want for ch in h.channels), 60,
                           lambda: "every order delivered on every channel: %s"
                           % {ch: h.channel_status(ch).get("done") for ch in h.channels})
        t.check(True, "every order delivered on every channel (%d each)" % want)


if __name__ == "__main__":
    harness.Test("worker_frozen", budget=150).run(body)
