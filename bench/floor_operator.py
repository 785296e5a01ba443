"""The floor of figure 10 (bench/operator_scale.py): a bare kopf operator, no MongoDB, run as its
own OS process on the same CRD (ShardProcess) and the same token as the Shards operator.

It does exactly one status patch per resource, on create (`status.state = Done`, through kopf's
patch of the handler), and nothing else; an `@kopf.on.resume` no-op handler counts the resources
a (re)started operator has processed. kopf's settings are in the style of Shards' own
(operator/shards_operator/runner.py::configure_kopf): annotations progress storage with a prefix
of its own, Events posted from WARNING only; standalone, namespaces given as globs.

  KUBECONFIG=... python bench/floor_operator.py --namespace 'fl-*' --metrics-port 9100

The metrics port serves plain-text counters (`floor_created_total`, `floor_resumed_total`,
`floor_startup_seconds`): the bench reads them to know when the floor has processed everything.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kopf

GROUP, VERSION, PLURAL = "shards.dev", "v1alpha1", "shardprocesses"
PREFIX = "floor.bench.shards.dev"
STARTED = time.monotonic()
COUNTS = {"created": 0, "resumed": 0}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 16  # as Shards' (unused: the handlers are async)


@kopf.on.create(GROUP, VERSION, PLURAL)
async def created(patch: kopf.Patch, **_: Any) -> None:
    """The one status patch of a resource (kopf sends it when the handler returns)."""
    COUNTS["created"] += 1
    patch.status["state"] = "Done"


@kopf.on.resume(GROUP, VERSION, PLURAL)
async def resumed(**_: Any) -> None:
    COUNTS["resumed"] += 1


class Counters(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = "".join(f"floor_{name}_total {value}\n" for name, value in COUNTS.items())
        body += f"floor_uptime_seconds {time.monotonic() - STARTED:.3f}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # one line per scrape would bury the log
        return


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--namespace", action="append", required=True, help="a namespace or glob (repeatable)"
    )
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = ThreadingHTTPServer(("127.0.0.1", args.metrics_port), Counters)
    threading.Thread(target=server.serve_forever, name="floor-metrics", daemon=True).start()
    asyncio.run(kopf.operator(standalone=True, clusterwide=False, namespaces=args.namespace))


if __name__ == "__main__":
    main()
