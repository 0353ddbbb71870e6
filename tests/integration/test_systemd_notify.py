"""test_systemd_notify: herald-broker speaks sd_notify(3) to a Type=notify
unit's service manager. The test plays systemd: it binds the datagram socket
named by NOTIFY_SOCKET and starts the real broker with it.

  - READY=1 comes once the broker is bound and has recovered its store: when
    it arrives, the endpoints exist and a publish is ACKed;
  - SIGHUP brings RELOADING=1 (with MONOTONIC_USEC, as systemd's
    Type=notify-reload wants it), then READY=1 once the file is applied;
  - SIGTERM brings STOPPING=1, then a clean exit 0;
  - without NOTIFY_SOCKET the broker runs as before (every other test)."""

import json
import os
import signal
import socket
import subprocess

import harness


def receive_until(sock, wanted, proc, seen, timeout):
    """Collects datagrams into seen until one holds the line `wanted`."""
    def arrived():
        sock.settimeout(harness.POLL_INTERVAL)
        try:
            seen.append(sock.recv(4096).decode("utf-8", "replace"))
        except socket.timeout:
            if not proc.alive():
                raise harness.TestFailure("the broker exited (%s) before sending %s; got %r"
                                          % (proc.popen.returncode, wanted, seen))
        return any(wanted in message.split("\n") for message in seen)
    harness.wait_until(arrived, timeout, lambda: "%s from the broker (got %r)" % (wanted, seen))


def body(t):
    h = t.deployment(broker={"shutdown_timeout": "5s"})
    path = os.path.join(h.tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        broker = h.spawn("broker", [harness.binary("herald-broker"), "-c", h.config],
                         env={"NOTIFY_SOCKET": path})
        seen = []
        receive_until(sock, "READY=1", broker, seen, timeout=20)
        t.check(seen == ["READY=1"], "READY=1 is the first message", seen)

        # Ready means bound: the three ipc:// endpoints exist already, and a
        # publish is ACKed.
        sockets = [h.endpoint(name)[len("ipc://"):] for name in ("producers", "workers", "admin")]
        missing = [p for p in sockets if not os.path.exists(p)]
        t.check(not missing, "at READY=1 the broker's endpoints are bound", missing)
        argv = [harness.binary("herald"), "publish", "--endpoint", h.endpoint("producers"),
                "--type", harness.EVENT_TYPE, "--timeout", "3000", "--json",
                "--data", json.dumps(harness.order(1))]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        t.check(r.returncode == 0 and '"event_id"' in r.stdout,
                "a publish sent the moment READY=1 arrived is ACKed",
                "exit %d stdout %r stderr %r" % (r.returncode, r.stdout, r.stderr[-500:]))

        h.send_signal(broker, signal.SIGHUP)
        seen = []
        receive_until(sock, "READY=1", broker, seen, timeout=20)
        lines = [m.split("\n") for m in seen]
        t.check(len(lines) == 2 and lines[0][0] == "RELOADING=1"
                and any(x.startswith("MONOTONIC_USEC=") for x in lines[0]) and lines[1] == ["READY=1"],
                "SIGHUP brings RELOADING=1 with MONOTONIC_USEC, then READY=1", seen)

        h.send_signal(broker, signal.SIGTERM)
        seen = []
        receive_until(sock, "STOPPING=1", broker, seen, timeout=20)
        t.check(seen == ["STOPPING=1"], "SIGTERM brings STOPPING=1", seen)
        code = h.wait_exit(broker, timeout=20)
        t.check(code == 0, "the broker then exits 0", "exit %s" % code)
    finally:
        sock.close()


if __name__ == "__main__":
    harness.Test("systemd_notify", budget=90).run(body)
