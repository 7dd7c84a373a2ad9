"""Test-wide settings."""

import os

# The CLI compiles the audio kernels ahead of first use when their cache is missing (a minute, with a
# message on stderr); tests compile on first use instead and keep their stderr to the point.
os.environ.setdefault("STYLEMIX_NO_WARMUP", "1")
