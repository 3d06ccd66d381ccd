"""``python -m scripts.serving``: see :mod:`scripts.serving.cli`."""

import sys

from scripts.serving.cli import main

sys.exit(main())
