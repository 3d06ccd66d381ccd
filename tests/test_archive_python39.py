"""The archive's packages import on Python 3.9: KServe's torchserve-kfs 0.12 image runs that (docs/deploy.md).

No Python 3.9 here, so the check is static: 3.9's grammar, annotations left unevaluated (PEP 563)
wherever they use 3.10's ``X | Y``, and no call that 3.9 refuses at run time.
"""

import ast

import pytest

from scripts.serving.paths import PACKAGES, ROOT

pytestmark = pytest.mark.unit

MODULES = sorted(p for package in PACKAGES for p in (ROOT / package).glob("*.py"))


def has_future_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )


def union_annotations(tree: ast.Module) -> list[int]:
    """Lines of annotations that use ``X | Y``, which 3.9 cannot evaluate."""
    lines = []
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            arguments += [a for a in (node.args.vararg, node.args.kwarg) if a]
            annotations = [a.annotation for a in arguments if a.annotation] + ([node.returns] if node.returns else [])
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(annotation)):
                lines.append(annotation.lineno)
    return lines


def runtime_310_calls(tree: ast.Module) -> list[int]:
    """Lines calling ``zip(..., strict=...)`` or ``isinstance(x, A | B)``: 3.10 only."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "zip" and any(k.arg == "strict" for k in node.keywords):
                lines.append(node.lineno)
            if node.func.id in ("isinstance", "issubclass") and len(node.args) == 2:
                if isinstance(node.args[1], ast.BinOp) and isinstance(node.args[1].op, ast.BitOr):
                    lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_python_39_compatible(path):
    source = path.read_text()
    tree = ast.parse(source, feature_version=(3, 9))  # 3.9's grammar: no match statements and the like
    if union_annotations(tree):
        assert has_future_annotations(tree), f"{path}: X | Y annotations need `from __future__ import annotations`"
    assert not runtime_310_calls(tree), f"{path}: lines {runtime_310_calls(tree)} need Python 3.10"
