#!/usr/bin/python3
"""bench_pg: the load shapes of scripts/bench-peers.sh on Herald's PostgreSQL
store, with one broker and with two brokers on one database, beside the
embedded store, in one run (scripts/bench-pg.sh runs it; results: BENCHMARKS.md).

It starts its own PostgreSQL (tests/integration/pglib.py: initdb into a
temporary directory, run as the postgres user, 127.0.0.1 on a free port,
fsync on, synchronous_commit on, no standby: ACKs say `commit`), and for each
configuration real herald-broker processes on tcp://127.0.0.1, each with its
own config written to the temporary directory:

  embedded  one broker, the embedded store (journal + index) in the temp dir
  pg1       one broker on PostgreSQL
  pg2       two brokers on one database, the load split evenly between them

The same load goes to every configuration; with two brokers it is split, so
each column is the same offered load on a different store:

  1. ACKed events/s, 1,000 publishes outstanding (herald_bench_load pipe:
     one producer with a window of 1,000; pg2: one per broker, 500 each);
     0.3 s of untimed pipelined warm-up first
  2. 8 producer processes x 1 outstanding (herald_bench_load one; pg2: 4 per
     broker): total events/s
  3. ACK latency p50 / p99 at 1 outstanding: one producer, every round trip
     timed (pg2: broker A in odd rounds, broker B in even ones)
  4. end to end over three channels: fresh stores, one noop herald-worker per
     channel per broker (capacity 32, the default); EVENTS events published
     as in 1; events/s from the first publish until every task is done
     (embedded: the status verb, polled every 5 ms; PostgreSQL: the sums of
     herald.counts, committed with the outcomes, polled on one psql session)

Shapes 1 to 3 run with no worker connected (ingest alone) on brokers started
once; the configurations take turns within each shape, the order rotated each
round, as bench-peers does, because the shared disk's latency moves from
minute to minute. Every process it starts it stops by PID, also on Ctrl-C or
SIGTERM. Standard library and python3-zmq (Debian's /usr/bin/python3) only."""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import pglib  # noqa: E402

EX_USAGE = 64
CHANNELS = ("email", "inventory", "courier")
CONFIGS = {                     # name -> (label, brokers, PostgreSQL?)
    "embedded": ("embedded", 1, False),
    "pg1": ("PG, 1 broker", 1, True),
    "pg2": ("PG, 2 brokers", 2, True),
}
ID_STRIDE = 100000000           # order ids reserved for one load process
READY_S = 30                    # a load process warmed up by then
PG_SETTINGS = {"shared_buffers": "128MB", "max_wal_size": "2GB", "max_connections": "60"}


class Usage(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("bench_pg: %s\n" % message)
        sys.exit(EX_USAGE)


def say(text):
    print(text, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_samples, q):
    """Nearest rank, as bench_percentile."""
    if not sorted_samples:
        return 0.0
    rank = max(1, int(-(-q * len(sorted_samples) // 1)))
    return sorted_samples[min(rank, len(sorted_samples)) - 1]


class Run:
    """The temporary directory, PostgreSQL and every process started."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="herald-bench-pg-", dir=args.tmp)
        self.procs = []
        self.pg = None
        self.next_order = 0
        self.ctx = zmq.Context()

    def bin(self, name):
        return os.path.join(self.args.bin_dir, name)

    def spawn(self, argv, log, pipes=False):
        with open(os.path.join(self.tmp, log), "ab") as f:
            if pipes:
                p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=f, text=True)
            else:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self, procs, timeout=20):
        """SIGTERM by PID, then SIGKILL after timeout."""
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p in self.procs:
                self.procs.remove(p)

    def ids(self):
        self.next_order += ID_STRIDE
        return str(self.next_order)

    def cleanup(self):
        self.stop(list(self.procs), timeout=10)
        if self.pg:
            self.pg.cleanup()
        self.ctx.destroy(linger=0)
        if self.args.keep:
            say("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Admin:
    """A HERALD/1 admin DEALER (the status verb)."""

    def __init__(self, ctx, endpoint):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.corr = 0

    def status(self, timeout_ms=2000):
        self.corr += 1
        corr = b"s-%d" % self.corr
        self.sock.send_multipart([b"HERALD/1", b"ADMIN", corr, b"status", b"{}"])
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not self.sock.poll(left):
                return None
            frames = self.sock.recv_multipart()
            if len(frames) >= 5 and frames[2] == corr:
                return json.loads(frames[4]) if frames[3] == b"200" else None

    def close(self):
        self.sock.close(0)


class Psql:
    """One psql session kept open: a query in, one line out."""

    def __init__(self, pg, db):
        self.proc = subprocess.Popen([os.path.join(pg.bin, "psql"), pg.url(db), "-X", "-At", "-q",
                                      "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, **pg.env()))

    def line(self, sql):
        self.proc.stdin.write(sql + ";\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        if not out:
            raise RuntimeError("psql exited (%s)" % self.proc.poll())
        return out.strip()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """The brokers (and workers) of one configuration on one fresh store."""

    def __init__(self, run, name, phase, workers):
        self.run, self.name, self.workers = run, name, workers
        self.label, self.count, self.pg = CONFIGS[name]
        self.dir = os.path.join(run.tmp, "%s-%s" % (name, phase))
        os.makedirs(self.dir)
        self.db = None
        if self.pg:
            self.db = "%s_%s" % (name, phase)
            run.pg.sql("CREATE DATABASE %s" % self.db, db="postgres")
            store = run.pg.url(self.db)
        else:
            store = os.path.join(self.dir, "herald.db")
        self.producers, self.admins, self.configs, self.procs = [], [], [], []
        for b in range(self.count):
            ports = [free_port() for _ in range(3)]
            eps = ["tcp://127.0.0.1:%d" % p for p in ports]
            config = os.path.join(self.dir, "broker%d.yaml" % b)
            with open(config, "w") as f:
                f.write("# written by bench/bench_pg.py\n"
                        "broker:\n"
                        "  listen: { producers: \"%s\", workers: \"%s\", admin: \"%s\" }\n"
                        "  store: \"%s\"\n"
                        "  queue_window: 100000\n"
                        "  max_pending_events: 100000000\n"
                        "events:\n"
                        "  order.confirmed:\n"
                        "    key: order_id\n"
                        "    required: [order_id, customer.email, items]\n"
                        "    fanout: [email, inventory, courier]\n"
                        "channels:\n"
                        "  email:     { driver: noop, capacity: 32 }\n"
                        "  inventory: { driver: noop, capacity: 32 }\n"
                        "  courier:   { driver: noop, capacity: 32 }\n"
                        "workers: { email: 1, inventory: 1, courier: 1 }\n" % (eps[0], eps[1], eps[2], store))
            self.configs.append(config)
            self.producers.append(eps[0])
            self.admins.append(Admin(run.ctx, eps[2]))
        self.psql = None

    def log(self, what):
        return os.path.join(os.path.basename(self.dir), what)

    def start(self):
        for b, config in enumerate(self.configs):
            self.procs.append(self.run.spawn([self.run.bin("herald-broker"), "-c", config], self.log("broker%d.log" % b)))
        for b in range(self.count):
            self.wait(lambda: self.admins[b].status(500), "broker %d answers its status verb" % b)
        if self.workers:
            for b, config in enumerate(self.configs):
                for ch in CHANNELS:
                    self.procs.append(self.run.spawn([self.run.bin("herald-worker"), "-c", config, "--channel", ch],
                                                     self.log("worker%d-%s.log" % (b, ch))))

            def registered():
                for admin in self.admins:
                    st = admin.status(500)
                    if not st or not all(c.get("workers", 0) >= 1 for c in st.get("channels", [])):
                        return False
                return True
            self.wait(registered, "one worker per channel on every broker")
        if self.pg:
            self.psql = Psql(self.run.pg, self.db)
        say("  started %s: %d broker%s (pids %s)%s, store %s" % (
            self.label, self.count, "s" if self.count > 1 else "",
            ", ".join(str(p.pid) for p in self.procs[:self.count]),
            ", 3 noop workers each" if self.workers else ", no workers",
            self.run.pg.url(self.db) if self.pg else os.path.join(self.dir, "herald.db")))

    def wait(self, cond, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not cond():
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("%s: a process exited (%s) while waiting for %s; logs in %s"
                                       % (self.label, p.returncode, what, self.dir))
            if time.monotonic() > deadline:
                raise RuntimeError("%s: no %s within %d s; logs in %s" % (self.label, what, timeout, self.dir))
            time.sleep(0.05)

    def durability(self):
        st = self.admins[0].status() or {}
        return ((st.get("broker") or {}).get("postgresql") or {}).get("durability", "fsync")

    def done(self):
        """The lowest done count over the three channels (every broker)."""
        if self.pg:
            text = self.psql.line("SELECT string_agg(channel || '=' || d, ',') FROM (SELECT channel, sum (done) d"
                                  " FROM herald.counts WHERE channel <> '' GROUP BY channel) s")
            got = dict(kv.split("=") for kv in text.split(",")) if text else {}
            return min(int(got.get(ch, 0)) for ch in CHANNELS)
        st = self.admins[0].status()
        if not st:
            raise RuntimeError("%s: the status verb did not answer" % self.label)
        got = {c["name"]: c.get("done", 0) for c in st.get("channels", [])}
        return min(int(got.get(ch, 0)) for ch in CHANNELS)

    def stop(self):
        if self.psql:
            self.psql.close()
            self.psql = None
        for admin in self.admins:
            admin.close()
        self.admins = []
        self.run.stop(list(reversed(self.procs)))
        self.procs = []


# ---------------------------------------------------------------- load processes

def start_load(run, cluster, mode, count, extra=()):
    """count herald_bench_load processes in mode, spread over the brokers;
    each prints "ready" once connected and warmed up."""
    procs = []
    for i in range(count):
        argv = [run.bin("herald_bench_load"), mode, "--system", "herald",
                "--endpoint", cluster.producers[i % cluster.count], "--id-base", run.ids()] + list(extra[i] if extra else [])
        procs.append(run.spawn(argv, cluster.log("load.log"), pipes=True))
    for p in procs:
        line = p.stdout.readline().strip()
        if line != "ready":
            run.stop(procs)
            raise RuntimeError("%s: a herald_bench_load %s did not get ready (%r); see %s"
                               % (cluster.label, mode, line, os.path.join(cluster.dir, "load.log")))
    return procs


def go(procs, seconds):
    end_ms = time.monotonic() * 1000 + seconds * 1000
    for p in procs:
        p.stdin.write("go %.3f\n" % end_ms)
        p.stdin.flush()


def counts(run, cluster, procs, timeout):
    """The "count ..." lines of procs, as lists of numbers; refusals fail the run."""
    out = []
    for p in procs:
        try:
            text = p.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            run.stop(procs)
            raise RuntimeError("%s: herald_bench_load gave no count within %d s" % (cluster.label, timeout))
        fields = [float(x) for x in text.split()[1:]] if text.startswith("count ") else None
        if p.returncode != 0 or not fields:
            raise RuntimeError("%s: herald_bench_load failed (exit %s); see %s"
                               % (cluster.label, p.returncode, os.path.join(cluster.dir, "load.log")))
        if fields[1]:
            raise RuntimeError("%s: %d publishes were refused; see %s"
                               % (cluster.label, fields[1], os.path.join(cluster.dir, "load.log")))
        out.append(fields)
    if procs:
        run.procs[:] = [p for p in run.procs if p not in procs]
    return out


def shape_pipelined(run, cluster, seconds):
    window = 1000 // cluster.count
    procs = start_load(run, cluster, "pipe", cluster.count, [["--window", str(window)]] * cluster.count)
    go(procs, seconds)
    got = counts(run, cluster, procs, seconds + 120)
    acked = sum(c[0] for c in got)
    wall = max(c[2] for c in got) / 1000
    return acked, wall


def shape_producers(run, cluster, seconds):
    procs = start_load(run, cluster, "one", 8)
    go(procs, seconds)
    got = counts(run, cluster, procs, seconds + 60)
    return sum(c[0] for c in got), seconds


def shape_latency(run, cluster, seconds, round_no):
    samples = os.path.join(cluster.dir, "samples-%d.txt" % round_no)
    broker = round_no % cluster.count
    argv = [run.bin("herald_bench_load"), "one", "--system", "herald", "--endpoint", cluster.producers[broker],
            "--id-base", run.ids(), "--samples", samples]
    p = run.spawn(argv, cluster.log("load.log"), pipes=True)
    if p.stdout.readline().strip() != "ready":
        run.stop([p])
        raise RuntimeError("%s: the latency producer did not get ready" % cluster.label)
    go([p], seconds)
    counts(run, cluster, [p], seconds + 60)
    with open(samples) as f:
        return [float(x) for x in f.read().split()]


def shape_end_to_end(run, cluster, events):
    before = cluster.done()
    per = events // cluster.count
    procs = start_load(run, cluster, "pipe", cluster.count,
                       [["--window", str(1000 // cluster.count), "--limit", str(per), "--warmup-ms", "0"]]
                       * cluster.count)
    started = time.monotonic()
    go(procs, 1e6)
    got = counts(run, cluster, procs, 600)
    acked = int(sum(c[0] for c in got))
    deadline = time.monotonic() + 120 + events / 100
    while cluster.done() - before < acked:
        if time.monotonic() > deadline:
            raise RuntimeError("%s: tasks not all done after %.0f s (%d of %d)"
                               % (cluster.label, time.monotonic() - started, cluster.done() - before, acked))
        time.sleep(0.005)
    return acked, time.monotonic() - started


# ---------------------------------------------------------------- the run

def turns(names, r):
    return [names[(r + i) % len(names)] for i in range(len(names))]


def fmt(value):
    return "{:,.0f}".format(value)


def table(names, results, shapes):
    rows = []
    if 1 in shapes:
        rows.append(("1. ACKed events/s, 1,000 outstanding", "pipelined", True))
    if 2 in shapes:
        rows.append(("2. 8 processes x 1 outstanding, events/s", "producers", True))
    if 3 in shapes:
        rows.append(("3. ACK latency p50, 1 outstanding, us", "p50", False))
        rows.append(("3. ACK latency p99, 1 outstanding, us", "p99", False))
    if 4 in shapes:
        rows.append(("4. end to end, 3 channels, events/s", "e2e", True))
    others = [n for n in names if n != "embedded"] if "embedded" in names else []
    head = "%-42s" % "shape" + "".join(" %14s" % CONFIGS[n][0] for n in names) \
        + "".join(" %17s" % ("%s/embedded" % n) for n in others)
    lines = [head, "-" * len(head)]
    for label, key, _ in rows:
        line = "%-42s" % label + "".join(" %14s" % fmt(results[n][key]) for n in names)
        for n in others:
            base = results["embedded"][key]
            line += " %17s" % ("%.2fx" % (results[n][key] / base) if base else "-")
        lines.append(line)
    return "\n".join(lines)


def main():
    ap = Parser(prog="bench_pg.py", formatter_class=argparse.RawDescriptionHelpFormatter,
                description=__doc__.split("\n\n", 1)[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                usage="scripts/bench-pg.sh [options]   (or: /usr/bin/python3 bench/bench_pg.py [options])")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 1 s per configuration per shape, 2,000 events end to end, one round")
    ap.add_argument("--seconds", type=float, help="seconds per configuration for each of shapes 1 to 3 "
                    "(default 10; quick 1), split over the rounds")
    ap.add_argument("--events", type=int, help="events per end-to-end run (default 50000; quick 2000)")
    ap.add_argument("--rounds", type=int, help="turns per configuration (default 3, 2 for shape 4; quick 1)")
    ap.add_argument("--configs", default="embedded,pg1,pg2", help="which configurations (default embedded,pg1,pg2)")
    ap.add_argument("--shapes", default="1,2,3,4", help="which shapes, e.g. 3 (default 1,2,3,4)")
    ap.add_argument("--tmp", help="where the temporary directory goes, PostgreSQL's data too "
                    "(default $TMPDIR or /tmp; postgres must be able to enter it)")
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"),
                    help="where herald-broker, herald-worker and herald_bench_load are (default build/bin)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    args = ap.parse_args()
    seconds = args.seconds if args.seconds is not None else (1 if args.quick else 10)
    events = args.events if args.events is not None else (2000 if args.quick else 50000)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    e2e_rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    if seconds <= 0:
        ap.error("--seconds: expected a number above 0, got %s" % seconds)
    if events < 2 or events > 10000000:
        ap.error("--events: expected 2..10000000, got %d" % events)
    if rounds < 1 or rounds > 100:
        ap.error("--rounds: expected 1..100, got %d" % rounds)
    names = [n for n in args.configs.split(",") if n]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names or len(set(names)) != len(names):
        ap.error("--configs: expected some of embedded,pg1,pg2 (each once), got %r" % args.configs)
    try:
        shapes = sorted({int(s) for s in args.shapes.split(",")})
    except ValueError:
        shapes = []
    if not shapes or any(s not in (1, 2, 3, 4) for s in shapes):
        ap.error("--shapes: expected some of 1,2,3,4, got %r" % args.shapes)
    for prog in ("herald-broker", "herald-worker", "herald_bench_load"):
        if not os.access(os.path.join(args.bin_dir, prog), os.X_OK):
            ap.error("--bin-dir: no %s in %s (build first: scripts/build.sh)" % (prog, args.bin_dir))

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    run = Run(args)
    results = {n: {} for n in names}
    started = time.monotonic()
    clusters = []
    try:
        need_pg = any(CONFIGS[n][2] for n in names)
        if need_pg:
            if args.tmp:
                os.environ["HERALD_TEST_TMP"] = args.tmp
            run.pg = pglib.Postgres("bench", settings=PG_SETTINGS)
            run.pg.start()
            os.environ.update(run.pg.env())     # PGPASSWORD for the brokers, as in production
            version = run.pg.sql("SHOW server_version")
            say("bench_pg: PostgreSQL %s, pid %d, %s, data in %s; fsync %s, synchronous_commit %s, %s"
                % (version, run.pg.pid, run.pg.url(""), run.pg.data, run.pg.sql("SHOW fsync"),
                   run.pg.sql("SHOW synchronous_commit"),
                   ", ".join("%s %s" % kv for kv in PG_SETTINGS.items())))
        say("bench_pg: %d CPUs, load average %s; configurations %s; shapes %s; %g s per configuration per "
            "shape in %d round%s; %d events per end-to-end run in %d round%s; temp dir %s"
            % (os.cpu_count(), " ".join("%.1f" % x for x in os.getloadavg()), ",".join(names),
               ",".join(map(str, shapes)), seconds, rounds, "s" if rounds > 1 else "", events, e2e_rounds,
               "s" if e2e_rounds > 1 else "", run.tmp))

        if any(s in shapes for s in (1, 2, 3)):
            say("\n== ingest (shapes 1-3): fresh stores, no workers")
            clusters = [Cluster(run, n, "ingest", workers=False) for n in names]
            for c in clusters:
                c.start()
            say("  ACK durability: %s" % ", ".join("%s %s" % (c.label, c.durability()) for c in clusters))
            by = {c.name: c for c in clusters}
            def rate_rounds(shape, unit, key):
                """Every configuration takes its turn each round; the rate is all
                answers over all the time."""
                tot = {n: [0, 0.0] for n in names}
                for r in range(rounds):
                    for n in turns(names, r):
                        acked, wall = shape(run, by[n], seconds / rounds)
                        tot[n][0] += acked
                        tot[n][1] += wall
                        say("  round %d/%d  %-14s %10s %s" % (r + 1, rounds, CONFIGS[n][0], fmt(acked / wall), unit))
                for n in names:
                    results[n][key] = tot[n][0] / tot[n][1]

            if 1 in shapes:
                say("\n== 1. ACKed events/s, 1,000 outstanding (2 brokers: 500 each)")
                rate_rounds(shape_pipelined, "ACKed/s", "pipelined")
            if 2 in shapes:
                say("\n== 2. 8 processes x 1 outstanding (2 brokers: 4 each)")
                rate_rounds(shape_producers, "events/s", "producers")
            if 3 in shapes:
                say("\n== 3. ACK latency at 1 outstanding (2 brokers: A, then B, in turn)")
                samples = {n: [] for n in names}
                for r in range(rounds):
                    for n in turns(names, r):
                        got = shape_latency(run, by[n], seconds / rounds, r)
                        samples[n] += got
                        got.sort()
                        say("  round %d/%d  %-14s p50 %6s us  p99 %6s us  (%d round trips)"
                            % (r + 1, rounds, CONFIGS[n][0], fmt(percentile(got, 0.5)),
                               fmt(percentile(got, 0.99)), len(got)))
                for n in names:
                    samples[n].sort()
                    if not samples[n]:
                        raise RuntimeError("%s: no latency sample" % CONFIGS[n][0])
                    results[n]["p50"] = percentile(samples[n], 0.50)
                    results[n]["p99"] = percentile(samples[n], 0.99)
            for c in clusters:
                c.stop()
            clusters = []

        if 4 in shapes:
            say("\n== 4. end to end, 3 channels: fresh stores, one noop worker per channel per broker")
            clusters = [Cluster(run, n, "e2e", workers=True) for n in names]
            for c in clusters:
                c.start()
            by = {c.name: c for c in clusters}
            tot = {n: [0, 0.0] for n in names}
            for r in range(e2e_rounds):
                for n in turns(names, r):
                    acked, wall = shape_end_to_end(run, by[n], events)
                    tot[n][0] += acked
                    tot[n][1] += wall
                    say("  round %d/%d  %-14s %10s events/s end to end (%d events in %.1f s)"
                        % (r + 1, e2e_rounds, CONFIGS[n][0], fmt(acked / wall), acked, wall))
            for n in names:
                results[n]["e2e"] = tot[n][0] / tot[n][1]
            for c in clusters:
                c.stop()
            clusters = []

        say("\nbench_pg: whole run %.0f s; load average now %s\n" % (time.monotonic() - started,
            " ".join("%.1f" % x for x in os.getloadavg())))
        say(table(names, results, shapes))
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("bench_pg: interrupted; stopping what it started\n")
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        sys.stderr.write("bench_pg: %s\n" % e)
        return 1
    finally:
        for c in clusters:
            c.stop()
        run.cleanup()


if __name__ == "__main__":
    sys.exit(main())
