"""The first requests after ready: a fresh TorchServe measured with and without the warm-up, against a warm one.

    python -m scripts.bench.serve.coldstart            # -> reports/bench_coldstart.json

For each case a new server starts (the shipped configuration, free loopback ports); ``warm-up``
runs :func:`scripts.serving.warmup.warm_up` as ``make serve`` does before it says ready, ``none``
sends straight away. Then wrk sends ``--requests`` answers at ``--concurrency``: the first requests
a user would see. The same server then warms up until its JIT is quiet and is measured again:
the warm reference each case is compared with.
"""

import sys
import tempfile
from pathlib import Path

from scripts.bench.serve.load import wrk
from scripts.bench.serve.report import machine
from scripts.bench.serve.sweep import warm_up as warm_until_quiet
from scripts.cli import OneLineParser, fail, positive_int, write_report
from scripts.serving.errors import ServeError
from scripts.serving.process import serve_checkpoint
from scripts.serving.warmup import WARMUP_SECONDS, sample_bodies, warm_up

CASES = ("none", "warm-up")
KEEP = ("requests", "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "non_200")


def measure_case(checkpoint: Path, workdir: Path, warmup_seconds: float, count: int, concurrency: int) -> dict:
    bodies = sample_bodies()
    server = serve_checkpoint(checkpoint, workdir)
    try:
        warmup = warm_up(server, server.pid, warmup_seconds)
        first = wrk(server, bodies, concurrency, count)
        rounds = warm_until_quiet(server, bodies, 5000, 15)
        warm = wrk(server, bodies, concurrency, count)
    finally:
        server.stop()
    return {
        "warmup": {"seconds": warmup.seconds, "requests": warmup.requests, "jit_quiet": warmup.jit_quiet},
        "first": {k: first[k] for k in KEEP},
        "warm": {**{k: warm[k] for k in KEEP}, "warmup_rounds": rounds},
        "p99_over_warm": round(first["p99_ms"] / warm["p99_ms"], 2),
    }


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m scripts.bench.serve.coldstart", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"))
    parser.add_argument("--requests", type=positive_int, default=10_000, help="answers measured (10000)")
    parser.add_argument("--concurrency", type=positive_int, default=32, help="connections (32)")
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS, help=f"most warm-up s ({WARMUP_SECONDS:g})")
    parser.add_argument("--repeats", type=positive_int, default=1, help="runs of each case (1)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="cases to run (both)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_coldstart.json"))
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: no checkpoint at {args.checkpoint}: run `make train` first", file=sys.stderr)
        return 1
    report = {"machine": machine(), "requests": args.requests, "concurrency": args.concurrency, "cases": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as work:
            for repeat in range(args.repeats):
                for name in args.cases:
                    seconds = args.warmup if name == "warm-up" else 0.0
                    case = measure_case(
                        args.checkpoint, Path(work, f"{name}-{repeat}"), seconds, args.requests, args.concurrency
                    )
                    report["cases"].append({"case": name, **case})
                    print(f"{name}: first {case['first']} / warm {case['warm']}", flush=True)
    except ServeError as error:
        return fail(str(error))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
