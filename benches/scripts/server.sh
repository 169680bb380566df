# Sourced by compare.sh, tls.sh, deflate.sh and cpu-split.sh: start and stop one server under test.
# Uses the caller's SERVER_CORE, WORK (a scratch directory) and log(); sets SERVER_PID and URL.

# start_server CMD: starts it pinned, waits for its readiness line (ws:// or wss://), sets
# SERVER_PID and URL.
start_server() {
    : >"$WORK/out"
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CORE" $1 >"$WORK/out" 2>"$WORK/err" &
    SERVER_PID=$!
    URL=""
    for _ in $(seq 100); do
        URL=$(sed -n 's/^listening on \(wss\{0,1\}:\/\/[^ ]*\).*/\1/p' "$WORK/out" | head -n1)
        [ -n "$URL" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "server did not become ready: $1"
    cat "$WORK/err" >&2 || true
    stop_server
    return 1
}

# stop_server: TERM, up to 5 s to exit, then KILL.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
