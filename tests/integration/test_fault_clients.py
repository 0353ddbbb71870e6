"""test_fault_clients: clients that misbehave or vanish.

  A. a producer SIGKILLed with thousands of publishes in flight: the broker
     is unaffected, another producer publishing at the same time gets all
     its ACKs, everything stored is delivered once per channel;
  B. a producer that stops reading its replies (SIGSTOP) while the broker
     answers it: the other producers are still served (their publishes are
     ACKed within their timeout), and the stopped one, whose window (8,000)
     is below broker.max_unread_replies (10,000), gets all its ACKs once
     it runs again (a peer over that cap is dropped: test_hostile_producer);
  C. a worker that never answers: an http channel (lease 2s, http timeout
     10s) pointed at tests/servers/http_server.py, which hangs on the first
     request: the lease expires, the task goes to the other worker (same
     Idempotency-Key), is done, and the first worker's late answer is
     ignored (the broker logs a stale answer; the task stays done, attempts 2);
  D. a worker that crashes on one payload every time (the fault library
     aborts the worker when it writes a file holding a marker,
     HERALD_FAULT_CRASH_ON), restarted each time like `herald up` would:
     the task ends dead after max_attempts on each channel, with its
     attempt history (`herald dead list/show --json`), and the other orders,
     published before and after it, are all delivered and none is dead;
  E. a broker restart while a producer and the workers stay up: both
     reconnect by themselves (the same `herald publish -` process gets ACKs
     after the restart; the workers are counted again without a restart),
     and a producer that publishes again after a timeout creates no
     duplicate (held fsync -> timeout; then the same order_id -> duplicate
     ACK with the stored id, one delivery per channel)."""

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request

import faultlib
import harness


# ---------------------------------------------------------------- A

def scenario_a(t):
    h = t.deployment()
    faultlib.start_broker(h)
    h.start_workers()
    big = harness.write_jsonl(os.path.join(h.tmp, "big.jsonl"),
                              (harness.order(i) for i in range(1, 20001)))
    victim = h.spawn("publish-victim", [harness.binary("herald"), "publish", "-c", h.config,
                                        "--type", harness.EVENT_TYPE, "--file", big,
                                        "--window", "5000", "--quiet"])
    harness.wait_until(lambda: (h.try_status() or {}).get("broker", {}).get("events", 0) >= 1000,
                       30, "1000 events stored from the victim")
    other = harness.write_jsonl(os.path.join(h.tmp, "other.jsonl"),
                                (harness.order(i) for i in range(100001, 102001)))
    good = h.spawn("publish-other", [harness.binary("herald"), "publish", "-c", h.config,
                                     "--type", harness.EVENT_TYPE, "--file", other, "--quiet"])
    time.sleep(0.05)
    h.kill(victim, signal.SIGKILL)
    rc = h.wait_exit(good, timeout=60)
    t.check(rc == 0, "A: a producer publishing beside the killed one gets all its ACKs",
            harness.tail(good.log, 5))
    st = h.status()
    stored = st["broker"]["events"]
    t.note("A: producer killed with publishes in flight; %d events stored" % stored)
    h.wait_counts(stored, timeout=60, what="A: every stored event delivered")
    faultlib.wait_idle(h)
    c = h.counts()
    stored = h.status()["broker"]["events"]
    t.check(all(v == stored for v in c.values()),
            "A: one delivery per channel of each of the %d stored events" % stored, c)


# ---------------------------------------------------------------- B

def scenario_b(t):
    h = t.deployment(broker={"hwm": "1000"})
    broker = faultlib.start_broker(h)
    lines = harness.write_jsonl(os.path.join(h.tmp, "stopped.jsonl"),
                                (harness.order(i) for i in range(1, 50001)))
    stopped = h.spawn("publish-stopped", [harness.binary("herald"), "publish", "-c", h.config,
                                          "--type", harness.EVENT_TYPE, "--file", lines,
                                          "--window", "8000", "--timeout", "60000", "--quiet"])
    harness.wait_until(lambda: (h.try_status() or {}).get("broker", {}).get("events", 0) >= 200,
                       30, "the producer to be publishing")
    os.kill(stopped.pid, signal.SIGSTOP)
    t.note("B: producer %d stopped (SIGSTOP) with replies coming" % stopped.pid)
    try:
        time.sleep(2)           # let its reply pipe fill up
        r = h.publish(file=harness.write_jsonl(os.path.join(h.tmp, "b-other.jsonl"),
                                               (harness.order(i) for i in range(900001, 900201))),
                      extra=["--timeout", "5000", "--quiet"], timeout=60)
        t.check(r.returncode == 0,
                "B: another producer is served while one producer does not read its replies",
                "exit %d: %s" % (r.returncode, r.stderr.strip()[-400:]))
        t.check(broker.alive(), "B: the broker is up")
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    rc = h.wait_exit(stopped, timeout=120)
    t.check(rc == 0, "B: the stopped producer gets all its ACKs once it runs again",
            harness.tail(stopped.log, 5))


# ---------------------------------------------------------------- C

class HttpServer:
    def __init__(self, h, mode="ok"):
        self.h = h
        port_file = os.path.join(h.tmp, "http.port")
        server = os.path.join(harness.SOURCE_DIR, "tests", "servers", "http_server.py")
        self.proc = h.spawn("http-server", ["/usr/bin/python3", server, "--port-file", port_file,
                                            "--log", os.path.join(h.tmp, "http.log"), "--mode", mode])
        harness.wait_until(lambda: os.path.exists(port_file), 10, "the http server's port")
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port

    def control(self, **spec):
        req = urllib.request.Request(self.url + "/_control", data=json.dumps(spec).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def requests(self):
        with urllib.request.urlopen(self.url + "/_requests", timeout=5) as r:
            return [q for q in json.loads(r.read()) if q["path"] == "/hook"]


def scenario_c(t):
    h0 = t.deployment(channels=("hook",))       # to get a directory for the server
    server = HttpServer(h0)
    http = '{ url: "%s/hook", timeout: 10s }' % server.url
    h0.write_config(channels=("hook",), driver="http",
                    channel_extra={"hook": {"lease": "2s", "capacity": "1", "http": http}})
    h = h0
    broker = faultlib.start_broker(h)
    server.control(mode="hang", times=1, hang_seconds=6)
    a = h.start_worker("hook")
    r = h.publish(data=harness.order(4242))
    t.require(r.returncode == 0, "C: event published", r.stderr)
    harness.wait_until(lambda: len(server.requests()) >= 1, 10, "C: the first request (hangs)")
    b = h.start_worker("hook")
    first_at = time.monotonic()
    harness.wait_until(lambda: len(server.requests()) >= 2, 15,
                       "C: a second request after the lease expired")
    gap = time.monotonic() - first_at
    reqs = server.requests()
    t.note("C: second request %.1fs after the second worker came" % gap)
    keys = {q["headers"].get("idempotency-key") for q in reqs}
    t.check(len(keys) == 1 and None not in keys, "C: both attempts carry the same Idempotency-Key", keys)
    harness.wait_until(lambda: h.channel_status("hook").get("done") == 1, 10, "C: the task done")
    lost = faultlib.log_lines(broker, "lease expired") + faultlib.log_lines(broker, "lease-expired")
    t.check(lost, "C: the broker logs the lease expiry", harness.tail(broker.log, 8))
    harness.wait_until(lambda: faultlib.log_lines(broker, "stale answer ignored"), 15,
                       "C: the first worker's late answer (after its 6 s hang) is ignored")
    st = h.channel_status("hook")
    t.check(st.get("done") == 1 and st.get("dead") == 0 and st.get("pending") == 0,
            "C: the task stays done once (late answer ignored)", st)
    t.check(a.alive() and b.alive(), "C: both workers are still up")
    stale = faultlib.log_lines(broker, "stale answer ignored")
    t.check(any(":%d " % a.pid in l for l in stale) and not any(":%d " % b.pid in l for l in stale),
            "C: the ignored answer is the first worker's (its lease was given to the second)", stale)
    reqs = server.requests()
    t.check(len(reqs) == 2,
            "C: the retry went to the other worker, not back to the hung one: exactly two "
            "requests reached the server",
            ["attempt %s at +%.1fs" % (q["headers"].get("x-herald-attempt"), q["time"] - reqs[0]["time"])
             for q in reqs])


# ---------------------------------------------------------------- D

POISON = "POISON-PILL-666"


def poison_order(order_id):
    o = harness.order(order_id)
    if order_id == 666:
        o["customer"]["name"] = POISON
    return o


def scenario_d(t):
    extra = {"retry": "{ max_attempts: 3, backoff: 100ms..300ms }"}
    h = t.deployment(channel_extra={ch: extra for ch in harness.CHANNELS})
    env = faultlib.preload_env(crash_on=POISON)
    faultlib.start_broker(h)
    workers = {ch: faultlib.start_worker(h, ch, env=env) for ch in h.channels}
    crashes = {ch: 0 for ch in h.channels}
    halt = threading.Event()

    def supervise():                # what `herald up` does: restart a crashed worker
        while not halt.is_set():
            for ch, w in list(workers.items()):
                if not w.alive():
                    crashes[ch] += 1
                    workers[ch] = faultlib.start_worker(h, ch, env=env)
            halt.wait(0.05)
    sup = threading.Thread(target=supervise, daemon=True)
    sup.start()
    try:
        for ch in h.channels:
            h.wait_workers(ch, 1)
        orders = list(range(600, 666)) + [666] + list(range(667, 733))
        r = h.publish(file=harness.write_jsonl(os.path.join(h.tmp, "d.jsonl"),
                                               (poison_order(i) for i in orders)),
                      json_out=True, timeout=60)
        t.require(r.returncode == 0, "D: %d orders (one poison) published" % len(orders), r.stderr)
        acked = {orders[int(o["line"]) - 1]: o["event_id"] for o in harness.parse_json_lines(r.stdout)}
        poison_id = acked[666]

        def dead_tasks():
            r = h.herald("dead", "list", "-c", h.config, "--json", config=False)
            try:
                return json.loads(r.stdout).get("tasks", [])
            except ValueError:
                return []
        harness.wait_until(lambda: len(dead_tasks()) >= 3, 60,
                           lambda: "D: the poison task dead on 3 channels (dead: %s, crashes %s)"
                           % (dead_tasks(), crashes))
        faultlib.wait_idle(h, timeout=60)
    finally:
        halt.set()
        sup.join(5)
    dead = dead_tasks()
    t.note("D: worker crashes %s; dead %s" % (crashes, [(d["task_id"], d["attempts"]) for d in dead]))
    t.check(all(d["event_id"] == poison_id for d in dead),
            "D: only the poison event's tasks are dead (%d dead)" % len(dead),
            [(d["event_id"], d["last_error"]) for d in dead if d["event_id"] != poison_id][:5])
    t.check(sorted(d["channel"] for d in dead) == sorted(h.channels),
            "D: the poison task is dead on every channel", dead)
    t.check(all(d["attempts"] == 3 for d in dead if d["event_id"] == poison_id),
            "D: after max_attempts (3)", [(d["channel"], d["attempts"]) for d in dead])
    t.check(all(n >= 3 for n in crashes.values()), "D: each channel's worker crashed 3 times", crashes)
    db = harness.os.path.join(h.tmp, "herald.db")
    import sqlite3
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    spread = conn.execute("SELECT attempts, count(*) FROM tasks WHERE state = 1 GROUP BY 1").fetchall()
    conn.close()
    t.note("D: attempts of the other orders' tasks (attempts, count): %s" % spread)
    for d in dead[:1]:
        r = h.herald("dead", "show", d["task_id"], "-c", h.config, "--json", config=False)
        task = json.loads(r.stdout).get("task", {}) if r.returncode == 0 else {}
        hist = task.get("history", [])
        t.check(len(hist) >= 3 and task.get("last_error"),
                "D: `dead show` gives the attempt history and the last error",
                json.dumps(task)[:600])
    got = h.delivered_events()
    for ch in h.channels:
        want = {eid for o, eid in acked.items() if o != 666}
        t.check(want <= got[ch], "D: %s: every other order delivered" % ch,
                "%d missing" % len(want - got[ch]))
        t.check(poison_id not in got[ch], "D: %s: the poison order never completed" % ch)


# ---------------------------------------------------------------- E

def scenario_e(t):
    h = t.deployment()
    env, block, reached = faultlib.sync_hold_env(h)
    broker = faultlib.start_broker(h, env=env)
    workers = h.start_workers()
    argv = [harness.binary("herald"), "publish", "-c", h.config, "--type", harness.EVENT_TYPE,
            "-", "--json", "--timeout", "2000"]
    pub = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, cwd=h.tmp, start_new_session=True)
    out = []
    reader = threading.Thread(target=lambda: out.append(pub.stdout.read()), daemon=True)
    reader.start()
    errs = []
    ereader = threading.Thread(target=lambda: errs.append(pub.stderr.read()), daemon=True)
    ereader.start()
    try:
        def feed(first, count):
            for i in range(first, first + count):
                pub.stdin.write((json.dumps(harness.order(i)) + "\n").encode())
                pub.stdin.flush()
                time.sleep(0.01)
        feed(1, 100)
        h.wait_counts(50, timeout=20, what="E: deliveries before the restart")
        h.kill(broker, signal.SIGKILL)
        broker = faultlib.start_broker(h, env=env)
        t.note("E: broker restarted; producer %d and the workers were left running" % pub.pid)
        feed(1001, 100)
        pub.stdin.close()
        rc = pub.wait(timeout=60)
    finally:
        if pub.poll() is None:
            os.killpg(pub.pid, signal.SIGKILL)
    reader.join(5)
    ereader.join(5)
    acks = {}
    for o in harness.parse_json_lines(b"".join(x for x in out if x).decode()):
        line = int(o["line"])
        acks[line if line <= 100 else 1000 + line - 100] = o["event_id"]
    after = [o for o in acks if o > 1000]
    t.check(len(after) >= 90, "E: the same producer process got ACKs after the restart (%d of 100)"
            % len(after), b"".join(x for x in errs if x).decode()[-400:])
    for ch in h.channels:
        h.wait_workers(ch, 1, timeout=20)
    t.check(all(w.alive() for w in workers), "E: the workers reconnected by themselves (not restarted)")
    missing = [i for i in list(range(1, 101)) + list(range(1001, 1101)) if i not in acks]
    if missing:
        r = h.publish(file=harness.write_jsonl(os.path.join(h.tmp, "e-again.jsonl"),
                                               (harness.order(i) for i in missing)),
                      json_out=True, timeout=60)
        t.check(r.returncode == 0, "E: the %d orders not ACKed are ACKed when published again"
                % len(missing), r.stderr[-300:])
        for o in harness.parse_json_lines(r.stdout):
            acks[missing[int(o["line"]) - 1]] = o["event_id"]
    t.note("E: %d orders ACKed, %d of them published again (rc %s)" % (len(acks), len(missing), rc))

    # a publish that times out (fsync held), then the same order again
    faultlib.remove(reached)
    faultlib.touch(block)
    r = h.publish(data=harness.order(5000), extra=["--timeout", "500"])
    harness.wait_until(lambda: os.path.exists(reached), 5, "E: fsync held")
    t.check(r.returncode == harness.EX_TEMPFAIL, "E: the held publish times out (exit 75)",
            "exit %d: %s" % (r.returncode, r.stderr))
    faultlib.remove(block)
    r = h.publish(data=harness.order(5000), json_out=True)
    res = harness.parse_json_lines(r.stdout)
    t.check(r.returncode == 0 and res and res[0].get("duplicate") is True,
            "E: publishing the timed-out order again: duplicate ACK (it was stored)", r.stdout + r.stderr)
    if res:
        acks[5000] = res[0]["event_id"]
    ledger = faultlib.Ledger(h)
    ledger.wait_all({o: {e} for o, e in acks.items()}, timeout=60)
    faultlib.wait_idle(h)
    per, _ = ledger.delivered_orders()
    for ch in h.channels:
        split = {o: ids for o, ids in per[ch].items() if len(ids) > 1}
        t.check(not split and len(per[ch]) == len(acks),
                "E: %s: one delivery per order (%d), no duplicate event" % (ch, len(acks)),
                "%d orders delivered, split %s" % (len(per[ch]), list(split.items())[:3]))


SCENARIOS = {"A": scenario_a, "B": scenario_b, "C": scenario_c, "D": scenario_d, "E": scenario_e}


def body(t):
    only = os.environ.get("HERALD_FAULT_SCENARIOS", "ABCDE")
    for name, fn in SCENARIOS.items():
        if name not in only:
            continue
        t.note("---- scenario %s" % name)
        try:
            fn(t)
        except harness.TestFailure as e:
            t.check(False, "scenario %s ran to the end" % name, str(e))
        for h in t.deployments:
            h.kill_all()


if __name__ == "__main__":
    harness.Test("fault_clients", budget=280).run(body)
