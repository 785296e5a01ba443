"""Container images for Shards, built locally with buildah on a debootstrap base (no registry).

CLI: ``PYTHONPATH=tests python -m tooling.images {build,context,archives,base}``; see
deploy/images/README.md. Cache: ``$SHARDS_IMAGES_CACHE`` (default ``~/.cache/shards/images``).
"""

from ._common import ImageError, buildah_cmd, buildah_env, cache_root, can_build, project_version
from .base import ensure_base
from .builder import IMAGES, Result, build, export_context, image_archives, refs

__all__ = [
    "IMAGES",
    "ImageError",
    "Result",
    "build",
    "buildah_cmd",
    "buildah_env",
    "cache_root",
    "can_build",
    "ensure_base",
    "export_context",
    "image_archives",
    "project_version",
    "refs",
]
