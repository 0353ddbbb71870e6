#!/usr/bin/python3
"""Publishes one order to Herald over ZeroMQ (python3-zmq), speaking the
HERALD/2 protocol directly (PROTOCOL.md), and waits for the ACK.

    python3 publish_order.py [ENDPOINT]      (default tcp://127.0.0.1:5570)

Exit status: 0 stored (ACK), 65 refused (NACK 4xx), 75 busy or storage
(NACK 5xx: publish again later), 69 no answer, 1 anything else."""

import datetime
import json
import sys
import uuid

import zmq

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5570"
event = {                                   # a CloudEvents 1.0 envelope
    "specversion": "1.0",
    "id": str(uuid.uuid4()),
    "source": "shop/checkout",
    "type": "order.confirmed",
    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "datacontenttype": "application/json",
    "data": {"order_id": 1042, "customer": {"email": "ada@example.com"}, "items": [{"sku": "A-1", "qty": 1}]},
}

socket = zmq.Context.instance().socket(zmq.DEALER)
socket.setsockopt(zmq.LINGER, 0)
socket.connect(endpoint)
corr = b"1"                                 # matches the answer to the request
socket.send_multipart([b"HERALD/2", b"PUBLISH", corr, json.dumps(event).encode()])

if not socket.poll(5000):                   # milliseconds
    print("no answer from %s: publish it again; the same order_id is stored once"
          " (order.confirmed is keyed by data.order_id in etc/herald.yaml)" % endpoint, file=sys.stderr)
    sys.exit(69)
frames = socket.recv_multipart()
if frames[:3] == [b"HERALD/2", b"ACK", corr]:   # ACK corr event-id status durability
    duplicate = frames[4] == b"duplicate"       # the key was stored before: same event id
    print("stored as %s%s" % (frames[3].decode(), " (duplicate)" if duplicate else ""))
    sys.exit(0)
if frames[:3] == [b"HERALD/2", b"NACK", corr]:  # NACK corr code reason
    code = int(frames[3])
    print("refused (%d): %s" % (code, frames[4].decode()), file=sys.stderr)
    sys.exit(75 if code >= 500 else 65)
sys.exit("unexpected answer: %r" % frames)
