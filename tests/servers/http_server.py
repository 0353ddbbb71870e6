#!/usr/bin/python3
"""http_server.py: a real HTTP server for Herald's tests.

Listens on 127.0.0.1 and records every request as one JSON line in --log
(flushed per line) and in memory:
  {"seq", "time", "method", "path", "headers" (lower-case names), "body",
   "status" (what it answered), "active" (requests being served, this one included)}

Behaviour is set with --mode at start or at run time with
  POST /_control  {"mode": M, "retry_after": "2", "times": N, "hang_seconds": 30,
                   "location": "/elsewhere", "body": "text"}
where M is "ok" (200), "hang" (wait hang_seconds, then 200), "redirect" (302 to
location, default /redirected), "429"/"503" (with Retry-After if retry_after is
set) or any other status code such as "500" or "400"; "body" replaces the text
of those error answers (null: the default). With "times" the mode
applies to the next N requests, then goes back to "ok". Omitted keys keep their
value. GET /_requests returns the recorded list; /_control and /_requests are
not recorded. The real port is written to --port-file (atomically) once
listening. Stops on SIGTERM or SIGINT. Run with Debian's /usr/bin/python3.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, mode, log_path):
        self.lock = threading.Lock()
        self.mode = mode
        self.retry_after = None
        self.times = None
        self.hang_seconds = 30.0
        self.location = "/redirected"
        self.error_body = None
        self.requests = []
        self.active = 0
        self.log = open(log_path, "a", encoding="utf-8") if log_path else None

    def control(self, spec):
        with self.lock:
            if "mode" in spec:
                self.mode = str(spec["mode"])
            if "retry_after" in spec:
                self.retry_after = None if spec["retry_after"] is None else str(spec["retry_after"])
            self.times = spec.get("times")
            if "hang_seconds" in spec:
                self.hang_seconds = float(spec["hang_seconds"])
            if "location" in spec:
                self.location = str(spec["location"])
            if "body" in spec:
                self.error_body = None if spec["body"] is None else str(spec["body"])

    def take(self):
        """The behaviour for one request (consumes one of "times")."""
        with self.lock:
            snap = (self.mode, self.retry_after, self.hang_seconds, self.location, self.error_body)
            if self.times is not None:
                self.times -= 1
                if self.times <= 0:
                    self.mode, self.times = "ok", None
            self.active += 1
            return snap + (self.active,)

    def record(self, entry):
        with self.lock:
            entry["seq"] = len(self.requests) + 1
            self.requests.append(entry)
            if self.log:
                self.log.write(json.dumps(entry) + "\n")
                self.log.flush()

    def done(self):
        with self.lock:
            self.active -= 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "herald-test-http"

    def log_message(self, fmt, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        state = self.server.state
        body = self._body()
        if self.path == "/_control":
            try:
                state.control(json.loads(body or b"{}"))
            except (ValueError, TypeError) as e:
                return self._send(400, ("bad control: %s\n" % e).encode())
            return self._send(200, b'{"ok": true}\n', [("Content-Type", "application/json")])
        if self.path == "/_requests":
            with state.lock:
                data = json.dumps(state.requests).encode()
            return self._send(200, data, [("Content-Type", "application/json")])

        mode, retry_after, hang, location, error_body, active = state.take()
        try:
            status = 200
            if mode == "ok" or mode == "hang":
                pass
            elif mode == "redirect":
                status = 302
            elif mode.isdigit():
                status = int(mode)
            else:
                status = 500
            headers = {}
            for k, v in self.headers.items():
                k = k.lower()
                headers[k] = headers[k] + ", " + v if k in headers else v
            state.record({
                "time": time.time(),
                "method": self.command, "path": self.path, "headers": headers,
                "body": body.decode("utf-8", "replace"), "status": status, "active": active,
            })
            if mode == "hang":
                time.sleep(hang)
            extra = []
            if status in (429, 503) and retry_after is not None:
                extra.append(("Retry-After", retry_after))
            if status == 302:
                extra.append(("Location", location))
            if status == 200:
                self._send(200, b'{"ok": true}\n', [("Content-Type", "application/json")])
            else:
                text = error_body if error_body is not None else \
                    "simulated status %d (mode %s)\n" % (status, mode)
                self._send(status, text.encode("utf-8", "surrogateescape"),
                           [("Content-Type", "text/plain")] + extra)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            state.done()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def main():
    ap = argparse.ArgumentParser(description="HTTP test server for Herald (records requests, scripted answers).")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: chosen by the OS)")
    ap.add_argument("--port-file", required=True, help="file receiving the real port once listening")
    ap.add_argument("--log", help="JSON-lines file recording every request")
    ap.add_argument("--mode", default="ok", help="initial mode: ok, hang, redirect, or a status code")
    args = ap.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args.mode, args.log)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
