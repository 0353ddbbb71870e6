"""test_reload: SIGHUP reloads the configuration under a steady publish load
(real broker, one herald-worker per channel, a real SMTP server answering
DATA after a delay, a real HTTP server answering 500), every ACK and NACK
counted by a producer on one long-lived connection. SIGHUP goes to the
broker, then to the workers, as `herald up` does.

  (a) courier's retry.max_attempts 6 -> 2 and inventory's rate 0 -> 10/s:
      courier tasks first tried after the reload die after 2 attempts
      (before: 6); inventory deliveries are held to 10/s, measured;
  (b) an invalid file: the broker and the workers log one error naming the
      file, line and key and keep the old configuration (the rate and the
      attempt budget still hold); the broker still ACKs;
      `herald-broker --check-config` exits 78 naming the same line;
  (c) a new email template (same path, new content), a new email capacity
      and inventory's rate back to unlimited: the next emails use the new
      template; mails in flight at the reload finish, whole, with the old
      one; the email worker registers again with the new capacity;
  (d) broker.listen.producers changed: "needs a restart" is logged, the
      broker still listens on the old endpoint (the producer's connection
      goes on), the new one is not bound; a live change beside it applies.

Throughout: the same processes, no NACK, no publish left unanswered, no
"worker lost", and at the end every ACKed order is mailed once (no
Message-ID twice), written once by inventory and dead once on courier."""

import os
import signal
import subprocess
import time

import deliverylib as dl
import harness
import reloadlib as rl
from harness import wait_until

RATE = 30.0                 # orders published per second
INVENTORY_RATE = 10         # inventory's rate after (a)
SMTP_DELAY = 0.3            # seconds the SMTP server takes to answer DATA


def write_templates(h, version):
    for ext, text in (("txt", "Order {{data.order_id}}: template %s\n" % version),
                      ("html", "<p>Order {{data.order_id}}: template %s</p>\n" % version)):
        path = os.path.join(h.tmp, "order.%s" % ext)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def write_config(h, smtp, http, inventory_rate="0", courier_attempts=6, email_capacity=32,
                 producers=None, broken=False):
    text = """# test_reload
broker:
  listen:
    producers: "%(producers)s"
    workers: "%(workers)s"
    admin: "%(admin)s"
  store: "%(tmp)s/herald.db"
  heartbeat: 200ms
  heartbeat_liveness: 5
events:
  order.confirmed:
    key: order_id
    required: [order_id, customer.email, items]
    fanout: [email, inventory, courier]
channels:
  email:
    driver: smtp
    capacity: %(email_capacity)d
    smtp: { url: "%(smtp)s", tls: none, from: "Shop <orders@shop.example>", to: "{{data.customer.email}}",
            subject: "Order {{data.order_id}}", text_template: "%(tmp)s/order.txt",
            html_template: "%(tmp)s/order.html", timeout: 10s }
    retry: { max_attempts: 8, backoff: 100ms..1s }
  inventory:
    driver: file
    dir: "%(tmp)s/outbox/inventory"
    rate: %(inventory_rate)s
  courier:
    driver: http
    http: { url: "%(http)s", timeout: 2s, connect_timeout: 1s }
    retry: { max_attempts: %(courier_attempts)d, backoff: 10ms..20ms }
workers: { email: 1, inventory: 1, courier: 1 }
""" % dict(producers=producers or h.endpoint("producers"), workers=h.endpoint("workers"),
           admin=h.endpoint("admin"), tmp=h.tmp, smtp=smtp.url, http=http.url(),
           inventory_rate=inventory_rate, courier_attempts=0 if broken else courier_attempts,
           email_capacity=email_capacity)
    with open(h.config + ".tmp", "w") as f:
        f.write(text)
    os.replace(h.config + ".tmp", h.config)


def dead_attempts(broker_log, after=0.0):
    """attempt= of each courier "task dead" line logged after wall time after."""
    return [int(r["attempt"]) for r in rl.log_records(broker_log, "task dead")
            if r.get("channel") == "courier" and rl.wall(r) > after]


def reload_all(t, broker, workers, what):
    """SIGHUP to the broker, then each worker; returns (broker record, {channel: record})."""
    b = rl.sighup(broker, broker.log)
    w = {ch: rl.sighup(p, p.log) for ch, p in workers.items()}
    return b, w


def rate_over(h, seconds):
    """Inventory files written during `seconds` from now."""
    before = h.count("inventory")
    time.sleep(seconds)         # a measurement window, not a synchronisation
    return h.count("inventory") - before


def body(t):
    h = t.deployment(channels=("email", "inventory", "courier"))
    smtp = dl.SmtpServer(h, data_delay=SMTP_DELAY)
    http = dl.HttpServer(h, mode="500")
    write_templates(h, "v1")
    write_config(h, smtp, http)
    broker = h.start_broker()
    workers = {ch: h.start_worker(ch) for ch in ("email", "inventory", "courier")}
    pids = {p.name: p.pid for p in [broker] + list(workers.values())}
    producer = rl.Producer(h.endpoint("producers"), rate=RATE)
    producer.start()
    try:
        wait_until(lambda: producer.acked_count() >= RATE, 15, "a second of ACKs")
        wait_until(lambda: dead_attempts(broker.log), 15, "courier tasks to die")
        t.check(set(dead_attempts(broker.log)) == {6}, "before: courier tasks die after 6 attempts",
                sorted(set(dead_attempts(broker.log))))

        # -- (a) a lower attempt budget and a rate
        write_config(h, smtp, http, inventory_rate="%d/s" % INVENTORY_RATE, courier_attempts=2)
        rec, _ = reload_all(t, broker, workers, "a")
        t.check(rec["msg"] == "configuration reloaded" and "channels.courier.retry.max_attempts 6->2" in rec["changes"]
                and "channels.inventory.rate 0/s->10/s" in rec["changes"] and rec.get("needs_restart") == "0",
                "(a) the broker applies max_attempts 6->2 and rate 10/s", rec["_line"])
        reloaded_at = rl.wall(rec)
        t.note("(a) reloaded; publishing on (%d ACKed)" % producer.acked_count())
        time.sleep(0.5)         # tasks in flight at the reload finish their last retries
        since = time.time()
        n = rate_over(h, 2.0)
        t.check(INVENTORY_RATE <= n <= 2 * INVENTORY_RATE + 2,
                "(a) inventory held to %d/s: %d deliveries in 2 s (publishing %d/s)" % (INVENTORY_RATE, n, RATE), n)
        after = dead_attempts(broker.log, since)
        t.check(after and set(after) == {2}, "(a) courier tasks now die after 2 attempts (%d of them)" % len(after),
                sorted(set(after)))
        t.check(all(a <= 6 for a in dead_attempts(broker.log, reloaded_at)), "(a) no task got more than before")

        # -- (b) an invalid file
        write_config(h, smtp, http, inventory_rate="%d/s" % INVENTORY_RATE, courier_attempts=2, broken=True)
        where = "%s:%d: channels.courier.retry.max_attempts" % (h.config, rl.line_of(h.config, "max_attempts: 0"))
        acked = producer.acked_count()
        rec, wrecs = reload_all(t, broker, workers, "b")
        t.check(rec["msg"].startswith("reload refused") and where in rec.get("error", ""),
                "(b) the broker refuses it, naming file, line and key", rec["_line"])
        t.check(all(r["msg"].startswith("reload refused") and where in r.get("error", "") for r in wrecs.values()),
                "(b) so does each worker", [r["_line"] for r in wrecs.values()])
        since = time.time()
        n = rate_over(h, 1.5)
        t.check(n <= 1.5 * INVENTORY_RATE + 2, "(b) the running rate stays: %d inventory deliveries in 1.5 s" % n)
        wait_until(lambda: dead_attempts(broker.log, since), 10, "courier deaths after (b)")
        t.check(set(dead_attempts(broker.log, since)) == {2}, "(b) the attempt budget stays 2",
                sorted(set(dead_attempts(broker.log, since))))
        t.check(producer.acked_count() > acked + RATE, "(b) the broker goes on ACKing (%d -> %d)"
                % (acked, producer.acked_count()))
        r = subprocess.run([harness.binary("herald-broker"), "--check-config", "-c", h.config],
                           capture_output=True, text=True, timeout=30, cwd=h.tmp)
        t.check(r.returncode == harness.EX_CONFIG and where in r.stderr,
                "herald-broker --check-config exits 78 on it, naming the line", r.stderr[-400:])

        # -- (c) a new template, capacity and no rate
        write_templates(h, "v2")
        write_config(h, smtp, http, courier_attempts=2, email_capacity=24)
        rec, wrecs = reload_all(t, broker, workers, "c")
        t.check(rec["msg"] == "configuration reloaded" and "channels.email.capacity 32->24" in rec["changes"],
                "(c) the broker applies the new capacity and rate", rec["_line"])
        email_rec = wrecs["email"]
        t.check(email_rec["msg"] == "configuration reloaded" and email_rec.get("register_again") == "true",
                "(c) the email worker reloads and will register again (capacity 24)", email_rec["_line"])
        template_at = rl.wall(email_rec)
        first_v2 = producer.published() + 1
        wait_until(lambda: any(r.get("capacity") == "24" for r in rl.log_records(broker.log, "worker registered")),
                   15, "the email worker to register again with capacity 24")
        t.check(rate_over(h, 1.0) > 1.5 * INVENTORY_RATE, "(c) inventory is unlimited again")

        # -- (d) a listen endpoint changed, and a live key beside it
        moved = "ipc://%s/producers-moved.sock" % h.tmp
        write_config(h, smtp, http, courier_attempts=3, email_capacity=24, producers=moved)
        acked = producer.acked_count()
        rec = rl.sighup(broker, broker.log)
        restart = rl.log_records(broker.log, "needs a restart: broker.listen.producers changed")
        t.check(restart and restart[-1].get("running") == h.endpoint("producers") and restart[-1].get("file_value") == moved,
                "(d) 'needs a restart: broker.listen.producers changed' is logged with both values",
                restart[-1]["_line"] if restart else rec["_line"])
        t.check(rec["msg"] == "configuration reloaded" and rec.get("needs_restart") == "1"
                and "channels.courier.retry.max_attempts 2->3" in rec["changes"],
                "(d) the rest applies (max_attempts 2->3)", rec["_line"])
        wait_until(lambda: producer.acked_count() > acked + RATE, 10, "ACKs on the old endpoint")
        t.check(not os.path.exists(moved[len("ipc://"):]), "(d) the new endpoint is not bound")
        t.check(h.try_status() is not None, "(d) the admin endpoint answers")
    finally:
        producer.stop()
    rl.ensure_no_error(t, producer)
    total = producer.published()
    acks = producer.acks
    t.note("published %d, ACKed %d, NACKs %s, missing %d" % (total, len(acks), producer.nacks, len(producer.missing)))
    t.check(len(acks) == total and not producer.nacks and not producer.missing,
            "every publish ACKed: %d of %d, no NACK, none unanswered" % (len(acks), total),
            "nacks %s %s, missing %s" % (producer.nacks, producer.nack_reasons[:3], producer.missing[:10]))

    # -- everything ACKed is delivered once
    smtp.wait_mails(total, timeout=60)
    wait_until(lambda: h.count("inventory") >= total, 60, lambda: "inventory %d/%d" % (h.count("inventory"), total))
    st = dl.wait_status(h, "courier", timeout=60, dead=total)
    mails = smtp.mails()
    ids = [m.message_id for m in mails]
    t.check(len(mails) == total and len(set(ids)) == total,
            "%d mails for %d orders, no Message-ID twice" % (len(mails), total), len(set(ids)))
    t.check(h.count("inventory") == total, "inventory wrote each order once (%d)" % h.count("inventory"))
    t.check(st.get("dead") == total and st.get("done") == 0, "courier: every task dead once", st)
    for ch in ("email", "inventory"):
        c = dl.channel_counts(h, ch)
        t.check(c.get("done") == total and c.get("dead") == 0, "%s: %d done, none dead" % (ch, total), c)

    # -- templates: none broken; in-flight mails finished with the old one
    versions, late_v1, early_order_v2 = {}, 0, 0
    for m in mails:
        text = m.part("text/plain") or ""
        order = int(str(m.msg["Subject"]).split()[-1])
        v = "v1" if "template v1" in text else "v2" if "template v2" in text else None
        versions[v] = versions.get(v, 0) + 1
        if v == "v1" and os.stat(m.path).st_mtime > template_at:
            late_v1 += 1
        if v == "v2" and order < first_v2 - int(RATE * 2):
            early_order_v2 += 1
        if order >= first_v2 + int(RATE) and v != "v2":
            t.check(False, "order %d, published after the reload, uses template v2" % order, text)
    t.check(set(versions) == {"v1", "v2"}, "every mail is whole, with template v1 or v2", versions)
    t.check(late_v1 >= 1, "%d mail(s) in flight at the reload finished with template v1" % late_v1)
    t.check(early_order_v2 == 0, "no order mailed before the reload got v2", early_order_v2)

    # -- the same processes, no session lost
    now = {p.name: p.pid for p in [broker] + list(workers.values()) if p.alive()}
    t.check(now == pids, "the broker and the 3 workers ran throughout (same pids)", (pids, now))
    t.check(not rl.worker_lost_lines(broker.log), "no worker session lost", rl.worker_lost_lines(broker.log)[:3])


if __name__ == "__main__":
    harness.Test("reload", budget=150).run(body)
