"""The alert rules and scrape configuration of deploy/monitoring, checked by Prometheus's promtool.

``promtool test rules`` runs tests/monitoring/rules_test.yml: every alert fires on a synthetic
series that breaks it and stays quiet on one that does not. CI installs Debian's prometheus
package (.ci/run); elsewhere these tests skip when promtool is missing.
"""

import shutil
import subprocess

import pytest
import yaml

from scripts.monitoring import rules
from scripts.serving.paths import ROOT

pytestmark = [
    pytest.mark.unit,
    pytest.mark.timeout(120),
]
MONITORING = ROOT / "deploy" / "monitoring"
UNIT_TESTS = ROOT / "tests" / "monitoring" / "rules_test.yml"
needs_promtool = pytest.mark.skipif(
    not shutil.which("promtool"), reason="promtool not installed (Debian: apt-get install prometheus)"
)


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, timeout=60)


def alerts() -> list[str]:
    return [rule["alert"] for group in rules.load_groups() for rule in group["rules"] if "alert" in rule]


@needs_promtool
def test_promtool_checks_the_rules_and_the_scrape_configuration():
    checked = promtool("check", "rules", MONITORING / "rules.yml")
    assert checked.returncode == 0 and f"SUCCESS: {len(alerts())} rules found" in checked.stdout, checked.stderr
    config = promtool("check", "config", MONITORING / "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


@needs_promtool
def test_promtool_refuses_a_broken_expression(tmp_path):
    broken = tmp_path / "rules.yml"
    text = (MONITORING / "rules.yml").read_text()
    broken.write_text(text.replace("rate(Requests5XX[5m])", "rate(Requests5XX[5m)", 1))
    result = promtool("check", "rules", broken)
    assert result.returncode != 0 and "rules.yml" in result.stderr + result.stdout


@needs_promtool
def test_every_alert_fires_and_stays_quiet_in_the_unit_tests():
    result = promtool("test", "rules", UNIT_TESTS)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_the_unit_tests_cover_every_alert_both_ways():
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in alerts():
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"{alert} is never shown firing"
        assert any(not case["exp_alerts"] for case in mine), f"{alert} is never shown quiet"


def test_the_prometheus_rule_is_rendered_from_the_rules_file(tmp_path):
    assert rules.render() == (MONITORING / "prometheusrule.yaml").read_text()
    changed = tmp_path / "rules.yml"
    changed.write_text((MONITORING / "rules.yml").read_text().replace("for: 2m", "for: 3m", 1))
    rendered = yaml.safe_load(rules.render(changed))
    assert rendered["kind"] == "PrometheusRule" and rendered["spec"]["groups"][0]["rules"][0]["for"] == "3m"
    assert rules.main(["--check"]) == 0
