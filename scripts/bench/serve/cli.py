"""``python -m scripts.bench.serve``: run the sweep (or attach to a running server) and write the reports."""

import json
import os
import sys
from pathlib import Path

from scripts.bench.serve.ceiling import ceiling, single_image_ms
from scripts.bench.serve.report import machine, markdown, plot, request_profile
from scripts.bench.serve.schema import markdown_fields
from scripts.bench.serve.sweep import measure_server, sweep
from scripts.cli import OneLineParser, positive_float, positive_int
from scripts.serving.config import configure
from scripts.serving.errors import ServeError
from scripts.serving.process import Server
from scripts.serving.warmup import sample_bodies

CONCURRENCY = (1, 8, 32, 64)
CEILING_BATCHES = (1, 8, 32)
# "default" is the shipped configuration; the others: batching off, one and two workers;
# batching on with a short and a longer delay, and bigger batches.
CONFIGS = ("default", "w1-b1-d0", "w2-b1-d0", "w1-b8-d1", "w2-b8-d5", "w2-b16-d2")
WARMUP_ROUNDS = 15


def non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="python -m scripts.bench.serve",
        description="Serving benchmark: TorchServe's images/s and latency against the in-process ceiling.",
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"), help="weights (mnist_cnn.pth)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help=f"default: {' '.join(CONFIGS)}")
    parser.add_argument("--concurrency", nargs="+", type=positive_int, default=list(CONCURRENCY), help="1 8 32 64")
    # A p99 is the 100th-worst of 10,000 answers: steadier than the 40th of 4,000.
    parser.add_argument("--requests", type=positive_int, default=10000, help="answers per point (10000)")
    parser.add_argument("--requests-c1", type=positive_int, default=3000, help="answers per point at c=1 (3000)")
    parser.add_argument("--warmup", type=non_negative_int, default=5000, help="answers per warm-up round (5000)")
    parser.add_argument(
        "--warmup-rounds",
        type=positive_int,
        default=WARMUP_ROUNDS,
        help=f"most warm-up rounds: they stop once the JVM's JIT compilers are quiet ({WARMUP_ROUNDS})",
    )
    parser.add_argument("--ceiling-seconds", type=positive_float, default=3.0, help="seconds per ceiling point (3)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra config.properties overrides")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests, one configuration")
    parser.add_argument("--attach", type=Path, metavar="RUN_DIR", help="use the server running from RUN_DIR (logs)")
    parser.add_argument("--fields", action="store_true", help="print the table of a point's fields and exit")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_serve.json"), help="JSON report")
    parser.add_argument("--plot", type=Path, default=Path("reports/bench_serve.png"), help="plot")
    parser.add_argument("--markdown", type=Path, default=Path("reports/bench_serve.md"), help="markdown table")
    return parser


def run(args, log=print) -> dict:
    if any("=" not in item for item in args.set):
        raise ServeError(f"--set takes key=value pairs, got {args.set}")
    extra = dict(item.split("=", 1) for item in args.set)
    if args.quick:  # one configuration, one concurrency, a few hundred requests
        args.configs = ["default"] if args.configs == list(CONFIGS) else args.configs[:1]
        args.concurrency = [8] if args.concurrency == list(CONCURRENCY) else args.concurrency[:1]
        args.requests = args.requests_c1 = 300
        args.warmup, args.warmup_rounds, args.ceiling_seconds = 100, 1, 0.5
    if not args.checkpoint.is_file():
        raise ServeError(f"no checkpoint at {args.checkpoint}: run `make train` first")
    attached = None
    if args.attach:
        attached = Server.load(args.attach)
        if attached is None:
            raise ServeError(f"no running TorchServe in {args.attach}: `make serve` first, or drop --attach")

    def counts(c: int) -> int:
        return args.requests_c1 if c == 1 else args.requests

    bodies = sample_bodies()
    body_bytes = [p.read_bytes() for p in bodies]
    shipped = configure().model
    report = {"machine": machine(), "samples": [p.name for p in bodies], "defaults": shipped}
    cores = os.cpu_count() or 1
    log(f"ceiling: handler in-process, {cores} process(es) x 1 torch thread, batch sizes {CEILING_BATCHES} ...")
    report["single_image_ms"] = single_image_ms(args.checkpoint, body_bytes, repeats=5 if args.quick else 30)
    log(f"  one image alone {report['single_image_ms']}")

    warmup = (args.warmup, args.warmup_rounds)
    if attached is not None:
        points = measure_server(attached, "attached", bodies, args.concurrency, counts, warmup, log)
    else:
        points = sweep(args.checkpoint, args.configs, bodies, args.concurrency, counts, warmup, extra, log)
    batches = sorted(set(CEILING_BATCHES) | {p.batch_size for p in points})
    measured = {b: ceiling(args.checkpoint, body_bytes, b, cores, args.ceiling_seconds) for b in batches}
    rates = {b: round(rate, 1) for b, (rate, _) in measured.items()}
    cpu_per_image = {b: round(cpu, 3) for b, (_, cpu) in measured.items()}
    report["ceiling"] = {"processes": cores, "torch_threads_each": 1, "images_per_s": rates}
    report["ceiling"]["cpu_ms_per_image"] = cpu_per_image
    log(f"ceiling: {rates} images/s; CPU ms per image {cpu_per_image}")
    for point in points:
        point.ceiling_images_per_s = rates[point.batch_size]
        point.fraction_of_ceiling = round(point.rps / point.ceiling_images_per_s, 3)
        # The same ratio in CPU time: the handler's in-process CPU per image over all the CPU one
        # served request costs (frontend, workers, wrk). Unlike req/s it holds on a busy machine.
        total_cpu = sum(point.cpu_ms_per_request.values())
        point.cpu_efficiency = round(cpu_per_image[point.batch_size] / total_cpu, 3) if total_cpu else None
    report["points"] = [point.to_json() for point in points]
    single = [p for p in report["points"] if p["concurrency"] == 1]
    if single:
        report["profile_c1"] = request_profile(single[0], report["single_image_ms"])
    report["settings"] = {
        "requests": args.requests,
        "requests_c1": args.requests_c1,
        "warmup": args.warmup,
        "warmup_rounds_max": args.warmup_rounds,
        "set": extra,
    }
    return report


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.fields:
        print(markdown_fields(), end="")
        return 0
    try:
        report = run(args)
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.plot)
    table = markdown(report)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table)
    print(table)
    print(f"wrote {args.out}, {args.plot}, {args.markdown}")
    return 0
