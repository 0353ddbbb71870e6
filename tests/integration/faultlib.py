"""faultlib: helpers of the fault tests (tests/integration/test_fault_*.py),
on top of harness.py.

  - the LD_PRELOAD library tests/fault/faultinject.c (bin/libherald_faultinject.so,
    built by the tests/fault CMake target; compiled here with cc as a fallback);
  - starting processes with an extra environment (fault switches);
  - Producer: a thread that keeps `herald publish -` processes fed with JSON
    lines and publishes again, with the same order_id (same idempotency key),
    every line that was not ACKed (timeout, busy, broker gone), until all
    its orders are ACKed;
  - delivery accounting from the workers' rename log (every delivery the
    file driver completed, duplicates included) and the outbox files;
  - durations and sizes scaled by HERALD_FAULT_DURATION (seconds) so that
    CI runs a short version and scripts/fault-soak.sh a long one.

Standard library only (Debian's /usr/bin/python3).
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_NAME = "libherald_faultinject.so"


# ---------------------------------------------------------------- knobs

def env_float(name, default):
    try:
        return float(os.environ.get(name, ""))
    except ValueError:
        return default


def env_int(name, default):
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return default


def duration(default):
    """The test's load duration in seconds: HERALD_FAULT_DURATION or default."""
    return env_float("HERALD_FAULT_DURATION", default)


def load_rounds(load, enough, run_on=1.0):
    """Paces a fault test's loop of kills: yields for `load` seconds, then on
    while enough() is false, up to run_on x `load` longer: where each round
    takes long (a sanitized broker's restart, a sync not reached before a
    kill), the counts the test checks are still reached. The caller may
    break out early."""
    end = time.monotonic() + load
    while time.monotonic() < end or (not enough() and time.monotonic() < end + run_on * load):
        yield


def budget(load_seconds, extra=90):
    """An overall time budget for a test whose load lasts load_seconds."""
    return int(load_seconds * 1.5 + extra)


def seeded_random(name):
    """A random.Random seeded from HERALD_FAULT_SEED (printed, to replay a run)."""
    seed = os.environ.get("HERALD_FAULT_SEED") or str(random.SystemRandom().randrange(1, 1 << 30))
    print("# %s: HERALD_FAULT_SEED=%s" % (name, seed))
    return random.Random(int(seed) if seed.isdigit() else seed)


# ---------------------------------------------------------------- the preload library

_lib_path = None


def faultinject():
    """Path of libherald_faultinject.so: $HERALD_FAULTINJECT, else next to the
    binaries (HERALD_BIN_DIR), else compiled from tests/fault/faultinject.c
    into a cache directory with cc (so the tests also run before the CMake
    target is wired in)."""
    global _lib_path
    if _lib_path:
        return _lib_path
    for path in (os.environ.get("HERALD_FAULTINJECT"), os.path.join(harness.BIN_DIR, LIB_NAME)):
        if path and os.path.exists(path):
            _lib_path = path
            return path
    src = os.path.join(harness.SOURCE_DIR, "tests", "fault", "faultinject.c")
    if not os.path.exists(src):
        raise harness.TestFailure("%s not found and no %s in %s" % (src, LIB_NAME, harness.BIN_DIR))
    cache = os.path.join(os.environ.get("TMPDIR", "/tmp"), "herald-faultinject-%d" % os.getuid())
    os.makedirs(cache, exist_ok=True)
    out = os.path.join(cache, "%d-%s" % (int(os.stat(src).st_mtime), LIB_NAME))
    if not os.path.exists(out):
        tmp = out + ".%d.tmp" % os.getpid()
        r = subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-fPIC", "-shared",
                            "-o", tmp, src, "-ldl"], capture_output=True, text=True)
        if r.returncode != 0:
            raise harness.TestFailure("cannot compile %s: %s" % (src, r.stderr[-2000:]))
        os.replace(tmp, out)
    _lib_path = out
    return out


def preload_env(**faults):
    """Environment additions for a process running under the fault library:
    faults are HERALD_FAULT_<NAME>=value (names given in lower case)."""
    env = {"LD_PRELOAD": faultinject(),
           # a sanitizer build wants its runtime first; the library has none
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    for name, value in faults.items():
        env["HERALD_FAULT_" + name.upper()] = str(value)
    return env


def touch(path):
    with open(path, "a"):
        pass


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def sync_hold_env(h, **faults):
    """The environment for a process whose syncs a test holds: the block
    and reached paths in h.tmp ("fsync.block", "fsync.reached") for
    hold_sync and publish_held, beside any other faults. Returns (env,
    block, reached)."""
    block = os.path.join(h.tmp, "fsync.block")
    reached = os.path.join(h.tmp, "fsync.reached")
    return preload_env(fsync_block=block, fsync_reached=reached, **faults), block, reached


def hold_sync(block, reached, kind="", timeout=3):
    """Holds the next fsync/fdatasync of a process run with
    preload_env(fsync_block=block, fsync_reached=reached) ("file" or "dir"
    narrows it to regular files or directories; "" holds any) and waits
    until one is held: True, or False if none came within timeout. The
    sync stays held until remove(block)."""
    remove(reached)
    with open(block, "w") as f:
        f.write(kind)
    try:
        harness.wait_until(lambda: os.path.exists(reached), timeout, "fsync entered", interval=0.005)
        return True
    except harness.TestFailure:
        return False


def publish_bg(h, name, order_id=None, lines=None, timeout_ms=20000):
    """`herald publish --json` in the background: one order (order_id) or,
    with lines, a JSON-lines file of those orders."""
    argv = [harness.binary("herald"), "publish", "-c", h.config, "--type", harness.EVENT_TYPE,
            "--timeout", str(timeout_ms), "--json"]
    if lines is None:
        argv += ["--data", json.dumps(harness.order(order_id))]
    else:
        path = harness.write_jsonl(os.path.join(h.tmp, name + ".jsonl"),
                                   (harness.order(i) for i in lines))
        argv += ["--file", path]
    return h.spawn(name, argv)


def acked(proc):
    """The event ids a background `herald publish --json` printed."""
    with open(proc.log) as f:
        objs = harness.parse_json_lines(f.read())
    return [o["event_id"] for o in objs if isinstance(o, dict) and o.get("event_id")]


def publish_held(h, block, reached, name, **publish):
    """Holds fsync (preload_env(fsync_block=block, fsync_reached=reached)),
    starts publish_bg(h, name, **publish) and returns it once the broker is
    inside a held sync (or the publisher has ended). The sync stays held
    until remove(block)."""
    remove(reached)
    touch(block)
    pub = publish_bg(h, name, **publish)
    harness.wait_until(lambda: os.path.exists(reached) or not pub.alive(), 10,
                       "the broker to enter fsync")
    return pub


# ---------------------------------------------------------------- processes

def spawn(h, name, argv, env=None, stdin=subprocess.DEVNULL, log=True):
    """Like Herald.spawn, with env added to the environment. With log=False
    the output goes to /dev/null (many short-lived processes)."""
    h.serial += 1
    full_env = dict(os.environ)
    full_env.update(env or {})
    path = os.path.join(h.logs, "%02d-%s.log" % (h.serial, name)) if log else os.devnull
    logf = open(path, "ab" if log else "wb")
    try:
        popen = subprocess.Popen(argv, stdin=stdin, stdout=logf, stderr=subprocess.STDOUT,
                                 cwd=h.tmp, start_new_session=True, env=full_env)
    finally:
        logf.close()
    proc = harness.Proc(name, argv, popen, path)
    h.procs.append(proc)
    return proc


def start_broker(h, env=None, wait=True, timeout=15):
    proc = spawn(h, "broker", [harness.binary("herald-broker"), "-c", h.config], env=env)
    if wait:
        h.wait_broker_ready(proc, timeout=timeout)
    return proc


def start_worker(h, channel, env=None, wait=False):
    proc = spawn(h, "worker-%s" % channel,
                 [harness.binary("herald-worker"), "-c", h.config, "--channel", channel], env=env)
    if wait:
        h.wait_workers(channel, 1, proc)
    return proc


def rss_kib(pid):
    """VmRSS of pid in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def log_lines(proc, *needles):
    """Lines of proc's log holding every needle."""
    try:
        with open(proc.log, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [l for l in text.splitlines() if all(n in l for n in needles)]


def logs_matching(h, name_prefix, *needles):
    out = []
    for p in h.procs:
        if p.name.startswith(name_prefix) and p.log != os.devnull:
            out.extend(log_lines(p, *needles))
    return out


# ---------------------------------------------------------------- producers

class Producer(threading.Thread):
    """Publishes orders first..first+count-1 (or until stop()) through a
    sequence of `herald publish -c CONFIG --type T - --json` processes, each
    given up to `chunk` lines on stdin, `rate` lines per second at most
    (0: as fast as the window allows). A line not ACKed (timeout, busy NACK,
    broker unavailable, the process killed) is published again, with the
    same data, so the same idempotency key (order_id).

    acks: {order_id: set of event ids ACKed for it} (one id expected: a
    duplicate ACK carries the stored event's id). attempts counts publishes,
    failures the lines that had to go again, and exits the exit codes."""

    def __init__(self, h, name, first, count=None, rate=0.0, chunk=200, window=1000,
                 timeout_ms=2000, make=None, extra_args=()):
        super().__init__(name=name, daemon=True)
        self.h = h
        self.first = first
        self.count = count
        self.rate = rate
        self.chunk = chunk
        self.window = window
        self.timeout_ms = timeout_ms
        self.make = make or harness.order
        self.extra_args = list(extra_args)
        self.next_id = first
        self.retry = []             # order ids to publish again, oldest first
        self.acks = {}
        self.attempts = 0
        self.failures = 0
        self.nacks = {}             # NACK code -> count (from stderr)
        self.reasons = {}           # NACK reason (up to its first ";") -> count
        self.failovers = 0          # "failing over to" lines (herald publish -e A,B)
        self.exits = {}
        self.runs = 0
        self.written = 0            # lines handed to publish processes
        self.totals = {"acked": 0, "nacked": 0, "timed_out": 0}   # from their summaries
        self.error = None
        self.proc = None
        self._no_more = threading.Event()      # no new orders
        self._aborted = threading.Event()     # stop everything now
        self.lock = threading.Lock()

    # -- control

    def stop(self):
        """No new orders: finish publishing what was started (until ACKed)."""
        self._no_more.set()

    def abort(self):
        self._no_more.set()
        self._aborted.set()
        p = self.proc
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def done(self):
        return not self.is_alive()

    def _line(self, oid):
        return (json.dumps(self.make(oid), separators=(",", ":")) + "\n").encode()

    @property
    def acked(self):
        with self.lock:
            return dict(self.acks)

    # -- the loop

    def _take(self):
        ids = []
        with self.lock:
            while self.retry and len(ids) < self.chunk:
                ids.append(self.retry.pop(0))
        while len(ids) < self.chunk and not self._no_more.is_set():
            if self.count is not None and self.next_id >= self.first + self.count:
                break
            ids.append(self.next_id)
            self.next_id += 1
        return ids

    def run(self):
        try:
            while not self._aborted.is_set():
                ids = self._take()
                if not ids:
                    if self.count is not None and self.next_id >= self.first + self.count:
                        break
                    if self._no_more.is_set():
                        break
                    time.sleep(0.01)
                    continue
                self._publish(ids)
        except Exception as e:          # reported by the test
            self.error = "%s: %r" % (self.name, e)

    def _publish(self, ids):
        argv = [harness.binary("herald"), "publish", "-c", self.h.config, "--type",
                harness.EVENT_TYPE, "-", "--json", "--timeout", str(self.timeout_ms),
                "--window", str(self.window)] + self.extra_args
        self.runs += 1
        started = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=self.h.tmp, start_new_session=True)
        self.proc = p
        self.attempts += len(ids)
        out_chunks, err_chunks = [], []
        readers = [threading.Thread(target=lambda: out_chunks.append(p.stdout.read()), daemon=True),
                   threading.Thread(target=lambda: err_chunks.append(p.stderr.read()), daemon=True)]
        for r in readers:
            r.start()
        group = max(1, int(self.rate / 100)) if self.rate > 0 else 0
        try:
            for n, oid in enumerate(ids):
                if self._aborted.is_set():
                    break
                p.stdin.write(self._line(oid))
                self.written += 1
                if group and (n + 1) % group == 0:
                    p.stdin.flush()
                    delay = started + (n + 1) / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            rc = p.wait(timeout=max(30, self.timeout_ms / 1000.0 * 4 + len(ids) / 100.0))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
        for r in readers:
            r.join(10)
        self.proc = None
        self.exits[rc] = self.exits.get(rc, 0) + 1
        out = b"".join(c for c in out_chunks if c).decode("utf-8", "replace")
        err = b"".join(c for c in err_chunks if c).decode("utf-8", "replace")
        for line in err.splitlines():
            # herald publish: published N events: A acked (D duplicates), K nacked, T timed out
            if "herald publish: published " in line:
                for key, word in (("acked", " acked"), ("nacked", " nacked"),
                                  ("timed_out", " timed out")):
                    head = line.split(word, 1)[0] if word in line else ""
                    num = head.rsplit(" ", 1)[-1].lstrip("(")
                    if num.isdigit():
                        self.totals[key] += int(num)
            if "failing over to " in line:
                self.failovers += 1
            if " NACK " in line:
                code = line.split(" NACK ", 1)[1].split()[0]
                self.nacks[code] = self.nacks.get(code, 0) + 1
                reason = line.split(" NACK ", 1)[1].split(": ", 1)[-1].split(";", 1)[0]
                self.reasons[reason] = self.reasons.get(reason, 0) + 1
        acked_lines = {}
        for o in harness.parse_json_lines(out):
            if isinstance(o, dict) and o.get("line") and o.get("event_id"):
                acked_lines[int(o["line"])] = o["event_id"]
        failed = []
        with self.lock:
            for n, oid in enumerate(ids, start=1):
                eid = acked_lines.get(n)
                if eid:
                    self.acks.setdefault(oid, set()).add(eid)
                else:
                    failed.append(oid)
            self.failures += len(failed)
            self.retry = failed + self.retry
        if failed and not self._aborted.is_set():
            time.sleep(0.05)        # a broker that is restarting: do not spin


def run_producers(producers):
    for p in producers:
        p.start()


def finish_producers(t, producers, timeout):
    """Stops new orders and waits until every producer has all its orders
    ACKed; returns {order_id: set(event ids)} over all of them."""
    for p in producers:
        p.stop()
    deadline = time.monotonic() + timeout
    for p in producers:
        p.join(max(0.1, deadline - time.monotonic()))
    stuck = [p.name for p in producers if p.is_alive()]
    for p in producers:
        if p.is_alive():
            p.abort()
    t.check(not stuck, "every producer got all its orders ACKed within %ds" % timeout,
            "still publishing: %s" % stuck)
    errors = [p.error for p in producers if p.error]
    t.check(not errors, "no producer thread failed", errors)
    acks = {}
    for p in producers:
        for oid, ids in p.acked.items():
            acks.setdefault(oid, set()).update(ids)
    return acks


# ---------------------------------------------------------------- deliveries

class Ledger:
    """What the workers delivered: the outbox files (one per task id, the
    last delivery) and the rename log (one line per completed delivery,
    duplicates included), written by faultinject's rename hook."""

    def __init__(self, h):
        self.h = h
        self.rename_log = os.path.join(h.tmp, "deliveries.log")
        self._cache = {}

    def worker_env(self):
        return {"HERALD_FAULT_RENAME_LOG": self.rename_log}

    def renames(self):
        """{(channel, task_id): number of completed deliveries}."""
        out = {}
        try:
            with open(self.rename_log) as f:
                for line in f:
                    parts = line.split(" ", 1)
                    if len(parts) != 2:
                        continue
                    path = parts[1].strip()
                    channel = os.path.basename(os.path.dirname(path))
                    name = os.path.basename(path)
                    task_id = name.rsplit(".", 1)[0]
                    out[(channel, task_id)] = out.get((channel, task_id), 0) + 1
        except FileNotFoundError:
            pass
        return out

    def delivered_orders(self):
        """{channel: {order_id: set(task ids)}} from the outbox files, and
        {channel: {task_id: Delivery}}. A file is parsed once (a redelivery
        rewrites it with the same task, order and event)."""
        per = {}
        files = {}
        for ch in self.h.channels:
            cache = self._cache.setdefault(ch, {})
            for name in self.h.delivery_names(ch):
                if name not in cache:
                    try:
                        cache[name] = harness.read_delivery(os.path.join(self.h.outbox(ch), name))
                    except OSError:
                        continue
            d = {x.task_id: x for x in cache.values()}
            files[ch] = d
            m = {}
            for task_id, x in d.items():
                if x.order_id is not None:
                    m.setdefault(x.order_id, set()).add(task_id)
            per[ch] = m
        return per, files

    def missing(self, acks):
        """{channel: count of ACKed order ids not delivered there}."""
        per, _ = self.delivered_orders()
        return {ch: len(set(acks) - set(per[ch])) for ch in self.h.channels}

    def wait_all(self, acks, timeout):
        def done():
            m = self.missing(acks)
            return all(v == 0 for v in m.values())
        harness.wait_until(done, timeout,
                           lambda: "every ACKed order on every channel (missing %s of %d)"
                           % (self.missing(acks), len(acks)), interval=0.5)

    def verify(self, t, acks):
        """The end checks: every ACKed order delivered on every channel,
        under one task id per channel, carrying the ACKed event id; every
        duplicate delivery is the same task id (idempotency key). Returns
        the counts printed by the tests."""
        per, files = self.delivered_orders()
        renames = self.renames()
        counts = {"acked": len(acks)}
        inconsistent = {oid: ids for oid, ids in acks.items() if len(ids) != 1}
        t.check(not inconsistent, "every order's ACKs carry one event id (duplicate ACK = stored id)",
                "%d orders with several ids, e.g. %s" % (len(inconsistent), list(inconsistent.items())[:3]))
        for ch in self.h.channels:
            missing = sorted(set(acks) - set(per[ch]))
            t.check(not missing, "%s: every ACKed order delivered (%d ACKed)" % (ch, len(acks)),
                    "%d missing, e.g. orders %s" % (len(missing), missing[:10]))
            split = {oid: ids for oid, ids in per[ch].items() if len(ids) > 1}
            t.check(not split, "%s: each order delivered under one task id (idempotency key)" % ch,
                    "%d orders under several task ids, e.g. %s" % (len(split), list(split.items())[:3]))
            wrong_id = []
            for task_id, x in files[ch].items():
                if x.order_id in acks and x.event_id is not None and x.event_id not in acks[x.order_id]:
                    wrong_id.append((task_id, x.event_id, sorted(acks[x.order_id])))
            t.check(not wrong_id, "%s: delivered event ids are the ACKed ones" % ch,
                    "e.g. %s" % wrong_id[:3])
            bad_name = [tid for tid, x in files[ch].items()
                        if not tid.endswith("." + ch) or len(tid.split(".")[0]) != 32]
            t.check(not bad_name, "%s: task ids are <32-hex uid>.%s" % (ch, ch), bad_name[:5])
            delivered = sum(n for (c, _), n in renames.items() if c == ch)
            dups = sum(n - 1 for (c, _), n in renames.items() if c == ch and n > 1)
            unlogged = [tid for tid in files[ch] if (ch, tid) not in renames]
            counts[ch] = {"files": len(files[ch]), "deliveries": delivered, "duplicates": dups,
                          "unlogged": len(unlogged)}
        counts["duplicates"] = sum(counts[ch]["duplicates"] for ch in self.h.channels)
        return counts


def wait_idle(h, timeout=60):
    """Until every channel has nothing pending, retrying or in flight (status)."""
    def idle():
        st = h.try_status()
        if not st:
            return False
        return all(h._channel(st, ch).get(k, 1) == 0
                   for ch in h.channels for k in ("pending", "in_flight", "retrying"))
    harness.wait_until(idle, timeout, lambda: "every channel idle: %s" % h.try_status(), interval=0.2)


def print_counts(t, title, counts):
    t.note("%s: %s" % (title, json.dumps(counts, sort_keys=True)))
