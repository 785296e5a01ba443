"""python -m tooling.promtool: build the pinned promtool if needed, print its path."""

from __future__ import annotations

from tooling.promtool import ensure

print(ensure())
