#!/usr/bin/env bash
# Runs the same load scenarios against wss and its peers, interleaved for ROUNDS rounds with the
# order reversed every other round (A B C, C B A, ...: whatever a place in the round costs, e.g.
# coming right after a busy run, then weighs on every server alike), with server and load
# generator pinned to different cores. Appends one JSON line per run to RESULTS, then prints
# medians and per-round ratios (wss / best peer) and draws a chart.
#
# Usage: benches/compare.sh [scenario ...]      (default: all scenarios)
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [5] seconds measured  WARMUP [1] seconds
#   SERVERS ["wss tt fws"]  SERVER_CORE [0]  CLIENT_CORE [1]  SERVER_THREADS [1]
#   (wss-metrics is wss serving --metrics on loopback: SERVERS="wss wss-metrics" measures the
#   cost of counting, and the report adds a table of it; wss-base is the wss binary at
#   WSS_BASE_BIN, e.g. one built from a commit before the counters, to measure what counting
#   costs when metrics are off; wss-loop is wss with --dispatch loop, the callbacks on the
#   network thread: the report adds issue 24's targets for it; wss-base-loop is the base binary
#   with --dispatch loop, to measure a change in that mode too)
#   RESULTS [benches/results/results-DATE.jsonl]  SKIP_BUILD [0]
#   WSS_BROADCAST_HANDLER [broadcast]: the wss handler for the broadcast scenario (broadcast
#   relays each message unchanged to every other client, as tt-echo --mode broadcast does;
#   chat wraps it in its JSON)
# Scenarios: echo16 echo1k echo64k connect idle broadcast
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SERVERS=${SERVERS:-"wss tt fws"}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
SERVER_THREADS=${SERVER_THREADS:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-benches/results/results-$STAMP.jsonl}
ALL_SCENARIOS="echo16 echo1k echo64k connect idle broadcast"
SCENARIOS=${*:-$ALL_SCENARIOS}
BIN=target/release

log() { echo "compare: $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    cargo build --release -j2 -p wss-benches --bins >&2
    if ! cargo build --release -j2 -p wss-handlers --bin wss >&2; then
        log "the wss binary does not build: comparing the peers only"
    fi
fi
if [ ! -x "$BIN/wss" ]; then
    SERVERS=$(echo "$SERVERS" | tr ' ' '\n' | grep -vx 'wss\|wss-metrics\|wss-loop' | tr '\n' ' ' || true)
fi
# Idle runs hold 10 000 connections: the load generator and every server need the fds.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$(dirname "$RESULTS")"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# server_cmd NAME SCENARIO -> the command line, or nothing when NAME cannot run SCENARIO.
server_cmd() {
    local name=$1 scenario=$2
    case "$name/$scenario" in
        wss/broadcast) echo "$BIN/wss --handler ${WSS_BROADCAST_HANDLER:-broadcast} --data-type text --port 0 --path / --threads $SERVER_THREADS" ;;
        wss/*) echo "$BIN/wss --handler echo --port 0 --path / --threads $SERVER_THREADS" ;;
        wss-metrics/*) echo "$(server_cmd wss "$scenario") --metrics 127.0.0.1:0" ;;
        wss-loop/*) echo "$(server_cmd wss "$scenario") --dispatch loop" ;;
        wss-base/*)
            # Nothing (the run is skipped) without a base binary; never a failing status,
            # which `set -e` would turn into the end of the script.
            if [ -x "${WSS_BASE_BIN:-}" ]; then
                server_cmd wss "$scenario" | sed "s#^$BIN/wss#$WSS_BASE_BIN#"
            fi
            ;;
        wss-base-loop/*)
            if [ -x "${WSS_BASE_BIN:-}" ]; then
                echo "$(server_cmd wss-base "$scenario") --dispatch loop"
            fi
            ;;
        tt/broadcast) echo "$BIN/tt-echo --port 0 --mode broadcast --threads $SERVER_THREADS" ;;
        tt/*) echo "$BIN/tt-echo --port 0 --threads $SERVER_THREADS" ;;
        fws/broadcast) ;;
        fws/*) echo "$BIN/fws-echo --port 0 --threads $SERVER_THREADS" ;;
    esac
}

# wsbench arguments of each scenario (the targets of issue 7).
scenario_args() {
    case "$1" in
        echo16) echo "echo -c 100 -s 16 -d 1" ;;
        echo1k) echo "echo -c 100 -s 1024 -d 8" ;;
        echo64k) echo "echo -c 10 -s 65536 -d 1" ;;
        connect) echo "connect -k 32 --sources 4" ;;
        idle) echo "idle -n 10000 --settle 1" ;;
        broadcast) echo "broadcast -r 100 -s 64" ;;
        *) return 1 ;;
    esac
}

# start_server / stop_server
. benches/scripts/server.sh

log "servers: $SERVERS; scenarios: $SCENARIOS; $ROUNDS rounds; results: $RESULTS"
for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        args=$(scenario_args "$scenario") || { log "unknown scenario $scenario"; exit 2; }
        order=$SERVERS
        if [ $((round % 2)) = 0 ]; then order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
        for server in $order; do
            cmd=$(server_cmd "$server" "$scenario")
            [ -n "$cmd" ] || continue
            start_server "$cmd" || continue
            log "round $round $scenario $server ($URL)"
            # shellcheck disable=SC2086
            line=$(timeout 200 taskset -c "$CLIENT_CORE" "$BIN/wsbench" $args --url "$URL" \
                --label "$server" --scenario "$scenario" --round "$round" \
                --server-pid "$SERVER_PID" --warmup "$WARMUP" --duration "$DURATION" || true)
            stop_server
            if [ -z "$line" ]; then
                line="{\"tool\":\"wsbench\",\"ok\":false,\"label\":\"$server\",\"scenario\":\"$scenario\",\"round\":$round,\"error\":\"no output (timeout?)\"}"
            fi
            echo "$line" >>"$RESULTS"
            echo "$line" | grep -q '"ok":true' || log "FAILED: $line"
        done
    done
done

python3 benches/scripts/report.py "$RESULTS"
python3 benches/scripts/plot.py "$RESULTS" -o "${RESULTS%.jsonl}.svg"
log "results: $RESULTS, chart: ${RESULTS%.jsonl}.svg"
