"""The per-machine settings, in one place: they follow the CPUs TorchServe may use where it runs.

- **Workers**: one per usable CPU. Where TorchServe starts from a rendered ``config.properties``
  (``make serve``, the test servers, the container's entrypoint in a pod) it counts them itself:
  ``default_workers_per_model`` stays unset, and the JVM counts the CPUs of its affinity mask and
  cgroup quota (or one worker per GPU). KServe restores the model from a ``model_snapshot``,
  which must name a count: there it is the pod's CPU limit (:func:`pod_cpus`).
- **Netty threads**: one event-loop thread for HTTP and one for the worker connections per two
  usable CPUs, at least one (TorchServe's default is one of each per core): more frontend threads
  only take turns with the workers on the cores. The ratio is the measured one (docs/decisions.md
  says where and how to measure another); keeping it lets the frontend grow with the workers.

Every configuration is rendered by :func:`scripts.serving.config.configure`, which applies these
unless ``config.properties`` or the caller sets them.
"""

import math
import os
from pathlib import Path

import yaml

from scripts.serving.errors import ServeError

NETTY_PROPERTIES = ("number_of_netty_threads", "netty_client_threads")
CPUS_PER_NETTY_THREAD = 2


def usable_cpus(root: Path = Path("/")) -> int:
    """The CPUs this process may use: its affinity, capped by its cgroup's CPU quota rounded up (as the JVM counts)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def cgroup_cpu_quota(root: Path = Path("/")) -> float | None:
    """CPUs' worth of this process's cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``); None: unlimited."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            quotas += _walk(root / "sys/fs/cgroup", path, _v2_quota)
        elif "cpu" in controllers.split(","):
            quotas += _walk(root / "sys/fs/cgroup/cpu", path, _v1_quota)
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def _walk(mount: Path, path: str, read) -> list:
    """``read`` of the cgroup at ``path`` and of each of its parents (a parent's quota caps its children)."""
    parts = [p for p in path.split("/") if p]
    return [read(mount.joinpath(*parts[:depth])) for depth in range(len(parts), -1, -1)]


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def netty_threads(cpus: int) -> int:
    """Netty event-loop threads of each kind for a machine with ``cpus`` usable CPUs."""
    return max(1, cpus // CPUS_PER_NETTY_THREAD)


def machine_properties(cpus: int | None = None) -> dict[str, str]:
    """The server properties that follow the machine, for ``cpus`` usable CPUs (None: this process's)."""
    threads = str(netty_threads(usable_cpus() if cpus is None else cpus))
    return {key: threads for key in NETTY_PROPERTIES}


def pod_cpus(manifest: Path) -> int:
    """The CPUs a pod of a Kubernetes or KServe manifest may use: its CPU limit (else request), rounded up."""
    try:
        documents = [d for d in yaml.safe_load_all(Path(manifest).read_text()) if d]
    except (OSError, yaml.YAMLError) as error:
        raise ServeError(f"cannot read {manifest}: {error}") from None
    for resources in _find(documents, "resources"):
        cpu = (resources.get("limits") or {}).get("cpu") or (resources.get("requests") or {}).get("cpu")
        if cpu is not None:
            return max(1, math.ceil(parse_cpu(cpu)))
    raise ServeError(f"{manifest} sets no CPU limit or request: the worker count would not follow the pod's CPUs")


def parse_cpu(value) -> float:
    """A Kubernetes CPU quantity (``2``, ``"1.5"``, ``"1500m"``) in CPUs."""
    text = str(value).strip()
    try:
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ServeError(f"not a Kubernetes CPU quantity: {value!r}") from None


def _find(node, key: str):
    if isinstance(node, dict):
        if isinstance(node.get(key), dict):
            yield node[key]
        for value in node.values():
            yield from _find(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _find(value, key)
