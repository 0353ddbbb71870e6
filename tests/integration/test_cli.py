"""test_cli: the command-line contract. --help and --version exit 0 for every
command; usage errors exit 64; check-config accepts the sample config (78 with
"FILE:LINE:" for broken ones); publish with no broker exits 69 quickly."""

import os
import re
import subprocess
import time

import harness

SAMPLE = os.path.join(harness.SOURCE_DIR, "etc", "herald.yaml")


def run(argv, timeout=20, cwd=None):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("`%s` did not finish within %ss" % (" ".join(argv), timeout))


def show(r):
    return "exit %d\nstdout %r\nstderr %r" % (r.returncode, r.stdout[-600:], r.stderr[-600:])


def body(t):
    h = t.deployment()
    herald = harness.binary("herald")
    broker = harness.binary("herald-broker")
    worker = harness.binary("herald-worker")
    version = "0.1.0"

    # -- --help / --version
    for name, argv in (("herald", [herald]), ("herald-broker", [broker]),
                       ("herald-worker", [worker])):
        r = run(argv + ["--help"])
        t.check(r.returncode == 0 and "usage" in (r.stdout + r.stderr).lower(),
                "%s --help exits 0 and shows usage" % name, show(r))
        t.check(r.stdout.strip() != "", "%s --help prints on stdout" % name, show(r))
        r = run(argv + ["--version"])
        t.check(r.returncode == 0 and version in r.stdout, "%s --version exits 0 and says %s"
                % (name, version), show(r))
    for sub in ("publish", "status", "dead", "track", "check-config", "up"):
        r = run([herald, sub, "--help"])
        t.check(r.returncode == 0 and r.stdout.strip() != "", "herald %s --help exits 0" % sub,
                show(r))

    # -- usage errors: 64
    usage = [
        [herald],
        [herald, "frobnicate"],
        [herald, "publish", "--no-such-option"],
        [herald, "publish", "-c", h.config, "--type", "order.confirmed",
         "--data", "{}", "--file", "/dev/null"],                        # two inputs
        [herald, "status", "--timeout", "soon"],
        [broker, "--no-such-option"],
        [worker, "-c", h.config],                                       # no --channel
        [worker, "--no-such-option"],
    ]
    for argv in usage:
        r = run(argv)
        label = " ".join(os.path.basename(a) if a.startswith("/") else a for a in argv)
        t.check(r.returncode == harness.EX_USAGE and r.stderr.strip() != "",
                "`%s` exits 64 with a message on stderr" % label, show(r))

    # data without a type anywhere: the envelope could have carried it, so
    # 65 (bad input) is as fair as 64; the message must say what to add
    r = run([herald, "publish", "-c", h.config, "--data", '{"order_id": 1}'])
    t.check(r.returncode in (harness.EX_USAGE, harness.EX_DATAERR) and "--type" in r.stderr,
            "publish of data with no type exits 64/65 asking for --type", show(r))

    # -- check-config
    if t.check(os.path.exists(SAMPLE), "the sample %s exists" % SAMPLE):
        r = run([herald, "check-config", "-c", SAMPLE], cwd=harness.SOURCE_DIR)
        t.check(r.returncode == 0, "herald check-config accepts etc/herald.yaml", show(r))
        t.check("email" in r.stdout and "order.confirmed" in r.stdout,
                "check-config explains the sample (its channels and event types)", show(r))
    r = run([herald, "check-config", "-c", h.config])
    t.check(r.returncode == 0, "herald check-config accepts the test config", show(r))

    good = open(h.config).read()
    broken = {
        "yaml syntax": good.replace("events:", "events: [unclosed", 1),
        "unknown key": good.replace("broker:\n", "broker:\n  no_such_key: 1\n", 1),
        "bad duration": good.replace("heartbeat: 200ms", "heartbeat: soon", 1),
        "fanout to an unknown channel": good.replace("fanout: [email,", "fanout: [telegraph,", 1),
        "unknown driver": good.replace("driver: file", "driver: pigeon", 1),
    }
    for label, text in broken.items():
        if text == good:
            t.check(False, "broken config '%s' could be made from the test config" % label)
            continue
        path = os.path.join(h.tmp, "broken-%s.yaml" % label.replace(" ", "-"))
        with open(path, "w") as f:
            f.write(text)
        r = run([herald, "check-config", "-c", path])
        t.check(r.returncode == harness.EX_CONFIG, "check-config on %s exits 78" % label, show(r))
        t.check(re.search(re.escape(path) + r":\d+:", r.stderr),
                "check-config on %s names FILE:LINE:" % label, show(r))
        if label == "unknown key":
            t.check("no_such_key" in r.stderr, "the unknown key is named", show(r))
            r = run([broker, "-c", path], timeout=10)
            t.check(r.returncode == harness.EX_CONFIG and re.search(re.escape(path) + r":\d+:", r.stderr),
                    "herald-broker on a broken config exits 78 naming FILE:LINE:", show(r))
            r = run([worker, "-c", path, "--channel", "email"], timeout=10)
            t.check(r.returncode == harness.EX_CONFIG, "herald-worker on a broken config exits 78", show(r))
    r = run([herald, "check-config", "-c", os.path.join(h.tmp, "missing.yaml")])
    t.check(r.returncode == harness.EX_CONFIG and "missing.yaml" in r.stderr,
            "check-config on a missing file exits 78 naming it", show(r))
    r = run([worker, "-c", h.config, "--channel", "telegraph"], timeout=10)
    t.check(r.returncode in (harness.EX_USAGE, harness.EX_CONFIG) and "telegraph" in r.stderr,
            "herald-worker --channel with an unknown channel exits 64/78 naming it", show(r))

    # -- no broker running: 69, quickly
    start = time.monotonic()
    r = run([herald, "publish", "-c", h.config, "--type", "order.confirmed",
             "--data", '{"order_id": 1, "customer": {"email": "a@example.com"}, "items": [{"sku": "A-1"}]}',
             "--timeout", "500"], timeout=20)
    took = time.monotonic() - start
    t.check(r.returncode == harness.EX_UNAVAILABLE, "publish with no broker exits 69", show(r))
    t.check(took < 3, "publish with no broker gives up quickly (%.2fs with --timeout 500)" % took)
    start = time.monotonic()
    r = run([herald, "status", "-c", h.config, "--timeout", "500"], timeout=20)
    took = time.monotonic() - start
    t.check(r.returncode == harness.EX_UNAVAILABLE and took < 3,
            "status with no broker exits 69 quickly (%.2fs)" % took, show(r))


if __name__ == "__main__":
    harness.Test("cli", budget=90).run(body)
