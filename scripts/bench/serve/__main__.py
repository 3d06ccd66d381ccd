"""``python -m scripts.bench.serve``: see :mod:`scripts.bench.serve.cli`."""

import os
import sys
import zlib

from scripts.bench.serve.cli import main
from scripts.serving.process import zlib_ng_env


def decode_like_the_workers() -> None:
    """Restart this process on zlib-ng when the workers get it and it has not.

    The in-process figures must inflate the PNGs with the workers' zlib, and the dynamic linker
    reads LD_LIBRARY_PATH only when a process starts.
    """
    env = zlib_ng_env(os.environ)
    restarted = env and os.environ.get("LD_LIBRARY_PATH") == env["LD_LIBRARY_PATH"]
    if env and not restarted and "zlib-ng" not in zlib.ZLIB_RUNTIME_VERSION:
        os.execve(sys.executable, [sys.executable, "-m", "scripts.bench.serve", *sys.argv[1:]], {**os.environ, **env})


decode_like_the_workers()
sys.exit(main())
