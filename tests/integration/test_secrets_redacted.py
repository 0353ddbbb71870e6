"""test_secrets_redacted: credentials and tokens never reach a log or a
task's last_error (`herald dead show`), and what a server says is one
bounded printable line there. Real broker, real herald-worker, the real
HTTP test server (tests/servers/http_server.py).

The inventory channel posts to a webhook-style URL carrying user:password@,
a token path segment and a token query value; the server answers 500 with a
body echoing a token, holding CR LF, an escape sequence and a NUL, and 5000
more bytes. After max_attempts the task is dead, and:
  - last_error and every history row name the URL with ***@, the token
    segment and the token value as ***, quote the body's start with its
    token as ***, are one line of printable characters and are bounded;
  - neither the secrets nor the body's escape byte appear in `herald dead
    show`, the worker's log or the broker's log.
"""

import deliverylib as dl
import harness

SECRETS = ("hookpw", "XXXXXXXXXXXXXXXXXXXXXXXX", "tok123q", "s3cr3t-v4lue")
BODY = "denied: token=s3cr3t-v4lue\r\nX-Injected: yes \x1b[31mred\x00" + "A" * 5000


def body(t):
    h = t.deployment(channels=("inventory",), driver="http")
    srv = dl.HttpServer(h)
    url = ("http://hookuser:hookpw@127.0.0.1:%d/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
           "?token=tok123q&page=1" % srv.port)
    settings = dl.http_settings(srv, url=url, headers=None, body_template=None)
    h.write_config(channels=("inventory",), driver="http", channel_extra={
        "inventory": dl.channel_extra("http", settings, max_attempts=2)})
    srv.control(mode="500", body=BODY)
    broker = h.start_broker()
    worker = h.start_worker("inventory")

    eid = dl.publish_one(h, harness.order(901))
    task = dl.wait_task(h, eid, "inventory", "dead")
    shown = dl.dead_show(h, task["task_id"])
    texts = [shown.get("last_error", "")] + [r.get("error", "") for r in shown.get("history", [])]
    t.note("last_error: %s" % shown.get("last_error"))
    t.check(len(shown.get("history", [])) == 2, "dead after 2 attempts", shown.get("history"))
    for i, text in enumerate(texts):
        what = "last_error" if i == 0 else "history row %d" % i
        t.check(not any(s in text for s in SECRETS), "%s: no secret" % what, text)
        t.check("http://***@127.0.0.1:%d/services/T000/B000/***" % srv.port in text,
                "%s: the URL with ***@ and the token segment as ***" % what, text)
        t.check("HTTP 500: denied: token=***  X-Injected: yes" in text and text.endswith("AAA..."),
                "%s: the body's start, one line, its token as ***, cut with ..." % what, text)
        t.check(all(c >= " " and c != "\x7f" for c in text), "%s: printable, one line" % what,
                repr(text))
        t.check(len(text.encode()) < 1024, "%s: bounded (%d bytes)" % (what, len(text.encode())),
                len(text))
    r = h.herald("dead", "show", task["task_id"], "-c", h.config, config=False)
    t.check(r.returncode == 0 and not any(s in r.stdout + r.stderr for s in SECRETS)
            and "\x1b" not in r.stdout, "`herald dead show` prints no secret and no escape",
            r.stdout + r.stderr)
    for proc in (worker, broker):
        with open(proc.log, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        leaked = [s for s in SECRETS if s in log]
        t.check(not leaked and "\x1b" not in log, "%s log: no secret, no escape byte" % proc.name,
                leaked)
    srv.stop()


if __name__ == "__main__":
    harness.Test("secrets_redacted", budget=60).run(body)
