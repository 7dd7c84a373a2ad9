"""Engineer-style finished mixes (training/synth/engineer.py): determinism, exact contributions, loudness and
peak, settings where engineers work, the reverb's decay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.features import integrated_lufs, true_peak_dbtp
from core.params import MASTER, TRACK
from core.prepare import trim_for
from training.synth import engineer

from synthetic import make_stems

SR = 22050
SECONDS = 4.0


@pytest.fixture(scope="module")
def stems():
    return make_stems(SR, SECONDS, seed=3)


@pytest.fixture(scope="module")
def mixed(stems):
    return engineer.engineer_mix(stems, SR, np.random.default_rng(5))


def test_roles_from_generated_and_common_names():
    assert engineer.role_of("bass_finger") == "bass"
    assert engineer.role_of("voice_choir_aahs_2") == "voice"
    assert engineer.role_of("percussion_claves") == "percussion"
    assert engineer.role_of("keys") == "chords"
    assert engineer.role_of("Vox") == "voice"
    assert engineer.role_of("didgeridoo") == "other"


def test_inputs_as_imported(stems):
    inputs = engineer.stems_inputs(stems, SR)
    assert inputs.names == list(stems)
    assert list(inputs.stereo) == [x.shape[0] == 2 for x in stems.values()]
    for i, x in enumerate(stems.values()):
        assert inputs.trim_db[i] == pytest.approx(trim_for(x, SR, False))
    # (T,) and (T, C) layouts read the same as (C, T)
    transposed = engineer.stems_inputs({k: v.T if v.shape[0] == 2 else v[0] for k, v in stems.items()}, SR)
    np.testing.assert_array_equal(transposed.stems, inputs.stems)


def test_deterministic_by_rng(stems, mixed):
    again = engineer.engineer_mix(stems, SR, np.random.default_rng(5))
    np.testing.assert_array_equal(again.mix, mixed.mix)
    np.testing.assert_array_equal(again.params.tracks, mixed.params.tracks)
    other = engineer.engineer_mix(stems, SR, np.random.default_rng(6))
    assert not np.allclose(other.mix, mixed.mix)


def test_contributions_sum_to_the_mix(mixed):
    assert mixed.contributions.shape == (len(mixed.names), 2, mixed.mix.shape[-1])
    err = mixed.contributions.sum(axis=0, dtype=np.float64) - mixed.mix
    assert 10 * np.log10(np.sum(err ** 2) / np.sum(mixed.mix.astype(np.float64) ** 2)) < -80


def test_loudness_and_true_peak(stems):
    for target in (-16.0, -8.0):
        em = engineer.engineer_mix(stems, SR, np.random.default_rng(1), loudness_lufs=target)
        assert integrated_lufs(em.mix, SR) == pytest.approx(target, abs=0.1)
        assert true_peak_dbtp(em.mix, SR) <= engineer.CEILING_DBTP + 0.05
    drawn = engineer.engineer_mix(stems, SR, np.random.default_rng(2))
    assert engineer.LOUDNESS_LUFS[0] <= drawn.settings.loudness_lufs <= engineer.LOUDNESS_LUFS[1]


def test_settings_where_engineers_work(stems):
    inputs = engineer.stems_inputs(stems, SR)
    gains = [f"{b}_gain_db" for b in ("eq_low_shelf", "eq_band1", "eq_band2", "eq_band3", "eq_band4",
                                      "eq_high_shelf")]
    spreads = []
    for seed in range(30):
        st = engineer.draw_console(inputs, np.random.default_rng(seed))
        t, m = st.params.tracks, st.params.master
        assert np.abs(t[:, [TRACK.index(k) for k in gains]]).max() <= engineer.EQ_LIMIT_DB
        assert np.abs(m[[MASTER.index(k) for k in gains]]).max() <= 6.0
        shelves = m[[MASTER.index("eq_low_shelf_gain_db"), MASTER.index("eq_high_shelf_gain_db")]]
        assert np.all(np.abs(shelves) >= engineer.MASTER_SHELF_DB[0])  # the master always has a tilt
        for schema, vec in [(TRACK, row) for row in t] + [(MASTER, m)]:
            if vec[schema.index("comp_ratio")] > 1.5:
                assert vec[schema.index("comp_attack_ms")] >= 1.0
                assert vec[schema.index("comp_release_ms")] >= 30.0
        for i, role in enumerate(st.roles):
            if role in ("kick", "bass"):
                assert abs(t[i, TRACK.index("pan")]) <= 0.1
        level = t[:, TRACK.index("gain_db")] + t[:, TRACK.index("comp_makeup_db")]
        spreads.append(level.max() - level.min())
        assert -16.0 <= st.loudness_lufs <= -8.0
        assert engineer.RT60_S[0] <= st.rt60_s <= engineer.RT60_S[1]
    assert min(spreads) >= 6.0  # a varied balance, never the equal-loudness sum
    assert np.median(spreads) <= 16.0


def test_reverb_ir_decays_at_its_rt60():
    rt60 = 1.5
    ir = engineer.reverb_ir(SR, rt60, 20.0, np.random.default_rng(0))
    assert ir.shape[0] == 2
    np.testing.assert_allclose(np.sum(ir ** 2, axis=1), 1.0, rtol=1e-9)
    assert np.all(ir[:, : int(0.019 * SR)] == 0)  # pre-delay
    assert abs(np.corrcoef(ir[0], ir[1])[0, 1]) < 0.1  # decorrelated channels: a wide return
    # Schroeder backward integration; the -5..-25 dB slope extrapolated to -60 dB (T20)
    edc = np.cumsum((ir ** 2).sum(axis=0)[::-1])[::-1]
    edc_db = 10 * np.log10(np.maximum(edc / edc[0], 1e-30))
    t5, t25 = np.argmax(edc_db < -5) / SR, np.argmax(edc_db < -25) / SR
    assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.1)


def test_reverb_tail_outlasts_the_stem(stems):
    cut = dict(stems)
    lead = cut["lead"].copy()
    lead[:, int(2.5 * SR):] = 0.0  # the lead stops 1.5 s before the end
    cut["lead"] = lead
    for seed in range(10):
        em = engineer.engineer_mix(cut, SR, np.random.default_rng(seed))
        i = em.names.index("lead")
        if math.isfinite(em.settings.sends_db[i]):
            break
    tail = em.contributions[i, :, int(2.6 * SR): int(3.0 * SR)]
    body = em.contributions[i, :, : int(2.5 * SR)]
    ratio_db = 10 * np.log10(np.mean(tail.astype(np.float64) ** 2) / np.mean(body.astype(np.float64) ** 2))
    assert -60 < ratio_db < -3  # a decaying reverb tail where the dry stem is silent


def test_stage_gain_reads_a_gain_curve_and_bridges_silence():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4000))
    x[:, 1000:1200] = 0.0  # silence: nothing to read there
    g = 0.5 + 0.4 * np.sin(np.arange(4000) / 300.0)
    got = engineer.stage_gain(x, x * g)
    np.testing.assert_allclose(got[:1000], g[:1000], rtol=1e-9)
    np.testing.assert_allclose(got[1000:1200], g[1000:1200], atol=0.03)  # interpolated over the gap
