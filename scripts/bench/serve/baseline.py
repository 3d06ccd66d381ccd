"""Another checkout's handler beside this one's, within one run: its archive and its in-process ceiling.

``--baseline TREE`` names a checkout of this repository (for example ``git worktree add /tmp/base
main``). Its server runs this tree's archive with the code swapped for the baseline's (handler and
model packages and files): the same weights, calibration and settings. Its ceiling runs this tree's
measuring code in a child process whose first import path holds only the baseline's ``handler``
and ``model`` packages.
"""

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from scripts.serving.errors import ServeError
from scripts.serving.paths import HANDLER_FILE, MODEL_FILE, PACKAGES, ROOT


def check_tree(tree: Path) -> Path:
    """``tree`` resolved, or a one-line error when it is not a checkout of this repository."""
    tree = Path(tree).resolve()
    if not (tree / "handler" / "mnist_handler.py").is_file() or not (tree / "scripts" / "serving").is_dir():
        raise ServeError(f"{tree} is not a checkout of this repository (git worktree add {tree} main)")
    return tree


def swap_code(mar: Path, tree: Path) -> Path:
    """Rewrite the archive ``mar`` with ``tree``'s code: its handler and model packages, handler and model files.

    Everything else (weights, calibration, per-model settings) stays as this tree built it, so the two
    servers differ only in the code they run.
    """
    mar = Path(mar)
    packages = [Path(tree, package) for package in PACKAGES]
    swapped = mar.with_suffix(".swap")
    with zipfile.ZipFile(mar) as old, zipfile.ZipFile(swapped, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            top = item.filename.split("/", 1)[0]
            if top in PACKAGES or item.filename in (HANDLER_FILE.name, MODEL_FILE.name):
                continue
            new.writestr(item, old.read(item))
        new.write(Path(tree, HANDLER_FILE.relative_to(ROOT)), HANDLER_FILE.name)
        new.write(Path(tree, MODEL_FILE.relative_to(ROOT)), MODEL_FILE.name)
        for package in packages:
            for path in sorted(package.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    new.write(path, str(path.relative_to(tree)))
    swapped.replace(mar)
    return mar


def in_tree(tree: Path | None, function: str, *args):
    """``scripts.bench.serve.ceiling.<function>(*args)`` run against ``tree``'s handler and model (JSON in and out).

    ``tree`` None: this checkout's own, in a child process all the same, so both sides are measured alike.
    """
    with tempfile.TemporaryDirectory(prefix="bench-serve-code-") as code:
        for package in ("handler", "model"):
            os.symlink(Path(tree or ROOT, package).resolve(), Path(code, package))
        script = (
            "import json, sys; from scripts.bench.serve import ceiling; "
            f"print(json.dumps(ceiling.{function}_json(*json.loads(sys.argv[1]))))"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, "-c", script, json.dumps([_plain(a) for a in args])],
            cwd=code,
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise ServeError(f"the in-process measurement of {tree or ROOT} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _plain(value):
    """``value`` as JSON takes it: paths as strings, lists of paths as lists of strings."""
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
