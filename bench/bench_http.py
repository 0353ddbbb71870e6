#!/usr/bin/python3
"""bench_http: HTTP publishing beside ZeroMQ publishing, on one broker.

    bench/bench_http.py [--bin-dir build/bin] [--seconds 5] [--connections 8]

Starts herald-broker (noop channels, their workers) in a temporary directory
with broker.listen.http on a free port, then measures, each for SECONDS:
  zmq     CONNECTIONS herald_bench_load processes, one event outstanding each
  http    CONNECTIONS herald_http_load processes (keep-alive HTTP clients in
          C), one POST /events outstanding each
  both    the two at once: what HTTP takes from ZeroMQ
and prints events ACKed per second for each. Not a test: numbers depend on the
machine and on what else runs on it. Standard library only."""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_zmq(bin_dir, endpoint, count, base):
    procs = []
    for i in range(count):
        procs.append(subprocess.Popen([os.path.join(bin_dir, "herald_bench_load"), "one", "--system", "herald",
                                       "--endpoint", endpoint, "--id-base", str(base + i * 10000000)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            sys.exit("herald_bench_load did not get ready")
    return procs


def start_http(bin_dir, port, count, base):
    """herald_http_load processes (C, so the client's CPU does not blur the
    broker's rate), ready to go."""
    procs = [subprocess.Popen([os.path.join(bin_dir, "herald_http_load"), "--port", str(port),
                               "--id-base", str(base + i * 10000000)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i in range(count)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            sys.exit("herald_http_load did not get ready")
    return procs


def collect(procs):
    total = 0
    for p in procs:
        out = p.communicate(timeout=120)[0]
        for line in out.splitlines():
            if line.startswith("count "):
                total += int(line.split()[1])
    return total


def run(bin_dir, endpoint, port, connections, seconds, zmq, http_on, base):
    zprocs = start_zmq(bin_dir, endpoint, connections, base) if zmq else []
    hprocs = start_http(bin_dir, port, connections, base + 500000000) if http_on else []
    end_ms = int(time.monotonic() * 1000) + 100 + seconds * 1000
    for p in zprocs + hprocs:
        p.stdin.write("go %d\n" % end_ms)
        p.stdin.flush()
    z = collect(zprocs) / seconds if zmq else None
    h = collect(hprocs) / seconds if http_on else None
    return z, h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="herald-bench-http-")
    ports = [free_port() for _ in range(4)]
    endpoint = "tcp://127.0.0.1:%d" % ports[0]
    config = os.path.join(tmp, "herald.yaml")
    with open(config, "w") as f:
        f.write("broker:\n  listen: { producers: \"%s\", workers: \"tcp://127.0.0.1:%d\", admin: \"tcp://127.0.0.1:%d\",\n"
                "            http: \"127.0.0.1:%d\" }\n  store: \"%s/herald.db\"\n"
                "events:\n  order.confirmed: { key: order_id, required: [order_id, customer.email, items],\n"
                "                    fanout: [email, inventory, courier] }\n"
                "channels:\n  email: { driver: noop }\n  inventory: { driver: noop }\n  courier: { driver: noop }\n"
                % (endpoint, ports[1], ports[2], ports[3], tmp))
    procs = []
    try:
        log = open(os.path.join(tmp, "broker.log"), "w")
        procs.append(subprocess.Popen([os.path.join(args.bin_dir, "herald-broker"), "-c", config], stdout=log, stderr=log))
        for ch in ("email", "inventory", "courier"):
            procs.append(subprocess.Popen([os.path.join(args.bin_dir, "herald-worker"), "-c", config, "--channel", ch],
                                          stdout=log, stderr=log))
        deadline = time.monotonic() + 10
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", ports[3], timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the broker did not start (%s)" % log.name)
            time.sleep(0.05)
        print("bench_http: %d connections x 1 outstanding, %d s each, %d CPUs" % (args.connections, args.seconds,
                                                                                  os.cpu_count()))
        z, _ = run(args.bin_dir, endpoint, ports[3], args.connections, args.seconds, True, False, 1)
        print("zmq alone:   %8.0f events/s" % z)
        _, h = run(args.bin_dir, endpoint, ports[3], args.connections, args.seconds, False, True, 2000000000)
        print("http alone:  %8.0f events/s  (%.2f x zmq)" % (h, h / z if z else 0))
        zb, hb = run(args.bin_dir, endpoint, ports[3], args.connections, args.seconds, True, True, 4000000000)
        print("both:        zmq %8.0f events/s (%.2f x alone), http %8.0f events/s" % (zb, zb / z if z else 0, hb))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
