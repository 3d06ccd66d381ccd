"""What handler/ts_compat.py relies on in TorchServe's internals, pinned to the installed release."""

import inspect
import logging
from importlib.metadata import version

import pytest
from ts.protocol import otf_message_handler

from handler.ts_compat import PER_BATCH_LINE, TORCHSERVE_VERSION, not_per_batch_line, quiet_per_batch_log

pytestmark = pytest.mark.unit


def test_the_pinned_torchserve_is_installed():
    assert version("torchserve") == TORCHSERVE_VERSION


def test_torchserve_still_logs_the_per_batch_line_we_filter():
    source = inspect.getsource(otf_message_handler)
    assert f'logging.info("{PER_BATCH_LINE}"' in source


def test_the_filter_drops_that_line_only():
    line = logging.LogRecord("root", logging.INFO, __file__, 1, PER_BATCH_LINE, (1.0,), None)
    other = logging.LogRecord("root", logging.INFO, __file__, 1, "Backend received %s", ("x",), None)
    assert not not_per_batch_line(line) and not_per_batch_line(other)
    root = logging.getLogger()
    try:
        quiet_per_batch_log()
        quiet_per_batch_log()
        assert root.filters.count(not_per_batch_line) == 1
    finally:
        root.removeFilter(not_per_batch_line)
