"""What the harness measures itself, beside k6, straight against the servers
(not through haproxy), while the load runs:

- `Subscribers`: one SSE subscriber per server (graphql-sse distinct
  connections mode) on `noteEvents(authorId: <probe author>)`; when a stream
  ends (a stopping server completes it) it subscribes again, to its own
  server when that is up, else to the next one that is.
- `EventWriter`: creates a public note as the probe author every
  `interval` seconds, through the servers in turn, recording when each
  request started and ended, for the event accounting (figures.py).
- `InvalidationProbe`: warms a public `note(id:)` on server B until it
  answers `x-cache: hit`, renames the note through server A, then polls B
  until B answers the new title: the lag is from A's answer to B's first
  fresh answer.
- `LagSampler`: the primary's view of the replica every second.
"""
import http.client
import json
import threading
import time

from . import figures


def graphql(server, query, variables=None, token=None, timeout=10):
    """POSTs to `server`'s /graphql; returns (parsed body, x-cache header)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        body = {"query": query, "variables": variables} if variables else {"query": query}
        connection.request("POST", "/graphql", json.dumps(body), headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise OSError(f"HTTP {response.status}: {payload[:200]!r}")
        parsed = json.loads(payload)
        if parsed.get("errors"):
            raise OSError(f"GraphQL errors: {parsed['errors']}")
        return parsed["data"], response.getheader("x-cache")
    finally:
        connection.close()


def next_up(servers, preferred):
    """`preferred` when it is up, else the next server after it that is; None when none is."""
    start = servers.index(preferred)
    for offset in range(len(servers)):
        candidate = servers[(start + offset) % len(servers)]
        if candidate.up:
            return candidate
    return None


class Probe(threading.Thread):
    """A thread that loops until `stop()`; failures are recorded, not raised."""

    def __init__(self):
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.errors = []

    def stop(self):
        self.done.set()


class EventWriter(Probe):
    def __init__(self, servers, token, interval=0.2):
        super().__init__()
        self.servers, self.token, self.interval = servers, token, interval
        self.writes = {}

    def run(self):
        turn = 0
        while not self.done.is_set():
            server = next_up(self.servers, self.servers[turn % len(self.servers)])
            turn += 1
            if server is not None:
                start = time.time()
                try:
                    data, _ = graphql(server, "mutation($input: CreateNoteInput!) { createNote(input: $input) { id } }",
                                      {"input": {"title": f"multinode event {turn}",
                                                 "body": "Written by scripts/multinode."}}, self.token)
                    self.writes[data["createNote"]["id"]] = {"server": server.name, "start": start,
                                                             "end": time.time()}
                except (OSError, ValueError, KeyError) as error:
                    self.errors.append(f"createNote on {server.name}: {error}")
            self.done.wait(self.interval)


class Subscriber(Probe):
    def __init__(self, name, servers, home, author_id):
        super().__init__()
        self.name, self.servers, self.home = name, servers, home
        self.body = json.dumps({"query": f'subscription {{ noteEvents(authorId: "{author_id}") {{ kind noteId at }} }}'})
        self.streams = []
        self.refused = 0
        self.connection = None

    def run(self):
        while not self.done.is_set():
            server = next_up(self.servers, self.home)
            if server is None:
                self.done.wait(0.05)
                continue
            self.stream(server)

    def stream(self, server):
        stream = {"server": server.name, "opened": time.time(), "received": [], "end": None, "error_events": 0}
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            self.connection.request("POST", "/graphql/stream", self.body,
                                    {"content-type": "application/json", "accept": "text/event-stream"})
            response = self.connection.getresponse()
            if response.status != 200:
                stream["end"] = f"HTTP {response.status}"
                return
            self.streams.append(stream)
            event = None
            while True:
                line = response.readline()
                if not line:
                    stream["end"] = "stopped" if self.done.is_set() else "closed without complete"
                    return
                line = line.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "complete":
                    stream["end"] = "complete"
                    return
                elif line.startswith("data: ") and event == "next":
                    message = json.loads(line[6:])
                    if message.get("errors"):
                        stream["error_events"] += 1
                        self.errors.append(f"{server.name}: {message['errors']}")
                        continue
                    note = message["data"]["noteEvents"]
                    stream["received"].append((note["noteId"], time.time(), figures.parse_time(note["at"])))
        except (OSError, ValueError, http.client.HTTPException) as error:
            if self.done.is_set():
                stream["end"] = "stopped"
            elif stream not in self.streams:
                # Not connected (the server went down meanwhile): try again, maybe elsewhere.
                self.refused += 1
                self.done.wait(0.05)
            else:
                stream["end"] = f"error: {error}"
        finally:
            stream["closed"] = time.time()
            self.connection.close()
            if stream["end"] and stream["end"].startswith("HTTP"):
                self.errors.append(f"{server.name}: subscribe answered {stream['end']}")
                self.done.wait(0.2)

    def stop(self):
        super().stop()
        connection = self.connection
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(2)
            except OSError:
                pass


class InvalidationProbe(Probe):
    """One round every `interval` seconds; `bound` is how long B is polled."""

    def __init__(self, servers, token, note_id, interval=0.25, bound=5.0):
        super().__init__()
        self.servers, self.token, self.note_id = servers, token, note_id
        self.interval, self.bound = interval, bound
        self.lags_ms, self.never_seen, self.skipped, self.fresh_cache = [], [], 0, {}
        self.cache_disabled = False

    def run(self):
        turn = 0
        query = f'{{ note(id: "{self.note_id}") {{ id title }} }}'
        while not self.done.is_set():
            turn += 1
            up = [s for s in self.servers if s.up]
            if len(up) < 2:
                self.skipped += 1
                self.done.wait(self.interval)
                continue
            writer, reader = up[turn % len(up)], up[(turn + 1) % len(up)]
            title = f"multinode cache {turn} {time.time():.3f}"
            try:
                self.round(writer, reader, query, title)
            except (OSError, ValueError, KeyError) as error:
                if writer.up and reader.up:
                    self.errors.append(f"{writer.name} -> {reader.name}: {error}")
                else:
                    # A restart took one of the two away mid-round.
                    self.skipped += 1
            self.done.wait(self.interval)

    def round(self, writer, reader, query, title):
        for _ in range(50):
            _, cache = graphql(reader, query)
            if cache == "hit":
                break
            if cache == "bypass":
                # NOTEGRAPH_CACHE_ENABLED=false: there is nothing to invalidate.
                self.cache_disabled = True
                self.done.set()
                return
        else:
            raise OSError(f"{reader.name} never answered x-cache: hit")
        graphql(writer, "mutation($id: ID!, $title: String) { updateNote(id: $id, input: { title: $title }) { id } }",
                {"id": self.note_id, "title": title}, self.token)
        written = time.time()
        while time.time() - written < self.bound:
            data, cache = graphql(reader, query)
            if data["note"]["title"] == title:
                self.lags_ms.append((time.time() - written) * 1000)
                self.fresh_cache[cache] = self.fresh_cache.get(cache, 0) + 1
                return
        self.never_seen.append({"writer": writer.name, "reader": reader.name, "title": title})


class LagSampler(Probe):
    """`pg_stat_replication` on the primary once a second."""

    def __init__(self, primary):
        super().__init__()
        self.primary = primary
        self.samples = []

    def run(self):
        while not self.done.is_set():
            try:
                self.samples.append(self.primary.replication())
            except Exception as error:  # psql failing must not end the run; it is reported.
                self.errors.append(str(error))
            self.done.wait(1.0)
