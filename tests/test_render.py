"""Output stage: true-peak limiter and loudness matching through the master fader."""

import numpy as np
import pytest

from core.features import integrated_lufs, true_peak_dbtp
from core.paramfile import MixParams
from core.params import MASTER
from core.render import limit, output_stage


def _music(sr, seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.1 * rng.standard_normal(t.size)
    clicks = np.zeros_like(t)
    clicks[:: sr // 4] = 1.5  # transients well above full scale
    x = x + np.convolve(clicks, np.exp(-np.arange(200) / 30), mode="same")
    return np.stack([x, 0.8 * x]).astype(np.float32)


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("ceiling", [-1.0, -3.0])
def test_limiter_holds_true_peak_ceiling(sr, ceiling):
    x = _music(sr)
    assert true_peak_dbtp(x, sr) > ceiling + 3
    y = limit(x, sr, ceiling)
    assert y.shape == x.shape
    assert true_peak_dbtp(y, sr) <= ceiling + 1e-3


def test_limiter_is_transparent_below_ceiling_and_has_no_latency():
    sr = 44100
    x = 0.2 * _music(sr)
    assert true_peak_dbtp(x, sr) < -1.0
    np.testing.assert_array_equal(limit(x, sr, -1.0), x)
    # a loud impulse stays where it was
    imp = np.zeros((2, sr), np.float32)
    imp[:, 5000] = 2.0
    y = limit(imp, sr, -1.0)
    assert int(np.argmax(np.abs(y[0]))) == 5000


def test_limiter_leaves_quiet_parts_alone():
    sr = 44100
    x = _music(sr)
    y = limit(x, sr, -1.0)
    # between transients (the gain has recovered after 60 ms release) the signal is nearly unchanged
    seg = slice(int(0.2 * sr), int(0.24 * sr))
    ratio = np.sqrt(np.mean(y[0, seg] ** 2) / np.mean(x[0, seg] ** 2))
    assert ratio > 0.9


def test_output_stage_matches_loudness_and_records_fader():
    sr = 44100
    x = 0.1 * _music(sr)
    params = MixParams.defaults(["a"])
    out, p2 = output_stage(x, sr, params, -12.0, -1.0)
    assert abs(integrated_lufs(out, sr) - (-12.0)) < 0.5
    assert true_peak_dbtp(out, sr) <= -1.0 + 1e-3
    gain = p2.master[MASTER.index("gain_db")]
    assert gain > 5.0  # the loudness change lives in the master fader
    assert params.master[MASTER.index("gain_db")] == 0.0  # input untouched
