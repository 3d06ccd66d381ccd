"""``python -m scripts.bench.serve``: run the sweep (or attach to a running server) and write the reports."""

import json
import os
import sys
from pathlib import Path

from scripts.bench.serve.baseline import check_tree, in_tree
from scripts.bench.serve.loads import DEFAULT_LOADS, LOADS, load_bodies
from scripts.bench.serve.report import before_after, machine, markdown, plot, request_profile
from scripts.bench.serve.schema import markdown_fields
from scripts.bench.serve.sweep import measure_server, sweep
from scripts.cli import OneLineParser, positive_float, positive_int
from scripts.serving.config import configure
from scripts.serving.errors import ServeError
from scripts.serving.process import Server

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
    parser.add_argument(
        "--loads", nargs="+", default=list(DEFAULT_LOADS), choices=list(LOADS), help=f"{' '.join(DEFAULT_LOADS)}"
    )
    parser.add_argument("--baseline", type=Path, metavar="TREE", help="also serve this checkout's code, in turns")
    parser.add_argument("--rounds", type=positive_int, default=1, help="turns each server takes per point (1)")
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

    loads = {name: load_bodies(name) for name in args.loads}
    sides = {"this": None}
    if args.baseline is not None:
        if attached is not None:
            raise ServeError("--baseline starts its own servers: drop --attach")
        sides = {"before": check_tree(args.baseline), "after": None}
    first = next(iter(loads.values()))
    shipped = configure().model
    report = {"machine": machine(), "loads": {k: [p.name for p in v] for k, v in loads.items()}, "defaults": shipped}
    report["samples"] = [p.name for p in first]
    cores = os.cpu_count() or 1
    log(f"ceiling: handler in-process, {cores} process(es) x 1 torch thread, batch sizes {CEILING_BATCHES} ...")
    repeats = 5 if args.quick else 30
    report["single_image_ms_by_load"] = {
        f"{load}/{side}": in_tree(tree, "single_image_ms", args.checkpoint, bodies, repeats)
        for load, bodies in loads.items()
        for side, tree in sides.items()
    }
    report["single_image_ms"] = report["single_image_ms_by_load"][f"{next(iter(loads))}/{list(sides)[-1]}"]
    log(f"  one image alone {report['single_image_ms_by_load']}")

    warmup = (args.warmup, args.warmup_rounds)
    if attached is not None:
        points = []
        for load, bodies in loads.items():
            for point in measure_server(attached, "attached", bodies, args.concurrency, counts, warmup, log):
                point.load = load
                points.append(point)
    else:
        points = sweep(
            args.checkpoint, args.configs, loads, sides, args.concurrency, counts, warmup, extra, log, args.rounds
        )
    batches = sorted(set(CEILING_BATCHES) | {p.batch_size for p in points})
    report["ceilings"] = {}
    for load, bodies in loads.items():
        for side, tree in sides.items():
            measured = {
                b: in_tree(tree, "ceiling", args.checkpoint, bodies, b, cores, args.ceiling_seconds) for b in batches
            }
            report["ceilings"][f"{load}/{side}"] = {
                "processes": cores,
                "torch_threads_each": 1,
                "images_per_s": {b: round(rate, 1) for b, (rate, _) in measured.items()},
                "cpu_ms_per_image": {b: round(cpu, 3) for b, (_, cpu) in measured.items()},
            }
            log(f"ceiling {load}/{side}: {report['ceilings'][f'{load}/{side}']}")
    report["ceiling"] = report["ceilings"][f"{next(iter(loads))}/{list(sides)[-1]}"]
    for point in points:
        ceiling = report["ceilings"][f"{point.load}/{point.code if point.code in sides else 'this'}"]
        point.ceiling_images_per_s = ceiling["images_per_s"][point.batch_size]
        point.fraction_of_ceiling = round(point.rps / point.ceiling_images_per_s, 3)
        # The same ratio in CPU time: the handler's in-process CPU per image over all the CPU one
        # served request costs (frontend, workers, wrk). Unlike req/s it holds on a busy machine.
        total_cpu = sum(point.cpu_ms_per_request.values())
        cpu = ceiling["cpu_ms_per_image"][point.batch_size]
        point.cpu_efficiency = round(cpu / total_cpu, 3) if total_cpu else None
    report["points"] = [point.to_json() for point in points]
    if args.baseline is not None:
        report["before_after"] = before_after(report["points"])
    single = [p for p in report["points"] if p["concurrency"] == 1]
    if single:
        report["profile_c1"] = request_profile(single[0], report["single_image_ms"])
    report["settings"] = {
        "requests": args.requests,
        "requests_c1": args.requests_c1,
        "warmup": args.warmup,
        "warmup_rounds_max": args.warmup_rounds,
        "set": extra,
        "rounds": args.rounds,
        "baseline": str(args.baseline) if args.baseline else None,
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
