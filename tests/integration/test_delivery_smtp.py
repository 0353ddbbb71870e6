"""test_delivery_smtp: the email channel with the smtp driver, end to end:
real broker, real herald-worker, the real SMTP test server (aiosmtpd).

Part 1, plaintext relay (tls: none):
  - three orders -> three mails, one per order, each multipart/alternative
    (text/plain + text/html), From/To/Subject as configured, Message-ID
    <TASK_ID@herald> with TASK_ID the email task id `herald track` shows,
    envelope recipient = the customer; the HTML part escapes <script> and &
    from customer.name, the text part carries it as is; a non-ASCII name
    survives in Subject (RFC 2047) and both parts;
  - header injection through data: a name with "\\r\\nBcc: evil@example.com"
    (it is in the Subject too) -> delivered, one Subject line, no Bcc header,
    nothing for evil; an email "x@example.com\\r\\nRCPT TO:<evil@example.com>"
    -> no mail at all, dead after 1 attempt as an invalid recipient;
  - tempfail recipient (451) -> retried (status shows it retrying), then
    dead after max_attempts with one history row per attempt, 451 text;
  - permfail recipient (550) -> dead after 1 attempt with the 550 text;
  - `herald status` / `dead list` counts: done 4, dead 3;
  - relay down: connection refused -> retried, dead after 3 attempts; relay
    back on the same port, `herald dead retry TASK_ID` -> delivered with
    Message-ID <TASK_ID@herald>.
Part 2, STARTTLS (self-signed certificate from `openssl req -x509`):
  - email: tls starttls + ca_file -> delivered over TLS;
  - email_noca: verification on, no ca_file -> no mail, the task retries
    with a certificate error in last_error (status counts it retrying);
  - email_plain: tls starttls against a relay offering no STARTTLS -> no
    mail, retries (never a plaintext fallback);
  - email_auth: AUTH over STARTTLS, password from password_env -> delivered,
    the relay saw login "herald"; email_badauth (wrong password) -> no mail,
    535 in last_error;
  - email_smtps: implicit TLS (smtps://) -> delivered over TLS.
"""

import os

import deliverylib as dl
import harness
from harness import wait_until

BACKOFF = "50ms..200ms"
FROM = "Shop <orders@shop.example>"
SUBJECT = "Order {{data.order_id}} confirmed for {{data.customer.name}}"


def expect_mail(t, mail, order_id, name, email, task_id):
    """The checks every delivered confirmation passes."""
    msg = mail.msg
    what = "order %s" % order_id
    t.check(msg.get_content_type() == "multipart/alternative",
            "%s: multipart/alternative" % what, msg.get_content_type())
    parts = [p.get_content_type() for p in msg.iter_parts()] if msg.is_multipart() else []
    t.check(parts == ["text/plain", "text/html"], "%s: parts text/plain then text/html" % what, parts)
    t.check(str(msg["From"]) == FROM, "%s: From is %r" % (what, FROM), msg["From"])
    t.check(str(msg["To"]) == email, "%s: To is %s" % (what, email), msg["To"])
    t.check(str(msg["Subject"]) == "Order %s confirmed for %s" % (order_id, name),
            "%s: Subject rendered from the event" % what, msg["Subject"])
    t.check(mail.message_id == "<%s@herald>" % task_id,
            "%s: Message-ID <%s@herald> (the tracked email task id)" % (what, task_id), mail.message_id)
    t.check(mail.rcpt_tos == [email], "%s: envelope recipient is only %s" % (what, email), mail.rcpt_tos)
    t.check(mail.side.get("mail_from") == "orders@shop.example",
            "%s: envelope sender orders@shop.example" % what, mail.side.get("mail_from"))
    text = mail.part("text/plain") or ""
    html = mail.part("text/html") or ""
    t.check("Order number:  %s" % order_id in text and "Hello %s," % name in text,
            "%s: text part rendered from order_confirmed.txt" % what, text[:300])
    t.check("<strong>%s</strong>" % order_id in html and "{{" not in html and "{{" not in text,
            "%s: html part rendered, no placeholder left" % what, html[:300])


def part_plain(t):
    h = t.deployment(channels=("email",), driver="smtp")
    smtp = dl.SmtpServer(h)
    h.write_config(channels=("email",), driver="smtp", channel_extra={
        "email": dl.channel_extra("smtp", dl.smtp_settings(smtp, subject=SUBJECT),
                                  max_attempts=3, backoff=BACKOFF)})
    h.start_broker()
    h.start_worker("email")
    t.note("plain SMTP relay on port %d, broker and email worker up" % smtp.port)

    # -- three good orders, one with markup in the name
    orders = [harness.order(101), harness.order(102), harness.order(103)]
    orders[1]["customer"]["name"] = "Eve <script>alert(1)</script> & Co"
    orders[2]["customer"]["name"] = "Zoë Ünïcode 東京"      # non-ASCII in Subject and bodies
    ids = [dl.publish_one(h, o) for o in orders]
    smtp.wait_mails(3)
    tasks = {}
    for o, eid in zip(orders, ids):
        tasks[o["order_id"]] = dl.wait_task(h, eid, "email", "done")
    mails = smtp.mails()
    t.check(len(mails) == 3, "3 orders -> exactly 3 mails stored", len(mails))
    by_rcpt = {}
    for m in mails:
        for r in m.rcpt_tos:
            by_rcpt.setdefault(r, []).append(m)
    for o in orders:
        email_addr = o["customer"]["email"]
        got = by_rcpt.get(email_addr, [])
        if not t.check(len(got) == 1, "order %s: one mail to %s" % (o["order_id"], email_addr), len(got)):
            continue
        task = tasks[o["order_id"]]
        t.check(task.get("attempts") == 1 and task.get("task_id", "").endswith(".email"),
                "order %s: track shows the email task done after 1 attempt" % o["order_id"], task)
        expect_mail(t, got[0], o["order_id"], o["customer"]["name"], email_addr, task.get("task_id"))

    eve = by_rcpt.get(orders[1]["customer"]["email"], [None])[0]
    if eve is not None:
        html = eve.part("text/html") or ""
        text = eve.part("text/plain") or ""
        t.check("Eve &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html,
                "html part escapes <script> and & from customer.name", html[html.find("Thank you"):][:200])
        t.check("<script" not in html.lower(), "html part holds no <script tag")
        t.check("Hello Eve <script>alert(1)</script> & Co," in text,
                "text part carries the name as is (no HTML escaping there)")

    # -- injection attempts through event data
    bad_name = harness.order(201)
    bad_name["customer"]["name"] = "Mallory\r\nBcc: evil@example.com"
    bad_rcpt = harness.order(202, email="x@example.com\r\nRCPT TO:<evil@example.com>")
    id_name = dl.publish_one(h, bad_name)
    id_rcpt = dl.publish_one(h, bad_rcpt)
    task_name = dl.wait_task(h, id_name, "email", "done")
    task_rcpt = dl.wait_task(h, id_rcpt, "email", "dead")
    smtp.wait_mails(4)
    mails = smtp.mails()
    inj = [m for m in mails if m.task_id == task_name.get("task_id")]
    if t.check(len(inj) == 1, "name with CRLF + Bcc: delivered once", [m.message_id for m in mails]):
        m = inj[0]
        t.check(m.rcpt_tos == [bad_name["customer"]["email"]],
                "name with CRLF + Bcc: envelope recipient only the customer", m.rcpt_tos)
        t.check(m.msg.get_all("Bcc") is None, "name with CRLF + Bcc: no Bcc header",
                m.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace"))
        subj = m.msg.get_all("Subject") or []
        t.check(len(subj) == 1 and "\n" not in str(subj[0]) and "\r" not in str(subj[0]),
                "name with CRLF + Bcc: one Subject header on one logical line", subj)
        head = m.raw.split(b"\r\n\r\n", 1)[0]
        t.check(not any(l.lower().startswith(b"bcc:") for l in head.split(b"\r\n")),
                "name with CRLF + Bcc: no header line starts with Bcc:", head.decode("utf-8", "replace"))
    everyone = sorted({r for m in mails for r in m.rcpt_tos})
    t.check(not any("evil" in r for r in everyone), "nothing delivered to evil@example.com", everyone)
    t.check(not any(b"evil" in m.raw and m.task_id == task_rcpt.get("task_id") for m in mails),
            "the bad recipient's mail was never sent")
    t.check(len(mails) == 4, "4 mails stored so far (3 orders + the CRLF-name one)", len(mails))
    t.check(task_rcpt.get("attempts") == 1, "bad recipient: dead after 1 attempt", task_rcpt)
    shown = dl.dead_show(h, task_rcpt["task_id"])
    hist = shown.get("history", [])
    t.check(len(hist) == 1 and hist[0].get("outcome", "").lower() == "failed"
            and "invalid recipient" in hist[0].get("error", ""),
            "bad recipient: dead show has 1 FAILED row with 'invalid recipient'", shown)
    t.check("\r" not in shown.get("last_error", "") and "\n" not in shown.get("last_error", ""),
            "bad recipient: last_error is one line", repr(shown.get("last_error")))

    # -- temporary failure (451) until exhaustion, permanent failure (550)
    temp = harness.order(301, email="tempfail-301@example.com")
    perm = harness.order(302, email="permfail-302@example.com")
    id_temp = dl.publish_one(h, temp)
    id_perm = dl.publish_one(h, perm)
    task_temp = dl.wait_task(h, id_temp, "email", "dead")
    task_perm = dl.wait_task(h, id_perm, "email", "dead")
    t.check(task_temp.get("attempts") == 3, "tempfail: dead after max_attempts=3 attempts", task_temp)
    shown = dl.dead_show(h, task_temp["task_id"])
    hist = shown.get("history", [])
    t.check([r.get("attempt") for r in hist] == [1, 2, 3],
            "tempfail: dead show has 3 history rows, attempts 1,2,3", hist)
    t.check(all(r.get("outcome", "").lower() == "retry" and "451" in r.get("error", "") for r in hist),
            "tempfail: every row is a RETRY with the 451 reply", hist)
    ats = [r.get("at", 0) for r in hist]
    t.check(ats == sorted(ats) and len(set(ats)) == len(ats), "tempfail: history times increase", ats)
    t.check("451" in shown.get("last_error", ""), "tempfail: last_error has the 451 text", shown.get("last_error"))

    t.check(task_perm.get("attempts") == 1, "permfail: dead after 1 attempt", task_perm)
    shown = dl.dead_show(h, task_perm["task_id"])
    hist = shown.get("history", [])
    t.check(len(hist) == 1 and hist[0].get("outcome", "").lower() == "failed"
            and "550" in hist[0].get("error", "") and "does not exist" in hist[0].get("error", ""),
            "permfail: 1 FAILED history row with the server's 550 text", hist)
    t.check(smtp.mail_count() == 4, "no mail stored for tempfail/permfail recipients", smtp.mail_count())

    # -- counts
    st = dl.wait_status(h, "email", done=4, dead=3, pending=0, in_flight=0, retrying=0)
    t.check(True, "status email: done 4, dead 3, nothing pending/in flight/retrying (%s)" % st)
    dead = dl.dead_list(h, "email")
    t.check(sorted(d.get("task_id") for d in dead)
            == sorted([task_rcpt["task_id"], task_temp["task_id"], task_perm["task_id"]]),
            "dead list --channel email: exactly the 3 dead tasks", dead)

    # -- relay down: connection refused is transient; after exhaustion,
    #    `dead retry` with the relay back delivers the same Message-ID
    port = smtp.port
    smtp.stop()
    down = harness.order(501)
    id_down = dl.publish_one(h, down)
    task_down = dl.wait_task(h, id_down, "email", "dead")
    shown = dl.dead_show(h, task_down["task_id"])
    hist = shown.get("history", [])
    t.check([(r.get("attempt"), r.get("outcome", "").lower()) for r in hist] == [(1, "retry"), (2, "retry"), (3, "retry")]
            and all("onnect" in r.get("error", "") for r in hist),
            "relay down: 3 RETRY rows with a connection error, then dead", hist)
    smtp = dl.SmtpServer(h, name="smtp-again", port=port)    # its own out dir (it counts from 1)
    r = dl.dead_cmd(h, "retry", task_down["task_id"])
    t.check(r.returncode == 0, "dead retry TASK_ID exits 0", r.stdout + r.stderr)
    dl.wait_task(h, id_down, "email", "done")
    smtp.wait_mails(1)
    again = [m for m in smtp.mails() if m.rcpt_tos == [down["customer"]["email"]]]
    t.check(len(again) == 1 and again[0].message_id == "<%s@herald>" % task_down["task_id"],
            "dead retry: one mail with Message-ID <TASK_ID@herald> (same idempotency key)",
            [m.message_id for m in again])
    if again:
        t.check(str(again[0].msg.get("X-Herald-Task-Id")) == task_down["task_id"],
                "dead retry: X-Herald-Task-Id is the task id", again[0].msg.get("X-Herald-Task-Id"))
    st = dl.wait_status(h, "email", done=5, dead=3, pending=0, in_flight=0, retrying=0)
    t.check(True, "status email after dead retry: done 5, dead 3 (%s)" % st)
    smtp.stop()


def part_tls(t):
    chans = ("email", "email_noca", "email_plain", "email_auth", "email_badauth", "email_smtps")
    h = t.deployment(channels=chans, driver="smtp")
    cert, key = dl.self_signed_cert(h.tmp)
    tls = dl.SmtpServer(h, name="smtp-tls", tls_cert=cert, tls_key=key)
    plain = dl.SmtpServer(h, name="smtp-plain")
    auth = dl.SmtpServer(h, name="smtp-auth", tls_cert=cert, tls_key=key, auth="herald:s3cret-pw")
    smtps = dl.SmtpServer(h, name="smtps", tls_cert=cert, tls_key=key, implicit_tls=True)
    os.environ["HERALD_TEST_SMTP_PASSWORD"] = "s3cret-pw"
    os.environ["HERALD_TEST_SMTP_BADPASS"] = "not-the-password"
    retry = {"max_attempts": 50, "backoff": "300ms..1s"}
    extra = {
        "email": dl.channel_extra("smtp", dl.smtp_settings(tls, tls="starttls", ca_file=cert), **retry),
        "email_noca": dl.channel_extra("smtp", dl.smtp_settings(tls, tls="starttls"), **retry),
        "email_plain": dl.channel_extra("smtp", dl.smtp_settings(plain, tls="starttls", ca_file=cert),
                                        **retry),
        "email_auth": dl.channel_extra("smtp", dl.smtp_settings(
            auth, tls="starttls", ca_file=cert, username="herald",
            password_env="HERALD_TEST_SMTP_PASSWORD"), **retry),
        "email_badauth": dl.channel_extra("smtp", dl.smtp_settings(
            auth, tls="starttls", ca_file=cert, username="herald",
            password_env="HERALD_TEST_SMTP_BADPASS"), **retry),
        "email_smtps": dl.channel_extra("smtp", dl.smtp_settings(
            smtps, url="smtps://127.0.0.1:%d" % smtps.port, tls="implicit", ca_file=cert), **retry),
    }
    h.write_config(channels=chans, driver="smtp", channel_extra=extra)
    h.start_broker()
    h.start_workers({ch: 1 for ch in chans})
    t.note("STARTTLS relay on %d, plain relay on %d, 3 workers up" % (tls.port, plain.port))

    o = harness.order(401)
    eid = dl.publish_one(h, o)
    done = dl.wait_task(h, eid, "email", "done")
    tls.wait_mails(1)
    noca = dl.wait_task(h, eid, "email_noca", ("retrying", "pending", "in_flight"), attempts=2)
    down = dl.wait_task(h, eid, "email_plain", ("retrying", "pending", "in_flight"), attempts=2)
    mails = tls.mails()
    t.check(len(mails) == 1, "STARTTLS relay stored exactly one mail (the ca_file channel's)",
            [m.message_id for m in mails])
    if mails:
        m = mails[0]
        t.check(m.side.get("tls") is True, "the mail came over TLS (server side)", m.side)
        t.check(m.task_id == done.get("task_id") and m.rcpt_tos == [o["customer"]["email"]],
                "the TLS mail is the email channel's task for the customer",
                (m.message_id, done, m.rcpt_tos))
        t.check(m.msg.get_content_type() == "multipart/alternative",
                "the TLS mail is multipart/alternative", m.msg.get_content_type())
    err = noca.get("last_error", "")
    t.check("certificate" in err.lower(),
            "verify on, no ca_file: retrying with a certificate error", noca)
    t.check(plain.mail_count() == 0, "relay without STARTTLS: no mail delivered (no plaintext fallback)",
            plain.mail_count())
    t.check(down.get("last_error", "") != "", "relay without STARTTLS: retrying with an error", down)
    t.note("no-ca error: %s" % err)
    t.note("no-STARTTLS error: %s" % down.get("last_error"))
    st = h.status()
    for ch in ("email_noca", "email_plain"):
        c = h._channel(st, ch)
        t.check(c.get("done") == 0 and c.get("dead") == 0
                and c.get("retrying", 0) + c.get("pending", 0) + c.get("in_flight", 0) == 1,
                "status %s: the task is still being retried, not done, not dead" % ch, c)
    # AUTH over STARTTLS with the password from the environment
    dl.wait_task(h, eid, "email_auth", "done")
    am = auth.mails()
    t.check(len(am) == 1 and am[0].side.get("auth_login") == "herald" and am[0].side.get("tls") is True,
            "AUTH: one mail, authenticated as herald over TLS", [m.side for m in am])
    t.check(b"s3cret-pw" not in open(h.config, "rb").read(), "AUTH: the password is not in the YAML")
    bad = dl.wait_task(h, eid, "email_badauth", ("dead", "retrying", "pending"), attempts=1)
    t.check("535" in bad.get("last_error", "") and bad.get("state") != "done",
            "AUTH with a wrong password: not delivered, 535 in last_error", bad)
    t.check(len(auth.mails()) == 1, "AUTH with a wrong password: no second mail at the relay")
    t.note("wrong password: %s after %d attempt(s): %s" % (bad.get("state"), bad.get("attempts", 0),
                                                          bad.get("last_error")))

    # implicit TLS (smtps://)
    dl.wait_task(h, eid, "email_smtps", "done")
    sm = smtps.mails()
    t.check(len(sm) == 1 and sm[0].side.get("tls") is True
            and sm[0].msg.get_content_type() == "multipart/alternative",
            "smtps:// implicit TLS: one multipart mail over TLS", [m.side for m in sm])

    # between two attempts, status counts the task as retrying
    wait_until(lambda: h.channel_status("email_noca").get("retrying") == 1, 20,
               lambda: "status email_noca retrying 1: %s" % h.channel_status("email_noca"))
    t.check(True, "status email_noca shows the task retrying between attempts")
    # the failing channels still deliver nothing after more attempts
    dl.wait_task(h, eid, "email_noca", ("retrying", "pending", "in_flight"), attempts=4)
    t.check(len(tls.mails()) == 1 and plain.mail_count() == 0,
            "after more attempts: still one TLS mail and no plaintext mail")
    tls.stop()
    plain.stop()
    auth.stop()
    smtps.stop()


def body(t):
    part_plain(t)
    part_tls(t)


if __name__ == "__main__":
    harness.Test("delivery_smtp", budget=120).run(body)
