"""The pictures the temperature and the not-a-digit check are fitted on, as model inputs.

Digits: MNIST training digits as they are, rendered in every user style (``train.renderers.user_style``)
and as thick or blurred low-resolution variants. Non-digits: Fashion-MNIST's training split, crops of
photographs (``train.photographs``), letters and symbols (``train.renderers.glyphs``) and the
photo-like scenes, textures, printed text, shapes and scribbles of ``train.renderers.non_digits``
(other seeds than the sets they are measured on). All of
them go through the server's own preprocessing, and its decoding wherever a file changes the pixels,
so a check fitted again after the preprocessing changes sees what the server will see.

The pictures are made in chunks on every core (:func:`build`), each chunk a :class:`Job`.
"""

import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from handler.decode import RequestError, decode_image
from handler.preprocess import PreprocessError, to_model_input
from train import photographs
from train.renderers import glyphs, non_digits
from train.renderers.user_style import STYLES, render, render_bytes

VARIANT_SIDE = 40  # canvas of the thick and low-resolution variants
CHUNK = 64  # pictures per job: small enough to share the work evenly between the cores
# The rendered non-digits the check is fitted on, and the sides (pixels) they are drawn at: smaller
# than the measured sets' pictures, which the preprocessing brings to 28x28 all the same.
KIND_SIDES = {"scene": (80, 240), "texture": (64, 200), "text": (120, 260), "shapes": (60, 200), "scribble": (80, 200)}


def as_inputs(pictures: Iterable[Image.Image | None], labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 28, 28) model inputs and labels of the pictures the preprocessing accepts (refused ones left out)."""
    inputs, kept = [], []
    for picture, label in zip(pictures, labels, strict=True):
        try:
            if picture is None:
                continue
            inputs.append(to_model_input(picture))
            kept.append(int(label))
        except PreprocessError:
            pass
    return (torch.stack(inputs) if inputs else torch.empty(0, 1, 28, 28)), torch.tensor(kept, dtype=torch.long)


def _decoded(data: bytes) -> Image.Image | None:
    try:
        return decode_image(data)
    except RequestError:
        return None


def served(digit: np.ndarray, style: str, seed: int) -> Image.Image | None:
    """The picture the server decodes from the ``style`` render of ``digit``.

    A PNG decodes to the very pixels and mode it was made from, so those renders skip the file
    (encoding them was most of their cost); a JPEG render goes through it, its losses included.
    """
    if STYLES[style][1] == "PNG":
        return render(digit, style, seed)
    return _decoded(render_bytes(digit, style, seed)[0])


def variant(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """``digit`` with thick strokes, or shrunk to 8-16 px and blurred back up; either polarity."""
    image = Image.fromarray(digit, mode="L")
    image = image.crop(image.getbbox())
    side = VARIANT_SIDE - 8
    if rng.random() < 0.5:
        scale = 1.25 * side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        image = image.filter(ImageFilter.MaxFilter(int(rng.choice([3, 5]))))
        image.thumbnail((side, side), Image.Resampling.BILINEAR)
    else:
        low = int(rng.choice([8, 12, 16]))
        image = image.resize((low, low), Image.Resampling.BOX).resize((side, side), Image.Resampling.BICUBIC)
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    canvas = Image.new("L", (VARIANT_SIDE, VARIANT_SIDE), 0)
    canvas.paste(image, ((VARIANT_SIDE - image.width) // 2, (VARIANT_SIDE - image.height) // 2))
    return ImageOps.invert(canvas) if rng.random() < 0.5 else canvas


@dataclass
class Job:
    """One chunk of one set: ``kind`` says how its pictures are made from ``images`` or ``seeds``.

    ``plain``: the 28x28 ``images`` as a client sends them; ``style:<name>``: each of ``images``
    rendered in that user style with its seed, as the server decodes it (:func:`served`); ``variants``: a
    :func:`variant` of each, from the generator of ``seeds[0]``; ``glyphs``, ``kind:<name>`` and
    ``crops:<digest>:<folder>`` (:func:`train.photographs.crop` of that folder's photographs, whose
    names and sizes give the digest): one picture per seed, encoded and decoded as served.
    """

    kind: str
    seeds: np.ndarray
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    set_name: str = field(default="")

    def pictures(self) -> Iterable[Image.Image | None]:
        if self.kind == "plain":
            return (Image.fromarray(a, mode="L") for a in self.images)
        if self.kind.startswith("style:"):
            style = self.kind.removeprefix("style:")
            return (served(a, style, int(s)) for a, s in zip(self.images, self.seeds, strict=True))
        if self.kind == "variants":
            rng = np.random.default_rng(int(self.seeds[0]))
            return (variant(a, rng) for a in self.images)
        if self.kind == "glyphs":
            return (glyphs.render(int(s)) for s in self.seeds)
        if self.kind.startswith("crops:"):
            files = photographs.listing(self.kind.split(":", 2)[2])
            return (_decoded(photographs.crop(files, int(s))) for s in self.seeds)
        kind = self.kind.removeprefix("kind:")
        return (_decoded(_encoded(non_digits.render(kind, int(s), KIND_SIDES[kind]), kind)) for s in self.seeds)

    def run(self) -> tuple[torch.Tensor, torch.Tensor]:
        labels = self.labels if self.labels is not None else np.zeros(len(self.seeds), dtype=np.int64)
        return as_inputs(self.pictures(), labels)


def _encoded(picture: Image.Image, kind: str) -> bytes:
    import io

    buffer = io.BytesIO()
    fmt = non_digits.KINDS[kind][1]
    picture.save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def chunks(set_name: str, kind: str, seeds: np.ndarray, images=None, labels=None) -> list[Job]:
    """The jobs of one set, :data:`CHUNK` pictures each."""
    jobs = []
    for start in range(0, len(seeds), CHUNK):
        part = slice(start, start + CHUNK)
        jobs.append(
            Job(
                kind,
                seeds[part],
                None if images is None else images[part],
                None if labels is None else labels[part],
                set_name,
            )
        )
    return jobs


def _run(job: Job) -> tuple[torch.Tensor, torch.Tensor]:
    torch.set_num_threads(1)  # one picture at a time per process; the processes share the cores
    return job.run()


def build(jobs: list[Job], workers: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{set name: (inputs, labels)} of all ``jobs``, run on ``workers`` processes (default: every core)."""
    workers = workers or len(os.sched_getaffinity(0))
    if workers > 1 and len(jobs) > 1:
        # Fresh interpreters, not forks: a fork of a process whose OpenMP pool is running can hang.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_run, jobs))
    else:
        results = [job.run() for job in jobs]
    sets: dict[str, list] = {}
    for job, result in zip(jobs, results, strict=True):
        sets.setdefault(job.set_name, []).append(result)
    return {name: (torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])) for name, parts in sets.items()}
