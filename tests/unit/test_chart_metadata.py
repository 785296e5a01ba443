"""Chart.yaml's metadata for Artifact Hub: the CRD list is the CRDs of crds/, the examples are
resources of those kinds taken from examples/kubernetes/, and kubeVersion admits no cluster too old
for what the chart installs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = yaml.safe_load((REPO / "Chart.yaml").read_text())
CRDS = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]


def annotation(key: str) -> Any:
    text = CHART["annotations"][f"artifacthub.io/{key}"]
    assert isinstance(text, str), key  # Artifact Hub reads YAML inside the string
    return yaml.safe_load(text)


def crd_of(kind: str) -> dict[str, Any]:
    [crd] = [c for c in CRDS if c["spec"]["names"]["kind"] == kind]
    return crd


def served_version(crd: dict[str, Any]) -> str:
    [version] = [v["name"] for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    return version


def test_the_crds_annotation_lists_exactly_the_crds_folder() -> None:
    assert len(CRDS) == 2
    listed = annotation("crds")
    assert sorted((e["kind"], e["version"], e["name"]) for e in listed) == sorted(
        (c["spec"]["names"]["kind"], served_version(c), c["metadata"]["name"]) for c in CRDS)
    for entry in listed:
        assert set(entry) == {"kind", "version", "name", "displayName", "description"}
        assert entry["displayName"].strip() and entry["description"].strip()


def _example_files() -> list[Any]:
    return [doc for p in sorted((REPO / "examples/kubernetes").rglob("*.yaml"))
            for doc in yaml.safe_load_all(p.read_text()) if doc]


def test_the_examples_are_one_of_each_crd_and_come_from_examples_kubernetes() -> None:
    examples = annotation("crdsExamples")
    assert sorted(e["kind"] for e in examples) == sorted(c["spec"]["names"]["kind"] for c in CRDS)
    files = _example_files()
    for example in examples:
        crd = crd_of(example["kind"])
        assert example["apiVersion"] == f"{crd['spec']['group']}/{served_version(crd)}"
        assert example in files, f"{example['metadata']['name']}: not in examples/kubernetes/"
        [version] = [v for v in crd["spec"]["versions"] if v["name"] == served_version(crd)]
        spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert set(spec_schema.get("required", [])) <= set(example["spec"])
        assert set(example["spec"]) <= set(spec_schema["properties"])


def _rules(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return list(node.get("x-kubernetes-validations", [])) + [r for v in node.values() for r in _rules(v)]
    if isinstance(node, list):
        return [r for v in node for r in _rules(v)]
    return []


def test_kube_version_is_at_least_what_the_chart_uses() -> None:
    match = re.fullmatch(r">=\s*1\.(\d+)\.0-0", CHART["kubeVersion"])
    assert match, CHART["kubeVersion"]  # a lower bound only; "-0" admits providers' pre-release tags
    minimum = int(match.group(1))
    rules = [r for crd in CRDS for r in _rules(crd)]
    templates = "\n".join(p.read_text() for p in (REPO / "templates").glob("*.yaml"))
    pointed = any({"fieldPath", "reason"} & set(rule) for rule in rules)
    needs = {
        "CEL validation rules in the CRDs (on by default)": 25 if rules else 0,
        "fieldPath or reason on a validation rule": 28 if pointed else 0,
        "autoscaling/v2 HorizontalPodAutoscaler": 23 if "apiVersion: autoscaling/v2\n" in templates else 0,
        "policy/v1 PodDisruptionBudget": 21 if "apiVersion: policy/v1\n" in templates else 0,
    }
    assert all(minimum >= n for n in needs.values()), needs
    assert minimum == max(needs.values())  # and no higher than that


def test_the_other_artifact_hub_fields() -> None:
    assert annotation("license") == "MIT"
    assert annotation("operator") is True  # the chart installs an operator
    assert CHART["maintainers"] == [{"name": "Shards maintainers"}]
