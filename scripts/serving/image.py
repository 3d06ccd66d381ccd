"""The container image's build context: the files deploy/Dockerfile copies, laid out as in the image."""

import shutil
from pathlib import Path

from scripts.serving.archive import build_archive
from scripts.serving.paths import ROOT

# What the image holds under its working directory, besides model_store/mnist.mar and run/.
CONTENTS = ("requirements.txt", "config.properties", "model", "handler", "train", "scripts", "samples")


def stage_image(checkpoint: Path, dest: Path) -> Path:
    """Lay out ``dest`` as the image's working directory: the project's serving files and the archive (with the
    checkpoint's calibration when it has one: :func:`~scripts.serving.archive.build_archive`)."""
    dest = Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in CONTENTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=skip)
        else:
            shutil.copy2(source, dest / name)
    build_archive(checkpoint, dest / "model_store")
    (dest / "run").mkdir()
    return dest
