#!/usr/bin/env python3
"""Summarises wsbench JSON lines (from compare.sh): the median of each metric per server, and
the ratio of wss to the best peer in each round, against the targets of issue 7.

Usage: report.py RESULTS.jsonl [--markdown]   (Python 3 standard library only)
"""
import json
import statistics
import sys

# scenario, JSON field, higher is better, target (a ratio to the best peer, or ("abs", value) for
# wss's own median), label
METRICS = [
    ("echo16", "server_cpu_ns_per_op", False, 0.7, "echo 100x16 B x1: server CPU ns/msg"),
    ("echo16", "msg_per_s", True, None, "echo 100x16 B x1: msg/s"),
    ("echo1k", "msg_per_s", True, 1.3, "echo 100x1 KiB x8: msg/s"),
    ("echo64k", "msg_per_s", True, 1.2, "echo 10x64 KiB: msg/s"),
    ("connect", "handshakes_per_s", True, 1.3, "handshakes/s, 32 workers"),
    ("idle", "rss_per_conn_kib", False, ("abs", 0.5), "RSS KiB per idle conn (10k)"),
    ("broadcast", "deliveries_per_s", True, 2.0, "broadcast to 100: deliveries/s"),
    # Server CPU per operation in every scenario (the measure issue 24's targets use).
    ("echo1k", "server_cpu_ns_per_op", False, None, "echo 100x1 KiB x8: server CPU ns/msg"),
    ("echo64k", "server_cpu_ns_per_op", False, None, "echo 10x64 KiB: server CPU ns/msg"),
    ("connect", "server_cpu_ns_per_op", False, None, "handshake: server CPU ns"),
    ("broadcast", "server_cpu_ns_per_op", False, None, "broadcast: server CPU ns/delivery"),
    # wss in worker dispatch: the worker thread's share. One WebSocket server's callbacks all run
    # on that thread, so 1e9 / this figure is the most one server carries, whatever the cores.
    ("echo16", "worker_cpu_ns_per_op", False, None, "echo 16 B: worker thread CPU ns/msg"),
    ("echo1k", "worker_cpu_ns_per_op", False, None, "echo 1 KiB x8: worker thread CPU ns/msg"),
    ("echo64k", "worker_cpu_ns_per_op", False, None, "echo 64 KiB: worker thread CPU ns/msg"),
    ("connect", "worker_cpu_ns_per_op", False, None, "handshake: worker thread CPU ns"),
    ("broadcast", "worker_cpu_ns_per_op", False, None, "broadcast: worker thread CPU ns/delivery"),
]
OURS = "wss"
# wss again, serving /metrics (compare.sh's SERVERS="wss wss-metrics"): not a peer, but the
# other half of the cost-of-counting comparison (issue 22: under 3 % on every scenario).
METRICS_ON = "wss-metrics"
# wss from another build (compare.sh's WSS_BASE_BIN): what the always-on counters cost.
BASE = "wss-base"
# wss with --dispatch loop (callbacks on the network thread): issue 24's targets are for it.
LOOP = "wss-loop"
# The base build with --dispatch loop: what a change costs in loop dispatch.
BASE_LOOP = "wss-base-loop"
# Our own builds and modes: never "the best peer".
OURS_ALL = (OURS, METRICS_ON, BASE, LOOP, BASE_LOOP)

# Issue 24's targets: server CPU per operation of wss in loop dispatch against the best peer's
# in the same round (a ratio), or wss's own median (("abs", value)).
LOOP_TARGETS = [
    ("connect", "server_cpu_ns_per_op", 0.85, "handshake: server CPU"),
    ("echo16", "server_cpu_ns_per_op", 0.90, "echo 16 B: server CPU/msg"),
    ("echo64k", "server_cpu_ns_per_op", 0.90, "echo 64 KiB: server CPU/msg"),
    ("echo1k", "server_cpu_ns_per_op", 0.77, "echo 1 KiB x8: server CPU/msg"),
    ("broadcast", "server_cpu_ns_per_op", None, "broadcast: server CPU/delivery"),
    ("idle", "rss_per_conn_kib", ("abs", 0.5), "RSS KiB per idle conn (10k)"),
]


def load(path):
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"skipping a line that is not JSON: {line[:80]}", file=sys.stderr)
    return runs


def values(runs, scenario, field):
    """{server: {round: value}} for successful runs."""
    out = {}
    for r in runs:
        if r.get("scenario") != scenario or not r.get("ok") or field not in r:
            continue
        out.setdefault(r.get("label", "?"), {})[r.get("round", 0)] = float(r[field])
    return out


def summarise(runs):
    servers = sorted({r.get("label", "?") for r in runs}, key=lambda s: (s != OURS, s))
    rows = []
    for scenario, field, higher, target, label in METRICS:
        per = values(runs, scenario, field)
        if not per:
            continue
        medians = {s: statistics.median(v.values()) for s, v in per.items()}
        ratios = []
        for rnd in sorted(per.get(OURS, {})):
            peers = [v[rnd] for s, v in per.items() if s not in OURS_ALL and rnd in v]
            if not peers:
                continue
            best = max(peers) if higher else min(peers)
            if best > 0:
                ratios.append(per[OURS][rnd] / best)
        rows.append(
            {
                "label": label,
                "scenario": scenario,
                "field": field,
                "higher": higher,
                "target": target,
                "medians": medians,
                "ratios": ratios,
            }
        )
    failures = [r for r in runs if not r.get("ok")]
    return servers, rows, failures


def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def verdict(row):
    t, ratios = row["target"], row["ratios"]
    sign = ">=" if row["higher"] else "<="
    if isinstance(t, tuple):
        ours = row["medians"].get(OURS)
        if ours is None:
            return f"{sign} {t[1]}"
        ok = ours >= t[1] if row["higher"] else ours <= t[1]
        return f"{'met' if ok else 'NOT met'} ({sign} {t[1]})"
    if t is None or not ratios:
        return ""
    m = statistics.median(ratios)
    ok = m >= t if row["higher"] else m <= t
    return f"{'met' if ok else 'NOT met'} ({sign} {t}x)"


def print_cost(runs, rows, old, new, title):
    """A table of `new` against `old`, round by round, when both ran."""
    cost_rows = [r for r in rows if old in r["medians"] and new in r["medians"]]
    if not cost_rows:
        return
    print(f"\n{title}:\n")
    print(f"| metric | {old} | {new} | cost per round | median cost |")
    print("|---|---|---|---|---|")
    for row in cost_rows:
        per = values(runs, row["scenario"], row["field"])
        costs = []
        for rnd, base in sorted(per[old].items()):
            on = per[new].get(rnd)
            if on is None or base == 0:
                continue
            costs.append((base - on) / base if row["higher"] else (on - base) / base)
        med = statistics.median(costs) if costs else None
        print(
            f"| {row['label']} | {fmt(row['medians'][old])} | {fmt(row['medians'][new])} | "
            + (" ".join(f"{c * 100:+.1f}%" for c in costs) or "-")
            + f" | {'-' if med is None else f'{med * 100:+.1f}%'} |"
        )


def print_loop_targets(runs):
    """Issue 24's table: wss in each dispatch mode against the best peer, round by round."""
    if not any(r.get("label") == LOOP for r in runs):
        return
    print("\nIssue 24's targets (server CPU per operation; ratio to the best peer in the same round):\n")
    print(f"| metric | {OURS} | {LOOP} | best peer | {OURS} / best | {LOOP} / best | {LOOP} per round | target ({LOOP}) |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario, field, target, label in LOOP_TARGETS:
        per = values(runs, scenario, field)
        if LOOP not in per:
            continue
        best_by_round = {}
        for s, v in per.items():
            if s in OURS_ALL:
                continue
            for rnd, x in v.items():
                best_by_round[rnd] = min(best_by_round.get(rnd, x), x)
        def ratios(name):
            return [per[name][rnd] / b for rnd, b in sorted(best_by_round.items())
                    if name in per and rnd in per[name] and b > 0]
        med = lambda xs: statistics.median(xs) if xs else None
        worker, loop = ratios(OURS), ratios(LOOP)
        loop_median = med(list(per[LOOP].values()))
        if isinstance(target, tuple):
            ok = loop_median is not None and loop_median <= target[1]
            verdict_text = f"{'met' if ok else 'NOT met'} (<= {target[1]})"
        elif target is None or not loop:
            verdict_text = "-"
        else:
            verdict_text = f"{'met' if med(loop) <= target else 'NOT met'} (<= {target}x)"
        best_med = med(list(best_by_round.values()))
        print(
            f"| {label} | {fmt(med(list(per.get(OURS, {}).values())))} | {fmt(loop_median)} | "
            f"{fmt(best_med)} | "
            + (f"{med(worker):.2f}x" if worker else "-") + " | "
            + (f"{med(loop):.2f}x" if loop else "-") + " | "
            + (" ".join(f"{r:.2f}" for r in loop) or "-")
            + f" | {verdict_text} |"
        )


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs = load(argv[1])
    servers, rows, failures = summarise(runs)
    head = ["metric"] + servers + ["wss / best peer (median)", "per round", "target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        med = [fmt(row["medians"].get(s)) for s in servers]
        ratios = row["ratios"]
        ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
        per_round = " ".join(f"{r:.2f}" for r in ratios) or "-"
        print("| " + " | ".join([row["label"]] + med + [ratio, per_round, verdict(row)]) + " |")
    for old, new, title in [
        (OURS, METRICS_ON, "Cost of --metrics (wss-metrics against wss, same rounds; positive = slower)"),
        (BASE, OURS, "Cost of this build against wss-base (WSS_BASE_BIN; positive = slower)"),
        (BASE_LOOP, LOOP, "Cost of this build in loop dispatch (wss-loop against wss-base-loop; positive = slower)"),
    ]:
        print_cost(runs, rows, old, new, title)
    print_loop_targets(runs)
    if failures:
        print(f"\n{len(failures)} failed run(s):")
        for r in failures:
            print(f"- {r.get('scenario')} {r.get('label')} round {r.get('round')}: {r.get('error')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
