"""Load the application's shards.App from `module:attribute` or `path/to/file.py:attribute`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from shards.app import App
from shards.errors import InvalidDefinition, ShardsError

DEFAULT_ATTRIBUTE = "app"  # `shards worker myapp` means myapp:app


def load_app(spec: str) -> App:
    target, sep, attribute = spec.rpartition(":") if ":" in spec else (spec, ":", DEFAULT_ATTRIBUTE)
    if not sep or not target or not attribute:
        raise ShardsError(f"APP must be module[:attribute] or path/to/file.py[:attribute], got {spec!r}")
    try:
        module = _import_file(Path(target)) if target.endswith(".py") else _import_module(target)
    except InvalidDefinition as error:
        raise ShardsError(f"invalid catalog in {target}: {error}") from error
    except ShardsError:
        raise
    except Exception as error:  # the app's own import failed: say why in one line
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ShardsError(f"cannot import {target}: {type(error).__name__}: {detail}") from error
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        found = "nothing" if app is None else type(app).__name__
        raise ShardsError(f"{spec} is not a shards.App (found {found})")
    return app


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ShardsError(f"no such file: {path}")
    name = f"shards_app_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ShardsError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _import_module(name: str) -> ModuleType:
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the working directory import
    return importlib.import_module(name)
