"""Validate the deployment manifests offline (``make deploy-check``; a test runs it too).

    python -m scripts.deploy.check                    # deploy/k8s and deploy/kserve
    python -m scripts.deploy.check --deploy DIR       # another folder laid out the same way

- deploy/k8s, a kustomize base, must render: ``kubectl kustomize`` when kubectl is on PATH, else the
  part of kustomize the base uses (resources and images), done here.
- Every core resource is validated by kubernetes-validate against Kubernetes KUBERNETES_VERSION,
  strictly: a misspelled field fails, as with ``kubectl apply --validate=strict``.
- The InferenceService is validated against the schema of KServe's CRD (deploy/kserve/schema/),
  made as strict: a field the schema does not name fails.
- The Prometheus Operator's resources in deploy/monitoring are validated against their CRD schemas
  (deploy/monitoring/schema/), as strictly; they must select the Service and pods of deploy/k8s, and
  the PrometheusRule must be what deploy/monitoring/rules.yml renders to.
- The resources must fit together: selectors find the pods, the HPA its Deployment, named ports exist.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from scripts.deploy.kustomize import render_builtin, render_kustomize, render_with_kubectl
from scripts.deploy.manifests import CheckError, identity, label, load_documents
from scripts.deploy.monitoring import check_monitoring
from scripts.deploy.references import check_references
from scripts.deploy.schemas import extract_crd_schema, load_crd_validator, validate_core, validate_custom

__all__ = ["ROOT", "check", "main", "render_builtin", "render_with_kubectl"]

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.34"
ISVC_SCHEMA = Path("kserve", "schema", "inferenceservice-v1beta1.json")


def check(deploy: Path, version: str = KUBERNETES_VERSION, renderer: str = "auto") -> tuple[list[str], list[str]]:
    """Check ``deploy``/k8s, ``deploy``/kserve and ``deploy``/monitoring; (what passed, one line per error)."""
    passed, errors = [], []
    k8s, kserve = deploy / "k8s", deploy / "kserve"

    sources = {}  # (kind, name) -> the file it came from, to point errors at files
    for path in sorted(k8s.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            sources.update({identity(d): path for d in load_documents(path)})
    rendered, how = render_kustomize(k8s, renderer)
    listed = {identity(d) for d in rendered}
    for key, path in sources.items():
        if key not in listed:
            errors.append(f"{path}: {key[0]}/{key[1]} is not in {k8s}/kustomization.yaml's resources")
    passed.append(f"{k8s} renders ({how}): {len(rendered)} resources")
    for doc in rendered:
        where = sources.get(identity(doc), k8s)
        found = validate_core(doc, version)
        errors += [f"{where}: {label(doc)}: {message}" for message in found]
        if not found:
            passed.append(f"{label(doc)} is valid for Kubernetes {version}")
    # References are looked up only in resources that are valid, hence well-formed.
    if not errors:
        errors += [f"{sources.get(identity(doc), k8s)}: {label(doc)}: {why}" for doc, why in check_references(rendered)]

    validator = None
    for path in sorted(kserve.glob("*.yaml")):
        for doc in load_documents(path):
            if doc["kind"] == "InferenceService":
                validator = validator or load_crd_validator(deploy / ISVC_SCHEMA, "InferenceService")
                found, against = validate_custom(doc, validator, version), "KServe's InferenceService schema"
            else:
                found, against = validate_core(doc, version), f"Kubernetes {version}"
            errors += [f"{path}: {label(doc)}: {message}" for message in found]
            if not found:
                passed.append(f"{label(doc)} is valid for {against}")

    if (deploy / "monitoring").is_dir():
        more_passed, more_errors = check_monitoring(deploy / "monitoring", rendered, version)
        passed += more_passed
        errors += more_errors
    return passed, errors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deploy", type=Path, default=ROOT / "deploy", help="folder with k8s/ and kserve/")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION, help="Kubernetes schema version")
    parser.add_argument("--renderer", choices=("auto", "kubectl", "builtin"), default="auto", help="kustomize renderer")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument(
        "--extract-crd", type=Path, metavar="CRD_YAML", help="print one version's schema of a CRD file as JSON and exit"
    )
    parser.add_argument("--crd-version", default="v1beta1", help="with --extract-crd: the version (v1beta1)")
    args = parser.parse_args(argv)
    try:
        if args.extract_crd:
            print(json.dumps(extract_crd_schema(args.extract_crd, args.crd_version), separators=(",", ":")))
            return 0
        if not args.deploy.is_dir():
            raise CheckError(f"no folder {args.deploy}")
        passed, errors = check(args.deploy, args.kubernetes_version, args.renderer)
    except (CheckError, OSError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        for line in passed:
            print(f"ok: {line}")
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
