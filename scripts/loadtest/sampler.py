"""CPU and memory of the server, Postgres and k6, sampled from /proc once a
second while the load runs, since the three share the machine's cores.

CPU is utime + stime. For Postgres it is the postmaster's own time plus the
time of the children it has reaped (cutime + cstime), plus that of its live
children (backends, background workers), so backends that exit during the
run still count. Memory is the resident set (VmRSS) for the server and k6,
and for Postgres the sum of the proportional set sizes (Pss) of all its
processes: summing their RSS would count the shared buffers once per
backend.
"""
import os
import threading
import time
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces and parentheses; the fields after it are fixed.
        return stat.read().rsplit(")", 1)[1].split()


def cpu_ticks(pid, children_reaped=False):
    """utime + stime of `pid` (and cutime + cstime when asked); 0 once it is gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, IndexError):
        return 0
    ticks = int(fields[11]) + int(fields[12])
    if children_reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def machine_busy_seconds():
    """CPU seconds all cores spent busy (not idle or waiting for I/O) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    # guest and guest_nice are already counted in user and nice.
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def _status_kib(pid, key, path="status"):
    try:
        with open(f"/proc/{pid}/{path}") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_bytes(pid):
    return _status_kib(pid, "VmRSS:") * 1024


def pss_bytes(pid):
    return _status_kib(pid, "Pss:", "smaps_rollup") * 1024


def thread_count(pid):
    """Threads of `pid` (tokio's workers and blocking pool, the allocator's heaps follow them)."""
    return _status_kib(pid, "Threads:")


# The server's own gauges of what its bounded caches hold, scraped with the
# samples so that memory growth can be set beside them.
CACHE_GAUGES = ("notegraph_response_cache_bytes", "notegraph_response_cache_entries",
                "notegraph_parsed_documents_bytes", "notegraph_parsed_documents_entries")


# The concurrency limit's series (crates/api/src/pipeline/shedding.rs): the
# limit, what executes, what was shed and how often the limit moved.
CONCURRENCY_SERIES = ("notegraph_concurrency_limit", "notegraph_concurrency_in_flight",
                      "notegraph_concurrency_shed_total", "notegraph_concurrency_limit_changes_total")


def scrape_series(url, names=CACHE_GAUGES + CONCURRENCY_SERIES):
    """Every series whose name is one of `names` from a Prometheus text page,
    keyed as written there (`name` alone, or with its labels:
    `name{direction="up"}`); {} when the page does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{", 1)[0] in names:
            try:
                values[series] = float(value)
            except ValueError:
                continue
    return values


def socket_count(pid):
    """Open sockets of `pid`: the server's connections plus its listener and pool."""
    count = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


class Sampler(threading.Thread):
    """Samples every `interval` seconds until `stop()`.

    `groups` maps a name to a function returning `(pids, reaper)` or
    `(pids, reaper, exited_cpu_seconds)`: the pids to measure, optionally the
    one whose reaped children count too, and the CPU time of the group's
    processes that have exited (a server restarted during the run).
    Each sample is `(t, {name: (cpu_seconds_cumulative, memory_bytes)},
    server_sockets, server_threads, gauges)`; `gauges` holds the server's
    cache gauges and concurrency series ([`scrape_series`]) scraped from `metrics_url` every
    `metrics_every` seconds, and is None in between.
    """

    def __init__(self, groups, memory, server_pid, interval=1.0, metrics_url=None, metrics_every=10.0):
        super().__init__(daemon=True)
        self.groups = groups
        self.memory = memory
        self.server_pid = server_pid
        self.interval = interval
        self.metrics_url = metrics_url
        self.metrics_every = metrics_every
        self._scraped_at = None
        self.samples = []
        self._done = threading.Event()

    def sample(self, final_cpu=None):
        """One sample; `final_cpu` gives the total of groups whose processes have exited."""
        row = {}
        previous = self.samples[-1][1] if self.samples else {}
        for name, pids_of in self.groups.items():
            pids, reaper, *exited = pids_of()
            ticks = sum(cpu_ticks(pid, children_reaped=(pid == reaper)) for pid in pids)
            memory = sum(self.memory[name](pid) for pid in pids)
            # The CPU seconds of the group's processes that exited and were reaped, when it says.
            cpu = ticks / CLOCK_TICKS + sum(exited)
            if final_cpu and name in final_cpu:
                cpu = final_cpu[name]
            # CPU time only grows: a process gone since the last sample keeps its last reading.
            row[name] = (max(cpu, previous.get(name, (0.0, 0))[0]), memory)
        row["machine"] = (machine_busy_seconds(), 0)
        now = time.time()
        gauges = None
        if self.metrics_url and (self._scraped_at is None or now - self._scraped_at >= self.metrics_every):
            self._scraped_at = now
            gauges = scrape_series(self.metrics_url) or None
        self.samples.append((now, row, socket_count(self.server_pid), thread_count(self.server_pid), gauges))

    def run(self):
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self, final_cpu=None):
        """Stops sampling after a last sample (see `sample`)."""
        self._done.set()
        self.join()
        self.sample(final_cpu)

    def summary(self, start=None, end=None):
        """Per group: CPU seconds used, cores (CPU seconds / wall seconds) and
        peak memory, between the samples that bracket `start` and `end` (unix
        times; the whole run by default), so that k6 starting its VUs and
        writing its summary stay out of the load phase's figures."""
        if len(self.samples) < 2:
            return {}, 0.0
        before = [s for s in self.samples if start is None or s[0] <= start]
        after = [s for s in self.samples if end is None or s[0] >= end]
        first_sample = before[-1] if before else self.samples[0]
        last_sample = after[0] if after else self.samples[-1]
        wall = last_sample[0] - first_sample[0]
        chosen = [s for s in self.samples if first_sample[0] <= s[0] <= last_sample[0]]
        out = {}
        for name in self.groups:
            first = first_sample[1][name][0]
            last = last_sample[1][name][0]
            peak = max(s[1][name][1] for s in chosen)
            out[name] = {"cpu_seconds": last - first, "cores": (last - first) / wall if wall else 0.0,
                         "peak_memory": peak}
        # Whatever else ran on the machine meanwhile (other users' work), which
        # competed for the same cores.
        busy = last_sample[1]["machine"][0] - first_sample[1]["machine"][0]
        others = max(0.0, busy - sum(group["cpu_seconds"] for group in out.values()))
        out["other processes"] = {"cpu_seconds": others, "cores": others / wall if wall else 0.0,
                                  "peak_memory": None}
        return out, wall

    def series(self):
        """Per-second series for the chart: t, cores used per group (and by
        other processes) since the last sample, memory, server sockets and
        threads, and the last cache gauges scraped."""
        rows = []
        gauges = {}
        for previous, current in zip(self.samples, self.samples[1:]):
            dt = current[0] - previous[0]
            if dt <= 0:
                continue
            cores = {name: (current[1][name][0] - previous[1][name][0]) / dt for name in self.groups}
            busy = (current[1]["machine"][0] - previous[1]["machine"][0]) / dt
            cores["other processes"] = max(0.0, busy - sum(cores.values()))
            memory = {name: current[1][name][1] for name in self.groups}
            gauges = current[4] or gauges
            rows.append({"t": current[0], "cores": cores, "memory": memory, "sockets": current[2],
                         "threads": current[3], "gauges": gauges})
        return rows
