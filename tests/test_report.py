"""The match report (core.report): physical facts about tone, width, dynamics, loudness matching."""

import math

import numpy as np
import pytest

from core import report
from core.features import integrated_lufs
from core.report import CENTRES_HZ, NOMINAL_HZ, OCTAVES, SCORED, compare

SR = 44100


def _shape(x: np.ndarray, gain_db) -> np.ndarray:
    """Filter ``x`` (..., T) by ``gain_db(f)`` (dB per frequency, zero phase) on its whole-length FFT."""
    f = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    f[0] = f[1]
    return np.fft.irfft(np.fft.rfft(x, axis=-1) * 10 ** (gain_db(f) / 20), x.shape[-1], axis=-1)


def _pink(seconds=12.0, seed=0) -> np.ndarray:
    """Pink noise (equal power per octave), mono (T,), RMS 0.1."""
    x = _shape(np.random.default_rng(seed).standard_normal(int(seconds * SR)), lambda f: -10 * np.log10(f))
    return 0.1 * x / x.std()


def _stereo_pink(seconds=12.0) -> np.ndarray:
    """Stereo pink noise with some width: mid pink, side pink from another seed 12 dB down."""
    mid, side = _pink(seconds, 0), 0.25 * _pink(seconds, 1)
    return np.stack([mid + side, mid - side])


def _tilt(f):
    return 3.0 * np.log2(f / 1000.0)  # +3 dB per octave


@pytest.fixture(scope="module")
def pink():
    return _stereo_pink()


def test_tilt_reads_three_db_per_octave_in_every_band(pink):
    rep = compare(_shape(pink, _tilt), pink, SR)
    expected = _tilt(CENTRES_HZ)
    # loudness matching adds one offset to every band; the shape must be the tilt
    offset = np.mean(rep.mid_diff_db - expected)
    assert np.max(np.abs(rep.mid_diff_db - expected - offset)) < 0.3
    assert np.max(np.abs(rep.side_diff_db - expected - offset)) < 0.3
    assert np.allclose(np.diff(rep.mid_diff_db), 1.0, atol=0.1)  # 1 dB per 1/3 octave
    # the headline numbers follow from that curve
    ideal = expected + offset
    assert rep.tonal_deviation_db == pytest.approx(np.sqrt(np.mean(ideal[SCORED] ** 2)), abs=0.1)
    octaves = [ideal[i:i + 3].mean() for i, _ in OCTAVES]  # power sums of a linear slope: the middle band
    assert np.allclose(rep.octave_diff_db, octaves, atol=0.2)
    k = int(np.argmax(np.abs(octaves)))
    assert rep.worst_octave == OCTAVES[k][1]
    assert rep.worst_octave_db == pytest.approx(abs(octaves[k]), abs=0.2)
    # a tilt changes neither the image nor (much) the dynamics of noise
    assert rep.width_deviation_db < 0.3
    assert rep.low_end_db[0] < rep.low_end_db[1] and rep.air_db[0] > rep.air_db[1]


def test_boosting_one_octave_reads_six_db_there_and_nothing_elsewhere(pink):
    k = 4  # 630 Hz - 1 kHz
    lo, hi = report.EDGES_HZ[OCTAVES[k][0]], report.EDGES_HZ[OCTAVES[k][0] + 3]
    rep = compare(_shape(pink, lambda f: np.where((f >= lo) & (f < hi), 6.0, 0.0)), pink, SR)
    inside = np.zeros(len(CENTRES_HZ), bool)
    inside[OCTAVES[k][0]:OCTAVES[k][0] + 3] = True
    offset = np.median(rep.mid_diff_db[~inside])  # loudness matching turns the boosted copy down
    assert offset < -0.1
    assert np.allclose(rep.mid_diff_db[~inside], offset, atol=0.1)
    assert np.allclose(rep.mid_diff_db[inside] - offset, 6.0, atol=0.3)
    assert rep.octave_diff_db[k] - offset == pytest.approx(6.0, abs=0.2)
    assert rep.worst_octave == OCTAVES[k][1] == "630-1k Hz"
    hz, value = rep.worst_bands(1)[0]
    assert hz in NOMINAL_HZ[OCTAVES[k][0]:OCTAVES[k][0] + 3] and value > 5
    assert rep.worst_bands_text().startswith("too much ")


def test_widening_a_mono_file_reads_in_the_widened_range_by_the_amount_added():
    mono = _pink()
    side = _shape(mono, lambda f: np.where((f >= 250) & (f < 4000), -10.0, -300.0))  # -10 dB, 250 Hz-4 kHz
    wide = np.stack([mono + side, mono - side])
    rep = compare(wide, mono, SR)  # a mono file reads as L = R
    assert rep.width_ref_db == {"low": report.WIDTH_FLOOR_DB, "mid": report.WIDTH_FLOOR_DB,
                                "high": report.WIDTH_FLOOR_DB}
    assert rep.width_mix_db["mid"] == pytest.approx(-10.0, abs=0.2)
    assert rep.width_mix_db["low"] == rep.width_mix_db["high"] == report.WIDTH_FLOOR_DB
    # side per band: +20 dB (from the floor at -30 to -10) inside 315 Hz-3.15 kHz, unchanged outside
    centre = (CENTRES_HZ > 300) & (CENTRES_HZ < 3500)
    outside = (CENTRES_HZ < 200) | (CENTRES_HZ > 5000)
    mid_offset = np.median(rep.mid_diff_db)
    assert np.allclose(rep.side_diff_db[centre] - mid_offset, 20.0, atol=0.3)
    assert np.allclose(rep.side_diff_db[outside], mid_offset, atol=0.1)
    # widening adds power to L and R, so the loudness-matched mid is a little lower, evenly
    assert np.allclose(rep.mid_diff_db, mid_offset, atol=0.05) and -0.5 < mid_offset < 0


def test_width_change_from_a_wide_reference_reads_by_the_right_amount():
    mono = _pink()

    def image(side_db_mid_range):
        side = _shape(mono, lambda f: np.where((f >= 250) & (f < 4000), side_db_mid_range, -20.0))
        return np.stack([mono + side, mono - side])

    rep = compare(image(-8.0), image(-20.0), SR)
    assert rep.width_ref_db["mid"] == pytest.approx(-20.0, abs=0.2)
    assert rep.width_mix_db["mid"] - rep.width_ref_db["mid"] == pytest.approx(12.0, abs=0.2)
    for r in ("low", "high"):
        assert rep.width_mix_db[r] == pytest.approx(rep.width_ref_db[r], abs=0.2)
    assert rep.width_deviation_db == pytest.approx(12.0 / math.sqrt(3), abs=0.2)


def test_identical_files_read_zero_and_a_quieter_copy_reads_zero(pink):
    for mix in (pink, pink * 10 ** (-10 / 20)):
        rep = compare(mix, pink, SR)
        assert np.max(np.abs(rep.mid_diff_db)) < 1e-6 and np.max(np.abs(rep.side_diff_db)) < 1e-6
        assert rep.tonal_deviation_db < 1e-6 and rep.worst_octave_db < 1e-6
        assert rep.width_deviation_db < 1e-6 and rep.dynamics_deviation < 1e-6
        assert rep.low_end_db[0] == pytest.approx(rep.low_end_db[1], abs=1e-6)
        assert rep.air_db[0] == pytest.approx(rep.air_db[1], abs=1e-6)
        assert rep.worst_bands(min_db=0.01) == []
    assert rep.mix_lufs == pytest.approx(rep.ref_lufs - 10.0, abs=0.01)


def test_mono_reads_like_its_two_channel_copy():
    mono = _pink()
    rep = compare(mono[None], np.stack([mono, mono]), SR)
    assert rep.tonal_deviation_db < 1e-6 and rep.width_deviation_db == 0.0


def _dynamic_song(seconds=24.0) -> np.ndarray:
    """Pink noise in 4 s sections at different levels, with a loud click every half second."""
    x = _stereo_pink(seconds)
    levels_db = np.repeat([-18.0, -6.0, -14.0, 0.0, -10.0, -3.0], int(4 * SR))[: x.shape[1]]
    x = x * 10 ** (levels_db / 20)
    clicks = np.zeros(x.shape[1])
    clicks[:: SR // 2] = 1.0
    clicks = np.convolve(clicks, np.exp(-np.arange(200) / 30.0))[: x.shape[1]]
    return x + 0.6 * clicks


def _compress_and_limit(x: np.ndarray) -> np.ndarray:
    """4:1 above -30 dBFS on a 50 ms RMS envelope, then a soft clipper: the usual loud master."""
    power = np.mean(x ** 2, axis=0)
    w = int(0.05 * SR)
    env_db = 10 * np.log10(np.convolve(power, np.ones(w) / w, mode="same") + 1e-12)
    gain_db = -0.75 * np.maximum(env_db + 30.0, 0.0)
    y = x * 10 ** (gain_db / 20)
    y = y / np.abs(y).max() * 3.0
    return np.tanh(y) * 0.9


def test_a_compressed_limited_copy_reads_lower_crest_lra_and_plr():
    song = _dynamic_song()
    rep = compare(_compress_and_limit(song), song, SR)
    m, r = rep.dynamics_mix, rep.dynamics_ref
    assert r["lra_lu"] > 8  # the sections are 18 dB apart
    assert m["crest_db"] < r["crest_db"] - 3
    assert m["lra_lu"] < r["lra_lu"] - 4
    assert m["plr_db"] < r["plr_db"] - 3
    assert rep.dynamics_deviation > 3


def test_region_measures_only_that_part():
    pink = _stereo_pink(16.0)
    half = 8 * SR
    mix = pink.copy()
    mix[:, half:] = _shape(pink, _tilt)[:, half:]  # the second half is tilted
    first = compare(mix, pink, SR, region=(0.0, 8.0), reference_region=(0.0, 8.0))
    assert first.tonal_deviation_db < 1e-6 and first.region == (0.0, 8.0)
    second = compare(mix, pink, SR, region=(9.0, 16.0), reference_region=(9.0, 16.0))
    assert np.allclose(np.diff(second.mid_diff_db[2:-2]), 1.0, atol=0.15)
    sliced = compare(mix[:, 9 * SR:], pink[:, 9 * SR:], SR)
    assert np.allclose(second.mid_diff_db, sliced.mid_diff_db)
    # the region applies to the mix only unless reference_region is given
    whole_ref = compare(mix, pink, SR, region=(0.0, 8.0))
    assert whole_ref.mix_lufs == pytest.approx(first.mix_lufs) and whole_ref.ref_lufs != first.ref_lufs


def test_silence_and_bad_regions_are_clear_errors(pink):
    silent = np.zeros((2, SR * 2))
    with pytest.raises(ValueError, match="^mix: silent"):
        compare(silent, pink, SR)
    with pytest.raises(ValueError, match="^reference: silent"):
        compare(pink, silent, SR)
    with pytest.raises(ValueError, match="starts after the end"):
        compare(pink, pink, SR, region=(20.0, 30.0))
    with pytest.raises(ValueError, match="before the end"):
        compare(pink, pink, SR, region=(5.0, 2.0))
    quiet_start = pink.copy()
    quiet_start[:, : 3 * SR] = 0.0
    with pytest.raises(ValueError, match="^mix: silent"):
        compare(quiet_start, pink, SR, region=(0.5, 2.5))


def test_band_matrix_partitions_the_spectrum_and_cross_spectra_keep_parseval():
    n_fft = report.analysis_fft(SR)
    m = report.band_matrix(SR, n_fft)
    f = np.arange(n_fft // 2 + 1) * SR / n_fft
    inside = (f - SR / n_fft / 2 >= report.EDGES_HZ[0]) & (f + SR / n_fft / 2 <= report.EDGES_HZ[-1])
    assert np.allclose(m[inside].sum(axis=1), 1.0)
    assert (m[f > report.EDGES_HZ[-1] + SR / n_fft].sum(axis=1) == 0).all()
    x = np.random.default_rng(3).standard_normal((2, 5 * SR)) * [[0.1], [0.3]]
    ll, rr, lr = report.cross_spectra(x, SR)
    assert ll.sum() == pytest.approx(np.mean(x[0] ** 2), rel=0.02)
    assert rr.sum() == pytest.approx(np.mean(x[1] ** 2), rel=0.02)
    mid, side = report.mid_side(report.cross_spectra(np.stack([x[0], x[0]]), SR))
    assert side.max() < 1e-12 * mid.max()  # rounding only


def test_worst_bands_are_one_per_region_and_to_dict_is_plain_json(pink):
    bump = _shape(pink, lambda f: 8.0 * np.exp(-np.log2(f / 100.0) ** 2 / 0.2)
                  - 4.0 * np.exp(-np.log2(f / 4000.0) ** 2 / 0.2))
    rep = compare(bump, pink, SR)
    (hz1, v1), (hz2, v2) = rep.worst_bands(2)
    assert hz1 == 100 and v1 > 5 and hz2 == 4000 and v2 < -3
    text = rep.worst_bands_text(2)
    assert text.startswith("too much 100 Hz (+") and "too little 4 kHz (-" in text
    import json

    doc = json.loads(json.dumps(rep.to_dict()))
    assert len(doc["mid_diff_db"]) == len(CENTRES_HZ) == len(doc["nominal_hz"])
    assert doc["worst_octave"] == rep.worst_octave and len(doc["octaves"]) == 9


def test_analyse_levels_are_at_the_common_loudness(pink):
    a = report.analyse(pink * 0.1, SR, target_lufs=-16.0)
    b = report.analyse(pink, SR, target_lufs=-16.0)
    assert np.allclose(a.mid_db, b.mid_db) and a.lufs == pytest.approx(integrated_lufs(pink * 0.1, SR))
