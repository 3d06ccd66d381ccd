"""Build the model archive and run TorchServe for mnist-serve: the Makefile's serving targets.

    python -m scripts.serving archive --checkpoint mnist_cnn.pth --model-store model_store
    python -m scripts.serving start          # waits until the workers are READY
    python -m scripts.serving status | stop | token | renew-key | logs
    python -m scripts.serving scale 2
    python -m scripts.serving predict samples/digit.png

The running server is described by ``<run-dir>/server.json`` (its pid, temp dir, addresses);
TorchServe's pid file and worker sockets live in that private temp dir, so servers of other
projects and test servers never collide with this one.
"""

import argparse
import json
import mimetypes
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "mnist"
BIN = Path(sys.executable).parent
READY_TIMEOUT = 180.0
# Each log line once: TorchServe's default writes several lines per request (see the file).
LOG_CONFIG = ROOT / "handler" / "log4j2.xml"
# zlib-ng as libz.so.1, built by `make install` (scripts/build_zlib_ng.sh): Pillow's wheels load
# whatever libz.so.1 the dynamic linker finds, and the system's inflates PNGs several times slower.
ZLIB_NG = BIN.parent / "lib" / "zlib-ng"


class ServeError(RuntimeError):
    """A serving step failed; the message is for the user."""


# ---- archive -------------------------------------------------------------


def build_archive(checkpoint: Path, model_store: Path, model_name: str = MODEL_NAME) -> Path:
    """Package the CNN, its weights and the handler as ``<model_store>/<model_name>.mar``."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ServeError(f"no checkpoint at {checkpoint}: run `make train` first")
    model_store = Path(model_store)
    model_store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mnist-archive-") as work:
        # Extra files are copied into the archive one directory level down, so a staging dir
        # holding model/ and handler/ keeps both importable as packages inside the worker.
        stage = Path(work, "extra")
        skip = shutil.ignore_patterns("__pycache__", "*.pyc")
        for package in ("model", "handler"):
            shutil.copytree(ROOT / package, stage / package, ignore=skip)
        command = [
            str(BIN / "torch-model-archiver"),
            "--model-name",
            model_name,
            "--version",
            "1.0",
            "--model-file",
            str(ROOT / "model" / "cnn.py"),
            "--serialized-file",
            str(checkpoint),
            "--handler",
            str(ROOT / "handler" / "mnist_handler.py"),
            "--extra-files",
            str(stage),
            "--export-path",
            str(model_store),
            "--force",
        ]
        # The archiver stages under $TMPDIR/<model name>: give each build its own.
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TMPDIR": work})
    if result.returncode != 0:
        raise ServeError(f"torch-model-archiver failed: {(result.stderr or result.stdout).strip()}")
    return model_store / f"{model_name}.mar"


# ---- configuration -------------------------------------------------------


def read_properties(path: Path) -> dict:
    """Parse a Java properties file (``key=value``, ``#`` comments, ``\\`` continuations)."""
    properties, pending = {}, ""
    for line in Path(path).read_text().splitlines():
        line = pending + line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties


def render_config(source: Path, dest: Path, overrides: dict) -> Path:
    """Copy a properties file, replacing (or adding) the single-line keys in ``overrides``."""
    lines, seen = [], set()
    for line in Path(source).read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in overrides:
            line = f"{key}={overrides[key]}"
            seen.add(key)
        lines.append(line)
    lines += [f"{key}={value}" for key, value in overrides.items() if key not in seen]
    Path(dest).write_text("\n".join(lines) + "\n")
    return Path(dest)


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def with_port(address: str, port) -> str:
    """``http://127.0.0.1:8080`` with another port."""
    parsed = urlparse(address)
    return f"{parsed.scheme}://{parsed.hostname}:{port}"


# ---- the running server --------------------------------------------------


class Server:
    """A TorchServe started by :func:`start`, described by ``<run_dir>/server.json``."""

    def __init__(self, state: dict):
        self.state = state
        self.pid = state["pid"]
        self.inference = state["inference"]
        self.management = state["management"]
        self.metrics = state["metrics"]
        self.model = state["model"]
        self.key_file = Path(state["key_file"])

    @classmethod
    def load(cls, run_dir: Path):
        """The server recorded in ``run_dir``, or None when there is none or it has exited."""
        path = Path(run_dir) / "server.json"
        if not path.is_file():
            return None
        server = cls(json.loads(path.read_text()))
        return server if server.alive() else None

    def alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            # A recycled pid (after a reboot, say) is not our server.
            is_torchserve = "org.pytorch.serve.ModelServer" in " ".join(process.cmdline())
            return is_torchserve and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def keys(self) -> dict:
        """key_file.json: ``{"inference": {"key", "expiration time"}, "management": ..., "API": ...}``."""
        if not self.key_file.is_file():
            raise ServeError(f"no key file at {self.key_file}: is token authorization on and the server up?")
        try:
            return json.loads(self.key_file.read_text())
        except json.JSONDecodeError:
            # TorchServe creates the file before it writes the keys: during start-up it can be empty.
            raise ServeError(f"the key file {self.key_file} is incomplete: is the server still starting?") from None

    def key(self, kind: str) -> str:
        return self.keys()[kind]["key"]

    def auth(self, kind: str) -> dict:
        return {"Authorization": f"Bearer {self.key(kind)}"}

    def describe(self) -> dict:
        """The management API's description of the model (workers and their status)."""
        response = requests.get(f"{self.management}/models/{self.model}", headers=self.auth("management"), timeout=10)
        _raise_for_status(response)
        return response.json()[0]

    def ready(self) -> bool:
        """True when the model has at least its minimum of workers and all are READY."""
        try:
            description = self.describe()
        except (ServeError, requests.RequestException):
            return False
        workers = description.get("workers", [])
        return len(workers) >= max(1, description.get("minWorkers", 1)) and all(
            w.get("status") == "READY" for w in workers
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until the model's workers are READY; the log's last lines when they never are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServeError(f"TorchServe exited during start-up.\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.5)
        raise ServeError(f"the model's workers were not READY after {timeout:.0f} s.\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        return log_tail(Path(self.state["run_dir"]), lines)

    def scale(self, workers: int) -> list:
        """Set the worker count through the management API, synchronously; return the workers."""
        response = requests.put(
            f"{self.management}/models/{self.model}",
            params={"min_worker": workers, "max_worker": workers, "synchronous": "true"},
            headers=self.auth("management"),
            timeout=READY_TIMEOUT,
        )
        _raise_for_status(response)
        return self.describe()["workers"]

    def renew_key(self, kind: str) -> str:
        """Replace the inference or management key through the token API; return the new key."""
        response = requests.get(f"{self.management}/token", params={"type": kind}, headers=self.auth("API"), timeout=10)
        _raise_for_status(response)
        return self.key(kind)

    def predict(self, image: Path) -> requests.Response:
        """POST one image file to the inference API with the inference key."""
        content_type = mimetypes.guess_type(str(image))[0] or "application/octet-stream"
        return requests.post(
            f"{self.inference}/predictions/{self.model}",
            data=Path(image).read_bytes(),
            headers={**self.auth("inference"), "Content-Type": content_type},
            timeout=60,
        )

    def curl_line(self, image: str = "samples/<digit>.png") -> str:
        """A ready-to-paste curl command for one prediction, with the current inference key."""
        return (
            f'curl -H "Authorization: Bearer {self.key("inference")}" '
            f"-H 'Content-Type: image/png' --data-binary @{image} {self.inference}/predictions/{self.model}"
        )

    def stop(self, timeout: float = 60.0) -> None:
        """``torchserve --stop``, then the process group as a fallback; no process is left behind."""
        try:
            family = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            family = []
        env = {**os.environ, "TMPDIR": self.state["tmpdir"], "TEMP": self.state["tmpdir"]}
        subprocess.run(
            [str(BIN / "torchserve"), "--stop"],
            cwd=self.state["cwd"],
            env=env,
            capture_output=True,
            timeout=timeout,
        )
        psutil.wait_procs(family, timeout=timeout)
        # Workers inherit the server's own process group; one spawned while stopping is not in
        # `family`, and an orphaned worker would wait on its socket forever.
        leftovers = _group_members(self.state["pgid"])
        for process in leftovers:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        Path(self.state["cwd"], "key_file.json").unlink(missing_ok=True)
        shutil.rmtree(self.state["tmpdir"], ignore_errors=True)
        Path(self.state["run_dir"], "server.json").unlink(missing_ok=True)


def zlib_ng_env(environ: dict) -> dict:
    """``environ``'s ``LD_LIBRARY_PATH`` with zlib-ng first when it is built, else nothing to change."""
    if not (ZLIB_NG / "libz.so.1").exists():
        return {}
    others = [p for p in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != str(ZLIB_NG)]
    return {"LD_LIBRARY_PATH": os.pathsep.join([str(ZLIB_NG), *others])}


def start(
    config: Path,
    run_dir: Path,
    cwd: Path = ROOT,
    timeout: float = READY_TIMEOUT,
    env: dict | None = None,
) -> Server:
    """Start TorchServe in the background with ``config`` and wait until the model's workers are READY.

    Logs go to ``run_dir``; TorchServe writes ``key_file.json`` into ``cwd``.
    """
    config, run_dir, cwd = Path(config).resolve(), Path(run_dir).resolve(), Path(cwd).resolve()
    if not config.is_file():
        raise ServeError(f"no TorchServe config at {config}")
    running = Server.load(run_dir)
    if running is not None:
        raise ServeError(f"TorchServe is already running (pid {running.pid}) at {running.inference}: `make stop` first")
    properties = read_properties(config)
    store = Path(cwd, properties.get("model_store", "model_store"))
    model = properties.get("load_models", f"{MODEL_NAME}={MODEL_NAME}.mar").split(",")[0].split("=")[0].strip()
    if not any(store.glob("*.mar")):
        raise ServeError(f"no model archive in {store}: run `make archive` first")
    addresses = {
        name: properties.get(f"{name}_address", f"http://127.0.0.1:{port}")
        for name, port in (("inference", 8080), ("management", 8081), ("metrics", 8082))
    }
    grpc = {
        f"gRPC {name}": f"http://{properties.get(f'grpc_{name}_address', '127.0.0.1')}:"
        + properties.get(f"grpc_{name}_port", str(port))
        for name, port in (("inference", 7070), ("management", 7071))
    }
    for name, address in {**addresses, **grpc}.items():
        if _port_in_use(address):
            raise ServeError(f"the {name} address {address} is already in use (another TorchServe?)")

    run_dir.mkdir(parents=True, exist_ok=True)
    # Unix sockets have a ~100-byte path limit, hence a short private dir under /tmp.
    tmpdir = tempfile.mkdtemp(prefix="mnist-serve-", dir="/tmp" if os.path.isdir("/tmp") else None)
    base_env = {**os.environ, **(env or {})}
    server_env = {
        **base_env,
        **zlib_ng_env(base_env),
        "TMPDIR": tmpdir,
        "TEMP": tmpdir,
        "LOG_LOCATION": str(run_dir),
        "METRICS_LOCATION": str(run_dir),
        # The worker imports the archive's model/ and handler/ packages, not a checkout's.
        "PYTHONPATH": "",
    }
    with open(run_dir / "torchserve.out", "ab") as out:
        # `torchserve --start` returns at once; its Java child inherits stdout, so that must be a file.
        launcher = subprocess.run(
            [str(BIN / "torchserve"), "--start", "--ncs", "--ts-config", str(config), "--log-config", str(LOG_CONFIG)],
            cwd=cwd,
            env=server_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            timeout=60,
        )
    pid_file = Path(tmpdir, ".model_server.pid")
    if launcher.returncode != 0 or not pid_file.is_file():
        shutil.rmtree(tmpdir, ignore_errors=True)
        tail = (run_dir / "torchserve.out").read_text(errors="replace").splitlines()[-10:]
        raise ServeError("torchserve --start failed:\n" + "\n".join(tail))
    pid = int(pid_file.read_text().strip())
    state = {
        "pid": pid,
        "pgid": os.getpgid(pid),
        "tmpdir": tmpdir,
        "cwd": str(cwd),
        "run_dir": str(run_dir),
        "config": str(config),
        "model": model,
        "key_file": str(cwd / "key_file.json"),
        **addresses,
    }
    (run_dir / "server.json").write_text(json.dumps(state, indent=2) + "\n")
    server = Server(state)
    try:
        server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _group_members(pgid: int) -> list:
    """The processes of process group ``pgid``; never our own group."""
    if pgid == os.getpgrp():
        return []
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return members


def log_tail(run_dir: Path, lines: int = 25) -> str:
    """The last lines of TorchServe's logs in ``run_dir``."""
    parts = []
    for name in ("model_log.log", "ts_log.log", "torchserve.out"):
        path = Path(run_dir) / name
        if path.is_file() and path.stat().st_size:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no logs in {run_dir})"


def _port_in_use(address: str) -> bool:
    parsed = urlparse(address)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((parsed.hostname, parsed.port)) == 0


def _raise_for_status(response: requests.Response) -> None:
    if response.status_code >= 400:
        try:
            body = response.json()
            message = body.get("message") or body.get("error") or response.text
        except ValueError:
            message = response.text
        if "InvalidKeyException" in response.text:
            message += " (run `make renew-key` if the key has expired)"
        raise ServeError(f"{response.request.method} {response.url} -> HTTP {response.status_code}: {message}")


# ---- command line --------------------------------------------------------


def _running(args) -> Server:
    server = Server.load(args.run_dir)
    if server is None:
        raise ServeError("TorchServe is not running: `make serve` starts it")
    return server


def _print_workers(workers: list) -> None:
    for worker in workers:
        print(f"  worker {worker.get('id')}: {worker.get('status')} (pid {worker.get('pid')})")


def _print_endpoints(server: Server) -> None:
    print(f"  inference   {server.inference}/predictions/{server.model}")
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


def cmd_start(args) -> None:
    running = Server.load(args.run_dir)
    if running is not None:
        print(f"TorchServe is already running (pid {running.pid}); nothing changed.")
        _print_endpoints(running)
        return
    config = args.config
    ports = {"inference": args.inference_port, "management": args.management_port, "metrics": args.metrics_port}
    grpc_ports = {"grpc_inference_port": args.grpc_inference_port, "grpc_management_port": args.grpc_management_port}
    if any(ports.values()) or any(grpc_ports.values()):
        properties = read_properties(config)
        overrides = {
            f"{name}_address": with_port(properties.get(f"{name}_address", "http://127.0.0.1"), port)
            for name, port in ports.items()
            if port
        }
        overrides.update({key: str(port) for key, port in grpc_ports.items() if port})
        Path(args.run_dir).mkdir(parents=True, exist_ok=True)
        config = render_config(config, Path(args.run_dir) / "config.properties", overrides)
    print("starting TorchServe, waiting for the model's workers to be READY ...", flush=True)
    server = start(config, args.run_dir, cwd=Path.cwd(), timeout=args.timeout)
    print(f"TorchServe is up (pid {server.pid}), logs in {args.run_dir}/")
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


def cmd_status(args) -> None:
    server = Server.load(args.run_dir)
    if server is None:
        print("TorchServe is not running.")
        return
    description = server.describe()
    print(f"TorchServe is running (pid {server.pid}); model {server.model}, batch size {description.get('batchSize')}")
    _print_workers(description["workers"])
    _print_endpoints(server)


def cmd_scale(args) -> None:
    if args.workers < 1:
        raise ServeError("WORKERS must be at least 1")
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
    if response.status_code != 200:
        _raise_for_status(response)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("logs"), help="server state and logs (default: logs)")
    commands = parser.add_subparsers(dest="command", required=True)

    sub = commands.add_parser("archive", help="build <model-store>/mnist.mar")
    sub.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"))
    sub.add_argument("--model-store", type=Path, default=Path("model_store"))
    sub.set_defaults(run=cmd_archive)

    sub = commands.add_parser("start", help="start TorchServe and wait for READY workers")
    sub.add_argument("--config", type=Path, default=Path("config.properties"))
    sub.add_argument("--inference-port", type=int, help="override the config's inference port")
    sub.add_argument("--management-port", type=int, help="override the config's management port")
    sub.add_argument("--metrics-port", type=int, help="override the config's metrics port")
    sub.add_argument("--grpc-inference-port", type=int, help="override the config's gRPC inference port")
    sub.add_argument("--grpc-management-port", type=int, help="override the config's gRPC management port")
    sub.add_argument("--timeout", type=float, default=READY_TIMEOUT, help="seconds to wait for READY workers")
    sub.set_defaults(run=cmd_start)

    commands.add_parser("stop", help="stop TorchServe").set_defaults(run=cmd_stop)
    commands.add_parser("running", help="exit 0 when the server is running, 1 when not").set_defaults(run=cmd_running)
    commands.add_parser("status", help="the server and its workers").set_defaults(run=cmd_status)
    commands.add_parser("token", help="print the API keys").set_defaults(run=cmd_token)

    sub = commands.add_parser("renew-key", help="replace expired keys through the token API")
    sub.add_argument("kind", nargs="?", choices=("inference", "management", "all"), default="all")
    sub.set_defaults(run=cmd_renew_key)

    sub = commands.add_parser("scale", help="set the number of workers (synchronously)")
    sub.add_argument("workers", type=int)
    sub.set_defaults(run=cmd_scale)

    sub = commands.add_parser("predict", help="send one image to the inference API")
    sub.add_argument("image", nargs="?", default="")
    sub.set_defaults(run=cmd_predict)

    sub = commands.add_parser("logs", help="the last lines of the server's logs")
    sub.add_argument("--lines", type=int, default=40)
    sub.set_defaults(run=cmd_logs)

    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except requests.RequestException as error:
        print(f"error: cannot reach TorchServe: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
