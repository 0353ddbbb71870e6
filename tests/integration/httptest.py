"""httptest: helpers of the HTTP endpoint's tests (test_http*.py), on top of
harness.py: a deployment whose broker serves HTTP on a free 127.0.0.1 port
(optionally with a token file), CloudEvents builders, and small clients on
http.client (keep-alive) and raw sockets (for slow or vanishing clients).
Standard library only (Debian's /usr/bin/python3)."""

import http.client
import json
import os
import uuid

import harness


free_port = harness.free_port


def config_with_http(tmp, port, broker=None, tokens_file=None, **config):
    """harness.config_text with broker.listen.http on 127.0.0.1:port and,
    with tokens_file, a security section holding only it."""
    text = harness.config_text(tmp, broker=broker, **config)
    text = text.replace("  listen:\n", '  listen:\n    http: "127.0.0.1:%d"\n' % port, 1)
    if tokens_file:
        text += "security:\n  tokens_file: %s\n" % json.dumps(tokens_file)
    return text


class HttpHerald(harness.Herald):
    """A deployment with HTTP. tokens: use security.tokens_file."""

    def __init__(self, name, tokens=False, broker=None, **config):
        self.port = free_port()
        self.tokens_path = None
        self.http_broker = dict({"http_timeout": "2s"}, **(broker or {}))
        self.use_tokens = tokens
        harness.Herald.__init__(self, name, **config)

    def write_config(self, **config):
        if self.use_tokens and not self.tokens_path:
            self.tokens_path = os.path.join(self.tmp, "herald.tokens")
        extra = dict(self.http_broker, **config.pop("broker", {}) or {})
        with open(self.config, "w") as f:
            f.write(config_with_http(self.tmp, self.port, broker=extra,
                                     tokens_file=self.tokens_path if self.use_tokens else None, **config))

    def token(self, name, role):
        """`herald token new --role ROLE NAME`: the token it prints."""
        r = self.herald("token", "new", "--role", role, name)
        if r.returncode != 0:
            raise harness.TestFailure("herald token new %s: exit %d %s" % (name, r.returncode, r.stderr))
        return r.stdout.strip()

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, token=None, conn=None, timeout=30):
        """(status, headers dict lower-cased, body text, parsed JSON or None)."""
        c = conn or self.conn(timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read().decode("utf-8", "replace")
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            if conn is None:
                c.close()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return r.status, hdrs, data, parsed

    def post_event(self, event, token=None, conn=None):
        return self.request("POST", "/events", body=event, token=token, conn=conn,
                            headers={"Content-Type": "application/cloudevents+json"})

    def post_batch(self, events, token=None):
        return self.request("POST", "/events", body=events, token=token,
                            headers={"Content-Type": "application/cloudevents-batch+json"})

    def metrics(self, token=None):
        status, _, text, _ = self.request("GET", "/metrics", token=token)
        if status != 200:
            raise harness.TestFailure("GET /metrics: %d %s" % (status, text[:300]))
        return text


def event(order_id, event_id=None, type=harness.EVENT_TYPE, data=None):
    """A CloudEvents envelope of an order."""
    return {"specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": "shop/http-test",
            "type": type, "datacontenttype": "application/json",
            "data": data if data is not None else harness.order(order_id)}


def samples(text):
    """{'name{labels}': value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out
