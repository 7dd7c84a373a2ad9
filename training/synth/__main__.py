"""``python -m training.synth``: see :mod:`training.synth.cli`."""

import sys

from .cli import main

sys.exit(main())
