"""`just profile`: a CPU flame graph of the server under load, written beside
the run's report as flamegraph.svg.

perf samples the server's threads on CPU (the software clock, which works
in VMs without hardware counters) with DWARF call graphs, since the
production build (like any release build) keeps no frame pointers; inferno (`cargo install inferno`, kept under
`<data dir>/inferno`) folds the stacks and draws the SVG.
"""
import shutil
import signal
import subprocess
from pathlib import Path

from .stack import data_dir, log

#: Samples per second: enough for a readable graph over 30 s, small enough
#: that perf script unwinds them in seconds on 2 cores.
FREQUENCY = 199


def find_perf():
    """The perf binary, or None. Debian's /usr/bin/perf is a wrapper that
    picks perf_<kernel version>; on a kernel without its own it fails, so a
    versioned binary is preferred."""
    candidates = sorted(Path("/usr/bin").glob("perf_*"), reverse=True)
    for candidate in [*candidates, shutil.which("perf")]:
        if candidate and subprocess.run([str(candidate), "--version"], capture_output=True).returncode == 0:
            return str(candidate)
    return None


def ensure_inferno():
    """The inferno binaries' directory, installed with cargo when missing."""
    root = data_dir() / "inferno"
    bin_dir = root / "bin"
    if not (bin_dir / "inferno-flamegraph").exists():
        log(f"installing inferno into {root} (cargo install inferno, about 2 minutes)")
        subprocess.run(["cargo", "install", "--locked", "--quiet", "--root", str(root), "inferno"], check=True)
    return bin_dir


def check():
    """Raises with what to install when profiling cannot work; returns (perf, inferno bin dir)."""
    perf = find_perf()
    if perf is None:
        raise RuntimeError("perf is not installed (Debian: apt-get install linux-perf)")
    return perf, ensure_inferno()


class Recording:
    """perf record on one process until `stop()`."""

    def __init__(self, perf, pid, run_dir):
        self.perf = perf
        self.data = Path(run_dir) / "perf.data"
        self.log = open(Path(run_dir) / "perf.log", "w")
        self.process = subprocess.Popen(
            [perf, "record", "-F", str(FREQUENCY), "-e", "cpu-clock", "--call-graph", "dwarf,16384",
             "-p", str(pid), "-o", str(self.data)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def flamegraph(perf, inferno, recording, title, out_path):
    """Folds the recorded stacks and writes the SVG; returns the CPU seconds
    the graph covers (a cpu-clock sample weighs its period in nanoseconds)."""
    log("unwinding the recorded stacks (perf script) and drawing the flame graph")
    script = subprocess.run([perf, "script", "-i", str(recording.data)], check=True, capture_output=True)
    folded = subprocess.run([str(inferno / "inferno-collapse-perf")], input=script.stdout, check=True,
                            capture_output=True)
    svg = subprocess.run([str(inferno / "inferno-flamegraph"), "--title", title, "--countname", "ns of CPU"],
                         input=folded.stdout, check=True, capture_output=True)
    Path(out_path).write_bytes(svg.stdout)
    return sum(int(line.rsplit(b" ", 1)[1]) for line in folded.stdout.splitlines() if line.strip()) / 1e9
