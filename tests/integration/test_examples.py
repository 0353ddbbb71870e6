"""test_examples: the examples in examples/ do what they promise, against a
real broker. (The C example is built and run against an installed Herald by
test_install.py.)

examples/python/publish_order.py, ZeroMQ and HERALD/2 by hand:
  - publishes its order: exit 0, prints the stored event id, which the broker
    knows (herald track);
  - run again: the same order is ACKed as the first event (a duplicate);
  - against a broker that also requires customer.name: exit 65, the NACK's
    code and reason (naming the field) on stderr;
  - no broker at the endpoint: exit 69 after its 5 s wait.

The HTTP examples, examples/php/publish_order.php (php-cli + curl),
examples/node/publish_order.mjs (built-in fetch) and
examples/python/publish_order_http.py (urllib), against a broker serving
HTTP on a free 127.0.0.1 port:
  - the first one run stores the order (exit 0, "stored as ID"), each other
    one gets the same ID back as a duplicate (order_id is the key);
  - a broker that also requires customer.name: exit 65, "refused (422)" and
    the field on stderr;
  - with security.tokens_file: without HERALD_TOKEN, exit 65 "refused
    (401)"; with a producer token from `herald token new`, exit 0;
  - nothing listening: exit 69."""

import os
import re
import signal
import subprocess
import sys

import harness
import httptest

EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "python", "publish_order.py")
HTTP_EXAMPLES = [
    ("php", ["php", os.path.join(harness.SOURCE_DIR, "examples", "php", "publish_order.php")]),
    ("node", ["node", os.path.join(harness.SOURCE_DIR, "examples", "node", "publish_order.mjs")]),
    ("python", [sys.executable, os.path.join(harness.SOURCE_DIR, "examples", "python", "publish_order_http.py")]),
]


def run_example(endpoint):
    # Debian's python3 (this one) is the one with python3-zmq
    return subprocess.run([sys.executable, EXAMPLE, endpoint], capture_output=True, text=True,
                          timeout=30)


def output(r):
    return "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout[-800:], r.stderr[-800:])


def body(t):
    h = t.deployment()
    broker = h.start_broker()

    r = run_example(h.endpoint("producers"))
    m = re.match(r"stored as (\S+)$", r.stdout.strip())
    t.require(r.returncode == 0 and m, "publish_order.py: exit 0, prints the stored event id", output(r))
    event_id = m.group(1)
    track = h.herald("track", event_id)
    t.check(track.returncode == 0 and event_id in track.stdout, "the broker stored it (herald track)",
            "exit %d %s %s" % (track.returncode, track.stdout[-500:], track.stderr[-500:]))

    r = run_example(h.endpoint("producers"))
    t.check(r.returncode == 0 and r.stdout.strip() == "stored as %s (duplicate)" % event_id,
            "run again: a duplicate, ACKed with the first event's id (order_id is the key)", output(r))

    h.kill(broker, signal.SIGTERM)
    h.write_config(events=[dict(harness.ORDER_CONFIRMED,
                                required=harness.ORDER_CONFIRMED["required"] + ["customer.name"])])
    broker = h.start_broker()
    r = run_example(h.endpoint("producers"))
    t.check(r.returncode == 65 and re.match(r"refused \(422\): .*customer\.name", r.stderr) and not r.stdout,
            "a NACK: exit 65, the code and the reason naming the field on stderr", output(r))

    h.kill(broker, signal.SIGTERM)
    r = run_example("ipc://%s/nobody.sock" % h.tmp)
    t.check(r.returncode == 69 and "no answer" in r.stderr, "no broker: exit 69", output(r))


def run_http(argv, url, token=None):
    env = dict(os.environ)
    env.pop("HERALD_TOKEN", None)
    if token:
        env["HERALD_TOKEN"] = token
    return subprocess.run(argv + [url], capture_output=True, text=True, timeout=30, env=env)


def http_examples(t):
    h = httptest.HttpHerald("examples-http")
    t.deployments.append(h)
    broker = h.start_broker()
    url = "http://127.0.0.1:%d" % h.port
    first = None
    for name, argv in HTTP_EXAMPLES:
        r = run_http(argv, url)
        m = re.match(r"stored as (\S+)( \(duplicate\))?$", r.stdout.strip())
        if first is None:
            t.require(r.returncode == 0 and m and not m.group(2), "%s over HTTP: exit 0, stored as a new event" % name,
                      output(r))
            first = m.group(1)
        else:
            t.check(r.returncode == 0 and m and m.group(1) == first and m.group(2),
                    "%s over HTTP: exit 0, the same order is a duplicate of the first" % name, output(r))
    h.kill(broker, signal.SIGTERM)
    h.write_config(events=[dict(harness.ORDER_CONFIRMED,
                                required=harness.ORDER_CONFIRMED["required"] + ["customer.name"])])
    broker = h.start_broker()
    for name, argv in HTTP_EXAMPLES:
        r = run_http(argv, url)
        t.check(r.returncode == 65 and re.match(r"refused \(422\): .*customer\.name", r.stderr) and not r.stdout,
                "%s over HTTP: a refusal is exit 65 with the code and the field on stderr" % name, output(r))
    h.kill(broker, signal.SIGTERM)
    for name, argv in HTTP_EXAMPLES:
        r = run_http(argv, url)
        t.check(r.returncode == 69 and "no answer" in r.stderr, "%s over HTTP: nothing listening, exit 69" % name,
                output(r))

    k = httptest.HttpHerald("examples-token", tokens=True)
    t.deployments.append(k)
    token = k.token("shop", "producer")
    k.start_broker()
    url = "http://127.0.0.1:%d" % k.port
    for name, argv in HTTP_EXAMPLES:
        r = run_http(argv, url)
        t.check(r.returncode == 65 and "refused (401)" in r.stderr, "%s over HTTP without a token: exit 65, 401" % name,
                output(r))
        r = run_http(argv, url, token=token)
        t.check(r.returncode == 0 and r.stdout.startswith("stored as "), "%s over HTTP with a token: stored" % name,
                output(r))


def all_examples(t):
    body(t)
    http_examples(t)


if __name__ == "__main__":
    harness.Test("examples", budget=120).run(all_examples)
