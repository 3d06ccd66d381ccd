"""The serving library's one error type."""

from scripts.cli import CliError


class ServeError(CliError):
    """A serving step failed; the message is the one line the user sees."""
