"""stylemix core: the console, audio I/O, features, model, refinement and CLI (no Qt)."""

import os

# OpenMP threads that spin while waiting make every torch call many times slower when another
# process (the GUI, a render thread, anything else) is busy on this machine; passive waiting costs
# nothing measurable when it is idle. Must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
