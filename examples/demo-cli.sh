#!/usr/bin/env bash
# The Shards demo through the `shards` CLI (`make demo-cli`), no Kubernetes: start the embedded
# MongoDB on loopback, two workers, define a scope, launch processes (one with a child, one
# dangerous), watch them finish. Everything it starts it stops again, by pid.
# The Kubernetes path (kubectl apply / kubectl get shp) is examples/demo.sh (`make demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=".venv/bin/shards"
work=$(mktemp -d "${TMPDIR:-/tmp}/shards-demo.XXXXXX")
port=$(.venv/bin/python -c 'from shards_store.embedded import free_port; print(free_port())')
export SHARDS_MONGO_URI="mongodb://127.0.0.1:${port}/demo"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "== embedded MongoDB (NX-27017) on 127.0.0.1:${port}"
"$SHARDS" mongo --port "$port" --data "$work/mongo" >"$work/mongo.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done

echo "== two workers for examples/sheep.py:app"
for n in 1 2; do
  "$SHARDS" worker examples/sheep.py:app --concurrency 2 >"$work/worker-$n.log" 2>&1 &
  pids+=($!)
done

echo "== define the scope 'farm'"
"$SHARDS" define --scope farm
"$SHARDS" list --scope farm

echo "== launch"
"$SHARDS" launch breed-sheep --scope farm --args '{"flock": 6, "pause": 0.3}'
"$SHARDS" launch butcher-sheep --scope farm || echo "(refused without --confirm, as it should be)"
"$SHARDS" launch butcher-sheep --scope farm --confirm
"$SHARDS" status --scope farm --watch --timeout 120

echo; echo "== results"
"$SHARDS" history count-sheep --scope farm
for proc in breed-sheep count-sheep butcher-sheep; do
  state=$("$SHARDS" status "$proc" --scope farm -o json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  echo "$proc: $state"
  [ "$state" = "Done" ] || { echo "demo failed: $proc is $state" >&2; exit 1; }
done
echo "== demo finished: every process is Done"
