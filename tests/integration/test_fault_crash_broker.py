"""test_fault_crash_broker: crash anywhere, lose nothing ACKed.

Three producers publish a steady, pipelined load (`herald publish -` fed
JSON lines) while the broker is SIGKILLed again and again and restarted on
the same store. Half of the kills land at random moments (before, during or
after commits, while dispatching, while ACKs are in flight); the other half
land exactly inside a commit: the broker runs under the fault library and
the test holds its fsync (HERALD_FAULT_FSYNC_BLOCK), waits until fsync is
entered, and kills it there. A producer that sees a timeout or an
unavailable broker publishes the lines not yet ACKed again, with the same
order_id, so the same idempotency key.

At the end: every ACKed order is delivered to every channel (zero missing),
under one task id per channel (so every duplicate delivery carries the same
idempotency key), with the ACKed event id; an order's ACKs all name the same
event. Duplicates are counted from the workers' rename log (faultinject's
rename hook logs every delivery the file driver completes, since a
redelivery overwrites the same file).

Knobs: HERALD_FAULT_DURATION (load seconds, default 20), HERALD_FAULT_RATE
(lines/s per producer, default 150), HERALD_FAULT_SEED (replay the kill
schedule)."""

import signal
import time

import faultlib
import harness

DURATION = faultlib.duration(20)
RATE = faultlib.env_float("HERALD_FAULT_RATE", 150)
PRODUCERS = 3


def body(t):
    rng = faultlib.seeded_random("crash_broker")
    h = t.deployment()
    ledger = faultlib.Ledger(h)
    broker_env, block, reached = faultlib.sync_hold_env(h)
    worker_env = faultlib.preload_env()
    worker_env.update(ledger.worker_env())

    broker = faultlib.start_broker(h, env=broker_env)
    workers = [faultlib.start_worker(h, ch, env=worker_env) for ch in h.channels]
    for ch in h.channels:
        h.wait_workers(ch, 1, *workers)
    t.note("broker and 3 workers up in %s; load %.0fs, %d producers at %.0f lines/s"
           % (h.tmp, DURATION, PRODUCERS, RATE))

    producers = [faultlib.Producer(h, "producer-%d" % i, first=1 + i * 10000000, rate=RATE,
                                   chunk=max(50, int(RATE)), window=500, timeout_ms=1500)
                 for i in range(PRODUCERS)]
    faultlib.run_producers(producers)

    kills = {"random": 0, "in-commit": 0, "in-commit-missed": 0}
    # the load lasts DURATION and at least 10 kills (a restart replays what
    # the index had not applied: up to 8 MiB of journal when the machine is
    # busy, see README; longer under ASan), at most twice DURATION
    for _ in faultlib.load_rounds(DURATION, lambda: sum(kills.values()) >= min(10, DURATION / 2)):
        time.sleep(rng.uniform(0.3, 1.8))
        if not broker.alive():
            t.check(False, "the broker stays up between kills",
                    "exit %s: %s" % (broker.popen.returncode, harness.tail(broker.log, 10)))
            break
        if rng.random() < 0.5:
            h.kill(broker, signal.SIGKILL)
            kills["random"] += 1
        else:
            if faultlib.hold_sync(block, reached, timeout=3):
                kills["in-commit"] += 1
            else:
                kills["in-commit-missed"] += 1     # no commit within 3 s: kill anyway
            h.kill(broker, signal.SIGKILL)
            faultlib.remove(block)
        time.sleep(rng.uniform(0, 0.3))
        broker = faultlib.start_broker(h, env=broker_env)
    total_kills = kills["random"] + kills["in-commit"] + kills["in-commit-missed"]
    t.note("load over: %d kills %s; finishing the producers" % (total_kills, kills))

    acks = faultlib.finish_producers(t, producers, timeout=60 + DURATION)
    t.check(len(acks) > 0, "some orders were ACKed (%d)" % len(acks))
    t.check(total_kills >= min(10, DURATION / 2), "the broker was killed %d times" % total_kills)
    ledger.wait_all(acks, timeout=60 + DURATION * 2)
    faultlib.wait_idle(h, timeout=60)
    counts = ledger.verify(t, acks)
    counts["kills"] = kills
    counts["republished_lines"] = sum(p.failures for p in producers)
    counts["publish_exits"] = {}
    for p in producers:
        for rc, n in p.exits.items():
            counts["publish_exits"][str(rc)] = counts["publish_exits"].get(str(rc), 0) + n
    faultlib.print_counts(t, "counts", counts)
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("dead", 0) == 0, "%s: no task dead" % ch, c)
    for w in workers:
        t.check(w.alive(), "%r survived the broker restarts" % w)


if __name__ == "__main__":
    harness.Test("fault_crash_broker", budget=faultlib.budget(DURATION, extra=150)).run(body)
