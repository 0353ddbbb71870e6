"""test_delivery_smtp_slow: a slow and a stuck SMTP relay, real processes
(broker, one herald-worker per channel, tests/servers/smtp_server.py with
--data-delay).

  - email: the relay answers DATA after 5 s; 20 orders -> exactly 20 mails
    stored and 20 DATA commands received (none twice), 20 distinct
    Message-IDs, each <TASK_ID@herald> of a tracked email task; all 20 tasks
    done after 1 attempt, in about one relay delay (the mails go in
    parallel, not one after the other);
  - email_stuck: the relay takes 40 s; smtp.timeout is 1 s, so every attempt
    ends as a RETRY naming the timeout, and the task is dead after
    max_attempts; nothing stored;
  - the broker log has no "worker lost" line: the worker heartbeats while
    mails are in progress (with heartbeat 200 ms x 3, a runtime blocked by
    one 5 s mail is declared lost and its tasks are sent again).
"""

import os
import time

import deliverylib as dl
import harness
from harness import wait_until

ORDERS = 20
SLOW_S = 5
STUCK_S = 40
STUCK_ORDERS = 3
STUCK_ATTEMPTS = 2


def data_count(server):
    """DATA commands the server received (stored or not)."""
    try:
        with open(os.path.join(server.out_dir, "data-count")) as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0


def body(t):
    events = [
        dict(harness.ORDER_CONFIRMED, fanout=["email"]),
        dict(harness.ORDER_CONFIRMED, name="order.stuck", fanout=["email_stuck"]),
    ]
    chans = ("email", "email_stuck")
    h = t.deployment(channels=chans, driver="smtp", events=events)
    slow = dl.SmtpServer(h, name="smtp-slow", data_delay=SLOW_S)
    stuck = dl.SmtpServer(h, name="smtp-stuck", data_delay=STUCK_S)
    h.write_config(channels=chans, driver="smtp", events=events, channel_extra={
        "email": dl.channel_extra("smtp", dl.smtp_settings(slow, timeout="30s"),
                                  max_attempts=4, capacity=ORDERS),
        "email_stuck": dl.channel_extra("smtp", dl.smtp_settings(stuck, timeout="1s"),
                                        max_attempts=STUCK_ATTEMPTS),
    })
    broker = h.start_broker()
    h.start_workers({"email": 1, "email_stuck": 1})
    t.note("relay answering DATA after %d s on %d, after %d s on %d; one worker per channel"
           % (SLOW_S, slow.port, STUCK_S, stuck.port))

    started = time.monotonic()
    ids = dl.publish_many(h, [harness.order(1000 + i) for i in range(ORDERS)])
    stuck_ids = []
    for i in range(STUCK_ORDERS):
        r = h.publish(data=harness.order(2000 + i), type="order.stuck", timeout=20)
        got = [l.strip() for l in r.stdout.splitlines() if dl.UUID_RE.match(l.strip())]
        t.require(r.returncode == 0 and len(got) == 1, "order.stuck %d published" % i,
                  r.stdout + r.stderr)
        stuck_ids.append(got[0])

    # -- the slow relay: every task done once, in about one relay delay
    st = dl.wait_status(h, "email", timeout=40, done=ORDERS, pending=0, in_flight=0, retrying=0)
    elapsed = time.monotonic() - started
    t.check(st.get("dead") == 0, "email: %d done, none dead" % ORDERS, st)
    t.check(elapsed < 3 * SLOW_S,
            "email: %d mails through a %d s relay took %.1f s (in parallel, not %d s in a row)"
            % (ORDERS, SLOW_S, elapsed, ORDERS * SLOW_S), elapsed)
    slow.wait_mails(ORDERS)
    mails = slow.mails()
    ids_seen = [m.message_id for m in mails]
    t.check(len(mails) == ORDERS, "exactly %d mails stored" % ORDERS, len(mails))
    t.check(len(set(ids_seen)) == ORDERS, "%d distinct Message-IDs, none twice" % ORDERS,
            sorted(ids_seen))
    t.check(data_count(slow) == ORDERS, "the relay received DATA exactly %d times" % ORDERS,
            data_count(slow))
    tasks = [dl.task_of(h, eid, "email") for eid in ids]
    t.check(all(x.get("state") == "done" and x.get("attempts") == 1 for x in tasks),
            "track: every email task done after 1 attempt",
            [(x.get("task_id"), x.get("state"), x.get("attempts")) for x in tasks])
    t.check(sorted(ids_seen) == sorted("<%s@herald>" % x.get("task_id") for x in tasks),
            "the Message-IDs are the tracked email task ids", sorted(ids_seen))

    # -- the stuck relay: the driver's timeout fires, a RETRY naming it
    for eid in stuck_ids:
        task = dl.wait_task(h, eid, "email_stuck", "dead", timeout=30)
        shown = dl.dead_show(h, task["task_id"])
        hist = shown.get("history", [])
        t.check([(r.get("attempt"), r.get("outcome", "").lower()) for r in hist]
                == [(n, "retry") for n in range(1, STUCK_ATTEMPTS + 1)],
                "stuck relay: %d RETRY rows, then dead" % STUCK_ATTEMPTS, hist)
        t.check(all("timed out" in r.get("error", "").lower()
                    and "smtp.timeout" in r.get("error", "") for r in hist),
                "stuck relay: every error names the timeout (smtp.timeout)", hist)
    t.check(stuck.mail_count() == 0, "stuck relay: nothing stored", stuck.mail_count())
    t.note("stuck relay error: %s" % shown.get("last_error"))

    # -- the worker was never declared lost
    with open(broker.log, "rb") as f:
        lost = [l for l in f.read().decode("utf-8", "replace").splitlines() if "worker lost" in l]
    t.check(not lost, "broker log: no \"worker lost\" line", "\n".join(lost[:10]))
    slow.stop()
    stuck.stop()


if __name__ == "__main__":
    harness.Test("delivery_smtp_slow", budget=120).run(body)
