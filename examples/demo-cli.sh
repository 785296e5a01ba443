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
mongo_pid=""
worker_pids=()

# Our child $1 still runs (a zombie, exited but not yet reaped, does not count).
alive() { local stat; stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]; }

# Stop our children "$@": SIGTERM to all, a bounded wait (10 s) for all, SIGKILL to any left,
# reap. A pid stays ours until reaped, so no other process can be signalled.
stop_pids() {
  local pid
  [ "$#" -gt 0 ] || return 0
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local left=no
    for pid in "$@"; do alive "$pid" && left=yes; done
    [ "$left" = yes ] || break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}

# The workers first, while the server is up (they record what they were doing and leave the
# registry), then the server. The logs go on success and stay, with their path, on failure.
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  stop_pids "${worker_pids[@]}"
  [ -n "$mongo_pid" ] && stop_pids "$mongo_pid"
  if [ "$status" = 0 ]; then
    rm -rf "$work"
  else
    echo "demo failed (exit $status); logs kept in $work/" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Our children run in sessions of their own (setsid: the same pid, no fork, in a script): a Ctrl-C
# reaches only this script, whose cleanup stops them in order, and not the server and the workers
# at once (the server would go first: the workers could not record their ends, 15 s of retries).
echo "== embedded MongoDB (NX-27017) on 127.0.0.1:${port}"
setsid "$SHARDS" mongo --port "$port" --data "$work/mongo" >"$work/mongo.log" 2>&1 &
mongo_pid=$!
for try in $(seq 100); do   # bounded: 10 s
  .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  [ "$try" = 100 ] && { echo "nothing listens on 127.0.0.1:$port" >&2; exit 1; }
  sleep 0.1
done

echo "== two workers for examples/sheep.py:app"
for n in 1 2; do
  setsid "$SHARDS" worker examples/sheep.py:app --concurrency 2 >"$work/worker-$n.log" 2>&1 &
  worker_pids+=($!)
done

for try in $(seq 150); do   # bounded: 15 s for both to register (a define with no live worker exits 6)
  [ "$("$SHARDS" workers -o json | .venv/bin/python -c 'import json, sys; print(len(json.load(sys.stdin)))')" = 2 ] && break
  [ "$try" = 150 ] && { echo "the workers did not register; see $work/worker-*.log" >&2; exit 1; }
  sleep 0.1
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
