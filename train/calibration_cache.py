"""The calibration's pictures as model inputs, kept on disk by content.

Making the pictures (rendering, decoding, preprocessing) is most of a fit's work and does not
depend on the checkpoint. The cache key is a digest of every job (kind, seeds, source pixels) and
of the code that makes them (``train.calibration_sets`` and what it imports, comments and
docstrings left out, as ``train.digest`` counts them): a refit of a new checkpoint with the same
code reuses them; any change to the pictures' code makes them again.
"""

import hashlib
import time
from pathlib import Path

import torch

from train.calibration_sets import Job, build
from train.digest import fit_sources, source_digest

ROOT = Path(__file__).resolve().parent.parent
KEEP = 3  # cached fits kept; older ones are removed


def key(jobs: list[Job]) -> str:
    digest = hashlib.sha256()
    for name in fit_sources(ROOT, "train/calibration_sets.py"):
        digest.update(f"{name}:{source_digest(ROOT / name)}\n".encode())
    for job in jobs:
        digest.update(f"{job.set_name}|{job.kind}|".encode())
        for array in (job.seeds, job.images, job.labels):
            digest.update(b"-" if array is None else array.tobytes())
    return digest.hexdigest()


def cached_sets(jobs: list[Job], cache_dir: str | Path | None, workers: int | None, log=print) -> dict:
    """:func:`train.calibration_sets.build` of ``jobs``, from ``cache_dir`` when made before (no cache: '' or None)."""
    path = Path(cache_dir) / f"calibration-sets-{key(jobs)[:32]}.pt" if cache_dir else None
    if path is not None and path.is_file():
        try:
            sets = torch.load(path, weights_only=True)
            log(f"the calibration's pictures from {path}")
            return sets
        except Exception:  # a damaged file: make them again
            path.unlink(missing_ok=True)
    start = time.perf_counter()
    sets = build(jobs, workers)
    log(
        f"made the calibration's {sum(len(y) for _, y in sets.values())} pictures in {time.perf_counter() - start:.0f}s"
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        torch.save(sets, part)
        part.rename(path)
        for old in sorted(path.parent.glob("calibration-sets-*.pt"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
            old.unlink(missing_ok=True)
    return sets
