"""Fuzz decoding and preprocessing: only the handler's client errors may escape, within time and memory.

Two seeded, bounded generators feed :func:`handler.decode.request_image` and
:func:`handler.preprocess.to_model_input`, the path every request takes:

- mutations of valid PNG, JPEG, GIF, WebP, BMP and TIFF files (bit flips, interesting
  integers in the headers, truncation, deleted, repeated and foreign chunks);
- valid files of random modes, sizes (1 to 700 pixels a side) and contents
  (constant, noise, lines, NaN and infinite floats), which reach the preprocessing.

Anything but ``RequestError``/``PreprocessError`` is a finding. The process caps its
own address space (``--memory-mb`` above what it uses after start-up), so a runaway
allocation is a finding too, not a machine out of memory.

    python -m tests.fuzz --seed 0 --mutations 150 --pictures 1000   # prints JSON
"""

import argparse
import io
import json
import resource
import sys
import time
import traceback
import warnings

import numpy as np
from PIL import Image, ImageDraw

# Header fields hold sizes and offsets: values at the edges of their ranges find the bugs.
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]
SIZES = [1, 2, 3, 5, 8, 27, 28, 29, 47, 48, 49, 64, 255, 256, 257, 600]
# The formats that store each mode (Pillow's encoders).
FORMATS = {
    "L": ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"],
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "P": ["PNG", "GIF", "BMP", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
    "1": ["PNG", "GIF", "BMP", "TIFF"],
    "CMYK": ["JPEG", "TIFF"],
    "YCbCr": ["JPEG"],
    "LAB": ["TIFF"],
}


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def seed_files() -> dict[str, bytes]:
    """Valid files of a drawn 7 in every format and the modes each format is commonly met in."""
    grey = Image.new("L", (60, 48), 230)
    ImageDraw.Draw(grey).line([(12, 10), (48, 10), (24, 40)], fill=20, width=5)
    rgb = grey.convert("RGB")
    rgba = rgb.copy()
    rgba.putalpha(grey.point(lambda v: 255 - v))
    palette = rgb.quantize(colors=8)
    sixteen = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    rotated = Image.Exif()
    rotated[0x0112] = 6  # EXIF orientation: rotate on decoding
    return {
        "png-L": encode(grey, "PNG"),
        "png-RGBA": encode(rgba, "PNG"),
        "png-P-transparent": encode(palette, "PNG", transparency=0),
        "png-I16": encode(sixteen, "PNG"),
        "png-1": encode(grey.convert("1"), "PNG"),
        "jpeg-L": encode(grey, "JPEG", quality=80),
        "jpeg-progressive": encode(rgb, "JPEG", quality=75, progressive=True),
        "jpeg-CMYK": encode(rgb.convert("CMYK"), "JPEG"),
        "jpeg-exif-rotated": encode(rgb, "JPEG", exif=rotated.tobytes()),
        "gif": encode(palette, "GIF"),
        "gif-animated": encode(palette, "GIF", save_all=True, append_images=[palette.rotate(10)], duration=100),
        "webp-lossy": encode(rgb, "WEBP", quality=70),
        "webp-lossless-RGBA": encode(rgba, "WEBP", lossless=True),
        "bmp-RGB": encode(rgb, "BMP"),
        "bmp-P": encode(palette, "BMP"),
        "bmp-1": encode(grey.convert("1"), "BMP"),
        "tiff-L": encode(grey, "TIFF"),
        "tiff-lzw-RGB": encode(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-deflate-RGBA": encode(rgba, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-packbits-P": encode(palette, "TIFF", compression="packbits"),
        "tiff-I16": encode(sixteen, "TIFF"),
        "tiff-F": encode(Image.fromarray(np.asarray(grey).astype(np.float32) / 255), "TIFF"),
        "tiff-jpeg": encode(rgb, "TIFF", compression="jpeg"),
    }


def mutate(data: bytes, rng: np.random.Generator, pool: list[bytes]) -> bytes:
    """``data`` with 1-4 random edits, most of them in the first 96 bytes (the headers)."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        if not out:
            out = bytearray(rng.integers(0, 256, 16, dtype=np.uint8).tobytes())
        n = len(out)
        at = int(rng.integers(0, min(n, 96))) if rng.random() < 0.6 else int(rng.integers(0, n))
        edit = int(rng.integers(0, 8))
        if edit == 0:
            out[at] ^= 1 << int(rng.integers(0, 8))
        elif edit == 1:
            out[at] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
        elif edit == 2:
            width = int(rng.choice([2, 4]))
            value = int(rng.choice(INTERESTING)) & ((1 << (8 * width)) - 1)
            out[at : at + width] = value.to_bytes(width, "big" if rng.random() < 0.5 else "little")
        elif edit == 3:
            del out[int(rng.integers(0, n)) :]
        elif edit == 4:
            start = int(rng.integers(0, n))
            del out[start : start + int(rng.integers(1, 64))]
        elif edit == 5:
            start = int(rng.integers(0, n))
            out[at:at] = out[start : start + int(rng.integers(1, 64))]
        elif edit == 6:
            out[at:at] = rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
        else:
            other = pool[int(rng.integers(0, len(pool)))]
            out = out[: int(rng.integers(0, n))] + other[int(rng.integers(0, len(other))) :]
    return bytes(out)


def _content(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Intensities in [0, 1]: constant, noise, a ramp, speckle, two lines or a block."""
    kind = int(rng.integers(0, 6))
    if kind == 0:
        return np.full((height, width), rng.uniform(0, 1))
    if kind == 1:
        return rng.random((height, width))
    if kind == 2:
        return np.linspace(0, 1, width)[None, :].repeat(height, axis=0)
    if kind == 3:
        return (rng.random((height, width)) < rng.uniform(0, 1)).astype(float)
    a = np.full((height, width), 0.0 if kind == 4 else 0.9)
    y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
    if kind == 4:
        a[y, :], a[:, x] = 1.0, 1.0
    else:
        a[y : y + max(1, height // 3), x : x + max(1, width // 5)] = 0.1
    return a


def random_picture(rng: np.random.Generator) -> tuple[str, bytes]:
    """(description, file bytes) of a valid picture of a random mode, size, content and format."""
    mode = list(FORMATS)[int(rng.integers(0, len(FORMATS)))]
    height, width = (int(rng.choice(SIZES)) if rng.random() < 0.7 else int(rng.integers(1, 701)) for _ in range(2))
    c = _content(rng, height, width)
    if mode == "F":
        a = (c * rng.choice([1.0, 255.0, 65535.0, 1e30, -1.0])).astype(np.float32)
        if rng.random() < 0.3:
            a[int(rng.integers(0, height)), int(rng.integers(0, width))] = rng.choice([np.nan, np.inf, -np.inf])
        image = Image.fromarray(a, "F")
    elif mode == "I":
        offset = 1000 if rng.random() < 0.2 else 0  # some negative values
        image = Image.fromarray((c * rng.choice([255, 65535, 2**31 - 1]) - offset).astype(np.int32))
    elif mode == "I;16":
        image = Image.fromarray((c * 65535).astype(np.uint16))
    else:
        image = Image.fromarray((c * 255).astype(np.uint8), "L")
        if mode == "P":
            image = image.convert("RGB").quantize(colors=int(rng.integers(1, 17)))
        elif mode in ("RGBA", "LA"):
            image = image.convert(mode[:-1])
            image.putalpha(Image.fromarray((_content(rng, height, width) * 255).astype(np.uint8), "L"))
        elif mode in ("RGB", "CMYK", "YCbCr", "LAB"):
            image = image.convert("RGB").convert(mode)
        elif mode == "1":
            image = image.convert("1")
    fmt = FORMATS[mode][int(rng.integers(0, len(FORMATS[mode])))]
    params = {"transparency": 0} if fmt == "PNG" and mode == "P" and rng.random() < 0.5 else {}
    return f"{mode} {width}x{height} {fmt}", encode(image, fmt, **params)


def cap_memory(extra_mb: int) -> None:
    """Limit this process's address space to what it maps now plus ``extra_mb``."""
    with open("/proc/self/status") as status:
        mapped_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = (mapped_kb * 1024) + extra_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def run(seed: int, mutations: int, pictures: int) -> dict:
    """Feed the generated cases through decoding and preprocessing; what escaped, how long, how much memory."""
    from handler.decode import RequestError, request_image
    from handler.preprocess import PreprocessError, to_model_input

    rng = np.random.default_rng(seed)
    seeds = seed_files()
    pool = list(seeds.values())
    cases = [(f"{name} mutation {k}", mutate(seeds[name], rng, pool)) for name in seeds for k in range(mutations)]
    report = {"seed": seed, "cases": 0, "answered": 0, "client_errors": 0, "findings": [], "max_seconds": 0.0}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report["max_rss_growth_mb"] = 0.0

    def one(label: str, data: bytes) -> None:
        start = time.perf_counter()
        try:
            to_model_input(request_image({"body": data}))
            report["answered"] += 1
        except (RequestError, PreprocessError):
            report["client_errors"] += 1
        except Exception as error:  # anything else is a finding (MemoryError included)
            report["findings"].append({"case": label, "error": traceback.format_exception_only(error)[-1].strip()})
        report["cases"] += 1
        report["max_seconds"] = max(report["max_seconds"], time.perf_counter() - start)
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kb) / 1024
        report["max_rss_growth_mb"] = max(report["max_rss_growth_mb"], growth)

    for label, data in cases:
        one(label, data)
    for k in range(pictures):
        description, data = random_picture(rng)
        one(f"picture {k}: {description}", data)
    report["max_seconds"] = round(report["max_seconds"], 3)
    report["max_rss_growth_mb"] = round(report["max_rss_growth_mb"], 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seeds every generated case (default: %(default)s)")
    parser.add_argument("--mutations", type=int, default=150, help="mutated files per seed file (default: %(default)s)")
    parser.add_argument("--pictures", type=int, default=1000, help="random valid pictures (default: %(default)s)")
    parser.add_argument(
        "--memory-mb", type=int, default=1024, help="address space allowed above start-up (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.mutations < 0 or args.pictures < 0 or args.memory_mb < 64:
        print("error: --mutations and --pictures must be >= 0, --memory-mb >= 64", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)  # as a worker; no thread pools growing the address space mid-run
    from handler.decode import request_image
    from handler.preprocess import to_model_input

    to_model_input(request_image({"body": seed_files()["png-L"]}))  # warm up before the cap
    warnings.simplefilter("ignore")  # Pillow warns about every corrupt tag it skips
    cap_memory(args.memory_mb)
    print(json.dumps(run(args.seed, args.mutations, args.pictures), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
