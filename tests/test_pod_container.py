"""The rendered kustomize Deployment run with `podman kube play`: it serves, its probes pass, stop honours the grace.

podman runs a pod's livenessProbe as the container's health check (inside the container: an httpGet
probe becomes curl, which the image lacks; the manifests use exec probes, the same in a cluster).
It runs no readiness probe, startup probe or preStop hook: the test runs the readiness command itself.
"""

import json
import subprocess
import sys
import time

import pytest
import requests
import yaml

from scripts.serving.config import free_ports
from scripts.serving.paths import ROOT, SAMPLES
from tests.containers import IMAGE, build, engine_problem, podman

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

READINESS = ("python", "-m", "scripts.serving.health", "--run-dir", "/srv/mnist-serve/run")


@pytest.fixture(scope="module")
def pod_yaml(tmp_path_factory, mnist_epoch):
    problem = engine_problem()
    if problem:
        pytest.skip(problem)
    work = tmp_path_factory.mktemp("pod")
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        result, _ = build(mnist_epoch.checkpoint, work / "context")
        assert result.returncode == 0, result.stderr[-3000:]
    port = free_ports(("inference",))["inference"]
    out = work / "pod.yaml"
    command = [sys.executable, "-m", "scripts.deploy.pod", "--image", IMAGE, "--host-port", str(port)]
    command += ["--out", str(out)]
    rendered = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    assert "hostPort" in rendered.stdout and "replicas: 1" in rendered.stdout  # it says what it changes
    return out, port


def test_the_pod_serves_with_healthy_probes_and_stops_within_its_grace(pod_yaml):
    path, port = pod_yaml
    manifest = yaml.safe_load(path.read_text())
    grace = manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    podman("kube", "down", str(path), check=False)
    played = podman("kube", "play", str(path), timeout=300)
    try:
        words = played.stdout.split()  # "Pod:", its id, "Container:", its id
        container = words[words.index("Container:") + 1]
        deadline = time.monotonic() + 240
        while podman("exec", container, *READINESS, check=False).returncode != 0:
            assert time.monotonic() < deadline, podman("logs", container, check=False).stdout[-3000:]
            time.sleep(2)
        health = podman("healthcheck", "run", container, check=False)
        info = json.loads(podman("inspect", container).stdout)[0]
        response = requests.post(
            f"http://127.0.0.1:{port}/predictions/mnist",
            data=(SAMPLES / "7_mnist.png").read_bytes(),
            headers={"Content-Type": "image/png"},
            timeout=30,
        )
        begin = time.monotonic()
        # podman 4.3 ignores terminationGracePeriodSeconds (its containers keep the 10 s default) and
        # `kube down` kills at once: stopping with the grace as the timeout is what a kubelet does.
        podman("pod", "stop", "--time", str(grace), info["Pod"], timeout=grace + 60)
        stop_seconds = time.monotonic() - begin
        state = json.loads(podman("inspect", container).stdout)[0]["State"]
        logs = podman("logs", container, check=False).stdout
    finally:
        podman("kube", "down", str(path), check=False)
    assert health.returncode == 0, health.stdout + health.stderr  # the livenessProbe, as podman runs it
    assert "scripts.serving.health" in " ".join(info["Config"]["Healthcheck"]["Test"])
    assert info["Config"]["User"] in ("10001", "10001:10001") and info["HostConfig"]["ReadonlyRootfs"] is True
    assert response.status_code == 200 and response.json()["digit"] in range(10)
    print(f"pod stop: {stop_seconds:.1f} s (grace {grace} s), exit {state['ExitCode']}")
    assert stop_seconds < grace and state["ExitCode"] == 0 and "draining" in logs, logs[-2000:]
