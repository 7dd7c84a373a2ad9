"""Refinement's objective: the whole-song model against rendered audio, the prior, and what they do."""

import numpy as np
import pytest
import torch

from core import console
from core.audio_io import Audio
from core.objective import SongModel, prior
from core.params import MASTER, TRACK
from core.prepare import from_audio
from core.refine import RefineConfig, refine
from core.report import analyse, cross_spectra, mid_side

SR = 44100
EQ_GAINS = [f"{b}_gain_db" for b in ("eq_low_shelf", "eq_band1", "eq_band2", "eq_band3", "eq_band4",
                                     "eq_high_shelf")]


def _pink(n, rng, channels=1):
    x = rng.standard_normal((channels, n))
    spec = np.fft.rfft(x, axis=-1)
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    return np.fft.irfft(spec / np.sqrt(f / 1000.0), n=n, axis=-1)


def _boost(x, lo, hi, db):
    spec = np.fft.rfft(x, axis=-1)
    f = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    spec[..., (f >= lo) & (f < hi)] *= 10 ** (db / 20)
    return np.fft.irfft(spec, n=x.shape[-1], axis=-1)


def _inputs(stems, reference):
    auds = [Audio(np.asarray(x, np.float32), SR, f"s{i}.wav", f"s{i}", SR, x.shape[-1])
            for i, x in enumerate(stems)]
    ref = np.asarray(reference, np.float32)
    return from_audio(auds, SR, Audio(ref, SR, "ref.wav", "ref", SR, ref.shape[-1]))


def _render(inputs, params):
    with torch.no_grad():
        return console.render(torch.from_numpy(inputs.stems)[None],
                              torch.from_numpy(params.tracks)[None].float(),
                              torch.from_numpy(params.master)[None].float(), SR,
                              stereo=torch.from_numpy(np.asarray(inputs.stereo))[None])[0].numpy()


def _model_levels(inputs, params):
    song = SongModel(inputs.stems, SR, ~inputs.silent, inputs.stereo)
    mid, side = song.spectra(torch.from_numpy(params.tracks), torch.from_numpy(params.master))
    return song, mid.numpy(), side.numpy()


def _band_db(power):
    from core.report import band_levels_db

    return band_levels_db(power, SR, 8192)


@pytest.fixture(scope="module")
def two_stems():
    rng = np.random.default_rng(3)
    n = SR * 6
    low = _boost(_pink(n, rng), 0, 300, 12.0)[0] * 0.1
    high = _boost(_pink(n, rng), 2000, 20000, 12.0)[0] * 0.1
    ref = np.stack([low + high, low + high])
    return _inputs([low[None], high[None]], ref)


def test_song_model_matches_rendered_spectrum_with_eq_fader_and_pan(two_stems):
    """The model's whole-song mid/side band levels equal those of the console's rendered mix."""
    p = two_stems.default_params()
    t = p.tracks
    t[0, TRACK.index("eq_band2_gain_db")] = 6.0
    t[0, TRACK.index("eq_band2_freq_hz")] = 250.0
    t[1, TRACK.index("gain_db")] = -6.0
    t[1, TRACK.index("pan")] = -0.7
    p.master[MASTER.index("eq_high_shelf_gain_db")] = -4.0
    _, mid, side = _model_levels(two_stems, p)
    rendered = _render(two_stems, p)
    rmid, rside = mid_side(cross_spectra(rendered, SR, 8192))
    scored = slice(2, 27)  # 50 Hz - 12.5 kHz
    np.testing.assert_allclose(_band_db(mid)[scored], _band_db(rmid)[scored], atol=0.5)
    np.testing.assert_allclose(_band_db(side)[scored], _band_db(rside)[scored], atol=0.8)


def test_song_model_compressor_level_within_a_db(two_stems):
    """A compressor working 6-10 dB lowers the model's level as it lowers the rendered one (static curve)."""
    p = two_stems.default_params()
    p.tracks[:, TRACK.index("comp_threshold_db")] = -30.0
    p.tracks[:, TRACK.index("comp_ratio")] = 4.0
    p.tracks[:, TRACK.index("comp_attack_ms")] = 10.0
    p.tracks[:, TRACK.index("comp_release_ms")] = 100.0
    _, mid0, _ = _model_levels(two_stems, two_stems.default_params())
    _, mid1, _ = _model_levels(two_stems, p)
    r0 = _render(two_stems, two_stems.default_params())
    r1 = _render(two_stems, p)
    model_drop = 10 * np.log10(mid1.sum() / mid0.sum())
    real_drop = 10 * np.log10(np.mean(r1 ** 2) / np.mean(r0 ** 2))
    assert real_drop < -3.0
    assert model_drop == pytest.approx(real_drop, abs=1.0)


def test_hard_pan_reads_as_full_width(two_stems):
    p = two_stems.default_params()
    p.tracks[:, TRACK.index("pan")] = [-1.0, 1.0]
    song, mid, side = _model_levels(two_stems, p)
    lv = song.levels(torch.from_numpy(mid), torch.from_numpy(side))
    # left-only and right-only sources: side power equals mid power (0 dB) in every range
    np.testing.assert_allclose(lv["width_db"].numpy(), 0.0, atol=0.05)


def test_prior_is_quiet_at_defaults_and_grows_outside_engineers_ranges():
    n = 2
    base_t = np.tile(TRACK.defaults(), (n, 1))
    base_m = MASTER.defaults()

    def value(tracks, master=base_m):
        pt, pm = torch.from_numpy(tracks), torch.from_numpy(master)
        return float(prior(pt, pm, TRACK.to_unit(pt), MASTER.to_unit(pm), torch.ones(n, dtype=torch.bool),
                           torch.ones(n, len(TRACK), dtype=torch.float64),
                           torch.ones(len(MASTER), dtype=torch.float64)))

    quiet = value(base_t)
    assert quiet < 0.01
    eq = base_t.copy()
    eq[0, TRACK.index("eq_band2_gain_db")] = 4.0
    mild = value(eq)
    eq[0, TRACK.index("eq_band2_gain_db")] = 12.0
    assert value(eq) > 20 * mild  # +12 dB is far outside, +4 dB inside
    fast = base_t.copy()
    fast[0, TRACK.index("comp_attack_ms")] = 0.5
    fast[0, TRACK.index("comp_release_ms")] = 10.0
    idle = value(fast)  # at 1:1 the times do nothing; only resting on their range limits costs
    fast[0, TRACK.index("comp_ratio")] = 4.0
    assert value(fast) > idle + 2.0
    low = base_t.copy()
    low[0, TRACK.index("gain_db")] = -36.0
    assert value(low) > 10.0  # a stem pulled far down costs a lot
    master = base_m.copy()
    master[MASTER.index("eq_band3_gain_db")] = 6.0
    track = base_t.copy()
    track[0, TRACK.index("eq_band3_gain_db")] = 6.0
    assert value(base_t, master) > value(track)  # the bus is held gentler than a track


@pytest.mark.slow
def test_prior_keeps_an_impossible_boost_within_its_bound():
    """The reference needs +20 dB at 2-4 kHz; with the prior no EQ gain leaves +-9 dB, without it they do."""
    rng = np.random.default_rng(5)
    n = SR * 4
    stems = [_pink(n, rng) * 0.1 for _ in range(2)]
    ref = _boost(_pink(n, rng, 2) * 0.1, 2000, 4000, 20.0)
    inputs = _inputs(stems, ref)
    cfg = dict(steps=40, section_seconds=3.0, lr=0.08)
    with_prior = refine(inputs, config=RefineConfig(**cfg)).params
    without = refine(inputs, config=RefineConfig(**cfg, prior=0.0)).params
    gains = [TRACK.index(k) for k in EQ_GAINS]
    m_gains = [MASTER.index(k) for k in EQ_GAINS]
    most = max(np.abs(with_prior.tracks[:, gains]).max(), np.abs(with_prior.master[m_gains]).max())
    free = max(np.abs(without.tracks[:, gains]).max(), np.abs(without.master[m_gains]).max())
    assert most <= 9.0
    assert free > most + 2.0
    # and the boost still went the right way: more 2-4 kHz than the equal-loudness sum
    mix = _render(inputs, with_prior)
    flat = _render(inputs, inputs.default_params())
    band = slice(18, 21)  # the 2, 2.5 and 3.15 kHz bands
    gain = analyse(mix, SR).mid_db[band].mean() - analyse(flat, SR).mid_db[band].mean()
    assert gain > 3.0
