"""``python -m train``: train the MNIST CNN (see :mod:`train.run`)."""

import sys

from train.run import main

sys.exit(main())
