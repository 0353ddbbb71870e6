"""test_pg_taken_over: a broker that was taken over exits 74.

Brokers A and B share a database (broker.takeover_timeout 2 s), with workers
on both. A's workers are stopped (SIGSTOP), so the 200 orders published to A
stay A's tasks (held in its memory, some leased to its stalled workers).
Then A itself is stopped (SIGSTOP) for longer than the timeout: to the
others it is silent, as a broker cut off from the database would be. Checks:
  - B takes A over (its log names A's instance id) and B's workers deliver
    every one of A's orders;
  - A, continued (SIGCONT), finds its liveness row gone, logs "this broker
    was taken over" and exits 74;
  - nothing is delivered twice under different task ids;
  - A started again under the same config serves again: new orders
    published to it are ACKed and delivered.
"""

import signal

import faultlib
import harness
import pglib
import pgtwo

TAKEOVER_S = 2
N = 200


def body(t):
    pglib.run_test(t, "taken-over", run)


def run(t, pg):
    a, b = pgtwo.pair(t, pg, takeover="%ds" % TAKEOVER_S)
    both = {"A": a, "B": b}
    broker_a = a.start_broker()
    b.start_broker()
    workers_a = a.start_workers()
    b.start_workers()
    id_a = pg.sql("SELECT min(id) FROM herald.brokers")
    for w in workers_a:
        a.send_signal(w, signal.SIGSTOP)

    events = "%s/orders.jsonl" % a.tmp
    harness.write_jsonl(events, (harness.order(i) for i in range(1, N + 1)))
    r = a.publish(file=events, json_out=True, timeout=60)
    acks = {}
    for ack in harness.parse_json_lines(r.stdout):
        acks.setdefault(ack["line"], set()).add(ack["event_id"])
    t.require(r.returncode == 0 and len(acks) == N, "%d orders ACKed by A" % N, r.stderr[-1000:])
    acks = {line: ids for line, ids in acks.items()}      # line i is order i
    owned = int(pg.sql("SELECT count(*) FROM herald.tasks WHERE owner = %s" % id_a))
    t.check(owned == 3 * N, "A holds all %d tasks (its workers stalled)" % (3 * N), owned)

    a.send_signal(broker_a, signal.SIGSTOP)
    t.note("A (broker %s) stopped (SIGSTOP) holding %d tasks" % (id_a, owned))
    harness.wait_until(lambda: faultlib.logs_matching(b, "broker", "took over dead brokers"), 5 * TAKEOVER_S + 10,
                       "B to take A's tasks over")
    took = faultlib.logs_matching(b, "broker", "took over dead brokers")
    t.check('dead_brokers="%s"' % id_a in took[0], "B took A over", took[:2])
    pgtwo.wait_delivered(both, acks, timeout=30)
    t.check(broker_a.alive(), "A is still there (stopped) while B delivers its orders")

    a.send_signal(broker_a, signal.SIGCONT)
    code = a.wait_exit(broker_a, timeout=15)
    t.check(code == 74, "A, continued, exits 74", code)
    said = faultlib.logs_matching(a, "broker", "this broker was taken over")
    t.check(said, "A logs \"this broker was taken over\"", harness.tail(broker_a.log, 5))
    # A's stalled workers go (they are A's supervisor's business, not this
    # test's); a restarted A gets workers of its own
    for w in workers_a:
        a.send_signal(w, signal.SIGCONT)
        a.kill(w, signal.SIGKILL)

    broker_a2 = a.start_broker()
    a.start_workers()
    more = "%s/more.jsonl" % a.tmp
    harness.write_jsonl(more, (harness.order(i) for i in range(N + 1, N + 21)))
    r = a.publish(file=more, json_out=True, timeout=60)
    new = harness.parse_json_lines(r.stdout)
    t.check(r.returncode == 0 and len(new) == 20 and all(not x.get("duplicate") for x in new),
            "A restarted under the same config: 20 new orders ACKed", r.stderr[-1000:])
    for x in new:
        acks[N + x["line"]] = {x["event_id"]}
    pgtwo.wait_delivered(both, acks, timeout=30)
    pgtwo.verify(t, both, acks)
    t.check(broker_a2.alive(), "the restarted A runs")
    t.check(pg.sql("SELECT count(*) FROM herald.brokers WHERE id = %s" % id_a) == "0",
            "A's first instance has no liveness row")


if __name__ == "__main__":
    harness.Test("pg_taken_over", budget=90).run(body)
