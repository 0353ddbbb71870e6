"""test_security_spine: the whole spine over CURVE on tcp://127.0.0.1.
`herald up` starts the broker and one worker per channel, handing each
worker the key of its channel; `herald publish` (the producer key the
config lists) publishes 300 orders, every one is ACKed and delivered once
to each of the three channels by the file driver. SIGHUP to `herald up`
reaches the broker, which reloads its key lists without dropping anyone."""

import os
import signal

import harness
import securitylib as sec

N = 300


def body(t):
    h = sec.SecureHerald("security-spine", tcp=True)
    t.deployments.append(h)
    up = h.spawn("up", [harness.binary("herald"), "up", "-c", h.config])

    def ready():
        if not up.alive():
            raise harness.TestFailure("herald up exited with %s" % up.popen.returncode)
        st = h.try_status()
        return st and all(h._channel(st, ch).get("workers") == 1 for ch in h.channels)
    harness.wait_until(ready, 30, "herald up to start the broker and 3 workers over CURVE")
    t.note("broker and workers up on %s" % ", ".join(h.endpoint(n) for n in ("producers", "workers", "admin")))
    started = [l for l in sec.log_lines(up, 'msg=started ') if "child=worker" in l]
    t.check(len(started) == 3, "herald up started 3 workers", "".join(started))
    cmdlines = []
    for pid in harness.descendants(up.pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdlines.append(f.read().decode().split("\0"))
        except OSError:
            pass
    keys = {argv[argv.index("--channel") + 1]: argv[argv.index("--key") + 1]
            for argv in cmdlines if "--channel" in argv and "--key" in argv}
    want = {ch: h.key(name, "secret") for ch, name in sec.WORKER_KEYS.items()}
    t.check(keys == want, "each worker got its channel's key (--key)", keys)

    events = os.path.join(h.tmp, "orders.jsonl")
    harness.write_jsonl(events, (harness.order(i) for i in range(1, N + 1)))
    r = h.publish(file=events, timeout=60)
    t.check(r.returncode == 0 and ("%d acked" % N) in r.stderr, "%d events published and ACKed over CURVE" % N,
            r.stderr[-500:])
    h.wait_counts(N, timeout=45)
    for ch in h.channels:
        d = h.deliveries(ch)
        orders = sorted(x.order_id for x in d.values())
        t.check(orders == list(range(1, N + 1)), "%s: one delivery per order" % ch,
                "%d deliveries" % len(d))
    harness.wait_until(lambda: all(h.channel_status(ch).get("done") == N for ch in h.channels), 20,
                       lambda: "status done %d on every channel: %s" % (N, h.status()))
    st = h.status()
    t.check(st["security"]["mode"] == "curve" and st["security"]["refused"]["total"] == 0,
            "status: CURVE, nothing refused", st["security"])

    os.kill(up.pid, signal.SIGHUP)      # herald up's log holds its children's too
    harness.wait_until(lambda: sec.log_lines(up, 'msg="security reloaded"'), 10,
                       "the broker (under herald up) to reload on SIGHUP")
    r = h.publish(harness.order(N + 1))
    t.check(r.returncode == 0, "after the reload, publishing still works", r.stderr)
    h.wait_counts(N + 1, timeout=20)
    t.check(all(h.channel_status(ch).get("workers") == 1 for ch in h.channels),
            "the workers kept their sessions through the reload", h.status()["channels"])
    lost = sec.log_lines(up, "worker lost") + sec.log_lines(up, "broker silent")
    t.check(not lost, "no worker was lost, none reconnected", "".join(lost[:3]))


if __name__ == "__main__":
    harness.Test("security_spine", budget=120).run(body)
