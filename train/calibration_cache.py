"""The calibration's pictures as model inputs, kept on disk by content, one file per set.

Making the pictures (rendering, decoding, preprocessing) is most of a fit's work and does not
depend on the checkpoint. Each set's key is a digest of its jobs (kind, seeds, source pixels) and
of the code that makes them (``train.calibration_sets`` and what it imports, comments and
docstrings left out, as ``train.digest`` counts them): a refit of a new checkpoint with the same
code reuses every set, a fit with one set more or changed makes only that one, and any change to
the pictures' code makes them all again.
"""

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from train.calibration_sets import Job, Workers
from train.digest import fit_sources, source_digest

ROOT = Path(__file__).resolve().parent.parent
KEEP = 200  # cached sets kept (a fit has a few dozen); the least recently used go first
PREFIX = "calibration-set-"


def code_digest() -> str:
    """Digest of the code that makes the pictures."""
    digest = hashlib.sha256()
    for name in fit_sources(ROOT, "train/calibration_sets.py"):
        digest.update(f"{name}:{source_digest(ROOT / name)}\n".encode())
    return digest.hexdigest()


def key(jobs: list[Job], code: str | None = None) -> str:
    """The content key of one set's jobs (or any list of jobs)."""
    digest = hashlib.sha256((code or code_digest()).encode())
    for job in jobs:
        digest.update(f"{job.set_name}|{job.kind}|".encode())
        for array in (job.seeds, job.images, job.labels):
            digest.update(b"-" if array is None else array.tobytes())
    return digest.hexdigest()


def cached_sets(jobs: list[Job], cache_dir: str | Path | None, workers: int | None, log=print) -> dict:
    """{set name: (inputs, labels)} of ``jobs``, each set from ``cache_dir`` when made before (no cache: ''
    or None), the others made on ``workers`` processes (default: one per core)."""
    with Workers(workers) as pool:
        return start_sets(jobs, cache_dir, pool, log)()


def start_sets(jobs: list[Job], cache_dir: str | Path | None, pool: Workers, log=print) -> Callable[[], dict]:
    """Start making the sets of ``jobs`` that ``cache_dir`` lacks on ``pool``; the function returned waits
    for them, saves them to the cache and returns every set, as :func:`cached_sets` does."""
    by_set: dict[str, list[Job]] = {}
    for job in jobs:
        by_set.setdefault(job.set_name, []).append(job)
    folder = Path(cache_dir) if cache_dir else None
    code = code_digest()
    paths = {name: folder / f"{PREFIX}{key(part, code)[:32]}.pt" for name, part in by_set.items()} if folder else {}
    sets = {name: found for name, path in paths.items() if (found := _load(path)) is not None}
    missing = [job for name, part in by_set.items() if name not in sets for job in part]
    if sets:
        log(f"{len(sets)} of the calibration's {len(by_set)} picture sets from {folder}")
    start = time.perf_counter()
    pending = pool.submit(missing) if missing else None

    def wait() -> dict:
        if pending is not None:
            made = pending()
            count = sum(len(y) for _, y in made.values())
            log(f"made {count} of the calibration's pictures in {time.perf_counter() - start:.0f}s")
            sets.update(made)
            for name in made if folder else ():
                _save(made[name], paths[name])
        if folder is not None:
            _prune(folder)
        return {name: sets[name] for name in by_set}

    return wait


def _load(path: Path):
    if not path.is_file():
        return None
    try:
        found = torch.load(path, weights_only=True)
        os.utime(path)  # recently used: kept by the pruning
        return found
    except Exception:  # a damaged file: make the set again
        path.unlink(missing_ok=True)
        return None


def _save(value, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    torch.save(value, part)
    part.rename(path)


def _prune(folder: Path) -> None:
    files = sorted(folder.glob(f"{PREFIX}*.pt"), key=lambda p: p.stat().st_mtime)
    for old in files[:-KEEP]:
        old.unlink(missing_ok=True)
    for legacy in folder.glob("calibration-sets-*.pt"):  # one file per fit: a layout no longer read
        legacy.unlink(missing_ok=True)
