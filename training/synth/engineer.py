"""Finished mixes made like an engineer would: per-role console settings, a reverb send and mastering.

:func:`engineer_mix` turns a song's stems into a finished record, deterministically from a
``numpy.random.Generator``:

1. **Console settings** drawn per role (:func:`draw_console`). The role comes from the stem's name as
   :mod:`training.synth` writes it (``kick``, ``bass_finger``, ``voice_choir_aahs`` ...; a few common
   aliases such as ``keys`` or ``vox`` too; anything else gets generic settings). Tendencies, not labels
   anyone sees: kick, snare, bass, lead and voice near the centre, the other stems spread to alternating
   sides; EQ moves of the usual kind per role (a kick's low boost and boxiness cut, a voice's low cut
   and presence lift ...) all within +-6 dB; compressors on most drums, basses and voices with attack
   >= 1 ms and release >= 30 ms, threshold set for 2-6 dB of gain reduction on the loud passages; faders
   from a typical pop/rock balance (:data:`ROLE_LEVEL_LU`) with per-song jitter, one featured stem and
   sometimes one tucked away, so that stems sit 6-12 dB apart rather than at equal loudness. Stems are
   first trimmed to equal loudness exactly as :mod:`core.prepare` imports them.
2. **The console** renders every strip (:func:`core.console.render_long`, the torch console) with its
   master bus flat.
3. **A stereo reverb send** (:func:`reverb_ir`): exponentially decaying, band-limited noise, independent
   per channel (so the return is wide), RT60 0.8-2.5 s, 10-40 ms pre-delay; each stem's post-fader,
   post-pan signal is sent (mono, per-role send levels; none for the bass) and convolved by FFT.
4. **Mastering** on the sum of strips and returns, with the console's own master-bus blocks and
   :func:`core.render.limit`: a tonal EQ of several dB that varies per song (low and high shelves of
   +-2..5 dB, often a mid scoop and/or a presence bump), bus compression (ratio 1.5-4, 1.5-4 dB of gain
   reduction, slow attack and release), then the master fader and the console's true-peak limiter
   (:func:`master_to_loudness`) to a loudness drawn from -16 to -8 LUFS at -1 dBTP.

The returned :class:`EngineerMix` holds the mix, each stem's *true contribution* and the settings. A
contribution is the stem's strip output plus its share of the reverb return, through the master EQ (linear,
per stem) and then the master bus's time-varying gain (compressor, fader and limiter: one gain curve for
the whole bus, applied to every stem), so the contributions sum to the mix exactly (to float rounding).
``params`` is the console (trims, EQ, compressors, faders, pans; the mastering EQ, bus compressor and
fader on the master bus); rendering ``params`` alone reproduces the mix without its reverb and limiter.

    from training.synth import load_song
    meta, stems, sr = load_song("data/quality/songs/seed_900001")
    em = engineer_mix(stems, sr, np.random.default_rng(1))
    em.mix            # (2, T) float32
    em.contributions  # (N, 2, T) float32, sum over N == em.mix

``training.engineer`` is the same module under its old name. The plain reference mixes of
:mod:`training.synth.mixes` share :func:`master_to_loudness` and the loud-passage threshold rule
(:func:`_loud_level_db`, :func:`_threshold_for`) with the mastering here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from core.audio_io import SILENCE_PEAK, Audio
from core.paramfile import MixParams
from core.params import MASTER, TRACK
from core.prepare import Inputs, from_audio

#: Loudness of each role relative to the others in the mix (LU): a typical pop/rock balance.
ROLE_LEVEL_LU = {"kick": 0.0, "snare": -1.0, "hats": -9.0, "toms": -6.0, "cymbals": -11.0,
                 "percussion": -10.0, "bass": -1.5, "chords": -5.0, "pad": -9.0, "lead": -3.0, "voice": -2.0,
                 "arp": -8.0, "other": -6.0}
#: Roles kept near the centre.
CENTRED = frozenset({"kick", "snare", "bass", "lead", "voice"})
#: Roles that can be the featured stem of a song (pushed up a few dB).
FEATURED = ("lead", "voice", "chords", "arp", "snare", "bass")
#: Stem name aliases (first word of the name, lower case) for stems not named like generated ones.
ALIASES = {"keys": "chords", "piano": "chords", "organ": "chords", "guitar": "chords", "gtr": "chords",
           "rhodes": "chords", "vox": "voice", "vocal": "voice", "vocals": "voice", "vocal2": "voice",
           "synth": "lead", "strings": "pad", "hh": "hats", "hihat": "hats", "hat": "hats",
           "overheads": "cymbals", "oh": "cymbals", "ride": "cymbals", "crash": "cymbals",
           "perc": "percussion", "sub": "bass", "bd": "kick", "sd": "snare", "tom": "toms"}

# EQ moves per role: (band, probability, (freq lo, hi) Hz, (gain lo, hi) dB, (q lo, hi)).
_LS, _B1, _B2, _B3, _B4, _HS = "eq_low_shelf", "eq_band1", "eq_band2", "eq_band3", "eq_band4", "eq_high_shelf"
EQ_MOVES: dict[str, tuple] = {
    "kick": (
        (_B1, 0.8, (50, 80), (1.0, 4.5), (0.7, 1.5)),
        (_B2, 0.7, (250, 500), (-5.0, -2.0), (1.0, 2.5)),
        (_B4, 0.6, (2500, 5000), (1.0, 4.0), (0.8, 2.0)),
        (_HS, 0.3, (8000, 12000), (-3.0, 0.0), (0.7, 0.7)),
    ),
    "snare": (
        (_LS, 0.5, (60, 110), (-5.0, -2.0), (0.7, 0.7)),
        (_B1, 0.6, (150, 260), (1.0, 3.0), (0.8, 1.5)),
        (_B2, 0.5, (400, 900), (-4.0, -1.0), (1.0, 2.5)),
        (_B4, 0.7, (4000, 8000), (1.0, 3.5), (0.7, 1.5)),
    ),
    "hats": (
        (_LS, 0.8, (200, 600), (-6.0, -3.0), (0.7, 0.7)),
        (_B3, 0.4, (1000, 3000), (-3.0, -1.0), (0.8, 2.0)),
        (_HS, 0.6, (8000, 12000), (0.5, 3.0), (0.7, 0.7)),
    ),
    "cymbals": (
        (_LS, 0.8, (200, 600), (-6.0, -3.0), (0.7, 0.7)),
        (_HS, 0.5, (8000, 12000), (0.5, 2.5), (0.7, 0.7)),
    ),
    "toms": (
        (_B1, 0.6, (80, 150), (1.0, 3.0), (0.8, 1.5)),
        (_B2, 0.6, (300, 600), (-4.0, -2.0), (1.0, 2.0)),
        (_B4, 0.5, (3000, 5000), (1.0, 3.0), (0.8, 1.5)),
    ),
    "percussion": (
        (_LS, 0.7, (150, 400), (-5.0, -2.0), (0.7, 0.7)),
        (_HS, 0.4, (8000, 12000), (0.0, 2.0), (0.7, 0.7)),
    ),
    "bass": (
        (_LS, 0.6, (60, 100), (1.0, 3.0), (0.7, 0.7)),
        (_B2, 0.6, (200, 400), (-4.0, -1.0), (0.8, 2.0)),
        (_B3, 0.5, (700, 1500), (1.0, 3.0), (0.8, 1.5)),
        (_HS, 0.5, (4000, 8000), (-4.0, -1.0), (0.7, 0.7)),
    ),
    "chords": (
        (_LS, 0.7, (120, 250), (-5.0, -2.0), (0.7, 0.7)),
        (_B2, 0.5, (300, 600), (-3.0, -1.0), (0.8, 2.0)),
        (_B3, 0.5, (2000, 4000), (1.0, 3.0), (0.8, 1.5)),
        (_HS, 0.4, (8000, 12000), (-2.0, 2.0), (0.7, 0.7)),
    ),
    "pad": (
        (_LS, 0.8, (150, 300), (-6.0, -3.0), (0.7, 0.7)),
        (_B3, 0.4, (1000, 3000), (-3.0, -1.0), (0.7, 1.5)),
        (_HS, 0.4, (8000, 12000), (0.0, 2.0), (0.7, 0.7)),
    ),
    "lead": (
        (_LS, 0.7, (150, 300), (-5.0, -2.0), (0.7, 0.7)),
        (_B3, 0.7, (2000, 4000), (1.0, 4.0), (0.8, 1.5)),
        (_HS, 0.4, (8000, 12000), (0.0, 2.0), (0.7, 0.7)),
    ),
    "voice": (
        (_LS, 0.8, (100, 200), (-6.0, -3.0), (0.7, 0.7)),
        (_B2, 0.5, (250, 500), (-3.0, -1.0), (0.8, 2.0)),
        (_B3, 0.7, (2000, 5000), (1.0, 4.0), (0.8, 1.5)),
        (_HS, 0.6, (10000, 14000), (1.0, 3.0), (0.7, 0.7)),
    ),
    "arp": (
        (_LS, 0.6, (200, 400), (-4.0, -2.0), (0.7, 0.7)),
        (_B4, 0.5, (4000, 8000), (1.0, 3.0), (0.8, 1.5)),
    ),
    "other": (
        (_B2, 0.5, (200, 1200), (-3.0, 3.0), (0.7, 2.0)),
        (_B3, 0.5, (1500, 5000), (-3.0, 3.0), (0.7, 2.0)),
    ),
}
EQ_LIMIT_DB = 6.0  # every EQ move of a stem stays within +-6 dB

# Compressor per role: (probability, ratio range, attack ms range, release ms range).
COMP: dict[str, tuple] = {
    "kick": (0.7, (3.0, 6.0), (5.0, 30.0), (50.0, 200.0)),
    "snare": (0.7, (3.0, 6.0), (5.0, 30.0), (60.0, 250.0)),
    "toms": (0.4, (2.5, 5.0), (5.0, 30.0), (80.0, 250.0)),
    "hats": (0.2, (2.0, 4.0), (2.0, 15.0), (40.0, 150.0)),
    "cymbals": (0.1, (2.0, 3.0), (5.0, 20.0), (80.0, 250.0)),
    "percussion": (0.3, (2.0, 4.0), (3.0, 20.0), (50.0, 200.0)),
    "bass": (0.85, (3.0, 6.0), (5.0, 25.0), (60.0, 250.0)),
    "chords": (0.45, (2.0, 4.0), (5.0, 40.0), (80.0, 300.0)),
    "pad": (0.2, (1.8, 3.0), (10.0, 50.0), (150.0, 500.0)),
    "lead": (0.6, (2.0, 5.0), (3.0, 20.0), (60.0, 250.0)),
    "voice": (0.85, (2.5, 6.0), (2.0, 15.0), (50.0, 250.0)),
    "arp": (0.3, (2.0, 4.0), (3.0, 20.0), (50.0, 200.0)),
    "other": (0.4, (2.0, 4.0), (5.0, 30.0), (60.0, 250.0)),
}
COMP_GR_DB = (2.0, 6.0)  # gain reduction on the loud passages of a compressed stem

# Reverb send per role, dB (post-fader); None: no send.
SEND_DB: dict[str, tuple[float, float] | None] = {
    "kick": (-30.0, -20.0), "snare": (-16.0, -8.0), "toms": (-18.0, -10.0), "hats": (-26.0, -16.0),
    "cymbals": (-22.0, -14.0), "percussion": (-18.0, -10.0), "bass": None, "chords": (-18.0, -10.0),
    "pad": (-14.0, -6.0), "lead": (-16.0, -8.0), "voice": (-14.0, -6.0), "arp": (-14.0, -8.0),
    "other": (-18.0, -10.0),
}
RT60_S = (0.8, 2.5)
PREDELAY_MS = (10.0, 40.0)
LOUDNESS_LUFS = (-16.0, -8.0)
CEILING_DBTP = -1.0
MASTER_SHELF_DB = (2.0, 5.0)  # magnitude of the master low and high shelves
MASTER_GR_DB = (1.5, 4.0)


def role_of(name: str) -> str:
    """The role a stem name suggests: ``bass_finger`` -> ``bass``, ``keys`` -> ``chords``, else ``other``."""
    head = name.lower().replace("-", "_").replace(" ", "_").split("_")[0].rstrip("0123456789")
    head = ALIASES.get(head, head)
    return head if head in ROLE_LEVEL_LU else "other"


# --- stems -> Inputs --------------------------------------------------------------------------------

def _channels_first(x: np.ndarray) -> np.ndarray:
    """(T,), (T, C) or (C, T) with C <= 2 -> float32 (C, T)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x[None]
    if x.ndim != 2:
        raise ValueError(f"a stem must be 1-D or 2-D, got shape {x.shape}")
    if x.shape[0] <= 2 and x.shape[1] > 2:
        return x
    return np.ascontiguousarray(x.T)


def stems_inputs(stems: Mapping[str, np.ndarray], sample_rate: int,
                 reference: np.ndarray | None = None) -> Inputs:
    """:class:`core.prepare.Inputs` of in-memory stems, made exactly as ``stylemix`` imports files.

    stems: {name: (T,), (T, C) or (C, T)} (C <= 2, as :func:`training.synth.load_song` or the tests'
    generators give them); reference: (2, T) or None.
    """
    audios = []
    for name, x in stems.items():
        data = _channels_first(x)
        audios.append(Audio(data, sample_rate, name, name, sample_rate, data.shape[1],
                            silent=bool(np.max(np.abs(data), initial=0.0) < SILENCE_PEAK)))
    ref = None
    if reference is not None:
        r = _channels_first(reference)
        ref = Audio(r, sample_rate, "reference", "reference", sample_rate, r.shape[1])
    return from_audio(audios, sample_rate, ref)


# --- settings ------------------------------------------------------------------------------------------

def _uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi))


def _log_uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _loud_level_db(x: np.ndarray, sample_rate: int, block_s: float = 0.01) -> float:
    """Level (dB, mean square over channels) that 10 ms blocks of the loud passages reach: the 90th
    percentile of the blocks within 40 dB of the loudest."""
    p = np.square(np.asarray(x, dtype=np.float64)).mean(axis=0)
    block = max(1, int(block_s * sample_rate))
    n = p.size // block
    if n == 0:
        return 10 * math.log10(p.mean() + 1e-20)
    levels = 10 * np.log10(p[: n * block].reshape(n, block).mean(axis=1) + 1e-20)
    loud = levels[levels > levels.max() - 40.0]
    return float(np.percentile(loud, 90))


def _threshold_for(level_db: float, ratio: float, gr_db: float, knee_db: float) -> float:
    """Threshold that gives ``gr_db`` of static gain reduction at ``level_db`` (above the knee)."""
    return float(np.clip(level_db - gr_db / (1.0 - 1.0 / ratio), -60.0, 0.0 - knee_db / 2))


def _set(vec: np.ndarray, schema, key: str, value: float) -> None:
    vec[schema.index(key)] = schema[key].clip(value)


def _eq_moves(vec: np.ndarray, schema, moves, rng: np.random.Generator, limit: float) -> None:
    for band, prob, freq, gain, q in moves:
        if rng.random() >= prob:
            continue
        _set(vec, schema, f"{band}_freq_hz", _log_uniform(rng, freq))
        _set(vec, schema, f"{band}_gain_db", float(np.clip(_uniform(rng, gain), -limit, limit)))
        _set(vec, schema, f"{band}_q", _log_uniform(rng, q) if q[0] != q[1] else q[0])


@dataclass
class Settings:
    """Everything :func:`engineer_mix` draws for one song."""

    params: MixParams  # console (master bus: mastering EQ and bus compressor; fader set later)
    roles: list[str]
    sends_db: np.ndarray  # (N,) reverb send per stem, dB; -inf: none
    rt60_s: float
    predelay_ms: float
    reverb_lowcut_hz: float
    reverb_highcut_hz: float
    loudness_lufs: float
    ceiling_dbtp: float
    master_gr_db: float
    featured: str | None = None
    tucked: str | None = None


def draw_console(inputs: Inputs, rng: np.random.Generator, loudness_lufs: float | None = None,
                 ceiling_dbtp: float = CEILING_DBTP) -> Settings:
    """Draw an engineer's console for ``inputs`` (trims as imported), the reverb and the mastering."""
    sr = inputs.sample_rate
    names = list(inputs.names)
    n = len(names)
    roles = [role_of(name) for name in names]
    params = inputs.default_params()
    silent = np.asarray(inputs.silent, bool)
    trims = np.asarray(inputs.trim_db, dtype=np.float64)

    audible = [i for i in range(n) if not silent[i]]
    featured = tucked = None
    candidates = [i for i in audible if roles[i] in FEATURED]
    if candidates:
        featured = int(candidates[int(rng.integers(len(candidates)))])
    others = [i for i in audible if i != featured and roles[i] not in ("kick", "bass")]
    if others and rng.random() < 0.6:
        tucked = int(others[int(rng.integers(len(others)))])
    side = 1.0 if rng.random() < 0.5 else -1.0  # spread stems alternate sides, starting here

    sends = np.full(n, -np.inf)
    for i in range(n):
        role = roles[i]
        vec = params.tracks[i]
        _eq_moves(vec, TRACK, EQ_MOVES[role], rng, EQ_LIMIT_DB)
        prob, ratio_r, attack_r, release_r = COMP[role]
        makeup = 0.0
        if rng.random() < prob:
            ratio = _log_uniform(rng, ratio_r)
            knee = _uniform(rng, (2.0, 8.0))
            gr = _uniform(rng, COMP_GR_DB)
            level = _loud_level_db(inputs.stems[i], sr) + trims[i]
            _set(vec, TRACK, "comp_ratio", ratio)
            _set(vec, TRACK, "comp_threshold_db", _threshold_for(level, ratio, gr, knee))
            _set(vec, TRACK, "comp_attack_ms", _log_uniform(rng, attack_r))
            _set(vec, TRACK, "comp_release_ms", _log_uniform(rng, release_r))
            _set(vec, TRACK, "comp_knee_db", knee)
            makeup = gr * _uniform(rng, (0.4, 0.8))  # average reduction is below the loud passages'
            _set(vec, TRACK, "comp_makeup_db", makeup)
        level_lu = ROLE_LEVEL_LU[role] + _uniform(rng, (-2.5, 2.5))
        if i == featured:
            level_lu += _uniform(rng, (2.0, 5.0))
        if i == tucked:
            level_lu -= _uniform(rng, (3.0, 7.0))
        _set(vec, TRACK, "gain_db", level_lu - makeup)
        if inputs.stereo[i]:
            pan = _uniform(rng, (-0.15, 0.15))
        elif role in CENTRED:
            pan = _uniform(rng, (-0.1, 0.1)) if role != "lead" else _uniform(rng, (-0.3, 0.3))
        else:
            width = {"hats": (0.2, 0.5), "toms": (0.3, 0.6)}.get(role, (0.25, 0.8))
            pan = side * _uniform(rng, width)
            side = -side
        _set(vec, TRACK, "pan", pan)
        send = SEND_DB[role]
        if send is not None and not silent[i]:
            sends[i] = _uniform(rng, send)

    m = params.master
    low = _uniform(rng, MASTER_SHELF_DB) * (1.0 if rng.random() < 0.5 else -1.0)
    high = _uniform(rng, MASTER_SHELF_DB) * (1.0 if rng.random() < 0.65 else -1.0)
    _eq_moves(m, MASTER, ((_LS, 1.0, (60, 150), (low, low), (0.7, 0.7)),
                          (_HS, 1.0, (6000, 12000), (high, high), (0.7, 0.7)),
                          (_B2, 0.5, (300, 800), (-4.0, -1.0), (0.7, 1.5)),
                          (_B3, 0.5, (2000, 5000), (1.0, 3.0), (0.7, 1.5))), rng, 6.0)
    _set(m, MASTER, "comp_ratio", _log_uniform(rng, (1.5, 4.0)))
    _set(m, MASTER, "comp_attack_ms", _log_uniform(rng, (10.0, 40.0)))
    _set(m, MASTER, "comp_release_ms", _log_uniform(rng, (80.0, 300.0)))
    _set(m, MASTER, "comp_knee_db", _uniform(rng, (4.0, 8.0)))
    master_gr = _uniform(rng, MASTER_GR_DB)  # the threshold follows once the bus exists
    target = _uniform(rng, LOUDNESS_LUFS) if loudness_lufs is None else float(loudness_lufs)
    return Settings(params, roles, sends, _uniform(rng, RT60_S), _uniform(rng, PREDELAY_MS),
                    _log_uniform(rng, (150.0, 400.0)), _log_uniform(rng, (5000.0, 10000.0)), target,
                    float(ceiling_dbtp), master_gr,
                    names[featured] if featured is not None else None,
                    names[tucked] if tucked is not None else None)


# --- reverb ---------------------------------------------------------------------------------------------

def reverb_ir(sample_rate: int, rt60_s: float, predelay_ms: float, rng: np.random.Generator,
              lowcut_hz: float = 250.0, highcut_hz: float = 8000.0) -> np.ndarray:
    """Stereo impulse response (2, L) float64: independent band-passed noise per channel under an
    exponential decay of ``rt60_s`` (-60 dB), after ``predelay_ms`` of silence; length 1.2 x RT60.
    Each channel has unit energy, so a return is about as loud as what is sent."""
    from scipy.signal import butter, sosfilt

    pre = int(round(predelay_ms * 1e-3 * sample_rate))
    n = int(round(1.2 * rt60_s * sample_rate))
    t = np.arange(n) / sample_rate
    decay = np.exp(-3.0 * math.log(10.0) * t / rt60_s)  # amplitude: -60 dB at rt60
    sos = np.vstack([butter(2, lowcut_hz, "highpass", fs=sample_rate, output="sos"),
                     butter(2, min(highcut_hz, 0.45 * sample_rate), "lowpass", fs=sample_rate, output="sos")])
    noise = sosfilt(sos, rng.standard_normal((2, n + 2048)), axis=-1)[:, 2048:]  # filters settled
    ir = np.zeros((2, pre + n))
    ir[:, pre:] = noise * decay
    fade = min(n, int(0.05 * sample_rate))  # no step at the end
    ir[:, -fade:] *= np.linspace(1.0, 0.0, fade)
    return ir / np.sqrt(np.sum(ir ** 2, axis=-1, keepdims=True))


def reverb_returns(sends: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Returns (N, 2, T) float32 of mono sends (N, T) through the stereo ``ir`` (2, L), by FFT."""
    from scipy.fft import irfft, next_fast_len, rfft

    n, t = sends.shape
    n_fft = next_fast_len(t + ir.shape[-1] - 1, real=True)
    h = rfft(ir, n_fft, axis=-1)  # (2, F)
    out = np.zeros((n, 2, t), dtype=np.float32)
    for i in range(n):
        if not np.any(sends[i]):
            continue
        s = rfft(sends[i].astype(np.float64), n_fft)
        out[i] = irfft(s[None] * h, n_fft, axis=-1)[:, :t]
    return out


# --- the whole chain -----------------------------------------------------------------------------------

def stage_gain(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The per-sample gain (T,) of a stage that scales both channels alike: ``after = before * gain``.

    Read on the louder channel of ``before``; where ``before`` is too quiet to read (below 1e-6 of its
    peak), interpolated between the neighbouring readings (the stages here have smooth gains).
    """
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    pick = np.argmax(np.abs(before), axis=0)
    cols = np.arange(before.shape[-1])
    b, a = before[pick, cols], after[pick, cols]
    ok = np.abs(b) > 1e-6 * max(float(np.abs(b).max(initial=0.0)), 1e-30)
    if not ok.any():
        return np.ones(before.shape[-1])
    gain = np.empty(before.shape[-1])
    gain[ok] = a[ok] / b[ok]
    gain[~ok] = np.interp(cols[~ok], cols[ok], gain[ok])
    return gain


def master_eq_vector(master: np.ndarray) -> np.ndarray:
    """The master bus's EQ values (in :data:`core.console.EQ` order) from a MASTER vector."""
    from core.console import EQ

    return np.asarray([master[MASTER.index(k)] for k in EQ.keys], dtype=np.float64)


def apply_master_eq(x: np.ndarray, master: np.ndarray, sample_rate: int) -> np.ndarray:
    """The master bus's EQ (as the console applies it) on each of ``x`` (..., 2, T), one at a time."""
    import torch

    from core.console import apply_eq

    eq = torch.from_numpy(master_eq_vector(master))
    flat = x.reshape(-1, 2, x.shape[-1])
    out = np.empty_like(flat, dtype=np.float32)
    with torch.no_grad():
        for i in range(flat.shape[0]):
            out[i] = apply_eq(torch.from_numpy(np.ascontiguousarray(flat[i], dtype=np.float32)), eq,
                              sample_rate).numpy()
    return out.reshape(x.shape)


def render_strips(inputs: Inputs, params: MixParams) -> np.ndarray:
    """Each track's output after its pan (N, 2, T) float32, from the torch console (master not applied)."""
    import torch

    from core.console import render_long

    with torch.no_grad():
        _, strips = render_long(
            torch.from_numpy(inputs.stems).unsqueeze(0), torch.from_numpy(params.tracks).float().unsqueeze(0),
            torch.from_numpy(MASTER.defaults()).float().unsqueeze(0), inputs.sample_rate,
            stereo=torch.from_numpy(np.asarray(inputs.stereo, bool)).unsqueeze(0), return_tracks=True)
    return strips[0].numpy()


def master_to_loudness(x: np.ndarray, sample_rate: int, loudness_lufs: float, ceiling_dbtp: float,
                       passes: int = 12) -> tuple[float, np.ndarray]:
    """Master fader (dB) and output: ``x`` (2, T) raised to ``loudness_lufs`` through the console's true-peak
    limiter (:func:`core.render.limit`) at ``ceiling_dbtp``. The limiter takes loudness away as it works,
    so the fader is corrected until the limited output is within 0.02 LU of the target."""
    from core.features import db_to_amp, integrated_lufs
    from core.render import limit

    fader = MASTER["gain_db"]
    level = integrated_lufs(x, sample_rate)
    if not math.isfinite(level):
        return 0.0, x.astype(np.float32)
    gain = fader.clip(loudness_lufs - level)
    out = x
    for _ in range(passes):
        out = limit(x * np.float32(db_to_amp(gain)), sample_rate, ceiling_dbtp)
        err = loudness_lufs - integrated_lufs(out, sample_rate)
        if abs(err) < 0.02 or fader.clip(gain + err) == gain:
            break
        gain = fader.clip(gain + err)
    return float(gain), out.astype(np.float32)


@dataclass
class EngineerMix:
    """A finished mix and how it was made (see the module docstring)."""

    mix: np.ndarray  # (2, T) float32
    contributions: np.ndarray  # (N, 2, T) float32; their sum is ``mix``
    params: MixParams  # the console: tracks, and the mastering EQ / bus compressor / fader on the master
    settings: Settings
    inputs: Inputs = field(repr=False)  # the stems as the console saw them (trims)

    @property
    def names(self) -> list[str]:
        return list(self.params.names)


def engineer_mix(stems: Mapping[str, np.ndarray], sample_rate: int, rng: np.random.Generator, *,
                 loudness_lufs: float | None = None, ceiling_dbtp: float = CEILING_DBTP) -> EngineerMix:
    """A finished, mastered mix of ``stems`` ({name: (T,), (T, C) or (C, T)}) drawn from ``rng``.

    loudness_lufs: the master's integrated loudness (default: drawn from -16 to -8 LUFS);
    ceiling_dbtp: the limiter's true-peak ceiling. Deterministic for a given ``rng`` state.
    """
    import torch

    from core.console import compressor
    from core.features import db_to_amp

    inputs = stems_inputs(stems, sample_rate)
    st = draw_console(inputs, rng, loudness_lufs, ceiling_dbtp)
    params = st.params
    strips = render_strips(inputs, params)  # (N, 2, T)

    ir = reverb_ir(sample_rate, st.rt60_s, st.predelay_ms, rng, st.reverb_lowcut_hz, st.reverb_highcut_hz)
    finite = np.isfinite(st.sends_db)
    send_amp = np.where(finite, db_to_amp(np.where(finite, st.sends_db, 0.0)), 0.0)
    sends = strips.mean(axis=1, dtype=np.float64) * send_amp[:, None]
    contributions = strips + reverb_returns(sends, ir)
    del strips, sends
    contributions = apply_master_eq(contributions, params.master, sample_rate)
    bus = contributions.sum(axis=0, dtype=np.float64)  # (2, T)

    m = params.master
    ratio, knee = m[MASTER.index("comp_ratio")], m[MASTER.index("comp_knee_db")]
    _set(m, MASTER, "comp_threshold_db", _threshold_for(_loud_level_db(bus, sample_rate), ratio,
                                                        st.master_gr_db, knee))
    with torch.no_grad():
        _, comp_gain = compressor(torch.from_numpy(bus), *(float(m[MASTER.index(k)]) for k in (
            "comp_threshold_db", "comp_ratio", "comp_attack_ms", "comp_release_ms", "comp_knee_db")),
            0.0, sample_rate, return_gain=True)
    comp_gain = comp_gain.numpy()  # (T,)
    pre = (bus * comp_gain).astype(np.float32)  # master fader at 0 dB, makeup 0 dB
    fader_db, mix = master_to_loudness(pre, sample_rate, st.loudness_lufs, st.ceiling_dbtp)
    _set(m, MASTER, "gain_db", fader_db)
    gain = comp_gain * stage_gain(pre, mix)  # compressor, fader and limiter: one curve for the bus
    contributions *= gain.astype(np.float32)[None, None, :]
    return EngineerMix(mix.astype(np.float32), contributions, params, st, inputs)
