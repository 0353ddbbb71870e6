#!/usr/bin/python3
"""Publishes one order to Herald's HTTP endpoint with the standard library
(urllib) and reads the answer, which comes after the event is stored.

    python3 publish_order_http.py [URL]     (default http://127.0.0.1:8470)
    HERALD_TOKEN=herald_... python3 publish_order_http.py   (a producer token)

Exit status: 0 stored (201 new, 200 duplicate), 65 refused (4xx), 75 busy or
storage full (503, 507: publish again later), 69 no answer, 1 anything else."""

import datetime
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

url = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8470") + "/events"
event = {                                   # a CloudEvents 1.0 envelope
    "specversion": "1.0",
    "id": str(uuid.uuid4()),
    "source": "shop/checkout",
    "type": "order.confirmed",
    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "datacontenttype": "application/json",
    "data": {"order_id": 1042, "customer": {"email": "ada@example.com"}, "items": [{"sku": "A-1", "qty": 1}]},
}
headers = {"Content-Type": "application/cloudevents+json"}
if os.environ.get("HERALD_TOKEN"):
    headers["Authorization"] = "Bearer " + os.environ["HERALD_TOKEN"]

request = urllib.request.Request(url, data=json.dumps(event).encode(), headers=headers, method="POST")
try:
    with urllib.request.urlopen(request, timeout=5) as response:    # 201 new, 200 duplicate
        answer = json.load(response)
        print("stored as %s%s" % (answer["id"], " (duplicate)" if answer["status"] == "duplicate" else ""))
        sys.exit(0)
except urllib.error.HTTPError as e:                                 # refused: {"error", "code"}
    answer = json.load(e)
    print("refused (%d): %s" % (e.code, answer.get("error")), file=sys.stderr)
    sys.exit(75 if e.code in (503, 507) else 65)
except (urllib.error.URLError, OSError) as e:
    print("no answer from %s: %s; publish it again: the same order_id is stored once (order.confirmed is keyed by data.order_id)" % (url, e), file=sys.stderr)
    sys.exit(69)
