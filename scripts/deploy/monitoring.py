"""deploy/monitoring: the Prometheus Operator's resources against their CRD schemas, and against deploy/k8s.

- ServiceMonitor, PodMonitor and PrometheusRule are validated against the vendored schemas
  (deploy/monitoring/schema/), strictly: a misspelled field fails.
- The ServiceMonitor must select a Service of deploy/k8s by its labels and name one of its ports;
  the PodMonitor must select the Deployment's pods and name one of their container ports.
- prometheusrule.yaml must hold exactly the groups of rules.yml (the one source of the alerts).
"""

from pathlib import Path

import yaml

from scripts.deploy.manifests import CheckError, label, load_documents
from scripts.deploy.schemas import load_crd_validator, validate_custom

SCHEMAS = {
    "ServiceMonitor": "servicemonitor-v1.json",
    "PodMonitor": "podmonitor-v1.json",
    "PrometheusRule": "prometheusrule-v1.json",
}
RULES = "rules.yml"


def check_monitoring(monitoring: Path, rendered: list[dict], version: str) -> tuple[list[str], list[str]]:
    """(what passed, one line per error) for the operator resources in ``monitoring``."""
    passed, errors, validators = [], [], {}
    for path in sorted(monitoring.glob("*.yaml")):
        for doc in load_documents(path):
            kind = doc["kind"]
            if kind not in SCHEMAS:
                errors.append(f"{path}: {label(doc)}: not a Prometheus Operator resource this check knows")
                continue
            if kind not in validators:
                validators[kind] = load_crd_validator(monitoring / "schema" / SCHEMAS[kind], kind)
            found = validate_custom(doc, validators[kind], version)
            if not found:
                found = _targets(doc, rendered) if kind != "PrometheusRule" else _in_sync(doc, monitoring / RULES)
            errors += [f"{path}: {label(doc)}: {message}" for message in found]
            if not found:
                passed.append(f"{label(doc)} is valid for the Prometheus Operator's {kind} schema")
    return passed, errors


def _targets(doc: dict, rendered: list[dict]) -> list[str]:
    """A monitor's selector finds the Service (ServiceMonitor) or pods (PodMonitor), and its ports exist."""
    spec = doc["spec"]
    wanted = spec.get("selector", {}).get("matchLabels", {})
    if doc["kind"] == "ServiceMonitor":
        found = [d for d in rendered if d["kind"] == "Service" and _has(d.get("metadata", {}), wanted)]
        ports = {p.get("name") for d in found for p in d["spec"].get("ports", [])}
        endpoints, what = spec.get("endpoints", []), "Service"
    else:
        found = [d for d in rendered if d["kind"] == "Deployment" and _has(d["spec"]["template"]["metadata"], wanted)]
        containers = [c for d in found for c in d["spec"]["template"]["spec"]["containers"]]
        ports = {p.get("name") for c in containers for p in c.get("ports", [])}
        endpoints, what = spec.get("podMetricsEndpoints", []), "Deployment's pods"
    if not wanted or not found:
        return [f"spec.selector matches no {what} in deploy/k8s"]
    return [f"port {e['port']!r} is not a named port of the {what}" for e in endpoints if e.get("port") not in ports]


def _has(metadata: dict, wanted: dict) -> bool:
    labels = metadata.get("labels", {})
    return all(labels.get(key) == value for key, value in wanted.items())


def _in_sync(doc: dict, rules: Path) -> list[str]:
    if not rules.is_file():
        raise CheckError(f"no {rules}: the PrometheusRule is rendered from it")
    source = yaml.safe_load(rules.read_text()) or {}
    if doc["spec"].get("groups") != source.get("groups"):
        return [f"its groups differ from {rules.name}'s: run `python -m scripts.monitoring.rules`"]
    return []
