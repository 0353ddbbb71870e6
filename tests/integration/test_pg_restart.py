"""test_pg_restart: PostgreSQL restarted under load, two brokers.

Producers publish to both brokers, workers deliver on both. PostgreSQL is
killed (SIGKILL of the postmaster and its backends, by PID: a crashed database
host), kept down a moment, started again on the same data; later it is stopped
fast (SIGINT by PID: PostgreSQL's SIGTERM, a smart shutdown, would wait for the
brokers to disconnect, which they do not) and started again. Checks:
  - never an ACK the brokers cannot back: every order ever ACKed is in the
    database once it is back, under the ACKed id;
  - meanwhile publishes are answered NACK 503, "durability unknown" (the
    connection broke during the commit) or "store unavailable" (not stored),
    and nothing else;
  - the brokers recover by themselves (they never exit): every order is ACKed
    in the end, every ACKed order delivered on every channel under one task id;
  - every task ends done, owned by nobody.
"""

import os
import signal
import subprocess
import time

import faultlib
import harness
import pglib
import pgtwo


def body(t):
    pglib.run_test(t, "restart", run)


def stored(pg):
    return int(pg.sql("SELECT count(*) FROM herald.events"))


def check_backed(t, pg, producers, when):
    """Every order ACKed so far is in the database under its ACKed id."""
    acks = {}
    for p in producers:
        for oid, ids in p.acked.items():
            acks.setdefault(oid, set()).update(ids)
    rows = pg.sql("SELECT id FROM herald.events")
    ids = set(rows.split("\n")) if rows else set()
    lost = [(oid, sorted(e)) for oid, e in acks.items() if not e <= ids]
    t.check(not lost, "%s: every ACKed order is in the database (%d ACKed)" % (when, len(acks)),
            "%d ACKed but not stored, e.g. %s" % (len(lost), lost[:5]))


def run(t, pg):
    a, b = pgtwo.pair(t, pg, takeover="5s")
    brokers = [a.start_broker(), b.start_broker()]
    a.start_workers()
    b.start_workers()
    both = {"A": a, "B": b}
    producers = [faultlib.Producer(a, "to-A", 1, 4000, rate=400),
                 faultlib.Producer(b, "to-B", 4001, 4000, rate=400)]
    faultlib.run_producers(producers)

    def unknowns():
        return sum(n for p in producers for r, n in p.reasons.items() if r.startswith("durability unknown"))

    # the batch held on the wire by the lock may hold workers' outcomes only
    # (no event to answer "durability unknown"): the cut during a commit is
    # made again until one held events, up to 4 times
    cuts = ["SIGKILL", "SIGINT"] + ["SIGKILL during a commit"] * 4
    before_commit_cuts = None
    for how in cuts:
        if how == "SIGKILL during a commit":
            if before_commit_cuts is None:
                before_commit_cuts = unknowns()
            elif unknowns() > before_commit_cuts:
                break
        start = stored(pg)
        harness.wait_until(lambda: stored(pg) >= start + 800, 30, "800 more events stored before the %s" % how)
        if how == "SIGKILL during a commit":
            # an operator's session holds a lock the writers' next commit
            # needs (the counts): a batch waits on the wire, then the
            # database dies under it
            holder = subprocess.Popen([pg.bin + "/psql", pg.url(), "-X", "-q", "-c",
                                       "BEGIN; LOCK TABLE herald.counts IN ACCESS EXCLUSIVE MODE;"
                                       " SELECT pg_sleep(60)"], env=dict(os.environ, **pg.env()),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            harness.wait_until(lambda: int(pg.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type"
                                                  " = 'Lock' AND application_name = 'herald-broker-writer'")) >= 1,
                               20, "a broker's commit waiting for the lock")
            pg.kill()
            holder.wait(timeout=30)
        elif how == "SIGKILL":
            pg.kill()
        else:
            pg.stop(signal.SIGINT)
        down_at = time.monotonic()
        t.note("PostgreSQL stopped with %s at %d events" % (how, start + 800))
        # the brokers notice and refuse what they cannot store
        harness.wait_until(lambda: sum(sum(p.nacks.values()) for p in producers) > 0 or
                           time.monotonic() - down_at > 1.5, 10, "NACKs while the database is down")
        pg.start()
        t.note("PostgreSQL started again after %.1fs" % (time.monotonic() - down_at))
        check_backed(t, pg, producers, "after the %s" % how)
        before = stored(pg)
        harness.wait_until(lambda: stored(pg) >= before + 400, 30, "publishing to resume after the %s" % how)
        t.check(all(p.alive() for p in brokers), "both brokers still run after the %s" % how,
                [(p.name, p.popen.returncode) for p in brokers])

    acks = pgtwo.publish_all(t, producers, timeout=120)
    check_backed(t, pg, producers, "at the end")
    t.check(len(acks) == 8000, "all 8,000 orders ACKed in the end", len(acks))
    t.check(stored(pg) == 8000, "8,000 events stored, one per order", stored(pg))
    nacks = {}
    reasons = {}
    for p in producers:
        for code, n in p.nacks.items():
            nacks[code] = nacks.get(code, 0) + n
        for text, n in p.reasons.items():
            reasons[text] = reasons.get(text, 0) + n
    t.note("NACKs while the database was away: %s, reasons %s" % (nacks, reasons))
    t.check(set(nacks) <= {"503"}, "every NACK is 503", nacks)
    t.check(all(r.startswith(("durability unknown", "store unavailable")) for r in reasons),
            "every NACK says durability unknown or store unavailable (publish again)", reasons)
    t.check(unknowns() > before_commit_cuts,
            "a batch held on the wire when the database died was answered \"durability unknown\"", reasons)
    pgtwo.wait_delivered(both, acks, timeout=90)
    pgtwo.verify(t, both, acks)
    harness.wait_until(lambda: pg.sql("SELECT count(*) FROM herald.tasks WHERE state <> 1 OR owner IS NOT NULL")
                       == "0", 30, lambda: "every task done and free: %s"
                       % pg.sql("SELECT state, owner, count(*) FROM herald.tasks GROUP BY 1, 2"))
    lost = faultlib.logs_matching(a, "broker", "connection lost") + faultlib.logs_matching(b, "broker", "connection lost")
    back = faultlib.logs_matching(a, "broker", "connection back") + faultlib.logs_matching(b, "broker", "connection back")
    t.check(lost and back, "the brokers logged the loss and the return of the database",
            "%d lost, %d back" % (len(lost), len(back)))
    t.check(all(p.alive() for p in brokers), "both brokers still run")


if __name__ == "__main__":
    harness.Test("pg_restart", budget=180).run(body)
