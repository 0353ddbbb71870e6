"""test_security_roles: what each CURVE key may do. A read-only admin key
(admin_read) lists dead tasks but may not show one (customer data), retry
or purge them: refused with exit 77 and nothing purged, while an
admin_operate key may. A worker key bound to email that registers for
courier is refused (NACK 403, logged by both sides) and gets no task; a
producer key cannot use the admin endpoint at all, nor a producer key the
worker endpoint."""

import json

import harness
import securitylib as sec

EVENTS = [dict(harness.ORDER_CONFIRMED, required=["order_id"])]


def body(t):
    h = sec.SecureHerald("security-roles", tcp=False, events=EVENTS)
    t.deployments.append(h)
    broker = h.start_broker()
    h.start_workers()
    # No customer.email: the email delivery fails for good, the task is dead.
    r = h.publish({"order_id": 7, "items": []})
    t.require(r.returncode == 0, "publish with the producer key the config lists", r.stderr)
    harness.wait_until(lambda: h.channel_status("email").get("dead") == 1, 20, "the email task to be dead")

    dash = ["--key", h.key(sec.DASH, "secret")]
    oncall = ["--key", h.key(sec.ONCALL, "secret")]
    r = h.herald("dead", "list", "--json", *dash)
    tasks = json.loads(r.stdout).get("tasks", []) if r.returncode == 0 else []
    t.require(r.returncode == 0 and len(tasks) == 1, "admin_read: dead list works", r.stdout + r.stderr)
    task_id = tasks[0]["task_id"]

    for verb in (["dead", "show", task_id], ["dead", "retry", "--all"], ["dead", "purge", "--all"]):
        r = h.herald(*verb, *dash)
        t.check(r.returncode == sec.EX_NOPERM and "not allowed (403)" in r.stderr
                and "needs admin_operate" in r.stderr,
                "admin_read: `herald %s` is refused (exit 77, 403)" % " ".join(verb[:2]),
                "exit %d: %s" % (r.returncode, r.stderr.strip()))
    st = h.status()
    t.check(h._channel(st, "email").get("dead") == 1, "nothing was purged or retried",
            h._channel(st, "email"))
    t.check(st["security"]["refused"]["admin_verb"] == 3, "the 3 refusals are counted (admin_verb)",
            st["security"]["refused"])
    t.check(len(sec.log_lines(broker, 'msg="admin request refused"')) == 3,
            "and logged, naming key and verb", "".join(sec.log_lines(broker, "admin request refused")))
    r = h.herald("status", *dash)
    t.check(r.returncode == 0, "admin_read: status works", r.stderr)
    r = h.herald("track", "no-such-event", *dash)
    t.check(r.returncode == harness.EX_DATAERR and "no event" in r.stderr,
            "admin_read: track is allowed (404 for an unknown event)", r.stderr)

    r = h.herald("dead", "show", task_id, *oncall)
    t.check(r.returncode == 0 and '"order_id": 7' in r.stdout, "admin_operate: dead show prints the event",
            r.stdout[-400:] + r.stderr)
    r = h.herald("dead", "purge", "--all", *oncall)
    t.check(r.returncode == 0 and "purged 1" in r.stdout, "admin_operate: dead purge purges", r.stdout + r.stderr)

    r = h.herald("status", "--key", h.key(sec.PRODUCER, "secret"))
    t.check(r.returncode == sec.EX_NOPERM and "refused this client's key" in r.stderr,
            "a producer key cannot use the admin endpoint (exit 77)", "exit %d %s" % (r.returncode, r.stderr))

    # A worker key for email registering for courier.
    before = h.channel_status("courier").get("workers")
    rogue = h.spawn("rogue-worker", [harness.binary("herald-worker"), "-c", h.config, "--channel", "courier",
                                     "--key", h.key(sec.WORKER_KEYS["email"], "secret")])
    harness.wait_until(lambda: sec.log_lines(rogue, "broker refused this worker"), 15,
                       "the worker to log the refusal")
    line = sec.log_lines(rogue, "broker refused this worker")[0]
    t.check("code=403" in line and "may serve email, not courier" in line,
            "a worker key for email registering for courier is refused (403), and the worker says why",
            line.strip())
    t.check(sec.log_lines(broker, 'msg="worker registration refused"'), "the broker logs the refusal")
    r = h.publish({"order_id": 8, "items": []})
    t.check(r.returncode == 0, "publish another event", r.stderr)
    harness.wait_until(lambda: h.channel_status("courier").get("done") == 2, 20, "courier deliveries")
    t.check(h.channel_status("courier").get("workers") == before,
            "courier still counts only its own worker", h.channel_status("courier"))
    t.check(h.status()["security"]["refused"]["channel"] >= 1, "status counts it (channel)",
            h.status()["security"]["refused"])
    t.check(rogue.alive(), "the refused worker keeps running (it registers again later, with backoff)")
    h.kill(rogue)

    # A producer key at the worker endpoint: refused by ZAP, and the worker says so.
    wrong = h.spawn("wrong-worker", [harness.binary("herald-worker"), "-c", h.config, "--channel", "email",
                                     "--key", h.key(sec.PRODUCER, "secret")])
    harness.wait_until(lambda: sec.log_lines(wrong, "cannot connect to the broker"), 15,
                       "the worker with a producer key to log why it cannot connect")
    line = sec.log_lines(wrong, "cannot connect to the broker")[0]
    t.check("refused this client's key" in line, "a producer key at the worker endpoint is refused", line.strip())
    t.check(h.status()["security"]["refused"]["wrong_role"] >= 1, "counted as wrong_role",
            h.status()["security"]["refused"])
    h.kill(wrong)


if __name__ == "__main__":
    harness.Test("security_roles", budget=120).run(body)
