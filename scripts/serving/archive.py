"""The model archive: the CNN, its weights and calibration, the handler and the per-model settings as one ``.mar``."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from scripts.serving.config import read_model_settings
from scripts.serving.errors import ServeError
from scripts.serving.paths import ARCHIVER, CALIBRATION_FILE, HANDLER_FILE, MODEL_FILE, MODEL_NAME, PACKAGES, ROOT


def build_archive(
    checkpoint: Path,
    model_store: Path,
    model: Mapping[str, int] | None = None,
    model_name: str = MODEL_NAME,
) -> Path:
    """Package the CNN, its weights and the handler as ``<model_store>/<model_name>.mar``.

    When the checkpoint has a calibration (``<stem>.calibration.pt`` next to it, written by
    ``python -m train.calibrate``), the archive carries it as ``calibration.pt``: the handler then
    tempers the confidence and flags pictures that are not digits.

    ``model`` holds the archive's per-model settings (a :class:`~scripts.serving.config.Configuration`'s
    ``model``); by default ``handler/model-config.yaml``'s.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ServeError(f"no checkpoint at {checkpoint}: run `make train` first")
    model_store = Path(model_store)
    model_store.mkdir(parents=True, exist_ok=True)
    settings = dict(read_model_settings() if model is None else model)
    with tempfile.TemporaryDirectory(prefix="mnist-archive-") as work:
        # Extra files are copied into the archive one directory level down, so a staging dir
        # holding model/ and handler/ keeps both importable as packages inside the worker.
        stage = Path(work, "extra")
        skip = shutil.ignore_patterns("__pycache__", "*.pyc")
        for package in PACKAGES:
            shutil.copytree(ROOT / package, stage / package, ignore=skip)
        calibration = checkpoint.with_name(f"{checkpoint.stem}.calibration.pt")  # model.calibration.calibration_path
        if calibration.is_file():
            shutil.copyfile(calibration, stage / CALIBRATION_FILE)
        model_config = Path(work, "model-config.yaml")
        model_config.write_text(yaml.safe_dump(settings, sort_keys=False))
        command = [
            str(ARCHIVER),
            *("--model-name", model_name, "--version", "1.0"),
            *("--model-file", str(MODEL_FILE), "--serialized-file", str(checkpoint)),
            *("--handler", str(HANDLER_FILE), "--extra-files", str(stage)),
            *("--config-file", str(model_config)),
            *("--export-path", str(model_store), "--force"),
        ]
        # The archiver stages under $TMPDIR/<model name>: give each build its own.
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TMPDIR": work})
    if result.returncode != 0:
        raise ServeError(f"torch-model-archiver failed: {(result.stderr or result.stdout).strip()}")
    return model_store / f"{model_name}.mar"


NO_CHECK_NOTE = (
    'note: no not-a-digit check in this model (calibrated without Fashion-MNIST): answers carry no "is_digit"; '
    "see the README's Not-a-digit section to add it"
)


def has_digit_check(mar: Path) -> bool | None:
    """Whether the archive's calibration carries the not-a-digit check; None when there is no such archive."""
    import io
    import zipfile

    import torch

    try:
        with zipfile.ZipFile(mar) as archive:
            if CALIBRATION_FILE not in archive.namelist():
                return False
            saved = torch.load(io.BytesIO(archive.read(CALIBRATION_FILE)), map_location="cpu", weights_only=True)
    except (OSError, zipfile.BadZipFile):
        return None
    return saved.get("check") is not None
