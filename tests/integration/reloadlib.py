"""reloadlib: helpers for the reload tests (test_reload.py, test_reload_up.py).

  - Producer: a steady publish load over one long-lived DEALER connection
    (python3-zmq, HERALD/2), paced at a rate, every reply counted: ACKs by
    order id, NACKs by code, replies still missing at the end;
  - logfmt lines of a process log, parsed, and waits on them;
  - SIGHUP a process and wait for the log line that says what it did.

Standard library and python3-zmq only.
"""

import datetime
import json
import os
import re
import signal
import threading
import time
import uuid

import zmq

import harness
from harness import TestFailure, wait_until

_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    """{key: value} of one logfmt line (quoted values unquoted)."""
    out = {}
    for key, value in _PAIR.findall(line):
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        out[key] = value
    return out


def log_records(path, msg=None, contains=None):
    """Parsed logfmt lines of the log at path, optionally those whose msg is
    msg (or starts with it when msg ends with '*') and whose raw line
    contains `contains`."""
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return []
    out = []
    for line in lines:
        if contains and contains not in line:
            continue
        rec = parse_logfmt(line)
        if msg is not None:
            m = rec.get("msg", "")
            if not (m.startswith(msg[:-1]) if msg.endswith("*") else m == msg):
                continue
        rec["_line"] = line.strip()
        out.append(rec)
    return out


def wall(rec):
    """The record's ts as seconds since the epoch."""
    ts = datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return ts.replace(tzinfo=datetime.timezone.utc).timestamp()


def sighup(proc, log_path, msgs=("configuration reloaded", "reload refused*"), timeout=10):
    """SIGHUP to proc; waits for the next log record (in log_path) whose msg
    is one of msgs; returns it."""
    before = sum(len(log_records(log_path, m)) for m in msgs)
    os.kill(proc.pid, signal.SIGHUP)

    def seen():
        recs = sorted((r for m in msgs for r in log_records(log_path, m)), key=lambda r: r["ts"])
        return recs[-1] if len(recs) > before else None
    return wait_until(seen, timeout, "%r to log its reload (%s)" % (proc, " or ".join(msgs)))


def line_of(path, needle):
    """1-based number of the first line of the file holding needle."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if needle in line:
                return n
    raise TestFailure("%r not in %s" % (needle, path))


class Producer(threading.Thread):
    """Publishes order.confirmed orders first, first+1, ... at `rate` per
    second over one DEALER connected to endpoint (never reconnected to
    another), pipelined: each PUBLISH carries its order id as correlation
    id. acks {order_id: event_id}, nacks {code: count}; at stop, the orders
    never answered are `missing`."""

    def __init__(self, endpoint, first=1, rate=30.0, make=None):
        super().__init__(name="producer", daemon=True)
        self.endpoint = endpoint
        self.first = first
        self.rate = rate
        self.make = make or harness.order
        self.sent = {}              # order_id -> monotonic time sent
        self.acks = {}
        self.nacks = {}
        self.nack_reasons = []
        self.next_id = first
        self.error = None
        self._halt = threading.Event()
        self._drain_until = None
        self.lock = threading.Lock()

    def envelope(self, order_id):
        return json.dumps({
            "specversion": "1.0", "id": str(uuid.uuid4()), "source": "reloadlib",
            "type": harness.EVENT_TYPE, "datacontenttype": "application/json",
            "data": self.make(order_id),
        }).encode()

    def acked_count(self):
        with self.lock:
            return len(self.acks)

    def published(self):
        with self.lock:
            return self.next_id - self.first

    def stop(self, drain=15.0):
        """No new orders; waits up to drain seconds for the replies."""
        self._drain_until = time.monotonic() + drain
        self._halt.set()
        self.join(drain + 5)
        if self.error:
            raise TestFailure("producer: %s" % self.error)

    @property
    def missing(self):
        with self.lock:
            return sorted(set(self.sent) - set(self.acks) - {o for o, _ in self.nack_reasons})

    def run(self):
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        try:
            sock.connect(self.endpoint)
            started = time.monotonic()
            while True:
                now = time.monotonic()
                stopping = self._halt.is_set()
                if stopping:
                    with self.lock:
                        waiting = len(self.sent) - len(self.acks) - len(self.nack_reasons)
                    if waiting <= 0 or now >= self._drain_until:
                        break
                elif now >= started + (self.next_id - self.first) / self.rate:
                    oid = self.next_id
                    frames = [b"HERALD/2", b"PUBLISH", str(oid).encode(), self.envelope(oid)]
                    sock.send_multipart(frames)
                    with self.lock:
                        self.sent[oid] = now
                        self.next_id += 1
                    continue
                wait = 0.05 if stopping else max(0.0, started + (self.next_id - self.first) / self.rate - now)
                if sock.poll(int(wait * 1000) + 1):
                    while True:
                        try:
                            reply = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._reply(reply)
        except Exception as e:      # reported by stop()
            self.error = repr(e)
        finally:
            sock.close(0)
            ctx.term()

    def _reply(self, reply):
        if len(reply) < 3:
            self.error = "short reply %r" % reply
            return
        oid = int(reply[2])
        with self.lock:
            if reply[1] == b"ACK":
                self.acks[oid] = reply[3].decode()
            elif reply[1] == b"NACK":
                code = reply[3].decode()
                self.nacks[code] = self.nacks.get(code, 0) + 1
                self.nack_reasons.append((oid, reply[4].decode("utf-8", "replace")))
            else:
                self.error = "unexpected reply %r" % reply[:2]


def worker_lost_lines(broker_log):
    return [r["_line"] for r in log_records(broker_log, "worker lost")]


def ensure_no_error(t, producer):
    t.check(producer.error is None, "the producer ran without error", producer.error)
