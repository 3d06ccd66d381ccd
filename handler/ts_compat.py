"""The one place the handler depends on TorchServe's internals rather than its handler API.

Pinned to the TorchServe release in requirements.txt; tests/test_ts_compat.py fails when an
upgrade changes what this relies on.
"""

import logging

TORCHSERVE_VERSION = "0.12.0"
# TorchServe's worker logs this for every batch (ts/protocol/otf_message_handler.py); the frontend
# reads each line and writes it to model_log.log, so under load it is most of that log.
PER_BATCH_LINE = "Backend received inference at: %d"


def not_per_batch_line(record: logging.LogRecord) -> bool:
    """Logging filter: drop TorchServe's per-batch line, keep everything else."""
    return record.msg != PER_BATCH_LINE


def quiet_per_batch_log() -> None:
    """Drop the per-batch line from the worker's log (the root logger, where TorchServe logs it)."""
    root = logging.getLogger()
    if not_per_batch_line not in root.filters:
        root.addFilter(not_per_batch_line)
