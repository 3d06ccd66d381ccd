"""The image built from the repository with podman, run as deploy/k8s runs it, compared with `make serve`.

Skipped with the reason when podman cannot run containers here (`make image-host` sets it up on Debian;
CI does). One image build per session; the cold build is the slow part (docs/deploy.md).
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from scripts.serving.config import free_ports
from scripts.serving.paths import SAMPLES
from scripts.serving.process import serve_checkpoint
from tests.containers import IMAGE, Container, build, engine_problem, podman
from tests.support import encode, mnist_image

pytestmark = [pytest.mark.container, pytest.mark.timeout(3600)]

# Every MNIST test digit through both servers.
DIGITS = 10_000
# Probabilities are written with 6 decimals: equal answers differ by at most one unit there.
ROUNDING = 1.5e-6


@pytest.fixture(scope="module")
def image(mnist_epoch, tmp_path_factory):
    problem = engine_problem()
    if problem:
        pytest.skip(problem)
    checkpoint = mnist_epoch.checkpoint
    context = tmp_path_factory.mktemp("image") / "context"
    result, seconds = build(checkpoint, context)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"image build: {seconds:.0f} s")
    return checkpoint, context, result


@pytest.fixture(scope="module")
def container(image, tmp_path_factory):
    port = free_ports(("inference",))["inference"]
    box = Container("mnist-serve-test", port, tmp_path_factory.mktemp("run"), "--cpus", "2", "--memory", "1536m")
    try:
        box.ready_after = box.wait_ready()
        print(f"start -> ready: {box.ready_after:.1f} s")
        yield box
    finally:
        box.remove()


def mnist_bodies(mnist, count: int) -> list[bytes]:
    test = mnist[1]
    return [encode(mnist_image(test.images[i])) for i in range(count)]


def answers(predict, bodies: list[bytes]) -> list[dict]:
    """Each body's answer (the JSON, with its status), eight requests at a time."""

    def one(body: bytes) -> dict:
        response = predict(body)
        return {"status": response.status_code, **response.json()}

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, bodies))


def test_ready_only_after_the_warm_up_and_then_healthy(container):
    lines = [line.strip() for line in container.logs().splitlines()]
    warmed = next(i for i, line in enumerate(lines) if line.startswith("warmed up in"))
    assert lines.index("ready") > warmed, lines
    health = container.health()
    assert health.returncode == 0, health.stdout + health.stderr
    config = container.inspect()["Config"]
    assert "scripts.serving.health" in " ".join(config["Healthcheck"]["Test"])


def test_predictions_equal_the_hosts_make_serve(container, image, mnist, tmp_path):
    """All 10,000 MNIST test digits and samples/ through the container and a host TorchServe of the same archive."""
    bodies = mnist_bodies(mnist, DIGITS) + [p.read_bytes() for p in sorted(SAMPLES.iterdir())]
    host = serve_checkpoint(image[0], tmp_path)
    try:
        headers = {**host.auth("inference"), "Content-Type": "image/png"}
        session = requests.Session()
        on_host = answers(lambda b: session.post(host.predictions_url, data=b, headers=headers, timeout=30), bodies)
    finally:
        host.stop()
    in_container = answers(container.predict, bodies)

    def same(a: dict, b: dict) -> bool:
        if "probabilities" not in a or "probabilities" not in b:
            return a == b
        gaps = [abs(x - y) for x, y in zip(a["probabilities"], b["probabilities"], strict=True)]
        return a["status"] == b["status"] == 200 and a["digit"] == b["digit"] and max(gaps) <= ROUNDING

    assert sum(a["status"] == 200 for a in on_host) >= DIGITS
    differ = [i for i, (a, b) in enumerate(zip(on_host, in_container, strict=True)) if not same(a, b)]
    print(f"compared {len(bodies)} answers ({DIGITS} MNIST test digits + samples/), {len(differ)} differ")
    assert not differ, [(i, on_host[i], in_container[i]) for i in differ[:3]]


def test_a_bad_picture_is_a_400_with_a_message(container):
    response = container.predict(b"not a picture")
    assert response.status_code == 400 and "error" in response.json(), response.text


def test_runs_as_uid_10001_on_a_read_only_root(container):
    assert container.exec("id", "-u").stdout.strip() == "10001"
    written = container.exec("touch", "/srv/mnist-serve/model_store/x")
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    assert container.inspect()["HostConfig"]["ReadonlyRootfs"] is True


def test_one_cpu_gives_one_worker(image, tmp_path):
    port = free_ports(("inference",))["inference"]
    box = Container("mnist-serve-test-1cpu", port, tmp_path / "run", "--cpus", "1", env={"MNIST_SERVE_WARMUP": "0"})
    try:
        box.wait_ready()
        status = box.exec("python", "-m", "scripts.serving", "--run-dir", "run", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("READY") == 1, status.stdout
    finally:
        box.remove()


def test_sigterm_under_readiness_following_load_loses_no_request(image, tmp_path):
    """Eight clients that send only while the ready marker is there (as a Service's endpoints follow the
    readiness probe); `podman stop` sends SIGTERM. Every request sent gets its 200."""
    port = free_ports(("inference",))["inference"]
    box = Container("mnist-serve-test-stop", port, tmp_path / "run", "--cpus", "2", env={"MNIST_SERVE_WARMUP": "3"})
    ready, results, body = box.run_dir / "ready", [], (SAMPLES / "7_mnist.png").read_bytes()
    try:
        box.wait_ready()

        def client() -> None:
            session = requests.Session()
            while ready.exists():
                try:
                    results.append(box.predict(body, session).status_code)
                except requests.RequestException as error:
                    results.append(type(error).__name__)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        stopped = podman("stop", "--time", "45", box.name, timeout=90)
        for thread in threads:
            thread.join(timeout=60)
        state = box.inspect()["State"]
    finally:
        box.remove()
    assert stopped.returncode == 0 and state["ExitCode"] == 0, state
    assert len(results) > 50 and set(results) == {200}, {r: results.count(r) for r in set(results)}


def test_workers_that_cannot_load_are_unhealthy_though_ping_says_healthy(image, tmp_path):
    """As KServe's store without its metrics.yaml: every worker dies at start and is retried. Even with the
    ready marker there (as if the warm-up had passed), the HEALTHCHECK, the probes' command and
    `status` say unhealthy, while TorchServe's /ping answers Healthy."""
    port = free_ports(("inference",))["inference"]
    env = {"TS_METRICS_CONFIG": "/nonexistent/metrics.yaml", "TS_DISABLE_TOKEN_AUTHORIZATION": "true"}
    box = Container("mnist-serve-test-broken", port, tmp_path / "run", env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(1)
        ping = requests.get(f"http://127.0.0.1:{port}/ping", timeout=5)
        (box.run_dir / "ready").write_text("0\n")
        health = box.health()
        probe = box.exec("python", "-m", "scripts.serving.health", "--run-dir", "/srv/mnist-serve/run", "--live")
        status = box.exec("python", "-m", "scripts.serving", "--run-dir", "run", "status")
    finally:
        box.remove()
    assert ping.status_code == 200 and "Healthy" in ping.text
    assert health.returncode != 0
    assert probe.returncode == 1 and "no READY worker" in probe.stdout, probe.stdout + probe.stderr
    assert status.returncode == 1 and "no READY worker" in status.stderr, status.stdout + status.stderr


def test_building_again_reuses_every_layer(image, tmp_path):
    checkpoint, context, first = image
    before = podman("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
    again, seconds = build(checkpoint, context)
    assert again.returncode == 0, again.stderr[-2000:]
    lines = again.stdout.splitlines()
    # Each RUN or COPY step is followed by its result: "--> Using cache <id>" when it was not run again.
    results = {
        line: next((later for later in lines[i + 1 :] if later.startswith("-->")), "")
        for i, line in enumerate(lines)
        if " STEP " in line and (": RUN " in line or ": COPY " in line)
    }
    rerun = [step for step, result in results.items() if "Using cache" not in result]
    print(f"cached rebuild: {seconds:.0f} s, {len(results) - len(rerun)} of {len(results)} RUN/COPY steps cached")
    assert results and not rerun, rerun
    assert podman("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip() == before


def test_the_image_has_no_training_side(image):
    listing = podman("run", "--rm", "--entrypoint", "ls", IMAGE, "/srv/mnist-serve", "/srv/mnist-serve/scripts").stdout
    assert "train" not in listing.split() and "tests" not in listing.split() and "serving" in listing.split()
    assert Path(image[1], "model_store", "mnist.mar").is_file()
