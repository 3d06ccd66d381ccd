"""Traffic for a monitoring demonstration: good pictures, non-digits and bad requests to the running server.

    python -m scripts.monitoring.traffic --minutes 6 --concurrency 4

Each client loops over samples/ (digits), a few drawn non-digits and, for ``--bad-share`` of the
requests, bytes that are no picture, until the time is up; a burst of bad requests in the middle
shows the 4xx share and its alert. Prints the counts it sent.
"""

import argparse
import io
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from PIL import Image, ImageDraw

from scripts.cli import fail, fraction, positive_float, positive_int
from scripts.serving.process import Server

ROOT = Path(__file__).resolve().parents[2]


def non_digits() -> list[bytes]:
    """Drawn pictures that are no digits: shapes on coloured backgrounds."""
    pictures = []
    for seed in range(4):
        rng = random.Random(seed)
        image = Image.new("RGB", (64, 48), tuple(rng.randrange(120, 255) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = rng.randrange(0, 40), rng.randrange(0, 28)
            box = [x, y, x + rng.randrange(10, 24), y + rng.randrange(8, 20)]
            colour = tuple(rng.randrange(0, 120) for _ in range(3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    return pictures


def run(server: Server, seconds: float, concurrency: int, bad_share: float, non_digit_share: float) -> Counter:
    digits = [path.read_bytes() for path in sorted((ROOT / "samples").glob("[0-9]_*"))]
    others, counts, lock = non_digits(), Counter(), threading.Lock()
    url, auth = f"{server.inference}/predictions/{server.model}", server.auth("inference")
    deadline = time.monotonic() + seconds
    burst = (time.monotonic() + seconds * 0.45, time.monotonic() + seconds * 0.6)

    def client(seed: int):
        rng, session = random.Random(seed), requests.Session()
        while (now := time.monotonic()) < deadline:
            share = 0.8 if burst[0] <= now < burst[1] else bad_share
            roll = rng.random()
            body, kind = (b"not a picture", "bad") if roll < share else (rng.choice(digits), "digit")
            if kind == "digit" and rng.random() < non_digit_share:
                body, kind = rng.choice(others), "non-digit"
            status = session.post(url, data=body, headers=auth, timeout=30).status_code
            with lock:
                counts[f"{kind} {status}"] += 1

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.monitoring.traffic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=ROOT / "logs", help="the running server's run folder (logs)")
    parser.add_argument("--minutes", type=positive_float, default=6.0, help="how long (6)")
    parser.add_argument("--concurrency", type=positive_int, default=4, help="clients at once (4)")
    parser.add_argument("--bad-share", type=fraction, default=0.05, help="share of bad requests outside the burst")
    parser.add_argument("--non-digit-share", type=fraction, default=0.1, help="share of non-digit pictures")
    args = parser.parse_args(argv)
    server = Server.load(args.run_dir)
    if server is None:
        return fail(f"no TorchServe running from {args.run_dir}: `make serve` first")
    print(f"sending for {args.minutes:g} minutes with {args.concurrency} clients...", flush=True)
    counts = run(server, args.minutes * 60, args.concurrency, args.bad_share, args.non_digit_share)
    for key, count in sorted(counts.items()):
        print(f"  {key}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
