#!/usr/bin/env bash
# Two wss binaries under the same echo load, interleaved round by round (A B, B A, ...), with
# the server's user and system CPU per message counted apart from /proc/PID/stat.
#
# Why apart: under a 64 KiB echo the kernel's share (two copies, TCP) is five times the
# server's own and swings by ±20 % from run to run on a shared VM, which hides a change of a
# microsecond in user space in compare.sh's total. Counting the two halves separately shows
# where a change moved the cost.
#
# Usage: benches/cpu-split.sh BIN_A BIN_B
# Environment (defaults in brackets):
#   ROUNDS [8]  DURATION [4] seconds  SIZE [65536] bytes  CONNS [10]  DISPATCH [loop]
#   SERVER_CORE [0]  CLIENT_CORE [1]
# Prints one line per run, then per binary the median user and system µs per message, and
# the median of the per-round differences B - A (negative: B is cheaper).
set -euo pipefail
cd "$(dirname "$0")/.."

A=${1:?usage: benches/cpu-split.sh BIN_A BIN_B}
B=${2:?usage: benches/cpu-split.sh BIN_A BIN_B}
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-4}
SIZE=${SIZE:-65536}
CONNS=${CONNS:-10}
DISPATCH=${DISPATCH:-loop}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
WSBENCH=target/release/wsbench
[ -x "$WSBENCH" ] || cargo build --release -j2 -p wss-benches --bin wsbench >&2
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "cpu-split: $*" >&2; }
# start_server / stop_server
. benches/scripts/server.sh

# Clock ticks per second, for the /proc/PID/stat times.
HZ=$(getconf CLK_TCK)
: >"$WORK/runs"
for round in $(seq "$ROUNDS"); do
    order="A B"
    if [ $((round % 2)) = 0 ]; then order="B A"; fi
    for which in $order; do
        bin=$A
        if [ "$which" = B ]; then bin=$B; fi
        start_server "$bin --handler echo --port 0 --path / --threads 1 --dispatch $DISPATCH" ||
            exit 1
        read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")
        line=$(taskset -c "$CLIENT_CORE" "$WSBENCH" echo --url "$URL" -c "$CONNS" -s "$SIZE" \
            -d 1 --warmup 0.5 --duration "$DURATION")
        read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")
        stop_server
        # The CPU times cover the warm-up too, so divide by every message received.
        n=$(echo "$line" | python3 -c 'import json, sys; print(json.load(sys.stdin)["received"])')
        echo "$round $which $u1 $u0 $s1 $s0 $n" >>"$WORK/runs"
    done
done

python3 - "$WORK/runs" "$HZ" "$A" "$B" <<'EOF'
import statistics, sys

runs, hz, names = sys.argv[1], int(sys.argv[2]), {"A": sys.argv[3], "B": sys.argv[4]}
per = {}
for line in open(runs):
    rnd, which, u1, u0, s1, s0, n = line.split()
    us = 1e6 / hz / int(n)
    user, system = (int(u1) - int(u0)) * us, (int(s1) - int(s0)) * us
    per.setdefault(which, {})[int(rnd)] = (user, system)
    print(f"round {rnd} {which}: user {user:.2f} µs/msg, system {system:.2f} µs/msg")
for which in "AB":
    users = [u for u, _ in per[which].values()]
    systems = [s for _, s in per[which].values()]
    print(f"{which} ({names[which]}): median user {statistics.median(users):.2f}, "
          f"system {statistics.median(systems):.2f}, total "
          f"{statistics.median(u + s for u, s in per[which].values()):.2f} µs/msg")
rounds = sorted(set(per["A"]) & set(per["B"]))
for i, label in [(0, "user"), (1, "system")]:
    diffs = [per["B"][r][i] - per["A"][r][i] for r in rounds]
    print(f"B - A, {label}: median of per-round differences {statistics.median(diffs):+.2f} µs/msg")
total = [sum(per["B"][r]) - sum(per["A"][r]) for r in rounds]
print(f"B - A, total: median of per-round differences {statistics.median(total):+.2f} µs/msg")
EOF
