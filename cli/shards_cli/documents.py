"""What scripts read: `-o json` and `-o yaml` documents, and the one-object-per-line stream of
`--watch -o json`."""

from __future__ import annotations

import json
import sys
from typing import Any

from shards_cli.app import Output


def emit(value: Any, output: Output) -> None:
    """Print `value` as one JSON or YAML document: plain text, never rich markup or colour
    (rich's print_json took 1.4 s for 1,000 records)."""
    if output is Output.yaml:
        import yaml  # only here: most commands never print YAML

        sys.stdout.write(yaml.safe_dump(value, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def stream(value: Any) -> None:
    """One compact JSON object on one line, flushed at once: `--watch -o json | jq` sees each
    change as it happens."""
    sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
    sys.stdout.flush()
