"""fakeproducer: a producer speaking the wire protocol by hand (python3-zmq),
for tests that time the broker's answer without a CLI's start in the way, or
that must do something else while they wait (keep fake workers beating)."""

import time

import zmq


class RawProducer:
    """One DEALER to the producer endpoint; one PUBLISH at a time, its reply
    matched by corr (a late reply to an earlier request is dropped)."""

    def __init__(self, ctx, endpoint):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def publish(self, corr, event, timeout, idle=None, slice_ms=20):
        """Sends PUBLISH corr event (bytes) and waits up to timeout seconds
        for the reply carrying corr. With idle, polls in slices of slice_ms
        and calls idle() before each. Returns (reply frames or None,
        seconds from the send to the reply or to giving up)."""
        started = time.monotonic()
        self.sock.send_multipart([b"HERALD/1", b"PUBLISH", corr, event])
        while True:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                return None, time.monotonic() - started
            if idle:
                idle()
            wait_ms = min(slice_ms, left * 1000) if idle else left * 1000
            if self.sock.poll(max(1, int(wait_ms))):
                reply = self.sock.recv_multipart()
                if len(reply) > 2 and reply[2] == corr:
                    return reply, time.monotonic() - started

    def close(self):
        self.sock.close()
