"""``python -m train``: train the MNIST CNN (see :mod:`train.run`)."""

from scripts.cli import exit_now
from train.run import main

exit_now(main())
