"""Helpers for the live container tests: podman, the image built from the repository, containers as in production."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from scripts.serving.image import stage_image
from scripts.serving.paths import ROOT

IMAGE = "localhost/mnist-serve:test"
# What deploy/k8s/deployment.yaml and docs/deploy.md ask of the container.
RESTRICTED = ("--read-only", "--tmpfs", "/tmp", "--cap-drop=ALL", "--security-opt", "no-new-privileges")


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
    return result


def engine_problem() -> str | None:
    """None when podman can build and run containers here, else why not (the tests skip with it)."""
    if shutil.which("podman") is None:
        return "no podman: the container tests drive podman (make image-host installs it on Debian)"
    result = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return f"podman does not work here: {result.stderr.strip().splitlines()[-1:]}"
    return None


def build(checkpoint: Path, context: Path) -> tuple[subprocess.CompletedProcess, float]:
    """What `make image` does after the calibration: stage the context, build it; the result and its seconds."""
    stage_image(checkpoint, context)
    begin = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts/setup/build_image.sh"), IMAGE, str(context)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    return result, time.monotonic() - begin


class Container:
    """One `podman run -d` of the image, its run directory bound to a host folder (the ready marker shows)."""

    def __init__(self, name: str, port: int, run_dir: Path, *options: str, env: dict | None = None):
        self.name, self.port, self.run_dir = name, port, run_dir
        self._auth: dict = {}
        run_dir.mkdir(parents=True, exist_ok=True)
        run_dir.chmod(0o777)  # written by the image's uid 10001
        podman("rm", "-f", "--ignore", name)
        args = ["run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", *RESTRICTED]
        args += ["-v", f"{run_dir}:/srv/mnist-serve/run:Z", *options]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        self.started = time.monotonic()
        podman(*args, IMAGE)
        self.url = f"http://127.0.0.1:{port}/predictions/mnist"

    def wait_ready(self, timeout: float = 300) -> float:
        """Seconds from `podman run` to the ready marker; fails with the logs when it never comes."""
        marker = self.run_dir / "ready"
        while not marker.exists():
            if time.monotonic() - self.started > timeout or not self.running():
                pytest.fail(f"{self.name} never got ready:\n{self.logs()[-3000:]}")
            time.sleep(0.2)
        return time.monotonic() - self.started

    def running(self) -> bool:
        return podman("inspect", "--format", "{{.State.Running}}", self.name, check=False).stdout.strip() == "true"

    def inspect(self) -> dict:
        return json.loads(podman("inspect", self.name).stdout)[0]

    def exec(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *command, timeout=timeout, check=False)

    def health(self) -> subprocess.CompletedProcess:
        return podman("healthcheck", "run", self.name, check=False)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def auth(self) -> dict:
        """The inference key's header (the image keeps token authorization on; its keys are in run/)."""
        if not self._auth and (self.run_dir / "key_file.json").is_file():
            keys = json.loads((self.run_dir / "key_file.json").read_text())
            self._auth = {"Authorization": f"Bearer {keys['inference']['key']}"}
        return self._auth

    def predict(self, body: bytes, session: requests.Session | None = None) -> requests.Response:
        headers = {**self.auth(), "Content-Type": "image/png"}
        return (session or requests).post(self.url, data=body, headers=headers, timeout=30)

    def remove(self) -> None:
        podman("rm", "-f", "--time", "5", "--ignore", self.name, check=False)
