"""test_worker_kill: a worker killed with SIGKILL loses nothing.

Phase 1: two email workers (and one per other channel); 2,000 events are
published pipelined; as soon as email deliveries start appearing, one email
worker is SIGKILLed mid-stream. Every event must still reach every channel.

Phase 2: a fresh email worker is frozen with SIGSTOP (so it holds whatever it
is given and stops heartbeating), 1,000 more events are published, and the
frozen worker is SIGKILLed: its leased tasks must go to the surviving worker.

A task delivered twice overwrites the same file (named by its task id): the
counts below are distinct files, i.e. exactly-once in effect."""

import os
import signal

import harness

N1 = 2000
N2 = 1000


def body(t):
    h = t.deployment(workers={"email": 2, "inventory": 1, "courier": 1})
    h.start_broker()
    email_a = h.start_worker("email")
    email_b = h.start_worker("email")
    h.start_worker("inventory")
    h.start_worker("courier")
    t.note("broker, 2 email workers, 1 inventory, 1 courier up in %s" % h.tmp)

    # -- phase 1: kill a worker mid-stream
    path = harness.write_jsonl(os.path.join(h.tmp, "phase1.jsonl"),
                               (harness.order(i) for i in range(1, N1 + 1)))
    publisher = h.spawn("publish-1", [harness.binary("herald"), "publish", "-c", h.config,
                                      "--type", harness.EVENT_TYPE, "--file", path])
    def started():
        if publisher.popen.poll() not in (None, 0):
            raise harness.TestFailure("publish exited %d: %s"
                                      % (publisher.popen.returncode, harness.tail(publisher.log, 10)))
        return h.count("email") >= N1 // 5
    harness.wait_until(started, 30, "%d email deliveries" % (N1 // 5), interval=0.005)
    h.kill(email_a, signal.SIGKILL)
    at_kill = h.count("email")
    t.note("SIGKILLed email worker %d with %d/%d email deliveries done" % (email_a.pid, at_kill, N1))
    t.check(at_kill < N1, "the kill landed mid-stream (%d of %d email deliveries before it)"
            % (at_kill, N1))
    rc = h.wait_exit(publisher, timeout=60)
    t.check(rc == 0, "phase 1 publish of %d events exits 0" % N1,
            "exit %s: %s" % (rc, harness.tail(publisher.log, 10)))
    h.wait_counts(N1, timeout=40, what="phase 1: every event on every channel")
    harness.wait_until(lambda: h.channel_status("email").get("workers") == 1, 10,
                       lambda: "the broker to count 1 email worker: %s" % h.channel_status("email"))
    check_all_delivered(t, h, range(1, N1 + 1), "phase 1")

    # -- phase 2: a frozen worker holding leases, then killed
    email_c = h.start_worker("email", expect_workers=2)
    os.kill(email_c.pid, signal.SIGSTOP)
    path = harness.write_jsonl(os.path.join(h.tmp, "phase2.jsonl"),
                               (harness.order(i) for i in range(N1 + 1, N1 + N2 + 1)))
    r = h.publish(file=path, timeout=60)
    t.check(r.returncode == 0, "phase 2 publish of %d events exits 0" % N2,
            "exit %d: %s" % (r.returncode, r.stderr[-500:]))
    st = h.channel_status("email")
    t.note("email while worker %d is frozen: %s" % (email_c.pid, st))
    h.kill(email_c, signal.SIGKILL)
    t.note("SIGKILLed the frozen email worker %d" % email_c.pid)
    h.wait_counts(N1 + N2, timeout=40, what="phase 2: every event on every channel")
    check_all_delivered(t, h, range(1, N1 + N2 + 1), "phase 2")
    t.check(email_b.alive(), "the surviving email worker is still running")


def check_all_delivered(t, h, order_ids, label):
    want = set(order_ids)
    n = len(want)
    harness.wait_until(
        lambda: all(h.channel_status(ch).get("done") == n for ch in h.channels), 20,
        lambda: "%s: status done=%d on every channel: %s" % (label, n, h.status()))
    for ch in h.channels:
        d = h.deliveries(ch)
        t.check(len(d) == n, "%s: %s has exactly %d distinct deliveries" % (label, ch, n),
                "found %d" % len(d))
        orders = {x.order_id for x in d.values()}
        t.check(orders == want, "%s: %s has every order id" % (label, ch),
                "missing %s" % sorted(want - orders, key=str)[:20])
    redelivered = sum(1 for ch in h.channels for x in h.deliveries(ch).values()
                      if isinstance(x.attempt, int) and x.attempt > 1)
    t.note("%s: %d deliveries were redelivered (attempt > 1), same file name" % (label, redelivered))
    ids = h.delivered_events()
    first = ids["inventory"]
    t.check(all(s == first for s in ids.values()) and len(first) == n,
            "%s: the three channels hold the same %d event ids" % (label, n),
            {ch: len(s) for ch, s in ids.items()})
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("pending") == 0 and c.get("in_flight", 0) == 0 and c.get("dead", 0) == 0,
                "%s: status %s pending 0, in flight 0, dead 0" % (label, ch), c)


if __name__ == "__main__":
    harness.Test("worker_kill", budget=150).run(body)
