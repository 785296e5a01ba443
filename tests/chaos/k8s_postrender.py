"""Helm post-renderer of `make chaos-k8s`: mounts the chaos app's ConfigMap in every worker pod.

The chart has no extra-volume values (an app belongs in its image); the chaos run ships its app
as a ConfigMap instead of building an image. Usage: k8s_postrender.py CONFIGMAP < manifests.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

MOUNT = "/chaos"


def mount_app(document: dict[str, Any], configmap: str) -> dict[str, Any]:
    labels = (document.get("metadata") or {}).get("labels") or {}
    if document.get("kind") != "Deployment" or labels.get("app.kubernetes.io/component") != "worker":
        return document
    pod = document["spec"]["template"]["spec"]
    pod.setdefault("volumes", []).append({"name": "chaos-app", "configMap": {"name": configmap}})
    for container in pod["containers"]:
        container.setdefault("volumeMounts", []).append(
            {"name": "chaos-app", "mountPath": MOUNT, "readOnly": True})
    return document


def main() -> None:
    documents = [doc for doc in yaml.safe_load_all(sys.stdin) if doc]
    yaml.safe_dump_all([mount_app(doc, sys.argv[1]) for doc in documents], sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
