#!/usr/bin/env python3
"""Draws an SVG bar chart from wsbench JSON lines: for each metric, every server's median
relative to the best peer (1.0 = best peer; above 1 is better, whichever way the metric goes).

Usage: plot.py RESULTS.jsonl [-o chart.svg] [--title TEXT]   (Python 3 standard library only)
"""
import argparse
import datetime
import os
import sys
from html import escape

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

COLORS = {"wss": "#d62728", "tt": "#1f77b4", "fws": "#2ca02c"}
EXTRA = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def color(server, i):
    return COLORS.get(server, EXTRA[i % len(EXTRA)])


def machine():
    """CPU model and core count of this machine, for the chart's caption."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def run_date(runs):
    times = [r["unix_time"] for r in runs if isinstance(r.get("unix_time"), int)]
    if not times:
        return "undated"
    return datetime.datetime.fromtimestamp(min(times), datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def chart(rows, servers, title, caption):
    bar_h, gap, left, width = 16, 14, 250, 420
    top = 60
    group_h = len(servers) * bar_h + gap
    height = top + len(rows) * group_h + 50
    scale_max = 1.0
    rel_rows = []
    for row in rows:
        peers = [v for s, v in row["medians"].items() if s != report.OURS]
        if not peers:
            continue
        best = max(peers) if row["higher"] else min(peers)
        rel = {}
        for s, v in row["medians"].items():
            if best > 0 and v > 0:
                rel[s] = v / best if row["higher"] else best / v
        scale_max = max([scale_max] + list(rel.values()))
        rel_rows.append((row, rel))
    scale_max *= 1.15
    x = lambda r: left + width * r / scale_max  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 260}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        '<text x="10" y="42" fill="#555">median of the rounds, relative to the best peer '
        f"(1.0); longer is better. {escape(caption)}</text>",
    ]
    y = top
    for row, rel in rel_rows:
        out.append(
            f'<text x="{left - 8}" y="{y + len(servers) * bar_h / 2 + 4}" text-anchor="end">'
            f"{escape(row['label'])}</text>"
        )
        for i, s in enumerate(servers):
            if s in rel:
                r = rel[s]
                out.append(
                    f'<rect x="{left}" y="{y}" width="{x(r) - left:.1f}" height="{bar_h - 3}" '
                    f'fill="{color(s, i)}"/>'
                )
                out.append(
                    f'<text x="{x(r) + 4:.1f}" y="{y + bar_h - 5}">{escape(s)} {r:.2f}x '
                    f"({report.fmt(row['medians'][s])})</text>"
                )
            y += bar_h
        y += gap
    one = x(1.0)
    out.append(
        f'<line x1="{one:.1f}" y1="{top - 6}" x2="{one:.1f}" y2="{y}" stroke="#333" '
        'stroke-dasharray="4 3"/>'
    )
    out.append(f'<text x="{one:.1f}" y="{y + 14}" text-anchor="middle">1.0 = best peer</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    p.add_argument("-o", "--output", default="chart.svg")
    p.add_argument("--title", default="wss against its peers (wsbench, loopback)")
    a = p.parse_args()
    runs = report.load(a.results)
    servers, rows, _ = report.summarise(runs)
    if not rows:
        print("no successful runs to draw", file=sys.stderr)
        return 1
    with open(a.output, "w", encoding="utf-8") as f:
        f.write(chart(rows, servers, a.title, f"{run_date(runs)}, {machine()}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
