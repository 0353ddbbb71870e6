"""test_fault_corrupt_store: a corrupt store is detected at start, with a
clear error naming the file, and never served.

A real store is made first (broker, 300 events, clean stop, so the index
holds everything and its WAL is checkpointed into the main file); then each
case damages a copy of the index file (without the journal, which a clean
stop leaves with nothing to replay), and
herald-broker must exit 74 (EX_IOERR) by itself, quickly, with an error on
stderr naming the store file, without ever answering on its endpoints:
  - garbage: the file replaced by random bytes;
  - header: the 100-byte SQLite header overwritten;
  - pages: a few b-tree pages in the middle overwritten with random bytes;
  - truncated: the file cut in the middle of a page, half of it gone;
  - wal: a valid main file with a damaged page written back by a WAL
    checkpoint (pages damaged after a checkpoint: the same as "pages" but
    with the store left by a SIGKILL, WAL and all);
  - foreign: a valid SQLite database that is not a Herald store.
The undamaged copy must start fine (the control case)."""

import os
import random
import shutil
import signal
import sqlite3
import time

import faultlib
import harness

PAGE = 4096


def damage_pages(path, rng, count=4):
    size = os.path.getsize(path)
    pages = size // PAGE
    if pages < 4:
        raise harness.TestFailure("store too small to damage pages (%d bytes)" % size)
    with open(path, "r+b") as f:
        for p in rng.sample(range(1, pages), min(count, pages - 1)):
            f.seek(p * PAGE)
            f.write(bytes(rng.randrange(256) for _ in range(PAGE)))


def make_cases(golden, killed_dir, rng):
    """{name: function(dst_dir) writing the damaged store as dst_dir/herald.db}."""
    def copy(dst):
        shutil.copy(golden, os.path.join(dst, "herald.db"))
        return os.path.join(dst, "herald.db")

    def garbage(dst):
        with open(os.path.join(dst, "herald.db"), "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(64 * 1024)))

    def header(dst):
        p = copy(dst)
        with open(p, "r+b") as f:
            f.write(bytes(rng.randrange(256) for _ in range(100)))

    def pages(dst):
        damage_pages(copy(dst), rng)

    def truncated(dst):
        p = copy(dst)
        os.truncate(p, os.path.getsize(p) // 2 + 123)

    def wal(dst):
        # a store left by SIGKILL (main file + WAL); checkpoint it with
        # sqlite3 (what the broker's own next start would do), then damage
        for name in os.listdir(killed_dir):
            if name.startswith("herald.db"):
                src = os.path.join(killed_dir, name)
                if os.path.isdir(src):
                    shutil.copytree(src, os.path.join(dst, name))
                else:
                    shutil.copy(src, os.path.join(dst, name))
        db = sqlite3.connect(os.path.join(dst, "herald.db"))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        damage_pages(os.path.join(dst, "herald.db"), rng)

    def foreign(dst):
        db = sqlite3.connect(os.path.join(dst, "herald.db"))
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)")
        db.executemany("INSERT INTO customers (email) VALUES (?)",
                       [("c%d@example.com" % i,) for i in range(100)])
        db.commit()
        db.close()

    return {"control": copy, "garbage": garbage, "header": header, "pages": pages,
            "truncated": truncated, "wal": wal, "foreign": foreign}


def body(t):
    rng = faultlib.seeded_random("corrupt_store")
    h = t.deployment()
    store = os.path.join(h.tmp, "herald.db")

    # a real store, stopped cleanly (checkpointed) ...
    broker = faultlib.start_broker(h)
    path = harness.write_jsonl(os.path.join(h.tmp, "orders.jsonl"),
                               (harness.order(i) for i in range(1, 301)))
    r = h.publish(file=path, timeout=60)
    t.require(r.returncode == 0, "300 events published into the golden store", r.stderr[-300:])
    t.require(h.kill(broker, signal.SIGTERM, timeout=30) == 0, "clean stop of the golden broker")
    golden = os.path.join(h.tmp, "golden.db")
    shutil.copy(store, golden)
    # ... and one left by SIGKILL (a WAL beside it)
    broker = faultlib.start_broker(h)
    path = harness.write_jsonl(os.path.join(h.tmp, "orders2.jsonl"),
                               (harness.order(i) for i in range(301, 601)))
    r = h.publish(file=path, timeout=60)
    h.kill(broker, signal.SIGKILL)
    killed_dir = os.path.join(h.tmp, "killed")
    os.makedirs(killed_dir)
    for name in os.listdir(h.tmp):
        if name.startswith("herald.db"):
            shutil.move(os.path.join(h.tmp, name), os.path.join(killed_dir, name))
    t.note("golden store %d KiB; killed store %s" % (os.path.getsize(golden) // 1024,
                                                     sorted(os.listdir(killed_dir))))

    for name, make in make_cases(golden, killed_dir, rng).items():
        for f in os.listdir(h.tmp):
            if f.startswith("herald.db"):
                p = os.path.join(h.tmp, f)
                if os.path.isdir(p):
                    shutil.rmtree(p)        # the journal: the index stands alone here
                else:
                    os.unlink(p)
        make(h.tmp)
        before = open(store, "rb").read()
        proc = faultlib.spawn(h, "broker-%s" % name, [harness.binary("herald-broker"), "-c", h.config])
        # a damaged store must make it exit at once: look for that first
        start = time.monotonic()
        while proc.alive() and time.monotonic() - start < 3:
            time.sleep(0.02)
        served = proc.alive() and h.try_status() is not None
        if name == "control":
            t.check(proc.alive() and h.try_status() is not None,
                    "control: the undamaged store is served", harness.tail(proc.log, 5))
            st = h.status()
            t.check(all(h._channel(st, ch).get("pending") == 300 for ch in h.channels),
                    "control: its 300 events' tasks are pending", st)
            h.kill(proc, signal.SIGTERM, timeout=30)
            continue
        if proc.alive():
            h.kill(proc, signal.SIGKILL)
        rc = proc.popen.returncode
        out = "\n".join(l for l in harness.tail(proc.log, 40).splitlines()
                        if l.startswith("herald-broker:") or "level=error" in l)
        t.check(not served, "%s: never served (no answer on the admin endpoint)" % name)
        t.check(rc == 74, "%s: herald-broker exits 74 at start" % name, "exit %s: %s" % (rc, out))
        t.check(store in out, "%s: the error names the store file" % name, out)
        t.check(any(w in out.lower() for w in ("corrupt", "malformed", "not a database",
                                                "not a herald", "schema", "integrity")),
                "%s: the error says what is wrong" % name, out)
        t.note("%s: %s" % (name, out.strip().splitlines()[-1] if out.strip() else "(no output)"))
        after = open(store, "rb").read() if os.path.exists(store) else b""
        t.check(after == before, "%s: the damaged file is left as it was (not overwritten)" % name)


if __name__ == "__main__":
    harness.Test("fault_corrupt_store", budget=180).run(body)
