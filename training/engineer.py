"""Old import path of :mod:`training.synth.engineer` (engineer-style finished mixes).

``import training.engineer`` gives the very same module object as ``import training.synth.engineer``,
so attributes read or patched through either name are shared.
"""

import sys

from training.synth import engineer as _engineer

sys.modules[__name__] = _engineer
