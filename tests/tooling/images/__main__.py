"""python -m tooling.images {build,context,archives,base,previous}"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import base, builder, previous
from ._common import ImageError, cache_lock, configure_cli_logging, ensure_host_tools, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.images", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="base, wheels, the three images and their archives (no-op if cached)")
    b.add_argument("--only", nargs="*", default=[], metavar="NAME",
                   help="only these images (and what they need)")
    c = sub.add_parser("context", help="write the docker/podman build context (DIR/wheels/)")
    c.add_argument("dir", type=Path)
    sub.add_parser("archives", help="build if needed, then print {image: docker-archive path} as JSON")
    sub.add_parser("base", help="make (or import) only the local base image and print its name")
    p = sub.add_parser("previous", help="the chart and images of an earlier commit (cached), as JSON")
    p.add_argument("commit")
    args = parser.parse_args(argv)
    configure_cli_logging()
    try:
        if args.command == "build":
            results = builder.build(tuple(args.only))
            for r in results:
                print(f"{r.ref:45} {r.action:10} {r.seconds:6.1f}s  {r.archive}")
        elif args.command == "context":
            print(builder.export_context(args.dir))
        elif args.command == "archives":
            print(json.dumps({k: str(v) for k, v in builder.image_archives().items()}, indent=2))
        elif args.command == "previous":
            release = previous.previous_release(args.commit)
            print(json.dumps({"chart": str(release.chart), "tag": release.tag,
                              "archives": {k: str(v) for k, v in release.archives.items()}}, indent=2))
        elif args.command == "base":
            ensure_host_tools()
            with cache_lock():
                print(base.ensure_base())
    except ImageError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
