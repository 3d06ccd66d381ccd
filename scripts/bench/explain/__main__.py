"""``python -m scripts.bench.explain``: the command line (see the package's docstring)."""

import json
import sys
from pathlib import Path

from scripts.bench.explain import __doc__ as DESCRIPTION
from scripts.bench.explain.inprocess import in_process, prediction_cpu_ab
from scripts.bench.explain.served import through_the_server
from scripts.bench.serve.report import machine
from scripts.cli import OneLineParser, positive_int, write_report
from scripts.serving.errors import ServeError
from scripts.serving.warmup import sample_bodies


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m scripts.bench.explain", description=DESCRIPTION.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"), help="weights (mnist_cnn.pth)")
    parser.add_argument("--baseline-root", type=Path, help="a checkout without explanations, served alongside")
    parser.add_argument("--repeats", type=positive_int, default=40, help="in-process timings per figure (40)")
    parser.add_argument(
        "--explanations", type=positive_int, default=60, help="sequential requests through the server (60)"
    )
    parser.add_argument("--requests", type=positive_int, default=5000, help="answers per concurrency-32 point (5000)")
    parser.add_argument("--rounds", type=positive_int, default=2, help="concurrency-32 points per server and phase (2)")
    parser.add_argument("--warmup", type=positive_int, default=3000, help="answers per warm-up round (3000)")
    parser.add_argument("--skip-server", action="store_true", help="in-process figures only")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_explain.json"), help="JSON report")
    return parser


def check(args) -> None:
    if not args.checkpoint.is_file():
        raise ServeError(f"no checkpoint at {args.checkpoint}: run `make train` first")
    if args.baseline_root and not (args.baseline_root / "handler" / "mnist_handler.py").is_file():
        raise ServeError(f"{args.baseline_root} is not a checkout of this bundle (no handler/mnist_handler.py)")
    if args.repeats < 2:
        raise ServeError("--repeats starts at 2 (a median and a 90th percentile)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check(args)
        bodies = sample_bodies()
        body_bytes = [p.read_bytes() for p in bodies]
        command = " ".join(["python -m scripts.bench.explain", *(argv or sys.argv[1:])])
        report = {"machine": machine(), "command": command}
        print("in-process, one torch thread ...", flush=True)
        report["in_process"] = in_process(args.checkpoint, body_bytes, args.repeats)
        print(json.dumps(report["in_process"], indent=1), flush=True)
        if args.baseline_root:
            report["prediction_cpu_ab"] = prediction_cpu_ab(args.checkpoint, body_bytes, args.baseline_root, 20)
            print(json.dumps(report["prediction_cpu_ab"]), flush=True)
        if not args.skip_server:
            report["server"] = through_the_server(args, bodies, lambda line: print(line, flush=True))
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in report.get("server", {}).items() if k != "predictions_c32"}, indent=1))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
