"""What one read of a process record costs on the embedded server as the records grow (issue 24):
a fresh NX-27017 server, the store's own indexes, N records over 100 scopes, then the time of the
store's point reads a launch makes: a process record by its key (scope, process) and a history
entry by its run id. Figure 10 (bench/operator_scale.py) needs one record per resource, so at
10,000 resources every launch, start, progress and end write pays the first.

    .venv/bin/python bench/record_lookups.py [--sizes 1000,5000,20000] [--reads 50]

Prints one JSON object: per size, the mean milliseconds of each read."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import Cluster
from shards.records import ProcessRecord

SCOPES = 100


def mean_ms(read: object, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        read()  # type: ignore[operator]
    return (time.perf_counter() - started) / count * 1000


def measure(size: int, reads: int) -> dict[str, float]:
    with Cluster("lookups") as cluster:
        store = cluster.ctl.store
        store.ensure_indexes()
        per_scope = size // SCOPES
        for scope in range(SCOPES):
            definitions = [(f"p-{n}", {"name": f"P {n}"}) for n in range(per_scope)]
            store.processes.define_many(f"s{scope}", definitions)
        middle = (f"s{SCOPES // 2}", f"p-{per_scope // 2}")
        record = store.processes.get(*middle)
        assert isinstance(record, ProcessRecord)
        return {
            "records": float(size),
            "process_record_by_key_ms": mean_ms(lambda: store.processes.get(*middle), reads),
            "history_entry_by_run_id_ms": mean_ms(lambda: store.runs.get("k8s-missing-1"), reads),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000", help="record counts, comma-separated")
    parser.add_argument("--reads", type=int, default=50, help="reads timed per size")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    print(json.dumps([measure(size, args.reads) for size in sizes], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
