"""test_examples: the examples in examples/ do what they promise, against a
real broker. (The C example is built and run against an installed Herald by
test_install.py.)

examples/python/publish_order.py, ZeroMQ and HERALD/2 by hand:
  - publishes its order: exit 0, prints the stored event id, which the broker
    knows (herald track);
  - run again: the same order is ACKed as the first event (a duplicate);
  - against a broker that also requires customer.name: exit 65, the NACK's
    code and reason (naming the field) on stderr;
  - no broker at the endpoint: exit 69 after its 5 s wait."""

import os
import re
import signal
import subprocess
import sys

import harness

EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "python", "publish_order.py")


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


if __name__ == "__main__":
    harness.Test("examples", budget=90).run(body)
