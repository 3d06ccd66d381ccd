"""``kustomize build`` of deploy/k8s: kubectl's when it is on PATH, else the part of kustomize the base uses."""

import shutil
import subprocess
from pathlib import Path

import yaml

from scripts.deploy.manifests import CheckError, load_documents

# The kustomization fields the built-in renderer implements, and kustomize's others (they need kubectl).
KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "images"}
KUSTOMIZE_OTHER_KEYS = {
    "bases", "buildMetadata", "commonAnnotations", "commonLabels", "components", "configMapGenerator",
    "configurations", "crds", "generatorOptions", "generators", "helmCharts", "labels", "metadata",
    "namePrefix", "nameSuffix", "namespace", "openapi", "patches", "patchesJson6902", "patchesStrategicMerge",
    "replacements", "replicas", "secretGenerator", "sortOptions", "transformers", "validators", "vars",
}  # fmt: skip


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
