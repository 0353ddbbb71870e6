"""test_backlog_index_behind: a burst bigger than broker.queue_window, with
workers connected, while the index is slow to apply the journal (the
fault library adds 0.6 s to each MiB it reads): the tasks beyond the window wait in
the store, and the channels' loads of them are answered with what the index
has applied so far. Deliveries thus go on while the index is still behind
the journal; a load used to wait until the index had applied everything up
to the channel's last task sent to the store, and no task past the window
was delivered before the index had caught up with the whole burst. Every
task is delivered in the end, and the index catches up.

Runs under Debian's /usr/bin/python3."""

import json
import threading
import time

import faultlib
import harness

N = 12000               # orders in the burst (about 12 MB of journal)
WINDOW = 1000           # broker.queue_window (each load takes at most this many tasks)
LAG = 1 << 20           # "behind": the index this many bytes behind the journal


def body(t):
    h = t.deployment(broker={"queue_window": WINDOW})
    # each MiB the index reads from the journal takes 0.6 s more: it
    # applies under 2 MiB a second, the burst in about four seconds
    env = faultlib.preload_env(pread_ms_per_mib=600, pread_match="herald.db.journal")
    faultlib.start_broker(h, env=env)
    h.start_workers()

    samples = []                # (done on the slowest channel, index lag in bytes)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            st = h.try_status()
            if st:
                done = min(h._channel(st, ch).get("done", 0) for ch in harness.CHANNELS)
                samples.append((done, st.get("broker", {}).get("index_lag_bytes", -1)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        lines = "".join(json.dumps(harness.order(1 + i)) + "\n" for i in range(N))
        r = h.publish(input=lines, extra=["--quiet"], timeout=120)
        t.require(r.returncode == 0, "%d orders ACKed" % N, r.stdout[-500:] + r.stderr[-500:])
        h.wait_counts(N, timeout=120)
        harness.wait_until(lambda: all(h._channel(h.status(), ch).get("done") == N
                                       for ch in harness.CHANNELS), 30, "status: every task done")
        harness.wait_until(lambda: h.status().get("broker", {}).get("index_lag_bytes") == 0, 60,
                           "the index caught up")
    finally:
        stop.set()
        sampler.join(5)

    behind = [s for s in samples if s[1] > LAG]
    t.check(behind, "the index was more than 1 MiB behind the journal for a while (%d samples)" % len(behind),
            samples[:20])
    beyond = [s for s in behind if s[0] > 2 * WINDOW]
    t.check(beyond,
            "tasks beyond the window were delivered while the index was still behind (e.g. %s done, %s bytes behind)"
            % (max(beyond) if beyond else ("-", "-")),
            "samples (done, lag): %s" % [s for s in samples if s[1] > 0][::10][:30])
    t.check(h.counts() == {ch: N for ch in harness.CHANNELS},
            "every task delivered: %d files per channel" % N, h.counts())
    st = h.status()
    t.check(all(h._channel(st, ch).get("pending") == 0 and h._channel(st, ch).get("in_flight") == 0
                for ch in harness.CHANNELS), "nothing pending or in flight", st.get("channels"))


if __name__ == "__main__":
    harness.Test("backlog_index_behind", budget=180).run(body)
