#!/usr/bin/env bash
# Cross-node broadcast benchmark (issue 12): one sender and 2 x RECEIVERS receivers, SIZE-byte
# messages, measured by wsbench's broadcast mode in one run against
#   wss1  one wss node (--handler broadcast), every receiver on it;
#   wss2  two wss nodes sharing a private Redis (--redis, --node-id n1/n2), RECEIVERS on each,
#         the sender on node 1;
#   sio2  two Socket.IO 4.8 processes with @socket.io/redis-adapter on the same Redis
#         (benches/socketio/server.js), same topology, wsbench speaking Socket.IO (--socketio);
#   sio1  (only if asked for) one Socket.IO process, every receiver on it.
# Each run prints one JSON line (appended to RESULTS); at the end a table with the issue's
# ratios: wss2 / sio2 deliveries/s (target >= 10x, with wss2 p99 <= 10 ms) and wss2 / wss1
# (target >= 50 %).
#
# Loopback only; it starts its own redis-server on a free port and stops everything it started
# (by PID) on exit, Ctrl-C included. Each wsbench run is bounded by `timeout`.
#
# Usage: benches/cluster.sh [case ...]                 (default: wss1 wss2 sio2)
# Environment (defaults in brackets):
#   ROUNDS [1] (cases interleaved within a round)  DURATION [5] s measured  WARMUP [1] s
#   RECEIVERS [100] per node  SIZE [64] bytes  WINDOW [64] messages ahead of the slowest
#   SERVER_THREADS [1] network threads per wss node  CLIENT_THREADS [1] wsbench threads
#   RESULTS [benches/results/cluster-DATE.jsonl]  SKIP_BUILD [0]  SKIP_NPM [0]
#   BIN [target/release] where wss and wsbench are
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
RECEIVERS=${RECEIVERS:-100}
SIZE=${SIZE:-64}
WINDOW=${WINDOW:-64}
SERVER_THREADS=${SERVER_THREADS:-1}
CLIENT_THREADS=${CLIENT_THREADS:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-benches/results/cluster-$STAMP.jsonl}
CASES=${*:-"wss1 wss2 sio2"}
BIN=${BIN:-target/release}
SIO=benches/socketio

log() { echo "cluster: $*" >&2; }

for c in $CASES; do
    case $c in wss1 | wss2 | sio1 | sio2) ;; *) log "unknown case $c (wss1 wss2 sio1 sio2)"; exit 2 ;; esac
done
command -v redis-server >/dev/null || { log "redis-server is not installed (apt-get install -y redis-server)"; exit 2; }
if [[ " $CASES " == *" sio"* ]]; then
    command -v node >/dev/null || { log "node is not installed: needed for the Socket.IO cases"; exit 2; }
    if [ "${SKIP_NPM:-0}" != 1 ] && [ ! -d "$SIO/node_modules/socket.io" ]; then
        log "installing the Socket.IO peer (npm ci in $SIO)"
        (cd "$SIO" && npm ci --no-audit --no-fund >&2)
    fi
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    cargo build --release -j2 -p wss-benches --bin wsbench >&2
    cargo build --release -j2 -p wss-handlers --bin wss >&2
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$(dirname "$RESULTS")"
WORK=$(mktemp -d)
PIDS=()

# Stops what this script started, by PID: TERM, up to 3 s, then KILL.
stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do
        local alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "$@"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
cleanup() {
    [ "${#PIDS[@]}" -gt 0 ] && stop_pids "${PIDS[@]}"
    [ -n "${REDIS_PID:-}" ] && stop_pids "$REDIS_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_ping() {
    local line=""
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    read -r -t 1 line <&3 || true
    exec 3<&- 3>&-
    [ "${line%$'\r'}" = "+PONG" ]
}

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do redis_ping "$REDIS_PORT" && break; sleep 0.1; done
redis_ping "$REDIS_PORT" || { log "redis-server did not answer on $REDIS_PORT"; cat "$WORK/redis.log" >&2; exit 1; }
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
log "redis-server on $REDIS_PORT (pid $REDIS_PID)"

# start NAME CMD...: starts a server, waits for `listening on ws://...`, echoes its URL and
# appends its PID to PIDS (in the caller's shell: call it without command substitution).
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        URL=$(sed -n 's/^listening on \(ws:\/\/[^ ]*\).*/\1/p' "$WORK/$name.out" | head -n1)
        [ -n "$URL" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "$name did not become ready: $*"
    cat "$WORK/$name.err" >&2 || true
    return 1
}

wss_node() { # NAME [--redis URL --node-id ID]
    local name=$1
    shift
    start "$name" "$BIN/wss" --handler broadcast --data-type text --port 0 --path / \
        --threads "$SERVER_THREADS" --log-level warn "$@"
}

sio_node() { # NAME [--redis URL]
    local name=$1
    shift
    start "$name" node "$SIO/server.js" --port 0 "$@"
}

run_case() { # CASE ROUND
    local c=$1 round=$2 urls=() extra=() u1 u2
    PIDS=()
    case $c in
        wss1) wss_node n1 || return 1; u1=$URL; urls=("$u1") ;;
        wss2)
            wss_node n1 --redis "$REDIS_URL" --node-id n1 || return 1; u1=$URL
            wss_node n2 --redis "$REDIS_URL" --node-id n2 || return 1; u2=$URL
            urls=("$u1" "$u2") ;;
        sio1) sio_node n1 || return 1; u1=$URL; urls=("$u1"); extra=(--socketio) ;;
        sio2)
            sio_node n1 --redis "$REDIS_URL" || return 1; u1=$URL
            sio_node n2 --redis "$REDIS_URL" || return 1; u2=$URL
            urls=("$u1" "$u2"); extra=(--socketio) ;;
    esac
    local receivers=$((RECEIVERS * 2)) args=()
    for u in "${urls[@]}"; do args+=(--receiver-url "$u"); done
    log "round $round $c: sender on $u1, $receivers receivers over ${urls[*]}"
    local line
    line=$(timeout $((WARMUP + DURATION + 60)) "$BIN/wsbench" broadcast --url "$u1" "${args[@]}" \
        "${extra[@]}" -r "$receivers" -s "$SIZE" --window "$WINDOW" --threads "$CLIENT_THREADS" \
        --label "$c" --scenario cluster --round "$round" \
        --warmup "$WARMUP" --duration "$DURATION" || true)
    stop_pids "${PIDS[@]}"
    PIDS=()
    if [ -z "$line" ]; then
        line="{\"tool\":\"wsbench\",\"ok\":false,\"label\":\"$c\",\"scenario\":\"cluster\",\"round\":$round,\"error\":\"no output (timeout?)\"}"
    fi
    echo "$line" | tee -a "$RESULTS"
    echo "$line" | grep -q '"ok":true' || log "FAILED: $c"
}

log "cases: $CASES; $ROUNDS round(s); ${RECEIVERS} receivers per node, $SIZE B; results: $RESULTS"
for round in $(seq "$ROUNDS"); do
    for c in $CASES; do
        run_case "$c" "$round" || { stop_pids "${PIDS[@]}"; PIDS=(); log "FAILED to start $c"; }
    done
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys

runs = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    runs.setdefault(r.get("label"), []).append(r)

def med(label, key):
    vals = [key(r) for r in runs.get(label, []) if r.get("ok")]
    return statistics.median(vals) if vals else None

rate = lambda l: med(l, lambda r: r["deliveries_per_s"])
p99 = lambda l: med(l, lambda r: r["latency_us"]["p99"] / 1000)
p50 = lambda l: med(l, lambda r: r["latency_us"]["p50"] / 1000)
fmt = lambda v, f: "-" if v is None else f.format(v)
names = {"wss1": "wss, 1 node", "wss2": "wss, 2 nodes + Redis", "sio1": "Socket.IO, 1 node",
         "sio2": "Socket.IO, 2 nodes + Redis adapter"}
print()
print("| case | runs ok | deliveries/s | p50 ms | p99 ms |")
print("|---|---|---|---|---|")
for label in ["wss1", "wss2", "sio1", "sio2"]:
    if label not in runs:
        continue
    ok = sum(1 for r in runs[label] if r.get("ok"))
    print(f"| {names[label]} | {ok}/{len(runs[label])} | {fmt(rate(label), '{:,.0f}')} "
          f"| {fmt(p50(label), '{:.2f}')} | {fmt(p99(label), '{:.2f}')} |")
print()
def ratio(a, b):
    return None if rate(a) is None or not rate(b) else rate(a) / rate(b)
checks = [
    ("wss 2 nodes / Socket.IO 2 nodes, deliveries/s", ratio("wss2", "sio2"), ">= 10x", lambda v: v >= 10, "{:.1f}x"),
    ("wss 2 nodes p99 latency", p99("wss2"), "<= 10 ms", lambda v: v <= 10, "{:.2f} ms"),
    ("wss 2 nodes / wss 1 node, deliveries/s", ratio("wss2", "wss1"), ">= 50 %", lambda v: v >= 0.5, "{:.0%}"),
]
print("| issue 12 target | measured | target | met |")
print("|---|---|---|---|")
for name, v, target, ok, f in checks:
    print(f"| {name} | {fmt(v, f)} | {target} | {'-' if v is None else ('yes' if ok(v) else 'NO')} |")
EOF
log "results: $RESULTS"
