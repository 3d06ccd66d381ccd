"""Fashion-MNIST through torchvision from a folder of IDX files (FASHION_MNIST_DIR), and what a fresh
setting gets from `make train` with it: a calibration with the not-a-digit check, `is_digit` in every answer."""

import gzip
import json
import os
import shutil
import subprocess

import pytest

from handler.mnist_handler import MnistHandler
from model.calibration import calibration_path, read_info
from scripts.serving.paths import SAMPLES
from tests.support import unpacked_archive
from tests.test_digest import tree  # noqa: F401 (a fixture)
from tests.test_handler import make_context, raw
from train import fashion

pytestmark = pytest.mark.handler


@pytest.fixture(scope="module")
def idx_folder(tmp_path_factory):
    """A folder of the four plain (not gzipped) Fashion-MNIST IDX files, unpacked from Debian's copy."""
    if not all((fashion.DEBIAN_DIR / f"{name}.gz").is_file() for name in fashion.IDX_NAMES):
        pytest.skip(f"needs Fashion-MNIST's IDX files to copy from {fashion.DEBIAN_DIR}")
    folder = tmp_path_factory.mktemp("fashion-idx")
    for name in fashion.IDX_NAMES:
        with gzip.open(fashion.DEBIAN_DIR / f"{name}.gz") as fin, open(folder / name, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    return folder


def test_a_folder_of_idx_files_is_linked_for_torchvision(idx_folder, tmp_path):
    assert fashion.prepare(idx_folder, tmp_path) == str(idx_folder)
    raw_dir = tmp_path / "FashionMNIST" / "raw"
    assert all((raw_dir / name).resolve() == (idx_folder / name).resolve() for name in fashion.IDX_NAMES)
    images, source = fashion.try_load_fashion("test", idx_folder, tmp_path)
    assert images.shape == (10000, 28, 28) and source == str(idx_folder)


def test_gzipped_files_are_unpacked_and_a_bad_folder_says_so(tmp_path):
    if not all((fashion.DEBIAN_DIR / f"{name}.gz").is_file() for name in fashion.IDX_NAMES):
        pytest.skip(f"needs {fashion.DEBIAN_DIR}")
    assert fashion.load_fashion("train", fashion.DEBIAN_DIR, tmp_path).shape == (60000, 28, 28)
    assert not (tmp_path / "FashionMNIST" / "raw" / fashion.IDX_NAMES[0]).is_symlink()


@pytest.mark.timeout(1500)
def test_make_train_with_fashion_mnist_dir_gives_is_digit_in_every_answer(tree, idx_folder, mnist_dir):  # noqa: F811
    env = {**os.environ, "MNIST_DIR": str(mnist_dir), "FASHION_MNIST_DIR": str(idx_folder)}
    quick = "--subset 3000 --optimizer adamw --lr 3e-3 --batch-size 128 --device cpu"
    small = "--fit-digits 2000 --fit-per-style 6 --fit-blurred 12 --renders 60 --per-style 12 --fashion 3000"
    small += " --photo-crops 100 --per-kind 20 --glyphs 60"
    command = ["make", "--no-print-directory", "train", "EPOCHS=1", f"ARGS={quick}", f"CAL_ARGS={small}"]
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=1400)
    assert result.returncode == 0, result.stdout + result.stderr
    checkpoint = tree / "mnist_cnn.pth"
    info = read_info(calibration_path(checkpoint))
    assert info["fashion_source"] == str(idx_folder) and "check" in info
    assert json.loads((tree / "reports" / "calibration.json").read_text())["fashion_source"] == str(idx_folder)
    model_dir = unpacked_archive(checkpoint, tree / "build")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(model_dir))
        handler = MnistHandler()
        handler.initialize(make_context(model_dir, []))
    pictures = [p for p in sorted(SAMPLES.iterdir()) if p.name != "blank.png"]
    requests = [raw(p.read_bytes(), "image/jpeg" if p.suffix == ".jpg" else "image/png") for p in pictures]
    context = make_context(model_dir, [headers for _, headers in requests])
    answers = [json.loads(a) for a in handler.handle([row for row, _ in requests], context)]
    assert len(answers) == len(pictures) and all("is_digit" in a for a in answers)
