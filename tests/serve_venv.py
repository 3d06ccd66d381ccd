"""A clean venv holding exactly what ``pip install -r requirements-serve.txt`` installs.

pip would resolve the serving requirements to the same distributions the project's venv already
has (torch alone is gigabytes, so installing them again is too slow for a test). So the
requirements are resolved here as pip does - each named distribution, then its own requirements
with their environment markers and extras, recursively - against the installed metadata; each
requirement's version must be the installed one's; and a new ``python -m venv`` (no system site
packages) gets links to exactly those distributions' files and their console scripts. Anything
else installed in the project's venv (matplotlib's dependents, seaborn, scikit-learn,
torchvision, pytest, ...) is not there, so importing it fails as it would in the image.
"""

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
from collections import defaultdict
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.import_rules import SERVE_REQUIREMENTS, requirement_lines


class ResolveError(Exception):
    """A serving requirement that the project's venv does not satisfy."""


def requirements(path: Path = SERVE_REQUIREMENTS) -> list[Requirement]:
    """The requirements of a requirements file (``-r`` includes followed)."""
    return [Requirement(line) for line in requirement_lines(path)]


def closure(roots: list[Requirement]) -> dict[str, importlib.metadata.Distribution]:
    """Every distribution pip installs for ``roots``: canonical name -> the installed distribution."""
    resolved: dict[str, importlib.metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()  # (distribution, extra) whose requirements are queued
    pending = [(requirement, "") for requirement in roots]
    while pending:
        requirement, parent_extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": parent_extra}):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise ResolveError(f"{requirement} is required but not installed") from None
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise ResolveError(f"{requirement} is required but {dist.version} is installed")
        resolved[name] = dist
        for extra in {"", *requirement.extras} - {e for n, e in done if n == name}:
            done.add((name, extra))
            pending += [(Requirement(sub), extra) for sub in dist.requires or []]
    return resolved


def _owners() -> dict[tuple[str, ...], set[str]]:
    """Installed files' leading path parts (1 and 2 deep) -> the distributions that own files under them."""
    owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            parts = file.parts
            if parts and parts[0] != ".." and parts[0] != "__pycache__":
                owners[parts[:1]].add(name)
                owners[parts[:2]].add(name)
    return owners


def link_distributions(dists: dict[str, importlib.metadata.Distribution], site: Path) -> list[str]:
    """Link each distribution's top-level entries into ``site``; an entry it shares with a distribution
    outside ``dists`` (a namespace folder) is made a folder of links one level down. Returns the entries."""
    owners, names, linked = _owners(), set(dists), []
    for dist in dists.values():
        if dist.files is None:
            raise ResolveError(f"{dist.metadata['Name']} has no RECORD: its files are unknown")
        for file in dist.files:
            parts = file.parts
            if not parts or parts[0] in ("..", "__pycache__"):
                continue
            key = parts[:1] if owners[parts[:1]] <= names or len(parts) == 1 else parts[:2]
            target, source = site.joinpath(*key), Path(dist.locate_file(Path(*key)))
            if target.exists() or target.is_symlink() or not source.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
            linked.append("/".join(key))
    return sorted(linked)


def write_console_scripts(dists: dict[str, importlib.metadata.Distribution], bin_dir: Path, python: Path) -> list[str]:
    """The distributions' console scripts (``torchserve``, ``torch-model-archiver``, ...) for ``python``."""
    written = []
    for dist in dists.values():
        for entry in dist.entry_points.select(group="console_scripts"):
            head, _, rest = entry.attr.partition(".")
            call = f"{head}.{rest}" if rest else head
            script = bin_dir / entry.name
            script.write_text(f"#!{python}\nimport sys\nfrom {entry.module} import {head}\nsys.exit({call}())\n")
            script.chmod(0o755)
            written.append(entry.name)
    return sorted(written)


def build(dest: Path, path: Path = SERVE_REQUIREMENTS) -> tuple[Path, dict[str, importlib.metadata.Distribution]]:
    """A clean venv at ``dest`` with exactly the distributions of ``path``: (its python, the distributions)."""
    dists = closure(requirements(path))
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(dest)], check=True, capture_output=True, timeout=120)
    python = Path(dest) / "bin" / "python"
    purelib = sysconfig.get_path("purelib", vars={"base": str(dest), "platbase": str(dest)})
    link_distributions(dists, Path(purelib))
    write_console_scripts(dists, Path(dest) / "bin", python)
    return python, dists


def clean_env() -> dict[str, str]:
    """The environment without anything that would add the project's venv to a Python's path."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop}
