"""Another checkout's handler beside this one's, within one run: its archive and its in-process ceiling.

``--baseline TREE`` names a checkout of this repository (for example ``git worktree add /tmp/base
main``). Its archive is built by its own ``python -m scripts.serving archive`` (its handler and
model packages), then served with this tree's configuration on free ports; its ceiling runs this
tree's measuring code in a child process whose first import path holds only the baseline's
``handler`` and ``model`` packages.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.serving.errors import ServeError
from scripts.serving.paths import ROOT


def check_tree(tree: Path) -> Path:
    """``tree`` resolved, or a one-line error when it is not a checkout of this repository."""
    tree = Path(tree).resolve()
    if not (tree / "handler" / "mnist_handler.py").is_file() or not (tree / "scripts" / "serving").is_dir():
        raise ServeError(f"{tree} is not a checkout of this repository (git worktree add {tree} main)")
    return tree


def build_store(tree: Path, checkpoint: Path, store: Path) -> Path:
    """The baseline's archive in ``store``, built by the baseline's own archive command."""
    command = [sys.executable, "-m", "scripts.serving", "archive", "--checkpoint", str(Path(checkpoint).resolve())]
    command += ["--model-store", str(Path(store).resolve())]
    result = subprocess.run(command, cwd=tree, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    if result.returncode != 0:
        raise ServeError(f"the baseline's archive failed: {(result.stderr or result.stdout).strip()}")
    return Path(store)


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
            [sys.executable, "-c", script, json.dumps([str(a) if isinstance(a, Path) else a for a in args])],
            cwd=code,
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise ServeError(f"the in-process measurement of {tree or ROOT} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
