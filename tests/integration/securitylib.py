"""securitylib: CURVE deployments and hostile ZeroMQ clients for the security
tests (test_security_*.py).

SecureHerald is a harness.Herald whose configuration has a security section
(keys made with the real `herald keygen` in its temp dir) and, with tcp=True,
tcp://127.0.0.1 endpoints on free ports. The clients are pyzmq sockets
(Debian's python3-zmq, on the system libzmq): they speak HERALD/1 themselves,
so a test can open a thousand of them, with no key, unknown keys or the wrong
broker key, and see exactly what the broker answers (nothing).
"""

import json
import os
import re
import resource
import signal
import time
import uuid

import zmq
from zmq.utils.monitor import recv_monitor_message

import harness

EX_NOPERM = 77          # sysexits: the broker's security refused the key or its role

# Key names: the broker's, one per role, one per channel's workers.
PRODUCER, DASH, ONCALL = "shop", "dash", "oncall"
WORKER_KEYS = {"email": "mailer", "inventory": "stock", "courier": "courier"}


def raise_fd_limit():
    """Soft RLIMIT_NOFILE up to the hard limit: a test holds many sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


free_ports = harness.free_ports


def read_public(path):
    with open(path, "rb") as f:
        return f.readline().split()[0]


def read_secret(path):
    """(public, secret) Z85 bytes from a NAME.secret."""
    keys = {}
    with open(path, "rb") as f:
        for line in f:
            m = re.match(rb"\s*(public-key|secret-key)\s*=\s*\"?([^\"\s]+)", line)
            if m:
                keys[m.group(1)] = m.group(2)
    return keys[b"public-key"], keys[b"secret-key"]


class SecureHerald(harness.Herald):
    """A deployment with CURVE. security: dict of YAML lists for the section
    (producers, workers, admin_read, admin_operate), names of keys in
    self.keys; None keeps the defaults. tcp: tcp://127.0.0.1 endpoints."""

    def __init__(self, name, tcp=True, security=None, extra_keys=(), **config):
        self.tcp = tcp
        self.ports = dict(zip(("producers", "workers", "admin"), free_ports(3))) if tcp else {}
        self.security = security or default_security()
        self.extra_keys = tuple(extra_keys)
        self.keydir = None
        super().__init__(name, **config)

    def key(self, name, kind="public"):
        return os.path.join(self.keydir, "%s.%s" % (name, kind))

    def make_keys(self, *names):
        for n in names:
            if os.path.exists(self.key(n)):
                continue
            r = self.herald("keygen", self.key(n)[:-len(".public")], config=False)
            if r.returncode != 0:
                raise harness.TestFailure("herald keygen %s: exit %d %s" % (n, r.returncode, r.stderr))

    def write_config(self, **config):
        self._config_args = config
        if self.keydir is None:
            self.keydir = os.path.join(self.tmp, "keys")
            os.makedirs(self.keydir, exist_ok=True)
            self.make_keys("broker", PRODUCER, DASH, ONCALL, *WORKER_KEYS.values(), *self.extra_keys)
        text = harness.config_text(self.tmp, **config)
        if self.tcp:
            for name, port in self.ports.items():
                text = text.replace(harness._yaml_str("ipc://%s/%s.sock" % (self.tmp, name)),
                                    harness._yaml_str("tcp://127.0.0.1:%d" % port))
        text += self.security_text()
        with open(self.config, "w") as f:
            f.write(text)

    def rewrite(self, security):
        """Writes the config again with another security section."""
        self.security = security
        self.write_config(**self._config_args)

    def security_text(self):
        def files(names):
            return "[%s]" % ", ".join(harness._yaml_str(self.key(n)) for n in names)
        out = ["security:", "  broker_key: %s" % harness._yaml_str(self.key("broker", "secret"))]
        for role in ("producers", "admin_read", "admin_operate"):
            if role in self.security:
                out.append("  %s: %s" % (role, files(self.security[role])))
        workers = self.security.get("workers") or {}
        if workers:
            out.append("  workers: { %s }" % ", ".join("%s: %s" % (ch, files(n)) for ch, n in workers.items()))
        return "\n".join(out) + "\n"

    def endpoint(self, name):
        if self.tcp:
            return "tcp://127.0.0.1:%d" % self.ports[name]
        return super().endpoint(name)

    def broker_public(self):
        return read_public(self.key("broker"))

    def reload(self, broker, timeout=10):
        """SIGHUP to the broker; waits for its log to say what it did and
        returns that line ("security reloaded" or "reload refused ...")."""
        n = len(reload_lines(broker))
        os.kill(broker.pid, signal.SIGHUP)

        def done():
            lines = reload_lines(broker)
            return lines[n] if len(lines) > n else None
        return harness.wait_until(done, timeout, "the broker to log its reload")

    def refused(self):
        """status security.refused (reason -> count)."""
        return self.status()["security"]["refused"]


def default_security():
    return {"producers": [PRODUCER], "admin_read": [DASH], "admin_operate": [ONCALL],
            "workers": {ch: [k] for ch, k in WORKER_KEYS.items()}}


def reload_lines(proc):
    return [l for l in log_lines(proc, "reload")
            if 'msg="security reloaded"' in l or 'msg="reload refused' in l]


def log_lines(proc, needle):
    try:
        with open(proc.log, errors="replace") as f:
            return [l for l in f if needle in l]
    except OSError:
        return []


# ---------------------------------------------------------------- HERALD/1 clients

def envelope(order_id, source="securitylib"):
    return json.dumps({
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": source,
        "type": harness.EVENT_TYPE, "time": "2026-11-30T00:00:00Z",
        "datacontenttype": "application/json", "data": harness.order(order_id),
    }).encode()


def publish_frames(corr, order_id, source="securitylib"):
    return [b"HERALD/1", b"PUBLISH", str(corr).encode(), envelope(order_id, source)]


def admin_frames(corr, verb, args=b"{}"):
    return [b"HERALD/1", b"ADMIN", str(corr).encode(), verb.encode(), args]


def dealer(ctx, endpoint, server_key=None, public=None, secret=None, reconnect=True, monitor=False):
    """A DEALER to endpoint: CURVE when server_key is given (with the client
    pair, or a fresh random one), else the NULL mechanism. Without reconnect
    a refused connection is not tried again, so each socket is exactly one
    connection attempt. monitor: also returns its monitor socket."""
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    if not reconnect:
        s.setsockopt(zmq.RECONNECT_IVL, -1)
    if server_key is not None:
        if public is None:
            public, secret = zmq.curve_keypair()
        s.curve_serverkey = server_key
        s.curve_publickey = public
        s.curve_secretkey = secret
    mon = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
                               | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                               | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL) if monitor else None
    s.connect(endpoint)
    return (s, mon) if monitor else s


def wait_event(mon, events, timeout):
    """Waits for one of events (a set) on a monitor socket; returns it or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mon.poll(int(max(1, (deadline - time.monotonic()) * 1000))):
            ev = recv_monitor_message(mon)
            if ev["event"] in events:
                return ev
    return None


def request(sock, frames, timeout=5.0):
    """Sends frames, returns the reply frames or None after timeout (also
    when the socket has no connection to send on)."""
    try:
        sock.send_multipart(frames, zmq.NOBLOCK)
    except zmq.Again:
        return None
    if sock.poll(int(timeout * 1000)):
        return sock.recv_multipart()
    return None


def replies(socks, timeout=0.3):
    """How many of socks have something to read within timeout."""
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    return len(poller.poll(int(timeout * 1000)))
