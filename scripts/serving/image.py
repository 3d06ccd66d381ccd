"""The container image's build context: the serving side only, laid out as deploy/Dockerfile copies it.

The context is updated in place: a file whose content has not changed keeps its timestamp, and an
archive whose members have not changed is kept as it is, so a second `make image` reuses every layer.
"""

import filecmp
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from scripts.serving.archive import build_archive
from scripts.serving.paths import ROOT, SAMPLES

# What the image holds: the serving packages and their settings (no training, tools or tests). The
# warm-up sends the sample pictures; the build stage runs build_zlib_ng.sh.
CONTENTS = (
    "requirements-serve.txt",
    "config.properties",
    "model",
    "handler",
    "scripts/__init__.py",
    "scripts/cli.py",
    "scripts/serving",
    "scripts/setup/build_zlib_ng.sh",
)
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def _members(archive: Path) -> list[tuple[str, object]]:
    """The archive's members and their checksums; the manifest without its creation time."""
    with zipfile.ZipFile(archive) as mar:
        members = []
        for info in mar.infolist():
            if info.filename.endswith("MANIFEST.json"):
                manifest = json.loads(mar.read(info))
                manifest.pop("createdOn", None)
                members.append((info.filename, json.dumps(manifest, sort_keys=True)))
            else:
                members.append((info.filename, info.CRC))
        return sorted(members)


def _same(new: Path, old: Path) -> bool:
    if not old.is_file():
        return False
    if new.suffix == ".mar":
        return _members(new) == _members(old)
    return filecmp.cmp(new, old, shallow=False)


def _sync(source: Path, dest: Path) -> None:
    """Make ``dest`` hold ``source``'s files, touching only those that differ."""
    wanted = {path.relative_to(source) for path in source.rglob("*") if path.is_file()}
    if dest.is_dir():
        for path in sorted(dest.rglob("*"), reverse=True):
            relative = path.relative_to(dest)
            if path.is_file() and relative not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    for relative in sorted(wanted):
        if not _same(source / relative, dest / relative):
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, dest / relative)


def stage_image(checkpoint: Path, dest: Path) -> Path:
    """Lay out ``dest`` as the image's build context: the serving files, the warm-up's sample PNGs and the
    archive (with the checkpoint's calibration when it has one: :func:`~scripts.serving.archive.build_archive`)."""
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="mnist-image-") as work:
        stage = Path(work)
        for name in CONTENTS:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, stage / name, ignore=SKIP)
            else:
                (stage / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, stage / name)
        (stage / "samples").mkdir()
        for picture in sorted(SAMPLES.glob("*.png")):
            shutil.copy2(picture, stage / "samples" / picture.name)
        build_archive(checkpoint, stage / "model_store")
        _sync(stage, dest)
    return dest
