"""Loading deployment manifests, and naming them in one-line errors."""

from pathlib import Path

import yaml


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


def json_path(path) -> str:
    """A jsonschema error path as ``spec.containers[0].image``."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "(top level)"
