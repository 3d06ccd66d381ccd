"""Command-line plumbing every command shares (training, serving, tools): one-line errors, argument types, reports."""

import argparse
import json
import os
import sys
from pathlib import Path


class CliError(Exception):
    """A bad option or environment; the message is the one line the user sees."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one ``error: ...`` line, not usage plus message."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def check_writable_dir(path: Path, what: str) -> None:
    """Create ``path`` if needed and make sure files can be written there, before any long work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create {what} {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CliError(f"{what} {path} is not writable")


def check_writable_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise CliError(f"{what} {path} is a directory, not a file")
    check_writable_dir(path.parent if str(path.parent) else Path("."), f"folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise CliError(f"{what} {path} is not writable")


def fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def print_report(report: dict, path: str | Path | None = None) -> None:
    """Print ``report`` as indented JSON and, given a path, write it there too (folders made)."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")


def write_report(report: dict, path: Path) -> None:
    """Write ``report`` as indented JSON to ``path`` (folders made) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def exit_now(code: int | None) -> None:
    """End the process with ``code`` at once, without the interpreter's teardown.

    A process that imported torch, its compiler stack and the plotting libraries spends longer
    unloading its thousands of modules than some of its own stages take, for nothing. Call this
    only from a command's ``__main__``, once everything it writes is written and closed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
