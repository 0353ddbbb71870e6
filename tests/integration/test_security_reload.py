"""test_security_reload: key lists change with an edit and SIGHUP, without a
restart. A key added can publish at once; connected peers whose keys stay
(a producer, the workers) keep their connections and sessions; an invalid
file, or a change that needs a restart, is refused and logged and the
running lists stay. Removing a channel's worker key closes that worker's
connection and keeps it out; listing it again lets it back in, and the
task that waited meanwhile is delivered."""

import zmq

import harness
import securitylib as sec


def body(t):
    h = sec.SecureHerald("security-reload", tcp=False, extra_keys=("newbie",))
    t.deployments.append(h)
    broker = h.start_broker()
    h.start_workers()
    endpoint, server = h.endpoint("producers"), h.broker_public()
    ctx = zmq.Context()
    try:
        shop, shop_mon = sec.dealer(ctx, endpoint, server, *sec.read_secret(h.key(sec.PRODUCER, "secret")),
                                    monitor=True)
        reply = sec.request(shop, sec.publish_frames(1, 1))
        t.require(reply and reply[1] == b"ACK", "a listed producer publishes", reply)
        newbie_keys = sec.read_secret(h.key("newbie", "secret"))
        newbie = sec.dealer(ctx, endpoint, server, *newbie_keys)
        t.check(sec.request(newbie, sec.publish_frames(2, 2), timeout=1.0) is None,
                "a key not listed yet gets nothing")
        newbie.close(linger=0)

        security = sec.default_security()
        security["producers"] = [sec.PRODUCER, "newbie"]
        h.rewrite(security)
        line = h.reload(broker)
        t.check('msg="security reloaded"' in line and "added=1" in line and "removed=0" in line
                and "connections_closed=0" in line, "SIGHUP: one key added, nothing closed", line.strip())
        newbie = sec.dealer(ctx, endpoint, server, *newbie_keys)
        reply = sec.request(newbie, sec.publish_frames(3, 3))
        t.check(reply and reply[1] == b"ACK", "the added key publishes without a restart", reply)
        reply = sec.request(shop, sec.publish_frames(4, 4))
        t.check(reply and reply[1] == b"ACK", "the producer connected before still publishes on its connection",
                reply)
        t.check(sec.wait_event(shop_mon, {zmq.EVENT_DISCONNECTED}, 0.3) is None,
                "... which was never dropped")
        t.check(all(h.channel_status(ch).get("workers") == 1 for ch in h.channels),
                "the workers keep their sessions", h.status()["channels"])

        # An invalid file: refused, the running lists stay.
        broken = dict(security, admin_read=[sec.DASH, "nobody"])      # no such key file
        h.rewrite(broken)
        line = h.reload(broker)
        t.check('msg="reload refused' in line and "nobody.public" in line,
                "an invalid file is refused, and the log says why", line.strip())
        reply = sec.request(newbie, sec.publish_frames(5, 5))
        t.check(reply and reply[1] == b"ACK", "the running lists are kept", reply)

        # A new broker key needs a restart.
        h.make_keys("broker2")
        h.rewrite(security)
        with open(h.config) as f:
            text = f.read()
        with open(h.config, "w") as f:
            f.write(text.replace(h.key("broker", "secret"), h.key("broker2", "secret")))
        line = h.reload(broker)
        t.check('msg="reload refused' in line and "needs a restart" in line,
                "a new broker_key is refused: it needs a restart", line.strip())

        # Remove the inventory workers' key: its connection is closed and it stays out.
        security["workers"]["inventory"] = []
        h.rewrite(security)
        line = h.reload(broker)
        t.check("removed=1" in line and "connections_closed=1" in line,
                "removing the inventory workers' key closes that worker's connection", line.strip())
        harness.wait_until(lambda: h.channel_status("inventory").get("workers") == 0, 10,
                           "the broker to lose the inventory worker")
        reply = sec.request(shop, sec.publish_frames(6, 6))
        t.check(reply and reply[1] == b"ACK", "publishing goes on", reply)
        harness.wait_until(lambda: h.count("email") >= 5 and h.count("courier") >= 5, 15,
                           "email and courier deliveries")
        t.check(h.count("inventory") == 4, "inventory gets nothing while its key is out",
                "%d inventory deliveries" % h.count("inventory"))
        harness.wait_until(lambda: h.refused().get("removed_key", 0) >= 2, 10,
                           lambda: "its reconnections to be refused as removed_key: %s" % h.refused())

        security["workers"]["inventory"] = [sec.WORKER_KEYS["inventory"]]
        h.rewrite(security)
        line = h.reload(broker)
        t.check("added=1" in line, "the key is listed again", line.strip())
        harness.wait_until(lambda: h.channel_status("inventory").get("workers") == 1, 40,
                           "the inventory worker to register again")
        h.wait_counts(5, timeout=20)
        t.check(h.count("inventory") == 5, "the waiting inventory task is delivered", h.counts())
        t.check(broker.alive(), "one broker process throughout (no restart)")
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    harness.Test("security_reload", budget=120).run(body)
