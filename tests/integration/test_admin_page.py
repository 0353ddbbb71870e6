"""test_admin_page: the admin page (/admin) in a real browser: Debian's chromium,
headless, driven through its DevTools protocol (browser.py), against a real
broker with security.tokens_file, a real herald-worker on the inventory
channel (the http driver) and the repo's test HTTP server, which answers 400
(with a body full of markup) until told to answer 200. Everything below is
done through the page: DOM queries, real clicks and typing; the CLI only
publishes orders and revokes a token.

  - /admin without a session goes to the login form; an admin_operate token
    typed there logs in: a herald_session cookie, HttpOnly (the page's
    script cannot read it), SameSite=Strict, Path=/admin;
  - the dashboard shows the channel's counts (1 done, 0 dead, 1 worker);
  - an order whose data holds <script> and quotes fails downstream (400 with
    a <script> body): the dashboard's own refresh (no reload) shows dead 1
    and computes a delivery rate;
  - Dead letters lists it, its error shown as text; its page shows the
    attempt history (failed, with the 400) and the event, as text;
  - with the server answering 200 again, Retry on that page: the track shows
    the event, and the dashboard shows it delivered (dead 0, done +1);
  - a POST without the CSRF token (from the page's own origin, with its
    cookie) gets 403;
  - Log out, then an admin_read token: no retry or purge button, and a
    forged retry POST carrying this session's own CSRF token gets 403;
  - `herald token revoke` of that token: the next page goes to the login
    form (its session ended at once);
  - all along: no JavaScript dialog ever opened (the <script> values are
    inert), no request left 127.0.0.1:PORT, no Content-Security-Policy
    violation, and Chromium started in a few seconds.
"""

import json
import os

import browser
import deliverylib as dl
import harness
import httptest

SCRIPT_NAME = "<script>alert(\"name\")</script> O'Brien \"quoted\""
SCRIPT_NOTE = "\"'><img src=x onerror=alert('img')></pre><script>alert('note')</script>"
SERVER_BODY = "<script>alert(\"downstream\")</script> refused: 'bad' \"order\""
STARTUP_LIMIT = 10.0            # seconds for Chromium to start and answer on its DevTools socket


def hostile_order(order_id):
    o = harness.order(order_id)
    o["customer"]["name"] = SCRIPT_NAME
    o["note"] = SCRIPT_NOTE
    return o


def body(t):
    h = httptest.HttpHerald("admin-page", tokens=True, channels=("inventory",), driver="http")
    t.deployments.append(h)
    srv = dl.HttpServer(h)
    h.write_config(channels=("inventory",), driver="http", channel_extra={
        "inventory": dl.channel_extra("http", dl.http_settings(srv, headers={"Content-Type": "application/json"}),
                                      max_attempts=2, backoff="50ms..200ms")})
    ops = h.token("ops", "admin_operate")
    dash = h.token("dash", "admin_read")
    h.start_broker()
    h.start_worker("inventory")
    base = "http://127.0.0.1:%d" % h.port
    first = dl.publish_one(h, harness.order(1))
    dl.wait_task(h, first, "inventory", "done")
    t.note("broker (tokens), inventory worker (http driver), test server on %d; one order delivered" % srv.port)

    b = browser.Browser(h)
    t.note("chromium started in %.2fs" % b.startup_seconds)
    t.check(b.startup_seconds < STARTUP_LIMIT, "chromium starts in under %.0fs (%.2fs)"
            % (STARTUP_LIMIT, b.startup_seconds))

    # -- login
    b.goto(base + "/admin")
    b.wait_js("location.pathname === '/admin/login' && !!document.querySelector('#token')", 10,
              "the login form")
    t.check(True, "/admin without a session: the login form")
    b.type_into("#token", ops)
    b.click("#login button[type=submit]")
    b.wait_js("location.pathname === '/admin' && !!document.querySelector('#dashboard')", 10, "the dashboard")
    t.check("ops (admin_operate)" in (b.text(".who") or ""), "logged in with the admin_operate token",
            b.text(".who"))
    cookies = [c for c in b.cookies() if c.get("name") == "herald_session"]
    t.check(len(cookies) == 1 and cookies[0].get("httpOnly") and cookies[0].get("sameSite") == "Strict"
            and cookies[0].get("path") == "/admin" and ops not in cookies[0].get("value", ""),
            "the session cookie: HttpOnly, SameSite=Strict, Path=/admin, not the token", cookies)
    t.check("herald_session" not in b.js("document.cookie"), "the page's script cannot read the session cookie")

    # -- dashboard counts
    cell = "(document.querySelector('[data-k=\"ch.inventory.%s\"]') || {}).textContent"
    counts = b.wait_js("%s === '1' && %s === '0' && %s === '1' && [%s, %s, %s]"
                       % (cell % "done", cell % "dead", cell % "workers", cell % "done", cell % "dead",
                          cell % "workers"), 10, "the dashboard's counts")
    t.check(counts == ["1", "0", "1"], "dashboard: inventory done 1, dead 0, workers 1", counts)

    # -- a failing order, seen by the dashboard's refresh
    srv.control(mode="400", body=SERVER_BODY)
    failing = dl.publish_one(h, hostile_order(2))
    b.wait_js("%s === '1'" % (cell % "dead"), 15, "the dashboard's refresh to show the dead task")
    t.check(True, "dashboard refresh (no reload): inventory dead 1")
    rate = b.text("[data-k=\"rate.delivery\"]")
    t.check(rate not in (None, "-"), "dashboard: a delivery rate computed between two samples", rate)

    # -- dead letters: list, then the task's page
    b.click("nav a[href=\"/admin/dead\"]")
    b.wait_js("location.pathname === '/admin/dead' && document.querySelectorAll('#dead tbody tr').length === 1",
              10, "the dead letters list with one task")
    row_error = b.text("#dead tbody tr td.error") or ""
    t.check(SERVER_BODY in row_error, "dead list: the task, its last error shown as text", row_error)
    t.check(b.count("main script, main img") == 0, "dead list: the error's markup is not markup")
    b.click("#dead a.task")
    b.wait_js("location.pathname.indexOf('/admin/dead/') === 0 && !!document.querySelector('#history')", 10,
              "the dead task's page")
    task_id = b.text("#task-id")
    history = b.js("Array.prototype.map.call(document.querySelectorAll('#history tbody tr'),"
                   " function (r) { return Array.prototype.map.call(r.cells, function (c) { return c.textContent; }); })")
    t.check(task_id and task_id.endswith(".inventory") and len(history or []) == 1 and history[0][2] == "failed"
            and "HTTP 400" in history[0][3] and SERVER_BODY in history[0][3],
            "dead task page: one attempt, failed, with the 400 and the server's text", (task_id, history))
    event_text = b.text("#event") or ""
    try:
        shown = json.loads(event_text)
    except ValueError:
        shown = {}
    t.check(shown.get("id") == failing and shown.get("data", {}).get("customer", {}).get("name") == SCRIPT_NAME
            and shown.get("data", {}).get("note") == SCRIPT_NOTE,
            "dead task page: the event, its <script> values shown as text", event_text[:600])
    t.check(b.count("main script, main img, pre#event *") == 0, "dead task page: no element came from the event")

    # -- a POST without the CSRF token, from the page itself (its origin, its cookie)
    status = b.js("fetch('/admin/dead/retry', {method: 'POST', body: new URLSearchParams({task_id: %s})})"
                  ".then(function (r) { return r.status; })" % json.dumps(task_id))
    t.check(status == 403, "a retry POST without the CSRF token: 403", status)
    t.check(b.count("#history") == 1 and b.text("#task-id") == task_id, "and nothing changed on the page")

    # -- retry from the page once the downstream answers 200
    srv.control(mode="ok", body=None)
    b.click(".actions button.retry")
    b.wait_js("location.pathname === '/admin/track' && !!document.querySelector('#notice')", 10,
              "the event's track after Retry")
    t.check("Retried 1 task" in (b.text("#notice") or ""), "Retry: the track page says 1 task retried",
            b.text("#notice"))
    b.click("nav a[href=\"/admin\"]")
    delivered = b.wait_js("%s === '0' && %s === '2' && [%s, %s]" % (cell % "dead", cell % "done", cell % "dead",
                                                                   cell % "done"),
                          15, "the dashboard to show the retried task delivered")
    t.check(delivered == ["0", "2"], "after Retry: inventory dead 0, done 2 (+1)", delivered)
    task = dl.task_of(h, failing, "inventory")
    t.check(task.get("state") == "done", "and the broker agrees: the task is done", task)

    # -- admin_read: no buttons, a forged POST refused
    b.click("#logout")
    b.wait_js("location.pathname === '/admin/login'", 10, "the login form after Log out")
    t.check(not [c for c in b.cookies() if c.get("name") == "herald_session"], "Log out removes the cookie")
    srv.control(mode="400", body=SERVER_BODY)
    dead_again = dl.publish_one(h, hostile_order(3))
    dl.wait_task(h, dead_again, "inventory", "dead")
    b.type_into("#token", dash)
    b.click("#login button[type=submit]")
    b.wait_js("location.pathname === '/admin'", 10, "the dashboard (admin_read)")
    b.goto(base + "/admin/dead")
    b.wait_js("document.querySelectorAll('#dead tbody tr').length === 1", 10, "the dead list (admin_read)")
    t.check(b.count("button.retry, button.purge, form[action=\"/admin/dead/retry\"], "
                    "form[action=\"/admin/dead/purge\"], a.task") == 0,
            "admin_read: the dead list has no retry or purge button, no link to the event's data")
    csrf = b.js("document.querySelector('input[name=csrf]').value")
    task_read = b.js("document.querySelector('#dead tbody tr').getAttribute('data-task')")
    status = b.js("fetch('/admin/dead/retry', {method: 'POST', body: new URLSearchParams({csrf: %s, task_id: %s})})"
                  ".then(function (r) { return r.status; })" % (json.dumps(csrf), json.dumps(task_read)))
    t.check(status == 403, "admin_read: a forged retry POST with its own CSRF token gets 403", status)
    t.check(dl.task_of(h, dead_again, "inventory").get("state") == "dead", "and the task stays dead")
    b.goto(base + "/admin/track?id=" + dead_again)
    b.wait_js("!!document.querySelector('table.track')", 10, "the track page (admin_read)")
    state = b.text("table.track tr[data-channel=inventory] td.state")
    t.check(state == "dead" and b.count("main script, main img") == 0, "track: the event's channel, dead", state)

    # -- revocation ends the session at once
    r = h.herald("token", "revoke", "dash")
    t.require(r.returncode == 0, "herald token revoke dash", r.stderr)
    b.goto(base + "/admin")
    b.wait_js("location.pathname === '/admin/login'", 10, "the login form after the token's revocation")
    t.check(True, "a revoked token's session ends at once: the next page is the login form")

    # -- all along
    b.pump(0.2)
    t.check(b.dialogs == [], "no JavaScript dialog opened on any page (the <script> values stayed inert)",
            b.dialogs)
    foreign = [u for u in b.requests if not u.startswith(base + "/")]
    t.check(b.requests and not foreign, "every request the page sent went to %s (%d requests)"
            % (base, len(b.requests)), foreign)
    t.check(b.csp_violations == [], "no Content-Security-Policy violation", b.csp_violations)
    b.close()


if __name__ == "__main__":
    harness.Test("admin_page", budget=120).run(body)
