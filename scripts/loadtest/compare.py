"""`--compare BASELINE`: a run against a committed baseline (a report.json
of an earlier run). A regression is p99 latency more than 10% above the
baseline's, or an achieved rate more than 10% below it.
"""
import json
from pathlib import Path

TOLERANCE = 0.10


def compare(fig, baseline_path):
    """Markdown lines and whether a regression was found."""
    base = json.loads(Path(baseline_path).read_text())
    rows, regressed = [], False
    checks = [
        ("p99 latency (ms)", base["latency_ms"]["p(99)"], fig["latency_ms"]["p(99)"], "higher"),
        ("achieved rate (requests/s)", base["achieved_rate"], fig["achieved_rate"], "lower"),
    ]
    for label, before, now, worse in checks:
        if before is None or now is None:
            rows.append(f"| {label} | {before} | {now} | n/a | not compared |")
            continue
        change = (now - before) / before if before else 0.0
        bad = change > TOLERANCE if worse == "higher" else change < -TOLERANCE
        regressed |= bad
        rows.append(f"| {label} | {before:.2f} | {now:.2f} | {100 * change:+.1f}% | "
                    f"{'**REGRESSION**' if bad else 'ok'} |")
    same = base.get("scenario") == fig["scenario"] and base.get("rate_asked") == fig["rate_asked"]
    lines = [
        "## Compared with the baseline",
        "",
        f"Baseline `{baseline_path}`: {base.get('scenario')} at {base.get('rate_asked')}/s for "
        f"{base.get('duration_asked')}, commit {base.get('commit')}, measured {base.get('started_at')}.",
        "",
    ]
    if not same:
        lines += ["The baseline is of another scenario or rate: the comparison says little.", ""]
    lines += ["| figure | baseline | this run | change | verdict |", "|---|---|---|---|---|"] + rows
    others = [run.get("resources", {}).get("other processes", {}).get("cores") for run in (base, fig)]
    if None not in others:
        lines += ["", f"Other processes on the machine used {others[1]:.2f} cores during this run and "
                      f"{others[0]:.2f} during the baseline's: a busier machine alone can make a run look worse."]
    lines += ["", f"Regression: more than {100 * TOLERANCE:.0f}% worse in p99 or achieved rate: "
                  f"{'**yes**' if regressed else 'no'}."]
    return lines, regressed
