"""test_delivery_email_file: the demo's email is the email. One event fans
out to two email channels with the same smtp settings: `email` sends through
the smtp driver to the real SMTP test server (aiosmtpd), `email_file` writes
with the file driver. Real broker, real workers.

For each order (a plain one, one with markup and non-ASCII in the name):
  - both are multipart/alternative with text/plain then text/html parts,
    quoted-printable, UTF-8;
  - From, To, Subject, MIME-Version and X-Herald-Attempt are the same, the
    decoded Subject and both decoded parts are the same (Python's email
    module parses both);
  - Message-ID is <TASK_ID@herald> of each channel's own task;
  - once the task ids and boundaries are swapped and the Date line
    dropped, the bytes are the same (the file driver writes what the relay
    received).
"""

import email
import email.policy
import os

import deliverylib as dl
import harness

SUBJECT = "Order {{data.order_id}} confirmed for {{data.customer.name}}"
SAME_HEADERS = ("From", "To", "Subject", "MIME-Version", "X-Herald-Attempt", "Content-Transfer-Encoding")


def structure(msg):
    """[(content type, charset, transfer encoding, decoded text)] of msg's parts."""
    out = []
    for part in msg.walk():
        if part.is_multipart():
            out.append((part.get_content_type(), None, None, None))
        else:
            out.append((part.get_content_type(), part.get_content_charset(),
                        part.get("Content-Transfer-Encoding"), part.get_content()))
    return out


def comparable(raw, msg, task_id):
    """raw without its Date line, its boundary and task_id replaced (the
    boundary is made from the task id, which differs per channel)."""
    lines = [l for l in raw.split(b"\r\n") if not l.startswith(b"Date: ")]
    out = b"\r\n".join(lines)
    boundary = msg.get_boundary()
    if boundary:
        out = out.replace(boundary.encode(), b"BOUNDARY")
    return out.replace(task_id.encode(), b"TASK")


def body(t):
    chans = ("email", "email_file")
    h = t.deployment(channels=chans, driver="smtp")
    smtp = dl.SmtpServer(h)
    settings = dl.smtp_settings(smtp, subject=SUBJECT)
    file_settings = {k: v for k, v in settings.items() if k in
                     ("from", "to", "subject", "text_template", "html_template")}
    h.write_config(channels=chans, driver="smtp", channel_extra={
        "email": dl.channel_extra("smtp", settings),
        "email_file": dict(dl.channel_extra("smtp", file_settings),
                           dir=dl.flow(h.outbox("email_file"))),
    })
    # the file channel: same mapping, driver file
    text = open(h.config).read()
    head, _, tail = text.partition("  email_file:\n    driver: smtp\n")
    t.require(tail, "config has the email_file channel", text)
    with open(h.config, "w") as f:
        f.write(head + "  email_file:\n    driver: file\n" + tail)
    h.start_broker()
    h.start_workers({"email": 1, "email_file": 1})

    orders = [harness.order(701), harness.order(702)]
    orders[1]["customer"]["name"] = "Zoë <b>&</b> \"Ünïcode\" 東京"
    ids = [dl.publish_one(h, o) for o in orders]
    smtp.wait_mails(len(orders))
    for o, eid in zip(orders, ids):
        what = "order %s" % o["order_id"]
        sent_task = dl.wait_task(h, eid, "email", "done")["task_id"]
        file_task = dl.wait_task(h, eid, "email_file", "done")["task_id"]
        sent = [m for m in smtp.mails() if m.task_id == sent_task]
        t.require(len(sent) == 1, "%s: one mail at the relay" % what, [m.message_id for m in smtp.mails()])
        sent = sent[0]
        path = os.path.join(h.outbox("email_file"), "%s.eml" % file_task)
        t.require(os.path.exists(path), "%s: the file driver wrote %s" % (what, path))
        with open(path, "rb") as f:
            raw = f.read()
        msg = email.message_from_bytes(raw, policy=email.policy.default)

        s_struct, f_struct = structure(sent.msg), structure(msg)
        t.check([x[:3] for x in s_struct] == [
            ("multipart/alternative", None, None),
            ("text/plain", "utf-8", "quoted-printable"),
            ("text/html", "utf-8", "quoted-printable")],
            "%s: the relay got multipart/alternative, text then html, QP UTF-8" % what, s_struct)
        t.check([x[:3] for x in f_struct] == [x[:3] for x in s_struct],
                "%s: the file has the same MIME structure" % what, f_struct)
        t.check([x[3] for x in f_struct] == [x[3] for x in s_struct],
                "%s: the same decoded parts" % what,
                "relay: %r\nfile:  %r" % ([x[3] for x in s_struct], [x[3] for x in f_struct]))
        for name in SAME_HEADERS:
            t.check(str(msg.get(name)) == str(sent.msg.get(name)),
                    "%s: %s is the same" % (what, name), (msg.get(name), sent.msg.get(name)))
        t.check(str(msg["Subject"]) == "Order %s confirmed for %s" % (o["order_id"], o["customer"]["name"]),
                "%s: decoded Subject is the rendered one" % what, msg["Subject"])
        t.check(str(msg["Message-ID"]) == "<%s@herald>" % file_task
                and sent.message_id == "<%s@herald>" % sent_task,
                "%s: each Message-ID is its own task's" % what, (msg["Message-ID"], sent.message_id))
        a, b = comparable(sent.raw, sent.msg, sent_task), comparable(raw, msg, file_task)
        t.check(a == b, "%s: the same bytes but Date, boundary and task id" % what,
                "relay:\n%s\nfile:\n%s" % (a[:1500].decode("utf-8", "replace"),
                                          b[:1500].decode("utf-8", "replace")))
    smtp.stop()


if __name__ == "__main__":
    harness.Test("delivery_email_file", budget=90).run(body)
