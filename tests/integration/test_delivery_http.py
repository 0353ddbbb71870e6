"""test_delivery_http: the inventory channel with the http driver, end to end:
real broker, real herald-worker processes, the real HTTP test server.

Part 1 (one worker; retry max_attempts 3, backoff 50ms..5s, timeout 1s):
  - success: the recorded request is POST /v1/reservations with
    Idempotency-Key = the task id `herald track` shows, X-Api-Key from an
    environment variable, the JSON body of etc/templates/inventory.json;
  - transient failure then success: 500 twice -> delivered on attempt 3,
    track shows done with 3 attempts, the 3 requests share one key;
  - throttling: 429 with Retry-After: 1 -> the next request (this task's and
    another event's: the whole channel pauses) comes >= 1 s later; a second
    task throttled then refused (400) shows "throttled" then "failed" rows;
  - permanent failure: 400 -> dead after 1 attempt, history with the 400 text;
  - exhaustion: 500 forever -> dead after 3 attempts with 3 history rows;
    `herald status` shows retrying (during a Retry-After) and dead counts;
  - `herald dead retry TASK_ID` with the server back to ok -> delivered, same
    Idempotency-Key; `herald dead purge TASK_ID` -> gone from the dead list;
  - a hanging server cut off by the timeout: the attempt ends within bounded
    time with "Timeout" in the error, the next attempt succeeds.
Part 1b: a scheduled retry (429, Retry-After 3) survives kill -9 of the
  broker: the new broker sends it no earlier, on attempt 2.
Part 1c: no body_template: the event's data is the body, as is (PUT).
Part 2: rate "5/s", burst 1, two worker processes, 15 events -> no 1 s
  window holds more than 6 requests, first to last >= 2.6 s.
Part 3: max_in_flight 2, capacity 8, two worker processes, server hanging
  0.5 s per request, 10 events -> never more than 2 requests at once (and 2
  at once is reached), all 10 delivered once.
"""

import json
import os
import time

import deliverylib as dl
import harness
from harness import wait_until

API_KEY = "test-key-7f3a9c"
BACKOFF = "50ms..5s"     # the cap bounds a Retry-After hint; 3 attempts stay under 200ms
PATH = "/v1/reservations"


def by_key(reqs, key):
    return [r for r in reqs if r["headers"].get("idempotency-key") == key]


def part_main(t):
    os.environ["HERALD_TEST_API_KEY"] = API_KEY
    h = t.deployment(channels=("inventory",), driver="http")
    srv = dl.HttpServer(h)
    h.write_config(channels=("inventory",), driver="http", channel_extra={
        "inventory": dl.channel_extra("http", dl.http_settings(srv, timeout="1s"),
                                      max_attempts=3, backoff=BACKOFF)})
    h.start_broker()
    h.start_worker("inventory")
    t.note("http server on %d, broker and inventory worker up" % srv.port)

    # -- success
    o = harness.order(1001)
    eid = dl.publish_one(h, o)
    task = dl.wait_task(h, eid, "inventory", "done")
    tid = task.get("task_id", "")
    reqs = by_key(srv.requests(PATH), tid)
    t.check(task.get("attempts") == 1 and tid.endswith(".inventory"),
            "success: track shows done after 1 attempt", task)
    if t.check(len(reqs) == 1, "success: one request with Idempotency-Key = task id %s" % tid,
               [r["headers"] for r in srv.requests()]):
        r = reqs[0]
        t.check(r["method"] == "POST" and r["path"] == PATH, "success: POST %s" % PATH, (r["method"], r["path"]))
        t.check(r["headers"].get("x-api-key") == API_KEY, "success: X-Api-Key from the environment",
                r["headers"].get("x-api-key"))
        t.check(r["headers"].get("content-type") == "application/json",
                "success: Content-Type application/json", r["headers"].get("content-type"))
        try:
            body = json.loads(r["body"])
        except ValueError:
            body = None
        want = {"order_id": 1001, "event_id": eid, "items": o["items"]}
        t.check(isinstance(body, dict) and {k: body.get(k) for k in want} == want
                and isinstance(body.get("placed_at"), str) and body["placed_at"][:2] == "20",
                "success: JSON body from inventory.json (order_id, event_id, placed_at, items)", r["body"])
        t.check(r["status"] == 200, "success: the server answered 200", r["status"])

    # -- transient failure then success
    srv.control(mode="500", times=2)
    eid = dl.publish_one(h, harness.order(1002))
    task = dl.wait_task(h, eid, "inventory", "done")
    reqs = by_key(srv.requests(PATH), task.get("task_id"))
    t.check(task.get("attempts") == 3, "500 x2: track shows done with 3 attempts", task)
    t.check([r["status"] for r in reqs] == [500, 500, 200],
            "500 x2: 3 requests with the same Idempotency-Key, answered 500, 500, 200",
            [(r["status"], r["headers"].get("idempotency-key")) for r in reqs])
    t.check([r["headers"].get("x-herald-attempt") for r in reqs] == ["1", "2", "3"],
            "500 x2: X-Herald-Attempt 1, 2, 3", [r["headers"].get("x-herald-attempt") for r in reqs])

    # -- throttling: 429 with Retry-After 1 pauses the channel for 1 s
    srv.control(mode="429", retry_after="1", times=1)
    n0 = len(srv.requests(PATH))
    ea = dl.publish_one(h, harness.order(1003))
    # once the broker has the THROTTLED answer, the task waits (retrying) and
    # the channel is paused: an event published now must wait as well
    ta = dl.wait_task(h, ea, "inventory", "retrying", attempts=1)
    t.check("429" in ta.get("last_error", ""), "429: track shows the task retrying with the 429 text", ta)
    c = h.channel_status("inventory")
    t.check(c.get("retrying") == 1 and c.get("in_flight") == 0,
            "429: status shows 1 retrying, 0 in flight during the Retry-After", c)
    eb = dl.publish_one(h, harness.order(1004))        # published during the pause
    ta = dl.wait_task(h, ea, "inventory", "done", timeout=20)
    tb = dl.wait_task(h, eb, "inventory", "done", timeout=20)
    reqs = srv.requests(PATH)[n0:]
    ra, rb = by_key(reqs, ta.get("task_id")), by_key(reqs, tb.get("task_id"))
    t.check([r["status"] for r in ra] == [429, 200] and ta.get("attempts") == 2,
            "429: the task is answered 429 then 200, done after 2 attempts", (ta, [r["status"] for r in ra]))
    if len(ra) == 2 and rb:
        gap = ra[1]["time"] - ra[0]["time"]
        t.check(gap >= 0.95, "429 Retry-After 1: the retry comes >= 1 s later (%.2fs)" % gap, gap)
        t.check(gap < 5, "429 Retry-After 1: and not much later (%.2fs)" % gap, gap)
        gap_b = rb[0]["time"] - ra[0]["time"]
        t.check(len(rb) == 1 and gap_b >= 0.95,
                "429 pauses the channel: another event's request waits too (%.2fs after the 429)" % gap_b,
                [(r["status"], r["time"] - ra[0]["time"]) for r in rb])

    # throttled then refused: the history shows both outcomes
    srv.control(mode="429", retry_after="1", times=1)
    n0 = len(srv.requests(PATH))
    ec = dl.publish_one(h, harness.order(1005))
    srv.wait_requests(n0 + 1, path=PATH)
    srv.control(mode="400", times=1)                    # the retry, >= 1 s later, gets 400
    tc = dl.wait_task(h, ec, "inventory", "dead", timeout=20)
    shown = dl.dead_show(h, tc["task_id"])
    hist = shown.get("history", [])
    t.check([(r.get("attempt"), r.get("outcome", "").lower()) for r in hist] == [(1, "throttled"), (2, "failed")],
            "429 then 400: dead show history rows throttled, failed", hist)
    t.check(len(hist) == 2 and "429" in hist[0].get("error", "") and "400" in hist[1].get("error", ""),
            "429 then 400: the rows carry the HTTP 429 and 400 texts", hist)

    # -- permanent failure
    srv.control(mode="400", times=1)
    eid = dl.publish_one(h, harness.order(1006))
    perm = dl.wait_task(h, eid, "inventory", "dead")
    t.check(perm.get("attempts") == 1, "400: dead after 1 attempt", perm)
    shown = dl.dead_show(h, perm["task_id"])
    hist = shown.get("history", [])
    t.check(len(hist) == 1 and hist[0].get("attempt") == 1 and hist[0].get("outcome", "").lower() == "failed"
            and "HTTP 400" in hist[0].get("error", "") and "simulated status 400" in hist[0].get("error", ""),
            "400: dead show has 1 FAILED row with the HTTP 400 text", hist)
    t.check(shown.get("event_id") == eid and shown.get("channel") == "inventory",
            "400: dead show names the event and channel", shown)
    t.check(len(by_key(srv.requests(PATH), perm["task_id"])) == 1, "400: the server saw exactly 1 request")

    # -- exhaustion, seen retrying in status before dead
    srv.control(mode="500")
    eid = dl.publish_one(h, harness.order(1007))
    ex = dl.wait_task(h, eid, "inventory", "dead")
    t.check(ex.get("attempts") == 3, "500 forever: dead after max_attempts=3", ex)
    shown = dl.dead_show(h, ex["task_id"])
    hist = shown.get("history", [])
    t.check([r.get("attempt") for r in hist] == [1, 2, 3]
            and all(r.get("outcome", "").lower() == "retry" and "HTTP 500" in r.get("error", "") for r in hist),
            "500 forever: 3 history rows, RETRY with HTTP 500", hist)
    ex_reqs = by_key(srv.requests(PATH), ex["task_id"])
    t.check(len(ex_reqs) == 3, "500 forever: the server saw exactly 3 requests", len(ex_reqs))
    st = dl.wait_status(h, "inventory", dead=3, done=4, retrying=0, in_flight=0, pending=0)
    t.check(True, "status inventory: done 4, dead 3 (429+400, 400, 500 x3) %s" % st)
    dead = sorted(d.get("task_id") for d in dl.dead_list(h, "inventory"))
    t.check(dead == sorted([tc["task_id"], perm["task_id"], ex["task_id"]]),
            "dead list --channel inventory: the 3 dead tasks", dead)

    # -- dead retry with the server back to ok -> delivered, same key
    srv.control(mode="ok")
    r = dl.dead_cmd(h, "retry", ex["task_id"])
    t.check(r.returncode == 0, "herald dead retry TASK_ID exits 0", r.stdout + r.stderr)
    done = dl.wait_task(h, eid, "inventory", "done")
    ex_reqs = by_key(srv.requests(PATH), ex["task_id"])
    t.check(len(ex_reqs) == 4 and ex_reqs[-1]["status"] == 200,
            "dead retry: delivered with the same Idempotency-Key %s" % ex["task_id"],
            [(x["status"], x["headers"].get("idempotency-key")) for x in ex_reqs])
    t.check(json.loads(ex_reqs[-1]["body"]) == json.loads(ex_reqs[0]["body"]),
            "dead retry: the same body as the first attempt")
    t.note("after dead retry: track %s" % done)

    # -- dead purge
    r = dl.dead_cmd(h, "purge", perm["task_id"])
    t.check(r.returncode == 0, "herald dead purge TASK_ID exits 0", r.stdout + r.stderr)
    dead = sorted(d.get("task_id") for d in dl.dead_list(h, "inventory"))
    t.check(dead == [tc["task_id"]], "after retry and purge: only the 429+400 task is dead", dead)
    r = h.herald("dead", "show", perm["task_id"], "-c", h.config, "--json", config=False)
    t.check(r.returncode == harness.EX_DATAERR, "dead show of a purged task: exit 65 (not found)",
            (r.returncode, r.stdout, r.stderr))
    st = dl.wait_status(h, "inventory", dead=1, done=5, retrying=0, in_flight=0, pending=0)
    t.check(True, "status inventory after retry and purge: done 5, dead 1 %s" % st)

    # -- a redirect is not followed (follow_redirects defaults to false): FAILED
    srv.control(mode="redirect", times=1)
    eid = dl.publish_one(h, harness.order(1010))
    red = dl.wait_task(h, eid, "inventory", "dead")
    t.check(red.get("attempts") == 1 and "302" in red.get("last_error", "")
            and "not followed" in red.get("last_error", ""),
            "302: dead after 1 attempt, redirect not followed", red)
    t.check(srv.requests("/redirected") == [], "302: the redirect target was never requested")

    # -- 503 with Retry-After is throttling, 503 without it a plain retry
    srv.control(mode="503", retry_after="1", times=1)
    eid = dl.publish_one(h, harness.order(1011))
    thr = dl.wait_task(h, eid, "inventory", "retrying", attempts=1)
    t.check("503" in thr.get("last_error", ""), "503 + Retry-After: retrying with the 503 text", thr)
    thr = dl.wait_task(h, eid, "inventory", "done", timeout=15)
    reqs = by_key(srv.requests(PATH), thr.get("task_id"))
    t.check(len(reqs) == 2 and reqs[1]["time"] - reqs[0]["time"] >= 0.95,
            "503 + Retry-After 1: retried >= 1 s later, then done",
            [(r["status"], r["time"] - reqs[0]["time"]) for r in reqs])
    srv.control(mode="503", retry_after=None, times=1)
    eid = dl.publish_one(h, harness.order(1012))
    plain = dl.wait_task(h, eid, "inventory", "done")
    reqs = by_key(srv.requests(PATH), plain.get("task_id"))
    t.check([r["status"] for r in reqs] == [503, 200] and plain.get("attempts") == 2,
            "503 without Retry-After: retried (done on attempt 2)", [r["status"] for r in reqs])

    # -- dead retry --channel: every dead task of the channel, same keys
    dead = sorted(d.get("task_id") for d in dl.dead_list(h, "inventory"))
    t.check(dead == sorted([tc["task_id"], red["task_id"]]),
            "dead list: the 429+400 and the 302 tasks", dead)
    srv.control(mode="ok")
    # the 302 task would fail again the same way: purge it first, retry the rest
    r = dl.dead_cmd(h, "purge", red["task_id"])
    t.check(r.returncode == 0, "dead purge of the 302 task exits 0", r.stdout + r.stderr)
    r = dl.dead_cmd(h, "retry", "--channel", "inventory")
    t.check(r.returncode == 0, "herald dead retry --channel inventory exits 0", r.stdout + r.stderr)
    again = dl.wait_task(h, ec, "inventory", "done")
    reqs = by_key(srv.requests(PATH), tc["task_id"])
    t.check(again.get("task_id") == tc["task_id"] and [r["status"] for r in reqs] == [429, 400, 200],
            "dead retry --channel: the 429+400 task delivered under the same key",
            [r["status"] for r in reqs])
    st = dl.wait_status(h, "inventory", dead=0, done=8, retrying=0, in_flight=0, pending=0)
    t.check(True, "status inventory: done 8, dead 0 %s" % st)
    t.check(dl.dead_list(h) == [], "dead list: empty")

    # -- a hanging server cut off by the 1 s timeout
    srv.control(mode="hang", hang_seconds=30, times=1)
    n0 = len(srv.requests(PATH))
    eid = dl.publish_one(h, harness.order(1008))
    srv.wait_requests(n0 + 1, path=PATH)
    started = time.monotonic()
    def attempt_ended():
        x = dl.task_of(h, eid, "inventory")
        return x if x.get("last_error") or x.get("state") == "done" else None
    task = wait_until(attempt_ended, 10, "the hung attempt to end")
    ended = time.monotonic() - started
    t.check(ended < 4, "hang: the attempt ended within bounded time (%.2fs after the request)" % ended)
    done = dl.wait_task(h, eid, "inventory", "done", timeout=15)
    reqs = by_key(srv.requests(PATH), done.get("task_id"))
    t.check(done.get("attempts") == 2 and len(reqs) == 2,
            "hang: done on attempt 2 after the server is back to ok", (done, len(reqs)))
    if len(reqs) == 2:
        gap = reqs[1]["time"] - reqs[0]["time"]
        t.check(0.9 <= gap < 3.5, "hang: the retry came %.2fs after the hung request (timeout 1s)" % gap, gap)
    # the broker's last_error (track) and the worker's log line for attempt 1
    tracked = task.get("last_error") or done.get("last_error") or ""
    t.check(tracked == "" or "Timeout" in tracked, "hang: track's last_error says Timeout", (task, done))
    logged = [l for p in h.procs if p.name == "worker-inventory" for l in open(p.log, errors="replace")
              if done.get("task_id", "?") in l and "attempt=1 " in l and "outcome=retry" in l]
    t.check(len(logged) == 1 and "Timeout" in logged[0],
            "hang: the worker reported attempt 1 as RETRY with a Timeout error", logged)
    t.note("hang error: %s" % (tracked or logged))
    srv.stop()


def part_rate(t):
    h = t.deployment(channels=("inventory",), driver="http")
    srv = dl.HttpServer(h, name="http-rate")
    h.write_config(channels=("inventory",), driver="http", workers={"inventory": 2}, channel_extra={
        "inventory": dl.channel_extra("http", dl.http_settings(srv), max_attempts=3, backoff=BACKOFF,
                                      rate="5/s", burst=1)})
    h.start_broker()
    h.start_workers({"inventory": 2})
    t.note("rate 5/s burst 1: http server on %d, 2 workers up" % srv.port)
    ids = dl.publish_many(h, [harness.order(2000 + i) for i in range(15)])
    wait_until(lambda: h.channel_status("inventory").get("done") == 15, 30,
               lambda: "15 done: %s" % h.channel_status("inventory"))
    reqs = srv.requests(PATH)
    times = sorted(r["time"] for r in reqs)
    t.check(len(reqs) == 15 and len({r["headers"].get("idempotency-key") for r in reqs}) == 15,
            "rate: 15 requests, 15 distinct keys", len(reqs))
    worst = max(sum(1 for x in times if s <= x < s + 1.0) for s in times) if times else 0
    t.check(worst <= 6, "rate 5/s burst 1: at most 6 requests in any 1 s window (max %d)" % worst, worst)
    span = times[-1] - times[0] if times else 0
    t.check(span >= 2.6, "rate 5/s burst 1: 15 requests take >= 2.6 s (%.2fs)" % span, span)
    gaps = [b - a for a, b in zip(times, times[1:])]
    t.note("rate: span %.2fs, min gap %.3fs, max per 1 s window %d" % (span, min(gaps) if gaps else 0, worst))
    logs = [p for p in h.procs if p.name == "worker-inventory"]
    t.check(len(logs) == 2 and all(p.alive() for p in logs), "rate: both workers still running")
    srv.stop()


def part_in_flight(t):
    h = t.deployment(channels=("inventory",), driver="http")
    srv = dl.HttpServer(h, name="http-window", mode="hang")
    srv.control(mode="hang", hang_seconds=0.5)
    h.write_config(channels=("inventory",), driver="http", workers={"inventory": 2}, channel_extra={
        "inventory": dl.channel_extra("http", dl.http_settings(srv, timeout="5s"), max_attempts=3,
                                      backoff=BACKOFF, max_in_flight=2, capacity=8)})
    h.start_broker()
    h.start_workers({"inventory": 2})
    t.note("max_in_flight 2, capacity 8: http server on %d (hang 0.5s), 2 workers up" % srv.port)
    peak = {"in_flight": 0}

    def all_done():
        c = h.channel_status("inventory")
        peak["in_flight"] = max(peak["in_flight"], c.get("in_flight", 0))
        return c.get("done") == 10 and c
    dl.publish_many(h, [harness.order(3000 + i) for i in range(10)])
    wait_until(all_done, 30, lambda: "10 done: %s" % h.channel_status("inventory"), interval=0.05)
    reqs = srv.requests(PATH)
    active = [r["active"] for r in reqs]
    t.check(len(reqs) == 10 and len({r["headers"].get("idempotency-key") for r in reqs}) == 10,
            "max_in_flight: 10 requests, one per task", len(reqs))
    t.check(max(active or [0]) <= 2, "max_in_flight 2: the server never saw more than 2 at once", active)
    t.check(max(active or [0]) == 2, "max_in_flight 2: and did see 2 at once (both slots used)", active)
    t.check(peak["in_flight"] <= 2, "max_in_flight 2: status in_flight never above 2 (peak %d)"
            % peak["in_flight"])
    times = sorted(r["time"] for r in reqs)
    span = times[-1] - times[0] if times else 0
    t.check(span >= 1.9, "max_in_flight 2: 10 requests of 0.5 s, two at a time, span >= 2 s (%.2fs)" % span)
    srv.stop()


def part_restart(t):
    """A scheduled retry is durable: 429 with Retry-After 3, kill -9 of the
    broker while the task waits, a new broker: the task is still waiting,
    is not sent before the 3 s are over, then is delivered on attempt 2."""
    h = t.deployment(channels=("inventory",), driver="http")
    srv = dl.HttpServer(h, name="http-restart")
    h.write_config(channels=("inventory",), driver="http", channel_extra={
        "inventory": dl.channel_extra("http", dl.http_settings(srv), max_attempts=3, backoff=BACKOFF)})
    broker = h.start_broker()
    h.start_worker("inventory")
    srv.control(mode="429", retry_after="3", times=1)
    eid = dl.publish_one(h, harness.order(4001))
    task = dl.wait_task(h, eid, "inventory", "retrying", attempts=1)
    h.kill(broker)
    t.note("broker killed (-9) while the throttled task waits")
    h.start_broker()
    h.wait_workers("inventory", 1)
    first = srv.requests(PATH)[0]["time"]
    after = dl.task_of(h, eid, "inventory")
    if time.time() - first < 2.5:
        t.check(after.get("state") == "retrying" and after.get("attempts") == 1,
                "restart: the task is still retrying after 1 attempt", after)
    done = dl.wait_task(h, eid, "inventory", "done", timeout=20)
    reqs = by_key(srv.requests(PATH), task["task_id"])
    t.check([r["status"] for r in reqs] == [429, 200] and done.get("attempts") == 2,
            "restart: delivered on attempt 2, one request per attempt", ([r["status"] for r in reqs], done))
    if len(reqs) == 2:
        gap = reqs[1]["time"] - reqs[0]["time"]
        t.check(gap >= 2.95, "restart: Retry-After 3 still honoured by the new broker (%.2fs)" % gap, gap)
    srv.stop()


def part_data_as_is(t):
    """No body_template: the event's data is sent as is (PUT, literal header)."""
    h = t.deployment(channels=("courier",), driver="http")
    srv = dl.HttpServer(h, name="http-courier")
    settings = dl.http_settings(srv, body_template=None, method="PUT",
                                headers={"X-Shop": "shop-42"})
    settings["url"] = srv.url("/v2/bookings")
    h.write_config(channels=("courier",), driver="http", channel_extra={
        "courier": dl.channel_extra("http", settings, max_attempts=3, backoff=BACKOFF)})
    h.start_broker()
    h.start_worker("courier")
    o = harness.order(5001)
    o["customer"]["name"] = 'Quote " Backslash \\ Zoë'
    eid = dl.publish_one(h, o)
    task = dl.wait_task(h, eid, "courier", "done")
    reqs = by_key(srv.requests("/v2/bookings"), task.get("task_id"))
    if t.check(len(reqs) == 1, "data as is: one request", len(reqs)):
        r = reqs[0]
        t.check(r["method"] == "PUT" and r["headers"].get("x-shop") == "shop-42",
                "data as is: PUT with the literal header", (r["method"], r["headers"]))
        t.check(r["headers"].get("content-type") == "application/json",
                "data as is: Content-Type application/json by default", r["headers"].get("content-type"))
        try:
            got = json.loads(r["body"])
        except ValueError:
            got = None
        t.check(got == o, "data as is: the body is the event's data, exactly", r["body"][:500])
    srv.stop()


def body(t):
    part_main(t)
    part_data_as_is(t)
    part_restart(t)
    part_rate(t)
    part_in_flight(t)


if __name__ == "__main__":
    harness.Test("delivery_http", budget=150).run(body)
