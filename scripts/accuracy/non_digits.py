"""Offline: how many pictures that are not digits the server would refuse (400) or flag ``"is_digit": false``.

The sets are Fashion-MNIST's test split (:mod:`train.fashion`), each kind of
:mod:`train.renderers.non_digits` and real photographs (:mod:`scripts.accuracy.photos`), decoded and
preprocessed as the server does, then run through :func:`model.calibration.answer` with the
checkpoint's calibration. ``python -m scripts.accuracy.styles --non-digits`` prints them;
``scripts.accuracy.served`` sends the same pictures over HTTP.
"""

import sys
from collections.abc import Iterable, Iterator

import torch
from PIL import Image

from handler.decode import RequestError, decode_image
from handler.preprocess import PreprocessError, to_model_input
from model.calibration import answer
from scripts.accuracy import photos
from train.renderers import non_digits


def score_non_digits(model, device, calibration, pictures: Iterable[Image.Image | None]) -> dict:
    """Counts and shares of ``pictures`` refused (None: not decoded), failed and flagged not a digit.

    ``errors`` counts the pictures the preprocessing failed on with anything but its own 400 (a
    server answers them 500): counted and reported, not hidden among the refused ones.
    """
    inputs, n, errors = [], 0, 0
    for picture in pictures:
        n += 1
        try:
            if picture is None:
                raise PreprocessError("not decoded")
            inputs.append(to_model_input(picture))
        except PreprocessError:
            pass
        except Exception:  # a bug in the preprocessing: count it, measure the rest
            errors += 1
    flagged = 0
    if inputs and calibration is not None and calibration.check is not None:
        with torch.inference_mode():
            batches = [b.to(device) for b in torch.stack(inputs).split(500)]
            flagged = sum(int((~answer(model, b, calibration).is_digit).sum()) for b in batches)
    refused = n - len(inputs) - errors
    return {
        "n": n,
        "refused": refused,
        "errors": errors,
        "flagged": flagged,
        "flagged_share": round(flagged / max(n, 1), 4),
        "flagged_or_refused_share": round((flagged + refused) / max(n, 1), 4),
        "flagged_share_of_answered": round(flagged / max(len(inputs), 1), 4),
    }


def rendered(kind: str, n: int, seed: int) -> Iterator[Image.Image | None]:
    """The ``n`` pictures of a :mod:`train.renderers.non_digits` kind, decoded as served (None: a 400), lazily."""
    for index in range(n):
        try:
            yield decode_image(non_digits.render_bytes(kind, seed * 1_000_003 + index)[0])
        except RequestError:
            yield None


def non_digit_sets(fashion_dir, fashion_limit: int, per_kind: int, seed: int) -> dict:
    """{name: pictures}: Fashion-MNIST's test split (when installed) and each :mod:`train.renderers.non_digits` kind."""
    from train.fashion import try_load_fashion

    sets = {}
    images, source = try_load_fashion("test", fashion_dir)
    if images is None:
        print(f"note: {source}: its row is left out", file=sys.stderr)
    else:
        sets["fashion_mnist_test"] = [Image.fromarray(a) for a in images[:fashion_limit]]
    for kind in non_digits.KINDS:
        sets[kind] = rendered(kind, per_kind, seed)
    if photos.available():
        sets["photos"] = (_decoded(data) for _, data in photos.photo_files())
    else:
        print("note: no scikit-image (pip install scikit-image): the photographs' row is left out", file=sys.stderr)
    return sets


def _decoded(data: bytes) -> Image.Image | None:
    try:
        return decode_image(data)
    except RequestError:
        return None


def score_non_digit_sets(model, device, calibration, fashion_dir, fashion_limit: int, per_kind: int, seed: int):
    """{set name: :func:`score_non_digits`'s counts} for every set of :func:`non_digit_sets`, printed as they come."""
    report = {}
    for name, pictures in non_digit_sets(fashion_dir, fashion_limit, per_kind, seed).items():
        report[name] = score_non_digits(model, device, calibration, pictures)
        print(f"{name}: {report[name]}", file=sys.stderr)
    return report
