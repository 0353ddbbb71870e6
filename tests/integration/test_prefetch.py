"""test_prefetch: channels.*.prefetch with real processes: the broker, one
real herald-worker (http driver), the real HTTP test server, metrics read
from the broker's /metrics.

Part 1 (capacity 2, prefetch 6, lease 2s, the server holding each request
0.4 s, 24 orders): the worker holds up to 8 tasks and runs 2 at once. A
held task waits 3 x 0.4 s = 1.2 s behind the two running ones before it
could start, past half its lease (1 s): it goes back to the broker
unstarted. So:
  - the server never sees more than 2 requests at once (and does see 2);
  - every task is requested exactly once (no lease ran out, none started
    twice) and carries X-Herald-Attempt 1 (a release spends no attempt);
  - all 24 are done; /metrics counts released > 0 and lease_expired 0;
  - the worker logs "tasks given back unstarted".
Part 2 (capacity 1, prefetch 4, 5 orders pending when the worker comes, so
they reach it in one batch; the first request answered 429 Retry-After 2):
the 4 held tasks are given back at once, so
nothing reaches the server during the 2 s pause; then all 5 are done,
released >= 4 on /metrics, the throttled task requested twice, the others
once.
"""

import os

import deliverylib as dl
import harness
import httptest
from harness import wait_until

API_KEY = "test-key-prefetch"
PATH = "/v1/reservations"
HOLD = 0.4


def deliveries(h, channel):
    """{outcome: count} of herald_deliveries_total for channel."""
    s = httptest.samples(h.metrics())
    prefix = 'herald_deliveries_total{channel="%s",outcome="' % channel
    return {k[len(prefix):-2]: v for k, v in s.items() if k.startswith(prefix)}


def deployment(t, name, worker=True, **channel):
    h = httptest.HttpHerald(name, channels=("inventory",), driver="http")
    t.deployments.append(h)
    srv = dl.HttpServer(h, name="http-" + name, mode="hang")
    srv.control(mode="hang", hang_seconds=HOLD)
    h.write_config(channels=("inventory",), driver="http", channel_extra={
        "inventory": dl.channel_extra("http", dl.http_settings(srv, timeout="5s"), max_attempts=3,
                                      backoff="50ms..5s", **channel)})
    h.start_broker()
    return h, srv, h.start_worker("inventory") if worker else None


def part_held_past_half_the_lease(t):
    h, srv, worker = deployment(t, "lease", capacity=2, prefetch=6, lease="2s")
    t.note("capacity 2, prefetch 6, lease 2s; the server holds each request %.1f s" % HOLD)
    n = 24
    dl.publish_many(h, [harness.order(7000 + i) for i in range(n)])
    wait_until(lambda: h.channel_status("inventory").get("done") == n, 60,
               lambda: "%d done: %s" % (n, h.channel_status("inventory")), interval=0.1)
    reqs = srv.requests(PATH)
    keys = [r["headers"].get("idempotency-key") for r in reqs]
    active = [r["active"] for r in reqs]
    t.check(len(reqs) == n and len(set(keys)) == n,
            "each of the %d tasks requested exactly once (got %d requests, %d keys)" % (n, len(reqs), len(set(keys))))
    t.check(max(active or [0]) <= 2, "capacity 2: the server never saw more than 2 at once", active)
    t.check(max(active or [0]) == 2, "and did see 2 at once", active)
    attempts = sorted({r["headers"].get("x-herald-attempt") for r in reqs})
    t.check(attempts == ["1"], "every request is attempt 1: a release spends no attempt", attempts)
    d = deliveries(h, "inventory")
    t.check(d.get("done") == n and d.get("lease_expired") == 0 and d.get("retry") == 0,
            "metrics: %d done, no lease expired, no retry" % n, d)
    t.check(d.get("released", 0) > 0, "metrics: tasks held past half the lease were released (%s)"
            % d.get("released"), d)
    with open(worker.log, errors="replace") as f:
        log = f.read()
    t.check("tasks given back unstarted" in log and "prefetch" in log,
            "the worker logs the release and names channels.NAME.prefetch", harness.tail(worker.log))
    t.note("released %d times for %d tasks" % (d.get("released", 0), n))
    srv.stop()


def part_throttled(t):
    h, srv, _ = deployment(t, "throttle", worker=False, capacity=1, prefetch=4)
    srv.control(mode="429", retry_after="2", times=1)
    t.note("capacity 1, prefetch 4; the first request gets 429 Retry-After 2")
    # published before the worker comes: its READY gets all 5 in one TASKS
    # message, so 4 are held when the first one is throttled
    dl.publish_many(h, [harness.order(8000 + i) for i in range(5)])
    wait_until(lambda: h.channel_status("inventory").get("pending") == 5, 10,
               lambda: "5 pending: %s" % h.channel_status("inventory"))
    h.start_worker("inventory")
    wait_until(lambda: h.channel_status("inventory").get("done") == 5, 30,
               lambda: "5 done: %s" % h.channel_status("inventory"), interval=0.1)
    reqs = sorted(srv.requests(PATH), key=lambda r: r["time"])
    t.check(reqs and reqs[0]["status"] == 429, "the first request was answered 429",
            [(r["status"], r["time"]) for r in reqs])
    if reqs:
        gap = reqs[1]["time"] - reqs[0]["time"] if len(reqs) > 1 else 0
        t.check(gap >= 1.9, "nothing reached the server during the 2 s pause (next request %.2f s later)" % gap,
                [(r["status"], round(r["time"] - reqs[0]["time"], 3)) for r in reqs])
        keys = [r["headers"].get("idempotency-key") for r in reqs]
        counts = sorted(keys.count(k) for k in set(keys))
        t.check(len(reqs) == 6 and counts == [1, 1, 1, 1, 2],
                "6 requests: the throttled task twice, the 4 others once", counts)
    d = deliveries(h, "inventory")
    t.check(d.get("released", 0) >= 4 and d.get("throttled") == 1 and d.get("done") == 5,
            "metrics: the 4 held tasks released, 1 throttled, 5 done", d)
    srv.stop()


def body(t):
    os.environ["HERALD_TEST_API_KEY"] = API_KEY
    part_held_past_half_the_lease(t)
    part_throttled(t)


if __name__ == "__main__":
    harness.Test("prefetch", budget=120).run(body)
