"""Composition: a genre preset and a seed -> a :class:`~training.synth.plan.SongPlan` (pure numpy).

:func:`compose_song` picks tempo, metre, key, mode, density, swing, drum kit and two chord progressions,
chooses the arrangement (4-16 stems: kick, snare, bass and chords always, then weighted optional slots),
the instrument and stereo treatment of each stem, which sections each stem plays, and writes the notes:
drum grooves with fills, bass lines, chord styles, pads, melodies and arpeggios, humanised in timing and
velocity. Everything comes from ``numpy.random.Generator`` streams derived from the seed, so a plan is a
pure function of ``(seed, seconds, genre, n_stems)``; no external program is involved.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import arrange
from .plan import (
    BARS_PER_SECTION,
    CORE_SLOTS,
    DISTORTED,
    DRUM_ROLES,
    GENRES,
    GM_SLUGS,
    GUITARS,
    JAZZ_PROGRESSIONS,
    KITS,
    LEAD_CENTRE,
    MAX_STEMS,
    MIN_STEMS,
    MODES,
    OPTIONAL_SLOTS,
    PROGRESSIONS,
    REALISM,
    ROLE_RANGES,
    SLOT_NEEDS,
    SLOT_WEIGHT,
    STEP,
    STEREO_PROB,
    TICKS_PER_BEAT,
    Genre,
    Note,
    Part,
    SongPlan,
)


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
    starts: list[int] = field(default_factory=list)  # first bar of each section (default: every 4 bars)

    def __post_init__(self) -> None:
        if not self.starts:
            self.starts = [s * BARS_PER_SECTION for s in range(len(self.variants))]

    @property
    def bar_s(self) -> float:
        return self.bpb * 60.0 / self.tempo_bpm

    @property
    def bar_steps(self) -> int:
        return 4 * self.bpb

    @property
    def bar_ticks(self) -> int:
        return self.bpb * TICKS_PER_BEAT

    @property
    def n_sections(self) -> int:
        return len(self.variants)

    def section(self, bar: int) -> int:
        """Index of the section that ``bar`` belongs to."""
        return bisect.bisect_right(self.starts, bar) - 1

    def is_start(self, bar: int) -> bool:
        """True when ``bar`` begins a section."""
        return bar in self.starts

    def variant(self, bar: int) -> int:
        return self.variants[self.section(bar)]

    def scale(self, lo: int, hi: int) -> list[int]:
        degrees = {(self.key_pc + i) % 12 for i in MODES[self.mode]}
        return [p for p in range(lo, hi + 1) if p % 12 in degrees]

    def fill_bars(self) -> list[int]:
        """Bar that ends each section with a fill: the section's last bar that fits inside the song."""
        out = []
        for s in range(self.n_sections):
            start = self.starts[s]
            end = min(self.starts[s + 1] if s + 1 < self.n_sections else self.n_bars, self.n_bars)
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
        if ctx.is_start(bar) or (bar - 1) in fill_bars:
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
                and not ctx.is_start(end):
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


def _make_parts(rng: np.random.Generator, g: Genre, slots: Sequence[str], kit: int,
                stereo_prob: dict[str, float] = STEREO_PROB) -> tuple[list[Part], dict[str, str]]:
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
        if rng.random() < stereo_prob.get(role, 0.0):
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
                 n_stems: int | None = None, realism: str = "off") -> SongPlan:
    """Compose a song: arrangement, instruments and the notes of every stem (no audio, no MIDI files).

    seed: any non-negative int; the plan is a pure function of (seed, seconds, genre, n_stems, realism).
    genre: one of ``GENRES`` or None (random). n_stems: 4..16 or None (random).
    realism: ``"off"`` (default; the original arrangement, unchanged for existing seeds) or ``"full"``
    (song form with intro/verse/chorus/break/outro, parts dropping in and out, breathing vocal phrases,
    player drift and section dynamics, hard-panned doubles and overheads: :mod:`training.synth.arrange`).
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    if realism not in REALISM:
        raise ValueError(f"unknown realism {realism!r}; choose from {list(REALISM)}")
    real = realism == "full"
    rng = np.random.default_rng([int(seed), 0, 1] if real else [int(seed), 0])
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
    sections: list[tuple[str, int, int]] = []
    if real:
        sections = arrange.draw_sections(rng, n_bars, bar_s)
        variants = [arrange.section_variant(label, rng) for label, _, _ in sections]
        starts = [start for _, start, _ in sections]
    else:
        n_sections = math.ceil(n_bars / BARS_PER_SECTION)
        variants = [s % 2 for s in range(n_sections)] if rng.random() < 0.5 else \
            [(s // 2) % 2 for s in range(n_sections)]
        starts = [s * BARS_PER_SECTION for s in range(n_sections)]
    chords = []
    for bar in range(n_bars):
        prog = (prog_a, prog_b)[variants[bisect.bisect_right(starts, bar) - 1]]
        chords.append(_chord_pcs(key_pc, mode, prog[bar % len(prog)], g.sevenths))
    ctx = _Ctx(rng, g, seconds, tempo, bpb, key_pc, mode, density, g.sevenths, n_bars,
               max(int(seconds / bar_s + 1e-9), 1), variants, chords, starts=starts)

    n_target = int(rng.integers(MIN_STEMS, MAX_STEMS + 1)) if n_stems is None else int(n_stems)
    if not MIN_STEMS <= n_target <= MAX_STEMS:
        raise ValueError(f"n_stems must be in {MIN_STEMS}..{MAX_STEMS}")
    slots = _choose_slots(rng, g, n_target)
    for slot in slots:
        ctx.active[slot] = arrange.activity(ctx, rng, slot, sections) if real else _activity(ctx, rng, slot)
    if real:
        arrange.settle(ctx, rng, slots, sections)

    parts, perc_kinds = _make_parts(rng, g, slots, kit, arrange.STEREO_PROB if real else STEREO_PROB)
    if real:
        for p in parts:
            if p.stereo == "double":
                p.width = float(rng.uniform(*arrange.DOUBLE_WIDTH))
            if p.role == "cymbals" and rng.random() < arrange.OVERHEADS_PROB:
                p.name, p.stereo, p.width = "overheads", "overheads", 1.0
    labels = [label for label, _, n in sections for _ in range(n)]
    drums = _drum_notes(ctx, [p.slot for p in parts if p.is_drum], perc_kinds)
    end = int(seconds * tempo / 60.0 * TICKS_PER_BEAT)  # notes starting after the cut are never heard
    for p in parts:
        raw = drums[p.slot] if p.is_drum else _pitched_notes(ctx, p, rng)
        timing, vel_sd = (4.0, 5.0) if p.is_drum else (8.0, 6.0)
        takes = [_humanise(raw, ctx, rng, timing, vel_sd, swing, g.swing_unit)]
        if p.stereo not in ("mono", "overheads") and not p.is_drum:  # an independent second performance
            takes.append(_humanise(raw, ctx, rng, timing * 1.5, vel_sd, swing, g.swing_unit))
        if real:
            takes = [_clean(arrange.perform(t, ctx, rng, labels, sections)) for t in takes]
        p.notes = [n for n in takes[0] if n.start < end]
        if len(takes) > 1:
            p.notes_b = [n for n in takes[1] if n.start < end]
    return SongPlan(int(seed), gname, float(seconds), tempo, bpb, key_pc, mode, density, swing, kit,
                    (prog_a, prog_b), variants, n_bars, parts, sections=sections, realism=realism)
