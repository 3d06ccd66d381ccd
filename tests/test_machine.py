"""Per-machine settings follow the usable CPUs: locally, in pods, in the KServe store; `make scale` names a count."""

import json
import os
import subprocess

import pytest

from scripts.serving.config import configure, read_properties
from scripts.serving.errors import ServeError
from scripts.serving.kserve import INFERENCE_SERVICE, kserve_configuration, write_kserve_store
from scripts.serving.machine import cgroup_cpu_quota, netty_threads, parse_cpu, pod_cpus, usable_cpus
from scripts.serving.paths import ROOT
from tests.support import untrained_checkpoint

pytestmark = pytest.mark.unit

NETTY = ("number_of_netty_threads", "netty_client_threads")


def cgroup_tree(root, line: str, files: dict[str, str]):
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "cgroup").write_text(line + "\n")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_usable_cpus_are_the_affinity_mask_when_no_quota_caps_them(one_cpu):
    assert usable_cpus() == 1
    assert configure().properties["number_of_netty_threads"] == "1"


def test_usable_cpus_here_are_the_affinity_capped_by_the_quota():
    quota = cgroup_cpu_quota()
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus() == (min(affinity, -(-quota // 1)) if quota else affinity)


@pytest.mark.parametrize(
    "line, files, quota",
    [
        ("0::/", {"sys/fs/cgroup/cpu.max": "150000 100000\n"}, 1.5),
        ("0::/", {"sys/fs/cgroup/cpu.max": "max 100000\n"}, None),
        # A parent's quota caps its children.
        ("0::/pod/ctr", {"sys/fs/cgroup/pod/cpu.max": "300000 100000", "sys/fs/cgroup/pod/ctr/cpu.max": "max 1"}, 3),
        (
            "4:cpu,cpuacct:/",
            {"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "200000", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000"},
            2,
        ),
        (
            "4:cpu,cpuacct:/",
            {"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "1"},
            None,
        ),
        # v1 without cgroup namespaces: the container's own cgroup is mounted at the root.
        (
            "4:cpu:/docker/abc",
            {"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "50000", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000"},
            0.5,
        ),
    ],
)
def test_the_cgroup_quota_is_read_as_the_jvm_reads_it(tmp_path, line, files, quota):
    root = cgroup_tree(tmp_path, line, files)
    assert cgroup_cpu_quota(root) == quota
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(root) == (max(1, min(affinity, -(-quota // 1))) if quota else affinity)


@pytest.mark.parametrize("cpus, threads", [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 32)])
def test_netty_threads_follow_the_cpus_at_the_ratio_measured_on_two(cpus, threads):
    assert netty_threads(cpus) == threads
    properties = configure(cpus=cpus).properties
    assert [properties[key] for key in NETTY] == [str(threads)] * 2


def test_the_shipped_file_leaves_the_per_machine_settings_to_the_machine():
    shipped = read_properties(ROOT / "config.properties")
    assert not {"default_workers_per_model", *NETTY} & set(shipped)
    rendered = configure().properties
    assert [rendered[key] for key in NETTY] == [str(netty_threads(usable_cpus()))] * 2
    assert "default_workers_per_model" not in rendered  # TorchServe counts the CPUs where it runs


def test_a_value_in_config_properties_wins_over_the_machine(tmp_path):
    base = tmp_path / "config.properties"
    base.write_text((ROOT / "config.properties").read_text() + "number_of_netty_threads=3\n")
    properties = configure(base=base, cpus=8).properties
    assert properties["number_of_netty_threads"] == "3" and properties["netty_client_threads"] == "4"


def test_configure_refuses_a_machine_without_cpus():
    with pytest.raises(ServeError, match="cpus must be a whole number >= 1"):
        configure(cpus=0)


@pytest.mark.parametrize("value, cpus", [(2, 2.0), ("2", 2.0), ("1.5", 1.5), ("1500m", 1.5), ("250m", 0.25)])
def test_kubernetes_cpu_quantities(value, cpus):
    assert parse_cpu(value) == cpus


def test_the_manifests_pods_have_the_cpus_of_their_limit(tmp_path):
    assert pod_cpus(INFERENCE_SERVICE) == 2
    assert pod_cpus(ROOT / "deploy" / "k8s" / "deployment.yaml") == 2
    manifest = tmp_path / "isvc.yaml"
    manifest.write_text("spec:\n  predictor:\n    model:\n      resources:\n        requests: {cpu: 1}\n")
    assert pod_cpus(manifest) == 1
    manifest.write_text("spec:\n  predictor:\n    model:\n      resources:\n        limits: {cpu: 2500m}\n")
    assert pod_cpus(manifest) == 3
    manifest.write_text("spec:\n  predictor:\n    model:\n      resources:\n        limits: {memory: 1Gi}\n")
    with pytest.raises(ServeError, match="sets no CPU limit"):
        pod_cpus(manifest)
    manifest.write_text("resources:\n  limits: {cpu: lots}\n")
    with pytest.raises(ServeError, match="not a Kubernetes CPU quantity: 'lots'"):
        pod_cpus(manifest)


def snapshot_workers(configuration) -> tuple[int, int]:
    version = json.loads(configuration.properties["model_snapshot"])["models"]["mnist"]["1.0"]
    return version["minWorkers"], version["maxWorkers"]


@pytest.mark.parametrize("cpu, workers, threads", [("1", 1, "1"), ("4", 4, "2"), ("6500m", 7, "3")])
def test_the_kserve_store_follows_the_inference_services_cpus(tmp_path, cpu, workers, threads):
    manifest = tmp_path / "isvc.yaml"
    manifest.write_text(INFERENCE_SERVICE.read_text().replace('cpu: "2"', f'cpu: "{cpu}"'))
    configuration = kserve_configuration(manifest=manifest)
    assert snapshot_workers(configuration) == (workers, workers)
    assert configuration.workers == workers
    assert [configuration.properties[key] for key in NETTY] == [threads] * 2


def test_the_written_kserve_store_follows_the_shipped_inference_service(tmp_path):
    store = write_kserve_store(untrained_checkpoint(tmp_path / "w.pth"), tmp_path / "kserve")
    written = read_properties(store / "config" / "config.properties")
    cpus = pod_cpus(INFERENCE_SERVICE)
    assert written["default_workers_per_model"] == str(cpus)
    assert json.loads(written["model_snapshot"])["models"]["mnist"]["1.0"]["minWorkers"] == cpus
    assert written["number_of_netty_threads"] == str(netty_threads(cpus))
    assert snapshot_workers(kserve_configuration(workers=5)) == (5, 5)


def make(*args: str) -> subprocess.CompletedProcess:
    """``make`` in the project, the venv taken as installed (``-o``: never rebuilt by a test)."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORKERS", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [["scale"], ["scale", "WORKERS="]], ids=["unset", "empty"])
def test_make_scale_without_a_count_is_a_one_line_error(args):
    result = make(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "make scale WORKERS=2" in result.stderr


def test_make_scale_with_a_count_asks_the_server(tmp_path):
    result = make("scale", "WORKERS=2", f"SERVE={ROOT / '.venv/bin/python'} -m scripts.serving --run-dir {tmp_path}")
    assert result.returncode != 0
    assert "TorchServe is not running" in result.stderr
