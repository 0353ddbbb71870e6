"""test_fault_disk_full: a full disk gets a clear NACK, never a crash or a
false ACK; what is stored keeps being delivered; space back, service back.

The store lives on a real, small filesystem: a tmpfs of a few MiB mounted in
the test's directory (we run as root in CI), filled with a ballast file so
that little room is left. Without the right to mount (EPERM), the test falls
back to the fault library injecting ENOSPC into the broker's writes to the
store files (HERALD_FAULT_ENOSPC), and says which mode ran.

  1. publish chunks of orders until publishes get NACK 507 (storage full;
     `herald publish` exits 75); the broker stays up;
  2. with the store still full, workers start: every ACKed order is
     delivered on every channel (deliveries go on; their DONE outcomes wait
     for room), no NACKed order is delivered, new publishes are refused with
     507 quickly;
  3. the ballast is deleted: publishing is accepted again (within a few
     seconds), the NACKed orders published again are new events (they were
     not stored: duplicate false), and everything ends delivered and done;
  4. the broker stops cleanly (SIGTERM, exit 0) and the store passes
     SQLite's integrity check and holds every ACKed event.
The journal's segments (1 MiB here) are made ahead, so what fills first is
the room for the next segment or the index's file; either way publishes get
507 and what was ACKed stays."""

import errno
import json
import os
import signal
import sqlite3
import subprocess
import time

import faultlib
import harness

FS_SIZE = os.environ.get("HERALD_FAULT_FS_SIZE", "16m")
ROOM = faultlib.env_int("HERALD_FAULT_ROOM_KIB", 384) * 1024    # left free after the ballast
CHUNK = 100


def mount_tmpfs(path):
    """True if a tmpfs is mounted at path, False without the right to mount."""
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % FS_SIZE, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode == 0:
        return True
    print("# mount -t tmpfs failed (%s): falling back to injected ENOSPC" % r.stderr.strip())
    return False


def umount(path):
    for args in (["umount", path], ["umount", "-l", path]):
        if subprocess.run(args, capture_output=True).returncode == 0:
            return True
    return False


def fill(ballast, leave):
    """Writes ballast until the filesystem is full, then gives back `leave`
    bytes. Returns the ballast size."""
    chunk = b"\xa5" * 65536
    size = 0
    with open(ballast, "wb") as f:
        while True:
            try:
                f.write(chunk)
                f.flush()
                size += len(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    try:
        size = os.path.getsize(ballast)
    except OSError:
        pass
    keep = max(0, size - leave)
    os.truncate(ballast, keep)
    return keep


def publish_chunk(h, first, count, timeout_ms=5000):
    """Publishes orders first..first+count-1; returns (exit, {order: event_id},
    {order: nack code})."""
    path = harness.write_jsonl(os.path.join(h.tmp, "chunk.jsonl"),
                               (harness.order(i) for i in range(first, first + count)))
    r = h.publish(file=path, json_out=True, extra=["--timeout", str(timeout_ms), "--window", "50"],
                  timeout=60)
    acked = {}
    for o in harness.parse_json_lines(r.stdout):
        if isinstance(o, dict) and o.get("line") and o.get("event_id"):
            acked[first + int(o["line"]) - 1] = (o["event_id"], o.get("duplicate"))
    nacked = {}
    for line in r.stderr.splitlines():
        # herald publish: line N: NACK 507 storage: ...
        if ": NACK " in line and "line " in line:
            try:
                n = int(line.split("line ", 1)[1].split(":", 1)[0])
                code = int(line.split(": NACK ", 1)[1].split()[0])
            except (ValueError, IndexError):
                continue
            nacked[first + n - 1] = code
    return r.returncode, acked, nacked, r.stderr


def body(t):
    # small journal segments: the filesystem holds a few of them
    h = t.deployment(broker={"journal_segment": "1MiB"})
    store_dir = os.path.join(h.tmp, "store")
    ballast = os.path.join(store_dir, "ballast")
    enospc = os.path.join(h.tmp, "enospc")
    # HERALD_FAULT_DISK_MODE=preload forces the fallback (to test it)
    mounted = os.environ.get("HERALD_FAULT_DISK_MODE") != "preload" and mount_tmpfs(store_dir)
    mode = "tmpfs" if mounted else "preload"
    try:
        run(t, h, mode, store_dir, ballast, enospc)
    finally:
        h.kill_all()
        if mounted and not umount(store_dir):
            print("# WARNING: could not unmount %s" % store_dir)


def run(t, h, mode, store_dir, ballast, enospc):
    store = os.path.join(store_dir, "herald.db")
    with open(h.config) as f:
        text = f.read()
    text = text.replace(json.dumps(os.path.join(h.tmp, "herald.db")), json.dumps(store))
    with open(h.config, "w") as f:
        f.write(text)
    env = None
    if mode == "preload":
        env = faultlib.preload_env(enospc=enospc, enospc_match=store)
    broker = faultlib.start_broker(h, env=env)
    t.note("mode %s: store %s (%s)" % (mode, store, FS_SIZE if mode == "tmpfs" else "ENOSPC injected"))

    # -- 1. fill
    if mode == "tmpfs":
        kept = fill(ballast, ROOM)
        st = os.statvfs(store_dir)
        t.note("ballast %d KiB, %d KiB free" % (kept // 1024, st.f_bavail * st.f_frsize // 1024))
    acked, nacked = {}, {}
    next_order = 1
    full_at = None
    for n in range(400):
        if mode == "preload" and n == 5:
            faultlib.touch(enospc)
        rc, a, k, err = publish_chunk(h, next_order, CHUNK)
        next_order += CHUNK
        acked.update(a)
        nacked.update(k)
        if k:
            full_at = full_at or n
            t.check(rc == harness.EX_TEMPFAIL, "a chunk with storage NACKs exits 75", "exit %d" % rc)
            if n - full_at >= 2:
                break
        t.require(broker.alive(), "the broker stays up while the disk fills",
                  harness.tail(broker.log, 10))
    t.note("%d orders ACKed, %d NACKed (%s) before and while full"
           % (len(acked), len(nacked), sorted(set(nacked.values()))))
    t.require(full_at is not None, "publishing into a full store got NACKs")
    t.check(set(nacked.values()) == {507}, "every NACK is 507 (storage)", set(nacked.values()))
    t.check(not (set(acked) & set(nacked)), "no order both ACKed and NACKed")
    t.check(broker.alive(), "the broker did not crash on the full disk")
    errors = faultlib.log_lines(broker, "store full")
    t.check(errors, "the broker logs a clear storage-full error", harness.tail(broker.log, 5))
    r = h.publish(data=harness.order(next_order), extra=["--timeout", "5000"])
    t.check(r.returncode == harness.EX_TEMPFAIL and "507" in r.stderr and "full" in r.stderr,
            "a new publish while full: NACK 507 'storage full', exit 75",
            "exit %d: %s" % (r.returncode, r.stderr.strip()))
    nacked[next_order] = 507
    next_order += 1

    # -- 2. deliveries go on from what is stored
    h.start_workers()
    acked_ids = {o: e for o, (e, _) in acked.items()}
    ledger = faultlib.Ledger(h)
    ledger.wait_all({o: {e} for o, e in acked_ids.items()}, timeout=60)
    per, _ = ledger.delivered_orders()
    for ch in h.channels:
        wrong = set(per[ch]) & set(nacked)
        t.check(not wrong, "%s: no NACKed order delivered" % ch, sorted(wrong)[:10])
    t.note("all %d ACKed orders delivered while the store is full" % len(acked_ids))
    t.check(broker.alive(), "the broker is up after delivering from a full store")

    # -- 3. space back
    if mode == "tmpfs":
        faultlib.remove(ballast)
    else:
        faultlib.remove(enospc)
    t0 = time.monotonic()

    def accepted():
        r = h.publish(data=harness.order(next_order), extra=["--timeout", "3000"])
        return r.returncode == 0
    harness.wait_until(accepted, 15, "a publish to be accepted once space is back", interval=0.2)
    t.note("accepting again %.1fs after the space came back" % (time.monotonic() - t0))
    next_order += 1
    again = sorted(nacked)
    path = harness.write_jsonl(os.path.join(h.tmp, "again.jsonl"), (harness.order(i) for i in again))
    r = h.publish(file=path, json_out=True, timeout=60)
    t.check(r.returncode == 0, "the %d NACKed orders published again are ACKed" % len(again),
            r.stderr[-300:])
    res = harness.parse_json_lines(r.stdout)
    dups = [o for o in res if o.get("duplicate")]
    t.check(not dups, "none of them was stored before (NACK 507 meant not stored)",
            "%d duplicates: %s" % (len(dups), dups[:3]))
    for o in res:
        acked_ids[again[int(o["line"]) - 1]] = o["event_id"]
    ledger.wait_all({o: {e} for o, e in acked_ids.items()}, timeout=60)
    faultlib.wait_idle(h, timeout=60)
    st = h.status()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("done", 0) >= len(acked_ids) and c.get("dead", 0) == 0,
                "%s: every task recorded done once space came back" % ch, c)

    # -- 4. clean stop, store intact
    rc = h.kill(broker, signal.SIGTERM, timeout=30)
    t.check(rc == 0, "the broker stops cleanly on SIGTERM (exit 0)", rc)
    db = sqlite3.connect("file:%s?mode=ro" % store, uri=True)
    try:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        t.check(check == "ok", "the store passes integrity_check", check)
        ids = {row[0] for row in db.execute("SELECT id FROM events")}
        lost = set(acked_ids.values()) - ids
        t.check(not lost, "every ACKed event is in the store (%d)" % len(acked_ids),
                "%d missing" % len(lost))
    finally:
        db.close()
    faultlib.print_counts(t, "counts", {"mode": mode, "acked": len(acked_ids),
                                        "nacked_507": len(nacked)})


if __name__ == "__main__":
    harness.Test("fault_disk_full", budget=240).run(body)
