"""test_pg_standby: a broker on a PostgreSQL primary with a real synchronous
standby, what the README's two-host example and herald-broker(8) claim.

The primary (pglib) and a standby made from it with `pg_basebackup -R`
(streaming replication, application_name b, its own port and directory);
on the primary synchronous_standby_names = 'FIRST 1 (b)' (ALTER SYSTEM, so
that it can change at run time). One broker (no workers: the tasks wait in the
database), its store URL naming both servers with
target_session_attrs=read-write. Checks:
  - synchronous_commit = on: every ACK says durability "commit-standby"; an
    event ACKed while the standby's replay is paused is on the standby's disk
    but not yet visible to its queries (`on` waits for the flush, not the
    apply), and becomes visible once replay resumes;
  - synchronous_commit = remote_apply: each event is visible on the standby
    the moment its ACK arrives (queried at once, no wait); with replay
    paused, a publish gets no ACK at all;
  - the standby stopped (SIGTERM by PID): no publish is ACKed (they time
    out: the COMMIT waits for the standby); a COMMIT whose wait is cancelled
    (pg_cancel_backend, as a statement_timeout would) is not ACKed
    "commit-standby"; clearing synchronous_standby_names (the README's way to
    ride out a lost standby) makes ACKs come back saying "commit", not
    "commit-standby"; the standby started again (and the setting restored),
    publishes are ACKed "commit-standby" again, without restarting the broker;
  - the primary SIGKILLed and the standby promoted (pg_promote): the broker
    reconnects by itself to the new primary, which holds every event ever
    ACKed "commit-standby"; its ACKs then say "commit" (no standby left).
"""

import json
import os
import signal
import subprocess
import time

import faultlib
import harness
import pglib

STANDBY = "b"


def body(t):
    # synchronous_commit and synchronous_standby_names are left off the
    # command line: ALTER SYSTEM and a reload change them during the test
    pg = pglib.Postgres("primary", settings={"synchronous_commit": None, "wal_sender_timeout": "5s"})
    sb = None
    try:
        pg.start()
        sb = pg.standby("standby", STANDBY)
        run(t, pg, sb)
    finally:
        if sb:
            sb.cleanup()
        pg.cleanup()


def set_primary(pg, key, value):
    if value is None:
        pg.sql("ALTER SYSTEM RESET %s" % key)
    else:
        pg.sql("ALTER SYSTEM SET %s = '%s'" % (key, value))
    pg.reload()
    want = value if value is not None else {"synchronous_commit": "on", "synchronous_standby_names": ""}[key]
    harness.wait_until(lambda: pg.sql("SHOW %s" % key) == want, 10, "the primary to say %s = %r" % (key, want))


def wait_sync(pg):
    harness.wait_until(lambda: pg.sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = '%s'"
                                      % STANDBY) == "sync", 20,
                       lambda: "standby %s streaming as the synchronous standby: %s"
                       % (STANDBY, pg.sql("SELECT application_name, state, sync_state FROM pg_stat_replication")))


def on_server(server, event_id):
    """True when server's queries see the event (by its ACKed id)."""
    return server.sql("SELECT count(*) FROM herald.events WHERE id = '%s' OR uid = '%s'"
                      % (event_id, event_id)) == "1"


def publish(h, order_id, timeout_ms=5000):
    """One publish: (ack dict or None, CompletedProcess)."""
    r = h.publish(data=harness.order(order_id), json_out=True, extra=["--timeout", str(timeout_ms)],
                  timeout=timeout_ms / 1000 + 30)
    acks = harness.parse_json_lines(r.stdout)
    return (acks[0] if r.returncode == 0 and acks else None), r


def run(t, pg, sb):
    sb.start()
    set_primary(pg, "synchronous_standby_names", "FIRST 1 (%s)" % STANDBY)
    wait_sync(pg)
    os.environ.update(pg.env())
    h = t.deployment(store=pglib.url([pg, sb]), broker={"takeover_timeout": "3s"})
    h.start_broker()
    t.note("primary on %d, standby %s on %d (synchronous), broker up" % (pg.port, STANDBY, sb.port))
    acked = {}                                  # order -> event id, every ACK "commit-standby"

    # -- synchronous_commit = on: the standby flushed the commit, maybe not applied it yet
    for oid in range(1, 6):
        ack, r = publish(h, oid)
        t.require(ack is not None, "order %d ACKed" % oid, r.stdout + r.stderr)
        t.check(ack.get("durability") == "commit-standby", "order %d: durability \"commit-standby\"" % oid, ack)
        acked[oid] = ack["event_id"]
    sb.sql("SELECT pg_wal_replay_pause()", db="postgres")
    ack, r = publish(h, 6)
    t.check(ack is not None and ack.get("durability") == "commit-standby",
            "synchronous_commit on, the standby's replay paused: order 6 still ACKed \"commit-standby\" (the"
            " standby flushed it)", r.stdout + r.stderr)
    if ack:
        acked[6] = ack["event_id"]
        t.check(not on_server(sb, ack["event_id"]),
                "... and not yet visible on the standby (on does not wait for the apply)")
    sb.sql("SELECT pg_wal_replay_resume()", db="postgres")
    harness.wait_until(lambda: all(on_server(sb, e) for e in acked.values()), 10,
                       "orders 1-6 visible on the standby once replay resumes")

    # -- remote_apply: visible on the standby when the ACK arrives
    set_primary(pg, "synchronous_commit", "remote_apply")
    for oid in (7, 8):                          # the broker's sessions read the reload at their next command
        ack, r = publish(h, oid)
        t.require(ack is not None, "order %d ACKed" % oid, r.stdout + r.stderr)
        acked[oid] = ack["event_id"]
    seen = []
    for oid in range(9, 29):
        ack, r = publish(h, oid)
        t.require(ack is not None and ack.get("durability") == "commit-standby",
                  "order %d ACKed \"commit-standby\"" % oid, r.stdout + r.stderr)
        acked[oid] = ack["event_id"]
        seen.append(on_server(sb, ack["event_id"]))    # at once: no wait
    t.check(all(seen), "synchronous_commit remote_apply: each of 20 events visible on the standby the moment"
            " its ACK arrived", seen)
    sb.sql("SELECT pg_wal_replay_pause()", db="postgres")
    ack, r = publish(h, 29, timeout_ms=2000)
    t.check(ack is None and "no answer" in r.stderr,
            "remote_apply with the standby's replay paused: order 29 gets no ACK (times out)",
            r.stdout + r.stderr)
    sb.sql("SELECT pg_wal_replay_resume()", db="postgres")
    ack, r = publish(h, 29)
    t.check(ack is not None and ack.get("durability") == "commit-standby",
            "replay resumed: order 29 published again is ACKed \"commit-standby\"", r.stdout + r.stderr)
    if ack:
        acked[29] = ack["event_id"]
        t.check(on_server(sb, ack["event_id"]), "... and visible on the standby at once")
    set_primary(pg, "synchronous_commit", None)      # back to on, the README's setting

    # -- the standby stopped: COMMITs wait for it, no ACK
    sb.stop(signal.SIGTERM)
    t.note("standby stopped (SIGTERM)")
    down = []
    for oid in (30, 31):
        ack, r = publish(h, oid, timeout_ms=2000)
        down.append(ack)
        t.check(ack is None and "no answer" in r.stderr,
                "standby down: order %d gets no ACK (the COMMIT waits for the standby)" % oid,
                r.stdout + r.stderr)
    # a COMMIT whose wait for the standby is cancelled is committed on the
    # primary alone: PostgreSQL says so in a WARNING, and the broker must not
    # call it "commit-standby"
    slow = subprocess.Popen([harness.binary("herald"), "publish", "-c", h.config, "--type", harness.EVENT_TYPE,
                             "--json", "--timeout", "20000", "--data", json.dumps(harness.order(32))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=h.tmp)
    writer = lambda: pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'herald-broker-writer'"
                            " AND wait_event = 'SyncRep'")
    cancels = 0
    deadline = time.monotonic() + 30
    while slow.poll() is None and time.monotonic() < deadline:
        # each batch's COMMIT waits in turn (order 30's, 31's, then 32's):
        # cancel each wait until order 32 is answered
        harness.wait_until(lambda: slow.poll() is not None or writer() != "", 10,
                           "the broker's COMMIT to wait for the standby")
        pid = writer()
        if pid and slow.poll() is None:
            pg.sql("SELECT pg_cancel_backend(%s)" % pid.split()[0])
            cancels += 1
    out, err = slow.communicate(timeout=10)
    got = harness.parse_json_lines(out)
    t.check(got and got[0].get("durability") == "commit",
            "standby down, the COMMIT's wait cancelled (pg_cancel_backend, %d times): order 32 ACKed with"
            " durability \"commit\" (committed on the primary alone), not \"commit-standby\"" % cancels,
            "exit %s: %s %s" % (slow.returncode, out, err))
    t.check(faultlib.logs_matching(h, "broker", "the server warned during the commit"),
            "the broker logs that the commit's wait was cut short")

    # the README's way out: synchronous_standby_names cleared; ACKs say so
    set_primary(pg, "synchronous_standby_names", None)
    ack, r = publish(h, 33)
    t.check(ack is not None and ack.get("durability") == "commit",
            "synchronous_standby_names cleared with the standby down: order 33 ACKed, durability \"commit\""
            " (not \"commit-standby\")", r.stdout + r.stderr)
    set_primary(pg, "synchronous_standby_names", "FIRST 1 (%s)" % STANDBY)

    # -- the standby back: ACKed again, the same broker
    sb.start()
    wait_sync(pg)
    # 34 first: a new event, a COMMIT that waits for the standby again; 30-33
    # after it are duplicates answered from memory, with the word of that
    # last COMMIT (true for them too: the standby has the WAL up to it)
    for oid in (34, 30, 31, 32, 33):
        ack, r = publish(h, oid, timeout_ms=10000)
        t.check(ack is not None and ack.get("durability") == "commit-standby",
                "standby back: order %d ACKed \"commit-standby\" by the same broker%s"
                % (oid, " (a duplicate)" if oid != 34 else ""), r.stdout + r.stderr)
        if ack:
            acked[oid] = ack["event_id"]
    harness.wait_until(lambda: all(on_server(sb, e) for e in acked.values()), 10,
                       "every ACKed order on the standby")

    # -- the primary lost, the standby promoted: the broker follows by itself
    pg.kill()
    t.note("primary killed (SIGKILL); promoting the standby")
    sb.promote()
    t.check(not sb.in_recovery(), "the standby is a primary now")
    deadline = time.monotonic() + 20
    ack = None
    while ack is None and time.monotonic() < deadline:
        ack, r = publish(h, 35, timeout_ms=2000)
    t.check(ack is not None and ack.get("durability") == "commit",
            "the broker reconnected by itself to the promoted standby: order 35 ACKed, durability \"commit\""
            " (no standby left)", r.stdout + r.stderr)
    lost = [oid for oid, e in acked.items() if not on_server(sb, e)]
    t.check(not lost, "the new primary holds every event ACKed \"commit-standby\" (%d)" % len(acked), lost)


if __name__ == "__main__":
    harness.Test("pg_standby", budget=120).run(body)
