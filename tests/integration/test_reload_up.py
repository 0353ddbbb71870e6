"""test_reload_up: SIGHUP to `herald up` reloads the stack without stopping
it, under a steady publish load (every ACK and NACK counted).

  - workers: {email: 2} and a new inventory rate: the same broker (same
    pid) and the same workers, each logging its reload; the broker applies
    the rate; a second email worker is started and registers;
  - an invalid file: `herald up` logs one error naming the file, line and
    key, forwards nothing, changes nothing;
  - workers: {email: 1}: one email worker is stopped gracefully (exit 0
    after SIGTERM) and not restarted.

Throughout: no NACK, no publish left unanswered, no "worker lost", every
ACKed order delivered to each channel once."""

import os
import signal

import harness
import reloadlib as rl
from harness import wait_until
from test_up import broker_of, workers_of

RATE = 40.0


def write(h, email_workers, inventory_rate="0", broken=False):
    h.write_config(workers={"email": email_workers, "inventory": 1, "courier": 1},
                   channel_extra={"inventory": {"rate": inventory_rate},
                                  "courier": {"capacity": "0" if broken else "8"}})


def records(up, msg, proc=None):
    return [r for r in rl.log_records(up.log, msg) if proc is None or r.get("proc") == proc]


def hup(up):
    """SIGHUP to herald up; waits for its own line saying what it did."""
    def mine():
        return sorted(records(up, "configuration reloaded", "up") + records(up, "reload refused*", "up"),
                      key=lambda r: r["ts"])
    before = len(mine())
    os.kill(up.pid, signal.SIGHUP)
    return wait_until(lambda: mine()[-1] if len(mine()) > before else None, 15, "herald up to log its reload")


def body(t):
    h = t.deployment()
    write(h, 1)
    up = h.spawn("up", [harness.binary("herald"), "up", "-c", h.config])
    h.wait_broker_ready(up)
    for ch in h.channels:
        h.wait_workers(ch, 1, up)
    broker_pid = broker_of(up.pid)
    first_workers = workers_of(up.pid)
    t.require(len(broker_pid) == 1 and len(first_workers) == 3, "herald up runs a broker and 3 workers",
              (broker_pid, first_workers))
    producer = rl.Producer(h.endpoint("producers"), rate=RATE)
    producer.start()
    try:
        wait_until(lambda: producer.acked_count() >= RATE, 15, "a second of ACKs")

        # -- workers: {email: 2} and a rate
        write(h, 2, inventory_rate="1000/s")
        rec = hup(up)
        t.check(rec["msg"] == "configuration reloaded" and rec.get("workers_started") == "1"
                and rec.get("workers_stopped") == "0" and "workers.email 1->2" in rec.get("changes", ""),
                "herald up reloads: workers.email 1->2, one worker started", rec["_line"])
        wait_until(lambda: len(records(up, "configuration reloaded", "worker")) >= 3, 10,
                   "the 3 running workers to log their reload")
        b = records(up, "configuration reloaded", "broker")
        t.check(b and "channels.inventory.rate 0/s->1000/s" in b[-1].get("changes", ""),
                "the broker applies the new rate", b[-1]["_line"] if b else None)
        h.wait_workers("email", 2, up)
        now = workers_of(up.pid)
        t.check(broker_of(up.pid) == broker_pid, "the same broker process (pid %d)" % broker_pid[0])
        t.check(set(first_workers) <= set(now) and sorted(now.values()) == ["courier", "email", "email", "inventory"],
                "the same 3 workers, and a second email worker", (first_workers, now))

        # -- an invalid file: nothing forwarded, nothing changed
        write(h, 3, broken=True)
        where = "%s:%d: channels.courier.capacity" % (h.config, rl.line_of(h.config, "capacity: 0"))
        forwarded = len(records(up, "reload requested: SIGHUP forwarded to the broker and the workers"))
        rec = hup(up)
        t.check(rec["msg"].startswith("reload refused") and rec.get("proc") == "up" and where in rec.get("error", ""),
                "an invalid file is refused, naming file, line and key", rec["_line"])
        t.check(len(records(up, "reload requested: SIGHUP forwarded to the broker and the workers")) == forwarded,
                "and nothing is forwarded")
        t.check(sorted(workers_of(up.pid).values()) == ["courier", "email", "email", "inventory"],
                "no worker started or stopped", workers_of(up.pid))

        # -- workers: {email: 1}: one email worker stops, gracefully, for good
        write(h, 1, inventory_rate="1000/s")
        acked = producer.acked_count()
        rec = hup(up)
        t.check(rec.get("workers_stopped") == "1", "herald up reloads: workers.email 2->1", rec["_line"])
        wait_until(lambda: sorted(workers_of(up.pid).values()) == ["courier", "email", "inventory"], 15,
                   lambda: "one email worker to stop (now %s)" % workers_of(up.pid))
        # the child is gone from /proc once reaped; herald up logs its exit just after
        wait_until(lambda: [r for r in records(up, "exited", "up") if r.get("channel") == "email"], 10,
                   "herald up to log the email worker's exit")
        exits = [r for r in records(up, "exited", "up") if r.get("channel") == "email"]
        t.check(exits and exits[-1].get("status") == "0", "the email worker stopped gracefully (exit 0)",
                exits[-1]["_line"] if exits else None)
        h.wait_workers("email", 1, up)
        wait_until(lambda: producer.acked_count() > acked + RATE, 10, "ACKs after the reload")
        t.check(not records(up, "restart scheduled"), "no child restarted", records(up, "restart scheduled")[:2])
    finally:
        producer.stop()
    rl.ensure_no_error(t, producer)
    total = producer.published()
    t.check(len(producer.acks) == total and not producer.nacks and not producer.missing,
            "every publish ACKed: %d of %d, no NACK, none unanswered" % (len(producer.acks), total),
            (producer.nacks, producer.nack_reasons[:3], producer.missing[:10]))
    h.wait_counts(total, timeout=60)
    t.check(h.counts() == {ch: total for ch in h.channels}, "every order delivered once to each channel",
            h.counts())
    lost = [r["_line"] for r in records(up, "worker lost", "broker")]
    t.check(not lost, "no worker session lost", lost[:3])
    t.check(broker_of(up.pid) == broker_pid and up.alive(), "one broker, one herald up throughout")
    os.kill(up.pid, signal.SIGTERM)
    t.check(h.wait_exit(up, timeout=30) == 0, "herald up stops with exit 0")


if __name__ == "__main__":
    harness.Test("reload_up", budget=120).run(body)
