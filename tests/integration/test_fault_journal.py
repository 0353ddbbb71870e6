"""test_fault_journal: the journal's own faults, with the real broker.

  A. torn tail: after a SIGKILL, bytes of a write that never completed lie
     past the last record (here: a record header with a bad CRC, then junk).
     The broker cuts them off, logs where, serves every ACKed event, appends
     after the cut, and a second restart finds a clean journal. A journal
     that never held a record (a new store stopped before its first event)
     is clean at the next start too: its untouched first header, all
     zeros at position 0, is no record, not a torn one.
  B. damaged record in the middle: an operator's sqlite3 shell holds the
     index's write lock (BEGIN IMMEDIATE), so the index cannot apply while
     300 events are ACKed (the broker keeps serving: the index is off the ACK
     path); the broker is SIGKILLed and a byte is flipped in a record in the
     middle of what the index has not applied. The broker refuses to start
     (exit 74) with an error naming the segment file and the offset, and
     never answers; with the byte restored it starts and delivers all 300.
  C. SIGKILL inside a segment's preparation or recycling (its directory
     fsync) and inside the index's commit (its WAL fsync), again and again
     under a pipelined load with 1 MiB segments: zero ACKed events lost.

Runs under Debian's /usr/bin/python3 (python3-zmq not needed)."""

import glob
import os
import signal
import sqlite3
import struct
import subprocess
import time

import faultlib
import harness

EX_IOERR = 74


def segments(h):
    return sorted(glob.glob(os.path.join(h.tmp, "herald.db.journal", "*.seg")))


def records_end(path):
    """Offset past the last non-zero byte of a segment (rounded up to 8)."""
    with open(path, "rb") as f:
        data = f.read()
    end = len(data.rstrip(b"\0"))
    return (end + 7) // 8 * 8, data


def applied_lsn(h):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.tmp, "herald.db"), uri=True, timeout=10)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'applied_lsn'").fetchone()
        return int(row[0]) if row else 0
    finally:
        db.close()


def publish_all(t, h, first, count):
    lines = harness.write_jsonl(os.path.join(h.tmp, "orders-%d.jsonl" % first),
                                (harness.order(i) for i in range(first, first + count)))
    r = h.publish(file=lines, extra=["--quiet"])
    t.require(r.returncode == 0, "%d orders %d.. ACKed" % (count, first), r.stderr[-300:])


def case_torn_tail(t):
    h = t.deployment()
    ledger = faultlib.Ledger(h)
    broker = faultlib.start_broker(h)
    publish_all(t, h, 1, 200)
    h.kill(broker, signal.SIGKILL)
    seg = [p for p in segments(h) if records_end(p)[0] > 0][-1]     # the one the log ends in
    end, data = records_end(seg)
    base = int(os.path.basename(seg).split(".")[0], 16)
    # the writer, idle, left its 32-byte mark at the log's end; the next
    # write starts there, over it
    mark = data[end - 32:end]
    t.require(struct.unpack("<Q", mark[8:16])[0] == base + end - 32 and mark[24] == 0xFE,
              "A: the log ends with the idle writer's mark")
    end -= 32
    with open(seg, "r+b") as f:
        f.seek(end)
        # a write cut short: its header is whole (its LSN is its position) but
        # only half of its 600-byte payload made it, so its CRC does not match
        f.write(struct.pack("<IIQQ", 0xDEADBEEF, 600, base + end, base + end) + os.urandom(300))
    broker = faultlib.start_broker(h)
    cut = faultlib.log_lines(broker, "journal: torn tail cut off")
    t.check(len(cut) == 1 and os.path.basename(seg) in cut[0],
            "A: the torn tail is cut off and logged, naming the segment", cut or harness.tail(broker.log, 5))
    publish_all(t, h, 201, 50)
    worker_env = faultlib.preload_env()
    worker_env.update(ledger.worker_env())
    for ch in h.channels:
        faultlib.start_worker(h, ch, env=worker_env)
    acks = {i: None for i in range(1, 251)}
    ledger.wait_all(acks, timeout=60)
    t.check(True, "A: the 200 ACKed before the cut and the 50 after are delivered on every channel")
    h.send_signal(broker, signal.SIGTERM)
    t.check(h.wait_exit(broker) == 0, "A: stopped cleanly")
    broker = faultlib.start_broker(h)
    t.check(not faultlib.log_lines(broker, "torn tail"), "A: the next start finds a clean journal")
    h.kill_all()


def case_damaged_middle(t):
    h = t.deployment()
    broker = faultlib.start_broker(h)
    publish_all(t, h, 1, 20)
    harness.wait_until(lambda: applied_lsn(h) > 0, 10, "the index applied the first orders")
    shell = subprocess.Popen(["sqlite3", os.path.join(h.tmp, "herald.db")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    shell.stdin.write(".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
    shell.stdin.flush()
    t.require(shell.stdout.readline().strip() == "locked", "B: the sqlite3 shell holds the write lock")
    held_at = applied_lsn(h)
    started = time.monotonic()
    publish_all(t, h, 21, 300)
    t.check(time.monotonic() - started < 20, "B: 300 orders ACKed while the index cannot write")
    t.check(broker.alive(), "B: a locked index does not stop the broker")
    h.kill(broker, signal.SIGKILL)
    shell.stdin.write("ROLLBACK;\n.quit\n")
    shell.stdin.flush()
    shell.wait(timeout=10)
    t.check(applied_lsn(h) == held_at, "B: the index is still where the lock stopped it (%d)" % held_at)
    seg = segments(h)[0]
    end, data = records_end(seg)
    middle = held_at + (end - held_at) // 2
    t.require(end - held_at > 100000, "B: the unapplied records span %d bytes" % (end - held_at))
    original = data[middle]
    with open(seg, "r+b") as f:
        f.seek(middle)
        f.write(bytes([original ^ 0x5A]))
    proc = faultlib.spawn(h, "broker-damaged", [harness.binary("herald-broker"), "-c", h.config])
    rc = h.wait_exit(proc, timeout=30)
    err = open(proc.log, errors="replace").read()
    t.check(rc == EX_IOERR, "B: a damaged durable record refuses the start (exit %s, want 74)" % rc,
            err[-500:])
    t.check(os.path.basename(seg) in err and "damaged record" in err,
            "B: the error names the segment file and says what is wrong", err[-500:])
    t.check("broker ready" not in err, "B: it never served")
    with open(seg, "r+b") as f:
        f.seek(middle)
        f.write(bytes([original]))
    broker = faultlib.start_broker(h)
    for ch in h.channels:
        faultlib.start_worker(h, ch)
    harness.wait_until(lambda: all(h.channel_status(ch).get("done", 0) == 320 for ch in h.channels), 60,
                       "B: restored, all 320 orders delivered on every channel")
    h.kill_all()


def case_kills_inside_syncs(t):
    rng = faultlib.seeded_random("fault_journal")
    h = t.deployment(broker={"journal_segment": "1MiB"})
    ledger = faultlib.Ledger(h)
    block = os.path.join(h.tmp, "fsync.block")
    reached = os.path.join(h.tmp, "fsync.reached")
    worker_env = faultlib.preload_env()
    worker_env.update(ledger.worker_env())

    def broker_env(match):
        return faultlib.preload_env(fsync_block=block, fsync_reached=reached, fsync_match=match)

    targets = [("segment directory fsync", "herald.db.journal", "dir"),
               ("index commit (WAL fsync)", "herald.db-wal", "file")]
    target = targets[0]
    broker = faultlib.start_broker(h, env=broker_env(target[1]))
    workers = [faultlib.start_worker(h, ch, env=worker_env) for ch in h.channels]
    for ch in h.channels:
        h.wait_workers(ch, 1, *workers)
    producers = [faultlib.Producer(h, "producer-%d" % i, first=1 + i * 10000000, rate=400,
                                   chunk=200, window=500, timeout_ms=1500) for i in range(2)]
    faultlib.run_producers(producers)
    kills = {name: 0 for name, _, _ in targets}
    missed = 0
    load = faultlib.duration(16)
    i = 0
    # the load lasts `load`; where a kill takes long (a sanitized broker's
    # restart, syncs not reached in 4 s) it runs on, up to twice as long
    # again, until each kind of sync has been killed inside twice
    for _ in faultlib.load_rounds(load, lambda: min(kills.values()) >= 2, run_on=2):
        time.sleep(rng.uniform(0.2, 1.0))
        if not broker.alive():
            t.check(False, "C: the broker stays up between kills", harness.tail(broker.log, 10))
            break
        if faultlib.hold_sync(block, reached, target[2], timeout=4):
            kills[target[0]] += 1
        else:
            missed += 1
        h.kill(broker, signal.SIGKILL)
        faultlib.remove(block)
        i += 1
        target = targets[i % len(targets)]
        broker = faultlib.start_broker(h, env=broker_env(target[1]))
    t.note("C: kills %s, %d without reaching the fsync" % (kills, missed))
    acks = faultlib.finish_producers(t, producers, timeout=90)
    t.check(all(n >= 2 for n in kills.values()), "C: killed inside each kind of sync at least twice %s" % kills)
    ledger.wait_all(acks, timeout=90)
    faultlib.wait_idle(h, timeout=60)
    counts = ledger.verify(t, acks)
    counts["kills"] = kills
    faultlib.print_counts(t, "C: counts", counts)
    h.kill_all()


def case_empty_restart(t):
    h = t.deployment()
    before = None
    for run in (1, 2, 3):
        broker = faultlib.start_broker(h)
        h.send_signal(broker, signal.SIGTERM)
        t.require(h.wait_exit(broker) == 0, "A: start %d with no event stopped cleanly" % run)
        t.check(not faultlib.log_lines(broker, "torn tail"),
                "A: start %d of a store that never held an event finds a clean journal" % run,
                harness.tail(broker.log, 5))
        names = [os.path.basename(p) for p in segments(h)]
        t.check(before is None or names == before, "A: its segments are kept as they were", (before, names))
        before = names


def body(t):
    case_empty_restart(t)
    case_torn_tail(t)
    case_damaged_middle(t)
    case_kills_inside_syncs(t)


if __name__ == "__main__":
    harness.Test("fault_journal", budget=300).run(body)
