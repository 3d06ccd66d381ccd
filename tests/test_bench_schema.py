"""The benchmark's point schema is the one the JSON, the markdown and docs/performance.md share."""

import pytest

from scripts.bench.serve.cli import build_parser, main
from scripts.bench.serve.report import markdown
from scripts.bench.serve.schema import Point, field_docs, markdown_fields
from scripts.serving.paths import ROOT

pytestmark = pytest.mark.unit


def test_docs_list_exactly_the_declared_fields():
    assert markdown_fields() in (ROOT / "docs" / "performance.md").read_text()


def test_fields_command_prints_the_table(capsys):
    assert main(["--fields"]) == 0
    assert capsys.readouterr().out == markdown_fields()


def test_a_point_serialises_every_declared_field_and_the_table_reads_it():
    point = Point(config="w1-b8-d1", workers=1, batch_size=8, max_batch_delay_ms=1, concurrency=8, requests=10)
    point.rps, point.p50_ms, point.p90_ms, point.p99_ms, point.non_200 = 100.0, 1.0, 2.0, 3.0, 0
    point.fraction_of_ceiling, point.cpu_efficiency = 0.5, None
    row = point.to_json()
    assert list(row) == list(field_docs())
    report = {
        "ceiling": {"processes": 2, "images_per_s": {8: 200.0}},
        "machine": {"cpu": "x", "cores": 2, "load_average_at_start": [0.1], "torch": "t"},
        "single_image_ms": {"handler": 0.5},
        "points": [row],
    }
    assert "| pngs | this | w1-b8-d1 | 1 | 8 | 1 | 8 | 100 | 50% | - | 1.0 | 2.0 | 3.0 | 0 |" in markdown(report)


@pytest.mark.parametrize("argv", [["--concurrency", "0"], ["--requests", "x"], ["--warmup", "-1"]])
def test_bad_options_are_one_line_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")
