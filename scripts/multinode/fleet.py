"""Three `notegraph serve` replicas behind haproxy, and the rolling restart.

Each server listens on its own loopback port with DATABASE_URL on the
primary, DATABASE_READ_URL on the replica and JSON logs appended to
`server-N.log` (across its restarts). haproxy balances round robin over
them (or, with `--sticky`, by a hash of the Authorization header, so that
each viewer stays on one server), checks `GET /readyz` every 500 ms (down
after 2 failures, up after 2 successes), retries a request whose connection failed or got an empty
response on another server (`retry-on`, `option redispatch 1`), and
stamps every response with `x-served-by: <server>` so that a client can
tell which replica answered.
"""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from loadtest import stack

from . import figures
from .cluster import free_port

#: How long a stopping server keeps answering (with /readyz 503) before it drains.
SHUTDOWN_DELAY_MS = 2000
#: The server's read-routing counters (docs/OBSERVABILITY.md), summed over a server's restarts.
ROUTING_COUNTERS = ("notegraph_read_replica_queries_total", "notegraph_read_replica_primary_queries_total")
#: haproxy's health-check interval; with `fall 2` a stopping server is out within ~1 s.
CHECK_INTERVAL_MS = 500


def ready(base_url, timeout=2):
    """Whether `GET /readyz` answers 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Server:
    """One replica; `start` may be called again after it stopped."""

    def __init__(self, name, binary, env, log_path):
        self.name = name
        self.binary = binary
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, NOTEGRAPH_LISTEN=f"127.0.0.1:{self.port}")
        self.log_path = log_path
        self.process = None
        #: CPU seconds of this server's processes that have exited (from wait4).
        self.exited_cpu = 0.0
        #: Whether probes may use it: false from just before SIGTERM until /readyz answers again.
        self.up = False
        #: ROUTING_COUNTERS of this server's processes that have stopped (see `tally`).
        self.routing = dict.fromkeys(ROUTING_COUNTERS, 0.0)

    def routing_now(self):
        """ROUTING_COUNTERS of the running process (from /metrics), plus those of earlier ones."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=5) as response:
                now = figures.prometheus_values(response.read().decode(), ROUTING_COUNTERS)
        except (urllib.error.URLError, OSError):
            now = dict.fromkeys(ROUTING_COUNTERS, 0.0)
        return {name: self.routing[name] + now[name] for name in ROUTING_COUNTERS}

    def start(self, timeout=60):
        with open(self.log_path, "a") as log_file:
            self.process = subprocess.Popen([str(self.binary), "serve"], env=self.env, stdout=log_file,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready(self.base_url):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready within {timeout} s; see {self.log_path}")
            time.sleep(0.1)
        self.up = True
        return self

    def terminate(self, timeout=60):
        """SIGTERM and wait; returns the exit code (after SIGKILL past `timeout`)."""
        self.up = False
        process = self.process
        if process is None or process.returncode is not None:
            return None
        # Its counters die with it: keep them (queries answered after this are not counted).
        self.routing = self.routing_now()
        # Not Popen.send_signal: it polls first, which would reap a process that
        # already died (Ctrl-C reaches the servers too) before wait4 could.
        os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                stack.log(f"{self.name} did not exit within {timeout} s; killing it")
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        self.exited_cpu += usage.ru_utime + usage.ru_stime
        return process.returncode

    def pids(self):
        return [self.process.pid] if self.process and self.process.returncode is None else []


#: The haproxy configuration users deploy, run unchanged: it reads the
#: servers, the address and the balance algorithm from the environment.
HAPROXY_CONFIG = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"


class Haproxy:
    """haproxy in the foreground with a generated configuration."""

    def __init__(self, servers, run_dir, balance="roundrobin"):
        if len(servers) != 3:
            raise ValueError("deploy/haproxy/haproxy.cfg names three servers")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stats = run_dir / "haproxy.sock"
        self.config = HAPROXY_CONFIG
        self.log_path = run_dir / "haproxy.log"
        self.env = stack.child_env(HAPROXY_BIND=f"127.0.0.1:{self.port}", HAPROXY_STATS_SOCKET=str(self.stats),
                                   HAPROXY_BALANCE=balance, HAPROXY_CHECK_INTERVAL=f"{CHECK_INTERVAL_MS}ms",
                                   **{f"NOTEGRAPH_{n}": f"127.0.0.1:{s.port}" for n, s in enumerate(servers, 1)})
        self.process = None

    def start(self):
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.access(binary, os.X_OK):
            raise RuntimeError("haproxy is not installed: apt-get install haproxy")
        subprocess.run([binary, "-c", "-q", "-f", str(self.config)], env=self.env, check=True)
        with open(self.log_path, "w") as log_file:
            self.process = subprocess.Popen([binary, "-db", "-f", str(self.config)], env=self.env, stdout=log_file,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not ready(self.base_url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start; see {self.log_path}")
            time.sleep(0.2)
        return self

    def server_stats(self):
        """Per-server counters from the stats socket (`show stat`)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.stats))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().strip().splitlines()
        header = lines[0].lstrip("# ").split(",")
        keep = ("stot", "hrsp_2xx", "hrsp_4xx", "hrsp_5xx", "econ", "eresp", "wretr", "wredis", "chkdown")
        out = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "notegraph":
                out[row["svname"]] = {key: int(row[key] or 0) for key in keep}
        return out

    def stop(self):
        if self.process is not None:
            stack.stop(self.process, "haproxy")


class RollingRestart(threading.Thread):
    """After `start_after` seconds, each server in turn: SIGTERM, wait for it
    to exit, start it again, wait for /readyz 200, then `pause` seconds."""

    def __init__(self, servers, start_after, pause):
        super().__init__(daemon=True)
        self.servers = servers
        self.start_after = start_after
        self.pause = pause
        self.results = []
        self.error = None

    def run(self):
        time.sleep(self.start_after)
        for server in self.servers:
            result = {"server": server.name, "sigterm_at": time.time()}
            self.results.append(result)
            try:
                result["exit_code"] = server.terminate()
                result["exited_after_s"] = round(time.time() - result["sigterm_at"], 2)
                stack.log(f"rolling restart: {server.name} exited with {result['exit_code']} after "
                          f"{result['exited_after_s']} s; starting it again")
                server.start()
                result["ready_after_s"] = round(time.time() - result["sigterm_at"], 2)
                stack.log(f"rolling restart: {server.name} ready again {result['ready_after_s']} s after SIGTERM")
            except (RuntimeError, OSError) as error:
                result["error"] = str(error)
                self.error = error
                return
            time.sleep(self.pause)
