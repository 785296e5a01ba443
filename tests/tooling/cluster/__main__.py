"""python -m tooling.cluster {tools,up,down,status,env,kubectl,helm}"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import control_plane, tools
from ._common import ClusterError, configure_cli_logging, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tools", help="build the pinned binaries (no-op when cached)")
    sub.add_parser("bin-dir", help="print the folder of the pinned binaries")
    up = sub.add_parser("up", help="start etcd + kube-apiserver (+ controller-manager)")
    up.add_argument("--no-controller-manager", action="store_true")
    up.add_argument(
        "--node",
        action="store_true",
        default=os.environ.get("SHARDS_CLUSTER_NODE", "") not in ("", "0"),
        help="also a node (containerd, kubelet, scheduler, kube-proxy) so Pods run; "
        "default from SHARDS_CLUSTER_NODE=1",
    )
    sub.add_parser("down", help="stop what 'up' started, undo the node's host changes, delete .cluster/")
    sub.add_parser("status", help="print the state as JSON; exit 3 when not running")
    sub.add_parser("env", help="print shell exports for KUBECONFIG and PATH")
    for tool in ("kubectl", "helm"):
        p = sub.add_parser(tool, help=f"run the pinned {tool} against the running cluster")
        p.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    configure_cli_logging()
    try:
        if args.command == "tools":
            print(tools.ensure_tools())
        elif args.command == "bin-dir":
            print(tools.bin_dir())
        elif args.command == "up":
            if args.node and args.no_controller_manager:
                parser.error("--node needs the controller-manager (ServiceAccounts, ReplicaSets)")
            control_plane.up(with_controller_manager=not args.no_controller_manager, with_node=args.node)
        elif args.command == "down":
            control_plane.down()
        elif args.command == "status":
            info = control_plane.status()
            print(json.dumps(info, indent=2))
            return 0 if info["running"] else 3
        else:
            cluster = control_plane.running()
            if cluster is None:
                log.error("not running; start it with 'make cluster-up'")
                return 3
            if args.command == "env":
                print(f"export KUBECONFIG={cluster.kubeconfig}")
                print(f"export PATH={cluster.bin_dir}:$PATH")
                return 0
            binary = str(cluster.bin_dir / args.command)
            os.execvpe(binary, [binary, *args.args], cluster.env())
    except ClusterError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
