"""What the calibration (tempered confidence + not-a-digit check) costs the handler per image, as JSON.

Runs ``scripts.bench.serve.ceiling.single_image_ms`` (the whole handler and each stage, one torch
thread, batch of one, best of ``--repeats`` per picture, median over the pictures) and
``scripts.bench.serve.ceiling.ceiling`` (images/s and CPU ms per image of one single-threaded handler
process at batch ``--batch-size``, as the server batches under load) on the same pictures, with
the checkpoint alone and with its calibration, in alternating rounds so that a machine's drift
hits both alike.

    python -m scripts.bench.calibration --checkpoint mnist_cnn.pth --output reports/bench_check.json
"""

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from model.calibration import calibration_path
from scripts.bench.serve.ceiling import ceiling, single_image_ms
from scripts.cli import OneLineParser, positive_float, positive_int, print_report
from scripts.serving.paths import SAMPLES


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m scripts.bench.calibration", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"), help="default: %(default)s")
    parser.add_argument("--pictures", type=Path, nargs="+", help="default: samples/ except blank.png")
    parser.add_argument("--repeats", type=positive_int, default=30, help="timings per picture and stage (default: 30)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="of the ceiling runs (default: %(default)s)")
    parser.add_argument("--seconds", type=positive_float, default=5.0, help="per ceiling run (default: %(default)s)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    calibration = calibration_path(args.checkpoint)
    if not args.checkpoint.is_file() or not calibration.is_file():
        print(
            f"error: needs {args.checkpoint} and {calibration}: run `make train` (or `make calibrate`)", file=sys.stderr
        )
        return 1
    pictures = args.pictures or sorted(p for p in SAMPLES.iterdir() if p.name != "blank.png")
    bodies = [p.read_bytes() for p in pictures]
    rounds = {"without": [], "with": []}
    batched = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as alone:
        bare = Path(alone, args.checkpoint.name)  # the same weights, no calibration next to them
        shutil.copyfile(args.checkpoint, bare)
        for _ in range(args.rounds):
            for name, checkpoint in (("without", bare), ("with", args.checkpoint)):
                rounds[name].append(single_image_ms(checkpoint, bodies, args.repeats))
                batched[name].append(ceiling(checkpoint, bodies, args.batch_size, 1, args.seconds))
    report = {"checkpoint": str(args.checkpoint), "pictures": [p.name for p in pictures], "ms": {}}
    for name, results in rounds.items():
        report["ms"][name] = {stage: min(r[stage] for r in results) for stage in results[0]}
    without, with_ = report["ms"]["without"], report["ms"]["with"]
    report["handler_overhead"] = round(with_["handler"] / without["handler"] - 1, 4)
    report["forward_overhead_ms"] = round(with_["forward"] - without["forward"], 4)
    report["rounds_handler_ms"] = {k: [r["handler"] for r in v] for k, v in rounds.items()}
    report["median_handler_ms"] = {k: statistics.median(r["handler"] for r in v) for k, v in rounds.items()}
    # Batched: the best round's images/s and the least CPU per image.
    report[f"batch_{args.batch_size}"] = {
        k: {"images_per_s": round(max(r for r, _ in v), 1), "cpu_ms_per_image": round(min(c for _, c in v), 4)}
        for k, v in batched.items()
    }
    cpu = {k: v["cpu_ms_per_image"] for k, v in report[f"batch_{args.batch_size}"].items()}
    report[f"batch_{args.batch_size}_overhead"] = round(cpu["with"] / cpu["without"] - 1, 4)
    print_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
