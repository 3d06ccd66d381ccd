"""References between the rendered resources: selectors, scale targets, named ports."""


def check_references(docs: list[dict]) -> list[tuple[dict, str]]:
    """Selectors find the Deployment's pods, the HPA its target, named ports a container port."""
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    pods = {name: d["spec"]["template"] for name, d in deployments.items()}
    errors = []
    for name, deployment in deployments.items():
        if not _matches(deployment["spec"]["selector"].get("matchLabels", {}), pods[name]):
            errors.append((deployment, "spec.selector does not match the pod template's labels"))
        ports = {p.get("name") for c in pods[name]["spec"]["containers"] for p in c.get("ports", [])}
        for container in pods[name]["spec"]["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                for kind in ("httpGet", "tcpSocket", "grpc"):
                    port = container.get(probe, {}).get(kind, {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        errors.append((deployment, f"{probe} uses port {port!r}, which no container names"))
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
            field = "podSelector" if doc["kind"] == "NetworkPolicy" else "selector"
            selector = spec.get(field, {})
            targets = _selected(selector if doc["kind"] == "Service" else selector.get("matchLabels", {}), pods)
            if not targets:
                errors.append((doc, f"spec.{field} matches no Deployment's pods"))
            ports = [p.get("targetPort") for p in spec.get("ports", [])]
            ports += [p.get("port") for rule in spec.get("ingress", []) for p in rule.get("ports", [])]
            names = {p.get("name") for t in targets for c in pods[t]["spec"]["containers"] for p in c.get("ports", [])}
            for port in ports:
                if targets and isinstance(port, str) and port not in names:
                    errors.append((doc, f"port {port!r} is not a named port of the selected pods"))
        elif doc["kind"] == "HorizontalPodAutoscaler":
            target = spec.get("scaleTargetRef", {})
            if target.get("kind") != "Deployment" or target.get("name") not in deployments:
                errors.append((doc, f"spec.scaleTargetRef names no Deployment here ({target.get('name')!r})"))
    return errors


def _matches(labels: dict, pod: dict) -> bool:
    pod_labels = pod.get("metadata", {}).get("labels", {})
    return bool(labels) and all(pod_labels.get(key) == value for key, value in labels.items())


def _selected(labels: dict, pods: dict) -> list[str]:
    return [name for name, pod in pods.items() if _matches(labels, pod)]
