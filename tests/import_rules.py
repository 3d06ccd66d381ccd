"""The serving side's import rule, read from the sources with ``ast`` (nothing is imported).

The serving side is what TorchServe's workers, the serving library and the container need:
``model/``, ``handler/``, ``scripts/serving/`` and ``scripts/cli.py``. It may import the standard
library, itself, and the packages of the distributions ``requirements-serve.txt`` names; never
``train/``, ``tests/`` or the tools beside it in ``scripts/`` (benchmarks, accuracy, deployment
checks, samples, the demo). Imports inside functions count, and so do ``importlib.import_module``,
``__import__`` and ``python -m`` with a constant module name. ``model/`` and ``handler/`` travel in
the model archive without the rest, so they import only each other.
"""

import ast
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVING = ("model", "handler", "scripts.serving", "scripts.cli")
# The packages the model archive carries (scripts.serving.paths.PACKAGES): a worker has nothing else.
ARCHIVED = ("model", "handler")
# `scripts` itself is only the namespace both sides share (its __init__ is empty).
SERVING_PACKAGES = ("scripts",)
SERVE_REQUIREMENTS = ROOT / "requirements-serve.txt"
DYNAMIC_IMPORTS = ("import_module", "__import__", "run_module")


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.module} ({self.why})"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def serving_files(root: Path = ROOT) -> list[Path]:
    """Every source file of the serving side."""
    files = [root / "scripts" / "__init__.py", root / "scripts" / "cli.py"]
    for folder in ("model", "handler", "scripts/serving"):
        files += sorted((root / folder).rglob("*.py"))
    return [f for f in files if f.is_file()]


def project_packages(root: Path = ROOT) -> set[str]:
    """The project's own top-level import names (folders with an ``__init__.py``, top-level modules)."""
    names = {p.parent.name for p in root.glob("*/__init__.py")}
    return names | {p.stem for p in root.glob("*.py")}


def is_within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def is_serving(module: str) -> bool:
    return module in SERVING_PACKAGES or is_within(module, SERVING)


def requirement_lines(path: Path = SERVE_REQUIREMENTS) -> list[str]:
    """The requirements a requirements file lists, one line each (its ``-r`` includes followed)."""
    lines = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(("-r", "--requirement")):
            lines += requirement_lines(Path(path).parent / line.split(maxsplit=1)[1])
        elif line and not line.startswith("-"):
            lines.append(line)
    return lines


def requirement_names(path: Path = SERVE_REQUIREMENTS) -> list[str]:
    """The distribution names a requirements file lists."""
    return [re.match(r"[A-Za-z0-9._-]+", line).group(0) for line in requirement_lines(path)]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def serve_import_names(path: Path = SERVE_REQUIREMENTS) -> set[str]:
    """Top-level import names the distributions of ``path`` install (``torch``, ``PIL``, ``ts``, ...)."""
    wanted = {canonical(n) for n in requirement_names(path)}
    return {
        top
        for top, dists in importlib.metadata.packages_distributions().items()
        if any(canonical(d) in wanted for d in dists)
    }


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) for every import in ``source``, relative ones resolved."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((node.lineno, base, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            first = node.args[0] if node.args else None
            if called in DYNAMIC_IMPORTS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value, []))
        elif isinstance(node, ast.List | ast.Tuple):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, target in zip(items, items[1:], strict=False):
                if flag == "-m" and isinstance(target, str):
                    found.append((node.lineno, target, []))
    return found


def check_source(
    source: str, module: str, path: str, project: set[str], allowed_third_party: set[str], is_package: bool = False
) -> list[Violation]:
    """The rule's violations in one serving-side source file."""
    violations = []
    for line, imported, names in imports(source, module, is_package):
        top = imported.split(".")[0]
        if top in project:
            targets = [f"{imported}.{n}" for n in names if n != "*"] if imported in SERVING_PACKAGES else []
            for target in targets or [imported]:
                if not is_serving(target):
                    violations.append(Violation(path, line, target, "training, test or tool code"))
                elif is_within(module, ARCHIVED) and not is_within(target, ARCHIVED):
                    violations.append(Violation(path, line, target, "not in the model archive"))
        elif top not in sys.stdlib_module_names and top not in allowed_third_party and top != "__future__":
            violations.append(Violation(path, line, imported, "not installed by requirements-serve.txt"))
    return violations


def check_tree(root: Path = ROOT) -> list[Violation]:
    """Every violation of the rule in the serving side's files under ``root``."""
    project, allowed = project_packages(root), serve_import_names(root / "requirements-serve.txt")
    violations = []
    for path in serving_files(root):
        source = path.read_text()
        module = module_name(path, root)
        rel = str(path.relative_to(root))
        violations += check_source(source, module, rel, project, allowed, path.name == "__init__.py")
    return violations
