"""test_publish_timeout: what `herald publish` says after a timeout is true.

A broker that takes the publishes and never answers (a ZeroMQ ROUTER that
only reads): for an event type with a `key`, publishing again is safe and the
message says so; for a type without one, a new id is made each time, so the
message gives the id used and `--id ID` to publish again safely; with --id,
the same id is safe. Then against the real broker: `--id` twice is one event
(the second is a duplicate), without it two events."""

import os
import re
import threading

import zmq

import harness

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"   # v7: the ids the client makes
SIGNUP = {"name": "newsletter.signup", "fanout": ["email"]}     # no key


class SilentBroker:
    """Binds the producer endpoint, reads every request, answers none."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.bind(endpoint)
        self.received = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while self.running:
            if poller.poll(50):
                self.sock.recv_multipart()
                self.received += 1

    def close(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()
        self.ctx.term()


def signup(n):
    return {"email": "reader%d@example.com" % n, "customer": {"email": "reader%d@example.com" % n},
            "order_id": n, "items": []}


def body(t):
    h = t.deployment(events=[harness.ORDER_CONFIRMED, SIGNUP])
    silent = SilentBroker(h.endpoint("producers"))
    try:
        quick = ["--timeout", "300"]

        r = h.publish(harness.order(1), extra=quick)
        t.check(r.returncode == harness.EX_TEMPFAIL, "keyed type: timeout exits 75", r.stderr)
        t.check(re.search(r"event %s may or may not be stored" % UUID, r.stderr),
                "keyed type: the message gives the event id and says it may be stored", r.stderr)
        t.check("publishing it again is safe: order.confirmed events are deduplicated on "
                "data.order_id" in r.stderr, "keyed type: publishing again is said safe, and why",
                r.stderr)

        r = h.publish(signup(1), type="newsletter.signup", extra=quick)
        t.check(r.returncode == harness.EX_TEMPFAIL, "type without key: timeout exits 75", r.stderr)
        m = re.search(r"--id (%s)" % UUID, r.stderr)
        t.check("safe" not in r.stderr.replace("safely", "") and "could store it twice" in r.stderr
                and m, "type without key: not said safe; says it could be stored twice and gives "
                "--id with the id used", r.stderr)
        first_id = m.group(1) if m else None
        t.check(first_id and ("event %s may or may not be stored" % first_id) in r.stderr,
                "the --id given is the id that was sent", r.stderr)

        r = h.publish(signup(2), type="newsletter.signup", extra=quick + ["--id", "signup-2"])
        t.check(r.returncode == harness.EX_TEMPFAIL and
                "publishing it again with the same id (signup-2) and source (herald-client) is safe"
                in r.stderr, "with --id: publishing again with that id is said safe", r.stderr)

        path = harness.write_jsonl(os.path.join(h.tmp, "signups.jsonl"), [signup(3), signup(4)])
        r = h.publish(file=path, type="newsletter.signup", extra=quick)
        t.check(r.returncode == harness.EX_TEMPFAIL and
                len(re.findall(r"line \d: no answer within 300 ms \(event %s, no idempotency key\)"
                               % UUID, r.stderr)) == 2 and
                "2 timed-out events had no idempotency key" in r.stderr,
                "lines mode: each timed-out line gives its id; the summary says they have no key",
                r.stderr)

        r = h.herald("publish", "--endpoint", h.endpoint("producers"), "--type", "newsletter.signup",
                     "--data", '{"email": "x@example.com"}', "--timeout", "300", config=False)
        t.check(r.returncode == harness.EX_TEMPFAIL and
                "safe if newsletter.signup has a key in the configuration; otherwise publish it "
                "again with the same id: --id" in r.stderr,
                "--endpoint without a config: the advice says what it depends on", r.stderr)
        t.check(silent.received >= 6, "every publish reached the silent broker (%d requests)"
                % silent.received)
    finally:
        silent.close()

    # -- against the real broker: --id makes publishing again a duplicate
    h.start_broker()
    data = signup(9)
    r1 = h.publish(data, type="newsletter.signup", extra=["--id", "signup-9"])
    r2 = h.publish(data, type="newsletter.signup", extra=["--id", "signup-9"])
    t.check(r1.returncode == 0 and r1.stdout.strip() == "signup-9" and "duplicate" not in r1.stderr,
            "--id: the first publish is stored under that id", r1.stdout + r1.stderr)
    t.check(r2.returncode == 0 and r2.stdout.strip() == "signup-9" and "duplicate" in r2.stderr,
            "--id: publishing again is a duplicate", r2.stdout + r2.stderr)
    r3 = h.publish(data, type="newsletter.signup")
    r4 = h.publish(data, type="newsletter.signup")
    t.check(r3.returncode == 0 and r4.returncode == 0 and r3.stdout.strip() != r4.stdout.strip()
            and "duplicate" not in r4.stderr,
            "without --id (and no key) the same data twice is two events: the advice was needed",
            r3.stdout + r4.stdout + r4.stderr)
    r = h.herald("publish", "--type", "newsletter.signup", "--id", "x", "--file", path)
    t.check(r.returncode == harness.EX_USAGE and "--id" in r.stderr,
            "--id with lines is a usage error (one id names one event)", r.stderr)


if __name__ == "__main__":
    harness.Test("publish_timeout", budget=60).run(body)
