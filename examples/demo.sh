#!/usr/bin/env bash
# The Shards demo on Kubernetes (`make demo`): ShardProcess resources applied with kubectl run
# on Shards workers, and `kubectl get shp` is the process table.
#
# All on this machine, loopback only:
#   1. the local control plane of tests/tooling/cluster (etcd + kube-apiserver +
#      kube-controller-manager), reused when `make cluster-up` already started it;
#   2. the embedded MongoDB (NX-27017) on a free port;
#   3. crds/ and deploy/ (namespace, the operator's ServiceAccount and least-privilege RBAC);
#   4. the operator as a local process, authenticated as that ServiceAccount (a token, not the
#      admin certificate), so it has exactly deploy/'s rights;
#   5. two workers running examples/sheep.py;
#   6. deploy/examples/ applied to namespace shards-demo: one of them waits for a confirmation,
#      which the demo then gives; a live table until all have ended.
# Everything it starts it stops again, by pid, also on Ctrl-C or a failure. Logs stay in
# .shards/demo/. Exits non-zero unless every process ends Done.
# The same without Kubernetes, through the `shards` CLI: examples/demo-cli.sh (`make demo-cli`).
set -euo pipefail
cd "$(dirname "$0")/.."

NS=shards-demo                # the demo's namespace; also the scope of resources without spec.scope
SHARDS=.venv/bin/shards
CLUSTER=(env PYTHONPATH=tests .venv/bin/python -m tooling.cluster)
WATCH_TIMEOUT=90              # seconds the live view waits for everything to end
work=.shards/demo

rm -rf "$work" && mkdir -p "$work"
started_cluster=""            # what the demo started, to stop at the end
mongo_pid=""
operator_pid=""
worker_pids=()
finished=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Our child $1 still runs (a zombie, exited but not yet reaped, does not count).
alive() { local stat; stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]; }

# Stop the given children: SIGTERM, wait until they exit (bounded: 25 s, more than a worker's
# 20 s shutdown grace), SIGKILL whatever still runs, reap them. The pids stay ours until
# reaped, so no other process can be signalled.
stop_pids() {
  local pid running
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 250); do
    running=""
    for pid in "$@"; do alive "$pid" && running=yes; done
    [ -z "$running" ] && break
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  if [ -z "$finished" ]; then
    echo >&2; echo "demo failed or interrupted (exit $status); the last operator and worker log lines:" >&2
    for log in "$work"/operator.log "$work"/worker-*.log; do
      [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  say "cleaning up"
  if [ -z "$started_cluster" ] && [ -n "$operator_pid" ]; then
    # A cluster we reuse keeps running: delete the demo's resources while the operator still
    # runs (its finalizer lets them go), then the namespace. After a Ctrl-C (which reaches the
    # operator too) or a failure, delete_namespace drops the finalizers instead.
    if [ -n "$finished" ] && alive "$operator_pid"; then
      kubectl delete shp --all -n "$NS" --timeout=40s
    fi
    delete_namespace --wait=false
  fi
  # Operator first (it stops touching the cluster), then the workers, MongoDB last.
  stop_pids $operator_pid
  stop_pids "${worker_pids[@]}"
  stop_pids $mongo_pid
  if [ -n "$started_cluster" ]; then
    "${CLUSTER[@]}" down
  fi
  rm -rf "$work/mongo"
  echo "logs: $work/"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wait until TCP port $1 on loopback accepts connections (bounded: 10 s).
wait_port() {
  for _ in $(seq 100); do
    .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

# The live view: print the process table whenever it changes, once a second, until "$2" (a
# shell command) succeeds; fail after $3 seconds.
table() {
  kubectl get shp -n "$NS" --sort-by=.metadata.name \
    -o custom-columns='NAME:.metadata.name,STATE:.status.state,PROGRESS:.status.progress.percent,WORKER:.status.worker,MESSAGE:.status.progress.message'
}
watch_until() {
  local what=$1 done_check=$2 timeout=$3 start=$SECONDS last="" now ended
  echo "(live, until $what; at most ${timeout} s)"
  while true; do
    # Check first, then show: states only move forward, so the last frame shows the end.
    ended=no; eval "$done_check" && ended=yes
    now=$(table)
    if [ "$now" != "$last" ]; then
      printf -- '--- +%ss\n%s\n' "$((SECONDS - start))" "$now"
      last=$now
    fi
    [ "$ended" = yes ] && return 0
    if ((SECONDS - start >= timeout)); then
      echo "timed out after ${timeout} s waiting until $what" >&2; return 1
    fi
    sleep 1
  done
}
states() { kubectl get shp -n "$NS" -o jsonpath='{range .items[*]}{.metadata.name}={.status.state}{"\n"}{end}'; }
all_ended() {
  local now; now=$(states) || return 1
  [ -n "$now" ] && ! grep -Evq '=(Done|Failed|Stopped)$' <<<"$now"
}
awaiting_confirmation() {
  [ "$(kubectl get shp butcher-sheep -n "$NS" \
      -o jsonpath='{.status.conditions[?(@.type=="Waiting")].reason}')" = ConfirmationRequired ]
}

# Delete the demo namespace ("$@": kubectl delete options). No operator runs for what is left
# in it, so drop the operator's finalizers first, or the deletion would wait forever.
delete_namespace() {
  kubectl get namespace "$NS" >/dev/null 2>&1 || return 0
  for shp in $(kubectl get shp -n "$NS" -o name 2>/dev/null); do
    kubectl patch "$shp" -n "$NS" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null
  done
  kubectl delete namespace "$NS" "$@"
}

# -- 1. the control plane --------------------------------------------------------------------
say "1. local Kubernetes control plane"
if "${CLUSTER[@]}" status >/dev/null 2>&1; then
  echo "reusing the running one (make cluster-up); the demo will leave it running"
else
  started_cluster=yes   # set first: an interrupted start is stopped too
  "${CLUSTER[@]}" up
fi
eval "$("${CLUSTER[@]}" env)"   # KUBECONFIG (the admin) and PATH (the pinned kubectl)
kubectl version 2>/dev/null | grep -v Kustomize | sed 's/^/  /'

# -- 2. MongoDB ------------------------------------------------------------------------------
port=$(.venv/bin/python -c 'from shards_store.embedded import free_port; print(free_port())')
MONGO="mongodb://127.0.0.1:${port}/shards-demo"
say "2. embedded MongoDB (NX-27017) on 127.0.0.1:${port}"
"$SHARDS" mongo --port "$port" --data "$work/mongo" >"$work/mongo.log" 2>&1 &
mongo_pid=$!
wait_port "$port"

# -- 3. CRD, operator RBAC, the demo namespace -----------------------------------------------
say "3. kubectl apply -f crds/ -f deploy/namespace.yaml -f deploy/operator-rbac.yaml"
kubectl apply -f crds/
# The kind must be Established before anything uses it.
kubectl wait --for=condition=Established crd/shardprocesses.shards.dev --timeout=60s
kubectl apply -f deploy/namespace.yaml -f deploy/operator-rbac.yaml
if kubectl get namespace "$NS" >/dev/null 2>&1; then
  echo "removing what an earlier demo left in namespace $NS"
  delete_namespace --timeout=90s
fi
kubectl create namespace "$NS"

# -- 4. the operator, as its ServiceAccount --------------------------------------------------
say "4. the operator, with the shards-system/shards-operator ServiceAccount's token"
# A kubeconfig with the same server and CA as ours, and the token as its only credential
# (passing --token next to the admin's client certificate would not work: the certificate wins).
token=$(kubectl create token shards-operator -n shards-system --duration=1h)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --minify --raw --flatten \
  -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$work/ca.crt"
OPERATOR_KUBECONFIG=$work/operator.kubeconfig
(
  export KUBECONFIG=$OPERATOR_KUBECONFIG
  kubectl config set-cluster demo --server="$server" --certificate-authority="$work/ca.crt" --embed-certs
  kubectl config set-credentials shards-operator --token="$token"
  kubectl config set-context shards-operator --cluster=demo --user=shards-operator
  kubectl config use-context shards-operator
) >/dev/null
echo "what the operator may do (deploy/operator-rbac.yaml):"
for verb_resource in "watch shardprocesses" "patch shardprocesses/status" "create shardprocesses" "list pods"; do
  # shellcheck disable=SC2086  # two words on purpose: verb and resource
  printf '  can-i %-30s %s\n' "$verb_resource" \
    "$(KUBECONFIG=$OPERATOR_KUBECONFIG kubectl auth can-i $verb_resource -A 2>/dev/null || true)"
done
# --scope-grant: examples/process-args.yaml uses `scope: farm`; a namespace may only use the
# scope of its own name unless the operator grants it more. --liveness '': no health endpoint
# (a Deployment's probe would use it). --status-interval 0.5: a livelier table.
echo "shards operator --namespace $NS --scope-grant $NS=farm --liveness '' --status-interval 0.5"
KUBECONFIG=$OPERATOR_KUBECONFIG "$SHARDS" operator --mongo "$MONGO" --namespace "$NS" \
  --scope-grant "$NS=farm" --liveness '' --status-interval 0.5 >"$work/operator.log" 2>&1 &
operator_pid=$!

# -- 5. workers ------------------------------------------------------------------------------
say "5. two workers for examples/sheep.py:app"
for n in 1 2; do
  "$SHARDS" worker examples/sheep.py:app --mongo "$MONGO" --concurrency 2 --worker-id "sheep-worker-$n" \
    >"$work/worker-$n.log" 2>&1 &
  worker_pids+=($!)
done
live_workers() {
  "$SHARDS" workers --mongo "$MONGO" -o json | .venv/bin/python -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
for try in $(seq 100); do   # bounded: about 20 s
  [ "$(live_workers 2>/dev/null)" = 2 ] && break
  [ "$try" = 100 ] && { echo "the workers did not start" >&2; exit 1; }
  sleep 0.2
done
"$SHARDS" workers --mongo "$MONGO"

# -- 6. the processes ------------------------------------------------------------------------
say "6. kubectl apply -n $NS -f deploy/examples/"
kubectl apply -n "$NS" -f deploy/examples/
echo "Scopes shards-demo and farm are new: the operator first has a worker define them from the"
echo "app's catalog (the resources wait, Idle, about 5 s), then launches. butcher-sheep has a"
echo "warning: with 'confirm: false' it is not launched, it waits for a confirmation."
watch_until "butcher-sheep waits for a confirmation" awaiting_confirmation 60
echo
echo "butcher-sheep is waiting:"
kubectl get shp butcher-sheep -n "$NS" \
  -o jsonpath='  condition {.status.conditions[?(@.type=="Waiting")].type}={.status.conditions[?(@.type=="Waiting")].status}, reason {.status.conditions[?(@.type=="Waiting")].reason}: {.status.conditions[?(@.type=="Waiting")].message}{"\n"}'

say "7. confirm it: kubectl patch shp butcher-sheep --type merge -p '{\"spec\":{\"confirm\":true}}'"
kubectl patch shp butcher-sheep -n "$NS" --type merge -p '{"spec":{"confirm":true}}'
watch_until "every process has ended" all_ended "$WATCH_TIMEOUT"

# -- 8. the result ---------------------------------------------------------------------------
say "8. kubectl get shp -n $NS -o wide"
kubectl get shp -n "$NS" -o wide
echo
kubectl get events -n "$NS" --field-selector involvedObject.kind=ShardProcess --sort-by=.lastTimestamp \
  -o custom-columns='OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message'
not_done=$(states | grep -v '=Done$' || true)
if [ -n "$not_done" ]; then
  echo "demo failed: not Done: $not_done" >&2
  exit 1
fi
finished=yes
say "demo finished in ${SECONDS} s: every ShardProcess is Done"
