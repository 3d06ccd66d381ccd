"""Schema validation: core resources by kubernetes-validate, custom resources by their vendored CRD schemas.

Both are strict, as ``kubectl apply --validate=strict``: a field the schema does not name fails.
"""

import json
from pathlib import Path

import jsonschema
import kubernetes_validate

from scripts.deploy.manifests import CheckError, json_path, load_documents


def validate_core(doc: dict, version: str) -> list[str]:
    """Strict kubernetes-validate; one message per problem found (it reports the first)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{json_path(error.absolute_path)}: {error.message}"]
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


def load_crd_validator(path: Path, kind: str) -> jsonschema.protocols.Validator:
    """A strict validator for the vendored CRD schema at ``path``."""
    if not path.is_file():
        raise CheckError(f"no {kind} schema at {path} (see {path.parent}/README.md)")
    schema = strict_schema(json.loads(path.read_text()))
    return jsonschema.Draft7Validator(schema)


def validate_custom(doc: dict, validator, version: str) -> list[str]:
    """Every schema error of a custom resource, plus its metadata checked as Kubernetes ObjectMeta."""
    errors = [
        f"{json_path(error.absolute_path)}: {error.message}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    # The CRD leaves metadata open; ObjectMeta is the same for every kind, so a ConfigMap carries it.
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})}
    return errors + validate_core(carrier, version)


def extract_crd_schema(crd: Path, version: str = "v1beta1") -> dict:
    """The openAPIV3Schema of one version of a CustomResourceDefinition file."""
    for doc in load_documents(crd):
        for served in doc.get("spec", {}).get("versions", []):
            if doc["kind"] == "CustomResourceDefinition" and served.get("name") == version:
                return served["schema"]["openAPIV3Schema"]
    raise CheckError(f"{crd}: no CustomResourceDefinition with a {version} schema")
