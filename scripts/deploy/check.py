"""Validate the deployment manifests offline (``make deploy-check``; a test runs it too).

    python -m scripts.deploy.check                    # deploy/k8s and deploy/kserve
    python -m scripts.deploy.check --deploy DIR       # another folder laid out the same way

- deploy/k8s, a kustomize base, must render: ``kubectl kustomize`` when kubectl is on PATH, else the
  part of kustomize the base uses (resources and images), done here.
- Every core resource is validated by kubernetes-validate against Kubernetes KUBERNETES_VERSION,
  strictly: a misspelled field fails, as with ``kubectl apply --validate=strict``.
- The InferenceService is validated against the schema of KServe's CRD (deploy/kserve/schema/),
  made as strict: a field the schema does not name fails.
- The resources must fit together: selectors find the pods, the HPA its Deployment, named ports exist.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.34"
ISVC_SCHEMA = Path("kserve", "schema", "inferenceservice-v1beta1.json")
# The kustomization fields the built-in renderer implements, and kustomize's others (they need kubectl).
KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "images"}
KUSTOMIZE_OTHER_KEYS = {
    "bases", "buildMetadata", "commonAnnotations", "commonLabels", "components", "configMapGenerator",
    "configurations", "crds", "generatorOptions", "generators", "helmCharts", "labels", "metadata",
    "namePrefix", "nameSuffix", "namespace", "openapi", "patches", "patchesJson6902", "patchesStrategicMerge",
    "replacements", "replicas", "secretGenerator", "sortOptions", "transformers", "validators", "vars",
}  # fmt: skip


class CheckError(Exception):
    """A manifest problem; the message is one line for the user."""


# ---- loading -------------------------------------------------------------


def load_documents(path: Path) -> list[dict]:
    """The non-empty YAML documents of ``path``; each must be a mapping."""
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise CheckError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    for doc in documents:
        if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
            raise CheckError(f"{path}: every document must be a mapping with apiVersion and kind")
    return documents


def identity(doc: dict) -> tuple:
    return doc.get("kind"), (doc.get("metadata") or {}).get("name")


def label(doc: dict) -> str:
    return "{}/{}".format(*identity(doc))


# ---- kustomize -----------------------------------------------------------


def render_kustomize(base: Path, renderer: str = "auto") -> tuple[list[dict], str]:
    """The resources ``kustomize build base`` produces, and the renderer that made them."""
    if renderer == "kubectl" or (renderer == "auto" and shutil.which("kubectl")):
        return render_with_kubectl(base), "kubectl kustomize"
    return render_builtin(base), "built-in renderer"


def render_with_kubectl(base: Path) -> list[dict]:
    if not shutil.which("kubectl"):
        raise CheckError("kubectl is not on PATH: use --renderer builtin")
    result = subprocess.run(["kubectl", "kustomize", str(base)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        # kubectl logs through klog: keep the error itself, `err="..."`.
        if 'err="' in message:
            message = message.split('err="', 1)[1].removesuffix('"').replace('\\"', '"')
        raise CheckError(f"{base / 'kustomization.yaml'}: kubectl kustomize failed: {message}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def render_builtin(base: Path) -> list[dict]:
    """kustomize's ``resources`` (files) and ``images`` transformer, refusing any other feature."""
    path = base / "kustomization.yaml"
    if not path.is_file():
        raise CheckError(f"{base}: no kustomization.yaml")
    kustomization = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(kustomization) - KUSTOMIZE_KEYS - KUSTOMIZE_OTHER_KEYS)
    if unknown:
        raise CheckError(f"{path}: unknown field {unknown[0]!r}")
    unsupported = sorted(set(kustomization) - KUSTOMIZE_KEYS)
    if unsupported:
        raise CheckError(f"{path}: {', '.join(unsupported)}: not known to the built-in renderer (install kubectl)")
    documents = []
    for entry in kustomization.get("resources", []):
        if not (base / entry).is_file():
            raise CheckError(f"{path}: resource {entry} is not a file in {base}")
        documents += load_documents(base / entry)
    for image in kustomization.get("images", []):
        for container in _containers(documents):
            container["image"] = _retag(container["image"], image)
    return documents


def _containers(node):
    """Every container and init container (a dict with an image) anywhere in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict) and "image" in c)
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _retag(reference: str, image: dict) -> str:
    """``reference`` after one kustomize ``images`` entry (newName, newTag, digest)."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    tag = ""
    if ":" in name[slash + 1 :]:
        name, tag = name.rsplit(":", 1)
    if name != image.get("name"):
        return reference
    name = image.get("newName", name)
    if "digest" in image:
        return f"{name}@{image['digest']}"
    tag = image.get("newTag", tag)
    return f"{name}:{tag}" if tag else f"{name}@{digest}" if digest else name


# ---- validation ----------------------------------------------------------


def validate_core(doc: dict, version: str) -> list[str]:
    """Strict kubernetes-validate; one message per problem found (it reports the first)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{_json_path(error.absolute_path)}: {error.message}"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.utils.VersionNotSupportedError) as error:
        return [error.message]
    return []


def strict_schema(node):
    """A CRD's structural schema as JSON Schema that refuses unknown fields, as the API server's
    strict field validation does (objects with properties are closed unless they preserve unknown fields)."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: strict_schema(value) for key, value in node.items()}
    if schema.pop("x-kubernetes-int-or-string", False):
        schema.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    open_object = schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
    if "properties" in schema and not open_object:
        schema["additionalProperties"] = False
    return schema


def load_isvc_validator(deploy: Path) -> jsonschema.protocols.Validator:
    path = deploy / ISVC_SCHEMA
    if not path.is_file():
        raise CheckError(f"no InferenceService schema at {path} (see {path.parent}/README.md)")
    schema = strict_schema(json.loads(path.read_text()))
    return jsonschema.Draft7Validator(schema)


def validate_isvc(doc: dict, validator, version: str) -> list[str]:
    """Every schema error of an InferenceService, plus its metadata checked as Kubernetes ObjectMeta."""
    errors = [
        f"{_json_path(error.absolute_path)}: {error.message}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    # The CRD leaves metadata open; ObjectMeta is the same for every kind, so a ConfigMap carries it.
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})}
    return errors + validate_core(carrier, version)


def _json_path(path) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "(top level)"


# ---- references between resources ---------------------------------------


def check_references(docs: list[dict]) -> list[tuple[dict, str]]:
    """Selectors find the Deployment's pods, the HPA its target, named ports a container port."""
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    pods = {name: d["spec"]["template"] for name, d in deployments.items()}
    errors = []
    for name, deployment in deployments.items():
        if not _matches(deployment["spec"]["selector"].get("matchLabels", {}), pods[name]):
            errors.append((deployment, "spec.selector does not match the pod template's labels"))
        ports = {p.get("name") for c in pods[name]["spec"]["containers"] for p in c.get("ports", [])}
        for container in pods[name]["spec"]["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                for kind in ("httpGet", "tcpSocket", "grpc"):
                    port = container.get(probe, {}).get(kind, {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        errors.append((deployment, f"{probe} uses port {port!r}, which no container names"))
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
            field = "podSelector" if doc["kind"] == "NetworkPolicy" else "selector"
            selector = spec.get(field, {})
            targets = _selected(selector if doc["kind"] == "Service" else selector.get("matchLabels", {}), pods)
            if not targets:
                errors.append((doc, f"spec.{field} matches no Deployment's pods"))
            ports = [p.get("targetPort") for p in spec.get("ports", [])]
            ports += [p.get("port") for rule in spec.get("ingress", []) for p in rule.get("ports", [])]
            names = {p.get("name") for t in targets for c in pods[t]["spec"]["containers"] for p in c.get("ports", [])}
            for port in ports:
                if targets and isinstance(port, str) and port not in names:
                    errors.append((doc, f"port {port!r} is not a named port of the selected pods"))
        elif doc["kind"] == "HorizontalPodAutoscaler":
            target = spec.get("scaleTargetRef", {})
            if target.get("kind") != "Deployment" or target.get("name") not in deployments:
                errors.append((doc, f"spec.scaleTargetRef names no Deployment here ({target.get('name')!r})"))
    return errors


def _matches(labels: dict, pod: dict) -> bool:
    pod_labels = pod.get("metadata", {}).get("labels", {})
    return bool(labels) and all(pod_labels.get(key) == value for key, value in labels.items())


def _selected(labels: dict, pods: dict) -> list[str]:
    return [name for name, pod in pods.items() if _matches(labels, pod)]


# ---- the whole check -----------------------------------------------------


def check(deploy: Path, version: str = KUBERNETES_VERSION, renderer: str = "auto") -> tuple[list[str], list[str]]:
    """Check ``deploy``/k8s and ``deploy``/kserve; (what passed, one line per error)."""
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
                validator = validator or load_isvc_validator(deploy)
                found, against = validate_isvc(doc, validator, version), "KServe's InferenceService schema"
            else:
                found, against = validate_core(doc, version), f"Kubernetes {version}"
            errors += [f"{path}: {label(doc)}: {message}" for message in found]
            if not found:
                passed.append(f"{label(doc)} is valid for {against}")
    return passed, errors


def extract_crd_schema(crd: Path, version: str = "v1beta1") -> dict:
    """The openAPIV3Schema of one version of a CustomResourceDefinition file."""
    for doc in load_documents(crd):
        for served in doc.get("spec", {}).get("versions", []):
            if doc["kind"] == "CustomResourceDefinition" and served.get("name") == version:
                return served["schema"]["openAPIV3Schema"]
    raise CheckError(f"{crd}: no CustomResourceDefinition with a {version} schema")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deploy", type=Path, default=ROOT / "deploy", help="folder with k8s/ and kserve/")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION, help="Kubernetes schema version")
    parser.add_argument("--renderer", choices=("auto", "kubectl", "builtin"), default="auto", help="kustomize renderer")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument(
        "--extract-crd", type=Path, metavar="CRD_YAML", help="print the v1beta1 schema of a CRD file as JSON and exit"
    )
    args = parser.parse_args(argv)
    try:
        if args.extract_crd:
            print(json.dumps(extract_crd_schema(args.extract_crd), separators=(",", ":")))
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
