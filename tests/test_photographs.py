"""train.photographs: crops of a folder of photographs, the check's example of what a camera sees."""

import io

import numpy as np
import pytest
from PIL import Image

from train import photographs
from train.calibrate import main as calibrate_main
from train.photographs import crop, find_photographs, listing

pytestmark = pytest.mark.unit


def write_photographs(folder, count: int = 3) -> None:
    """Smooth colour pictures (random low-resolution noise enlarged), as JPEG and PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for n in range(count):
        small = Image.fromarray(rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8))
        picture = small.resize((320 + 40 * n, 240), Image.Resampling.BICUBIC)
        picture.save(folder / f"photo{n}.{'png' if n == 2 else 'jpg'}")
    (folder / "notes.txt").write_text("not a picture")


def test_a_folder_of_photographs_is_found_with_a_digest_of_its_pictures(tmp_path, monkeypatch):
    write_photographs(tmp_path / "photos")
    folder, digest = find_photographs(tmp_path / "photos")
    assert folder == tmp_path / "photos" and len(digest) == 16
    assert [p.name for p in listing(folder)] == ["photo0.jpg", "photo1.jpg", "photo2.png"]
    monkeypatch.setenv("PHOTOS_DIR", str(tmp_path / "photos"))
    assert find_photographs() == (folder, digest)
    write_photographs(tmp_path / "photos", 4)
    assert find_photographs()[1] != digest


def test_no_photographs_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    folder, why = find_photographs(tmp_path / "empty")
    assert folder is None and str(tmp_path / "empty") in why and "mate-backgrounds" in why
    monkeypatch.delenv("PHOTOS_DIR", raising=False)
    monkeypatch.setattr(photographs, "DEBIAN_DIR", tmp_path / "absent")
    assert find_photographs()[0] is None


def test_crops_are_reproducible_square_jpegs_of_the_photographs(tmp_path):
    write_photographs(tmp_path)
    files = listing(tmp_path)
    first, again, other = crop(files, 5), crop(files, 5), crop(files, 6)
    assert first == again and first != other
    sizes = set()
    for seed in range(30):
        with Image.open(io.BytesIO(crop(files, seed))) as picture:
            assert picture.format == "JPEG" and picture.width == picture.height >= 28
            sizes.add(picture.width)
    assert len(sizes) > 10  # crops of many sizes


def test_a_folder_too_small_to_crop_still_gives_pictures(tmp_path):
    Image.new("RGB", (20, 12), (200, 40, 40)).save(tmp_path / "tiny.png")
    with Image.open(io.BytesIO(crop(listing(tmp_path), 0))) as picture:
        assert picture.size == (12, 12)


def test_calibrate_refuses_a_photos_dir_without_photographs_in_one_line(tmp_path, capsys):
    assert calibrate_main(["--photos-dir", str(tmp_path), "--reports-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no photographs in ") and err.count("\n") == 1
