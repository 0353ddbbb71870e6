"""test_pg_numbers: a broker on PostgreSQL keeps enough event numbers at
hand to go on ACKing while its query thread is held up.

Each broker reserves blocks of 1,000 event numbers from herald.event_seq on
its query thread, ahead of need; with none at hand a publish is refused 503
"no event number at hand". Held one block ahead only, a query thread busy
for a few tens of milliseconds (a heartbeat, a claim, the machine's other
processes) left a broker publishing 40,000 events/s without numbers: the
PostgreSQL benchmark (scripts/bench-pg.sh) got thousands of such 503s at
1,000 outstanding. Here the query thread is held for certain: a psql session
takes an ACCESS EXCLUSIVE lock on herald.brokers, so the thread's next
heartbeat waits (seen in pg_stat_activity); meanwhile 5,000 events are
published pipelined (window 1,000) and every one must be ACKed by the
writer, which never touches herald.brokers. Then the lock goes, and the
broker goes on (a last publish, ACKed; its heartbeat renewed)."""

import json
import os
import subprocess

import harness
import pglib

N = 5000


def body(t):
    pglib.run_test(t, "numbers", run)


def run(t, pg):
    os.environ.update(pg.env())         # the broker and the CLI read PGPASSWORD, never the YAML
    h = t.deployment(store=pg.url())
    h.start_broker()
    r = h.publish(data=harness.order(1))
    t.require(r.returncode == 0, "a first publish is ACKed", r.stderr)

    locker = subprocess.Popen([os.path.join(pg.bin, "psql"), pg.url(), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, **pg.env()))
    try:
        locker.stdin.write("BEGIN; LOCK TABLE herald.brokers IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        locker.stdin.flush()
        t.require(locker.stdout.readline().strip() == "locked", "psql holds herald.brokers locked")

        def query_thread_waits():
            return pg.sql("SELECT count (*) FROM pg_stat_activity WHERE application_name = 'herald-broker-query'"
                          " AND wait_event_type = 'Lock'") == "1"
        harness.wait_until(query_thread_waits, 10, "the broker's query thread waits for the lock (its heartbeat)")
        t.note("the query thread is held up; publishing %d events pipelined" % N)

        path = os.path.join(h.tmp, "orders.jsonl")
        harness.write_jsonl(path, (harness.order(i) for i in range(2, N + 2)))
        r = h.publish(file=path, extra=("--window", "1000", "--quiet"), timeout=120)
        refused = [l for l in r.stderr.splitlines() if "no event number" in l]
        t.check(r.returncode == 0 and not refused,
                "all %d events ACKed while the query thread is held up (no 503 'no event number at hand')" % N,
                "exit %d, %d lines refused for want of numbers, e.g. %s\n%s"
                % (r.returncode, len(refused), refused[:2], r.stderr[-1500:]))
        t.check(query_thread_waits(), "the query thread was still held up at the end (the test held it throughout)")
    finally:
        if locker.poll() is None:
            locker.stdin.write("COMMIT;\n")
            locker.stdin.close()
            locker.wait(10)

    r = h.publish(data=harness.order(N + 10), json_out=True)
    t.check(r.returncode == 0 and json.loads(r.stdout).get("duplicate") is False,
            "after the lock, a new event is ACKed", r.stdout + r.stderr)
    harness.wait_until(lambda: pg.sql("SELECT count (*) FROM herald.brokers WHERE seen_at > now () - interval '3s'")
                       == "1", 10, "the broker's heartbeat renewed after the lock")
    t.check(pg.sql("SELECT count (*) FROM herald.events") == str(N + 2), "the database holds every event",
            pg.sql("SELECT count (*) FROM herald.events"))


if __name__ == "__main__":
    harness.Test("pg_numbers", budget=90).run(body)
