"""Same-song references: detection on generated pairs, the fit's recovery of known faders, error paths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from core import samesong
from core.audio_io import Audio
from core.params import TRACK
from core.prepare import from_audio

from synthetic import make_stems

SR = 44100
SECONDS = 8.0


def _inputs(stems: dict[str, np.ndarray], reference: np.ndarray | None = None):
    audio = [Audio(x, SR, f"{name}.wav", name, SR, x.shape[-1], silent=bool(np.abs(x).max() < 1e-5))
             for name, x in stems.items()]
    ref = None
    if reference is not None:
        ref = Audio(reference, SR, "reference.wav", "reference", SR, reference.shape[-1])
    return from_audio(audio, SR, ref)


def _halves(stems: dict[str, np.ndarray]) -> tuple[dict, dict]:
    half = next(iter(stems.values())).shape[-1] // 2
    return ({k: v[:, :half] for k, v in stems.items()}, {k: v[:, half:2 * half] for k, v in stems.items()})


def _rough_mix(stems: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """A mix as an artist might make it: random levels (+-10 dB), pans, a tilt EQ, bus compression."""
    rng = np.random.default_rng(seed)
    mix = np.zeros((2, next(iter(stems.values())).shape[-1]))
    for x in stems.values():
        x = np.broadcast_to(x, (2, x.shape[-1])).astype(np.float64)
        level = 10 ** (rng.uniform(-10, 10) / 20) / np.sqrt(np.mean(x ** 2) + 1e-12)
        theta = (rng.uniform(-0.8, 0.8) + 1) * np.pi / 4
        tilt = sosfilt(butter(1, rng.uniform(300, 3000), "hp" if rng.random() < 0.5 else "lp", fs=SR,
                              output="sos"), x, axis=-1)
        y = level * (x + rng.uniform(0.3, 1.0) * tilt)
        mix += y * np.array([[np.cos(theta)], [np.sin(theta)]])
    mix /= np.abs(mix).max()
    return np.tanh(2.0 * mix).astype(np.float32) * 0.7  # a saturating bus: compression of the peaks


def _root(seed: int) -> int:
    """The key of a synthetic song (its first random draw, see tests/synthetic.py)."""
    return int(np.random.default_rng(seed).integers(0, 12))


@pytest.fixture(scope="module")
def songs():
    seeds = range(12)
    return {s: make_stems(SR, SECONDS, seed=s, bpm=88.0 + 7.0 * s) for s in seeds}


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_fires_on_the_same_song_aligned_and_other_section(songs, seed):
    first, second = _halves(songs[seed])
    inputs = _inputs(second, _rough_mix(second, seed))
    aligned = samesong.detect(inputs)
    assert aligned.kind == "same-song", aligned.describe()
    assert aligned.aligned and abs(aligned.lag_s) < 0.05
    inputs.reference = _rough_mix(first, seed + 50)  # the first half's mix, stems of the second half
    section = samesong.detect(inputs)
    assert section.kind == "same-song", section.describe()
    assert section.score >= section.threshold


def test_never_fires_on_unrelated_songs(songs):
    """20 pairs of different songs (another key; same tempo for some: the drums then line up)."""
    candidates = [(a, b) for a in songs for b in songs if a != b and _root(a) != _root(b)]
    pairs = candidates[:: len(candidates) // 20][:20]
    same_tempo = [(0, 0)]  # one pair at the same tempo and in another key
    tempo_twin = make_stems(SR, SECONDS, seed=100, bpm=88.0)
    assert _root(100) != _root(0)
    assert len(pairs) == 20
    scores = []
    for a, b in pairs + same_tempo:
        stems = _halves(songs[a])[1]
        other = _halves(songs[b] if (a, b) != (0, 0) else tempo_twin)[0]
        det = samesong.detect(_inputs(stems, _rough_mix(other, a * 31 + b)))
        assert det.kind == "other", (a, b, det.describe())
        scores.append(det.score)
    assert max(scores) < samesong.THRESHOLD


def test_fit_recovers_faders_and_pans():
    stems = make_stems(SR, 6.0, seed=4, bpm=100.0)
    # the pad doubles the keys' root as a phase-locked sine: exact unisons do not add in power, so the
    # balance of the two cannot be read from band powers; real parts are not phase-locked
    del stems["pad"]
    inputs = _inputs(stems)
    truth = inputs.default_params()
    offsets = np.array([-6.0, 0.0, 3.0, -10.0, 2.0])
    pans = np.array([0.0, 0.5, -0.2, -0.6, 0.3])
    truth.tracks[:, TRACK.index("gain_db")] = offsets
    truth.tracks[:, TRACK.index("pan")] = pans
    from core.render import render_mix

    inputs.reference = render_mix(inputs, truth) * np.float32(3.0)  # the reference's level is its own
    det = samesong.detect(inputs)
    assert det.kind == "same-song" and det.aligned
    fit = samesong.fit_same_song(inputs, inputs.default_params(), det)
    got = fit.tracks[:, TRACK.index("gain_db")]
    # the overall level is the equal-loudness sum's, so compare the balance (faders relative to their mean)
    err = (got - got.mean()) - (offsets - offsets.mean())
    # 2 dB: the keys and the pad share one pitch (an exact unison of sines), which costs the keys ~1.6 dB
    assert np.abs(err).max() < 2.0, err
    assert np.abs(fit.tracks[:, TRACK.index("pan")] - pans).max() < 0.15
    shelves = fit.tracks[:, [TRACK.index("eq_low_shelf_gain_db"), TRACK.index("eq_high_shelf_gain_db")]]
    assert np.abs(shelves).max() <= samesong.SHELF_LIMIT_DB
    # what the fit does not touch stays as it was
    assert np.array_equal(fit.tracks[:, TRACK.index("trim_db")], inputs.trim_db)
    assert np.array_equal(fit.master, inputs.default_params().master)


def test_fit_keeps_silent_stems_and_fader_floor():
    stems = make_stems(SR, 6.0, seed=2, bpm=120.0)
    stems["silence"] = np.zeros((1, stems["kick"].shape[-1]), np.float32)
    inputs = _inputs(stems)
    assert inputs.silent[-1]
    truth = inputs.default_params()
    truth.tracks[1, TRACK.index("gain_db")] = -40.0  # quiet, but present
    from core.render import render_mix

    inputs.reference = render_mix(inputs, truth)
    init = inputs.default_params()
    init.tracks[-1, TRACK.index("gain_db")] = -7.0
    fit = samesong.fit_same_song(inputs, init)
    faders = fit.tracks[:, TRACK.index("gain_db")]
    assert faders[-1] == -7.0  # silent: untouched
    assert faders[1] >= samesong.FADER_FLOOR_DB


def test_forced_kind_and_description(songs):
    first, second = _halves(songs[5])
    inputs = _inputs(second, _rough_mix(_halves(songs[6])[0], 1))
    det = samesong.detect(inputs, "same-song")
    assert det.kind == "same-song" and det.forced
    line = det.describe()
    assert "\n" not in line and "set by the user" in line
    auto = samesong.detect(inputs)
    assert auto.kind == "other" and "another song" in auto.describe()
    assert auto.to_dict()["kind"] == "other" and auto.to_dict()["text"] == auto.describe()


def test_error_paths(songs):
    stems = _halves(songs[1])[1]
    with pytest.raises(ValueError, match="needs a reference"):
        samesong.detect(_inputs(stems))
    silent = {k: np.zeros_like(v) for k, v in stems.items()}
    inputs = _inputs(silent, _rough_mix(stems, 0))
    with pytest.raises(ValueError, match="all stems are silent"):
        samesong.detect(inputs)
    with pytest.raises(ValueError, match="unknown reference kind"):
        samesong.detect(_inputs(stems, _rough_mix(stems, 0)), "maybe")
    short = _inputs(stems, _rough_mix(stems, 0)[:, : SR // 4])
    with pytest.raises(ValueError, match="at least"):
        samesong.detect(short)
