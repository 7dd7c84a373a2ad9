"""Small synthetic multitracks for tests: drums, bass, chords, pad and lead made with numpy."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfilt


def _env(n, sr, decay_s):
    return np.exp(-np.arange(n) / (decay_s * sr))


def make_stems(sr=44100, seconds=6.0, seed=0, bpm=110.0) -> dict[str, np.ndarray]:
    """Dict name -> (C, T) float32; 'pad' is stereo, the rest mono."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    beat = int(sr * 60 / bpm)
    root = 55.0 * 2 ** (rng.integers(0, 12) / 12)
    stems = {}

    kick = np.zeros(n)
    hit = np.sin(2 * np.pi * np.cumsum(50 + 100 * _env(beat, sr, 0.03)) / sr) * _env(beat, sr, 0.15)
    for s in range(0, n - beat, beat):
        kick[s:s + beat] += hit
    stems["kick"] = kick

    hats = np.zeros(n)
    noise = sosfilt(butter(4, 7000, "hp", fs=sr, output="sos"), rng.standard_normal(beat // 2))
    for s in range(beat // 2, n - beat // 2, beat // 2):
        hats[s:s + beat // 2] += 0.3 * noise * _env(beat // 2, sr, 0.02)
    stems["hats"] = hats

    notes = root * 2 ** (rng.choice([0, 3, 5, 7, 10], size=n // beat + 1) / 12)
    f = np.repeat(notes, beat)[:n]
    phase = np.cumsum(f) / sr
    saw = 2 * (phase % 1.0) - 1
    stems["bass"] = sosfilt(butter(2, 400, fs=sr, output="sos"), saw)

    chord = sum(np.sin(2 * np.pi * root * 4 * 2 ** (k / 12) * t) for k in (0, 4, 7))
    gate = (np.arange(n) % (2 * beat) < 1.5 * beat).astype(float)
    stems["keys"] = 0.3 * chord * gate

    pad_l = sum(np.sin(2 * np.pi * root * 2 * 2 ** (k / 12) * t + rng.random()) for k in (0, 7, 12))
    pad_r = sum(np.sin(2 * np.pi * root * 2 * 2 ** (k / 12) * t * 1.003 + rng.random()) for k in (0, 7, 12))
    stems["pad"] = 0.2 * np.stack([pad_l, pad_r])

    lead_f = np.repeat(root * 8 * 2 ** (rng.choice([0, 2, 4, 7, 9], size=n // (beat // 2) + 1) / 12),
                       beat // 2)[:n]
    stems["lead"] = 0.2 * np.sin(2 * np.pi * np.cumsum(lead_f) / sr) * (0.6 + 0.4 * np.sin(2 * np.pi * 5 * t))

    levels = rng.uniform(0.1, 0.6, size=len(stems))
    out = {}
    for (name, x), level in zip(stems.items(), levels, strict=True):
        x = np.atleast_2d(x)
        out[name] = (level * x / np.abs(x).max()).astype(np.float32)
    return out


def make_reference(sr=44100, seconds=6.0, seed=100) -> np.ndarray:
    """A 'finished' stereo mix of a different synthetic song: panned, bright, bass-heavy."""
    stems = make_stems(sr, seconds, seed=seed, bpm=96.0)
    pans = {"kick": 0.0, "hats": 0.6, "bass": 0.0, "keys": -0.5, "pad": 0.0, "lead": 0.3}
    gains = {"kick": 1.0, "hats": 0.5, "bass": 1.2, "keys": 0.6, "pad": 0.5, "lead": 0.7}
    mix = np.zeros((2, int(sr * seconds)))
    for name, x in stems.items():
        x = np.broadcast_to(x, (2, x.shape[-1])) if x.shape[0] == 1 else x
        theta = (pans[name] + 1) * np.pi / 4
        mix[0] += gains[name] * np.cos(theta) * x[0]
        mix[1] += gains[name] * np.sin(theta) * x[1]
    mix += 0.5 * sosfilt(butter(2, 5000, "hp", fs=sr, output="sos"), mix)  # brightness
    return (0.8 * mix / np.abs(mix).max()).astype(np.float32)


def write_stems(folder, sr=44100, seconds=6.0, seed=0):
    """Write stems and a reference as WAV files; returns (stem paths, reference path)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, x in make_stems(sr, seconds, seed).items():
        p = folder / f"{name}.wav"
        sf.write(p, x.T, sr, subtype="FLOAT")
        paths.append(str(p))
    ref = folder.parent / f"reference_{seed}.wav"
    sf.write(ref, make_reference(sr, seconds).T, sr, subtype="PCM_24")
    return paths, str(ref)
