"""What a calibration was fitted from, and whether it still matches: ``python -m train.digest``.

The fit's inputs are the checkpoint (its bytes) and the code that turns pictures into the fit's
numbers: ``train.calibrate`` and every module of this repository it imports, directly or not (the
decoding and preprocessing, the renderers, the fitting code, the model). Each source file counts by
its syntax tree with the docstrings left out, so comments, docstrings and formatting do not count;
a change to the code does. ``train.calibrate`` records the per-file digests in the calibration;
the Makefile asks this command before building anything that ships the calibration.

Exit status: 0 up to date (prints nothing), 3 no checkpoint, 4 no calibration or one fitted from
other inputs; the one line printed says which and what ``make`` does about it.
"""

import ast
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = "train/calibrate.py"
PACKAGES = ("handler", "model", "train", "scripts")  # this repository's top-level packages
NO_CHECKPOINT, STALE = 3, 4


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(path: Path) -> str:
    """SHA-256 of the file's syntax tree without docstrings: comments and layout do not change it."""
    tree = _strip_docstrings(ast.parse(path.read_text(), str(path)))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, root: Path) -> set[str]:
    """The modules of this repository that ``path`` imports (anywhere in the file, lazily too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from train.renderers import user_style`` imports a module; ``from x import f`` a name.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] in PACKAGES:
                # A package's __init__ runs on import too.
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in found if _module_file(root, m) is not None}


def fit_sources(root: Path = ROOT, entry: str = ENTRY) -> list[str]:
    """The repository files ``entry`` (the calibration's command) depends on: itself and its local imports, closed."""
    seen, todo = set(), [root / entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [_module_file(root, m) for m in _imports(path, root)]
    return sorted(str(p.relative_to(root)) for p in seen)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fit_inputs(checkpoint: Path, root: Path = ROOT) -> dict[str, str]:
    """{"checkpoint": its SHA-256, "<source file>": :func:`source_digest`, ...}: what a fit records."""
    inputs = {"checkpoint": file_sha256(checkpoint)}
    inputs.update({name: source_digest(root / name) for name in fit_sources(root)})
    return inputs


def changed_inputs(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """The inputs that differ between a recorded fit and now (new and removed files too), sorted."""
    return sorted(k for k in recorded.keys() | current.keys() if recorded.get(k) != current.get(k))


def why_refit(checkpoint: Path, root: Path = ROOT) -> tuple[int, str]:
    """(0, "") when the calibration of ``checkpoint`` was fitted from the current inputs; else (status, reason)."""
    from model.calibration import calibration_path, read_info

    if not checkpoint.is_file():
        return NO_CHECKPOINT, f"no {checkpoint}: training it first with `make train`"
    calibration = calibration_path(checkpoint)
    if not calibration.is_file():
        return STALE, f"no {calibration}: fitting it"
    try:
        recorded = read_info(calibration).get("inputs")
    except Exception:  # a damaged or foreign file: refit it
        recorded = None
    if not recorded:
        return STALE, f"{calibration} records no digest of what it was fitted from: refitting it"
    changed = changed_inputs(recorded, fit_inputs(checkpoint, root))
    if not changed:
        return 0, ""
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return STALE, f"refitting {calibration}: {shown} changed since its fit"


def main(argv: list[str] | None = None) -> int:
    from scripts.cli import OneLineParser

    parser = OneLineParser(prog="python -m train.digest", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"), help="default: %(default)s")
    parser.add_argument("--list", action="store_true", help="print the fit's inputs and their digests instead")
    args = parser.parse_args(argv)
    if args.list:
        inputs = fit_inputs(args.checkpoint) if args.checkpoint.is_file() else {}
        for name in ["checkpoint", *fit_sources()] if inputs else fit_sources():
            print(f"{inputs.get(name, '-')[:16]}  {args.checkpoint if name == 'checkpoint' else name}")
        return 0
    status, reason = why_refit(args.checkpoint)
    if reason:
        print(reason)
    return status


if __name__ == "__main__":
    sys.exit(main())
