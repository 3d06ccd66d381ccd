"""scripts.deploy.check on the real manifests, and on copies with one mistake each."""

import os
import shutil
import subprocess
import sys

import pytest

from scripts.deploy.check import ROOT, main, render_builtin, render_with_kubectl

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]
RENDERERS = [
    "builtin",
    pytest.param("kubectl", marks=pytest.mark.skipif(not shutil.which("kubectl"), reason="no kubectl")),
]


def deploy_check(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "scripts.deploy.check", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def deploy(tmp_path):
    """A copy of deploy/ to break."""
    return shutil.copytree(ROOT / "deploy", tmp_path / "deploy")


def edit(path, old, new):
    """Replace the one occurrence of ``old`` in ``path``."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def test_the_manifests_pass():
    """What `make deploy-check` runs: every manifest validated, the kustomize base rendered."""
    result = deploy_check()
    assert result.returncode == 0, result.stderr
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
        assert f"ok: {kind}/mnist-serve is valid for Kubernetes" in result.stdout
    assert "ok: InferenceService/mnist is valid for KServe's InferenceService schema" in result.stdout
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert f"ok: {kind}/mnist-serve is valid for the Prometheus Operator's {kind} schema" in result.stdout
    assert "renders" in result.stdout and result.stderr == ""


def test_help():
    result = deploy_check("--help")
    assert result.returncode == 0 and "--kubernetes-version" in result.stdout


MISTAKES = [
    # (file, text, replacement, what the error says)
    ("k8s/deployment.yaml", "          resources:\n", "          resourcez:\n", "'resourcez' was unexpected"),
    ("k8s/deployment.yaml", "periodSeconds: 2\n", "periodSeconds: two\n", "'two' is not of type 'integer'"),
    ("k8s/deployment.yaml", "  selector:\n    matchLabels:", "  selectr:\n    matchLabels:", "selector"),
    ("k8s/networkpolicy.yaml", "  policyTypes:", "  policyType:", "'policyType' was unexpected"),
    ("kserve/inferenceservice.yaml", "storageUri:", "storageURI:", "'storageURI' was unexpected"),
    ("kserve/inferenceservice.yaml", "modelFormat:", "modelFormats:", "'modelFormats' was unexpected"),
    ("kserve/inferenceservice.yaml", "  labels:", "  lables:", "'lables' was unexpected"),
    ("kserve/inferenceservice.yaml", "minReplicas: 1", "minReplicas: one", "'one' is not of type 'integer'"),
    ("k8s/service.yaml", "targetPort: metrics", "targetPort: metric", "port 'metric' is not a named port"),
    ("k8s/pdb.yaml", "      app.kubernetes.io/name: mnist-serve", "      app: mnist", "matches no Deployment's pods"),
    ("k8s/hpa.yaml", "    name: mnist-serve\n  minReplicas", "    name: mnist\n  minReplicas", "scaleTargetRef"),
    ("monitoring/servicemonitor.yaml", "scrapeTimeout:", "scrapeTimout:", "'scrapeTimout' was unexpected"),
    ("monitoring/servicemonitor.yaml", "interval: 15s", "interval: 15 seconds", "does not match"),
    ("monitoring/servicemonitor.yaml", "- port: metrics", "- port: metric", "port 'metric' is not a named port"),
    ("monitoring/podmonitor.yaml", "podMetricsEndpoints:", "podMetricEndpoint:", "'podMetricEndpoint' was unexpected"),
    ("monitoring/podmonitor.yaml", "name: mnist-serve\n  podMetrics", "name: mnist\n  podMetrics", "matches no"),
    ("monitoring/prometheusrule.yaml", "  groups:", "  group:", "'group' was unexpected"),
    ("monitoring/prometheusrule.yaml", "for: 2m", "for: 3m", "differ from rules.yml's"),
]


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize(("file", "old", "new", "message"), MISTAKES, ids=[m[2].strip() for m in MISTAKES])
def test_a_mistake_fails_with_one_line(deploy, capsys, renderer, file, old, new, message):
    edit(deploy / file, old, new)
    assert main(["--deploy", str(deploy), "--renderer", renderer, "--quiet"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: {deploy / file}: ") and message in errors[0]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_file_left_out_of_the_kustomization_fails(deploy, capsys, renderer):
    edit(deploy / "k8s/kustomization.yaml", "  - pdb.yaml\n", "")
    assert main(["--deploy", str(deploy), "--renderer", renderer, "--quiet"]) == 1
    assert "PodDisruptionBudget/mnist-serve is not in" in capsys.readouterr().err


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_misspelled_kustomization_key_fails(deploy, capsys, renderer):
    edit(deploy / "k8s/kustomization.yaml", "resources:", "resource:")
    assert main(["--deploy", str(deploy), "--renderer", renderer, "--quiet"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and "kustomization" in errors[0] and "resource" in errors[0], errors


def test_quantities_may_be_numbers(deploy):
    """The strict schema keeps Kubernetes' int-or-string fields: cpu: 2 is as good as cpu: "2"."""
    edit(
        deploy / "kserve/inferenceservice.yaml", '    requests:\n          cpu: "2"', "    requests:\n          cpu: 2"
    )
    assert main(["--deploy", str(deploy), "--renderer", "builtin", "--quiet"]) == 0


def test_broken_yaml_gives_one_line(deploy, capsys):
    (deploy / "kserve/inferenceservice.yaml").write_text("kind: InferenceService\n  name: [unclosed\n")
    assert main(["--deploy", str(deploy), "--renderer", "builtin"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and "not valid YAML (line 2)" in error


def test_the_builtin_renderer_refuses_what_it_does_not_implement(deploy, capsys):
    edit(deploy / "k8s/kustomization.yaml", "resources:", "namePrefix: prod-\nresources:")
    assert main(["--deploy", str(deploy), "--renderer", "builtin"]) == 1
    assert "namePrefix: not known to the built-in renderer (install kubectl)" in capsys.readouterr().err


@pytest.mark.skipif(not shutil.which("kubectl"), reason="no kubectl to compare with")
def test_the_builtin_renderer_renders_what_kubectl_does(deploy):
    edit(deploy / "k8s/kustomization.yaml", "newTag: 0.1.0", "newTag: 2.0.0-rc1")

    def by_name(docs):
        return {(d["kind"], d["metadata"]["name"]): d for d in docs}

    assert by_name(render_builtin(deploy / "k8s")) == by_name(render_with_kubectl(deploy / "k8s"))
    images = [
        c["image"]
        for d in render_builtin(deploy / "k8s")
        for c in d["spec"].get("template", {}).get("spec", {}).get("containers", [])
    ]
    assert images == ["mnist-serve:2.0.0-rc1"]
