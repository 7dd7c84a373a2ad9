"""Plain reference mixes of a song's stems: random but musical levels and pans, loudness-normalised and
true-peak safe; ``master=True`` adds a mastering-style tonal tilt and bus compression
(:func:`reference_mix`). For finished mixes through the console, see :mod:`training.synth.engineer`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

# Loudness of each role in a plain mix, in LU relative to the others (a typical pop/rock balance).
ROLE_MIX_LU = {"kick": 0.0, "snare": -1.0, "hats": -9.0, "toms": -7.0, "cymbals": -11.0, "percussion": -11.0,
               "bass": -2.0, "chords": -5.0, "pad": -9.0, "lead": -3.0, "voice": -5.0, "arp": -8.0}
CENTRED_ROLES = frozenset({"kick", "snare", "bass", "lead", "voice"})


def _role_of(name: str) -> str | None:
    head = name.split("_")[0]
    return head if head in ROLE_MIX_LU else None


def true_peak_db(x: np.ndarray, sr: int = 44100) -> float:
    """True peak in dBTP of ``x`` (T, C) (or (T,)): :func:`core.features.true_peak_dbtp`."""
    from core.features import true_peak_dbtp

    return true_peak_dbtp(np.asarray(x).T, sr)


def _block_envelope(target_db: np.ndarray, block: int, sr: int, attack_ms: float,
                    release_ms: float) -> np.ndarray:
    """Smooth a per-block gain reduction (dB, >= 0) with attack/release ballistics; never below target."""
    a_rel = math.exp(-block / (release_ms * 1e-3 * sr))
    a_att = math.exp(-block / (max(attack_ms, 1e-3) * 1e-3 * sr))
    env = np.empty_like(target_db)
    prev = 0.0
    for i, t in enumerate(target_db):  # release: recover slowly, but always reduce at least the target
        prev = max(t, prev * a_rel)
        env[i] = prev
    nxt = 0.0
    for i in range(len(env) - 1, -1, -1):  # attack: start reducing ahead of the peak (look-ahead)
        nxt = max(env[i], nxt * a_att)
        env[i] = nxt
    return env


def _biquad_shelf(sr: int, freq: float, gain_db: float, high: bool, q: float = 0.707) -> np.ndarray:
    """RBJ-cookbook shelving filter as one second-order section [b0, b1, b2, 1, a1, a2]."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * freq / sr
    cw, sa = math.cos(w0), 2 * math.sqrt(a) * math.sin(w0) / (2 * q)
    s = 1.0 if high else -1.0  # the high shelf is the low shelf with the cosine terms negated
    b0 = a * ((a + 1) + s * (a - 1) * cw + sa)
    b1 = -s * 2 * a * ((a - 1) + s * (a + 1) * cw)
    b2 = a * ((a + 1) + s * (a - 1) * cw - sa)
    a0 = (a + 1) - s * (a - 1) * cw + sa
    a1 = s * 2 * ((a - 1) - s * (a + 1) * cw)
    a2 = (a + 1) - s * (a - 1) * cw - sa
    return np.array([b0, b1, b2, a0, a1, a2]) / a0


def _bus_compress(x: np.ndarray, sr: int, ratio: float, gr_db: float, attack_ms: float,
                  release_ms: float, block: int = 32) -> np.ndarray:
    """Stereo-linked RMS compressor whose threshold gives about ``gr_db`` of gain reduction on the
    loud passages (90th percentile of the level)."""
    from scipy.signal import lfilter

    a = math.exp(-1.0 / (0.01 * sr))  # 10 ms RMS detector
    ms = lfilter([1 - a], [1, -a], x * x, axis=0).max(axis=1)
    n, nb = x.shape[0], -(-x.shape[0] // block)
    pad = np.zeros(nb * block)
    pad[:n] = ms
    level_db = 10 * np.log10(pad.reshape(nb, block).mean(axis=1) + 1e-12)
    loud = level_db[level_db > level_db.max() - 40]
    threshold = np.percentile(loud, 90) - gr_db / (1 - 1 / ratio)
    over = level_db - threshold
    knee = 6.0
    gr = np.where(over <= -knee / 2, 0.0,
                  np.where(over >= knee / 2, over, (over + knee / 2) ** 2 / (2 * knee))) * (1 - 1 / ratio)
    env = _block_envelope(gr, block, sr, attack_ms, release_ms)
    centres = np.arange(nb) * block + block / 2
    return x * (10 ** (-np.interp(np.arange(n), centres, env) / 20))[:, None]


def _loudness_and_peak(x: np.ndarray, sr: int, target_lufs: float, ceiling_dbtp: float) -> np.ndarray:
    """Normalise ``x`` (T, 2) to ``target_lufs``; the console's true-peak limiter holds ``ceiling_dbtp``."""
    from core.features import integrated_lufs
    from core.render import limit

    loud = integrated_lufs(x.T, sr)
    if not np.isfinite(loud):
        return np.zeros_like(x)
    gain_db = target_lufs - loud
    y = x
    for _ in range(8):  # the limiter takes a little loudness away: correct the gain and limit again
        y = limit((x * 10 ** (gain_db / 20)).T, sr, ceiling_dbtp).T
        err = target_lufs - integrated_lufs(y.T, sr)
        if abs(err) < 0.05:
            break
        gain_db += err
    return y


def reference_mix(stems: Mapping[str, np.ndarray] | Sequence[np.ndarray], sr: int, rng: np.random.Generator,
                  target_lufs: float = -16.0, ceiling_dbtp: float = -1.0, master: bool = False) -> np.ndarray:
    """A plain stereo mix of stems: float32 (samples, 2) at ``target_lufs`` with true peak < ``ceiling_dbtp``.

    stems: {name: (samples,) or (samples, 2)} (names like generated stems give role-aware levels and
    pans: kick/snare/bass/lead/voice near the centre, others spread) or a list of arrays (random
    balance). Each stem is loudness-normalised, set to its role's level +/- 3 dB, panned
    (constant power, -3 dB at centre; stereo stems get a balance) and summed. ``master=True`` adds a
    finished-record character drawn from ``rng``: high-pass, low and high shelves (brighter), gentle
    stereo-linked bus compression, before loudness normalisation and limiting.
    """
    import pyloudnorm

    if isinstance(stems, Mapping):
        items = list(stems.items())
    else:
        items = [(f"stem{i}", s) for i, s in enumerate(stems)]
    if not items:
        raise ValueError("no stems to mix")
    n = max(np.asarray(s).shape[0] for _, s in items)
    meter = pyloudnorm.Meter(sr)
    mix = np.zeros((n, 2))
    for name, audio in items:
        x = np.asarray(audio, dtype=np.float64)
        role = _role_of(name)
        loud = meter.integrated_loudness(x) if x.shape[0] > 0.4 * sr else -np.inf
        jitter = float(rng.uniform(-3.0, 3.0))
        side = 1.0 if rng.random() < 0.5 else -1.0
        pan = float(rng.uniform(-0.15, 0.15) if role in CENTRED_ROLES else side * rng.uniform(0.25, 0.85))
        if not np.isfinite(loud):
            continue
        gain = 10 ** ((-26.0 + ROLE_MIX_LU.get(role, -6.0) + jitter - loud) / 20)
        if x.ndim == 1:
            theta = (pan + 1) * math.pi / 4
            mix[: len(x)] += gain * np.stack([math.cos(theta) * x, math.sin(theta) * x], axis=1)
        else:
            bal = np.array([min(1.0, 1.0 - pan), min(1.0, 1.0 + pan)]) * gain
            mix[: len(x)] += x[:, :2] * bal
    if master:
        from scipy.signal import butter, sosfilt

        sos = np.vstack([
            butter(2, 30.0, "highpass", fs=sr, output="sos"),
            _biquad_shelf(sr, float(rng.uniform(80, 140)), float(rng.uniform(0.5, 2.5)), high=False),
            _biquad_shelf(sr, float(rng.uniform(6000, 10000)), float(rng.uniform(1.5, 4.0)), high=True),
        ])
        mix = sosfilt(sos, mix, axis=0)
        mix = _bus_compress(mix, sr, ratio=float(rng.uniform(2.0, 3.5)), gr_db=float(rng.uniform(2.0, 4.0)),
                            attack_ms=float(rng.uniform(10, 30)), release_ms=float(rng.uniform(100, 250)))
    return _loudness_and_peak(mix, sr, target_lufs, ceiling_dbtp).astype(np.float32)
