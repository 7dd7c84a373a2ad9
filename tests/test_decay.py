"""The reverb's decay view: energy decay curves and RT60 read from the return's impulse response."""

import math

import numpy as np
import pytest

from core.decay import DECAY_BANDS, FIT_DB, decay_curves, energy_decay_curve, rt60_from_edc
from core.params import RETURN

SR = 44100


def settings(**values) -> np.ndarray:
    return RETURN.to_vector(values)


def by_band(curves):
    return {c.band: c for c in curves}


@pytest.mark.parametrize("rt60", [0.5, 1.5, 4.0])
def test_broadband_rt60_within_10_percent_of_the_setting(rt60):
    # undamped: the whole response decays at the setting
    c = by_band(decay_curves(settings(reverb_rt60_s=rt60, reverb_hf_ratio=1.0), SR))
    assert c["broadband"].rt60_s == pytest.approx(rt60, rel=0.10)
    # damped: the setting is the decay up to 1 kHz, which the low band reads
    c = by_band(decay_curves(settings(reverb_rt60_s=rt60, reverb_hf_ratio=0.3), SR))
    assert c["low"].rt60_s == pytest.approx(rt60, rel=0.10)
    assert c["broadband"].rt60_s < 0.95 * rt60  # the damped highs shorten the whole's decay


def test_curves_fall_from_zero_db_and_cover_the_response():
    curves = decay_curves(settings(reverb_rt60_s=1.0, reverb_predelay_ms=0.0), SR, points=300)
    assert [c.band for c in curves] == [b for b, _, _ in DECAY_BANDS]
    for c in curves:
        assert c.edc_db[0] == pytest.approx(0.0, abs=1e-9)
        assert np.all(np.diff(c.edc_db) <= 1e-9)  # what is left of the energy only falls
        assert 250 <= len(c.times_s) <= 320 and c.times_s[-1] == pytest.approx(1.0, abs=0.01)
    # a line through -5 .. -35 dB extrapolated to -60 dB: the curve itself passes about there
    bb = curves[0]
    t60 = np.interp(60.0, -bb.edc_db, bb.times_s)
    assert t60 == pytest.approx(bb.rt60_s, rel=0.1)


def test_damping_shortens_the_high_band_decay():
    ratios = {}
    for hf in (1.0, 0.5, 0.2):
        c = by_band(decay_curves(settings(reverb_rt60_s=2.0, reverb_hf_ratio=hf), SR))
        ratios[hf] = c["high"].rt60_s / c["low"].rt60_s
        assert c["low"].rt60_s == pytest.approx(2.0, rel=0.10)
    assert ratios[1.0] == pytest.approx(1.0, rel=0.10)
    # the high band (4 kHz octave decays in hf ** (2/3), 8 kHz up in hf times the setting) lies between
    assert 0.5 <= ratios[0.5] <= 0.5 ** (2 / 3) * 1.05
    assert ratios[0.2] < ratios[0.5] < ratios[1.0]


@pytest.mark.parametrize("predelay_ms", [20.0, 50.0, 150.0])
def test_predelay_shifts_the_curve_by_the_predelay(predelay_ms):
    def crossing(curve, level_db):
        return float(np.interp(-level_db, -curve.edc_db, curve.times_s))

    points = SR  # every sample
    base = by_band(decay_curves(settings(reverb_rt60_s=1.0, reverb_predelay_ms=0.0), SR, points=points))
    late = by_band(decay_curves(settings(reverb_rt60_s=1.0, reverb_predelay_ms=predelay_ms), SR,
                                points=points))
    for band in ("broadband", "low", "mid", "high"):
        # flat at 0 dB (nothing has decayed) up to the pre-delay, then falling: the start moves by it
        flat = late[band].times_s < predelay_ms / 1000
        assert np.all(late[band].edc_db[flat] > -1e-6), band
        shift = crossing(late[band], -0.05) - crossing(base[band], -0.05)
        assert shift * 1000 == pytest.approx(predelay_ms, abs=1.0), band
        # further down the curves differ a little (the response's noise is indexed from the impulse,
        # not from the onset; most in the low band, which holds the fewest independent samples), but
        # keep their shape
        for level in (-10.0, -30.0) if band != "low" else ():
            shift = crossing(late[band], level) - crossing(base[band], level)
            assert shift * 1000 == pytest.approx(predelay_ms, abs=12.0), (band, level)
        assert late[band].rt60_s == pytest.approx(base[band].rt60_s, rel=0.05), band


def test_rt60_of_a_known_exponential_decay():
    n = np.arange(3 * SR)
    delta = 3 * math.log(10) / (1.2 * SR)  # amplitude falls 60 dB in 1.2 s
    x = np.random.default_rng(1).standard_normal(n.size) * np.exp(-delta * n)
    assert rt60_from_edc(energy_decay_curve(x), SR) == pytest.approx(1.2, rel=0.03)
    # a curve that never reaches the end of the fit range has no RT60
    assert math.isnan(rt60_from_edc(np.linspace(0.0, FIT_DB[1] + 1, 1000), SR))


def test_silent_or_misshapen_input_is_refused():
    with pytest.raises(ValueError, match="silent"):
        energy_decay_curve(np.zeros(100))
    with pytest.raises(ValueError, match="shape"):
        energy_decay_curve(np.zeros((2, 2, 10)))
    with pytest.raises(ValueError, match="batch"):
        decay_curves(np.stack([settings(), settings()]), SR)
