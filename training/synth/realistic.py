"""Songs closer to real sessions (``realism="full"``): recorded instruments, bleed, noise, a dry mix.

:func:`generate_real_song` is what :func:`training.synth.generate_song` runs for ``realism="full"``:

1. **Composition** with the song form of :mod:`training.synth.arrange` (intro, verses, choruses, breaks,
   outro; parts that drop in and out; vocals and leads with long rests; player drift and dynamics).
2. **Instruments.** A General MIDI soundfont is drawn per song from :data:`SOUNDFONTS` (FluidR3 and,
   when ``musescore-general-soundfont-lossless`` is installed, MuseScore General; a drawn soundfont that
   is absent falls back to FluidR3, so songs that drew FluidR3 are the same everywhere). Drums are played
   from a recorded Hydrogen kit (:mod:`training.synth.hydrogen`, ``hydrogen-drumkits``) drawn per song
   (electronic kits for most electronic songs, acoustic ones otherwise); a drum stem whose notes the kit
   lacks (most percussion) and every drum stem when no kit is installed come from the soundfont's GM kit.
   Missing packages are reported once per process on stderr; ``scripts/setup-train.sh`` installs them.
3. **Stereo.** Pads, doubled guitars and vocals as in the default mode (two independent takes, slightly
   detuned, panned almost hard apart in the realistic mode), and the cymbals slot usually becomes
   *overheads*: a stereo pair holding the cymbals and the whole kit (each piece placed across the
   stereo field with a small inter-channel delay, as a spaced pair hears it).
4. **Bleed** (drawn per song with :data:`BLEED_PROB`): each close drum microphone (kick, snare, hats,
   toms) picks up some of its neighbours (:data:`BLEED_FROM`), :data:`BLEED_DB` below them and
   :data:`BLEED_DELAY_MS` late, darkened by a one-pole low-pass.
5. **Recording.** Each stem gets a recording level (sample peak in :data:`PEAK_DBFS`) and a noise floor:
   hiss :data:`SNR_MIC_DB` below the peak for microphone parts (:data:`SNR_DI_DB` for synths, electric
   bass and drum machines), with mains hum (50 or 60 Hz and harmonics) on some stems.
6. **Files** as in the default mode (``<stem>.flac``, mono stems mono, ``song.json`` written last), plus
   ``mix.flac``: the *dry mix*, the plain sum of the stem files (mono stems in both channels) times
   ``dry_mix.gain_db`` (so that it peaks at -1 dBFS), 16-bit; ``dry_mix=False`` leaves it out.

Deterministic by seed for a given set of installed soundfonts and kits (``song.json`` names those used).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import hydrogen
from .compose import compose_song
from .plan import KITS, TICKS_PER_BEAT, Part, SongPlan
from .render import (
    FORMAT_VERSION,
    SOUNDFONT,
    _fit,
    _lufs,
    _render_part,
    have_fluidsynth,
    part_to_midi,
    render_midi,
)

#: Candidate soundfonts, drawn per song (fixed order; an absent one falls back to :data:`SOUNDFONT`).
SOUNDFONTS = tuple(Path(p) for p in os.environ.get(
    "STYLEMIX_SOUNDFONTS",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2:/usr/share/sounds/sf2/MuseScore_General_Full.sf2").split(":") if p)
PEAK_DBFS = (-32.0, -4.0)
SNR_MIC_DB = (48.0, 72.0)
SNR_DI_DB = (66.0, 90.0)
HUM_PROB = 0.15
BLEED_PROB = 0.6
BLEED_FROM = {"kick": ("snare", "toms"), "snare": ("kick", "hats", "toms"), "hats": ("snare", "kick"),
              "toms": ("snare", "kick", "hats")}
BLEED_DB = (-32.0, -16.0)
BLEED_DELAY_MS = (0.6, 4.0)
#: Level of the kit's close pieces in the overheads (dB relative to their close signal).
OVERHEAD_KIT_DB = (-12.0, -4.0)
DRY_MIX_PEAK_DBFS = -1.0
#: A drum stem is played from the Hydrogen kit when the kit maps at least this share of its notes.
KIT_COVERAGE = 0.9
CLOSE_MICS = ("kick", "snare", "hats", "toms")
#: Where each piece sits in the overheads (pan -1..1, audience view; flipped per song at random).
PIECE_PAN = {"kick": 0.0, "snare": -0.15, "hats": -0.5, "toms": 0.35, 49: -0.55, 57: 0.6, 51: 0.5, 59: 0.5,
             53: 0.45, 52: -0.75, 55: -0.35}

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        print(f"synth: {message}", file=sys.stderr)


def _kits() -> list[hydrogen.Kit]:
    kits = _kits_cache.get("kits")
    if kits is None:
        kits = _kits_cache["kits"] = hydrogen.find_kits()
    return kits


_kits_cache: dict[str, list] = {}


def choose_soundfont(rng: np.random.Generator, fallback: Path = SOUNDFONT) -> Path:
    """The soundfont drawn for a song (one draw from ``rng`` whatever is installed)."""
    pick = SOUNDFONTS[int(rng.integers(len(SOUNDFONTS)))] if SOUNDFONTS else fallback
    if not pick.is_file():
        _warn_once(f"sf:{pick}", f"soundfont {pick} not found; using {fallback} "
                   "(scripts/setup-train.sh installs musescore-general-soundfont-lossless)")
        return fallback
    return pick


def choose_kit(rng: np.random.Generator, genre: str, kits: list[hydrogen.Kit]) -> hydrogen.Kit | None:
    """The Hydrogen kit drawn for a song (two draws from ``rng`` whatever is installed), or None."""
    u_kind, u_pick = float(rng.random()), float(rng.random())
    if not kits:
        _warn_once("kits", f"no Hydrogen drum kits under {', '.join(map(str, hydrogen.KIT_DIRS))}; drums "
                   "come from the soundfont's GM kits (scripts/setup-train.sh installs hydrogen-drumkits)")
        return None
    want_electronic = u_kind < (0.8 if genre == "electronic" else 0.1)
    pool = [k for k in kits if k.electronic == want_electronic] or kits
    return pool[min(int(u_pick * len(pool)), len(pool) - 1)]


def _hits(part: Part, plan: SongPlan) -> list[tuple[float, int, int]]:
    sec = 60.0 / (plan.tempo_bpm * TICKS_PER_BEAT)
    return [(n.start * sec, n.pitch, n.velocity) for n in part.notes]


def _kit_covers(kit: hydrogen.Kit | None, part: Part) -> bool:
    if kit is None or not part.notes:
        return False
    return sum(n.pitch in kit.notes for n in part.notes) >= KIT_COVERAGE * len(part.notes)


def _pan_gains(pan: float) -> np.ndarray:
    angle = (np.clip(pan, -1.0, 1.0) + 1.0) * np.pi / 4
    return np.array([np.cos(angle), np.sin(angle)]) * math.sqrt(2.0)


def _delay(x: np.ndarray, samples: int) -> np.ndarray:
    if samples <= 0:
        return x
    out = np.zeros_like(x)
    out[samples:] = x[:-samples]
    return out


def _place(x: np.ndarray, pan: float, sr: int, spacing_ms: float) -> np.ndarray:
    """A mono source as a spaced pair hears it: constant-power pan and a delay on the far channel."""
    g = _pan_gains(pan)
    d = int(round(abs(pan) * spacing_ms * 1e-3 * sr))
    left, right = x * g[0], x * g[1]
    if pan > 0:
        left = _delay(left, d)
    elif pan < 0:
        right = _delay(right, d)
    return np.stack([left, right], axis=1)


def _one_pole_lowpass(x: np.ndarray, cutoff_hz: float, sr: int) -> np.ndarray:
    from scipy.signal import lfilter

    a = math.exp(-2.0 * math.pi * cutoff_hz / sr)
    return lfilter([1.0 - a], [1.0, -a], x, axis=0)


def add_bleed(close: dict[str, np.ndarray], rng: np.random.Generator,
              sample_rate: int) -> tuple[dict[str, np.ndarray], dict[str, list[dict]]]:
    """Close drum microphones that hear their neighbours: ``close`` {piece: mono (T,)} -> the same with
    bleed added from the *dry* signals (:data:`BLEED_FROM`, each with probability 0.7), and per piece
    what was added: ``[{"from", "db", "delay_ms", "lowpass_hz"}]``."""
    out = {k: v.copy() for k, v in close.items()}
    info: dict[str, list[dict]] = {k: [] for k in close}
    for piece in sorted(close):
        for src in BLEED_FROM.get(piece, ()):
            if src not in close or rng.random() >= 0.7:
                continue
            db = float(rng.uniform(*BLEED_DB))
            delay_ms = float(rng.uniform(*BLEED_DELAY_MS))
            cutoff = float(rng.uniform(2500.0, 8000.0))
            bleed = _one_pole_lowpass(close[src], cutoff, sample_rate) * 10 ** (db / 20)
            out[piece] = out[piece] + _delay(bleed, int(round(delay_ms * 1e-3 * sample_rate)))
            info[piece].append({"from": src, "db": round(db, 2), "delay_ms": round(delay_ms, 3),
                                "lowpass_hz": round(cutoff, 1)})
    return out, info


def noise_floor(n: int, channels: int, rms: float, sample_rate: int, rng: np.random.Generator,
                hum_hz: float | None = None) -> np.ndarray:
    """Hiss (white noise through a gentle low-pass) at ``rms``, plus mains hum at ``hum_hz`` and its
    harmonics when given; (n,) or (n, channels) with independent hiss per channel."""
    hiss = rng.standard_normal((n, channels))
    hiss = _one_pole_lowpass(hiss, float(rng.uniform(4000.0, 12000.0)), sample_rate)
    hiss *= rms / max(float(np.sqrt(np.mean(hiss ** 2))), 1e-20)
    if hum_hz:
        t = np.arange(n) / sample_rate
        hum = sum(a * np.sin(2 * np.pi * k * hum_hz * t + float(rng.uniform(0, 2 * np.pi)))
                  for k, a in ((1, 1.0), (2, 0.5), (3, 0.35), (5, 0.2)))
        hiss += (hum / np.sqrt(np.mean(hum ** 2)) * rms * float(rng.uniform(0.5, 2.0)))[:, None]
    return hiss[:, 0] if channels == 1 else hiss


def _is_di(part: Part, kit: hydrogen.Kit | None, from_kit: bool) -> bool:
    if part.is_drum:
        return from_kit and kit is not None and kit.electronic
    return part.program >= 80 or part.program in (33, 34, 36, 37, 38, 39, 4, 5)


def generate_real_song(out_dir: str | Path, seed: int, seconds: float = 30.0, sample_rate: int = 44100,
                       genre: str | None = None, *, song_id: str | None = None, n_stems: int | None = None,
                       subtype: str = "PCM_24", soundfont: str | Path | None = None,
                       dry_mix: bool = True) -> Path:
    """Compose, render and store one realistic song (see the module docstring); returns its folder.

    ``soundfont``: one soundfont for every song instead of the per-song draw. Writes the stems, the dry
    mix and ``song.json`` last, so a folder with a song.json is complete.
    """
    import soundfile as sf

    fallback = Path(soundfont) if soundfont is not None else SOUNDFONT
    if not have_fluidsynth(fallback):
        raise RuntimeError(f"generating needs the fluidsynth program and the soundfont {fallback}")
    plan = compose_song(seed, seconds, genre, n_stems, realism="full")
    rng = np.random.default_rng([int(seed), 5])
    sf_path = choose_soundfont(rng, fallback)
    if soundfont is not None:
        sf_path = fallback
    kit = choose_kit(rng, plan.genre, _kits())
    kit_rng = np.random.default_rng([int(seed), 6])
    song_dir = Path(out_dir) / (song_id or f"seed_{int(seed)}")
    song_dir.mkdir(parents=True, exist_ok=True)
    for old in [song_dir / "song.json", *song_dir.glob("*.flac")]:  # no stale stems from an earlier run
        old.unlink(missing_ok=True)
    n = int(round(plan.seconds * sample_rate))
    audio: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    stereo: dict[str, str | None] = {}
    flip = 1.0 if rng.random() < 0.5 else -1.0
    with tempfile.TemporaryDirectory(prefix="synth_") as tmp_name:
        tmp = Path(tmp_name)
        for part in plan.parts:
            from_kit = part.is_drum and _kit_covers(kit, part)
            if from_kit and part.stereo == "overheads":
                cym = np.zeros((n, 2))
                by_note: dict[int, list] = {}
                for h in _hits(part, plan):
                    by_note.setdefault(h[1], []).append(h)
                for note in sorted(by_note):
                    x = hydrogen.render_hits(kit, by_note[note], n, sample_rate, kit_rng).mean(axis=1)
                    cym += _place(x, flip * PIECE_PAN.get(note, 0.3), sample_rate, 0.8)
                audio[part.name], stereo[part.name] = cym, "overheads"
            elif from_kit:
                x = hydrogen.render_hits(kit, _hits(part, plan), n, sample_rate, kit_rng)
                if part.stereo == "wide" and np.sum((x[:, 0] - x[:, 1]) ** 2) > 0.01 * np.sum(x ** 2):
                    audio[part.name], stereo[part.name] = x, "native"
                else:
                    audio[part.name], stereo[part.name] = x.mean(axis=1), None
            elif part.stereo == "overheads":
                path = tmp / f"{part.name}.mid"
                part_to_midi(part, plan).save(str(path))
                audio[part.name] = _fit(render_midi(path, sample_rate, sf_path), n, sample_rate)
                stereo[part.name] = "overheads"
            else:
                audio[part.name], stereo[part.name] = _render_part(part, plan, tmp, sample_rate, sf_path)
            source[part.name] = f"hydrogen:{kit.name}" if from_kit else f"fluidsynth:{sf_path.name}"

    # the kit as microphones hear it: bleed between close mics, the whole kit in the overheads
    roles = {p.name: p.role for p in plan.parts}
    close = {roles[name]: audio[name] for name in audio
             if roles[name] in CLOSE_MICS and audio[name].ndim == 1}
    bleed_info: dict[str, list[dict]] = {}
    if close and rng.random() < BLEED_PROB:
        wet, bleed_info = add_bleed(close, rng, sample_rate)
        for name in audio:
            if roles[name] in wet and audio[name].ndim == 1:
                audio[name] = wet[roles[name]]
    overhead_info: dict[str, float] = {}
    for part in plan.parts:
        if stereo.get(part.name) == "overheads":
            oh = audio[part.name]
            cym_peak = float(np.max(np.abs(oh))) or 1.0
            for piece, x in sorted(close.items()):
                db = float(rng.uniform(*OVERHEAD_KIT_DB))
                xp = x * (10 ** (db / 20) * cym_peak / max(float(np.max(np.abs(x))), 1e-9))
                oh = oh + _place(_delay(xp, int(round(float(rng.uniform(2.0, 6.0)) * 1e-3 * sample_rate))),
                                 flip * PIECE_PAN[piece], sample_rate, 0.8)
                overhead_info[piece] = round(db, 2)
            audio[part.name] = oh

    stems_meta = []
    written: list[Path] = []
    for part in plan.parts:
        x = audio[part.name]
        peak = float(np.max(np.abs(x)))
        if peak < 1e-5:  # nothing audible inside the song: leave it out
            continue
        level_db = float(rng.uniform(*PEAK_DBFS))
        x = x * (10 ** (level_db / 20) / peak)
        di = _is_di(part, kit, source[part.name].startswith("hydrogen"))
        snr = float(rng.uniform(*(SNR_DI_DB if di else SNR_MIC_DB)))
        hum = float(rng.choice([50.0, 60.0])) if rng.random() < HUM_PROB else None
        channels = 1 if x.ndim == 1 else 2
        x = x + noise_floor(n, channels, 10 ** ((level_db - snr) / 20), sample_rate, rng, hum)
        path = song_dir / f"{part.name}.flac"
        sf.write(str(path), x, sample_rate, subtype=subtype, format="FLAC")
        written.append(path)
        stems_meta.append({
            "name": part.name, "file": path.name, "role": part.role, "slot": part.slot,
            "instrument": part.instrument, "program": part.program, "bank": 128 if part.is_drum else 0,
            "is_drum": part.is_drum, "channels": channels, "stereo": stereo[part.name],
            "width": round(part.width, 3) if stereo[part.name] else None,
            "peak_dbfs": round(20 * math.log10(float(np.max(np.abs(x)))), 2),
            "lufs": _lufs(x, sample_rate), "n_notes": len(part.notes), "source": source[part.name],
            "noise_dbfs": round(level_db - snr, 2), "hum_hz": hum,
            "bleed": bleed_info.get(part.role, []) if x.ndim == 1 and part.role in close else [],
            "overhead_kit_db": overhead_info if stereo[part.name] == "overheads" else None,
        })
    mix_meta = None
    if dry_mix and written:
        total = np.zeros((n, 2))
        for path in written:
            y, _ = sf.read(str(path), dtype="float64", always_2d=True)
            total += y if y.shape[1] == 2 else np.repeat(y, 2, axis=1)
        gain_db = DRY_MIX_PEAK_DBFS - 20 * math.log10(max(float(np.max(np.abs(total))), 1e-9))
        sf.write(str(song_dir / "mix.flac"), total * 10 ** (gain_db / 20), sample_rate, subtype="PCM_16",
                 format="FLAC")
        mix_meta = {"file": "mix.flac", "gain_db": round(gain_db, 6), "subtype": "PCM_16"}
    bar_s = plan.bar_seconds
    meta = {
        "format": FORMAT_VERSION, "realism": "full", "seed": int(seed), "song_id": song_dir.name,
        "genre": plan.genre, "tempo_bpm": plan.tempo_bpm, "beats_per_bar": plan.beats_per_bar,
        "key": plan.key, "key_pc": plan.key_pc, "mode": plan.mode, "density": round(plan.density, 3),
        "swing": round(plan.swing, 3), "progressions": [list(p) for p in plan.progressions],
        "section_variants": plan.section_variants,
        "sections": [{"label": label, "bar": start, "bars": bars, "start_s": round(start * bar_s, 3),
                      "end_s": round(min((start + bars) * bar_s, plan.seconds), 3)}
                     for label, start, bars in plan.sections],
        "seconds": plan.seconds, "sample_rate": int(sample_rate), "n_samples": n, "subtype": subtype,
        "soundfont": sf_path.name,
        "drum_kit": {"program": plan.kit, "name": KITS[plan.kit], "hydrogen": kit.name if kit else None},
        "bleed": bool(bleed_info), "dry_mix": mix_meta, "stems": stems_meta,
    }
    tmp_json = song_dir / "song.json.tmp"
    tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
    tmp_json.replace(song_dir / "song.json")
    return song_dir


__all__ = ["BLEED_DB", "BLEED_DELAY_MS", "BLEED_FROM", "BLEED_PROB", "PEAK_DBFS", "SOUNDFONTS", "add_bleed",
           "choose_kit", "choose_soundfont", "generate_real_song", "noise_floor"]
