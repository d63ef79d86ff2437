# shellcheck shell=bash
# Process helpers for e2e/up and e2e/down: start a component with a log and a pid file, wait for
# it with a deadline while watching that nothing crashed, pick free ports, stop everything.
# Sourced after lib.sh, never run.

# Components in start order; stop_all goes backwards.
E2E_COMPONENTS=(etcd kube-apiserver kube-controller-manager allot-extender kube-scheduler kwok)

pid_of() { cat "$E2E_DIR/pids/$1.pid" 2>/dev/null || true; }

# alive NAME: the recorded process still runs and is the binary we started (not a reused pid).
alive() {
    local pid cmd
    pid=$(pid_of "$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ $cmd == *"/$1 "* ]]
}

any_alive() {
    local c
    for c in "${E2E_COMPONENTS[@]}"; do alive "$c" && return 0; done
    return 1
}

# start NAME CMD...: run CMD in the background; output to logs/NAME.log, pid to pids/NAME.pid.
# Returns once the forked shell has exec'd the binary (or died): until then the pid's cmdline is
# this script's, and alive() would take the component for crashed.
start() {
    local name=$1 pid i
    shift
    # The command line and the two variables components read, for e2e/component to restart it.
    {
        printf 'env KUBECONFIG=%q RUST_LOG=%q' "${KUBECONFIG-}" "${RUST_LOG-}"
        printf ' %q' "$@"
        printf '\n'
    } >"$E2E_DIR/pids/$name.cmd"
    "$@" >>"$E2E_DIR/logs/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$E2E_DIR/pids/$name.pid"
    for ((i = 0; i < 100; i++)); do
        alive "$name" && return 0
        running "$pid" || return 0
        sleep 0.02
    done
}

# crashed NAME: die with the tail of NAME's log.
crashed() {
    local name=$1 logf=$E2E_DIR/logs/$1.log
    printf -- '----- last lines of %s -----\n' "$logf" >&2
    tail -n 30 "$logf" >&2 || true
    printf -- '-----\n' >&2
    die "$name exited during start-up (see $logf)"
}

# check_started: every component started so far is still running.
check_started() {
    local c
    for c in "${E2E_COMPONENTS[@]}"; do
        [[ -f $E2E_DIR/pids/$c.pid ]] || continue
        alive "$c" || crashed "$c"
    done
}

# wait_for WHAT TIMEOUT_S CMD...: retry CMD until it succeeds; die on timeout or on a crash.
wait_for() {
    local what=$1 timeout=$2
    shift 2
    local deadline=$(($(now_ms) + timeout * 1000))
    while true; do
        check_started
        if "$@" >/dev/null 2>&1; then return 0; fi
        if (($(now_ms) > deadline)); then
            local logf=$E2E_DIR/logs/$what.log
            if [[ -f $logf ]]; then
                printf -- '----- last lines of %s -----\n' "$logf" >&2
                tail -n 30 "$logf" >&2 || true
            fi
            die "$what not healthy after ${timeout}s (check: $*)"
        fi
        sleep 0.2
    done
}

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port PORT LABEL: PORT if free (die if taken), or a free one when PORT is 0. Ports chosen
# in this run are remembered in the run directory so two components never get the same one.
pick_port() {
    local want=$1 label=$2 taken=$E2E_DIR/ports p i
    [[ $want =~ ^[0-9]+$ ]] || die "port for $label must be a number, got '$want'"
    if ((want != 0)); then
        if port_in_use "$want"; then
            local who
            who=$(ss -ltnpH "sport = :$want" 2>/dev/null | head -n 1 || true)
            die "port $want for $label is already in use on 127.0.0.1${who:+ ($who)}"
        fi
        echo "$want" >>"$taken"
        echo "$want"
        return
    fi
    for ((i = 0; i < 200; i++)); do
        # Below the kernel's ephemeral range (32768+), so outgoing connections never hold them.
        p=$((20000 + RANDOM % 12000))
        grep -qx "$p" "$taken" 2>/dev/null && continue
        port_in_use "$p" && continue
        echo "$p" >>"$taken"
        echo "$p"
        return
    done
    die "found no free port for $label"
}

# running PID: the process exists and is not a zombie (a child of this shell that exited stays
# a zombie until reaped, and kill -0 still succeeds on it).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# stop_group NAME...: SIGTERM to these components at once (each takes ~2 s to shut down
# gracefully, so one after another adds up), up to 10 s for them to exit, then SIGKILL.
stop_group() {
    local c pid pids=() i
    for c in "$@"; do
        alive "$c" || continue
        pid=$(pid_of "$c")
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    for ((i = 0; i < 100; i++)); do
        local left=()
        for pid in ${pids[@]+"${pids[@]}"}; do running "$pid" && left+=("$pid"); done
        pids=(${left[@]+"${left[@]}"})
        ((${#pids[@]} == 0)) && return 0
        sleep 0.1
    done
    warn "pids ${pids[*]} ignored SIGTERM for 10 s; killing them"
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

# stop_all: everything but etcd first, then etcd: kube-apiserver never finishes shutting down
# once etcd is gone.
stop_all() {
    local others=() c
    for c in "${E2E_COMPONENTS[@]}"; do [[ $c == etcd ]] || others+=("$c"); done
    stop_group "${others[@]}"
    stop_group etcd
}
