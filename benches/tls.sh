#!/usr/bin/env bash
# TLS against plain, for wss and tokio-tungstenite + tokio-rustls (issue 9), in one run:
# echo 100 x 1 KiB x 8 in flight, handshakes/s with 32 workers (TCP + TLS + upgrade + close),
# and server memory per idle connection. Server and load generator are pinned to different
# cores; runs are interleaved (wss plain, wss TLS, tt plain, tt TLS, ...) for ROUNDS rounds,
# each on a fresh server process. Prints medians and the ratios wss TLS / tt TLS and
# TLS / plain. Loopback only; certificates come from wsbench-cert (no openssl).
#
# Usage: benches/tls.sh [scenario ...]       (default: echo1k connect idle)
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [5] seconds measured  WARMUP [1] seconds  IDLE_N [5000]
#   SERVERS ["wss tt"]  SERVER_CORE [0]  CLIENT_CORE [1]  SERVER_THREADS [1]
#   (wss-base is the wss binary at WSS_BASE_BIN, e.g. one built before a change)
#   RESULTS [benches/results/tls-DATE.jsonl]  SKIP_BUILD [0]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
IDLE_N=${IDLE_N:-5000}
SERVERS=${SERVERS:-"wss tt"}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
SERVER_THREADS=${SERVER_THREADS:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-benches/results/tls-$STAMP.jsonl}
SCENARIOS=${*:-"echo1k connect idle"}
BIN=target/release

log() { echo "tls.sh: $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    cargo build --release -j2 -p wss-benches --bins >&2
    cargo build --release -j2 -p wss-handlers --bin wss >&2
fi
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$(dirname "$RESULTS")"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN/wsbench-cert" --out "$WORK/pki" >/dev/null
CERT="--cert $WORK/pki/cert.pem --key $WORK/pki/key.pem"

# server_cmd NAME TRANSPORT -> command line.
server_cmd() {
    local tls=""
    [ "$2" = tls ] && tls=$CERT
    case "$1" in
        wss) echo "$BIN/wss --handler echo --port 0 --path / --threads $SERVER_THREADS --log-level off $tls" ;;
        tt) echo "$BIN/tt-echo --port 0 --threads $SERVER_THREADS $tls" ;;
        # The wss binary at WSS_BASE_BIN (another build, for an A/B in the same rounds).
        wss-base) server_cmd wss "$2" | sed "s#^$BIN/wss#${WSS_BASE_BIN:?WSS_BASE_BIN names the base binary}#" ;;
        *) return 1 ;;
    esac
}

scenario_args() {
    case "$1" in
        echo1k) echo "echo -c 100 -s 1024 -d 8" ;;
        connect) echo "connect -k 32 --sources 4" ;;
        idle) echo "idle -n $IDLE_N --settle 1" ;;
        *) return 1 ;;
    esac
}

# start_server / stop_server
. benches/scripts/server.sh

log "servers: $SERVERS; scenarios: $SCENARIOS; $ROUNDS rounds; results: $RESULTS"
for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        args=$(scenario_args "$scenario") || { log "unknown scenario $scenario"; exit 2; }
        for server in $SERVERS; do
            for transport in plain tls; do
                cmd=$(server_cmd "$server" "$transport") || { log "unknown server $server"; exit 2; }
                start_server "$cmd" || continue
                ca=""
                [ "$transport" = tls ] && ca="--ca $WORK/pki/ca.pem"
                log "round $round $scenario $server $transport ($URL)"
                # shellcheck disable=SC2086
                line=$(timeout 300 taskset -c "$CLIENT_CORE" "$BIN/wsbench" $args --url "$URL" $ca \
                    --label "$server-$transport" --scenario "$scenario" --round "$round" \
                    --server-pid "$SERVER_PID" --warmup "$WARMUP" --duration "$DURATION" || true)
                stop_server
                if [ -z "$line" ]; then
                    line="{\"tool\":\"wsbench\",\"ok\":false,\"label\":\"$server-$transport\",\"scenario\":\"$scenario\",\"round\":$round,\"error\":\"no output (timeout?)\"}"
                fi
                echo "$line" >>"$RESULTS"
                echo "$line" | grep -q '"ok":true' || log "FAILED: $line"
            done
        done
    done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
metric = {"echo1k": ("msg_per_s", "msg/s", True),
          "connect": ("handshakes_per_s", "handshakes/s", True),
          "idle": ("rss_per_conn_kib", "KiB/conn", False)}
def med(scn, label, key):
    v = [r[key] for r in rows if r.get("ok") and r.get("scenario") == scn
         and r.get("label") == label and key in r]
    return (statistics.median(v), len(v)) if v else (None, 0)
def per_round(scn, a, b, key):
    out = []
    for rnd in sorted({r.get("round") for r in rows}):
        x = [r[key] for r in rows if r.get("ok") and r.get("scenario") == scn and r.get("label") == a and r.get("round") == rnd and key in r]
        y = [r[key] for r in rows if r.get("ok") and r.get("scenario") == scn and r.get("label") == b and r.get("round") == rnd and key in r]
        if x and y and y[0]:
            out.append(x[0] / y[0])
    return out
fmt = lambda x: "-" if x is None else (f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}")
labels = ["wss-plain", "wss-tls", "tt-plain", "tt-tls"]
suites = {r.get("tls_suite") + " " + r.get("tls_kx", "") for r in rows if r.get("tls_suite")}
print()
print("TLS negotiated:", ", ".join(sorted(suites)) or "-", "| failed runs:", sum(1 for r in rows if not r.get("ok")))
print(f"{'scenario':9} {'metric':13} " + " ".join(f"{l:>11}" for l in labels) +
      f" {'wssTLS/ttTLS':>13} {'wss TLS/plain':>14} {'tt TLS/plain':>13}")
for scn in [s for s in metric if any(r.get("scenario") == s for r in rows)]:
    key, unit, _ = metric[scn]
    for k, u in [(key, unit), ("server_cpu_ns_per_op", "srv ns/op")]:
        if scn == "idle" and k != key:
            continue
        m = {l: med(scn, l, k)[0] for l in labels}
        def ratio(a, b):
            rs = per_round(scn, a, b, k)
            return f"{statistics.median(rs):.2f}" if rs else "-"
        print(f"{scn:9} {u:13} " + " ".join(f"{fmt(m[l]):>11}" for l in labels) +
              f" {ratio('wss-tls','tt-tls'):>13} {ratio('wss-tls','wss-plain'):>14} {ratio('tt-tls','tt-plain'):>13}")
print("(medians over rounds; ratios are medians of per-round ratios; idle: lower is better)")
PY
log "results: $RESULTS"
