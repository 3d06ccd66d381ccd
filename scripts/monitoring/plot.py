"""The dashboard's panels drawn from a Prometheus's answers (docs/images/monitoring-panels.png).

    python -m scripts.monitoring.plot --prometheus http://127.0.0.1:9090 --minutes 10

Asks Prometheus's range API for every query of deploy/monitoring/dashboard.json, with Grafana's
variables set as the dashboard would set them, and draws one subplot per panel.
"""

import argparse
import json
import math
import sys
import time
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import requests  # noqa: E402

from scripts.cli import fail, positive_float  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "monitoring" / "dashboard.json"
UNITS = {"reqps": "requests/s", "ms": "ms", "none": "", "percentunit": "share"}


def panel_series(prometheus: str, panel: dict, start: float, end: float, step: int, variables: dict) -> list:
    """[(legend, [times], [values])] for each series of each target of ``panel``."""
    series = []
    for target in panel["targets"]:
        expr = target["expr"]
        for name, value in variables.items():
            expr = expr.replace(name, value)
        params = {"query": expr, "start": start, "end": end, "step": step}
        answer = requests.get(f"{prometheus}/api/v1/query_range", params=params, timeout=30).json()
        if answer.get("status") != "success":
            raise ValueError(f"{panel['title']}: {expr}: {answer.get('error')}")
        for result in answer["data"]["result"]:
            legend = target["legendFormat"]
            for key, value in result["metric"].items():
                legend = legend.replace("{{" + key + "}}", value)
            points = [(float(t), float(v)) for t, v in result["values"] if math.isfinite(float(v))]
            series.append((legend, [datetime.fromtimestamp(t) for t, _ in points], [v for _, v in points]))
    return series


def plot(prometheus: str, minutes: float, out: Path, model: str = "mnist", rate_interval: str = "30s") -> Path:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    end = time.time()
    start = end - minutes * 60
    variables = {"$__rate_interval": rate_interval, "$model": model}
    step = max(1, int(minutes * 60 / 300))
    rows = math.ceil(len(panels) / 2)
    figure, axes = plt.subplots(rows, 2, figsize=(13, 3.2 * rows), sharex=True)
    for axis, panel in zip(axes.flat, panels, strict=False):
        for legend, times, values in panel_series(prometheus, panel, start, end, step, variables):
            axis.plot(times, values, label=legend, linewidth=1.2)
        axis.set_title(panel["title"], fontsize=10)
        axis.set_ylabel(UNITS.get(panel["fieldConfig"]["defaults"].get("unit"), ""), fontsize=8)
        axis.set_ylim(bottom=0)
        axis.tick_params(labelsize=7)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="upper left")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.autofmt_xdate()
    figure.suptitle(f"deploy/monitoring/dashboard.json, from Prometheus's answers ({minutes:g} minutes)", fontsize=11)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.monitoring.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus's URL (make monitor's)")
    parser.add_argument("--minutes", type=positive_float, default=10.0, help="how far back (10)")
    parser.add_argument("--model", default="mnist", help="the model variable (mnist)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "monitoring-panels.png", help="figure")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {plot(args.prometheus, args.minutes, args.out, args.model)}")
    except (requests.RequestException, ValueError) as error:
        return fail(f"cannot read {args.prometheus}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
