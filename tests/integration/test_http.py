"""test_http: the broker's HTTP endpoint against a real broker, over real HTTP
on 127.0.0.1 (a free port).

Without tokens (every request allowed on loopback):
  - structured mode: 201 with the event id, "new"; the same order again
    (another CloudEvents id, same order_id key): 200 "duplicate" with the
    first id; binary mode (ce-* headers, the body is the data): 201, and the
    stored event carries the ce-* attributes and datacontenttype;
  - batch: a bad entry in the middle gets its own status, the others are
    stored, results in order;
  - codes: 400 (invalid JSON), 413 (Content-Length above max_event_bytes,
    answered without reading the body), 415, 404, 405 (with Allow), 422
    naming the field, 424 for an unknown type; 503 busy with Retry-After
    once a channel holds broker.max_pending_events tasks;
  - /healthz 200; /readyz 503 naming the channels without a worker, 200
    once every channel has one;
  - /metrics passes `promtool check metrics`, and its numbers move:
    3 publishes -> received +3 and acked new +3, a 422 -> refused{code="422"}
    +1, deliveries -> done +1 per channel, histogram counts grow.
With security.tokens_file:
  - `herald token new` prints a token alone on one line; the file holds
    no secret and is mode 0600; `herald token list` shows no secret;
  - 401 without a token (WWW-Authenticate: Bearer) and with a wrong one;
    403 for a token whose role may not use the route (admin_read on
    /events, producer on /metrics); /healthz needs no token;
  - `herald token revoke`: the token is refused at once, without restart.
With security.tls_cert and tls_key (a self-signed certificate from openssl):
  - a publish over HTTPS gets 201; plain HTTP gets no answer.
With CURVE on the ZeroMQ endpoints (security.broker_key) and tokens:
  - HTTP publishes all the same (the internal socket is inproc, no ZAP)."""

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess

import harness
import httptest
from httptest import event, samples


def promtool_check(t, text, what):
    promtool = shutil.which("promtool")
    if not promtool:
        t.check(False, "promtool is installed (Debian's prometheus package; scripts/deps.sh)")
        return
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    t.check(r.returncode == 0, "%s: promtool check metrics passes" % what, r.stdout + r.stderr)


def without_tokens(t):
    h = httptest.HttpHerald("http", broker={"max_event_bytes": "4KiB"})
    t.deployments.append(h)
    broker = h.start_broker()

    status, _, text, body = h.request("GET", "/healthz")
    t.check(status == 200, "/healthz: 200", text)
    status, _, text, body = h.request("GET", "/readyz")
    t.check(status == 503 and body and any("email" in f for f in body.get("failing", [])),
            "/readyz: 503 naming the channel without a worker", text)

    m0 = samples(h.metrics())

    # -- structured, duplicate, binary
    first = event(1)
    status, _, text, body = h.post_event(first)
    t.check(status == 201 and body == {"id": first["id"], "status": "new"}, "structured: 201 new with the id", text)
    again = event(1)
    status, _, text, body = h.post_event(again)
    t.check(status == 200 and body == {"id": first["id"], "status": "duplicate"},
            "the same order again: 200 duplicate with the first id", text)
    status, _, text, body = h.request("POST", "/events", body=json.dumps(harness.order(2)), headers={
        "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "bin-2",
        "ce-source": "shop/binary", "ce-type": harness.EVENT_TYPE, "ce-subject": "order%202"})
    t.check(status == 201 and body == {"id": "bin-2", "status": "new"}, "binary mode: 201 new", text)
    track = h.herald("track", "bin-2")
    t.check(track.returncode == 0 and "shop/binary" in track.stdout, "binary: stored with its ce-source",
            track.stdout + track.stderr)

    # -- batch with a bad event in the middle
    batch = [event(3), {"specversion": "1.0", "id": "bad", "source": "s", "type": harness.EVENT_TYPE,
                        "data": {"order_id": 4}}, event(5)]
    status, _, text, body = h.post_batch(batch)
    results = (body or {}).get("results", [])
    t.check(status == 200 and len(results) == 3, "batch: 200 with one result per event", text)
    if len(results) == 3:
        t.check(results[0].get("id") == batch[0]["id"] and results[0].get("code") == 201,
                "batch: first event stored (201)", results[0])
        t.check(results[1].get("code") == 422 and "customer.email" in results[1].get("error", ""),
                "batch: the bad one in the middle refused 422, naming the field", results[1])
        t.check(results[2].get("id") == batch[2]["id"] and results[2].get("code") == 201,
                "batch: the third stored (201), in order", results[2])

    # -- codes
    status, _, text, body = h.request("POST", "/events", body="{not json",
                                      headers={"Content-Type": "application/cloudevents+json"})
    t.check(status == 400 and body and body.get("code") == 400, "invalid JSON: 400", text)
    bad = event(6)
    del bad["data"]["customer"]
    status, _, text, body = h.post_event(bad)
    t.check(status == 422 and body and body.get("error", "").startswith("data.customer.email"),
            "missing field: 422 naming data.customer.email", text)
    status, _, text, body = h.post_event(event(7, type="order.unknown"))
    t.check(status == 424 and body and "order.unknown" in body.get("error", ""), "unknown type: 424", text)
    status, _, text, body = h.request("POST", "/events", body="x" * 5000,
                                      headers={"Content-Type": "application/cloudevents+json"})
    t.check(status == 413, "body above broker.max_event_bytes: 413", text)
    # 413 comes from the headers alone: the body is never sent
    s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    s.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
              b"Content-Length: 100000000\r\n\r\n")
    head = s.recv(4096).decode("latin-1")
    s.close()
    t.check(head.startswith("HTTP/1.1 413"), "413 before the body is read (Content-Length alone)", head[:200])
    status, _, text, body = h.request("POST", "/events", body="{}", headers={"Content-Type": "text/plain"})
    t.check(status == 415 and "cloudevents" in text, "other content type: 415 saying what to send", text)
    status, _, text, _ = h.request("GET", "/nowhere")
    t.check(status == 404, "unknown path: 404", text)
    status, hdrs, text, _ = h.request("GET", "/events")
    t.check(status == 405 and hdrs.get("allow") == "POST", "wrong method: 405 with Allow: POST", (status, hdrs))

    # -- metrics move
    m1 = samples(h.metrics())
    refused = 'herald_events_refused_total{code="422",reason="invalid-event"}'
    t.check(m1["herald_events_received_total"] - m0["herald_events_received_total"] == 9,
            "metrics: received counts every publish that reached the broker (9)",
            (m0["herald_events_received_total"], m1["herald_events_received_total"]))
    t.check(m1.get(refused, 0) - m0.get(refused, 0) == 2, "metrics: two 422 refusals counted", m1.get(refused))
    t.check(m1['herald_events_acked_total{status="new"}'] == 4 and m1['herald_events_acked_total{status="duplicate"}'] == 1,
            "metrics: 4 new, 1 duplicate", m1)
    t.check(m1["herald_ack_latency_seconds_count"] - m0["herald_ack_latency_seconds_count"] == 5,
            "metrics: the ACK latency histogram counted 5 ACKs", m1["herald_ack_latency_seconds_count"])
    t.check(m1["herald_journal_sync_seconds_count"] > m0["herald_journal_sync_seconds_count"],
            "metrics: the fdatasync histogram grew")
    t.check(m1['herald_tasks{channel="email",state="pending"}'] == 4, "metrics: 4 email tasks pending", m1)

    h.start_workers()
    h.wait_counts(4)
    status, _, text, _ = h.request("GET", "/readyz")
    t.check(status == 200, "/readyz: 200 once every channel has a worker", text)
    for _ in range(3):
        h.post_event(event(100 + _))
    h.wait_counts(7)
    harness.wait_until(lambda: samples(h.metrics()).get('herald_deliveries_total{channel="courier",outcome="done"}') == 7,
                       10, "7 courier deliveries done in the metrics")
    text = h.metrics()
    m2 = samples(text)
    promtool_check(t, text, "/metrics with traffic")
    t.check(m2["herald_events_received_total"] - m1["herald_events_received_total"] == 3,
            "metrics: 3 more publishes, received +3")
    t.check(all(m2['herald_deliveries_total{channel="%s",outcome="done"}' % ch] == 7 for ch in h.channels),
            "metrics: deliveries done on every channel", m2)
    t.check(m2['herald_workers{channel="email"}'] == 1 and m2["herald_store_bytes"] > 0
            and m2['herald_build_info{version="0.1.0"}'] == 1 and m2["process_resident_memory_bytes"] > 0,
            "metrics: workers, store size, build info, process memory")

    # -- busy: max_pending_events reached
    h.kill(broker, harness.signal.SIGTERM)
    for p in list(h.procs):
        if p.alive():
            h.kill(p, harness.signal.SIGTERM)
    h.write_config(broker={"max_pending_events": "2"})
    h.start_broker()
    statuses = []
    for i in range(3):
        status, hdrs, text, body = h.post_event(event(200 + i))
        statuses.append((status, hdrs.get("retry-after"), text))
    t.check(statuses[2][0] == 503 and statuses[2][1] and "busy" in statuses[2][2],
            "a channel at max_pending_events: 503 busy with Retry-After", statuses)


def with_tokens(t):
    h = httptest.HttpHerald("http-tokens", tokens=True)
    t.deployments.append(h)
    r = h.herald("token", "new", "--role", "producer", "shop")
    token = r.stdout.strip()
    t.check(r.returncode == 0 and re.match(r"^herald_[0-9a-f]{64}$", token) and r.stdout.count("\n") == 1,
            "herald token new prints the token alone on one line", r.stdout + r.stderr)
    dash = h.token("dash", "admin_read")
    with open(h.tokens_path) as f:
        content = f.read()
    mode = stat.S_IMODE(os.stat(h.tokens_path).st_mode)
    t.check(token not in content and token[7:] not in content and "shop producer" in content and mode == 0o600,
            "the token file holds a hash, not the token, mode 0600", (oct(mode), content))
    r = h.herald("token", "list")
    t.check(r.returncode == 0 and "shop" in r.stdout and "dash" in r.stdout and token not in r.stdout,
            "herald token list: names and roles, no secret", r.stdout)
    r = h.herald("token", "new", "--role", "producer", "shop")
    t.check(r.returncode == 65 and "exists" in r.stderr, "a name taken: exit 65", r.stderr)
    r = h.herald("token", "new", "--role", "root", "x")
    t.check(r.returncode == 64, "an unknown role: exit 64", r.stderr)

    h.start_broker()
    status, hdrs, text, _ = h.post_event(event(1))
    t.check(status == 401 and hdrs.get("www-authenticate", "").startswith("Bearer"),
            "no token: 401 with WWW-Authenticate: Bearer", (status, hdrs, text))
    status, hdrs, text, _ = h.post_event(event(1), token="herald_" + "0" * 64)
    t.check(status == 401 and "invalid_token" in hdrs.get("www-authenticate", ""), "a wrong token: 401", text)
    status, _, text, _ = h.post_event(event(1), token=dash)
    t.check(status == 403 and "producer" in text, "an admin_read token on POST /events: 403", text)
    status, _, text, _ = h.request("GET", "/metrics", token=token)
    t.check(status == 403, "a producer token on /metrics: 403", text)
    status, _, text, _ = h.request("GET", "/metrics")
    t.check(status == 401, "/metrics without a token: 401", text)
    status, _, text, _ = h.request("GET", "/metrics", token=dash)
    t.check(status == 200 and "herald_events_received_total" in text, "an admin_read token reads /metrics", text[:200])
    status, _, text, _ = h.request("GET", "/healthz")
    t.check(status == 200, "/healthz needs no token", text)
    status, _, text, body = h.post_event(event(1), token=token)
    t.check(status == 201, "the producer token publishes: 201", text)

    # a token made while the broker runs works at once
    late = h.token("late", "producer")
    status, _, text, _ = h.post_event(event(2), token=late)
    t.check(status == 201, "a token made while the broker runs is accepted at once", text)

    # revoke: refused at once, no restart
    conn = h.conn()
    status, _, text, _ = h.post_event(event(3), token=token, conn=conn)
    r = h.herald("token", "revoke", "shop")
    t.check(r.returncode == 0, "herald token revoke shop: exit 0", r.stderr)
    status, _, text, _ = h.post_event(event(4), token=token, conn=conn)
    t.check(status == 401, "the revoked token is refused on the next request, same connection, no restart",
            (status, text))
    status, _, text, _ = h.post_event(event(5), token=late)
    t.check(status == 201, "the other token still works", text)
    r = h.herald("token", "revoke", "shop")
    t.check(r.returncode == 65, "revoking it again: exit 65 (no such token)", r.stderr)


def with_tls(t):
    h = httptest.HttpHerald("http-tls")
    t.deployments.append(h)
    cert, key = os.path.join(h.tmp, "herald.crt"), os.path.join(h.tmp, "herald.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, text=True, timeout=60)
    t.require(r.returncode == 0, "openssl makes a self-signed certificate", r.stderr)
    with open(h.config, "a") as f:
        f.write("security:\n  tls_cert: %s\n  tls_key: %s\n" % (json.dumps(cert), json.dumps(key)))
    h.start_broker()
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", h.port, context=context, timeout=10)
    status, _, text, body = h.post_event(event(1), conn=conn)
    conn.close()
    t.check(status == 201, "HTTPS (security.tls_cert, tls_key): 201 over TLS", text)
    try:
        plain = h.request("GET", "/healthz", timeout=3)[0]
    except Exception:
        plain = None
    t.check(plain != 200, "the TLS endpoint does not answer plain HTTP", plain)


def with_curve(t):
    """The internal socket is inproc: CURVE and its ZAP handler on the ZeroMQ
    endpoints do not stand between the HTTP thread and the loop."""
    h = httptest.HttpHerald("http-curve", tokens=True)
    t.deployments.append(h)
    for name in ("broker", "shop"):
        r = h.herald("keygen", os.path.join(h.tmp, name), config=False)
        t.require(r.returncode == 0, "herald keygen %s" % name, r.stderr)
    with open(h.config) as f:
        text = f.read()
    with open(h.config, "w") as f:
        f.write(text.replace("security:\n", "security:\n  broker_key: %s\n  producers: [%s]\n"
                             % (json.dumps(os.path.join(h.tmp, "broker.secret")),
                                json.dumps(os.path.join(h.tmp, "shop.public"))), 1))
    token = h.token("shop", "producer")
    broker = h.spawn("broker", [harness.binary("herald-broker"), "-c", h.config])
    harness.wait_until(lambda: _healthz(h) or not broker.alive(), 15, "the CURVE broker to serve HTTP")
    status, _, text, _ = h.post_event(event(1), token=token)
    t.check(status == 201, "with CURVE on the ZeroMQ endpoints, HTTP publishes: 201", text)


def _healthz(h):
    try:
        return h.request("GET", "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def body(t):
    without_tokens(t)
    with_tokens(t)
    with_tls(t)
    with_curve(t)


if __name__ == "__main__":
    harness.Test("http", budget=120).run(body)
