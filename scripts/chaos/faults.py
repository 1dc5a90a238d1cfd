"""The faults, and what watches the server while they last.

- `freeze` / `thaw`: SIGSTOP the postmaster first (so that it forks no new
  backend), then every child of it, listed again until the list is stable;
  SIGCONT the children, then the postmaster.
- `kill_postmaster` / `restart`: SIGKILL the postmaster alone, as a crash
  or the OOM killer would; its backends notice its death and exit. The
  restart is `pg_ctl start` on the same data directory, as the user the
  embedded launcher runs Postgres as, after clearing the lock files of the
  dead postmaster the way the launcher does (a zombie nobody reaped keeps
  its pid, and postgres would take it for a live server).
- `ResourceSampler`: the server's pool connections (`/metrics`), open
  sockets (/proc/<pid>/fd) and RSS every `interval` seconds.
- `Writer`: threads creating notes as fast as they can, recording every
  answer.
"""
import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request

from loadtest import stack
from loadtest.sampler import rss_bytes, socket_count
from multinode import cluster


def _alive(pid):
    """Whether `pid` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def freeze(postgres):
    """Stops the postmaster and its children; returns the pids stopped, in the order stopped."""
    postmaster, _ = postgres.pids()
    if postmaster is None:
        raise RuntimeError("no postmaster to freeze")
    os.kill(postmaster, signal.SIGSTOP)
    stopped = [postmaster]
    while True:
        _, children = postgres.pids()
        new = [pid for pid in children if pid not in stopped]
        if not new:
            return stopped
        for pid in new:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            stopped.append(pid)


def thaw(pids):
    """SIGCONT in the reverse order of `freeze`: the children, then the postmaster."""
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def kill_postmaster(postgres, timeout=30):
    """SIGKILL the postmaster; waits until it and every child has exited.
    Returns (pid, seconds until the last backend was gone)."""
    postmaster, children = postgres.pids()
    if postmaster is None:
        raise RuntimeError("no postmaster to kill")
    killed = time.time()
    os.kill(postmaster, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in [postmaster, *children]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Postgres processes outlived their postmaster by {timeout} s")
        time.sleep(0.02)
    return postmaster, time.time() - killed


def restart(postgres):
    """`pg_ctl start -w` on the killed cluster's data directory; returns when it accepts connections."""
    pg = postgres.dir / "postgres"
    pid_file = pg / "data" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, IndexError, ValueError):
        pid = None
    if pid is not None and not _alive(pid):
        # What the embedded launcher does for a dead server (pgembed, `running_server`).
        pid_file.unlink()
        for lock in (pg / "socket").glob(".s.PGSQL.*.lock"):
            lock.unlink()
    cluster.pg_ctl(postgres.dir / cluster.BIN, pg, "data", "start", cluster.server_user())


def prometheus_labelled(text, name, labels):
    """The value of sample `name{labels}` in Prometheus text (labels as written, e.g. `pool="primary"`); None when absent."""
    prefix = f"{name}{{{labels}}}"
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[1])
    return None


class ResourceSampler(threading.Thread):
    """Samples the server every `interval` seconds until `stop()`: dicts with
    t, pool (connections open), idle (of them idle), sockets, rss (bytes)."""

    def __init__(self, server, interval=0.5):
        super().__init__(daemon=True)
        self.server, self.interval = server, interval
        self.samples = []
        self.done = threading.Event()

    def sample(self):
        pid = self.server.process.pid
        pool = idle = None
        try:
            with urllib.request.urlopen(f"{self.server.base_url}/metrics", timeout=2) as response:
                text = response.read().decode()
            pool = prometheus_labelled(text, "notegraph_db_pool_connections", 'pool="primary"')
            idle = prometheus_labelled(text, "notegraph_db_pool_idle_connections", 'pool="primary"')
        except OSError:
            pass
        row = {"t": time.time(), "pool": None if pool is None else int(pool), "idle": None if idle is None else int(idle),
               "sockets": socket_count(pid), "rss": rss_bytes(pid)}
        self.samples.append(row)
        return row

    def run(self):
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.join()


CREATE = "mutation($input: CreateNoteInput!) { createNote(input: $input) { id } }"


class Writer:
    """`threads` threads, each creating notes back to back through its own
    keep-alive connection (a new one after an error), until `stop()`.
    Every attempt is recorded: title, start, end, http, code, id (only
    when acknowledged: HTTP 200, no errors, an id), served_by (haproxy's
    `x-served-by`, None without one)."""

    def __init__(self, server, token, threads=4, timeout=60):
        self.server, self.token, self.timeout = server, token, timeout
        self.writes = []
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(threads)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.done.set()
        for thread in self.threads:
            thread.join()

    def run(self, n):
        host, port = self.server.base_url.removeprefix("http://").split(":")
        connection = None
        count = 0
        headers = {"content-type": "application/json", "accept": "application/json",
                   "authorization": f"Bearer {self.token}"}
        while not self.done.is_set():
            count += 1
            title = f"chaos write {os.getpid()}-{n}-{count}"
            body = json.dumps({"query": CREATE, "variables": {"input": {"title": title,
                                                                         "body": "Written by scripts/chaos."}}})
            record = {"title": title, "start": time.time(), "http": "0", "code": "none", "id": None, "served_by": None}
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
                connection.request("POST", "/graphql", body, headers)
                response = connection.getresponse()
                payload = response.read()
                record["http"] = str(response.status)
                # Behind haproxy (deploy/haproxy/haproxy.cfg): which replica answered.
                record["served_by"] = response.getheader("x-served-by")
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = None
                    record["code"] = "unreadable"
                if parsed is not None:
                    errors = parsed.get("errors") or []
                    if errors:
                        record["code"] = (errors[0].get("extensions") or {}).get("code") or "no code"
                    elif response.status == 200 and (parsed.get("data") or {}).get("createNote"):
                        record["id"] = parsed["data"]["createNote"]["id"]
                    else:
                        record["code"] = "no data"
            except (OSError, http.client.HTTPException) as error:
                record["code"] = f"client: {type(error).__name__}"
                if connection is not None:
                    connection.close()
                connection = None
            record["end"] = time.time()
            with self.lock:
                self.writes.append(record)
        if connection is not None:
            connection.close()


def token(binary, user_id):
    """A JWT for `user_id`, good for two hours."""
    out = subprocess.run([str(binary), "token", str(user_id), "--ttl", "7200"], env=stack.child_env(),
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Proxy(threading.Thread):
    """A TCP proxy from a free loopback port to `target_port`, one pair of
    pump threads per connection. `blackhole()` makes every connection open
    at that moment stop forwarding, in both directions, without closing:
    what a dropped NAT or firewall entry does. Connections opened later are
    forwarded as before. `close()` closes everything."""

    def __init__(self, target_port):
        super().__init__(daemon=True)
        import socket
        self.socket = socket
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []  # [client, upstream, holed (Event)]
        self.closed = threading.Event()

    def run(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = self.socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            pair = [client, upstream, threading.Event()]
            with self.lock:
                self.pairs.append(pair)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pump, args=(source, sink, pair[2]), daemon=True).start()

    def pump(self, source, sink, holed):
        import select
        while not self.closed.is_set():
            if holed.is_set():
                # Nothing more passes; the sockets stay open until close().
                self.closed.wait()
                return
            ready, _, _ = select.select([source], [], [], 0.05)
            if not ready or holed.is_set():
                continue
            try:
                data = source.recv(65536)
                if not data:
                    sink.shutdown(self.socket.SHUT_WR)
                    return
                sink.sendall(data)
            except OSError:
                return

    def blackhole(self):
        """Stops forwarding on every connection open now; returns how many."""
        with self.lock:
            for pair in self.pairs:
                pair[2].set()
            return len(self.pairs)

    def close(self):
        self.closed.set()
        self.listener.close()
        with self.lock:
            for client, upstream, _ in self.pairs:
                for sock in (client, upstream):
                    try:
                        sock.close()
                    except OSError:
                        pass
