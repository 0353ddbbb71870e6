"""test_check_config: configuration mistakes are caught before they loop.

`herald check-config` and `herald-broker --check-config` (the systemd unit's
ExecStartPre) exit 78 naming FILE:LINE: key for what a process would fail on
at start: a missing template, an unset smtp.password_env or header
{env: NAME}, two endpoints on the same port, a store directory that cannot be
created, a missing CA file. `herald up` refuses such a config before starting
anything. A child exiting 78 for a reason only it can see (an unusable From
address) stops the whole stack: `herald up` exits 78 with the child's
message instead of restarting it for ever. Start-up errors of the broker and
the workers are log lines."""

import os
import re
import subprocess

import harness

SMTP = {
    "url": '"smtp://127.0.0.1:1"', "tls": "none", "from": '"Shop <orders@shop.example>"',
    "to": '"{{data.customer.email}}"', "subject": '"Order {{data.order_id}}"',
}


def run(argv, env=None, timeout=30, cwd=None):
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("`%s` did not finish within %ss" % (" ".join(argv), timeout))


def show(r):
    return "exit %d\nstdout %r\nstderr %r" % (r.returncode, r.stdout[-400:], r.stderr[-800:])


def line_of(path, needle):
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if needle in text:
                return number
    raise harness.TestFailure("%s has no line with %r" % (path, needle))


def smtp_channel(h, template, extra=""):
    """The email channel as an smtp channel (the others stay file)."""
    text = open(h.config).read()
    block = ("    driver: smtp\n    smtp:\n" +
             "".join("      %s: %s\n" % kv for kv in SMTP.items()) +
             "      text_template: %s\n      html_template: %s\n" % (template, template) + extra)
    start = text.index("  email:\n") + len("  email:\n")
    end = text.index("  inventory:\n")
    return text[:start] + block + text[end:]


def body(t):
    h = t.deployment()
    herald = harness.binary("herald")
    broker = harness.binary("herald-broker")
    worker = harness.binary("herald-worker")
    good = open(h.config).read()
    template = os.path.join(h.tmp, "order.txt")
    with open(template, "w") as f:
        f.write("Order {{data.order_id}}\n")
    plain = os.path.join(h.tmp, "plain")
    with open(plain, "w") as f:
        f.write("a file, not a directory\n")

    r = run([herald, "check-config", "-c", h.config])
    t.check(r.returncode == 0, "the test config passes", show(r))
    r = run([broker, "--check-config", "-c", h.config])
    t.check(r.returncode == 0 and "valid" in r.stderr, "herald-broker --check-config passes it too",
            show(r))

    cases = {
        "missing template": (
            smtp_channel(h, os.path.join(h.tmp, "nope.txt")),
            "text_template:", "channels.email.smtp.text_template", "nope.txt", {}),
        "unset password_env": (
            smtp_channel(h, template, "      username: shop\n      password_env: HERALD_TEST_NO_PASSWORD\n"),
            "password_env:", "channels.email.smtp.password_env", "HERALD_TEST_NO_PASSWORD is not set",
            {"HERALD_TEST_NO_PASSWORD": None}),
        "unset header variable": (
            good.replace("  inventory:\n    driver: file\n",
                         "  inventory:\n    driver: http\n    http:\n      url: \"http://127.0.0.1:1/x\"\n"
                         "      headers:\n        Authorization: { env: HERALD_TEST_NO_TOKEN }\n", 1),
            "Authorization:", "channels.inventory.http.headers.Authorization",
            "HERALD_TEST_NO_TOKEN is not set", {"HERALD_TEST_NO_TOKEN": None}),
        "two endpoints on one port": (
            good.replace('admin: "ipc://%s/admin.sock"' % h.tmp, 'admin: "tcp://127.0.0.1:15570"', 1)
                .replace('producers: "ipc://%s/producers.sock"' % h.tmp, 'producers: "tcp://*:15570"', 1),
            "admin:", "broker.listen.admin", "tcp://127.0.0.1:15570", {}),
        "store directory not creatable": (
            good.replace('store: "%s/herald.db"' % h.tmp, 'store: "%s/sub/herald.db"' % plain, 1),
            "store:", "broker.store", "is not a directory", {}),
        "missing CA file": (
            smtp_channel(h, template, "      ca_file: %s/ca.pem\n" % h.tmp),
            "ca_file:", "channels.email.smtp.ca_file", "ca.pem", {}),
    }
    for label, (text, line_mark, key, detail, env) in cases.items():
        if text == good:
            t.check(False, "%s: the broken config could be made" % label)
            continue
        path = os.path.join(h.tmp, "broken-%s.yaml" % label.replace(" ", "-"))
        with open(path, "w") as f:
            f.write(text)
        where = "%s:%d: %s:" % (path, line_of(path, line_mark), key)
        r = run([herald, "check-config", "-c", path], env=env)
        t.check(r.returncode == harness.EX_CONFIG and where in r.stderr and detail in r.stderr,
                "check-config, %s: exit 78 naming %s" % (label, where.replace(h.tmp, "TMP")), show(r))
        r = run([broker, "--check-config", "-c", path], env=env)
        t.check(r.returncode == harness.EX_CONFIG and where in r.stderr,
                "herald-broker --check-config, %s: exit 78, same message" % label, show(r))
        if label == "missing template":
            # spawned in its own process group: on failure, the harness kills its children too
            up = h.spawn("up-missing-template", [herald, "up", "-c", path])
            rc = h.wait_exit(up, timeout=15)
            out = open(up.log).read()
            t.check(rc == harness.EX_CONFIG and where in out and "msg=started" not in out,
                    "herald up refuses it (exit 78, same message) and starts nothing",
                    "exit %s: %s" % (rc, out[-800:]))
            w = run([worker, "-c", path, "--channel", "email"], env=env)
            lines = [l for l in w.stderr.splitlines() if l.strip()]
            t.check(w.returncode == harness.EX_CONFIG and lines and
                    all(l.startswith("ts=") and " level=" in l for l in lines) and
                    "level=error" in w.stderr and "text_template" in w.stderr,
                    "the worker itself exits 78 with a logfmt error line naming the key", show(w))
    r = run([broker, "-c", os.path.join(h.tmp, "missing.yaml"), "--log-format", "json"])
    t.check(r.returncode == harness.EX_CONFIG and r.stderr.startswith("{")
            and '"level":"error"' in r.stderr and "missing.yaml" in r.stderr,
            "the broker's start-up error is a log line (json with --log-format json)", show(r))

    # -- a child exits 78 for a reason check-config cannot see: the stack stops
    text = smtp_channel(h, template).replace('from: "Shop <orders@shop.example>"',
                                             'from: "Shop <no-address>"', 1)
    path = os.path.join(h.tmp, "bad-from.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = run([herald, "check-config", "-c", path])
    t.require(r.returncode == 0, "check-config passes the bad From (the worker finds it)", show(r))
    up = h.spawn("up-bad-from", [herald, "up", "-c", path])
    rc = h.wait_exit(up, timeout=30)
    out = open(up.log).read()
    t.check(rc == harness.EX_CONFIG, "herald up exits 78 when a worker exits 78", "exit %s\n%s"
            % (rc, out[-1500:]))
    last = [l for l in out.splitlines() if l.strip()][-1] if out.strip() else ""
    t.check(last.startswith("herald up: a worker of channel email exited with status 78")
            and "smtp.from" in last,
            "its last line repeats the worker's message", last)
    t.check("restart scheduled child=worker channel=email" not in out,
            "the email worker is not restarted", out[-1500:])
    exits = re.findall(r"msg=exited (child=\S+(?: channel=\S+)?)", out)
    t.check(sorted(exits) == ["child=broker", "child=worker channel=courier",
                              "child=worker channel=email", "child=worker channel=inventory"],
            "every other child was stopped", exits)


if __name__ == "__main__":
    harness.Test("check_config", budget=90).run(body)
