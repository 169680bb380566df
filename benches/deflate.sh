#!/usr/bin/env bash
# permessage-deflate benchmark (issue 8): wss against Node's `ws` on JSON chat traffic, with
# compression off and on, interleaved for ROUNDS rounds (wss off, wss on, node off, node on,
# then again), server and load generator pinned to different cores. Then the server's memory
# per idle connection with deflate negotiated (and its state allocated) against without.
# Appends one JSON line per run to RESULTS and prints medians and per-round ratios wss / node.
#
# Usage: benches/deflate.sh
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [5] seconds measured  WARMUP [1] seconds
#   CONNS [100] connections  IN_FLIGHT [8] messages in flight per connection  SEED [1]
#   IDLE_CONNS [2000] connections per idle run (0: no idle runs)  IDLE_ROUNDS [1]
#   SERVERS ["wss node"]  SERVER_CORE [0]  CLIENT_CORE [1]  SERVER_THREADS [1]
#   NODE_THRESHOLD [64]  NODE_LEVEL [1]: ws's perMessageDeflate threshold and zlib level (the
#     defaults match the wss binary's; ws's own are 1024 and 6)
#   RESULTS [benches/results/deflate-DATE.jsonl]  SKIP_BUILD [0]
# Loopback only; every run is bounded (timeout) and every server started here is stopped by
# its pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-100}
IN_FLIGHT=${IN_FLIGHT:-8}
SEED=${SEED:-1}
IDLE_CONNS=${IDLE_CONNS:-2000}
IDLE_ROUNDS=${IDLE_ROUNDS:-1}
SERVERS=${SERVERS:-"wss node"}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
SERVER_THREADS=${SERVER_THREADS:-1}
NODE_THRESHOLD=${NODE_THRESHOLD:-64}
NODE_LEVEL=${NODE_LEVEL:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-benches/results/deflate-$STAMP.jsonl}
BIN=target/release

log() { echo "deflate: $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    cargo build --release -j2 -p wss-benches --bin wsbench >&2
    cargo build --release -j2 -p wss-handlers --bin wss >&2
fi
[ -x "$BIN/wsbench" ] || { log "no $BIN/wsbench"; exit 1; }
if [ ! -x "$BIN/wss" ]; then
    log "no $BIN/wss: measuring node only"
    SERVERS=$(echo "$SERVERS" | tr ' ' '\n' | grep -vx wss | tr '\n' ' ' || true)
fi
if echo " $SERVERS " | grep -q ' node '; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "node or npm not found: measuring wss only"
        SERVERS=$(echo "$SERVERS" | tr ' ' '\n' | grep -vx node | tr '\n' ' ' || true)
    elif [ ! -f benches/node/node_modules/ws/package.json ]; then
        log "installing benches/node (npm ci)"
        (cd benches/node && npm ci --no-audit --no-fund --loglevel=error) >&2
    fi
fi
[ -n "${SERVERS// /}" ] || { log "no server to measure"; exit 1; }
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$(dirname "$RESULTS")"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# server_cmd SERVER DEFLATE(on|off) -> the command line.
server_cmd() {
    case "$1" in
        wss) echo "$BIN/wss --handler echo --host 127.0.0.1 --port 0 --path / --threads $SERVER_THREADS --deflate $2" ;;
        node) echo "node benches/node/ws-echo.mjs --port 0 --deflate $2 --threshold $NODE_THRESHOLD --level $NODE_LEVEL" ;;
    esac
}

# start_server / stop_server
. benches/scripts/server.sh

# run_one SERVER DEFLATE SCENARIO ROUND LABEL WSBENCH-ARGS...: one server, one wsbench run,
# one JSON line.
run_one() {
    local server=$1 deflate=$2 scenario=$3 round=$4 label=$5
    shift 5
    local line=""
    if start_server "$(server_cmd "$server" "$deflate")"; then
        log "round $round $scenario $label ($URL)"
        line=$(timeout $((${WARMUP%.*} + ${DURATION%.*} + 120)) taskset -c "$CLIENT_CORE" "$BIN/wsbench" "$@" \
            --url "$URL" --label "$label" --scenario "$scenario" --round "$round" \
            --server-pid "$SERVER_PID" || true)
        stop_server
    fi
    if [ -z "$line" ]; then
        line="{\"tool\":\"wsbench\",\"ok\":false,\"label\":\"$label\",\"scenario\":\"$scenario\",\"round\":$round,\"error\":\"no output (server did not start, or timeout)\"}"
    fi
    echo "$line" >>"$RESULTS"
    echo "$line" | grep -q '"ok":true' || log "FAILED: $line"
}

CHAT="--payload chat-json --seed $SEED --text -c $CONNS -d $IN_FLIGHT --warmup $WARMUP --duration $DURATION"
log "servers: $SERVERS; $ROUNDS rounds of chat-json echo ($CONNS x $IN_FLIGHT in flight); results: $RESULTS"
for round in $(seq "$ROUNDS"); do
    for server in $SERVERS; do
        # shellcheck disable=SC2086
        run_one "$server" off chat "$round" "$server-off" echo $CHAT
        # shellcheck disable=SC2086
        run_one "$server" on chat "$round" "$server-on" echo $CHAT --deflate
    done
done

# Idle: every connection sends one chat message and gets its echo before going quiet, with and
# without deflate, so that the deflate state (allocated on the first compressed message) exists.
if [ "$IDLE_CONNS" -gt 0 ]; then
    IDLE="idle -n $IDLE_CONNS --settle 1 --warm 1 --payload chat-json --seed $SEED"
    log "idle: $IDLE_CONNS connections, $IDLE_ROUNDS round(s)"
    for round in $(seq "$IDLE_ROUNDS"); do
        for server in $SERVERS; do
            # shellcheck disable=SC2086
            run_one "$server" off idle "$round" "$server-off" $IDLE
            # shellcheck disable=SC2086
            run_one "$server" on idle "$round" "$server-on" $IDLE --deflate
            # shellcheck disable=SC2086
            run_one "$server" on idle "$round" "$server-on-snct" $IDLE --deflate --server-no-context-takeover
            # shellcheck disable=SC2086
            run_one "$server" on idle "$round" "$server-on-nct" $IDLE --deflate \
                --server-no-context-takeover --client-no-context-takeover
            # shellcheck disable=SC2086
            run_one "$server" on idle "$round" "$server-on-w10" $IDLE --deflate \
                --server-window-bits 10 --client-window-bits 10
        done
    done
fi

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = [r for r in rows if r.get("ok")]
failed = [r for r in rows if not r.get("ok")]
med = lambda xs: statistics.median(xs) if xs else None

def fmt(x, d=1):
    return "-" if x is None else f"{x:,.{d}f}"

chat = defaultdict(list)
for r in ok:
    if r.get("scenario") == "chat":
        chat[r["label"]].append(r)
if chat:
    print("\nJSON chat echo (medians over rounds; compression = app bytes / wire bytes)")
    print(f"{'server':<10} {'msg/s':>11} {'p50 us':>8} {'p99 us':>8} {'srv ns/msg':>10} {'cli util':>8} {'ratio in':>8} {'ratio out':>9} {'mean B':>7}")
    for label in sorted(chat):
        rs = chat[label]
        g = lambda k: med([r[k] for r in rs if k in r])
        lat = lambda q: med([r["latency_us"][q] for r in rs])
        print(f"{label:<10} {fmt(g('msg_per_s'),0):>11} {fmt(lat('p50')):>8} {fmt(lat('p99')):>8} "
              f"{fmt(g('server_cpu_ns_per_op'),0):>10} {fmt(g('client_cpu_util'),2):>8} "
              f"{fmt(g('compression_in'),2):>8} {fmt(g('compression_out'),2):>9} {fmt(g('size'),0):>7}")
    by_round = defaultdict(dict)
    for r in ok:
        if r.get("scenario") == "chat":
            by_round[r["round"]][r["label"]] = r
    print("\nwss / node msg/s per round (and p99 latency node / wss):")
    for mode in ("off", "on"):
        ratios, lat = [], []
        for rnd in sorted(by_round):
            a, b = by_round[rnd].get(f"wss-{mode}"), by_round[rnd].get(f"node-{mode}")
            if a and b and b["msg_per_s"] > 0:
                ratios.append(a["msg_per_s"] / b["msg_per_s"])
                lat.append(b["latency_us"]["p99"] / max(a["latency_us"]["p99"], 0.1))
        if ratios:
            print(f"  deflate {mode:<3}: msg/s " + " ".join(f"{x:.2f}" for x in ratios)
                  + f"  (median {med(ratios):.2f});  p99 " + " ".join(f"{x:.2f}" for x in lat))
    for server in ("wss", "node"):
        ratios = []
        for rnd in sorted(by_round):
            a, b = by_round[rnd].get(f"{server}-on"), by_round[rnd].get(f"{server}-off")
            if a and b and b["msg_per_s"] > 0:
                ratios.append(a["msg_per_s"] / b["msg_per_s"])
        if ratios:
            print(f"  {server} deflate on / off msg/s: median {med(ratios):.2f}")

idle = defaultdict(list)
for r in ok:
    if r.get("scenario") == "idle" and "rss_per_conn_kib" in r:
        idle[r["label"]].append(r)
if idle:
    print("\nIdle memory per connection (server RSS delta / connections; one chat message echoed on each first)")
    print(f"{'server':<16} {'conns':>6} {'KiB/conn':>9} {'vs off':>8}  negotiated")
    for label in sorted(idle):
        rs = idle[label]
        kib = med([r["rss_per_conn_kib"] for r in rs])
        base = idle.get(label.split("-")[0] + "-off")
        extra = "" if not base or label.endswith("-off") else f"{kib - med([r['rss_per_conn_kib'] for r in base]):+.1f}"
        print(f"{label:<16} {rs[0]['connections']:>6} {kib:>9.2f} {extra:>8}  {rs[0].get('deflate_response', '-')}")
if failed:
    print(f"\n{len(failed)} run(s) FAILED:")
    for r in failed:
        print(f"  {r.get('label')} {r.get('scenario')} round {r.get('round')}: {r.get('error')}")
print(f"\nresults: {sys.argv[1]}")
EOF
