"""The rendered kustomize Deployment, made runnable on one host with `podman kube play`.

A cluster reaches the pod through its Service; a single host has none, so this adds what it needs and
says so: one replica (the HorizontalPodAutoscaler owns the count in a cluster), the locally built image,
and a host port for the inference API on the loopback interface. Everything else (probes, limits,
security context, grace period, volumes) is played as rendered.

    python -m scripts.deploy.pod --image localhost/mnist-serve:0.1.0 --host-port 8200 --out build/pod.yaml
    podman kube play build/pod.yaml ... podman kube down build/pod.yaml
"""

import argparse
import copy
from pathlib import Path

import yaml

from scripts.deploy.check import render_kustomize

BASE = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def single_host(docs: list[dict], image: str, host_port: int) -> tuple[dict, list[str]]:
    """The Deployment of ``docs`` for one host, and one line per change made to it."""
    deployments = [doc for doc in docs if doc.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise ValueError(f"expected one Deployment in the rendered base, found {len(deployments)}")
    deployment = copy.deepcopy(deployments[0])
    changes = ["replicas: 1 (the HorizontalPodAutoscaler owns the count in a cluster)"]
    deployment["spec"]["replicas"] = 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    changes.append(f"image: {container['image']} -> {image} (built here)")
    container["image"] = image
    container["imagePullPolicy"] = "Never"
    for port in container.get("ports", []):
        if port.get("name") == "http":
            port.update(hostIP="127.0.0.1", hostPort=host_port)
            changes.append(f"hostPort: 127.0.0.1:{host_port} -> {port['containerPort']} (no Service on one host)")
    return deployment, changes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="localhost/mnist-serve:0.1.0", help="the image built here")
    parser.add_argument("--host-port", type=int, default=8080, help="loopback port for the inference API")
    parser.add_argument("--out", type=Path, default=Path("build/pod.yaml"))
    args = parser.parse_args(argv)
    docs, renderer = render_kustomize(BASE)
    deployment, changes = single_host(docs, args.image, args.host_port)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(deployment, sort_keys=False))
    print(f"rendered {BASE} ({renderer}); for one host:")
    for change in changes:
        print(f"  {change}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
