"""test_up: `herald up -c FILE` runs the broker and the workers the config
lists, restarts a worker that crashes, and stops everything on SIGTERM with
exit 0."""

import os
import signal

import harness


def children(pid):
    return harness.children(pid)


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def gone(pid):
    """True if pid no longer runs (absent, or a zombie nobody reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except OSError:
        return True


def workers_of(up_pid):
    """{pid: channel} of the herald-worker children of `herald up`."""
    out = {}
    for pid in children(up_pid):
        argv = cmdline(pid)
        if argv and os.path.basename(argv[0]) == "herald-worker" and "--channel" in argv:
            i = argv.index("--channel")
            out[pid] = argv[i + 1] if i + 1 < len(argv) else "?"
    return out


def broker_of(up_pid):
    return [p for p in children(up_pid) if cmdline(p) and
            os.path.basename(cmdline(p)[0]) == "herald-broker"]


def body(t):
    h = t.deployment(workers={"email": 2, "inventory": 1, "courier": 1})
    up = h.spawn("up", [harness.binary("herald"), "up", "-c", h.config])
    h.wait_broker_ready(up)
    for ch, n in (("email", 2), ("inventory", 1), ("courier", 1)):
        h.wait_workers(ch, n, up)
    t.note("herald up (pid %d) running in %s" % (up.pid, h.tmp))

    brokers = broker_of(up.pid)
    workers = workers_of(up.pid)
    t.check(len(brokers) == 1, "herald up runs one herald-broker child", brokers)
    t.check(sorted(workers.values()) == ["courier", "email", "email", "inventory"],
            "herald up runs the workers the config lists (email 2, inventory 1, courier 1)", workers)

    r = h.publish(harness.order(1))
    t.check(r.returncode == 0, "publish through herald up is ACKed", r.stderr[-500:])
    h.wait_counts(1, timeout=20, what="order 1 delivered")
    t.check(h.counts() == {"email": 1, "inventory": 1, "courier": 1}, "3 deliveries", h.counts())

    # a crashed worker is restarted
    victim = next(pid for pid, ch in workers.items() if ch == "inventory")
    os.kill(victim, signal.SIGKILL)
    t.note("SIGKILLed the inventory worker %d" % victim)
    new = harness.wait_until(
        lambda: [p for p, ch in workers_of(up.pid).items() if ch == "inventory" and p != victim],
        20, lambda: "a new inventory worker (children now %s)" % workers_of(up.pid))
    t.check(len(new) == 1, "herald up restarted the inventory worker (new pid %s)" % new)
    h.wait_workers("inventory", 1, up)
    r = h.publish(harness.order(2))
    t.check(r.returncode == 0, "publish after the restart is ACKed", r.stderr[-500:])
    h.wait_counts(2, timeout=20, what="order 2 delivered by the restarted worker")
    t.check(h.counts() == {"email": 2, "inventory": 2, "courier": 2}, "6 deliveries", h.counts())

    # SIGTERM stops everything, exit 0
    before = set(broker_of(up.pid)) | set(workers_of(up.pid))
    os.kill(up.pid, signal.SIGTERM)
    rc = h.wait_exit(up, timeout=20)
    t.check(rc == 0, "herald up exits 0 on SIGTERM", "exit %s" % rc)
    left = harness.wait_until(lambda: all(gone(p) for p in before) or None, 5,
                              lambda: "children gone: still running %s"
                              % [p for p in before if not gone(p)]) if before else True
    t.check(left, "every child of herald up is gone (%d were running)" % len(before))
    t.check(not os.path.exists(os.path.join(h.tmp, "producers.sock")) or h.try_status() is None,
            "the broker no longer answers")


if __name__ == "__main__":
    harness.Test("up", budget=90).run(body)
