"""The Prometheus Operator's PrometheusRule, rendered from the plain rules file (the one source).

python -m scripts.monitoring.rules            # rewrite deploy/monitoring/prometheusrule.yaml
python -m scripts.monitoring.rules --check    # exit 1 when it differs from what rules.yml gives
"""

import argparse
import sys
from pathlib import Path

import yaml

from scripts.cli import fail

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules.yml"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
HEADER = (
    "# Generated from rules.yml by `python -m scripts.monitoring.rules`: edit rules.yml, not this file.\n"
    "# The Prometheus Operator loads it when its ruleSelector matches these labels.\n"
)
LABELS = {"app.kubernetes.io/name": "mnist-serve", "app.kubernetes.io/component": "monitoring"}


def load_groups(path: Path = RULES) -> list[dict]:
    """The rule groups of a plain Prometheus rules file."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise ValueError(f"{path}: a rules file is a mapping with a list of groups")
    return document["groups"]


def prometheus_rule(groups: list[dict], name: str = "mnist-serve") -> dict:
    """A monitoring.coreos.com/v1 PrometheusRule holding ``groups`` unchanged."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "labels": dict(LABELS)},
        "spec": {"groups": groups},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as they are written in rules.yml."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def render(source: Path = RULES) -> str:
    """The text of prometheusrule.yaml for ``source``."""
    rule = prometheus_rule(load_groups(source))
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.monitoring.rules", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 when prometheusrule.yaml is stale")
    args = parser.parse_args(argv)
    try:
        text = render()
    except (OSError, ValueError, yaml.YAMLError) as error:
        return fail(str(error))
    if args.check:
        if not PROMETHEUS_RULE.is_file() or PROMETHEUS_RULE.read_text() != text:
            return fail(f"{PROMETHEUS_RULE} is not what {RULES} gives: run `python -m scripts.monitoring.rules`")
        print(f"{PROMETHEUS_RULE.name} matches {RULES.name}")
        return 0
    PROMETHEUS_RULE.write_text(text)
    print(f"wrote {PROMETHEUS_RULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
