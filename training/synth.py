"""Synthetic multitracks made like Slakh2100: procedural MIDI songs rendered per instrument.

A song is composed from a genre preset (tempo, mode, chord progressions, drum/bass/chord styles and
instrument choices), written as one General MIDI file per stem (drum pieces split into kick, snare, hats,
toms, cymbals and percussion, all on the GM drum channel), rendered *dry* (reverb and chorus off) with the
``fluidsynth`` command-line program and a GM soundfont, trimmed to the song length and stored at a random
recording level::

    OUT_DIR/<song_id>/<stem>.flac      mono, or stereo for wide / double-tracked parts
    OUT_DIR/<song_id>/song.json        seed, genre, tempo, key, stems (program, level, channels, ...)

Everything is a function of the seed: composing uses only ``numpy.random.Generator`` streams derived from
it, and FluidSynth's float renderer is sample-exact from run to run, so the same seed gives byte-identical
FLAC files. Composing (:func:`compose_song`) needs neither FluidSynth nor mido; writing MIDI needs mido;
rendering needs the ``fluidsynth`` binary and the soundfont (:func:`have_fluidsynth`).

:func:`reference_mix` turns a song's stems into a plain stereo mix (random but musical levels and pans,
loudness-normalised, true-peak safe); with ``master=True`` it adds a mastering-style tonal tilt and bus
compression. Command line::

    python -m training.synth generate OUT_DIR --songs N --seed S [--seconds 30] [--sample-rate 44100]
                                      [--jobs 2] [--genre GENRE] [--bits 24]
    python -m training.synth demo assets/demo
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SOUNDFONT = Path(os.environ.get("STYLEMIX_SOUNDFONT", "/usr/share/sounds/sf2/FluidR3_GM.sf2"))
FLUIDSYNTH = os.environ.get("STYLEMIX_FLUIDSYNTH", "fluidsynth")
FORMAT_VERSION = 1

TICKS_PER_BEAT = 480
STEP = TICKS_PER_BEAT // 4  # one sixteenth note, in ticks
DRUM_CHANNEL = 9  # GM channel 10
BARS_PER_SECTION = 4
RECORDING_PEAK_DBFS = (-30.0, -6.0)  # random recording level of each stem (sample peak)
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

MODES: dict[str, tuple[int, ...]] = {
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
}

# Chord progressions as 0-based scale degrees, one chord per bar; only degrees whose triad is major or
# minor in that mode (no diminished chords).
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "ionian": ((0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 0, 4), (0, 1, 3, 4),
               (0, 5, 1, 4), (3, 4, 0, 0)),
    "mixolydian": ((0, 6, 3, 0), (0, 3, 6, 3), (0, 6, 0, 3), (0, 3, 0, 6)),
    "aeolian": ((0, 5, 2, 6), (0, 6, 5, 6), (0, 5, 6, 0), (0, 3, 5, 4), (0, 3, 6, 2), (5, 6, 0, 0)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 1, 0, 1), (0, 3, 6, 0)),
    "phrygian": ((0, 1, 0, 1), (0, 1, 2, 1), (0, 5, 1, 0), (0, 6, 5, 1)),
    "lydian": ((0, 1, 0, 1), (0, 1, 4, 0), (0, 1, 5, 4)),
}
JAZZ_PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "ionian": ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4), (0, 3, 1, 4)),
    "dorian": ((0, 3, 0, 3), (0, 0, 3, 3), (0, 1, 0, 3)),
}

# Pitch ranges (MIDI notes, inclusive) of the pitched roles; every generated note lies inside.
ROLE_RANGES: dict[str, tuple[int, int]] = {
    "bass": (28, 55),
    "chords": (40, 86),
    "pad": (40, 86),
    "lead": (55, 96),
    "voice": (50, 81),
    "arp": (55, 96),
}
# GM drum notes that each drum stem may contain.
DRUM_NOTES: dict[str, frozenset[int]] = {
    "kick": frozenset({35, 36}),
    "snare": frozenset({37, 38, 39, 40}),
    "hats": frozenset({42, 44, 46}),
    "toms": frozenset({41, 43, 45, 47, 48, 50}),
    "cymbals": frozenset({49, 51, 52, 53, 55, 57, 59}),
    "percussion": frozenset({54, 56, 60, 61, 62, 63, 64, 69, 70, 75}),
}
DRUM_ROLES = tuple(DRUM_NOTES)
PITCHED_ROLES = tuple(ROLE_RANGES)
KITS = {0: "standard", 8: "room", 16: "power", 24: "electronic", 25: "tr808", 32: "jazz", 40: "brush"}

GM_SLUGS = {
    0: "piano", 1: "bright_piano", 4: "rhodes", 5: "epiano", 8: "celesta", 10: "music_box", 11: "vibes",
    12: "marimba", 16: "organ", 17: "perc_organ", 18: "rock_organ", 22: "harmonica", 24: "nylon_guitar",
    25: "steel_guitar", 26: "jazz_guitar", 27: "clean_guitar", 28: "muted_guitar", 29: "overdrive_guitar",
    30: "distortion_guitar", 32: "upright", 33: "finger", 34: "pick", 35: "fretless", 36: "slap", 37: "slap2",
    38: "synth", 39: "synth2", 40: "violin", 46: "harp", 48: "strings", 49: "slow_strings",
    50: "synth_strings", 52: "choir_aahs", 53: "oohs", 54: "synth_choir", 56: "trumpet", 61: "brass",
    62: "synth_brass", 65: "alto_sax", 68: "oboe", 73: "flute", 80: "square", 81: "saw", 84: "charang",
    85: "vox_lead", 87: "bass_lead", 88: "new_age_pad", 89: "warm_pad", 90: "polysynth", 91: "choir_pad",
    92: "bowed_pad", 94: "halo_pad", 95: "sweep_pad", 98: "crystal",
}
GUITARS = frozenset(range(24, 32))
DISTORTED = frozenset({29, 30})
# Comfortable centre pitch of each lead instrument (the lead range is clipped to ROLE_RANGES["lead"]).
LEAD_CENTRE = {22: 67, 29: 67, 30: 67, 40: 74, 56: 70, 61: 66, 62: 66, 65: 68, 68: 72, 73: 77, 80: 72,
               81: 70, 84: 69, 87: 67}


@dataclass(frozen=True)
class Genre:
    """Preset of tempo, harmony, groove styles and instrument choices for one genre."""

    name: str
    tempo_bpm: tuple[int, int]
    modes: tuple[tuple[str, float], ...]  # (mode, probability)
    kits: tuple[int, ...]  # GM drum kits (bank 128 presets)
    drums: str  # drum groove style
    bass: str  # bass line style
    chords: tuple[str, str]  # chord styles of the first and second chord instrument
    swing: tuple[float, float]  # 0 = straight, 1 = full triplet feel
    swing_unit: int  # 2: swung eighths, 4: swung sixteenths
    waltz: float  # probability of 3/4
    sevenths: bool
    programs: dict[str, tuple[int, ...]]  # pitched role -> GM programs to choose from
    percussion: tuple[str, ...]  # percussion pattern kinds
    weights: dict[str, float] = field(default_factory=dict)  # optional stem slot -> pick weight


GENRES: dict[str, Genre] = {
    "rock": Genre(
        "rock", (100, 150), (("ionian", 0.4), ("mixolydian", 0.3), ("aeolian", 0.3)), (0, 8, 16),
        "rock", "rock", ("strum", "sustain"), (0.0, 0.0), 4, 0.0, False,
        {"bass": (33, 34), "chords": (29, 30, 27, 25, 0, 18), "pad": (48, 89, 16),
         "lead": (30, 81, 61, 29), "voice": (52, 53), "arp": (25, 27)},
        ("tambourine", "shaker", "cowbell"), {"arp": 0.3, "voice2": 0.5}),
    "pop": Genre(
        "pop", (88, 128), (("ionian", 0.6), ("aeolian", 0.3), ("lydian", 0.1)), (0, 8, 24),
        "pop", "pop", ("pop", "arpeggio"), (0.0, 0.2), 4, 0.0, False,
        {"bass": (33, 38, 34), "chords": (0, 4, 27, 24, 90), "pad": (48, 49, 89, 88, 94),
         "lead": (80, 81, 73, 61, 65, 40), "voice": (52, 53, 54), "arp": (8, 11, 12, 98, 46)},
        ("shaker", "tambourine", "claves"), {}),
    "funk": Genre(
        "funk", (92, 120), (("dorian", 0.5), ("mixolydian", 0.3), ("aeolian", 0.2)), (0, 8),
        "funk", "funk", ("stabs", "sustain"), (0.1, 0.35), 4, 0.0, True,
        {"bass": (36, 37, 33, 38), "chords": (28, 27, 4, 16, 17), "pad": (48, 50, 89),
         "lead": (61, 62, 65, 56, 80), "voice": (52, 53, 54), "arp": (11, 12)},
        ("congas", "cowbell", "tambourine", "bongos"), {"arp": 0.3}),
    "electronic": Genre(
        "electronic", (118, 140), (("aeolian", 0.5), ("dorian", 0.2), ("ionian", 0.2), ("phrygian", 0.1)),
        (24, 25), "electronic", "electronic", ("offbeat", "sustain"), (0.0, 0.2), 4, 0.0, False,
        {"bass": (38, 39, 87), "chords": (90, 81, 5, 80), "pad": (89, 90, 91, 94, 95, 88, 50),
         "lead": (80, 81, 87, 84), "voice": (54, 53, 85), "arp": (81, 80, 98, 8, 10)},
        ("shaker", "claves", "tambourine"), {"arp": 2.0, "toms": 0.4}),
    "ballad": Genre(
        "ballad", (70, 92), (("ionian", 0.6), ("aeolian", 0.4)), (0, 8, 40),
        "ballad", "ballad", ("arpeggio", "sustain"), (0.0, 0.1), 4, 0.3, False,
        {"bass": (33, 35, 32), "chords": (0, 1, 4, 24, 25), "pad": (48, 49, 89, 88, 92),
         "lead": (73, 40, 68, 65, 56), "voice": (52, 53), "arp": (46, 8, 10, 11)},
        ("shaker", "tambourine"), {"pad": 2.0, "percussion": 0.5, "percussion2": 0.2}),
    "jazz": Genre(
        "jazz", (100, 160), (("ionian", 0.6), ("dorian", 0.4)), (32, 40),
        "jazz", "walking", ("comp", "comp"), (0.6, 1.0), 2, 0.15, True,
        {"bass": (32, 33), "chords": (0, 26, 16, 4, 11), "pad": (48, 49), "lead": (56, 65, 73, 40),
         "voice": (52, 53), "arp": (11,)},
        ("bongos", "shaker"),
        {"pad": 0.4, "voice": 0.3, "voice2": 0.2, "arp": 0.0, "percussion": 0.2, "percussion2": 0.0}),
}

CORE_SLOTS = ("kick", "snare", "bass", "chords")
OPTIONAL_SLOTS = ("hats", "cymbals", "toms", "percussion", "percussion2", "pad", "pad2", "lead", "lead2",
                  "voice", "voice2", "arp", "chords2")
SLOT_WEIGHT = {"hats": 12.0, "cymbals": 2.0, "toms": 1.5, "percussion": 1.2, "percussion2": 0.6, "pad": 1.5,
               "pad2": 0.6, "lead": 2.0, "lead2": 0.8, "voice": 1.0, "voice2": 0.5, "arp": 0.8,
               "chords2": 1.0}
SLOT_NEEDS = {"pad2": "pad", "lead2": "lead", "voice2": "voice", "percussion2": "percussion"}
# Probability that a stem of this role is stereo (wide native render or a double-tracked pair).
STEREO_PROB = {"pad": 0.8, "chords": 0.45, "arp": 0.35, "voice": 0.45, "cymbals": 0.35, "percussion": 0.2,
               "lead": 0.1}
MAX_STEMS = 16
MIN_STEMS = 4


@dataclass(frozen=True)
class Note:
    """One note: start and length in ticks (``TICKS_PER_BEAT`` per quarter note), MIDI pitch, velocity."""

    start: int
    length: int
    pitch: int
    velocity: int


@dataclass
class Part:
    """One instrument of a song, i.e. one stem."""

    name: str  # stem (file) name
    slot: str  # arrangement slot, e.g. "lead2"
    role: str  # kick/snare/hats/toms/cymbals/percussion or bass/chords/pad/lead/voice/arp
    program: int  # GM program, or the drum kit number for drum parts
    instrument: str
    is_drum: bool
    stereo: str = "mono"  # "mono", "wide" (native stereo render) or "double" (two takes panned apart)
    width: float = 0.0
    detune_cents: float = 0.0  # spread between the two takes of a stereo part
    notes: list[Note] = field(default_factory=list)
    notes_b: list[Note] = field(default_factory=list)  # second take (stereo non-drum parts)


@dataclass
class SongPlan:
    """Everything needed to write the MIDI files of a song; a pure function of (seed, seconds, genre)."""

    seed: int
    genre: str
    seconds: float
    tempo_bpm: int
    beats_per_bar: int
    key_pc: int
    mode: str
    density: float
    swing: float
    kit: int
    progressions: tuple[tuple[int, ...], tuple[int, ...]]
    section_variants: list[int]
    n_bars: int
    parts: list[Part]

    @property
    def key(self) -> str:
        return NOTE_NAMES[self.key_pc]

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.tempo_bpm


# --------------------------------------------------------------------------------------------------
# Composition (pure numpy, no external programs)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    """Shared state while composing one song."""

    rng: np.random.Generator
    genre: Genre
    seconds: float
    tempo_bpm: int
    bpb: int  # beats per bar
    key_pc: int
    mode: str
    density: float
    sevenths: bool
    n_bars: int
    n_full_bars: int  # bars that lie entirely inside the song
    variants: list[int]  # groove/progression variant per section
    chords: list[tuple[int, ...]]  # pitch classes per bar, root first
    active: dict[str, np.ndarray] = field(default_factory=dict)  # slot -> bool per bar

    @property
    def bar_steps(self) -> int:
        return 4 * self.bpb

    @property
    def bar_ticks(self) -> int:
        return self.bpb * TICKS_PER_BEAT

    @property
    def n_sections(self) -> int:
        return len(self.variants)

    def variant(self, bar: int) -> int:
        return self.variants[bar // BARS_PER_SECTION]

    def scale(self, lo: int, hi: int) -> list[int]:
        degrees = {(self.key_pc + i) % 12 for i in MODES[self.mode]}
        return [p for p in range(lo, hi + 1) if p % 12 in degrees]

    def fill_bars(self) -> list[int]:
        """Bar that ends each section with a fill: the section's last bar that fits inside the song."""
        out = []
        for s in range(self.n_sections):
            start, end = s * BARS_PER_SECTION, min((s + 1) * BARS_PER_SECTION, self.n_bars)
            last = min(end, max(self.n_full_bars, 1)) - 1
            out.append(last if last >= start else end - 1)
        return out


def _pick(rng: np.random.Generator, options: Sequence, p: Sequence[float] | None = None):
    if p is not None:
        p = np.asarray(p, dtype=float)
        p = p / p.sum()
    return options[int(rng.choice(len(options), p=p))]


def _chord_pcs(key_pc: int, mode: str, degree: int, seventh: bool) -> tuple[int, ...]:
    scale = MODES[mode]
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    return tuple((key_pc + scale[(degree + k) % 7] + 12 * ((degree + k) // 7)) % 12 for k in steps)


def _in_range(pcs: Sequence[int], lo: int, hi: int) -> list[int]:
    wanted = {pc % 12 for pc in pcs}
    return [p for p in range(lo, hi + 1) if p % 12 in wanted]


def _nearest(pitches: Sequence[int], target: float) -> int:
    return min(pitches, key=lambda p: (abs(p - target), p))


def _lowest(pc: int, lo: int) -> int:
    return lo + (pc - lo) % 12


def _voicing(pcs: Sequence[int], target: float, lo: int, hi: int) -> list[int]:
    """Close voicing of the chord (every inversion considered) whose mean pitch is nearest ``target``."""
    best: list[int] = []
    best_cost = math.inf
    for inv in range(len(pcs)):
        order = list(pcs[inv:]) + list(pcs[:inv])
        for base in range(lo, hi - 11):
            if base % 12 != order[0] % 12:
                continue
            notes = [base]
            for pc in order[1:]:
                notes.append(notes[-1] + 1 + (pc - notes[-1] - 1) % 12)
            if notes[-1] > hi:
                continue
            cost = abs(float(np.mean(notes)) - target)
            if cost < best_cost:
                best, best_cost = notes, cost
    return best


def _humanise(notes: list[Note], ctx: _Ctx, rng: np.random.Generator, timing_ms: float,
              velocity_sd: float, swing: float, swing_unit: int) -> list[Note]:
    """Swing the off-beats, then jitter timing (Gaussian, in ms) and velocity."""
    ms_to_ticks = TICKS_PER_BEAT * ctx.tempo_bpm / 60000.0
    unit = TICKS_PER_BEAT // swing_unit  # grid of the swung notes
    shift = int(round(swing * unit / 3.0))  # full swing moves the off-beat to the last triplet
    out = []
    for n in notes:
        start = n.start
        if shift and start % (2 * unit) == unit:
            start += shift
        start += int(round(rng.normal(0.0, timing_ms) * ms_to_ticks))
        end = n.start + n.length + (shift if shift and n.start % (2 * unit) == unit else 0)
        vel = int(np.clip(round(n.velocity + rng.normal(0.0, velocity_sd)), 1, 127))
        start = max(start, 0)
        out.append(Note(start, max(end - start, 30), n.pitch, vel))
    return _clean(out)


def _clean(notes: list[Note]) -> list[Note]:
    """Sort, and shorten notes so that two notes of the same pitch never overlap."""
    notes = sorted(notes, key=lambda n: (n.start, n.pitch))
    last: dict[int, int] = {}  # pitch -> index in out
    out: list[Note] = []
    for n in notes:
        i = last.get(n.pitch)
        if i is not None:
            prev = out[i]
            if prev.start == n.start:  # duplicate onset: keep the louder one
                if n.velocity > prev.velocity:
                    out[i] = Note(prev.start, n.length, n.pitch, n.velocity)
                continue
            if prev.start + prev.length > n.start:
                out[i] = Note(prev.start, max(n.start - prev.start - 5, 10), prev.pitch, prev.velocity)
        last[n.pitch] = len(out)
        out.append(n)
    return out


# ----- drums ----------------------------------------------------------------------------------------

Hit = tuple[int, int, int]  # (sixteenth step in bar, GM note, velocity)


def _groove(ctx: _Ctx, variant: int, rng: np.random.Generator) -> dict[str, list[Hit]]:
    """One bar of drum pattern per drum role for a section variant (0 = verse-like, 1 = chorus-like)."""
    style, d, n = ctx.genre.drums, ctx.density, ctx.bar_steps
    eighths, sixteenths = list(range(0, n, 2)), list(range(n))
    g: dict[str, list[Hit]] = {"kick": [], "snare": [], "hats": [], "cymbals": []}
    if n == 12:  # waltz: ballad or jazz
        g["kick"] = [(0, 36, 100)]
        if style == "jazz":
            g["cymbals"] = [(0, 51, 80), (4, 51, 88), (6, 51, 60), (8, 51, 84)]
            g["hats"] = [(4, 44, 70), (8, 44, 66)]
            g["snare"] = [(s, 38, int(rng.integers(35, 70))) for s in eighths if rng.random() < 0.15]
            g["snare"] = g["snare"] or [(n - 2, 38, 70)]
        else:
            snare_note = 37 if variant == 0 else 38
            g["snare"] = [(4, snare_note, 70), (8, snare_note, 75)]
            g["hats"] = [(s, 42, 70 if s % 4 == 0 else 50) for s in eighths]
        return g
    hat_16 = d > 0.75
    if style in ("rock", "pop"):
        kicks = [(0, 8), (0, 8, 10), (0, 6, 8), (0, 3, 8, 10), (0, 7, 8, 10), (0, 8, 11), (0, 6, 8, 14)]
        g["kick"] = [(s, 36, 110 if s in (0, 8) else 95) for s in _pick(rng, kicks)]
        snare_note = 38 if style == "rock" or rng.random() < 0.6 else 39
        g["snare"] = [(4, snare_note, 112), (12, snare_note, 115)]
        if d > 0.6:
            g["snare"] += [(s, 38, int(rng.integers(28, 45))) for s in sixteenths
                           if s % 4 and rng.random() < 0.08]
        grid = sixteenths if hat_16 else eighths
        g["hats"] = [(s, 42, 95 if s % 4 == 0 else 70) for s in grid]
        if variant == 1 and rng.random() < 0.5:
            g["cymbals"] = [(s, 51, 85 if s % 4 == 0 else 65) for s in eighths]
    elif style == "funk":
        kicks = [(0, 3, 10), (0, 6, 10, 13), (0, 3, 7, 10), (0, 10, 14), (0, 2, 7, 10)]
        g["kick"] = [(s, 36, 110 if s == 0 else 95) for s in _pick(rng, kicks)]
        g["snare"] = [(4, 38, 115), (12, 38, 115)]
        g["snare"] += [(s, 38, int(rng.integers(25, 45))) for s in sixteenths
                       if s % 2 and rng.random() < 0.1 + 0.3 * d]
        open_at = _pick(rng, [14, 6, -1])
        g["hats"] = [(s, 46 if s == open_at else 42, 90 if s % 2 == 0 else 55) for s in sixteenths]
    elif style == "electronic":
        kicks = [(0, 4, 8, 12)] * 3 + [(0, 6, 10), (0, 3, 8, 10)]
        g["kick"] = [(s, 36, 115) for s in _pick(rng, kicks)]
        g["snare"] = [(4, 39, 110), (12, 39, 110)]
        g["hats"] = [(s, 46, 90) for s in (2, 6, 10, 14)]
        if d > 0.4 or variant == 1:
            g["hats"] += [(s, 42, 75 if s % 2 == 0 else 50) for s in sixteenths if s % 4 != 2]
    elif style == "ballad":
        g["kick"] = [(s, 36, 100) for s in _pick(rng, [(0,), (0, 10), (0, 6)])]
        g["snare"] = [(8, 37, 75)] if variant == 0 else [(8, 38, 100)]
        g["hats"] = [(s, 42, 65 if s % 4 == 0 else 45) for s in eighths]
        if variant == 1:
            g["cymbals"] = [(s, 51, 60) for s in (0, 4, 8, 12)]
    else:  # jazz: ride cymbal time, hi-hat pedal on 2 and 4, feathered kick, comping snare
        g["cymbals"] = [(0, 51, 80), (4, 51, 90), (6, 51, 60), (8, 51, 82), (12, 51, 90), (14, 51, 60)]
        g["hats"] = [(4, 44, 72), (12, 44, 72)]
        g["kick"] = [(s, 36, int(rng.integers(25, 38))) for s in (0, 4, 8, 12)]
        g["kick"] += [(s, 36, 75) for s in eighths if s % 4 and rng.random() < 0.1]
        g["snare"] = [(s, 38, int(rng.integers(35, 75))) for s in eighths if rng.random() < 0.15]
    if not g["snare"]:  # sparse comping drew nothing: one accent on the last off-beat
        g["snare"] = [(n - 2, 38, 70)]
    return g


def _percussion(kind: str, n: int, rng: np.random.Generator, density: float) -> list[Hit]:
    if kind == "shaker":
        return [(s, 70, 80 if s % 2 == 0 else 55) for s in range(n)]
    if kind == "tambourine":
        if rng.random() < 0.5:
            return [(s, 54, 85 if s % 4 == 2 else 60) for s in range(0, n, 2)]
        return [(s, 54, 95) for s in range(4, n, 8)]
    if kind == "congas":
        pattern = [(0, 64), (3, 63), (4, 62), (6, 63), (7, 63), (8, 64), (10, 62), (12, 62), (14, 63),
                   (15, 63)]
        return [(s, p, 90 if p == 63 else 70) for s, p in pattern
                if s < n and (density > 0.5 or s % 2 == 0)]
    if kind == "bongos":
        return [(s, 60 if (s // 2) % 2 == 0 else 61, 80 if s % 4 == 0 else 60) for s in range(0, n, 2)]
    if kind == "cowbell":
        return [(s, 56, 85) for s in range(0, n, 4)]
    return [(s, 75, 90) for s in (0, 6, 12) if s < n]  # claves


def _fill(ctx: _Ctx, rng: np.random.Generator) -> tuple[int, list[Hit], list[Hit]]:
    """A tom fill at the end of a bar: (first step, tom hits, snare hits)."""
    n = ctx.bar_steps
    length = 8 if (ctx.density > 0.5 and rng.random() < 0.5) else 4
    start = n - length
    toms = [50, 48, 47, 45, 43, 41]
    first = int(rng.integers(0, 3))
    tom_hits, snare_hits = [], []
    for i, s in enumerate(range(start, n)):
        if i < length // 2 and rng.random() < 0.3:
            snare_hits.append((s, 38, int(rng.integers(80, 110))))
        else:
            pitch = toms[min(first + (i * 4) // length, len(toms) - 1)]
            tom_hits.append((s, pitch, int(rng.integers(85, 118))))
    return start, tom_hits, snare_hits


def _drum_notes(ctx: _Ctx, slots: Sequence[str], perc_kinds: dict[str, str]) -> dict[str, list[Note]]:
    rng = ctx.rng
    grooves = [_groove(ctx, v, rng) for v in (0, 1)]
    perc = {slot: [_percussion(kind, ctx.bar_steps, rng, ctx.density) for _ in (0, 1)]
            for slot, kind in perc_kinds.items()}
    fill_bars = set(ctx.fill_bars())
    out: dict[str, list[Note]] = {s: [] for s in slots}
    length = STEP // 2

    def add(slot: str, bar: int, hits: Sequence[Hit], until: int | None = None) -> None:
        if slot not in out or not ctx.active[slot][bar]:
            return
        for step, pitch, vel in hits:
            if until is None or step < until:
                out[slot].append(Note(bar * ctx.bar_ticks + step * STEP, length, pitch, vel))

    for bar in range(ctx.n_bars):
        v = ctx.variant(bar)
        g = grooves[v]
        cut = None
        if bar in fill_bars and "toms" in out and ctx.active["toms"][bar]:
            cut, tom_hits, snare_hits = _fill(ctx, rng)
            add("toms", bar, tom_hits)
            add("snare", bar, snare_hits)
        for role in ("kick", "snare", "hats"):
            add(role, bar, g[role], cut)
        add("cymbals", bar, g["cymbals"], cut)
        if bar % BARS_PER_SECTION == 0 or (bar - 1) in fill_bars:
            add("cymbals", bar, [(0, int(_pick(rng, [49, 57])), int(rng.integers(95, 118)))])
        for slot in perc:
            add(slot, bar, perc[slot][v], cut)
    return out


# ----- pitched parts ---------------------------------------------------------------------------------


def _bass_notes(ctx: _Ctx, rng: np.random.Generator) -> list[Note]:
    lo, hi = ROLE_RANGES["bass"]
    style, n, d = ctx.genre.bass, ctx.bar_steps, ctx.density
    rhythms = {
        "pop": [(0, 6, 8, 14), (0, 3, 8, 11), (0, 8), (0, 4, 8, 12), (0, 6, 10), (0, 8, 10, 14)],
        "funk": [(0, 3, 6, 8, 10, 11, 14), (0, 2, 3, 7, 10, 12, 15), (0, 6, 7, 10, 13, 14),
                 (0, 3, 5, 8, 11, 14)],
    }
    per_variant = [_pick(rng, rhythms.get(style, [(0,)])) for _ in (0, 1)]
    electronic_kind = [_pick(rng, ["offbeat", "rolling", "sustain"]) for _ in (0, 1)]
    notes: list[Note] = []
    scale = ctx.scale(lo, hi)
    for bar in range(ctx.n_bars):
        if not ctx.active["bass"][bar]:
            continue
        pcs = ctx.chords[bar]
        nxt = ctx.chords[bar + 1] if bar + 1 < len(ctx.chords) else pcs
        root = _lowest(pcs[0], lo)  # E1..Eb2
        fifth = root + 7
        t0 = bar * ctx.bar_ticks
        steps: list[tuple[int, int, int, int]] = []  # (step, length in steps, pitch, velocity)
        if n == 12:  # waltz
            if style == "walking":
                third = root + 12 if rng.random() < 0.4 else fifth
                steps = [(0, 4, root, 95), (4, 4, fifth, 80), (8, 4, third, 80)]
            else:
                steps = [(0, 8, root, 95), (8, 4, fifth, 80)] if rng.random() < 0.5 else [(0, 12, root, 95)]
        elif style == "rock":
            grid = range(0, n, 2) if d > 0.35 else range(0, n, 4)
            for s in grid:
                pitch = root + 12 if rng.random() < 0.08 else root
                steps.append((s, 2 if d > 0.35 else 4, pitch, 100 if s % 4 == 0 else 85))
            if rng.random() < 0.4:
                s, ln, _, vel = steps[-1]
                steps[-1] = (s, ln, _nearest(_in_range([nxt[0] + 2, nxt[0] - 1], lo, hi), root), vel)
        elif style in ("pop", "funk"):
            rhythm = per_variant[ctx.variant(bar)]
            for i, s in enumerate(rhythm):
                end = rhythm[i + 1] if i + 1 < len(rhythm) else n
                r = rng.random()
                pitch = root if i == 0 or r < 0.55 else \
                    (root + 12 if r < 0.75 else (fifth if r < 0.9 else root + 10))
                ln = end - s if style == "pop" else min(end - s, int(rng.integers(1, 3)))
                vel = 100 if i == 0 else int(rng.integers(75, 100))
                if style == "funk" and i and rng.random() < 0.15:
                    vel = 40  # ghost note
                steps.append((s, ln, pitch, vel))
        elif style == "electronic":
            kind = electronic_kind[ctx.variant(bar)]
            if kind == "offbeat":
                steps = [(s, 1, root + 12 if rng.random() < 0.15 else root, 100) for s in (2, 6, 10, 14)]
            elif kind == "rolling":
                steps = [(s, 1, root, 95 if s % 2 else 80) for s in range(n) if s % 4]
            else:
                steps = [(0, 12, root, 105), (12, 4, root + 12 if rng.random() < 0.5 else fifth, 95)]
        elif style == "ballad":
            steps = [(0, 8, root, 90), (8, 8, fifth if rng.random() < 0.5 else root, 80)]
            if d < 0.4:
                steps = [(0, 16, root, 90)]
        else:  # walking quarters
            target = _nearest(_in_range([nxt[0]], lo, hi), root + 5)
            pitch = _nearest(_in_range([pcs[0]], lo, hi), notes[-1].pitch if notes else root + 5)
            beats = n // 4
            for b in range(beats):
                if b == beats - 1:  # chromatic or diatonic approach to the next root
                    pitch = target + (1 if rng.random() < 0.5 else -1)
                    if rng.random() < 0.4:
                        pitch = _nearest([p for p in scale if p != target], target)
                elif b > 0:
                    direction = 1 if target > pitch else -1
                    cand = [p for p in _in_range(pcs, lo, hi) + scale if 0 < (p - pitch) * direction <= 5]
                    pitch = _nearest(cand, pitch + 3 * direction) if cand else pitch - 2 * direction
                pitch = int(np.clip(pitch, lo, hi))
                steps.append((4 * b, 4, pitch, 95 if b % 2 == 0 else 85))
        for s, ln, pitch, vel in steps:
            pitch = int(np.clip(pitch, lo, hi))
            notes.append(Note(t0 + s * STEP, max(int(ln * STEP * 0.92), 40), pitch, vel))
    return notes


def _sustained(ctx: _Ctx, slot: str, voicings: list[list[int]], vel: int) -> list[Note]:
    """Hold each voicing for its bar; tie bars that repeat the same chord."""
    notes: list[Note] = []
    bar = 0
    while bar < ctx.n_bars:
        if not ctx.active[slot][bar]:
            bar += 1
            continue
        end = bar + 1
        while end < ctx.n_bars and ctx.active[slot][end] and voicings[end] == voicings[bar] \
                and end % BARS_PER_SECTION:
            end += 1
        length = (end - bar) * ctx.bar_ticks - 20
        notes += [Note(bar * ctx.bar_ticks, length, p, vel) for p in voicings[bar]]
        bar = end
    return notes


def _chord_notes(ctx: _Ctx, slot: str, program: int, style: str, rng: np.random.Generator) -> list[Note]:
    lo, hi = ROLE_RANGES["chords"]
    n = ctx.bar_steps
    centre = 62 if slot == "chords" else 68
    power = program in DISTORTED
    voicings = []
    for pcs in ctx.chords:
        if power:
            r = _lowest(pcs[0], 40)
            voicings.append([r, r + 7, r + 12])
        elif style == "comp" and len(pcs) == 4:  # rootless: 3rd, 5th, 7th, 9th
            ninth = (pcs[0] + 2) % 12
            voicings.append(_voicing([pcs[1], pcs[2], pcs[3], ninth], centre, lo, hi))
        else:
            voicings.append(_voicing(pcs, centre, lo, hi))
    if style == "sustain":
        return _sustained(ctx, slot, voicings, int(rng.integers(60, 85)))
    banks = {
        "pop": [(0, 6, 12), (0, 8), (0, 3, 6, 8, 11, 14), (0, 4, 8, 12), (0, 6, 8, 14)],
        "stabs": [(2, 6, 10, 14), (3, 6, 11, 14), (0, 3, 6, 10, 12, 15), (2, 7, 10, 15)],
        "offbeat": [(2, 6, 10, 14), (0, 3, 6, 10, 12), (2, 5, 10, 13)],
    }
    per_variant = [_pick(rng, banks.get(style, [(0,)])) for _ in (0, 1)]
    strum_kind = [_pick(rng, ["eighths", "whole", "pushes"]) for _ in (0, 1)]
    arp_shape = _pick(rng, [(0, 1, 2, 3, 2, 1), (0, 1, 2, 1), (0, 2, 1, 3)])
    notes: list[Note] = []
    for bar in range(ctx.n_bars):
        if not ctx.active[slot][bar]:
            continue
        t0, chord, v = bar * ctx.bar_ticks, voicings[bar], ctx.variant(bar)
        hits: list[tuple[int, int, int]] = []  # (step, length in steps, velocity)
        if n == 12 and style != "arpeggio":
            if style == "comp":
                hits = [(s, 2, int(rng.integers(50, 80))) for s in (0, 4, 6, 8) if rng.random() < 0.45]
            hits = hits or [(0, 4, 85), (4, 4, 65), (8, 4, 65)]
        elif style == "strum":
            kind = strum_kind[v]
            if kind == "eighths":
                hits = [(s, 1 if power else 2, 100 if s % 4 == 0 else 80) for s in range(0, n, 2)]
            elif kind == "whole":
                hits = [(0, n, 100)]
            else:
                hits = [(0, 6, 100), (6, 4, 95), (10, 6, 95)]
        elif style in banks:
            rhythm = per_variant[v]
            for i, s in enumerate(rhythm):
                end = rhythm[i + 1] if i + 1 < len(rhythm) else n
                ln = 1 if style == "stabs" else (2 if style == "offbeat" and end - s <= 4 else end - s)
                hits.append((s, ln, 95 if i == 0 else 80))
        elif style == "arpeggio":
            bass = _lowest(chord[0] % 12, 40)
            notes.append(Note(t0, ctx.bar_ticks - 20, bass, 80))
            ups = chord + [chord[0] + 12]
            rate = 2 if ctx.density > 0.3 else 4
            for k, s in enumerate(range(0, n, rate)):
                p = ups[arp_shape[k % len(arp_shape)] % len(ups)]
                notes.append(Note(t0 + s * STEP, int(rate * STEP * 1.5), min(p, hi), 70 if s % 4 else 80))
            continue
        else:  # jazz comping: Charleston or a few swung hits
            if rng.random() < 0.4:
                hits = [(0, 3, 80), (6, 4, 75)]
            else:
                pos = [s for s in range(0, n, 2) if rng.random() < 0.3] or [int(_pick(rng, [2, 6, 10]))]
                hits = [(s, int(rng.integers(2, 6)), int(rng.integers(55, 90))) for s in pos]
        for s, ln, vel in hits:
            length = max(int(ln * STEP * 0.9), 50)
            notes += [Note(t0 + s * STEP, min(length, (n - s) * STEP), p, vel) for p in chord]
    return notes


def _pad_notes(ctx: _Ctx, slot: str, rng: np.random.Generator) -> list[Note]:
    lo, hi = ROLE_RANGES["pad"]
    centre = 58 if slot == "pad" else 70
    voicings = []
    for pcs in ctx.chords:
        tones = list(pcs) if slot == "pad" else list(pcs[:3])
        if slot == "pad" and len(pcs) == 3 and rng.random() < 0.3:
            tones.append((pcs[0] + 2) % 12)  # add9
        voicings.append(_voicing(tones, centre, lo, hi))
    return _sustained(ctx, slot, voicings, int(rng.integers(60, 90)))


def _melody(ctx: _Ctx, slot: str, rng: np.random.Generator, centre: int, lo: int, hi: int,
            busy: float) -> list[Note]:
    """Phrase-based melody: a rhythm cell per bar (repeated in bar pairs), chord tones on the beats,
    scale steps between them, the second bar of each pair often ending in a rest."""
    n = ctx.bar_steps
    cells16 = [
        [[16], [8, 8], [12, 4], [4, 4, 8], [8, 4, 4]],
        [[4, 4, 4, 4], [6, 2, 8], [4, 2, 2, 8], [2, 2, 4, 8], [3, 3, 2, 8], [8, 4, 4]],
        [[2, 2, 2, 2, 4, 4], [2, 2, 2, 2, 2, 2, 4], [3, 3, 2, 2, 2, 4], [1, 1, 2, 4, 2, 2, 4]],
    ]
    cells12 = [[[12], [8, 4]], [[4, 4, 4], [6, 2, 4], [4, 2, 2, 4]], [[2, 2, 4, 4], [2, 2, 2, 2, 4]]]
    cells = cells16 if n == 16 else cells12
    lo2, hi2 = max(lo, centre - 10), min(hi, centre + 12)
    scale = ctx.scale(lo2, hi2)
    pitch = _nearest(_in_range(ctx.chords[0], lo2, hi2), centre)
    notes: list[Note] = []
    cell: list[int] = []
    for bar in range(ctx.n_bars):
        if not ctx.active[slot][bar]:
            continue
        level = int(np.clip(round(busy * 2 + rng.normal(0, 0.5)), 0, 2))
        if bar % 2 == 0 or not cell or rng.random() < 0.5:
            cell = list(_pick(rng, cells[level]))
        chord_tones = _in_range(ctx.chords[bar], lo2, hi2)
        s = 0
        for i, dur in enumerate(cell):
            last = i == len(cell) - 1
            rest = (last and bar % 2 == 1 and rng.random() < 0.5) or (i == 0 and rng.random() < 0.1)
            if not rest:
                if s % 4 == 0:
                    pitch = _nearest(chord_tones, pitch + rng.normal(0, 3))
                else:
                    k = scale.index(_nearest(scale, pitch)) + int(_pick(rng, [-2, -1, -1, 1, 1, 2]))
                    pitch = scale[int(np.clip(k, 0, len(scale) - 1))]
                length = int(dur * STEP * (0.95 if rng.random() < 0.7 else 0.6))
                notes.append(Note(bar * ctx.bar_ticks + s * STEP, max(length, 40), pitch,
                                  int(rng.integers(80, 110)) if s % 4 == 0 else int(rng.integers(65, 95))))
            s += dur
    return notes


def _arp_notes(ctx: _Ctx, rng: np.random.Generator) -> list[Note]:
    lo, hi = ROLE_RANGES["arp"]
    rate = 1 if ctx.density > 0.5 else 2
    shape = _pick(rng, ["up", "down", "updown", "random"])
    base = int(rng.integers(60, 70))
    notes = []
    for bar in range(ctx.n_bars):
        if not ctx.active["arp"][bar]:
            continue
        tones = [p for p in _in_range(ctx.chords[bar], base, base + 19) if lo <= p <= hi]
        seq = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}.get(shape)
        for k, s in enumerate(range(0, ctx.bar_steps, rate)):
            p = seq[k % len(seq)] if seq else tones[int(rng.integers(len(tones)))]
            notes.append(Note(bar * ctx.bar_ticks + s * STEP, int(rate * STEP * 0.8),
                              p, 90 if s % 4 == 0 else 70))
    return notes


# ----- arrangement -----------------------------------------------------------------------------------


def _choose_slots(rng: np.random.Generator, genre: Genre, n_stems: int) -> list[str]:
    slots = list(CORE_SLOTS)
    remaining = [s for s in OPTIONAL_SLOTS if genre.weights.get(s, SLOT_WEIGHT[s]) > 0]
    while len(slots) < n_stems:
        eligible = [s for s in remaining if SLOT_NEEDS.get(s, "kick") in slots]
        if not eligible:
            break
        w = [genre.weights.get(s, SLOT_WEIGHT[s]) for s in eligible]
        s = _pick(rng, eligible, w)
        slots.append(s)
        remaining.remove(s)
    order = CORE_SLOTS + OPTIONAL_SLOTS
    return sorted(slots, key=order.index)


def _activity(ctx: _Ctx, rng: np.random.Generator, slot: str) -> np.ndarray:
    """Which bars a part plays: whole sections drop out at random, but the part always plays in some
    section that starts early enough to be heard."""
    core = slot in CORE_SLOTS or slot == "hats"
    act = rng.random(ctx.n_sections) >= (0.1 if core else 0.3)
    section_s = BARS_PER_SECTION * 60.0 * ctx.bpb / ctx.tempo_bpm
    early = [s for s in range(ctx.n_sections) if s * section_s < 0.6 * ctx.seconds] or [0]
    if core:
        act[0] = True
    if not act[early].any():
        act[int(_pick(rng, early))] = True
    return np.repeat(act, BARS_PER_SECTION)[: ctx.n_bars]


def _make_parts(rng: np.random.Generator, g: Genre, slots: Sequence[str],
                kit: int) -> tuple[list[Part], dict[str, str]]:
    """Instrument, name and stereo treatment of each slot; also the pattern kind of percussion slots."""
    parts: list[Part] = []
    used_programs: dict[str, set[int]] = {}
    perc_kinds: dict[str, str] = {}
    for slot in slots:
        role = slot.rstrip("2")
        if role in DRUM_ROLES:
            name = role
            if role == "percussion":
                taken = set(perc_kinds.values())
                kind = str(_pick(rng, [k for k in g.percussion if k not in taken] or list(g.percussion)))
                perc_kinds[slot] = kind
                name = f"percussion_{kind}"
            part = Part(name, slot, role, kit, f"{KITS[kit]} kit", True)
        else:
            options = [p for p in g.programs[role] if p not in used_programs.get(role, set())]
            program = int(_pick(rng, options or list(g.programs[role])))
            used_programs.setdefault(role, set()).add(program)
            slug = GM_SLUGS.get(program, f"program{program}")
            part = Part(f"{role}_{slug}", slot, role, program, slug, False)
        if rng.random() < STEREO_PROB.get(role, 0.0):
            if part.is_drum:  # kit panning gives drums their stereo image, if any
                part.stereo, part.width = "wide", float(rng.uniform(0.6, 1.0))
            else:
                part.stereo = "double" if (part.program in GUITARS or role == "voice") else "wide"
                part.width = float(rng.uniform(0.4, 1.0))
                part.detune_cents = float(rng.uniform(4.0, 12.0))
        parts.append(part)
    names = [p.name for p in parts]
    for p in parts:  # unique names (two parts of one role on the same instrument)
        if names.count(p.name) > 1 and p.slot.endswith("2"):
            p.name += "_2"
    return parts, perc_kinds


def _pitched_notes(ctx: _Ctx, p: Part, rng: np.random.Generator) -> list[Note]:
    if p.role == "bass":
        return _bass_notes(ctx, rng)
    if p.role == "chords":
        style = ctx.genre.chords[0] if p.slot == "chords" else ctx.genre.chords[1]
        return _chord_notes(ctx, p.slot, p.program, style, rng)
    if p.role == "pad":
        return _pad_notes(ctx, p.slot, rng)
    if p.role == "lead":
        lo, hi = ROLE_RANGES["lead"]
        centre = LEAD_CENTRE.get(p.program, 70) + (-5 if p.slot == "lead2" else 0)
        busy = ctx.density if p.slot == "lead" else ctx.density * 0.4
        return _melody(ctx, p.slot, rng, max(centre, lo + 5), lo, hi, busy)
    if p.role == "voice":
        lo, hi = ROLE_RANGES["voice"]
        return _melody(ctx, p.slot, rng, 65 if p.slot == "voice" else 60, lo, hi, 0.15)
    return _arp_notes(ctx, rng)


def compose_song(seed: int, seconds: float = 30.0, genre: str | None = None,
                 n_stems: int | None = None) -> SongPlan:
    """Compose a song: arrangement, instruments and the notes of every stem (no audio, no MIDI files).

    seed: any non-negative int; the plan is a pure function of (seed, seconds, genre, n_stems).
    genre: one of ``GENRES`` or None (random). n_stems: 4..16 or None (random).
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    rng = np.random.default_rng([int(seed), 0])
    gname = genre if genre is not None else str(_pick(rng, sorted(GENRES)))
    if gname not in GENRES:
        raise ValueError(f"unknown genre {gname!r}; choose from {sorted(GENRES)}")
    g = GENRES[gname]
    tempo = int(rng.integers(g.tempo_bpm[0], g.tempo_bpm[1] + 1))
    bpb = 3 if rng.random() < g.waltz else 4
    key_pc = int(rng.integers(12))
    mode = str(_pick(rng, [m for m, _ in g.modes], [p for _, p in g.modes]))
    density = float(rng.uniform(0.2, 1.0))
    swing = float(rng.uniform(*g.swing))
    kit = int(_pick(rng, g.kits))
    table = JAZZ_PROGRESSIONS if g.name == "jazz" and mode in JAZZ_PROGRESSIONS else PROGRESSIONS
    prog_a = tuple(_pick(rng, table[mode]))
    prog_b = prog_a if rng.random() < 0.3 else tuple(_pick(rng, table[mode]))
    bar_s = bpb * 60.0 / tempo
    n_bars = math.ceil(seconds / bar_s - 1e-9) + 1  # one bar beyond the cut, so parts do not stop early
    n_sections = math.ceil(n_bars / BARS_PER_SECTION)
    variants = [s % 2 for s in range(n_sections)] if rng.random() < 0.5 else \
        [(s // 2) % 2 for s in range(n_sections)]
    chords = []
    for bar in range(n_bars):
        prog = (prog_a, prog_b)[variants[bar // BARS_PER_SECTION]]
        chords.append(_chord_pcs(key_pc, mode, prog[bar % len(prog)], g.sevenths))
    ctx = _Ctx(rng, g, seconds, tempo, bpb, key_pc, mode, density, g.sevenths, n_bars,
               max(int(seconds / bar_s + 1e-9), 1), variants, chords)

    n_target = int(rng.integers(MIN_STEMS, MAX_STEMS + 1)) if n_stems is None else int(n_stems)
    if not MIN_STEMS <= n_target <= MAX_STEMS:
        raise ValueError(f"n_stems must be in {MIN_STEMS}..{MAX_STEMS}")
    slots = _choose_slots(rng, g, n_target)
    for slot in slots:
        ctx.active[slot] = _activity(ctx, rng, slot)

    parts, perc_kinds = _make_parts(rng, g, slots, kit)
    drums = _drum_notes(ctx, [p.slot for p in parts if p.is_drum], perc_kinds)
    end = int(seconds * tempo / 60.0 * TICKS_PER_BEAT)  # notes starting after the cut are never heard
    for p in parts:
        raw = drums[p.slot] if p.is_drum else _pitched_notes(ctx, p, rng)
        timing, vel_sd = (4.0, 5.0) if p.is_drum else (8.0, 6.0)
        p.notes = [n for n in _humanise(raw, ctx, rng, timing, vel_sd, swing, g.swing_unit) if n.start < end]
        if p.stereo != "mono" and not p.is_drum:  # an independent second performance
            p.notes_b = [n for n in _humanise(raw, ctx, rng, timing * 1.5, vel_sd, swing, g.swing_unit)
                         if n.start < end]
    return SongPlan(int(seed), gname, float(seconds), tempo, bpb, key_pc, mode, density, swing, kit,
                    (prog_a, prog_b), variants, n_bars, parts)


# --------------------------------------------------------------------------------------------------
# MIDI and rendering
# --------------------------------------------------------------------------------------------------


def part_to_midi(part: Part, plan: SongPlan, take: int = 0):
    """A type-0 ``mido.MidiFile`` holding one take of one part (take 1 = second take of a stereo part)."""
    import mido

    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    ch = DRUM_CHANNEL if part.is_drum else 0
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(plan.tempo_bpm)))
    track.append(mido.MetaMessage("time_signature", numerator=plan.beats_per_bar, denominator=4))
    track.append(mido.MetaMessage("track_name", name=part.name))
    if not part.is_drum:
        track.append(mido.Message("control_change", channel=ch, control=0, value=0))
    track.append(mido.Message("program_change", channel=ch, program=part.program))
    for control, value in ((7, 100), (10, 64), (91, 0), (93, 0)):  # volume, centre pan, no FX sends
        track.append(mido.Message("control_change", channel=ch, control=control, value=value))
    notes = part.notes_b if take == 1 else part.notes
    if take == 1 and part.detune_cents:  # the second take is slightly detuned, like a real double
        cents = part.detune_cents
        track.append(mido.Message("pitchwheel", channel=ch, pitch=int(round(cents / 200.0 * 8191))))
    events = []
    for n in notes:
        events.append((n.start, 1, n.pitch, n.velocity))
        events.append((n.start + n.length, 0, n.pitch, 0))
    events.sort()  # at equal ticks, note-offs (0) come before note-ons (1)
    now = 0
    for tick, on, pitch, vel in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=ch, note=pitch, velocity=vel if on else 0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=TICKS_PER_BEAT))
    return mid


def have_fluidsynth(soundfont: str | Path = SOUNDFONT) -> bool:
    """True when the ``fluidsynth`` program and the soundfont are both present."""
    return shutil.which(FLUIDSYNTH) is not None and Path(soundfont).is_file()


def render_midi(midi_path: str | Path, sample_rate: int, soundfont: str | Path = SOUNDFONT,
                wav_path: str | Path | None = None) -> np.ndarray:
    """Render a MIDI file dry (reverb and chorus off) with fluidsynth; returns float32 (samples, 2).

    Rendering to 32-bit float keeps it free of dither, so it is sample-exact from run to run.
    """
    import soundfile as sf

    midi_path = Path(midi_path)
    wav = Path(wav_path) if wav_path else midi_path.with_suffix(".wav")
    cmd = [FLUIDSYNTH, "-ni", "-q", "-g", "0.5", "-r", str(int(sample_rate)), "-R", "0", "-C", "0",
           "-o", "synth.dynamic-sample-loading=1",  # load only the samples used: 46 MB instead of 174 MB
           "-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(midi_path)]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 or not wav.is_file():
        raise RuntimeError(f"fluidsynth failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz instead of {sample_rate} Hz")
    wav.unlink()
    return audio


def _fit(audio: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Trim or zero-pad to n samples; a 10 ms fade-out avoids a click where the song is cut."""
    out = np.zeros((n, audio.shape[1]), dtype=np.float64)
    m = min(n, audio.shape[0])
    out[:m] = audio[:m]
    fade = min(int(0.01 * sr), n)
    out[n - fade:] *= np.cos(np.linspace(0.0, np.pi / 2, fade))[:, None]
    return out


def _louder(x: np.ndarray) -> np.ndarray:
    """One channel of a (samples, 2) render: the louder one (a mono 'microphone')."""
    return x[:, int(np.argmax(np.sum(x * x, axis=0)))]


def _render_part(part: Part, plan: SongPlan, tmp: Path, sr: int,
                 soundfont: Path) -> tuple[np.ndarray, str | None]:
    """Audio of one stem, (samples,) or (samples, 2), and how it was made stereo (None, native, double)."""
    n = int(round(plan.seconds * sr))

    def take(i: int) -> np.ndarray:
        path = tmp / f"{part.name}_{i}.mid"
        part_to_midi(part, plan, take=i).save(str(path))
        return _fit(render_midi(path, sr, soundfont), n, sr)

    a = take(0)
    if part.stereo == "mono":
        return _louder(a), None
    mid, side = (a[:, 0] + a[:, 1]) / 2, (a[:, 0] - a[:, 1]) / 2
    if np.sum(side**2) > 0.01 * np.sum(mid**2):  # the preset (or kit panning) is already stereo
        w = part.width
        return np.stack([mid + w * side, mid - w * side], axis=1), "native"
    if part.is_drum:
        return _louder(a), None
    b = _louder(take(1))
    a = _louder(a)
    w = part.width
    return np.stack([(1 + w) / 2 * a + (1 - w) / 2 * b, (1 - w) / 2 * a + (1 + w) / 2 * b], axis=1), "double"


def _lufs(x: np.ndarray, sr: int) -> float | None:
    import pyloudnorm

    if x.shape[0] < int(0.4 * sr) + 1:
        return None
    value = pyloudnorm.Meter(sr).integrated_loudness(x)
    return round(float(value), 2) if np.isfinite(value) else None


def generate_song(out_dir: str | Path, seed: int, seconds: float = 30.0, sample_rate: int = 44100,
                  genre: str | None = None, *, song_id: str | None = None, n_stems: int | None = None,
                  subtype: str = "PCM_24", soundfont: str | Path = SOUNDFONT,
                  keep_midi: bool = False) -> Path:
    """Compose, render and store one song; returns the song folder ``out_dir/<song_id>``.

    Writes ``<stem>.flac`` per stem (peak at a random recording level in ``RECORDING_PEAK_DBFS``) and
    ``song.json`` last, so a folder with a song.json is complete. Same arguments give byte-identical files.
    """
    import soundfile as sf

    soundfont = Path(soundfont)
    if not have_fluidsynth(soundfont):
        raise RuntimeError(f"generating needs the fluidsynth program and the soundfont {soundfont}")
    plan = compose_song(seed, seconds, genre, n_stems)
    song_dir = Path(out_dir) / (song_id or f"seed_{int(seed)}")
    song_dir.mkdir(parents=True, exist_ok=True)
    for old in [song_dir / "song.json", *song_dir.glob("*.flac")]:  # no stale stems from an earlier run
        old.unlink(missing_ok=True)
    level_rng = np.random.default_rng([int(seed), 1])
    stems_meta = []
    with tempfile.TemporaryDirectory(prefix="synth_") as tmp_name:
        tmp = Path(tmp_name)
        for part in plan.parts:
            level_db = float(level_rng.uniform(*RECORDING_PEAK_DBFS))
            audio, stereo = _render_part(part, plan, tmp, sample_rate, soundfont)
            peak = float(np.max(np.abs(audio)))
            if peak < 1e-5:  # nothing audible inside the song (should not happen): leave it out
                continue
            audio = audio * (10 ** (level_db / 20) / peak)
            path = song_dir / f"{part.name}.flac"
            sf.write(str(path), audio, sample_rate, subtype=subtype, format="FLAC")
            if keep_midi:
                (song_dir / "midi").mkdir(exist_ok=True)
                part_to_midi(part, plan).save(str(song_dir / "midi" / f"{part.name}.mid"))
            stems_meta.append({
                "name": part.name, "file": path.name, "role": part.role, "slot": part.slot,
                "instrument": part.instrument, "program": part.program, "bank": 128 if part.is_drum else 0,
                "is_drum": part.is_drum, "channels": 1 if audio.ndim == 1 else 2, "stereo": stereo,
                "width": round(part.width, 3) if stereo else None, "peak_dbfs": round(level_db, 2),
                "lufs": _lufs(audio, sample_rate), "n_notes": len(part.notes),
            })
    meta = {
        "format": FORMAT_VERSION, "seed": int(seed), "song_id": song_dir.name, "genre": plan.genre,
        "tempo_bpm": plan.tempo_bpm, "beats_per_bar": plan.beats_per_bar, "key": plan.key,
        "key_pc": plan.key_pc, "mode": plan.mode, "density": round(plan.density, 3),
        "swing": round(plan.swing, 3), "progressions": [list(p) for p in plan.progressions],
        "section_variants": plan.section_variants, "seconds": plan.seconds, "sample_rate": int(sample_rate),
        "n_samples": int(round(plan.seconds * sample_rate)), "subtype": subtype,
        "soundfont": Path(soundfont).name, "drum_kit": {"program": plan.kit, "name": KITS[plan.kit]},
        "stems": stems_meta,
    }
    tmp_json = song_dir / "song.json.tmp"
    tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
    tmp_json.replace(song_dir / "song.json")
    return song_dir


def song_seed(seed: int, index: int) -> int:
    """Seed of song ``index`` of a data set generated with ``seed`` (independent streams per song)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _song_job(args: tuple) -> Path:
    out_dir, index, seed, kwargs = args
    return generate_song(out_dir, song_seed(seed, index), song_id=f"song_{index:05d}", **kwargs)


def generate(out_dir: str | Path, n_songs: int, seed: int, seconds: float = 30.0, sample_rate: int = 44100,
             jobs: int = 1, genre: str | None = None, progress: bool = True, subtype: str = "PCM_24",
             soundfont: str | Path = SOUNDFONT) -> list[Path]:
    """Generate ``n_songs`` songs as ``out_dir/song_00000`` ... (``jobs`` songs at a time).

    Songs whose song.json already exists with the same seed, length and rate are kept (resumable).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kwargs = {"seconds": seconds, "sample_rate": sample_rate, "genre": genre, "subtype": subtype,
              "soundfont": str(soundfont)}
    todo, done = [], []
    for i in range(n_songs):
        meta_path = out_dir / f"song_{i:05d}" / "song.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if (meta.get("seed"), meta.get("seconds"), meta.get("sample_rate")) == \
                    (song_seed(seed, i), float(seconds), int(sample_rate)):
                done.append(meta_path.parent)
                continue
        todo.append((str(out_dir), i, seed, kwargs))
    bar = tqdm(total=n_songs, initial=len(done), unit="song", disable=not progress)
    if jobs <= 1:
        for job in todo:
            done.append(_song_job(job))
            bar.update()
    else:
        # Threads suffice: the heavy work runs in fluidsynth processes and in numpy/libsndfile calls.
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for fut in as_completed([pool.submit(_song_job, job) for job in todo]):
                done.append(fut.result())
                bar.update()
    bar.close()
    return sorted(done)


def read_song(song_dir: str | Path) -> dict:
    """The song.json of a generated song."""
    return json.loads((Path(song_dir) / "song.json").read_text())


def load_song(song_dir: str | Path) -> tuple[dict, dict[str, np.ndarray], int]:
    """(meta, {stem name: float32 (samples,) or (samples, 2)}, sample rate) of a generated song."""
    import soundfile as sf

    meta = read_song(song_dir)
    stems = {}
    for s in meta["stems"]:
        audio, sr = sf.read(str(Path(song_dir) / s["file"]), dtype="float32")
        stems[s["name"]] = audio
    return meta, stems, int(meta["sample_rate"])


# --------------------------------------------------------------------------------------------------
# Reference mixes
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Demo assets
# --------------------------------------------------------------------------------------------------

DEMO_STEMS = {"genre": "funk", "first_seed": 101}
DEMO_REFERENCE = {"genre": "pop", "first_seed": 202}
DEMO_SECONDS = 20.0
DEMO_REFERENCE_LUFS = -12.0


def _find_seed(genre: str, first_seed: int, seconds: float, ok) -> tuple[int, SongPlan]:
    for seed in range(first_seed, first_seed + 1000):
        plan = compose_song(seed, seconds, genre)
        if ok(plan):
            return seed, plan
    raise RuntimeError("no suitable seed found")


def build_demo(out_dir: str | Path, seconds: float = DEMO_SECONDS, sample_rate: int = 44100,
               soundfont: str | Path = SOUNDFONT) -> dict:
    """Demo session material: ``out_dir/stems/*.flac`` (6-10 stems of one song, 16-bit) and
    ``out_dir/reference.flac``, a mastered-sounding mix of a different song; returns what was made."""
    import pyloudnorm
    import soundfile as sf

    out_dir = Path(out_dir)

    def stems_ok(plan: SongPlan) -> bool:
        stereo = any(p.stereo != "mono" and not p.is_drum for p in plan.parts)
        return 6 <= len(plan.parts) <= 10 and stereo

    def reference_ok(plan: SongPlan) -> bool:
        return len(plan.parts) >= 9 and any(p.role == "lead" for p in plan.parts)

    stems_seed, _ = _find_seed(DEMO_STEMS["genre"], DEMO_STEMS["first_seed"], seconds, stems_ok)
    ref_seed, _ = _find_seed(DEMO_REFERENCE["genre"], DEMO_REFERENCE["first_seed"], seconds, reference_ok)
    stems_dir = out_dir / "stems"
    if stems_dir.exists():
        shutil.rmtree(stems_dir)
    stems_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="demo_") as tmp_name:
        tmp = Path(tmp_name)
        song = generate_song(tmp, stems_seed, seconds, sample_rate, DEMO_STEMS["genre"], song_id="stems",
                             subtype="PCM_16", soundfont=soundfont)
        stems_meta = read_song(song)
        for s in stems_meta["stems"]:
            shutil.copy(song / s["file"], stems_dir / s["file"])
        ref_song = generate_song(tmp, ref_seed, seconds, sample_rate, DEMO_REFERENCE["genre"],
                                 song_id="reference", soundfont=soundfont)
        ref_meta, ref_stems, _ = load_song(ref_song)
    mix = reference_mix(ref_stems, sample_rate, np.random.default_rng([ref_seed, 2]),
                        target_lufs=DEMO_REFERENCE_LUFS, ceiling_dbtp=-1.2, master=True)
    sf.write(str(out_dir / "reference.flac"), mix, sample_rate, subtype="PCM_16", format="FLAC")
    written, _ = sf.read(str(out_dir / "reference.flac"), dtype="float64")
    info = {
        "stems": {"seed": stems_seed, "genre": stems_meta["genre"], "tempo_bpm": stems_meta["tempo_bpm"],
                  "key": f"{stems_meta['key']} {stems_meta['mode']}", "seconds": seconds,
                  "stems": [{k: s[k] for k in ("name", "program", "channels", "stereo", "peak_dbfs", "lufs")}
                            for s in stems_meta["stems"]]},
        "reference": {"seed": ref_seed, "genre": ref_meta["genre"], "tempo_bpm": ref_meta["tempo_bpm"],
                      "key": f"{ref_meta['key']} {ref_meta['mode']}", "n_stems": len(ref_meta["stems"]),
                      "lufs": round(float(pyloudnorm.Meter(sample_rate).integrated_loudness(written)), 2),
                      "true_peak_dbtp": round(true_peak_db(written, sample_rate), 2)},
        "sample_rate": sample_rate,
    }
    (out_dir / "demo.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.synth", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate synthetic multitrack songs")
    gen.add_argument("out_dir", type=Path)
    gen.add_argument("--songs", type=int, required=True, help="number of songs")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--seconds", type=float, default=30.0)
    gen.add_argument("--sample-rate", type=int, default=44100)
    gen.add_argument("--jobs", type=int, default=2, help="songs rendered in parallel")
    gen.add_argument("--genre", choices=sorted(GENRES), default=None, help="default: random per song")
    gen.add_argument("--bits", type=int, choices=(16, 24), default=24, help="FLAC sample format")
    gen.add_argument("--soundfont", type=Path, default=SOUNDFONT)
    demo = sub.add_parser("demo", help="build the demo stems and reference")
    demo.add_argument("out_dir", type=Path)
    demo.add_argument("--soundfont", type=Path, default=SOUNDFONT)
    args = parser.parse_args(argv)
    if not have_fluidsynth(args.soundfont):
        print(f"error: needs the fluidsynth program and the soundfont {args.soundfont} "
              "(Debian: apt-get install fluidsynth fluid-soundfont-gm)", file=sys.stderr)
        return 2
    if args.command == "generate":
        songs = generate(args.out_dir, args.songs, args.seed, args.seconds, args.sample_rate, args.jobs,
                         args.genre, subtype=f"PCM_{args.bits}", soundfont=args.soundfont)
        print(f"{len(songs)} songs in {args.out_dir}")
    else:
        info = build_demo(args.out_dir, soundfont=args.soundfont)
        print(json.dumps(info["reference"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
