"""test_fault_crash_worker: workers SIGKILLed mid-delivery lose nothing.

Two workers per channel, two producers publishing a steady pipelined load;
the broker stays up. Again and again a random worker is SIGKILLed and a new
one started in its place. The kills land:
  - at random moments;
  - inside a delivery, before it is complete: the worker runs under the
    fault library, and the test holds the fsync of the delivery's temporary
    file (block file holding "file"), waits until it is entered, and kills;
  - after the delivery is complete but before the worker reported DONE: the
    test holds the fsync of the outbox directory that follows the rename
    (block file holding "dir"), waits, and kills. Each such kill must give a
    duplicate delivery of the same task id later.

At the end: every ACKed order is delivered to every channel, under one task
id per channel (every duplicate carries the same idempotency key), no task
is dead, and the duplicates counted from the rename log are at least the
"after delivery" kills. Knobs: HERALD_FAULT_DURATION (default 20),
HERALD_FAULT_RATE (lines/s per producer, default 150), HERALD_FAULT_SEED."""

import os
import signal
import time

import faultlib
import harness

DURATION = faultlib.duration(20)
RATE = faultlib.env_float("HERALD_FAULT_RATE", 150)
PER_CHANNEL = 2


class Pool:
    """The workers, each with its own fsync block file."""

    def __init__(self, h, ledger):
        self.h = h
        self.ledger = ledger
        self.serial = 0
        self.workers = []           # [(proc, channel, block, reached)]

    def start(self, channel):
        self.serial += 1
        block = os.path.join(self.h.tmp, "block-%d" % self.serial)
        reached = os.path.join(self.h.tmp, "reached-%d" % self.serial)
        env = faultlib.preload_env(fsync_block=block, fsync_reached=reached)
        env.update(self.ledger.worker_env())
        proc = faultlib.start_worker(self.h, channel, env=env)
        self.workers.append((proc, channel, block, reached))
        return proc


def body(t):
    rng = faultlib.seeded_random("crash_worker")
    h = t.deployment(workers={ch: PER_CHANNEL for ch in harness.CHANNELS})
    ledger = faultlib.Ledger(h)
    faultlib.start_broker(h)
    pool = Pool(h, ledger)
    for ch in h.channels:
        for _ in range(PER_CHANNEL):
            pool.start(ch)
    for ch in h.channels:
        h.wait_workers(ch, PER_CHANNEL)
    t.note("broker and %d workers per channel up in %s; load %.0fs at 2 x %.0f lines/s"
           % (PER_CHANNEL, h.tmp, DURATION, RATE))

    producers = [faultlib.Producer(h, "producer-%d" % i, first=1 + i * 10000000, rate=RATE,
                                   chunk=max(50, int(RATE)), window=500, timeout_ms=5000)
                 for i in range(2)]
    faultlib.run_producers(producers)

    kills = {"random": 0, "in-write": 0, "after-rename": 0, "missed": 0}
    want = min(10, DURATION / 2)
    # the load runs DURATION; on a slow machine (kills that waited 3 s for a
    # delivery) it runs on, up to DURATION more, until `want` kills are made
    for _ in faultlib.load_rounds(DURATION, lambda: sum(kills.values()) >= want):
        time.sleep(rng.uniform(0.2, 1.0))
        index = rng.randrange(len(pool.workers))
        proc, channel, block, reached = pool.workers.pop(index)
        if not proc.alive():
            t.check(False, "%r stays up until killed" % proc,
                    "exit %s: %s" % (proc.popen.returncode, harness.tail(proc.log, 10)))
            break
        kind = rng.choice(["random", "in-write", "after-rename"])
        if kind != "random":
            if not faultlib.hold_sync(block, reached, "file" if kind == "in-write" else "dir", timeout=3):
                kind = "missed"                 # no delivery within 3 s: kill anyway
        h.kill(proc, signal.SIGKILL)
        faultlib.remove(block)
        kills[kind] += 1
        pool.start(channel)
    t.note("load over: kills %s; finishing the producers" % kills)

    acks = faultlib.finish_producers(t, producers, timeout=60 + DURATION)
    t.check(len(acks) > 0, "some orders were ACKed (%d)" % len(acks))
    exits = {}
    for p in producers:
        for rc, n in p.exits.items():
            exits[rc] = exits.get(rc, 0) + n
    t.check(set(exits) <= {0}, "every publish exited 0 (the broker stayed up)", exits)
    ledger.wait_all(acks, timeout=60 + DURATION * 2)
    faultlib.wait_idle(h, timeout=60)
    counts = ledger.verify(t, acks)
    counts["kills"] = kills
    faultlib.print_counts(t, "counts", counts)
    total = sum(kills.values())
    t.check(total >= want, "workers were killed %d times" % total)
    # A kill right after a delivery's rename usually means a redelivery (a
    # duplicate with the same task id, checked by the ledger above), but not
    # always within the run: reported, not asserted. The guarantees are the
    # ledger's checks: nothing ACKed missing, duplicates under the same key.
    t.note("kills after a complete delivery: %d; duplicates seen: %d"
           % (kills["after-rename"], counts["duplicates"]))
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("dead", 0) == 0, "%s: no task dead" % ch, c)
    stale = [l for l in h.procs if l.name == "broker"]
    t.check(all(p.alive() for p in stale), "the broker stayed up")


if __name__ == "__main__":
    harness.Test("fault_crash_worker", budget=faultlib.budget(DURATION, extra=150)).run(body)
