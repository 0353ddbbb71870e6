"""test_fault_clock: leases, heartbeats and retries run on a monotonic clock;
a wall-clock jump changes no behaviour.

The system clock is not touched: the broker and the workers run under the
fault library with HERALD_FAULT_CLOCK_OFFSET_FILE, which shifts
CLOCK_REALTIME (clock_gettime, gettimeofday, time) by the seconds written
in that file, re-read as it changes. CLOCK_MONOTONIC is left alone. The
test's own clock (and the http test server's) is the real one.

  1. heartbeats and deliveries: with workers up and events flowing, the
     wall clock jumps +3 h, -3 h, +1 day, back to 0: no worker is declared
     lost, no task is retried, every event is delivered; a worker SIGKILLed
     while the clock is +3 h is declared lost after about the heartbeat
     silence limit (not at once, not never), and one started while the
     clock is -3 h registers and works;
  2. retries: an http channel whose server answers 503 with Retry-After: 2
     once; right after that first answer the wall clock jumps +2 h (then,
     for a second event, -2 h): the second request comes 2 s later (not at
     once, not hours later), and the lease (5 s) of a request that hangs 2 s
     across a jump does not expire;
  3. restart: a task waiting for its retry (Retry-After: 3) when the broker
     is SIGKILLed, restarted with the wall clock 2 h behind: the retry
     still happens within seconds, not 2 hours later."""

import json
import os
import signal
import time
import urllib.request

import faultlib
import harness

HOUR = 3600.0


def set_offset(path, seconds):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%f\n" % seconds)
    os.replace(tmp, path)
    time.sleep(0.05)            # the library re-reads the file every 10 ms


class HttpServer:
    def __init__(self, h):
        port_file = os.path.join(h.tmp, "http.port")
        server = os.path.join(harness.SOURCE_DIR, "tests", "servers", "http_server.py")
        self.proc = h.spawn("http-server", ["/usr/bin/python3", server, "--port-file", port_file])
        harness.wait_until(lambda: os.path.exists(port_file), 10, "the http server's port")
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def control(self, **spec):
        req = urllib.request.Request(self.url + "/_control", data=json.dumps(spec).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def requests(self):
        with urllib.request.urlopen(self.url + "/_requests", timeout=5) as r:
            return [q for q in json.loads(r.read()) if q["path"] == "/hook"]


def part1(t):
    h = t.deployment()
    offset = os.path.join(h.tmp, "clock.offset")
    set_offset(offset, 0)
    env = faultlib.preload_env(clock_offset_file=offset)
    broker = faultlib.start_broker(h, env=env)
    workers = {ch: faultlib.start_worker(h, ch, env=env) for ch in h.channels}
    for ch in h.channels:
        h.wait_workers(ch, 1)
    next_order = 1
    for shift in (3 * HOUR, -3 * HOUR, 24 * HOUR, 0):
        set_offset(offset, shift)
        path = harness.write_jsonl(os.path.join(h.tmp, "p1.jsonl"),
                                   (harness.order(i) for i in range(next_order, next_order + 200)))
        r = h.publish(file=path, timeout=60)
        t.check(r.returncode == 0, "1: 200 events published with the wall clock at %+.0f h" % (shift / HOUR),
                r.stderr[-300:])
        next_order += 200
        time.sleep(1.0)         # several heartbeat periods (200 ms) at this offset
        st = h.status()
        t.check(all(h._channel(st, ch).get("workers") == 1 for ch in h.channels),
                "1: every worker still counted at %+.0f h" % (shift / HOUR), st)
    h.wait_counts(next_order - 1, timeout=60, what="1: every event delivered across the jumps")
    faultlib.wait_idle(h)
    t.check(not faultlib.log_lines(broker, "worker lost"), "1: no worker declared lost by the jumps",
            "\n".join(faultlib.log_lines(broker, "worker lost")[:5]))
    t.check(not faultlib.log_lines(broker, "task will retry"), "1: no task retried because of the jumps",
            "\n".join(faultlib.log_lines(broker, "task will retry")[:5]))

    # a worker killed while the clock is ahead, one started while it is behind
    set_offset(offset, 3 * HOUR)
    killed_at = time.monotonic()
    h.kill(workers["email"], signal.SIGKILL)
    harness.wait_until(lambda: faultlib.log_lines(broker, "worker lost"), 10,
                       "1: the killed worker declared lost")
    lost_after = time.monotonic() - killed_at
    limit = 0.2 * 3             # heartbeat 200ms x liveness 3; the last beat came <= 200ms before the kill
    t.check(limit - 0.25 <= lost_after <= limit + 2.0,
            "1: the killed worker is declared lost after the heartbeat silence limit "
            "(%.2fs; limit %.1fs)" % (lost_after, limit))
    set_offset(offset, -3 * HOUR)
    faultlib.start_worker(h, "email", env=env)
    h.wait_workers("email", 1)
    r = h.publish(data=harness.order(next_order))
    t.check(r.returncode == 0, "1: publish at -3 h")
    h.wait_counts(next_order, timeout=30, what="1: delivery by the worker started at -3 h")
    t.check(broker.alive(), "1: the broker is up")


def part23(t):
    h0 = t.deployment(channels=("hook",))
    server = HttpServer(h0)
    http = '{ url: "%s/hook", timeout: 10s }' % server.url
    h0.write_config(channels=("hook",), driver="http",
                    channel_extra={"hook": {"lease": "5s", "retry": "{ max_attempts: 10, backoff: 1s..5s }",
                                            "http": http}})
    h = h0
    offset = os.path.join(h.tmp, "clock.offset")
    set_offset(offset, 0)
    env = faultlib.preload_env(clock_offset_file=offset)
    broker = faultlib.start_broker(h, env=env)
    faultlib.start_worker(h, "hook", env=env)
    h.wait_workers("hook", 1)

    # -- 2. retries and leases across jumps
    for n, shift in enumerate((2 * HOUR, -2 * HOUR)):
        set_offset(offset, 0)
        before = len(server.requests())
        server.control(mode="503", retry_after="2", times=1)
        r = h.publish(data=harness.order(7000 + n))
        t.require(r.returncode == 0, "2: event published", r.stderr)
        harness.wait_until(lambda: len(server.requests()) >= before + 1, 10, "2: the first request")
        set_offset(offset, shift)
        harness.wait_until(lambda: len(server.requests()) >= before + 2, 20,
                           "2: the retry (Retry-After: 2) with the clock at %+.0f h" % (shift / HOUR))
        reqs = server.requests()
        gap = reqs[before + 1]["time"] - reqs[before]["time"]
        t.check(1.5 <= gap <= 4.5, "2: the retry came %.1fs after the 503 with Retry-After: 2, "
                "the wall clock jumped %+.0f h in between" % (gap, shift / HOUR))
        harness.wait_until(lambda: h.channel_status("hook").get("done") == n + 1, 10, "2: task done")
    set_offset(offset, 0)
    server.control(mode="hang", hang_seconds=2, times=1)
    r = h.publish(data=harness.order(7100))
    before = len(server.requests())
    harness.wait_until(lambda: len(server.requests()) >= before + 0 and
                       h.channel_status("hook").get("in_flight") == 1, 10, "2: a hanging request")
    set_offset(offset, 6 * HOUR)
    harness.wait_until(lambda: h.channel_status("hook").get("done") == 3, 15, "2: the hanging task done")
    t.check(not faultlib.log_lines(broker, "lease-expired"),
            "2: the 5 s lease did not expire across a +6 h jump (request of 2 s)",
            "\n".join(faultlib.log_lines(broker, "lease-expired")[:3]))

    # -- 3. restart with the clock behind, a retry pending
    set_offset(offset, 0)
    server.control(mode="503", retry_after="3", times=1)
    before = len(server.requests())
    r = h.publish(data=harness.order(7200))
    harness.wait_until(lambda: len(server.requests()) >= before + 1, 10, "3: the first request")
    harness.wait_until(lambda: faultlib.log_lines(broker, "task will retry", "delay_ms=3000"), 10,
                       "3: the retry recorded (3 s)")
    h.kill(broker, signal.SIGKILL)
    set_offset(offset, -2 * HOUR)
    t0 = time.monotonic()
    broker = faultlib.start_broker(h, env=env)
    try:
        harness.wait_until(lambda: len(server.requests()) >= before + 2, 20,
                           "3: the retry after the restart")
        t.check(True, "3: restarted with the wall clock 2 h behind, the pending retry still "
                "happens within seconds (%.1fs)" % (time.monotonic() - t0))
    except harness.TestFailure:
        st = h.channel_status("hook")
        t.check(False, "3: restarted with the wall clock 2 h behind, the pending retry still "
                "happens within seconds", "no retry after 20 s; status %s" % st)


def body(t):
    t.note("---- part 1: heartbeats, deliveries, worker down/up")
    part1(t)
    for h in t.deployments:
        h.kill_all()
    t.note("---- parts 2 and 3: retries, leases, restart")
    part23(t)


if __name__ == "__main__":
    harness.Test("fault_clock", budget=200).run(body)
