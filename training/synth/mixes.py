"""Plain reference mixes of a song's stems, made with the console's own pieces.

:func:`reference_mix` = :func:`draw_reference` (every random choice, from a ``numpy.random.Generator``)
then :func:`render_reference` (no randomness). Each stem is brought to its role's loudness
(:data:`ROLE_MIX_LU` +/- 3 dB, measured with :func:`core.meter.integrated_lufs`), panned with the
console's pan law (:func:`core.engine.pan_law`: constant power, -3 dB at centre for a mono stem, a
balance with unity at centre for a stereo one) and summed. A *mastered* reference adds a finished-record
character: a 30 Hz high-pass, RBJ low and high shelves (:func:`core.dsp.rbj_biquad`, the console EQ's
design) and stereo-linked bus compression (:func:`core.console.compressor`, the console's compressor,
its threshold set for a drawn gain reduction on the loud passages as :mod:`training.synth.engineer`
sets it). Every mix is then raised to its loudness through the console's true-peak limiter
(:func:`training.synth.engineer.master_to_loudness`).

For finished mixes with per-stem EQ, compression, reverb and a true contribution per stem, see
:mod:`training.synth.engineer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Loudness of each role in a plain mix, in LU relative to the others (a typical pop/rock balance).
ROLE_MIX_LU = {"kick": 0.0, "snare": -1.0, "hats": -9.0, "toms": -7.0, "cymbals": -11.0, "percussion": -11.0,
               "bass": -2.0, "chords": -5.0, "pad": -9.0, "lead": -3.0, "voice": -5.0, "arp": -8.0}
#: Roles panned near the centre (|pan| <= 0.15); the others go 0.25-0.85 to one side.
CENTRED_ROLES = frozenset({"kick", "snare", "bass", "lead", "voice"})
#: Loudness of a 0 LU role before the mix is normalised, LUFS; stems of unknown role sit at -6 LU.
BASE_LUFS = -26.0
UNKNOWN_ROLE_LU = -6.0
#: Bus compressor knee (dB) and high-pass corner (Hz) of a mastered reference; shelf Q.
MASTER_KNEE_DB = 6.0
MASTER_HIGHPASS_HZ = 30.0
SHELF_Q = 0.707


def _role_of(name: str) -> str | None:
    head = name.split("_")[0]
    if head in ROLE_MIX_LU:
        return head
    from .engineer import role_of  # common names: "overheads" (realistic songs), "vox", "keys" ...

    role = role_of(name)
    return role if role in ROLE_MIX_LU else None


@dataclass(frozen=True)
class MasterSettings:
    """The mastering of a reference: shelves (Hz, dB) and the bus compressor."""

    low_shelf_hz: float
    low_shelf_db: float
    high_shelf_hz: float
    high_shelf_db: float
    ratio: float
    gr_db: float  # gain reduction on the loud passages (sets the threshold)
    attack_ms: float
    release_ms: float


@dataclass(frozen=True)
class ReferenceSettings:
    """Everything :func:`reference_mix` draws: per stem its loudness (LUFS) and pan, and the mastering."""

    names: tuple[str, ...]
    lufs: tuple[float, ...]
    pans: tuple[float, ...]
    master: MasterSettings | None


def draw_reference(names: Sequence[str], rng: np.random.Generator, master: bool = False) -> ReferenceSettings:
    """Levels and pans of stems called ``names`` (role-aware for generated stem names) and, with
    ``master=True``, a mastering chain (low shelf +0.5..2.5 dB at 80-140 Hz, high shelf +1.5..4 dB at
    6-10 kHz, ratio 2-3.5, 2-4 dB of gain reduction, attack 10-30 ms, release 100-250 ms)."""
    lufs, pans = [], []
    for name in names:
        role = _role_of(name)
        jitter = float(rng.uniform(-3.0, 3.0))
        side = 1.0 if rng.random() < 0.5 else -1.0
        pan = rng.uniform(-0.15, 0.15) if role in CENTRED_ROLES else side * rng.uniform(0.25, 0.85)
        pans.append(float(pan))
        lufs.append(BASE_LUFS + ROLE_MIX_LU.get(role, UNKNOWN_ROLE_LU) + jitter)
    m = None
    if master:
        low_hz, low_db = float(rng.uniform(80, 140)), float(rng.uniform(0.5, 2.5))
        high_hz, high_db = float(rng.uniform(6000, 10000)), float(rng.uniform(1.5, 4.0))
        m = MasterSettings(low_hz, low_db, high_hz, high_db, ratio=float(rng.uniform(2.0, 3.5)),
                           gr_db=float(rng.uniform(2.0, 4.0)), attack_ms=float(rng.uniform(10, 30)),
                           release_ms=float(rng.uniform(100, 250)))
    return ReferenceSettings(tuple(names), tuple(lufs), tuple(pans), m)


def master_chain(mix: np.ndarray, sr: int, m: MasterSettings) -> np.ndarray:
    """High-pass, shelves and bus compression of a stereo ``mix`` (T, 2) float64 (see the module doc)."""
    import torch
    from scipy.signal import butter, sosfilt

    from core.console import compressor
    from core.dsp import rbj_biquad

    from .engineer import _loud_level_db, _threshold_for

    shelves = [np.concatenate(rbj_biquad(gain, freq, SHELF_Q, sr, kind)) for freq, gain, kind in (
        (m.low_shelf_hz, m.low_shelf_db, "low_shelf"), (m.high_shelf_hz, m.high_shelf_db, "high_shelf"))]
    sos = np.vstack([butter(2, MASTER_HIGHPASS_HZ, "highpass", fs=sr, output="sos"), *shelves])
    bus = np.ascontiguousarray(sosfilt(sos, mix, axis=0).T)  # (2, T)
    threshold = _threshold_for(_loud_level_db(bus, sr), m.ratio, m.gr_db, MASTER_KNEE_DB)
    with torch.no_grad():
        out = compressor(torch.from_numpy(bus), threshold, m.ratio, m.attack_ms, m.release_ms, MASTER_KNEE_DB,
                         0.0, sr)
    return out.numpy().T


def render_reference(stems: Sequence[np.ndarray], sr: int, settings: ReferenceSettings,
                     target_lufs: float = -16.0, ceiling_dbtp: float = -1.0) -> np.ndarray:
    """The mix ``settings`` describe of ``stems`` ((samples,) or (samples, 2) each, in ``settings.names``
    order): float32 (samples, 2) at ``target_lufs`` with true peak <= ``ceiling_dbtp``."""
    from core.engine import pan_law
    from core.meter import integrated_lufs

    from .engineer import master_to_loudness

    n = max(np.asarray(s).shape[0] for s in stems)
    mix = np.zeros((n, 2))
    for audio, lufs, pan in zip(stems, settings.lufs, settings.pans, strict=True):
        x = np.asarray(audio, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x[:, :2]
        loud = integrated_lufs(x.T, sr) if x.shape[0] > 0.4 * sr else -np.inf
        if not np.isfinite(loud):
            continue
        gains = pan_law(pan, x.shape[1] == 2) * 10 ** ((lufs - loud) / 20)  # (2,) left, right
        mix[: len(x)] += x * gains
    if settings.master is not None:
        mix = master_chain(mix, sr, settings.master)
    _, out = master_to_loudness(np.ascontiguousarray(mix.T), sr, target_lufs, ceiling_dbtp)
    return np.ascontiguousarray(out.T)


def reference_mix(stems: Mapping[str, np.ndarray] | Sequence[np.ndarray], sr: int, rng: np.random.Generator,
                  target_lufs: float = -16.0, ceiling_dbtp: float = -1.0, master: bool = False) -> np.ndarray:
    """A plain stereo mix of stems: float32 (samples, 2) at ``target_lufs``, true peak <= ``ceiling_dbtp``.

    stems: {name: (samples,) or (samples, 2)} (names like generated stems give role-aware levels and
    pans: kick/snare/bass/lead/voice near the centre, others spread) or a list of arrays (random
    balance). ``master=True`` adds the finished-record character of :func:`master_chain`. Deterministic
    for a given ``rng`` state (see the module docstring for the chain).
    """
    if isinstance(stems, Mapping):
        items = list(stems.items())
    else:
        items = [(f"stem{i}", s) for i, s in enumerate(stems)]
    if not items:
        raise ValueError("no stems to mix")
    settings = draw_reference([name for name, _ in items], rng, master)
    return render_reference([s for _, s in items], sr, settings, target_lufs, ceiling_dbtp)
