"""Comments and docstrings say why, never one machine's figures ("4x faster here"): those live in docs/."""

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"\d+(?:[.,]\d+)?"
FIGURES = re.compile(
    "|".join(
        [
            # 4x faster; 15% of a step; 4 s measured
            rf"{NUMBER}\s?(?:x|×|times)\s+(?:faster|slower|cheaper|quicker|costlier)",
            rf"{NUMBER}\s?%\s+(?:faster|slower|cheaper|less|more|of (?:the|a|its|this)\b[^.]*\b(?:time|cost|step))",
            rf"{NUMBER}\s?(?:ms|µs|us|s)\s+(?:measured|here|on (?:this|our|the) (?:machine|VM|box))",
            # faster here; half of the preprocessing time; slow on AMD; as served on 2 cores
            r"\b(?:faster|slower|cheaper) here\b",
            r"\b(?:a third|half|a quarter) of (?:the|this|its) [\w'-]+ (?:time|cost)\b",
            r"\bon (?:AMD|Intel|Xeon|EPYC|ARM|Apple)\b|\bon (?:\d+|two|four) (?:cores|CPUs|vCPUs)\b",
        ]
    ),
    re.IGNORECASE,
)


# Files whose comments start with "#" on a line of their own or after the code.
HASH_COMMENTED = ("Makefile", "*.yaml", "*.yml", "*.properties", "*.sh", "*.toml", "requirements*.txt", "*.lua")


def sources(*patterns: str) -> list[Path]:
    """The project's files matching ``patterns`` outside tests/ (as git tracks them)."""
    listed = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / name for name in listed.stdout.split() if not name.startswith("tests/")]


def hash_comments(text: str) -> list[tuple[int, str]]:
    """(line, text) of each ``#`` or ``--`` (Lua) comment of a configuration file or script."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        match = re.search(r"(?:^|\s)(?:#|--)\s(.*)", line)
        if match:
            found.append((number, match.group(1)))
    return found


def prose(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring."""
    found = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc and node.body:
                found.append((node.body[0].lineno, doc))
    return found


def figures(source: str, comments=prose) -> list[str]:
    found = comments(source)
    return [f"{line}: {m.group(0)}" for line, text in found for m in FIGURES.finditer(" ".join(text.split()))]


def test_no_comment_or_docstring_carries_a_machine_figure():
    found = {str(path.relative_to(ROOT)): figures(path.read_text()) for path in sources("*.py")}
    for path in sources(*HASH_COMMENTED):
        found[str(path.relative_to(ROOT))] = figures(path.read_text(), hash_comments)
    assert {path: hits for path, hits in found.items() if hits} == {}


def test_configuration_comments_are_read_too():
    assert figures("      # preStop (10 s) + TorchServe's stop (4 s measured)\n", hash_comments)
    assert figures("local x = 1 -- 3x faster here\n", hash_comments)
    assert figures("key=value\n", hash_comments) == []


@pytest.mark.parametrize(
    "source",
    [
        "x = 1  # 4x faster here\n",
        'def f():\n    """The same partition without its overhead (4x faster)."""\n',
        "# a third of this stage's time\n",
        '"""On a 120x120 picture five of them were half of the preprocessing time."""\n',
        "# preStop (10 s) + TorchServe's stop (4 s measured)\n",
        "# 15% of a step on this CPU\n",
        "# 2.3 times slower than channels-last\n",
        "# np.median is slower here\n",
        '"""bernoulli_ costs a generator call per element (slow on AMD)."""\n',
        "torch.set_num_threads(1)  # one thread per worker, as served on 2 cores\n",
    ],
)
def test_a_figure_in_a_comment_or_docstring_is_caught(source):
    assert figures(source)


def test_reasons_with_numbers_that_are_not_measurements_pass():
    source = (
        '"""Tiles are about 1/8 of the longer side; a 3x3 median; 28x28 inputs; 50 megapixels at most."""\n'
        "x = 1  # TorchServe reads a maxBatchDelay of 0 as unset (its 100 ms default)\n"
        "y = 2  # a quarter of the way to stroke cores; the 99th percentile of MNIST's widths\n"
    )
    assert figures(source) == []
