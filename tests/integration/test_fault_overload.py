"""test_fault_overload: producers offering about twice what the broker can
commit; memory stays bounded, no ACK is silently dropped, nothing ACKed is
lost.

The broker runs with small caps (broker.queue_window 5000, broker.hwm 500,
broker.batch_max 100) and a slow disk: the fault library adds
HERALD_FAULT_FSYNC_DELAY_MS to every fsync, so what it can commit is
bounded by the "disk", not by the CPU the test shares with it. Workers use
the noop driver (the subject is the broker, not delivery).

  1. calibration (3 s): four producers with large windows, closed loop:
     the broker's commit capacity C (events/s);
  2. overload (HERALD_FAULT_DURATION, default 20 s): four producers paced
     to offer 2C in total, open loop (window 100000, timeout 60 s, so a
     slow answer is never a timeout); every 200 ms the broker's VmRSS is
     sampled. Producers see backpressure (their sends wait: the rate they
     achieve falls to what is committed) or NACK 503 busy, which they
     retry with the same order_id;
  3. checks: the broker's RSS stays under HERALD_FAULT_RSS_CAP_MB (default
     192) and does not keep growing; no publish timed out (every publish got
     its ACK or NACK: none silently dropped); every ACKed event is in the
     store and every one of its tasks ends done (delivered by the noop
     workers); the figures (memory, offered/committed throughput) are
     printed."""

import os
import sqlite3
import threading
import time

import faultlib
import harness

DURATION = faultlib.duration(20)
FSYNC_DELAY_MS = faultlib.env_int("HERALD_FAULT_FSYNC_DELAY_MS", 25)
RSS_CAP_MB = faultlib.env_float("HERALD_FAULT_RSS_CAP_MB", 192)
PRODUCERS = 4


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []           # (seconds since start, KiB)
        self.halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.halt.is_set():
            kib = faultlib.rss_kib(self.pid)
            if kib:
                self.samples.append((time.monotonic() - self.t0, kib))
            self.halt.wait(0.2)


def events_stored(h):
    st = h.try_status() or {}
    return st


def body(t):
    broker_keys = {"queue_window": "5000", "hwm": "500", "batch_max": "100"}
    h = t.deployment(driver="noop", broker=broker_keys,
                     channel_extra={ch: {"capacity": "500"} for ch in harness.CHANNELS})
    store = os.path.join(h.tmp, "herald.db")
    env = faultlib.preload_env(fsync_delay_ms=FSYNC_DELAY_MS)
    broker = faultlib.start_broker(h, env=env)
    h.start_workers()
    with open("/proc/%d/maps" % broker.pid) as maps:
        under_asan = "libasan" in maps.read()
    sampler = Sampler(broker.pid)
    sampler.start()
    t.note("broker (fsync +%d ms, queue_window 5000, hwm 500, batch_max 100) and noop workers up"
           % FSYNC_DELAY_MS)

    # -- 1. calibration
    cal = [faultlib.Producer(h, "cal-%d" % i, first=1 + i * 10000000, chunk=500, window=2000,
                             timeout_ms=60000) for i in range(PRODUCERS)]
    t0 = time.monotonic()
    faultlib.run_producers(cal)
    time.sleep(3)
    acks_cal = faultlib.finish_producers(t, cal, timeout=120)   # the chunks in hand end
    cal_elapsed = time.monotonic() - t0
    capacity = len(acks_cal) / cal_elapsed
    t.note("calibration: %d events ACKed, capacity C ~ %.0f events/s" % (len(acks_cal), capacity))
    t.require(capacity > 0, "the broker commits something")

    # -- 2. overload: half the offer from patient producers (open loop:
    # window 100000, timeout 60 s), half from producers with the defaults
    # of `herald publish` (window 1000, timeout 5 s), which feel the
    # backpressure as a full window (their input is read more slowly than
    # offered) and may time out and publish again.
    offered = 2 * capacity
    rss_before = faultlib.rss_kib(broker.pid)
    per = offered / PRODUCERS
    chunk = int(per * DURATION) + 1
    patient = [faultlib.Producer(h, "patient-%d" % i, first=100000000 + i * 10000000, rate=per,
                                 chunk=chunk, window=100000, timeout_ms=60000)
               for i in range(PRODUCERS // 2)]
    default = [faultlib.Producer(h, "default-%d" % i, first=200000000 + i * 10000000, rate=per,
                                 chunk=chunk, window=1000, timeout_ms=5000)
               for i in range(PRODUCERS - PRODUCERS // 2)]
    load = patient + default
    t0 = time.monotonic()
    stored0 = (h.try_status() or {}).get("broker", {}).get("events", 0)
    faultlib.run_producers(load)
    committed = []
    while time.monotonic() - t0 < DURATION:
        time.sleep(1)
        st = h.try_status()
        if st:
            committed.append((time.monotonic() - t0, st.get("broker", {}).get("events", 0)))
    written = {p.name: p.written for p in load}
    elapsed = time.monotonic() - t0
    acks = faultlib.finish_producers(t, load, timeout=120 + DURATION * 3)
    total_elapsed = time.monotonic() - t0
    sampler.halt.set()
    sampler.join()
    acks.update(acks_cal)

    # -- 3. figures and checks
    samples = [kib for s, kib in sampler.samples]
    peak_mb = max(samples) / 1024.0
    third = max(1, len(samples) // 3)
    early_mb = max(samples[:2 * third]) / 1024.0
    late_mb = max(samples[2 * third:]) / 1024.0 if samples[2 * third:] else early_mb
    committed_rate = (committed[-1][1] - stored0) / committed[-1][0] if committed else 0
    figures = {
        "capacity_events_per_s": round(capacity),
        "offered_events_per_s": round(offered),
        "committed_during_load_per_s": round(committed_rate),
        "taken_by_patient_per_s": round(sum(written[p.name] for p in patient) / elapsed),
        "taken_by_default_per_s": round(sum(written[p.name] for p in default) / elapsed),
        "offered_per_group_per_s": round(per * len(default)),
        "acked_total": len(acks),
        "drain_seconds": round(total_elapsed - elapsed, 1),
        "rss_mb": {"before": round((rss_before or 0) / 1024.0, 1), "peak": round(peak_mb, 1),
                   "first_two_thirds": round(early_mb, 1), "last_third": round(late_mb, 1)},
        "patient": {k: sum(p.totals[k] for p in patient) for k in ("acked", "nacked", "timed_out")},
        "default": {k: sum(p.totals[k] for p in default) for k in ("acked", "nacked", "timed_out")},
        "nacks": {},
        "republished_lines": sum(p.failures for p in load),
    }
    for p in load:
        for code, n in p.nacks.items():
            figures["nacks"][code] = figures["nacks"].get(code, 0) + n
    faultlib.print_counts(t, "figures", figures)

    t.check(broker.alive(), "the broker survived the overload")
    if under_asan:
        # ASan's shadow memory and quarantine (hundreds of MiB) say nothing
        # about Herald's own bounds: the cap is enforced in the normal build;
        # here only "does not keep growing" (below) holds.
        t.note("sanitizer build: RSS cap %.0f MiB not applied (peak %.1f MiB)" % (RSS_CAP_MB, peak_mb))
    else:
        t.check(peak_mb <= RSS_CAP_MB, "broker RSS peak %.1f MiB <= %.0f MiB" % (peak_mb, RSS_CAP_MB))
    t.check(late_mb <= early_mb * 1.25 + 16,
            "broker RSS does not keep growing (last third %.1f MiB, before %.1f MiB)"
            % (late_mb, early_mb))
    t.check(figures["patient"]["timed_out"] == 0,
            "no patient publish timed out (60 s): every one got its ACK or NACK",
            figures["patient"])
    t.check(set(figures["nacks"]) <= {"503"}, "the only NACKs are 503 busy", figures["nacks"])
    felt = "producers with the default window felt backpressure (took %d/s of %d/s offered) " \
           "or got busy NACKs" % (figures["taken_by_default_per_s"], figures["offered_per_group_per_s"])
    if under_asan:
        # Under the sanitizers the calibration measures its own producers
        # (sanitized CLIs started per chunk) more than the broker: CI runs
        # had C 1272/s then 2334/s committed under the 2C offer, C 1758/s
        # then 3037/s, so 2C was little or no overload and whether the
        # default producers fell 10 % short was chance. As with the RSS cap,
        # the normal build checks it (there C is the slow disk's: 3532/s
        # calibrated, 3808/s committed under load).
        t.note("sanitizer build: backpressure not checked (C %d/s, %d/s committed under the load): %s"
               % (figures["capacity_events_per_s"], figures["committed_during_load_per_s"], felt))
    else:
        t.check(figures["taken_by_default_per_s"] < figures["offered_per_group_per_s"] * 0.9
                or figures["nacks"], felt)

    faultlib.wait_idle(h, timeout=120)
    st = h.status()
    db = sqlite3.connect("file:%s?mode=ro" % store, uri=True)
    try:
        stored = {row[0]: row[1] for row in db.execute("SELECT id, seq FROM events")}
        ids = {next(iter(v)) for v in acks.values()}
        lost = ids - set(stored)
        t.check(not lost, "every ACKed event is in the store (%d)" % len(ids),
                "%d missing, e.g. %s" % (len(lost), sorted(lost)[:5]))
        # a task pending at its first attempt has no row either: a bit of
        # its event's pending bits says so
        not_done = db.execute("SELECT count(*) FROM tasks WHERE state <> 1").fetchone()[0] \
            + db.execute("SELECT count(*) FROM pending WHERE bits <> 0").fetchone()[0]
        t.check(not_done == 0, "every task of every stored event is done (delivered)", not_done)
        # a task done at its first attempt has no row of its own: the index
        # counts tasks per channel
        done = db.execute("SELECT coalesce (sum (done), 0) FROM counts").fetchone()[0]
        t.check(done == 3 * len(stored), "three tasks done per stored event (%d events)" % len(stored),
                done)
        t.check(len(stored) == len(ids),
                "every stored event was ACKed to its producer (no ACK lost: %d stored, %d ACKed)"
                % (len(stored), len(ids)))
    finally:
        db.close()
    for ch in h.channels:
        c = h._channel(st, ch)
        t.check(c.get("done", 0) == len(stored) and c.get("dead", 0) == 0,
                "%s: status done %d" % (ch, len(stored)), c)


if __name__ == "__main__":
    harness.Test("fault_overload", budget=faultlib.budget(DURATION * 3, extra=150)).run(body)
