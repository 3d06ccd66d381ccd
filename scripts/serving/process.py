"""Start, find and stop TorchServe processes.

A running server is described by ``<run-dir>/server.json`` (its pid, temp dir, addresses);
TorchServe's pid file and worker sockets live in that private temp dir, so servers of other
projects and test servers never collide with this one.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil

from scripts.serving.archive import build_archive
from scripts.serving.client import Client
from scripts.serving.config import (
    API_NAMES,
    Configuration,
    configure,
    environment_overrides,
    free_ports,
    read_properties,
)
from scripts.serving.errors import ServeError
from scripts.serving.paths import KEY_FILE, LOG_CONFIG, ROOT, TORCHSERVE, ZLIB_NG

READY_TIMEOUT = 180.0
DEFAULT_OPTIONS = ("--ncs", "--log-config", str(LOG_CONFIG))
LOG_FILES = ("model_log.log", "ts_log.log", "torchserve.out")


class Server(Client):
    """A TorchServe started by :func:`start`, and a client of its APIs."""

    def __init__(self, state: dict):
        super().__init__(state["inference"], state["management"], state["metrics"], state["model"], state["key_file"])
        self.state = state
        self.pid = state["pid"]
        self.run_dir = Path(state["run_dir"])

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

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until the model's workers are READY; the log's last lines when they never are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServeError(f"TorchServe exited during start-up.\n{log_tail(self.run_dir)}")
            if self.ready():
                return
            time.sleep(0.5)
        raise ServeError(f"the model's workers were not READY after {timeout:.0f} s.\n{log_tail(self.run_dir)}")

    def stop(self, timeout: float = 60.0) -> None:
        """``torchserve --stop``, then the process group as a fallback; no process is left behind."""
        try:
            family = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            family = []
        env = {**os.environ, "TMPDIR": self.state["tmpdir"], "TEMP": self.state["tmpdir"]}
        subprocess.run(
            [str(TORCHSERVE), "--stop"], cwd=self.state["cwd"], env=env, capture_output=True, timeout=timeout
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
        if self.key_file:
            self.key_file.unlink(missing_ok=True)
        shutil.rmtree(self.state["tmpdir"], ignore_errors=True)
        (self.run_dir / "server.json").unlink(missing_ok=True)


def start(
    config: Path,
    run_dir: Path,
    cwd: Path = ROOT,
    timeout: float = READY_TIMEOUT,
    env: dict | None = None,
    options: list[str] | None = None,
) -> Server:
    """Start TorchServe in the background with the properties file ``config``; wait until its workers are READY.

    Logs go to ``run_dir``; TorchServe writes its key file into ``cwd``. ``options`` replace the
    bundle's own torchserve options (no config snapshots, handler/log4j2.xml).
    """
    config, run_dir, cwd = Path(config).resolve(), Path(run_dir).resolve(), Path(cwd).resolve()
    running = Server.load(run_dir)
    if running is not None:
        raise ServeError(f"TorchServe is already running (pid {running.pid}) at {running.inference}: `make stop` first")
    settings = Configuration(environment_overrides(read_properties(config), {**os.environ, **(env or {})}))
    store = Path(cwd, settings.model_store)
    if not any(store.glob("*.mar")):
        raise ServeError(f"no model archive in {store}: run `make archive` first")
    for api in API_NAMES:
        if _in_use(settings.address(api)):
            name = api.replace("grpc_", "gRPC ")
            raise ServeError(f"the {name} address {settings.address(api)} is already in use (another TorchServe?)")

    run_dir.mkdir(parents=True, exist_ok=True)
    # Unix sockets have a ~100-byte path limit, hence a short private dir under /tmp.
    tmpdir = tempfile.mkdtemp(prefix="mnist-serve-", dir="/tmp" if os.path.isdir("/tmp") else None)
    with open(run_dir / "torchserve.out", "ab") as out:
        # `torchserve --start` returns at once; its Java child inherits stdout, so that must be a file.
        launcher = subprocess.run(
            [
                str(TORCHSERVE),
                "--start",
                "--ts-config",
                str(config),
                *(DEFAULT_OPTIONS if options is None else options),
            ],
            cwd=cwd,
            env=server_env(run_dir, tmpdir, env),
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
        "model": settings.model_name,
        "key_file": None if settings.properties.get("disable_token_authorization") == "true" else str(cwd / KEY_FILE),
        **{api: settings.address(api) for api in ("inference", "management", "metrics")},
    }
    (run_dir / "server.json").write_text(json.dumps(state, indent=2) + "\n")
    server = Server(state)
    try:
        server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server


def serve_checkpoint(checkpoint: Path, workdir: Path, timeout: float = READY_TIMEOUT, **overrides) -> Server:
    """A private TorchServe for ``checkpoint``: free loopback ports; archive, store, logs, keys in ``workdir``.

    ``overrides`` are :func:`~scripts.serving.config.configure`'s (workers, batch_size, properties, ...).
    """
    store = Path(workdir) / "store"
    build_archive(checkpoint, store, configure(**overrides).model)
    return serve_store(store, workdir, timeout, **overrides)


def serve_store(store: Path, workdir: Path, timeout: float = READY_TIMEOUT, **overrides) -> Server:
    """A private TorchServe for the archive in ``store``: free loopback ports; config, logs, keys in ``workdir``."""
    workdir = Path(workdir)
    properties = {**overrides.pop("properties", {}), "model_store": str(Path(store).resolve())}
    configuration = configure(ports=free_ports(), properties=properties, **overrides)
    config = configuration.write(workdir / "config.properties")
    return start(config, workdir / "logs", cwd=workdir, timeout=timeout)


def server_env(run_dir: Path, tmpdir: str, extra: dict | None = None) -> dict:
    """TorchServe's environment: private temp dir and logs, zlib-ng for the workers, the archive's own packages."""
    base = {**os.environ, **(extra or {})}
    return {
        **base,
        **zlib_ng_env(base),
        "TMPDIR": tmpdir,
        "TEMP": tmpdir,
        "LOG_LOCATION": str(run_dir),
        "METRICS_LOCATION": str(run_dir),
        # The worker imports the archive's model/ and handler/ packages, not a checkout's.
        "PYTHONPATH": "",
    }


def zlib_ng_env(environ: dict) -> dict:
    """``environ``'s ``LD_LIBRARY_PATH`` with zlib-ng first when it is built, else nothing to change."""
    if not (ZLIB_NG / "libz.so.1").exists():
        return {}
    others = [p for p in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != str(ZLIB_NG)]
    return {"LD_LIBRARY_PATH": os.pathsep.join([str(ZLIB_NG), *others])}


def log_tail(run_dir: Path, lines: int = 25) -> str:
    """The last lines of TorchServe's logs in ``run_dir``."""
    parts = []
    for name in LOG_FILES:
        path = Path(run_dir) / name
        if path.is_file() and path.stat().st_size:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no logs in {run_dir})"


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


def _in_use(address: str) -> bool:
    parsed = urlparse(address)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((parsed.hostname, parsed.port)) == 0
