"""The user's guides (README.md, docs/*.md) speak of the product, and what they cite exists."""

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("model", "handler", "train", "scripts", "tests")
# Lab-notebook prose: commits, issue numbers, notes to the authors themselves.
# A hash: 7-40 hex digits with at least one digit and one letter (so "deadbeef" and "1234567" pass).
HASH = r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"
NOTEBOOK = {
    "a commit hash": re.compile(r"\b(?:commit|at|before is|git archive|checkout) [0-9a-f]{7,40}\b|" + HASH),
    "an issue number": re.compile(r"\b(?:issues?|PR|pull request) #?[0-9]+\b|(?<![\w&/])#[0-9]+\b", re.IGNORECASE),
    "a note to the authors": re.compile(r"re-?measure|throwaway|the issue's|this issue|TODO|FIXME", re.IGNORECASE),
}
NAMES = "|".join(PACKAGES)
FILE = re.compile(rf"`((?:{NAMES})/[\w./-]*)`")
DOTTED = re.compile(rf"`((?:{NAMES})(?:\.\w+)+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def notebook_prose(text: str) -> list[str]:
    return [f"{what}: {m.group(0)!r}" for what, pattern in NOTEBOOK.items() for m in pattern.finditer(text)]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text."""
    found = set()
    for heading in re.findall(r"^#+ +(.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def resolves(dotted: str, root: Path = ROOT) -> bool:
    """Whether ``a.b.c`` names a module of the project, or a top-level name (or a class's attribute) in one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:cut])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if base.is_dir() and not source.is_file():
            return cut == len(parts)  # a folder of files (scripts/setup): only the folder itself
        if source.is_file():
            rest = parts[cut:]
            if not rest:
                return True
            return _defines(ast.parse(source.read_text()), rest) or (base / rest[0]).with_suffix(".py").is_file()
    return False


def _defines(tree: ast.AST, names: list[str]) -> bool:
    for node in getattr(tree, "body", []):
        targets = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            targets = [(a.asname or a.name).split(".")[0] for a in node.names]
        if names[0] in targets:
            return len(names) == 1 or (isinstance(node, ast.ClassDef) and _defines(node, names[1:]))
    return False


def broken_citations(path: Path, root: Path = ROOT) -> list[str]:
    text = path.read_text()
    broken = [f"no file {f}" for f in FILE.findall(text) if not (root / f.rstrip("/")).exists() and "<" not in f]
    broken += [f"nothing named {d}" for d in DOTTED.findall(text) if not resolves(d, root)]
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file) if file else path
        if not linked.exists():
            broken.append(f"no file {target}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(f"no heading for {target}")
    return broken


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_the_guides_carry_no_lab_notebook_prose(path):
    assert notebook_prose(path.read_text()) == []


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_what_the_guides_cite_exists(path):
    assert broken_citations(path) == []


def test_readme_stays_a_short_guide():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize(
    "text",
    [
        "*Before* is commit 47f4bae; *after* is ours.",
        "measured on 1a2b3c4d, the old tree",
        "The drawing page (issue 15)",
        "as asked in #14",
        "These figures are not re-measured.",
        "measured with throwaway scripts",
        "### Against the issue's targets",
    ],
)
def test_lab_notebook_prose_is_caught(text):
    assert notebook_prose(text)


def test_product_prose_with_numbers_and_hex_is_not_caught():
    text = "99.52% on MNIST test, 10,000 digits; port 8080; `#define`; colour #fff; sha256 of the files; deadbeef"
    assert notebook_prose(text) == []


def test_citations_of_missing_files_names_and_headings_are_caught(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "handler").mkdir()
    (tmp_path / "handler" / "__init__.py").write_text("")
    (tmp_path / "handler" / "ink.py").write_text("class Ink:\n    def level(self): ...\n\nLIMIT = 3\n")
    guide = tmp_path / "docs" / "guide.md"
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## Graceful stop\n")
    guide.write_text(
        "`handler/ink.py` `handler.ink.Ink.level` `handler.ink.LIMIT` [x](other.md#graceful-stop) [y](#guide)\n"
        "# Guide\n"
    )
    assert broken_citations(guide, tmp_path) == []
    guide.write_text(
        "`handler/gone.py` `handler.ink.missing` `handler.ink.Ink.gone` `tests.serving.start_test_server`\n"
        "[x](other.md#warm-up-and-graceful-stop) [z](missing.md)\n"
    )
    assert broken_citations(guide, tmp_path) == [
        "no file handler/gone.py",
        "nothing named handler.ink.missing",
        "nothing named handler.ink.Ink.gone",
        "nothing named tests.serving.start_test_server",
        "no heading for other.md#warm-up-and-graceful-stop",
        "no file missing.md",
    ]
