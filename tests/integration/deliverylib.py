"""deliverylib: helpers for the real-delivery integration tests
(test_delivery_smtp.py, test_delivery_http.py), on top of harness.py.

  - the test servers (tests/servers/smtp_server.py, http_server.py), started
    with Debian's /usr/bin/python3 on 127.0.0.1 port 0 as processes of the
    deployment (so their logs are printed on failure and harness kills them
    at the end), stopped by PID with SIGTERM;
  - channel configuration for the smtp and http drivers (JSON flow mappings,
    which are valid YAML);
  - the admin commands as data: publish one event -> its id, `track`,
    `dead list|show|retry|purge`, waits on a task's state with deadlines.

Standard library only.
"""

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import time
import urllib.request

import harness
from harness import TestFailure, wait_until

PYTHON = "/usr/bin/python3"
SERVERS = os.path.join(harness.SOURCE_DIR, "tests", "servers")
TEMPLATES = os.path.join(harness.SOURCE_DIR, "etc", "templates")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def flow(obj):
    """A YAML flow scalar/mapping for obj (JSON is valid YAML)."""
    return json.dumps(obj)


# ---------------------------------------------------------------- servers

class Server:
    """A test server process of deployment h; port read from its port file."""

    def __init__(self, h, name, argv, timeout=15, port=0):
        self.h = h
        self.name = name
        self.port_file = os.path.join(h.tmp, "%s.port" % name)
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        self.proc = h.spawn(name, [PYTHON] + argv + ["--port", str(port), "--port-file", self.port_file])

        def ready():
            if not self.proc.alive():
                raise TestFailure("%r exited with %s while starting:\n%s"
                                  % (self.proc, self.proc.popen.returncode, harness.tail(self.proc.log)))
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                return int(text) if text else None
            except (OSError, ValueError):
                return None
        self.port = wait_until(ready, timeout, "%s to write its port file" % name)

    def stop(self, timeout=10):
        """SIGTERM by PID, then waits; SIGKILL if it does not go."""
        if self.proc.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.popen.wait(timeout=5)
        return self.proc.popen.returncode


class Mail:
    """One mail the SMTP server stored: side (envelope sidecar), raw bytes,
    msg (email.message.EmailMessage, default policy)."""

    def __init__(self, base):
        with open(base + ".json") as f:
            self.side = json.load(f)
        with open(base + ".eml", "rb") as f:
            self.raw = f.read()
        self.msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        self.path = base + ".eml"

    @property
    def rcpt_tos(self):
        return self.side.get("rcpt_tos") or []

    @property
    def message_id(self):
        return str(self.msg.get("Message-ID", ""))

    @property
    def task_id(self):
        m = re.match(r"^<(.+)@herald>$", self.message_id.strip())
        return m.group(1) if m else None

    def part(self, ctype):
        """Decoded text of the first part of content type ctype, or None."""
        for p in self.msg.walk():
            if p.get_content_type() == ctype and not p.is_multipart():
                return p.get_content()
        return None


class SmtpServer(Server):
    def __init__(self, h, name="smtp", tls_cert=None, tls_key=None, implicit_tls=False, auth=None,
                 port=0, data_delay=None):
        """port 0: the OS chooses; a port number: restart on that port.
        Give a restarted server another name: the server numbers its mails
        from 1 and would overwrite the first server's files. data_delay:
        seconds the server waits before answering DATA (a slow relay)."""
        self.out_dir = os.path.join(h.tmp, "%s-mails" % name)
        argv = [os.path.join(SERVERS, "smtp_server.py"), "--out-dir", self.out_dir]
        if tls_cert:
            argv += ["--tls-cert", tls_cert, "--tls-key", tls_key]
        if implicit_tls:
            argv += ["--implicit-tls"]
        if auth:
            argv += ["--auth", auth]
        if data_delay:
            argv += ["--data-delay", str(data_delay)]
        Server.__init__(self, h, name, argv, port=port)

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def mail_count(self):
        try:
            return sum(1 for n in os.listdir(self.out_dir) if n.endswith(".eml"))
        except FileNotFoundError:
            return 0

    def mails(self):
        """Every stored mail, in arrival order."""
        try:
            names = sorted(n for n in os.listdir(self.out_dir) if n.endswith(".eml"))
        except FileNotFoundError:
            return []
        return [Mail(os.path.join(self.out_dir, n[:-4])) for n in names]

    def wait_mails(self, n, timeout=30):
        return wait_until(lambda: self.mail_count() >= n, timeout,
                          lambda: "%d mail(s) at %s (have %d)" % (n, self.name, self.mail_count()))


class HttpServer(Server):
    def __init__(self, h, name="http", mode="ok"):
        self.log = os.path.join(h.tmp, "%s-requests.jsonl" % name)
        Server.__init__(self, h, name, [os.path.join(SERVERS, "http_server.py"),
                                        "--log", self.log, "--mode", mode])

    def url(self, path="/v1/reservations"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode() or "null")

    def control(self, **spec):
        """POST /_control spec (mode, retry_after, times, hang_seconds)."""
        return self._call("POST", "/_control", spec)

    def requests(self, path=None):
        """The recorded requests (optionally only those to path)."""
        reqs = self._call("GET", "/_requests")
        return [r for r in reqs if path is None or r.get("path") == path]

    def wait_requests(self, n, timeout=30, path=None):
        return wait_until(lambda: len(self.requests(path)) >= n and self.requests(path), timeout,
                          lambda: "%d request(s) at %s (have %d)" % (n, self.name, len(self.requests(path))))


def self_signed_cert(directory, cn="127.0.0.1"):
    """(cert, key) PEM paths of a fresh self-signed certificate for 127.0.0.1
    (CN and subjectAltName IP), made with `openssl req -x509`."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=%s" % cn,
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-addext", "basicConstraints=critical,CA:TRUE"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise TestFailure("openssl req -x509 failed: %s" % r.stderr[-1000:])
    return cert, key


# ---------------------------------------------------------------- config

def smtp_settings(server, **over):
    """An smtp: mapping for the order confirmation through server."""
    s = {
        "url": server.url,
        "tls": "none",
        "from": "Shop <orders@shop.example>",
        "to": "{{data.customer.email}}",
        "subject": "Order {{data.order_id}} confirmed",
        "text_template": os.path.join(TEMPLATES, "order_confirmed.txt"),
        "html_template": os.path.join(TEMPLATES, "order_confirmed.html"),
        "timeout": "5s",
    }
    s.update(over)
    return {k: v for k, v in s.items() if v is not None}


def http_settings(server, **over):
    s = {
        "method": "POST",
        "url": server.url(),
        "headers": {"X-Api-Key": {"env": "HERALD_TEST_API_KEY"},
                    "Content-Type": "application/json"},
        "body_template": os.path.join(TEMPLATES, "inventory.json"),
        "connect_timeout": "1s",
        "timeout": "2s",
    }
    s.update(over)
    return {k: v for k, v in s.items() if v is not None}


def channel_extra(driver_key, settings, max_attempts=4, backoff="50ms..200ms", **keys):
    """channel_extra entries: retry policy, the driver mapping, other keys
    (rate, burst, capacity, max_in_flight, lease) as given."""
    out = {"retry": flow({"max_attempts": max_attempts, "backoff": backoff}),
           driver_key: flow(settings)}
    for k, v in keys.items():
        if v is not None:
            out[k] = flow(v) if not isinstance(v, str) else v
    return out


# ---------------------------------------------------------------- admin

def admin_json(h, *args):
    """`herald ARGS -c CONFIG --json` parsed (options after the subcommand's
    words: `herald dead -c F show` is refused); TestFailure on a non-zero exit."""
    r = h.herald(*(list(args) + ["-c", h.config, "--json"]), timeout=15, config=False)
    if r.returncode != 0:
        raise TestFailure("`herald %s --json` exit %d: %s %s"
                          % (" ".join(args), r.returncode, r.stdout[-500:], r.stderr[-500:]))
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise TestFailure("`herald %s --json` printed no JSON: %r" % (" ".join(args), r.stdout[-500:]))


def publish_one(h, data):
    """Publishes one event; returns its event id (TestFailure otherwise)."""
    r = h.publish(data=data, timeout=20)
    ids = [l.strip() for l in r.stdout.splitlines() if UUID_RE.match(l.strip())]
    if r.returncode != 0 or len(ids) != 1:
        raise TestFailure("publish of %s: exit %d, stdout %r, stderr %r"
                          % (json.dumps(data)[:200], r.returncode, r.stdout[-300:], r.stderr[-300:]))
    return ids[0]


def publish_many(h, datas):
    """Publishes events from a JSON-lines file; returns the event ids in order."""
    path = os.path.join(h.tmp, "batch-%d.jsonl" % int(time.monotonic() * 1000))
    harness.write_jsonl(path, datas)
    r = h.publish(file=path, timeout=30)
    ids = [l.strip() for l in r.stdout.splitlines() if UUID_RE.match(l.strip())]
    if r.returncode != 0 or len(ids) != len(datas):
        raise TestFailure("publish of %d events: exit %d, %d ids, stderr %r"
                          % (len(datas), r.returncode, len(ids), r.stderr[-500:]))
    return ids


def track(h, event_id):
    """{channel: {task_id, state, attempts, last_error, ...}} of one event."""
    reply = admin_json(h, "track", event_id)
    out = {}
    for ev in reply.get("events", []):
        for ch in ev.get("channels", []):
            out[ch.get("channel")] = ch
    return out


def task_of(h, event_id, channel):
    return track(h, event_id).get(channel) or {}


def wait_task(h, event_id, channel, states, timeout=30, attempts=None):
    """Waits until the event's task on channel is in one of states (a str
    or tuple) and, if given, has at least `attempts` attempts; returns it."""
    if isinstance(states, str):
        states = (states,)
    last = {}

    def ok():
        last.clear()
        last.update(task_of(h, event_id, channel))
        if last.get("state") in states and (attempts is None or last.get("attempts", 0) >= attempts):
            return dict(last)
        return None
    return wait_until(ok, timeout, lambda: "%s task of event %s in %s%s; now %s"
                      % (channel, event_id, "/".join(states),
                         "" if attempts is None else " with %d attempts" % attempts, last))


def dead_list(h, channel=None):
    args = ["dead", "list"] + (["--channel", channel] if channel else [])
    return admin_json(h, *args).get("tasks", [])


def dead_show(h, task_id):
    return admin_json(h, "dead", "show", task_id).get("task", {})


def dead_cmd(h, verb, *args):
    """`herald dead VERB ARGS` (retry / purge): CompletedProcess."""
    return h.herald("dead", verb, *(list(args) + ["-c", h.config]), timeout=15, config=False)


def channel_counts(h, channel):
    c = h.channel_status(channel)
    return {k: c.get(k) for k in ("pending", "in_flight", "retrying", "done", "dead", "workers")}


def wait_status(h, channel, timeout=20, **want):
    """Waits until `herald status` shows the given counts for channel."""
    last = {}

    def ok():
        last.clear()
        last.update(channel_counts(h, channel))
        return all(last.get(k) == v for k, v in want.items()) and dict(last)
    return wait_until(ok, timeout, lambda: "status %s %s; now %s" % (channel, want, last))
