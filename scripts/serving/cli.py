"""``python -m scripts.serving``: the Makefile's serving targets.

python -m scripts.serving archive --checkpoint mnist_cnn.pth --model-store model_store
python -m scripts.serving start          # waits until the workers are READY
python -m scripts.serving status | stop | token | renew-key | logs
python -m scripts.serving scale 2
python -m scripts.serving predict samples/digit.png
"""

import os
import sys
from pathlib import Path

import requests

from scripts.cli import OneLineParser, positive_int
from scripts.serving.archive import NO_CHECK_NOTE, build_archive, has_digit_check
from scripts.serving.client import raise_for_status
from scripts.serving.config import configure, served_archive
from scripts.serving.errors import ServeError
from scripts.serving.foreground import DRAIN_SECONDS, WARMUP_REQUESTS, run
from scripts.serving.health import problem as health_problem
from scripts.serving.image import stage_image
from scripts.serving.kserve import kserve_configuration, write_kserve_store
from scripts.serving.process import READY_TIMEOUT, Server, log_tail, start
from scripts.serving.warmup import WARMUP_SECONDS, warm_up

PORT_OPTIONS = ("inference", "management", "metrics", "grpc_inference", "grpc_management")


def _running(args) -> Server:
    server = Server.load(args.run_dir)
    if server is None:
        raise ServeError("TorchServe is not running: `make serve` starts it")
    return server


def _print_workers(workers: list) -> None:
    for worker in workers:
        print(f"  worker {worker.get('id')}: {worker.get('status')} (pid {worker.get('pid')})")


def _print_endpoints(server: Server) -> None:
    print(f"  inference   {server.predictions_url}")
    print(f"  management  {server.management}/models/{server.model}")
    print(f"  metrics     {server.metrics}/metrics")
    print(f"  keys        {server.key_file} (`make token`; `make renew-key` after {_expiry(server)})")
    print("Try:")
    samples = sorted(Path("samples").glob("*.png"))
    print(f"  {server.curl_line(str(samples[0]) if samples else 'digit.png')}")


def _expiry(server: Server) -> str:
    try:
        return server.keys()["inference"]["expiration time"]
    except (ServeError, KeyError):
        return "expiry"


def cmd_archive(args) -> None:
    print(f"wrote {build_archive(args.checkpoint, args.model_store)}")


def cmd_kserve_store(args) -> None:
    store = write_kserve_store(args.checkpoint, args.out, kserve_configuration(workers=args.workers))
    print(f"wrote {store}/config/config.properties and {store}/model-store/mnist.mar (KServe's /mnt/models)")


def cmd_image_context(args) -> None:
    print(f"staged the image's build context in {stage_image(args.checkpoint, args.out)}")


def cmd_run(args) -> int:
    return run(args.run_dir, args.warmup, args.drain, warmup_requests=args.warmup_requests)


def cmd_health(args) -> int:
    problem = health_problem(args.run_dir, live=args.live)
    print(problem or "healthy")
    return 1 if problem else 0


def cmd_start(args) -> None:
    running = Server.load(args.run_dir)
    if running is not None:
        print(f"TorchServe is already running (pid {running.pid}); nothing changed.")
        _print_endpoints(running)
        return
    ports = {name: getattr(args, f"{name}_port") for name in PORT_OPTIONS if getattr(args, f"{name}_port")}
    # Rendered for this machine's CPUs (scripts/serving/machine.py). Relative paths stay relative:
    # TorchServe runs from here, as with the shipped file.
    config = configure(base=args.config, root=None, ports=ports).write(Path(args.run_dir) / "config.properties")
    print("starting TorchServe, waiting for the model's workers to be READY ...", flush=True)
    server = start(config, args.run_dir, cwd=Path.cwd(), timeout=args.timeout)
    print(f"TorchServe is up (pid {server.pid}), logs in {args.run_dir}/")
    if args.warmup > 0:
        print(f"warming up (at most {args.warmup:g} s; WARMUP=0 skips) ...", flush=True)
        print(warm_up(server, server.pid, args.warmup).summary())
    print("ready")
    if has_digit_check(served_archive(config)) is False:
        print(NO_CHECK_NOTE)
    _print_workers(server.describe()["workers"])
    _print_endpoints(server)


def cmd_running(args) -> int:
    return 0 if Server.load(args.run_dir) is not None else 1


def cmd_stop(args) -> None:
    server = Server.load(args.run_dir)
    if server is None:
        print("TorchServe is not running.")
        Path(args.run_dir, "server.json").unlink(missing_ok=True)
        return
    server.stop()
    print(f"TorchServe (pid {server.pid}) stopped.")


def cmd_status(args) -> int:
    server = Server.load(args.run_dir)
    if server is None:
        print("TorchServe is not running.")
        return 0
    description = server.describe()
    print(f"TorchServe is running (pid {server.pid}); model {server.model}, batch size {description.get('batchSize')}")
    _print_workers(description["workers"])
    _print_endpoints(server)
    problem = health_problem(args.run_dir, live=True)
    if problem:
        print(f"error: unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


def cmd_scale(args) -> None:
    workers = _running(args).scale(args.workers)
    print(f"{len(workers)} worker(s):")
    _print_workers(workers)


def cmd_predict(args) -> None:
    if not args.image:
        raise ServeError("which image? make predict IMG=path/to/digit.png")
    image = Path(args.image)
    if not image.is_file():
        raise ServeError(f"no image at {image}: give IMG=path/to/picture")
    response = _running(args).predict(image)
    raise_for_status(response)
    print(response.text)


def cmd_token(args) -> None:
    server = _running(args)
    for kind, entry in server.keys().items():
        expiry = entry.get("expiration time", "never")
        print(f"  {kind:<10} {entry['key']}   (expires {expiry})")


def cmd_renew_key(args) -> None:
    server = _running(args)
    kinds = ("inference", "management") if args.kind == "all" else (args.kind,)
    for kind in kinds:
        print(f"  new {kind} key: {server.renew_key(kind)}")


def cmd_logs(args) -> None:
    print(log_tail(args.run_dir, args.lines))


def _port(text: str) -> int:
    port = positive_int(text)
    if port > 65535:
        raise ValueError(text)
    return port


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m scripts.serving", description="Build the model archive and run TorchServe.")
    parser.add_argument("--run-dir", type=Path, default=Path("logs"), help="server state and logs (default: logs)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    sub = commands.add_parser("archive", help="build <model-store>/mnist.mar")
    sub.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"))
    sub.add_argument("--model-store", type=Path, default=Path("model_store"))
    sub.set_defaults(run=cmd_archive)

    sub = commands.add_parser("kserve-store", help="write the storage layout KServe's pytorch runtime mounts")
    sub.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"))
    sub.add_argument("--out", type=Path, default=Path("build/kserve"))
    sub.add_argument(
        "--workers",
        type=positive_int,
        help="workers per pod (default: one per CPU of the limit in deploy/kserve/inferenceservice.yaml)",
    )
    sub.set_defaults(run=cmd_kserve_store)

    sub = commands.add_parser("start", help="start TorchServe and wait for READY workers")
    sub.add_argument("--config", type=Path, default=Path("config.properties"))
    for name in PORT_OPTIONS:
        flag = name.replace("_", "-")
        sub.add_argument(f"--{flag}-port", type=_port, help=f"override the config's {flag.replace('-', ' ')} port")
    sub.add_argument("--timeout", type=float, default=READY_TIMEOUT, help="seconds to wait for READY workers")
    sub.add_argument(
        "--warmup",
        type=float,
        default=WARMUP_SECONDS,
        help=f"seconds of warm-up traffic at most before reporting ready, 0 for none (default {WARMUP_SECONDS:g})",
    )
    sub.set_defaults(run=cmd_start)

    sub = commands.add_parser(
        "run", help="TorchServe in the foreground (the container's entrypoint): warm-up, ready marker, graceful stop"
    )
    sub.add_argument(
        "--warmup",
        type=float,
        default=float(os.environ.get("MNIST_SERVE_WARMUP", WARMUP_SECONDS)),
        help=f"most seconds of warm-up before ready (env MNIST_SERVE_WARMUP, default {WARMUP_SECONDS:g})",
    )
    sub.add_argument(
        "--warmup-requests",
        type=int,
        default=int(os.environ.get("MNIST_SERVE_WARMUP_REQUESTS", WARMUP_REQUESTS)),
        help="fewest predictions before the warm-up may end on a quiet JIT "
        f"(env MNIST_SERVE_WARMUP_REQUESTS, default {WARMUP_REQUESTS})",
    )
    sub.add_argument(
        "--drain",
        type=float,
        default=float(os.environ.get("MNIST_SERVE_DRAIN", DRAIN_SECONDS)),
        help=f"seconds of serving after SIGTERM before stopping (env MNIST_SERVE_DRAIN, default {DRAIN_SECONDS:g})",
    )
    sub.set_defaults(run=cmd_run)
    sub = commands.add_parser("health", help="exit 0 when warmed up and a worker is READY (as the HEALTHCHECK)")
    sub.add_argument("--live", action="store_true", help="liveness: skip the warm-up's ready marker")
    sub.set_defaults(run=cmd_health)
    sub = commands.add_parser("image-context", help="stage the container image's build context (make image)")
    sub.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"))
    sub.add_argument("--out", type=Path, default=Path("build/image"))
    sub.set_defaults(run=cmd_image_context)

    commands.add_parser("stop", help="stop TorchServe").set_defaults(run=cmd_stop)
    commands.add_parser("running", help="exit 0 when the server is running, 1 when not").set_defaults(run=cmd_running)
    commands.add_parser("status", help="the server and its workers").set_defaults(run=cmd_status)
    commands.add_parser("token", help="print the API keys").set_defaults(run=cmd_token)

    sub = commands.add_parser("renew-key", help="replace expired keys through the token API")
    sub.add_argument("kind", nargs="?", choices=("inference", "management", "all"), default="all")
    sub.set_defaults(run=cmd_renew_key)

    sub = commands.add_parser("scale", help="set the number of workers (synchronously)")
    sub.add_argument("workers", type=positive_int)
    sub.set_defaults(run=cmd_scale)

    sub = commands.add_parser("predict", help="send one image to the inference API")
    sub.add_argument("image", nargs="?", default="")
    sub.set_defaults(run=cmd_predict)

    sub = commands.add_parser("logs", help="the last lines of the server's logs")
    sub.add_argument("--lines", type=positive_int, default=40)
    sub.set_defaults(run=cmd_logs)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except requests.RequestException as error:
        print(f"error: cannot reach TorchServe: {error}", file=sys.stderr)
        return 1
