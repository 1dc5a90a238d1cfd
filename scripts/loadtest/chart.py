"""The run's chart as a standalone SVG, written with the standard library:
throughput, latency percentiles, CPU per process and memory per process,
one panel each, over the same time axis.
"""
import math
from xml.sax.saxutils import escape

WIDTH = 960
PANEL_HEIGHT = 190
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, GAP = 70, 150, 40, 50
COLOURS = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b"]


def nice_max(value):
    """The smallest 1, 2 or 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _panel(out, top, title, unit, series, x_max):
    """Draws one panel: `series` is [(label, [(x, y), ...])]; y None leaves a gap."""
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    ys = [y for _, points in series for _, y in points if y is not None]
    y_max = nice_max(max(ys) if ys else 1.0)
    left, bottom = MARGIN_LEFT, top + PANEL_HEIGHT

    def px(x):
        return left + (x / x_max if x_max else 0) * plot_width

    def py(y):
        return bottom - (y / y_max) * PANEL_HEIGHT

    out.append(f'<text x="{left}" y="{top - 10}" class="title">{escape(title)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_width}" height="{PANEL_HEIGHT}" class="frame"/>')
    for i in range(5):
        value = y_max * i / 4
        y = py(value)
        out.append(f'<line x1="{left}" x2="{left + plot_width}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{value:g}</text>')
    out.append(f'<text x="14" y="{top + PANEL_HEIGHT / 2:.0f}" class="unit" '
               f'transform="rotate(-90 14 {top + PANEL_HEIGHT / 2:.0f})" text-anchor="middle">{escape(unit)}</text>')
    step = nice_max(x_max / 8) if x_max else 1
    x = 0.0
    while x <= x_max + 1e-9:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{bottom}" class="grid"/>')
        out.append(f'<text x="{px(x):.1f}" y="{bottom + 14}" class="tick" text-anchor="middle">{x:g}</text>')
        x += step
    for index, (label, points) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        path, pen_down = [], False
        for x, y in points:
            if y is None:
                pen_down = False
                continue
            path.append(f'{"L" if pen_down else "M"}{px(x):.1f},{py(min(y, y_max)):.1f}')
            pen_down = True
        if path:
            out.append(f'<path d="{" ".join(path)}" stroke="{colour}" class="line"/>')
        legend_y = top + 14 + index * 16
        out.append(f'<line x1="{left + plot_width + 12}" x2="{left + plot_width + 30}" y1="{legend_y - 4}" '
                   f'y2="{legend_y - 4}" stroke="{colour}" class="line"/>')
        out.append(f'<text x="{left + plot_width + 36}" y="{legend_y}" class="legend">{escape(label)}</text>')


def render(title, seconds, resources):
    """SVG text for the run: `seconds` from timeline.read, `resources` from Sampler.series."""
    starts = [s["t"] for s in seconds] + [r["t"] for r in resources]
    t0 = min(starts) if starts else 0
    ends = [s["t"] + 1 for s in seconds] + [r["t"] for r in resources]
    x_max = max(ends) - t0 if ends else 1

    def xy(rows, value):
        return [(row["t"] - t0, value(row)) for row in rows]

    panels = [
        ("Throughput (completed requests per second)", "requests/s", [
            ("achieved", xy(seconds, lambda s: s["requests"])),
            ("failed", xy(seconds, lambda s: s["failures"])),
            ("dropped iterations", xy(seconds, lambda s: s["dropped"])),
        ]),
        ("Latency per second (http_req_duration)", "ms", [
            ("p50", xy(seconds, lambda s: s["p50"])),
            ("p95", xy(seconds, lambda s: s["p95"])),
            ("p99", xy(seconds, lambda s: s["p99"])),
        ]),
    ]
    if resources:
        panels.append(("CPU (cores used, from /proc)", "cores",
                       [(name, xy(resources, lambda r, n=name: r["cores"].get(n)))
                        for name in resources[0]["cores"]]))
        panels.append(("Memory (RSS; Postgres: sum of PSS)", "MiB",
                       [(name, xy(resources, lambda r, n=name: r["memory"][n] / 2**20))
                        for name in resources[0]["memory"]]))
    height = MARGIN_TOP + len(panels) * (PANEL_HEIGHT + GAP) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        "<style>.title{font-size:13px;font-weight:bold}.tick{font-size:10px;fill:#555}"
        ".unit{font-size:11px;fill:#333}.legend{font-size:11px}.frame{fill:none;stroke:#999}"
        ".grid{stroke:#e5e5e5}.line{fill:none;stroke-width:1.5}</style>",
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{MARGIN_LEFT}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (panel_title, unit, series) in enumerate(panels):
        top = MARGIN_TOP + 20 + index * (PANEL_HEIGHT + GAP)
        _panel(out, top, panel_title, unit, series, x_max)
    last_top = MARGIN_TOP + 20 + (len(panels) - 1) * (PANEL_HEIGHT + GAP)
    out.append(f'<text x="{MARGIN_LEFT + (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / 2:.0f}" '
               f'y="{last_top + PANEL_HEIGHT + 32}" class="unit" text-anchor="middle">seconds since start</text>')
    out.append("</svg>")
    return "\n".join(out)
