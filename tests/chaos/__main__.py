"""`PYTHONPATH=tests python -m chaos`: the full chaos run; exit 1 when anything was lost,
duplicated or stuck, a run ended otherwise than it must, or a schedule's nominal time fired twice
or went unaccounted for."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from chaos.config import ChaosConfig, Fault
from chaos.suite import run_chaos


def parse_args(argv: list[str]) -> ChaosConfig:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--launches", type=int, default=defaults.launches)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--scopes", type=int, default=defaults.scopes)
    parser.add_argument("--lease", type=float, default=defaults.lease)
    parser.add_argument("--heartbeat", type=float, default=defaults.heartbeat)
    parser.add_argument("--duration", type=float, default=defaults.duration,
                        help="seconds over which launches and faults are spread")
    parser.add_argument("--faults", default=",".join(f.value for f in Fault),
                        help="comma-separated fault kinds to inject (default: all)")
    parser.add_argument("--fault-scale", type=float, default=1.0,
                        help="multiply the default number of each fault")
    parser.add_argument("--no-schedules", action="store_true",
                        help="create no schedules (by default one per overlap policy fires throughout)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary directory")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        enabled = {Fault(name.strip()) for name in args.faults.split(",") if name.strip()}
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    return ChaosConfig(
        seed=args.seed, launches=args.launches, workers=args.workers, concurrency=args.concurrency,
        scopes=args.scopes, lease=args.lease, heartbeat=args.heartbeat, duration=args.duration,
        faults={fault: round(count * args.fault_scale) for fault, count in defaults.faults.items()
                if fault in enabled},
        schedules=not args.no_schedules, workdir=args.workdir,
    )


def main(argv: list[str] | None = None) -> int:
    report = run_chaos(parse_args(sys.argv[1:] if argv is None else argv))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
