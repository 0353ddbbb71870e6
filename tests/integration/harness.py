"""harness: a small library for Herald's integration tests.

Each test starts the real binaries (herald-broker, herald-worker, herald) as
processes in a temporary directory, with ipc:// endpoints there (no TCP ports,
so no clashes between tests), and drives them through the `herald` command.

Rules the tests follow:
  - no fixed sleeps as synchronisation: wait_until() polls a condition with a
    short interval and a hard deadline, and fails with a clear message;
  - every process started here is killed at the end (try/finally, atexit and
    the overall deadline), by its process group, which this harness created;
  - on failure, the tails of every process's log are printed;
  - a test prints its checks and ends with "N passed, M failed" and exit 0/1.

Environment: HERALD_BIN_DIR (herald-broker, herald-worker, herald),
HERALD_SOURCE_DIR (the source tree), HERALD_KEEP=1 keeps the temp dir.
Runs under Debian's /usr/bin/python3 with the standard library only.
"""

import atexit
import email
import email.policy
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HERALD_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BIN_DIR = os.environ.get("HERALD_BIN_DIR") or os.path.join(SOURCE_DIR, "build", "bin")

# sysexits, as the design documents them
EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 69, 75, 78

CHANNELS = ("email", "inventory", "courier")
EVENT_TYPE = "order.confirmed"
POLL_INTERVAL = 0.02            # seconds between two looks at a condition


class TestFailure(Exception):
    """A check that cannot let the test go on (a wait that timed out, ...)."""


class DeadlineExceeded(BaseException):
    """The test's overall time budget ran out (raised from SIGALRM)."""


def binary(name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise TestFailure("%s not found or not executable (HERALD_BIN_DIR=%s)" % (path, BIN_DIR))
    return path


def line_buffered(argv):
    """(argv, env) running argv with stdout line-buffered (coreutils stdbuf,
    an LD_PRELOAD), so a test can watch its output as it comes; the env lets
    sanitizer builds accept the preload."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    asan = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return ["stdbuf", "-oL"] + list(argv), {"ASAN_OPTIONS": asan}


def run_bounded(argv, timeout):
    """Runs argv (a program that stops its own children when told to);
    past timeout seconds, SIGTERM, then SIGKILL, and TestFailure naming
    it. Returns (returncode, stdout, stderr)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        name = argv[1] if os.path.basename(argv[0]).startswith("python") else argv[0]
        raise TestFailure("%s ran past %d s\n%s\n%s" % (name, timeout, out[-3000:], err[-2000:]))
    return p.returncode, out, err


def number(text):
    """A table cell such as "12,345" or "1.5" as a float; None if it is not one."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def wait_until(predicate, timeout, what, interval=POLL_INTERVAL):
    """Polls predicate() until it returns a true value, which is returned.
    Raises TestFailure naming `what` (a string, or a function giving one,
    called at failure time for the latest state) after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            raise TestFailure("timed out after %.1fs waiting for %s" % (timeout, text))
        time.sleep(interval)


SCHED_OTHER, SCHED_IDLE = 0, 5


def thread_sched(pid):
    """{thread name: (nice, policy)} from /proc/PID/task/*/stat (fields 19
    and 41)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            stat = f.read()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = (int(fields[16]), int(fields[38]))
    return out


_PORTS_GIVEN = set()


def free_ports(n):
    """n distinct TCP ports on 127.0.0.1 that nothing is bound to now, never
    one given before in this process, picked below the kernel's range of
    ephemeral ports: there an outgoing connection (another test's, running
    beside this one) cannot take one before its server binds it."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    ports = []
    for _ in range(2000):
        if len(ports) == n:
            break
        port = random.randrange(10000, low) if low > 11000 else 0
        if port in _PORTS_GIVEN or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(s.getsockname()[1])
    if len(ports) < n:
        raise TestFailure("no %d free ports on 127.0.0.1" % n)
    _PORTS_GIVEN.update(ports)
    return ports


def free_port():
    return free_ports(1)[0]


def tail(path, lines=25):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(data.splitlines()[-lines:])


def children(pid):
    """Pids of the direct children of pid (from /proc)."""
    out = set()
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def descendants(pid):
    """Pids of every descendant of pid, children first."""
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


# ---------------------------------------------------------------- config

def _yaml_str(value):
    return json.dumps(str(value))       # a JSON string is a valid YAML scalar


ORDER_CONFIRMED = {"name": EVENT_TYPE, "key": "order_id",
                   "required": ["order_id", "customer.email", "items"],
                   "fanout": list(CHANNELS)}


def config_text(tmp, driver="file", broker=None, channels=CHANNELS, workers=None,
                channel_extra=None, events=None, store=None):
    """YAML of a test deployment living in tmp. broker: extra broker keys
    (name -> YAML scalar text). channel_extra: name -> {key: scalar text}.
    workers: name -> process count for `herald up` (default 1 each).
    store: broker.store (default tmp/herald.db; a postgresql:// URL for
    pglib's server)."""
    broker_keys = {
        "heartbeat": "200ms",
        "heartbeat_liveness": "3",
    }
    broker_keys.update(broker or {})
    out = []
    out.append("# written by tests/integration/harness.py")
    out.append("broker:")
    out.append("  listen:")
    for name in ("producers", "workers", "admin"):
        out.append("    %s: %s" % (name, _yaml_str("ipc://%s/%s.sock" % (tmp, name))))
    out.append("  store: %s" % _yaml_str(store or os.path.join(tmp, "herald.db")))
    for key, value in broker_keys.items():
        out.append("  %s: %s" % (key, value))
    out.append("events:")
    for ev in events or [dict(ORDER_CONFIRMED, fanout=list(channels))]:
        out.append("  %s:" % ev["name"])
        if ev.get("key"):
            out.append("    key: %s" % ev["key"])
        if ev.get("required"):
            out.append("    required: [%s]" % ", ".join(ev["required"]))
        out.append("    fanout: [%s]" % ", ".join(ev["fanout"]))
    out.append("channels:")
    for ch in channels:
        out.append("  %s:" % ch)
        out.append("    driver: %s" % driver)
        if driver == "file":
            out.append("    dir: %s" % _yaml_str(os.path.join(tmp, "outbox", ch)))
        for key, value in ((channel_extra or {}).get(ch) or {}).items():
            out.append("    %s: %s" % (key, value))
    counts = workers or {ch: 1 for ch in channels}
    out.append("workers: { %s }" % ", ".join("%s: %d" % (ch, n) for ch, n in counts.items()))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- events

def order(order_id, email=None):
    """The data of an order.confirmed event."""
    return {
        "order_id": order_id,
        "customer": {"name": "Customer %s" % order_id,
                     "email": email or "customer%s@example.com" % order_id},
        "items": [{"sku": "SKU-%s" % order_id, "qty": 1, "price": "19.90"}],
        "total": "19.90",
        "currency": "EUR",
    }


# ---------------------------------------------------------------- deployment

class Proc:
    """A process this harness started (its own process group)."""

    def __init__(self, name, argv, popen, log):
        self.name, self.argv, self.popen, self.log = name, argv, popen, log

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def __repr__(self):
        return "%s[pid %d]" % (self.name, self.pid)


class Herald:
    """One test deployment: a temp dir, its config, and the processes."""

    def __init__(self, name, **config):
        base = os.environ.get("HERALD_TEST_TMP") or None
        self.tmp = tempfile.mkdtemp(prefix="herald-%s-" % name, dir=base)
        self.name = name
        self.logs = os.path.join(self.tmp, "logs")
        os.makedirs(self.logs)
        self.procs = []
        self.serial = 0
        self.channels = tuple(config.get("channels", CHANNELS))
        self.config = os.path.join(self.tmp, "herald.yaml")
        self.write_config(**config)
        for ch in self.channels:
            os.makedirs(self.outbox(ch), exist_ok=True)
        atexit.register(self.kill_all)

    # -- config and paths

    def write_config(self, **config):
        with open(self.config, "w") as f:
            f.write(config_text(self.tmp, **config))

    def outbox(self, channel):
        return os.path.join(self.tmp, "outbox", channel)

    def endpoint(self, name):
        return "ipc://%s/%s.sock" % (self.tmp, name)

    # -- processes

    def spawn(self, name, argv, stdin=subprocess.DEVNULL, env=None):
        """Starts argv in its own process group, stdout+stderr to a log.
        env: variables added to the environment."""
        self.serial += 1
        log = os.path.join(self.logs, "%02d-%s.log" % (self.serial, name))
        logf = open(log, "wb")
        try:
            full_env = dict(os.environ, **env) if env else None
            popen = subprocess.Popen(argv, stdin=stdin, stdout=logf, stderr=subprocess.STDOUT,
                                     cwd=self.tmp, start_new_session=True, env=full_env)
        finally:
            logf.close()
        proc = Proc(name, argv, popen, log)
        self.procs.append(proc)
        return proc

    def start_broker(self, wait=True):
        proc = self.spawn("broker", [binary("herald-broker"), "-c", self.config])
        if wait:
            self.wait_broker_ready(proc)
        return proc

    def start_worker(self, channel, wait=True, expect_workers=None):
        """Starts a worker; with wait, until the broker counts it (the
        channel's worker count reaches expect_workers, default +1)."""
        before = 0
        if wait and expect_workers is None:
            before = self.channel_status(channel).get("workers", 0)
        proc = self.spawn("worker-%s" % channel,
                          [binary("herald-worker"), "-c", self.config, "--channel", channel])
        if wait:
            want = expect_workers if expect_workers is not None else before + 1
            self.wait_workers(channel, want, proc)
        return proc

    def start_workers(self, counts=None):
        """Starts counts[channel] workers per channel (default 1 each) and
        waits until the broker sees them all."""
        counts = counts or {ch: 1 for ch in self.channels}
        procs = []
        for ch, n in counts.items():
            for _ in range(n):
                procs.append(self.start_worker(ch, wait=False))
        for ch, n in counts.items():
            self.wait_workers(ch, n, *[p for p in procs if p.name == "worker-" + ch])
        return procs

    def wait_broker_ready(self, proc=None, timeout=15):
        def ready():
            if proc is not None and not proc.alive():
                raise TestFailure("%r exited with %s while starting" % (proc, proc.popen.returncode))
            return self.try_status() is not None
        wait_until(ready, timeout, "the broker to answer `herald status`")

    def wait_workers(self, channel, count, *procs, timeout=15):
        def ready():
            for p in procs:
                if not p.alive():
                    raise TestFailure("%r exited with %s while starting" % (p, p.popen.returncode))
            st = self.try_status()
            return st is not None and self._channel(st, channel).get("workers", 0) >= count
        wait_until(ready, timeout, "%d %s worker(s) connected" % (count, channel))

    def send_signal(self, proc, sig):
        if proc.alive():
            os.kill(proc.pid, sig)

    def kill(self, proc, sig=signal.SIGKILL, timeout=10):
        """Sends sig to proc and waits for it to exit; returns its exit status."""
        self.send_signal(proc, sig)
        return self.wait_exit(proc, timeout)

    def wait_exit(self, proc, timeout=10):
        try:
            return proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%r still running %.0fs after it was told to stop" % (proc, timeout))

    def kill_all(self):
        """Kills every process this harness started, with its process group
        and its descendants (`herald up`'s children), and reaps them."""
        for proc in self.procs:
            if proc.popen.returncode is not None:
                continue
            family = descendants(proc.pid)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in family:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def print_logs(self, lines=25):
        for proc in self.procs:
            state = "running" if proc.alive() else "exit %s" % proc.popen.returncode
            print("---- %s (%s) %s" % (proc.name, state, proc.log))
            print(tail(proc.log, lines))
        print("---- config %s" % self.config)
        try:
            with open(self.config) as f:
                print(f.read())
        except OSError:
            pass

    def cleanup(self, failed=False):
        """Kills what runs; removes the temp dir unless HERALD_KEEP is set."""
        self.kill_all()
        if os.environ.get("HERALD_KEEP"):
            print("# kept %s" % self.tmp)
        else:
            if failed:
                print("# removing %s (set HERALD_KEEP=1 to keep it)" % self.tmp)
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the herald command

    def herald(self, *args, input=None, timeout=60, config=True):
        """Runs `herald ARGS` (with -c CONFIG after the subcommand unless
        config=False); returns CompletedProcess with text stdout/stderr."""
        argv = [binary("herald")] + list(args[:1])
        if config:
            argv += ["-c", self.config]
        argv += list(args[1:])
        try:
            return subprocess.run(argv, input=input, capture_output=True, text=True,
                                  timeout=timeout, cwd=self.tmp)
        except subprocess.TimeoutExpired as e:
            raise TestFailure("`%s` did not finish within %ss" % (" ".join(argv), timeout)) from e

    def publish(self, data=None, file=None, type=EVENT_TYPE, extra=(), json_out=False,
                timeout=60, input=None):
        """`herald publish --type T (--data JSON | --file F | -)`; data may be
        a dict (dumped) or a string (sent as is)."""
        args = ["publish", "--type", type]
        if data is not None:
            args += ["--data", data if isinstance(data, str) else json.dumps(data)]
        elif file is not None:
            args += ["--file", file]
        else:
            args += ["-"]
        if json_out:
            args += ["--json"]
        args += list(extra)
        return self.herald(*args, timeout=timeout, input=input)

    def try_status(self):
        """`herald status --json` parsed, or None if it failed."""
        try:
            r = self.herald("status", "--json", timeout=10)
        except TestFailure:
            return None
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def status(self):
        st = self.try_status()
        if st is None:
            r = self.herald("status", "--json", timeout=10)
            raise TestFailure("`herald status --json` failed: exit %d, stdout %r, stderr %r"
                              % (r.returncode, r.stdout[-500:], r.stderr[-500:]))
        return st

    @staticmethod
    def _channel(status, channel):
        for ch in status.get("channels", []):
            if ch.get("name") == channel:
                return ch
        return {}

    def channel_status(self, channel):
        return self._channel(self.status(), channel)

    # -- deliveries (file driver)

    def delivery_names(self, channel):
        """File names in the channel's outbox, without dot files (.tmp)."""
        try:
            return [n for n in os.listdir(self.outbox(channel)) if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def count(self, channel):
        return len(self.delivery_names(channel))

    def counts(self):
        return {ch: self.count(ch) for ch in self.channels}

    def deliveries(self, channel):
        """{task_id: Delivery} for every file delivered on channel."""
        out = {}
        for name in self.delivery_names(channel):
            path = os.path.join(self.outbox(channel), name)
            d = read_delivery(path)
            out[d.task_id] = d
        return out

    def delivered_events(self):
        """{channel: {event id}} over every delivery; a delivery whose file
        does not carry the event id (.eml) gets it from another channel's
        delivery of the same stored event (same uid), else "uid:<uid>"."""
        per = {ch: self.deliveries(ch) for ch in self.channels}
        by_uid = {}
        for d in per.values():
            for x in d.values():
                if x.event_id:
                    by_uid[x.uid] = x.event_id
        return {ch: {x.event_id or by_uid.get(x.uid) or "uid:" + x.uid for x in d.values()}
                for ch, d in per.items()}

    def wait_counts(self, expected, timeout=30, what=None):
        """Waits until every channel holds at least expected[channel] files
        (an int means the same for all). Returns the counts."""
        if isinstance(expected, int):
            expected = {ch: expected for ch in self.channels}
        return wait_until(lambda: self._counts_reached(expected), timeout,
                          lambda: "%s: deliveries %s, expected %s"
                          % (what or "deliveries", self.counts(), expected))

    def _counts_reached(self, expected):
        c = self.counts()
        return c if all(c[ch] >= n for ch, n in expected.items()) else None


class Delivery:
    """One delivered file. task_id is "<uid>.<channel>" (uid: the broker's id
    of the stored event, shared by its tasks); event_id is the CloudEvents id
    when the file carries the envelope (the .json deliveries; an .eml carries
    only the data in its body), order_id the data's order_id."""

    def __init__(self, path):
        self.path = path
        name = os.path.basename(path)
        self.task_id = name.rsplit(".", 1)[0] if name.endswith((".json", ".eml")) else name
        self.event_id = None
        self.order_id = None
        self.attempt = None
        self.headers = {}
        self.body = None

    @property
    def uid(self):
        return self.task_id.rsplit(".", 1)[0]

    @property
    def channel(self):
        return self.task_id.rsplit(".", 1)[-1]


def _order_id_of(obj):
    if isinstance(obj, dict):
        data = obj.get("data")
        if isinstance(data, dict) and "order_id" in data:
            return data["order_id"]
        if "order_id" in obj:
            return obj["order_id"]
    return None


def _eml_text(path):
    """The decoded text/plain part of an .eml (quoted-printable, maybe inside
    multipart/alternative), or None."""
    try:
        with open(path, "rb") as f:
            msg = email.message_from_bytes(f.read(), policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else None
    except Exception:
        return None


def read_delivery(path):
    """Reads a file-driver delivery. .json: {"task_id", "attempt", "channel",
    "delivered_at", "event": {CloudEvents envelope}}; .eml: RFC 5322 with
    Message-ID <task_id@herald>, X-Herald-Attempt, and (without a text
    template) the event's data as JSON in the body. Fields that cannot be
    found stay None."""
    d = Delivery(path)
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8", "replace")
    if path.endswith(".eml"):
        head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
        body = _eml_text(path) or body
        key = None
        for line in head.split("\n"):
            if line[:1] in (" ", "\t") and key:
                d.headers[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            d.headers[key] = value.strip()
        d.body = body
        mid = d.headers.get("message-id", "")
        if mid.startswith("<") and mid.endswith("@herald>"):
            d.task_id = mid[1:-len("@herald>")]
        if d.headers.get("x-herald-attempt", "").isdigit():
            d.attempt = int(d.headers["x-herald-attempt"])
        d.event_id = d.headers.get("x-herald-event-id")
        start = body.find("{")
        if start >= 0:
            try:
                obj, _ = json.JSONDecoder().raw_decode(body[start:])
                if isinstance(obj, dict) and "specversion" in obj:
                    d.event_id = d.event_id or obj.get("id")
                d.order_id = _order_id_of(obj)
            except ValueError:
                pass
    else:
        try:
            obj = json.loads(raw)
        except ValueError:
            return d
        d.body = obj
        if isinstance(obj, dict):
            ev = obj.get("event")
            if isinstance(ev, dict):
                d.event_id = ev.get("id")
                d.order_id = _order_id_of(ev)
            if obj.get("task_id"):
                d.task_id = obj["task_id"]
            d.attempt = obj.get("attempt")
    return d


# ---------------------------------------------------------------- test runner

class Test:
    """Counts checks, bounds the running time, prints a summary, cleans up.

        t = Test("spine", budget=120)
        with t.deployment(...) as h:   # or t.run(body) with body(t)
            ...
            t.check(cond, "what was expected", detail)
        t.finish()  -> exits 0 or 1
    """

    def __init__(self, name, budget=120):
        self.name = name
        self.budget = budget
        self.passed = 0
        self.failed = 0
        self.deployments = []
        self.started = time.monotonic()

    def deployment(self, **config):
        h = Herald(self.name, **config)
        self.deployments.append(h)
        return h

    def check(self, cond, what, detail=None):
        if cond:
            self.passed += 1
            print("ok   - %s" % what)
        else:
            self.failed += 1
            print("FAIL - %s" % what)
            if detail is not None:
                for line in str(detail).splitlines()[:40]:
                    print("       %s" % line)
        sys.stdout.flush()
        return bool(cond)

    def require(self, cond, what, detail=None):
        """A check the rest of the test depends on: stops the test if false."""
        if not self.check(cond, what, detail):
            raise TestFailure("cannot go on: %s" % what)

    def note(self, text):
        print("#    %s (%.1fs)" % (text, time.monotonic() - self.started))
        sys.stdout.flush()

    def run(self, body):
        """Runs body(self) within the budget; always cleans up; exits."""
        def on_alarm(signum, frame):
            raise DeadlineExceeded()
        signal.signal(signal.SIGALRM, on_alarm)
        signal.signal(signal.SIGTERM, on_alarm)     # ctest's timeout: clean up too
        signal.alarm(int(self.budget))
        print("# %s: %s (budget %ds, binaries in %s)" % (self.name, sys.argv[0], self.budget, BIN_DIR))
        sys.stdout.flush()
        crashed = False
        try:
            body(self)
        except DeadlineExceeded:
            crashed = True
            self.failed += 1
            print("FAIL - the test ran past its budget of %ds" % self.budget)
        except TestFailure as e:
            crashed = True
            self.failed += 1
            print("FAIL - %s" % e)
        except Exception:
            crashed = True
            self.failed += 1
            print("FAIL - unexpected error in the test:")
            traceback.print_exc(file=sys.stdout)
        finally:
            signal.alarm(0)
            ok = self.failed == 0 and not crashed
            if not ok:
                for h in self.deployments:
                    h.print_logs()
            for h in self.deployments:
                h.cleanup(failed=not ok)
        print("# %s: %.1fs" % (self.name, time.monotonic() - self.started))
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.stdout.flush()
        sys.exit(0 if self.failed == 0 else 1)


def write_jsonl(path, objects):
    with open(path, "w") as f:
        for obj in objects:
            f.write(json.dumps(obj, separators=(",", ":")))
            f.write("\n")
    return path


def parse_json_lines(text):
    """Objects of the JSON lines (or single JSON document) in text."""
    text = text.strip()
    if not text:
        return []
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, list) else [obj]
    except ValueError:
        pass
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out
