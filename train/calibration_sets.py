"""The pictures the temperature and the not-a-digit check are fitted on, as model inputs.

Digits: MNIST training digits as they are, rendered in every user style (``train.renderers.user_style``)
and as thick or blurred low-resolution variants. Non-digits: Fashion-MNIST's training split, crops of
photographs (``train.photographs``), letters and symbols (``train.renderers.glyphs``) and the
photo-like scenes, textures, printed text, shapes and scribbles of ``train.renderers.non_digits``
(other seeds than the sets they are measured on). All of
them go through the server's own preprocessing, and its decoding wherever a file changes the pixels,
so a check fitted again after the preprocessing changes sees what the server will see.

The pictures are made in chunks on every core (:class:`Workers`), each chunk a :class:`Job`.
"""

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

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
# The styles that look most like blurred photographs: the fit needs more of them to tell them apart.
BLURRED = ("lowres-blur", "lowres-8")


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


def set_jobs(
    images: np.ndarray, labels: np.ndarray, fashion: np.ndarray | None, args, photos: tuple[Path, str] | None = None
) -> tuple[list[Job], dict]:
    """The jobs that make every set, and {"fit": [names], "held": [names], "others": [names]}.

    ``photos``: (folder, digest) of the photographs to crop, from :func:`train.photographs.find_photographs`;
    None: no crops.

    Each user style is a set of its own, fitted on and held out: the classifier weighs every style
    as much as plain digits (a rare style's odd pictures would otherwise set the threshold), and the
    threshold keeps every style's flagged share within the target.
    """
    rng = np.random.default_rng(args.seed)
    n_fit = len(labels) - args.holdout
    fit_index = rng.choice(n_fit, min(args.fit_digits, n_fit), replace=False)
    held_index = np.arange(n_fit, len(labels))

    def some(pool: np.ndarray, n: int) -> np.ndarray:
        return rng.choice(pool, min(n, len(pool)), replace=False)

    jobs, names = [], {"fit": [], "held": [], "others": []}

    def add(role: str, name: str, kind: str, seeds: np.ndarray, index: np.ndarray | None = None) -> None:
        names[role].append(name)
        data = (images[index], labels[index]) if index is not None else (None, None)
        jobs.extend(chunks(name, kind, seeds, *data))

    add("fit", "fit digits", "plain", fit_index, fit_index)
    add("held", "digits", "plain", held_index, held_index)
    for style in STYLES:
        n_fit = args.fit_blurred if style in BLURRED else args.fit_per_style
        for role, pool, n, base in (("fit", fit_index, n_fit, 1), ("held", held_index, args.per_style, 2)):
            index = some(pool, n)
            name = f"style {style}" if role == "held" else f"fit style {style}"
            add(role, name, f"style:{style}", (args.seed + base) * 1_000_003 + index, index)
    for role, pool, base in (("fit", fit_index, 3), ("held", held_index, 4)):
        index = some(pool, args.renders)
        add(
            role,
            "variants" if role == "held" else "fit variants",
            "variants",
            (args.seed + base) * 100_000 + np.arange(len(index)),
            index,
        )
    if fashion is not None:
        names["others"].append("fashion")
        jobs.extend(chunks("fashion", "plain", np.arange(len(fashion)), fashion, np.zeros(len(fashion), np.int64)))
        # Other seeds than scripts.accuracy's measured sets (seed * 1_000_003 + n, n below a few thousand).
        base = (args.seed + 7) * 10_000_019
        if photos is not None and args.photo_crops:
            folder, digest = photos
            add("others", "photo crops", f"crops:{digest}:{folder}", base + 800_000 + np.arange(args.photo_crops))
        for n, kind in enumerate(KIND_SIDES if args.per_kind else ()):
            add("others", f"non-digit {kind}", f"kind:{kind}", base + n * 100_000 + np.arange(args.per_kind))
        if args.glyphs:
            add("others", "non-digit glyphs", "glyphs", base + 900_000 + np.arange(args.glyphs))
    return jobs, names


def _run(job: Job) -> tuple[torch.Tensor, torch.Tensor]:
    torch.set_num_threads(1)  # one picture at a time per process; the processes share the cores
    return job.run()


class Workers:
    """The processes that make the pictures, one per core by default; with one, jobs run in this process.

    ``submit`` queues jobs and returns at once, so this process can do other work while they are made.
    """

    def __init__(self, count: int | None = None):
        self.count = count or len(os.sched_getaffinity(0))
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list = []

    def busy(self) -> bool:
        """Whether jobs submitted to the processes are still being made."""
        return any(not future.done() for future in self._futures)

    def submit(self, jobs: list[Job]) -> Callable[[], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """Start making ``jobs``; the function returned waits for them: {set name: (inputs, labels)}."""
        if self.count < 2 or len(jobs) < 2:
            return lambda: _by_set(jobs, [job.run() for job in jobs])
        if self._pool is None:
            # Fresh interpreters, not forks: a fork of a process whose OpenMP pool is running can hang.
            self._pool = ProcessPoolExecutor(self.count, mp_context=get_context("spawn"))
        futures = [self._pool.submit(_run, job) for job in jobs]
        self._futures += futures
        return lambda: _by_set(jobs, [future.result() for future in futures])

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def _by_set(jobs: list[Job], results: list) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    sets: dict[str, list] = {}
    for job, result in zip(jobs, results, strict=True):
        sets.setdefault(job.set_name, []).append(result)
    return {name: (torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])) for name, parts in sets.items()}
