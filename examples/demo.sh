#!/usr/bin/env bash
# The Shards demo on Kubernetes (`make demo`): `helm install` of the chart, then ShardProcess
# resources applied with kubectl run on worker Pods, and `kubectl get shp` is the process table.
#
# All on this machine, loopback and the local node's private address only:
#   1. the local cluster of tests/tooling/cluster with one node (containerd, kubelet, scheduler,
#      kube-proxy): Pods really run; reused when `make cluster-up NODE=1` already started it;
#   2. the project's images (shards-operator, shards-worker, shards-example-sheep) built with
#      buildah on a local base (cached: `make images`) and loaded into the node's containerd;
#   3. the embedded MongoDB (NX-27017) on the node's address, where Pods reach the host;
#   4. helm install of the chart at the repository root: the CRD, the operator Deployment (its
#      own ServiceAccount and least-privilege RBAC) and a pool of two sheep workers;
#   5. examples/kubernetes/ applied to namespace shards-demo: one of them waits for a confirmation,
#      which the demo then gives; a live table until all have ended.
# Everything it starts it stops again (helm uninstall, processes by pid), also on Ctrl-C or a
# failure: the release's Pods first, then the server, then the cluster. The operator's and the
# workers' logs (to their Pods' end) and the server's stay in .shards/demo/; on a failure the
# server's own log and data too. Exits non-zero unless every process ends Done.
# The same without Kubernetes, through the `shards` CLI: examples/demo-cli.sh (`make demo-cli`).
set -euo pipefail
cd "$(dirname "$0")/.."

NS=shards-demo                # the demo's namespace; also the scope of resources without spec.scope
SYSTEM_NS=shards-system       # where the chart runs the operator and the workers
RELEASE=shards
# Both operator replicas (one leads, the other stands by): their logs, each line prefixed by its Pod.
OPERATOR_PODS="app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=operator"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
SHARDS=.venv/bin/shards
PY=(env PYTHONPATH=tests .venv/bin/python)
CLUSTER=("${PY[@]}" -m tooling.cluster)
WATCH_TIMEOUT=120             # seconds the live view waits for everything to end
work=.shards/demo

rm -rf "$work" && mkdir -p "$work"
started_cluster=""            # what the demo started, to stop at the end
mongo_pid=""
followers=()                  # `kubectl logs -f` of the operator and the workers
installed=""
finished=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Our child $1 still runs (a zombie, exited but not yet reaped, does not count).
alive() { local stat; stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]; }

# Stop our child $1: SIGTERM, a bounded wait (10 s), SIGKILL, reap. The pid stays ours until
# reaped, so no other process can be signalled.
stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do alive "$1" || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Bounded wait ($1 seconds) until no Pod of the release is left, terminating ones included.
wait_pods_gone() {
  local pods
  for _ in $(seq $(($1 * 2))); do
    pods=$(kubectl get pods -n "$SYSTEM_NS" -l "app.kubernetes.io/instance=$RELEASE" -o name 2>/dev/null)
    [ -z "$pods" ] && return 0
    sleep 0.5
  done
  echo "Pods of $RELEASE still there after $1 s; stopping the server anyway:" $pods >&2
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  if [ -z "$finished" ] && [ -n "$installed" ]; then
    echo >&2; echo "demo failed or interrupted (exit $status); the last operator and worker log lines:" >&2
    kubectl logs -n "$SYSTEM_NS" -l "$OPERATOR_PODS" --prefix --tail=15 >&2
    kubectl logs -n "$SYSTEM_NS" -l app.kubernetes.io/component=worker --tail=10 --prefix >&2
  fi
  say "cleaning up"
  local since=$SECONDS
  if [ -n "$installed" ] && [ "${#followers[@]}" = 0 ]; then   # the Pods' logs, if not followed
    kubectl logs -n "$SYSTEM_NS" -l "$OPERATOR_PODS" --prefix >"$work/operator.log" 2>&1
    kubectl logs -n "$SYSTEM_NS" -l app.kubernetes.io/component=worker --prefix --tail=-1 >"$work/workers.log" 2>&1
  fi
  if [ -n "$installed" ]; then
    # The resources go while the operator still runs (its finalizer lets them go), then the release.
    kubectl delete shp --all -n "$NS" --timeout=40s || delete_namespace
    helm uninstall "$RELEASE" -n "$SYSTEM_NS" --wait --timeout 90s
  fi
  delete_namespace --wait=false
  kubectl delete namespace "$SYSTEM_NS" --wait=false --ignore-not-found >/dev/null 2>&1
  # helm's --wait covers the Deployments, not their Pods: the workers and the operator end while
  # the server is still up (a worker records its runs and leaves the registry), then the server.
  [ -n "$installed" ] && wait_pods_gone 60
  for pid in "${followers[@]}"; do stop_pid "$pid"; done   # their Pods are gone: they have ended
  stop_pid "$mongo_pid"
  if [ -n "$started_cluster" ]; then
    "${CLUSTER[@]}" down
  fi
  echo "cleaned up in $((SECONDS - since)) s"
  if [ "$status" = 0 ]; then
    rm -rf "$work/mongo"
    echo "logs: $work/"
  else
    echo "demo failed (exit $status); logs kept in $work/ (the server's own log in $work/mongo/)" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# Delete the demo namespace ("$@": kubectl delete options). With no operator left for what is in
# it, drop the operator's finalizers first, or the deletion would wait forever.
delete_namespace() {
  kubectl get namespace "$NS" >/dev/null 2>&1 || return 0
  for shp in $(kubectl get shp -n "$NS" -o name 2>/dev/null); do
    kubectl patch "$shp" -n "$NS" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null
  done
  kubectl delete namespace "$NS" "$@"
}

# -- 1. the cluster --------------------------------------------------------------------------
say "1. local Kubernetes cluster with one node"
if "${CLUSTER[@]}" status >/dev/null 2>&1; then
  echo "reusing the running one (make cluster-up); the demo adds a node if it has none, and leaves it running"
  "${PY[@]}" -c 'from tooling.cluster import add_node, running; add_node(running())'
else
  started_cluster=yes   # set first: an interrupted start is stopped too
  "${CLUSTER[@]}" up --node
fi
eval "$("${CLUSTER[@]}" env)"   # KUBECONFIG (the admin) and PATH (the pinned kubectl and helm)
kubectl get nodes -o wide | sed 's/^/  /'
NODE_IP=$("${PY[@]}" -c 'from tooling.cluster import running_node; print(running_node().ip)')

# -- 2. images -------------------------------------------------------------------------------
say "2. the images, built here with buildah (cached) and loaded into the node's containerd"
"${PY[@]}" - <<'PYTHON'
from tooling.cluster import running_node
from tooling.images import image_archives

node = running_node()
for image, archive in image_archives().items():
    node.load_image(archive)
    print(f"  {image}")
PYTHON

# -- 3. MongoDB ------------------------------------------------------------------------------
port=$(.venv/bin/python -c 'from shards_store.embedded import free_port; print(free_port())')
MONGO="mongodb://${NODE_IP}:${port}/shards-demo"
say "3. embedded MongoDB (NX-27017) on the node address ${NODE_IP}:${port}"
# In a session of its own (setsid: the same pid, no fork, in a script): a Ctrl-C reaches this
# script, whose cleanup stops the server last, and not the server at once (NX-27017 exits on
# SIGINT) while the worker Pods still need it to record their ends.
setsid "$SHARDS" mongo --host "$NODE_IP" --port "$port" --data "$work/mongo" >"$work/mongo.log" 2>&1 &
mongo_pid=$!
for try in $(seq 100); do   # bounded: 10 s
  .venv/bin/python -c "import socket; socket.create_connection(('$NODE_IP', $port), 0.2)" 2>/dev/null && break
  [ "$try" = 100 ] && { echo "nothing listens on $NODE_IP:$port" >&2; exit 1; }
  sleep 0.1
done

# -- 4. helm install -------------------------------------------------------------------------
if kubectl get namespace "$NS" >/dev/null 2>&1; then
  echo "removing what an earlier demo left in namespace $NS"
  delete_namespace --timeout=90s
fi
kubectl create namespace "$NS" >/dev/null
say "4. helm install $RELEASE . -n $SYSTEM_NS (the operator and two sheep workers, as Pods)"
# --scope-grant: examples/process-args.yaml uses `scope: farm`; a namespace may only use the
# scope of its own name unless the operator grants it more. statusInterval 0.5: a livelier table.
installed=yes
helm install "$RELEASE" . -n "$SYSTEM_NS" --create-namespace \
  --set mongo.uri="$MONGO" \
  --set "operator.namespaces={$NS}" --set "operator.scopeGrants={$NS=farm}" --set-json operator.statusInterval=0.5 \
  --set operator.image.tag="$VERSION" --set operator.image.pullPolicy=Never \
  --set 'workers[0].name=default' --set 'workers[0].app=sheep:app' --set 'workers[0].replicas=2' \
  --set 'workers[0].concurrency=2' --set 'workers[0].image.repository=shards-example-sheep' \
  --set "workers[0].image.tag=$VERSION" --set 'workers[0].image.pullPolicy=Never'
kubectl rollout status -n "$SYSTEM_NS" "deploy/$RELEASE-operator" --timeout=120s
kubectl rollout status -n "$SYSTEM_NS" "deploy/$RELEASE-worker-default" --timeout=120s
# The Pods' logs into $work, followed to the Pods' end, so their shutdown is in them too.
setsid kubectl logs -n "$SYSTEM_NS" -f -l "$OPERATOR_PODS" --prefix >"$work/operator.log" 2>&1 &
followers+=($!)
setsid kubectl logs -n "$SYSTEM_NS" -f -l app.kubernetes.io/component=worker --prefix --tail=-1 \
  >"$work/workers.log" 2>&1 &
followers+=($!)
kubectl get pods -n "$SYSTEM_NS" -o wide | sed 's/^/  /'
for try in $(seq 100); do   # bounded: about 20 s
  [ "$("$SHARDS" pools --mongo "$MONGO" -o json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin).get("default", {}).get("workers", 0))')" = 2 ] && break
  [ "$try" = 100 ] && { echo "the worker Pods did not register" >&2; exit 1; }
  sleep 0.2
done
"$SHARDS" workers --mongo "$MONGO"

# -- 5. the processes ------------------------------------------------------------------------
say "5. kubectl apply -n $NS -f examples/kubernetes/"
kubectl apply -n "$NS" -f examples/kubernetes/
echo "Scopes shards-demo and farm are new: the operator first has a worker define them from the"
echo "app's catalog (the resources wait, Idle, a few seconds), then launches. butcher-sheep has a"
echo "warning: with 'confirm: false' it is not launched, it waits for a confirmation."
watch_until "butcher-sheep waits for a confirmation" awaiting_confirmation 90
echo
echo "butcher-sheep is waiting:"
kubectl get shp butcher-sheep -n "$NS" \
  -o jsonpath='  condition {.status.conditions[?(@.type=="Waiting")].type}={.status.conditions[?(@.type=="Waiting")].status}, reason {.status.conditions[?(@.type=="Waiting")].reason}: {.status.conditions[?(@.type=="Waiting")].message}{"\n"}'

say "6. confirm it: kubectl patch shp butcher-sheep --type merge -p '{\"spec\":{\"confirm\":true}}'"
kubectl patch shp butcher-sheep -n "$NS" --type merge -p '{"spec":{"confirm":true}}'
watch_until "every process has ended" all_ended "$WATCH_TIMEOUT"

# -- 7. the result ---------------------------------------------------------------------------
say "7. kubectl get shp -n $NS -o wide"
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
