# Shell helpers shared by bench/e2e.sh and bench/vm.sh (sourced, not run).
# Both keep the PIDs of what they start in PIDS and kill them all on exit.

# Starts a background process and remembers its PID for cleanup; sets LAST_PID.
spawn() {
    "$@" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# Stops one process we started: SIGTERM, then SIGKILL after 5 s.
stop_pid() {
    local p=$1
    kill "$p" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    return 0
}
