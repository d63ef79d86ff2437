# shellcheck shell=bash
# The scheduling path of the e2e control plane: the allot extender and kube-scheduler, started
# by e2e/up and, between the modes of one control plane, again by e2e/bench (which swaps the
# extender's --filter-answer and kube-scheduler's configuration without bringing the API server
# and the nodes up again). Sourced after lib.sh and proc.sh, never run.
#
# The functions read these variables (e2e/up sets them; e2e/bench takes them from
# $E2E_DIR/env): E2E_DIR, E2E_BIN, KUBECONFIG_ADMIN, ALLOT_BIN, EXTENDER_PORT,
# EXTENDER_ADMIN_PORT, SCHED_PORT, TIMEOUT; start_null_extender also NULL_EXTENDER_BIN (e2e/bench
# sets it).

# start_extender ANSWER TLS HISTORY [THREADS]: the allot extender on 127.0.0.1:$EXTENDER_PORT
# with --filter-answer ANSWER; TLS=1 serves pki's serving certificate and checks client
# certificates; HISTORY=1 records the workload history into $E2E_DIR/history; THREADS, if
# given and not 0, is its --worker-threads. Waits for /readyz (its caches synced).
start_extender() {
    local answer=$1 tls=$2 history=$3 threads=${4:-0} pki=$E2E_DIR/pki
    step_begin "allot extender on 127.0.0.1:$EXTENDER_PORT (admin 127.0.0.1:$EXTENDER_ADMIN_PORT, --filter-answer $answer$([[ $tls == 1 ]] && echo ", TLS"))"
    local tls_flags=() history_flags=()
    if [[ $tls == 1 ]]; then
        tls_flags=(--tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key"
            --tls-client-ca-file "$pki/ca.crt")
    fi
    # A symlink named after the component, so that the pid checks recognise the process.
    mkdir -p "$E2E_DIR/bin"
    ln -sf "$ALLOT_BIN" "$E2E_DIR/bin/allot-extender"
    # The workload history (issue 20): one extender, so no Lease; plain names, so that
    # history::records_pods_created_and_deleted finds its own pods.
    rm -rf "$E2E_DIR/history"
    if [[ $history == 1 ]]; then
        history_flags=(--history-dir "$E2E_DIR/history" --history-without-lease --history-plain-names)
    fi
    KUBECONFIG=$KUBECONFIG_ADMIN RUST_LOG=${ALLOT_LOG:-info} start allot-extender "$E2E_DIR/bin/allot-extender" extender \
        --listen "127.0.0.1:$EXTENDER_PORT" \
        --admin-listen "127.0.0.1:$EXTENDER_ADMIN_PORT" \
        --filter-answer "$answer" \
        --worker-threads "$threads" \
        ${history_flags[@]+"${history_flags[@]}"} \
        ${tls_flags[@]+"${tls_flags[@]}"}
    wait_for "allot extender ready" "$TIMEOUT" curl -sf "http://127.0.0.1:$EXTENDER_ADMIN_PORT/readyz"
    step_end
}

# start_null_extender: e2e-null-extender (e2e/src/bin/null_extender.rs: the first node name
# back from /filter, nothing else) on 127.0.0.1:$EXTENDER_PORT under the extender's component
# name, so that e2e/bench stops it and counts its CPU as it does the extender's. Waits for it.
start_null_extender() {
    step_begin "e2e-null-extender on 127.0.0.1:$EXTENDER_PORT"
    mkdir -p "$E2E_DIR/bin"
    ln -sf "$NULL_EXTENDER_BIN" "$E2E_DIR/bin/allot-extender"
    start allot-extender "$E2E_DIR/bin/allot-extender" --listen "127.0.0.1:$EXTENDER_PORT"
    wait_for "allot extender ready" "$TIMEOUT" curl -sf "http://127.0.0.1:$EXTENDER_PORT/readyz"
    step_end
}

# write_scheduler_config EXTENDER TLS [PERCENTAGE]: $E2E_DIR/scheduler-config.yaml, with
# (EXTENDER=1) or without the allot extender in every profile's path, or (EXTENDER=null) with
# e2e-null-extender as a filter-only extender (kube-scheduler binds); TLS=1 calls it over mutual
# TLS; PERCENTAGE, if given and not empty, is the allot profile's percentageOfNodesToScore
# (e2e/bench's -pN modes), else the field is left out: kube-scheduler's adaptive value, as the
# chart leaves it.
write_scheduler_config() {
    local extender=$1 tls=$2 percentage=${3:-} pki=$E2E_DIR/pki extenders="" allot_plugins="" scheme tls_entry
    local allot_percentage=""
    # The allot profile's, where the chart's scheduler.profileExtra would put it: the pods of
    # e2e/bench and the tests ask for schedulerName: allot, with the extender or without.
    if [[ -n $percentage ]]; then
        allot_percentage="  percentageOfNodesToScore: $percentage"
    fi
    if [[ $extender == null ]]; then
        # The protocol alone: the same filter call as the chart's entry, no other verb.
        extenders="extenders:
- urlPrefix: http://127.0.0.1:$EXTENDER_PORT
  filterVerb: filter
  weight: 1
  enableHTTPS: false
  nodeCacheCapable: true
  httpTimeout: 10s
  ignorable: false"
    elif [[ $extender == 1 ]]; then
        if [[ $tls == 1 ]]; then
            scheme=https
            # Indented for the extender entries below.
            tls_entry="  enableHTTPS: true
  tlsConfig:
    certFile: $pki/scheduler.crt
    keyFile: $pki/scheduler.key
    caFile: $pki/ca.crt"
        else
            scheme=http
            tls_entry="  enableHTTPS: false"
        fi
        # Without managedResources the extender is asked about every pod: pods that want a share
        # of a GPU say so only in an annotation, so a resource filter would let them bypass allot.
        # nodeCacheCapable: names only on the wire (full Node objects would be ~MBs per request
        # at a few hundred nodes); the extender keeps its own node cache from its watches.
        # Two entries, one extender: kube-scheduler gives each entry its own HTTP client, which
        # keeps at most 2 idle connections. A bind waits ~100-180 ms for the API server under
        # e2e/bench's load, so with one entry a dozen binds in flight took the connections the
        # scheduling cycle's filter and prioritize calls needed, and those dialled anew
        # (BENCHMARKS.md section 6). The binds' entry has no scoring, so no weight.
        extenders="extenders:
- urlPrefix: $scheme://127.0.0.1:$EXTENDER_PORT
  filterVerb: filter
  prioritizeVerb: prioritize
  preemptVerb: preempt
  weight: 1
$tls_entry
  nodeCacheCapable: true
  httpTimeout: 10s
  ignorable: false
- urlPrefix: $scheme://127.0.0.1:$EXTENDER_PORT
  bindVerb: bind
$tls_entry
  nodeCacheCapable: true
  httpTimeout: 10s
  ignorable: false"
    fi
    if [[ $extender != 0 ]]; then
        # As the chart configures it: allot's policy ranks nodes by their resources (GPUs and
        # CPU/memory together), so kube-scheduler's own resource scoring, which spreads by CPU
        # and memory alone, is off in the allot profile instead of pulling the other way.
        allot_plugins="  plugins:
    preScore:
      disabled:
      - name: NodeResourcesFit
      - name: NodeResourcesBalancedAllocation
    score:
      disabled:
      - name: NodeResourcesFit
      - name: NodeResourcesBalancedAllocation"
    fi
    cat >"$E2E_DIR/scheduler-config.yaml" <<EOF
# Written by e2e/up (or e2e/bench). The default profile stays as it is; pods with
# schedulerName: allot get the allot profile. Extenders are global in a
# KubeSchedulerConfiguration: all profiles call them.
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $E2E_DIR/scheduler.kubeconfig
  # The defaults (50 qps) would be the bottleneck of e2e/bench, not scheduling.
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
- schedulerName: allot
$allot_percentage
$allot_plugins
$extenders
EOF
}

# start_scheduler WHAT: kube-scheduler with $E2E_DIR/scheduler-config.yaml; waits for /readyz.
# WHAT says in the step's name which configuration it runs.
start_scheduler() {
    local pki=$E2E_DIR/pki
    step_begin "kube-scheduler on 127.0.0.1:$SCHED_PORT ($1)"
    start kube-scheduler "$E2E_BIN/kube-scheduler" \
        --config "$E2E_DIR/scheduler-config.yaml" \
        --authentication-kubeconfig "$E2E_DIR/scheduler.kubeconfig" \
        --authorization-kubeconfig "$E2E_DIR/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 \
        --secure-port "$SCHED_PORT" \
        --tls-cert-file "$pki/serving.crt" \
        --tls-private-key-file "$pki/serving.key" \
        --client-ca-file "$pki/ca.crt"
    wait_for kube-scheduler "$TIMEOUT" curl -sf --cacert "$pki/ca.crt" "https://127.0.0.1:$SCHED_PORT/readyz"
    step_end
}
