"""test_fault_power_loss: a power cut loses nothing ACKed.

A power cut keeps what was synced and may lose, or tear, whatever was
written after a file's last fsync. The broker runs under the fault library
with HERALD_FAULT_WRITE_LOG: every write to the store (journal segments, the
SQLite index and its WAL) and every sync is logged. While three producers
publish a steady pipelined load and workers deliver, the broker is
SIGKILLed at random moments; then, before it restarts, the test undoes what
the cut could have lost:

  - journal segments: every write after the file's last sync is zeroed
    (segments are zero-filled before use, so that is what was on the disk),
    except that the first such write is sometimes kept in part (a torn write,
    cut at a random byte);
  - the index's WAL: the same (a frame not synced is gone or torn);
  - the index's main file: writes after its last sync are kept (a checkpoint
    the WAL can redo: keeping them is one of the outcomes a cut allows);
  - the index's wal-index (-shm, shared memory never synced) is zeroed.

The broker then restarts on what is left, possibly cutting a torn journal
tail (it logs it). At the end every ACKed order is delivered to every
channel, under one task id per channel, with the ACKed event id: zero
acknowledged events lost.

Knobs: HERALD_FAULT_DURATION (load seconds, default 15), HERALD_FAULT_RATE
(lines/s per producer, default 120), HERALD_FAULT_SEED."""

import os
import signal
import time

import faultlib
import harness

DURATION = faultlib.duration(15)
RATE = faultlib.env_float("HERALD_FAULT_RATE", 120)
PRODUCERS = 3


def lost_writes(log_path):
    """{path: [(offset, length), ...]}: the writes after each file's last sync."""
    pending = {}
    with open(log_path, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            if parts[0] == "S" and len(parts) >= 2:
                pending[" ".join(parts[1:])] = []
            elif parts[0] == "W" and len(parts) >= 4:
                path = " ".join(parts[1:-2])
                pending.setdefault(path, []).append((int(parts[-2]), int(parts[-1])))
    return {p: w for p, w in pending.items() if w}


def cut_power(rng, log_path, store_dir):
    """Undoes what a power cut could lose; returns counts for the notes."""
    counts = {"files": 0, "zeroed": 0, "torn": 0, "kept": 0}
    for path, writes in lost_writes(log_path).items():
        if not path.startswith(store_dir) or not os.path.exists(path):
            continue
        name = os.path.basename(path)
        counts["files"] += 1
        if name.endswith(".seg") or name.endswith("-wal"):
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                for i, (offset, length) in enumerate(writes):
                    if offset >= size:
                        continue
                    length = min(length, size - offset)
                    keep = 0
                    if i == 0 and rng.random() < 0.5:
                        keep = rng.randrange(0, length + 1)     # torn: a prefix made it
                        counts["torn"] += 1
                    f.seek(offset + keep)
                    f.write(b"\0" * (length - keep))
                    counts["zeroed"] += length - keep
        else:
            counts["kept"] += len(writes)
    # SQLite's wal-index (-shm) is shared memory, never synced: a cut loses it
    for name in os.listdir(store_dir):
        if name.endswith("-shm"):
            with open(os.path.join(store_dir, name), "r+b") as f:
                f.write(b"\0" * os.path.getsize(os.path.join(store_dir, name)))
    os.unlink(log_path)
    return counts


def body(t):
    rng = faultlib.seeded_random("power_loss")
    h = t.deployment(broker={"journal_segment": "1MiB"})
    ledger = faultlib.Ledger(h)
    write_log = os.path.join(h.tmp, "writes.log")
    store_dir = h.tmp
    # every other cut falls inside a segment's fdatasync (held there by the
    # fault library), where the batch just written is certainly not synced:
    # random moments alone may all fall between syncs on a slow build
    block = os.path.join(h.tmp, "fsync.block")
    reached = os.path.join(h.tmp, "fsync.reached")
    broker_env = faultlib.preload_env(write_log=write_log, write_log_match="herald.db",
                                      fsync_block=block, fsync_reached=reached,
                                      fsync_match=".seg")
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

    cuts = 0
    in_sync = 0
    totals = {"files": 0, "zeroed": 0, "torn": 0, "kept": 0}
    want = min(5, DURATION / 3)
    # the load lasts DURATION; where a cut takes long (a sanitized broker's
    # restart, a sync not reached in 5 s) it runs on, up to twice as long
    # again, until the cuts checked below are made
    for _ in faultlib.load_rounds(DURATION, lambda: cuts >= want and in_sync >= 2, run_on=2):
        time.sleep(rng.uniform(0.5, 2.0))
        if not broker.alive():
            t.check(False, "the broker stays up between power cuts",
                    "exit %s: %s" % (broker.popen.returncode, harness.tail(broker.log, 10)))
            break
        if cuts % 2 == 0 and faultlib.hold_sync(block, reached, "file", timeout=5):
            in_sync += 1
        h.kill(broker, signal.SIGKILL)
        faultlib.remove(block)
        cuts += 1
        for k, v in cut_power(rng, write_log, store_dir).items():
            totals[k] += v
        broker = faultlib.start_broker(h, env=broker_env)
    t.note("load over: %d power cuts (%d inside a segment fdatasync), %s; finishing the producers"
           % (cuts, in_sync, totals))

    acks = faultlib.finish_producers(t, producers, timeout=60 + DURATION)
    t.check(len(acks) > 0, "some orders were ACKed (%d)" % len(acks))
    t.check(cuts >= want, "the power was cut %d times" % cuts)
    t.check(in_sync >= 2, "at least two cuts fell inside a segment fdatasync (%d)" % in_sync)
    t.check(totals["zeroed"] > 0, "the cuts undid unsynced writes (%d bytes zeroed, %d torn)"
            % (totals["zeroed"], totals["torn"]))
    ledger.wait_all(acks, timeout=60 + DURATION * 2)
    faultlib.wait_idle(h, timeout=60)
    counts = ledger.verify(t, acks)
    counts["power_cuts"] = cuts
    counts["undone"] = totals
    faultlib.print_counts(t, "counts", counts)
    torn_cut = faultlib.log_lines(broker, "torn")
    t.note("broker logs about torn tails in its last run: %d" % len(torn_cut))
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("dead", 0) == 0, "%s: no task dead" % ch, c)


if __name__ == "__main__":
    harness.Test("fault_power_loss", budget=faultlib.budget(DURATION, extra=150)).run(body)
