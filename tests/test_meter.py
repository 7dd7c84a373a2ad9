"""Compiled loudness, true peak and limiter: against pyloudnorm, the EBU Tech 3341 cases, scipy's
resampler and the whole-signal limiter they replace; chunked results equal whole-signal ones."""

import math

import numpy as np
import pytest
import scipy.signal

from core import meter, render
from core.meter import LoudnessMeter
from core.paramfile import MixParams
from core.params import MASTER
from core.stream_io import FrameStore

SR = 48000


def _sine(freq, seconds, db, sr=SR, channels=2):
    t = np.arange(int(seconds * sr)) / sr
    x = 10 ** (db / 20) * np.sin(2 * np.pi * freq * t)
    return np.tile(x, (channels, 1))


# --- loudness -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("db", [-23.0, -33.0])
def test_ebu_3341_cases_1_and_2_steady_tone(db):
    # stereo 1 kHz at -23 (-33) dBFS per channel reads -23 (-33) LUFS, +-0.1 LU
    x = _sine(1000.0, 20.0, db)
    assert meter.integrated_lufs(x, SR) == pytest.approx(db, abs=0.1)


def test_ebu_3341_case_3_relative_gate():
    # -36 / -23 / -36 dBFS for 10 / 60 / 10 s: the relative gate drops the quiet parts -> -23
    x = np.concatenate([_sine(1000.0, 10, -36), _sine(1000.0, 60, -23), _sine(1000.0, 10, -36)], axis=1)
    assert meter.integrated_lufs(x, SR) == pytest.approx(-23.0, abs=0.1)


def test_ebu_3341_case_5_steps():
    # -26 / -20 / -26 dBFS for 20 / 20.1 / 20 s reads -23
    x = np.concatenate([_sine(1000.0, 20, -26), _sine(1000.0, 20.1, -20), _sine(1000.0, 20, -26)], axis=1)
    assert meter.integrated_lufs(x, SR) == pytest.approx(-23.0, abs=0.1)


@pytest.mark.parametrize("shape,dtype", [((2, 7 * 44100 + 123), np.float32),
                                         ((1, 3 * 44100 + 7), np.float64)])
def test_integrated_equals_pyloudnorm(shape, dtype):
    import pyloudnorm

    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 0.05).astype(dtype)
    x[:, 44100:2 * 44100] *= 0.001
    ref = pyloudnorm.Meter(44100).integrated_loudness(x.T.astype(np.float64))
    assert meter.integrated_lufs(x, 44100) == pytest.approx(ref, abs=1e-6)


def _reference_k_power(x, sr):
    y = scipy.signal.sosfilt(np.array(meter.k_weighting_sos(sr)), x.astype(np.float64), axis=-1)
    return np.square(y).sum(axis=0)


def test_momentary_and_short_term_equal_the_per_sample_definition():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9 * SR + 55)) * np.linspace(0.01, 0.3, 9 * SR + 55)
    p = _reference_k_power(x, SR)
    hop = SR // 10
    for window, got in ((SR * 4 // 10, meter.momentary_lufs(x, SR)), (3 * SR, meter.short_term_lufs(x, SR))):
        starts = np.arange((p.size - window) // hop + 1) * hop
        cs = np.concatenate([[0.0], np.cumsum(p)])
        want = -0.691 + 10 * np.log10((cs[starts + window] - cs[starts]) / window)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_meter_fed_in_any_chunks_equals_whole():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 5 * SR + 321)) * 0.1).astype(np.float32)
    whole = meter.meter(x, SR)
    m = LoudnessMeter(SR, 2)
    pos = 0
    for size in rng.integers(1, 40000, 1000):
        m.add(x[:, pos:pos + size])
        pos += size
        if pos >= x.shape[1]:
            break
    np.testing.assert_array_equal(m.hop_sums(), whole.hop_sums())
    assert m.integrated() == whole.integrated()
    assert m.integrated(gain_db=-6.0) == pytest.approx(whole.integrated() - 6.0, abs=1e-9)


# --- true peak ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 9, 40, 1000, 70001])
def test_peak_envelope_equals_resample_poly(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2, n)) * 0.2
    up = np.abs(scipy.signal.resample_poly(x, 4, 1, axis=-1)).max(axis=0).reshape(n, 4).max(axis=1)
    want = np.maximum(up, np.abs(x).max(axis=0))
    np.testing.assert_allclose(meter.peak_envelope(x, 44100), want, rtol=1e-12, atol=1e-15)


def test_true_peak_of_an_intersample_peak():
    # fs/4 at 45 degrees: every sample is at 0.707 of the peak; the 4x oversampled peak finds it
    x = _sine(SR / 4, 1.0, 0.0)[:1] * 0 + np.sin(2 * np.pi * 0.25 * np.arange(SR) + np.pi / 4)
    x = x * np.minimum(1, np.arange(SR) / 480) * np.minimum(1, np.arange(SR)[::-1] / 480)
    assert meter.sample_peak_dbfs(x) == pytest.approx(-3.01, abs=0.05)
    assert meter.true_peak_dbtp(x, SR) == pytest.approx(0.0, abs=0.2)


# --- limiter and output stage ----------------------------------------------------------------------------

def _reference_limit(x, sr, ceiling_dbtp):
    """The whole-signal limiter the chunked one replaces (resample_poly envelope, scipy filters)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_dbtp / 20) * 10 ** (-0.05 / 20)
    xx = x.astype(np.float64)
    t = xx.shape[-1]
    up = np.abs(scipy.signal.resample_poly(xx, 4, 1, axis=-1)).max(axis=0)
    env = np.maximum(up[: t * 4].reshape(t, 4).max(axis=1), np.abs(xx).max(axis=0))
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    if need.min() >= 1.0:
        return x
    look = max(1, int(round(1.5e-3 * sr)))
    held = minimum_filter1d(need, size=2 * look + 1, mode="nearest")
    coef = 1.0 - math.exp(-1.0 / (60e-3 * sr))
    g, released = 1.0, np.empty_like(held)
    for i, h in enumerate(held):
        g = min(g + coef * (1.0 - g), h)
        released[i] = g
    gain = np.minimum(uniform_filter1d(released, size=look, mode="nearest"), need)
    return (x * gain[None, :]).astype(x.dtype)


def _music(sr, seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.1 * rng.standard_normal(t.size)
    clicks = np.zeros_like(t)
    clicks[:: sr // 4] = 1.5
    x = x + np.convolve(clicks, np.exp(-np.arange(200) / 30), mode="same")
    return np.stack([x, 0.8 * x]).astype(np.float32)


@pytest.mark.parametrize("sr", [44100, 48000])
def test_limiter_agrees_with_the_whole_signal_limiter(sr):
    x = _music(sr)
    np.testing.assert_allclose(render.limit(x, sr, -1.0), _reference_limit(x, sr, -1.0), rtol=0, atol=2e-7)


def test_limiter_in_small_chunks_equals_whole(monkeypatch):
    x = _music(44100, seconds=2.0, seed=4)
    whole = render.limit(x, 44100, -2.0)
    monkeypatch.setattr(render, "CHUNK", 1000)  # chunk edges fall everywhere, also inside the look-ahead
    np.testing.assert_array_equal(render.limit(x, 44100, -2.0), whole)


def test_output_stage_through_temporary_files_equals_in_memory(monkeypatch):
    x = 0.1 * _music(44100, seconds=4.0, seed=5)
    params = MixParams.defaults(["a"])
    mem, p_mem = render.output_stage(x, 44100, params, -10.0, -1.0)
    import core.stream_io as sio

    monkeypatch.setattr(sio, "MEMORY_STORE_BYTES", 0)
    monkeypatch.setattr(render, "CHUNK", 30000)
    res = render.output_stage_store(FrameStore.of(x), 44100, 0.0, -10.0, -1.0)
    assert not res.out.in_memory
    np.testing.assert_array_equal(res.out.array(), mem)
    assert res.gain_db == p_mem.master[MASTER.index("gain_db")]
    assert res.loudness_lufs == pytest.approx(meter.integrated_lufs(mem, 44100), abs=1e-9)
    assert res.true_peak_dbtp == pytest.approx(meter.true_peak_dbtp(mem, 44100), abs=1e-9)
    assert res.true_peak_dbtp <= -1.0
    res.out.close()


def test_af_features_np_equals_the_torch_features():
    import torch

    from core.features import af_features

    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3 * 44100 + 17)) * np.array([[0.1], [0.05]])
    got = meter.af_features_np(x, 44100)
    with torch.no_grad():
        want = af_features(torch.from_numpy(x), 44100)
    for key, value in want.items():
        np.testing.assert_allclose(np.asarray(got[key]), value[0].numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sr", [44100, 48000])
def test_k_weighting_is_pyloudnorms_design(sr):
    from pyloudnorm.iirfilter import IIRfilter

    want = [IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, sr, "high_shelf"),
            IIRfilter(0.0, 0.5, 38.0, sr, "high_pass")]
    for row, f in zip(meter.k_weighting_sos(sr), want, strict=True):
        np.testing.assert_allclose(row, np.concatenate([f.b, f.a]) / f.a[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n,half", [(1, 3), (5, 2), (10, 66), (1000, 66), (777, 1)])
def test_running_min_equals_scipys_minimum_filter(n, half):
    from scipy.ndimage import minimum_filter1d

    x = np.random.default_rng(n).random(n)
    out = np.empty(n)
    render._running_min(x, half, out)
    np.testing.assert_array_equal(out, minimum_filter1d(x, 2 * half + 1, mode="nearest"))
