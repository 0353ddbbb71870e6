"""fakeworker: a worker speaking HERALD/2 by hand (python3-zmq), for tests that
need to decide each task's outcome themselves, or to misbehave."""

import threading
import time

import zmq


class Task:
    def __init__(self, task_id, attempt, lease, body):
        self.id, self.attempt, self.lease, self.body = task_id, attempt, lease, body


def parse_tasks(frame):
    """Entries of a TASKS frame: task-id SP attempt SP lease SP length LF bytes LF."""
    out, pos = [], 0
    while pos < len(frame):
        nl = frame.index(b"\n", pos)
        task_id, attempt, lease, length = frame[pos:nl].split(b" ")
        start = nl + 1
        end = start + int(length)
        assert frame[end:end + 1] == b"\n", "entry ends with LF"
        out.append(Task(task_id, int(attempt), int(lease), frame[start:end]))
        pos = end + 1
    return out


class FakeWorker:
    def __init__(self, ctx, endpoint, channel, capacity, name="fake", max_batch=None):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.channel = channel.encode()
        if max_batch == 0:          # a HERALD/1 worker: READY without max-batch
            frames = [b"HERALD/1", b"READY", self.channel, str(capacity).encode(), name.encode()]
        else:
            frames = [b"HERALD/2", b"READY", self.channel, str(capacity).encode(), name.encode(),
                      str(max_batch or min(capacity, 1024)).encode()]
        self.ready = frames
        self.sock.send_multipart(frames)
        self.last_beat = time.monotonic()
        self.disconnects = 0

    def beat(self):
        if time.monotonic() - self.last_beat > 0.1:
            self.sock.send_multipart([b"HERALD/2", b"HEARTBEAT"])
            self.last_beat = time.monotonic()

    def tasks(self, seconds):
        """Tasks received within seconds (heartbeating meanwhile)."""
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.beat()
            if self.sock.poll(50):
                msg = self.sock.recv_multipart()
                if msg[1] == b"TASKS":
                    out.extend(parse_tasks(msg[3]))
                elif msg[1] == b"DISCONNECT":
                    # the broker lost us (or restarted): a new session, as herald-worker does
                    self.disconnects += 1
                    self.sock.send_multipart(self.ready)
        return out

    def answer(self, task, outcome, delay=b"0", text=b"", lease=None):
        lease = task.lease if lease is None else lease
        entry = b"%s %d %s %s %d\n%s\n" % (task.id, lease, outcome, delay, len(text), text)
        self.sock.send_multipart([b"HERALD/2", b"RESULTS", entry])

    def close(self):
        self.sock.close()

    def serve(self, decide, seconds, until=None):
        """Answers every task received within seconds with decide(task) ->
        (outcome, delay, text), all results of a poll round in one RESULTS
        message; stops early once until() is true. Returns the tasks."""
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until()):
            batch = self.tasks(0.05)
            got.extend(batch)
            if batch:
                entries = []
                for task in batch:
                    outcome, delay, text = decide(task)
                    entries.append(b"%s %d %s %s %d\n%s\n" % (task.id, task.lease, outcome, delay,
                                                               len(text), text))
                for i in range(0, len(entries), 1024):
                    self.sock.send_multipart([b"HERALD/2", b"RESULTS", b"".join(entries[i:i + 1024])])
        return got


def beating(workers, call):
    """call() (a CLI run, an SQL query) on a thread of its own while this
    thread keeps the fake workers (any collection of them) beating. A fake worker
    beats only while it is served, so a call on the serving thread longer
    than the broker's liveness (600 ms in the tests' config; `herald dead
    retry` of 2,500 tasks under the sanitizers in a slow hour) gets it
    dropped, and the tasks it held are sent again. Tasks that arrive
    meanwhile wait in the socket for the next serve. Returns call()'s
    result, or raises what it raised."""
    workers = list(workers)
    box = {}

    def run():
        try:
            box["result"] = call()
        except BaseException as e:     # noqa: BLE001 (raised again on the caller's thread)
            box["error"] = e
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while thread.is_alive():
        for w in workers:
            w.beat()
        thread.join(0.05)
    if "error" in box:
        raise box["error"]
    return box["result"]
