"""Arrangements like real sessions (``realism="full"``): sections, parts that drop in and out, performance.

Used by :func:`training.synth.compose.compose_song` when ``realism="full"``; the default (``"off"``)
keeps the original arrangement (every part plays whole 4-bar sections, dropping out at random), so the
songs of existing seeds do not change.

* :func:`draw_sections` -- the song form: an optional intro (2 or 4 bars), then verses, choruses (4 or
  8 bars) and breaks (2 or 4 bars) in one of the orders of :data:`FORMS`, and an outro (2 or 4 bars)
  when the song is long enough. Verses use the first groove/progression variant, choruses the second.
* :func:`activity` and :func:`settle` -- which bars each part plays: a per-role, per-section probability
  (:data:`PLAY_PROB`: vocals rarely in intros and breaks, drums often out of breaks, pads in breaks ...),
  vocal and lead phrases that breathe (a bar off now and then), and a few rules: kick, snare, bass and
  chords play in a verse or chorus, some pitched part plays in every section, each part is heard early
  enough, and every lead or vocal part rests for at least :data:`MIN_REST_S` somewhere in the song.
* :func:`perform` -- the players: a per-part timing offset and a slow drift (a random walk, ms), and
  dynamics per section (:data:`DYNAMICS`: choruses louder, breaks softer, the outro fading).

Everything is drawn from the ``numpy.random.Generator`` the composer passes in, so a plan stays a pure
function of its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .plan import CORE_SLOTS, TICKS_PER_BEAT, Note

SECTION_LABELS = ("intro", "verse", "chorus", "break", "outro")
#: Probability that a part of each role plays a section, by label (intro, verse, chorus, break, outro).
PLAY_PROB: dict[str, tuple[float, float, float, float, float]] = {
    "kick": (0.5, 0.95, 1.0, 0.25, 0.6),
    "snare": (0.35, 0.95, 1.0, 0.2, 0.5),
    "hats": (0.5, 0.9, 0.95, 0.3, 0.5),
    "toms": (0.3, 0.6, 0.8, 0.2, 0.4),
    "cymbals": (0.5, 0.6, 0.95, 0.3, 0.7),
    "percussion": (0.3, 0.5, 0.8, 0.4, 0.4),
    "bass": (0.5, 0.95, 1.0, 0.4, 0.6),
    "chords": (0.8, 0.9, 0.95, 0.7, 0.8),
    "pad": (0.6, 0.5, 0.8, 0.8, 0.7),
    "lead": (0.35, 0.3, 0.6, 0.6, 0.4),
    "voice": (0.05, 0.9, 0.95, 0.1, 0.2),
    "arp": (0.5, 0.5, 0.7, 0.6, 0.5),
}
#: Velocity offset of each section label (the outro also fades by up to OUTRO_FADE over its bars).
DYNAMICS = {"intro": -6, "verse": -4, "chorus": 6, "break": -8, "outro": -6}
OUTRO_FADE = 18
#: Every lead or vocal part rests at least this long (s) somewhere inside the song.
MIN_REST_S = 3.0
#: Timing of a player: constant offset (ms, s.d.), drift per bar (ms, s.d.) and its bound (ms).
OFFSET_MS, DRIFT_MS, DRIFT_MAX_MS = 3.0, 2.0, 12.0
#: Stereo probabilities of the realistic mode (pads, doubled guitars and vocals more often than in the
#: default mode; the cymbals slot becomes a stereo pair of overheads with OVERHEADS_PROB).
STEREO_PROB = {"pad": 0.9, "chords": 0.55, "arp": 0.4, "voice": 0.45, "cymbals": 0.0, "percussion": 0.25,
               "lead": 0.15}
OVERHEADS_PROB = 0.75
#: Width of the two takes of a double-tracked part in the realistic mode (1 = hard-panned).
DOUBLE_WIDTH = (0.85, 1.0)

Section = tuple[str, int, int]  # (label, first bar, number of bars)
#: Orders of the main sections after the intro (repeated as the song needs); one is drawn per song.
FORMS = (("verse", "chorus", "verse", "chorus", "break", "chorus"),
         ("verse", "verse", "chorus", "break", "chorus", "chorus"),
         ("chorus", "verse", "chorus", "break", "verse", "chorus"),
         ("verse", "break", "chorus", "verse", "chorus", "break"),
         ("verse", "chorus", "break", "chorus", "verse", "chorus"))


def draw_sections(rng: np.random.Generator, n_bars: int, bar_s: float) -> list[Section]:
    """The song form over ``n_bars`` bars (see the module docstring); the sections tile the bars."""
    out: list[Section] = []
    outro = 0
    if n_bars >= 14 and rng.random() < 0.7:
        outro = 2 if (bar_s > 2.5 or rng.random() < 0.5) else 4
    end = n_bars - outro
    bar = 0
    if rng.random() < 0.8:
        intro = 2 if (bar_s > 2.5 or rng.random() < 0.6) else 4
        out.append(("intro", 0, min(intro, end)))
        bar = out[-1][2]
    form = FORMS[int(rng.integers(len(FORMS)))]
    k = 0
    while bar < end:
        label = form[k % len(form)]
        if label == "break":
            length = 2 if rng.random() < 0.6 else 4
        else:
            length = 8 if (bar_s < 2.2 and rng.random() < 0.4) else 4
        out.append((label, bar, min(length, end - bar)))
        bar += out[-1][2]
        k += 1
    if outro:
        out.append(("outro", end, outro))
    return [s for s in out if s[2] > 0]


def section_variant(label: str, rng: np.random.Generator) -> int:
    """Groove/progression variant of a section: verses 0, choruses 1, the others either."""
    if label == "verse":
        return 0
    if label == "chorus":
        return 1
    return int(rng.random() < 0.5)


def _role(slot: str) -> str:
    return slot.rstrip("2")


def _bars(sections: Sequence[Section], act: np.ndarray, n_bars: int) -> np.ndarray:
    return np.concatenate([np.full(n, bool(a)) for (_, _, n), a in zip(sections, act, strict=True)])[:n_bars]


def activity(ctx, rng: np.random.Generator, slot: str, sections: Sequence[Section]) -> np.ndarray:
    """Bars (bool per bar) that the part in ``slot`` plays: per-section draws, breathing phrases."""
    role = _role(slot)
    second = slot.endswith("2")
    probs = np.array([PLAY_PROB[role][SECTION_LABELS.index(label)] for label, _, _ in sections])
    if second:
        probs *= 0.8
    act = rng.random(len(sections)) < probs
    early = [i for i, (_, start, _) in enumerate(sections)
             if start * ctx.bar_s < 0.6 * ctx.seconds and sections[i][0] != "intro"] or [0]
    if not act[early].any():
        act[int(early[int(rng.integers(len(early)))])] = True
    bars = _bars(sections, act, ctx.n_bars)
    if role in ("voice", "lead"):  # phrases breathe: a bar off at the end of some 4-bar phrases
        for _label, start, n in sections:
            if n >= 4 and rng.random() < (0.6 if role == "voice" else 0.4):
                for b in range(start + 3, start + n, 4):
                    bars[b] = False
    return bars


def settle(ctx, rng: np.random.Generator, slots: Sequence[str], sections: Sequence[Section]) -> None:
    """Rules across parts (see the module docstring), applied to ``ctx.active`` in place."""
    main = [i for i, (label, _, _) in enumerate(sections) if label in ("verse", "chorus")]
    if not main:
        main = [int(np.argmax([n for _, _, n in sections]))]
    for slot in slots:
        if slot in CORE_SLOTS:
            act = ctx.active[slot]
            if not any(act[sections[i][1]:sections[i][1] + sections[i][2]].any() for i in main):
                i = main[int(rng.integers(len(main)))]
                act[sections[i][1]:sections[i][1] + sections[i][2]] = True
    full = ctx.n_full_bars  # bars that end inside the song
    need = int(np.ceil(MIN_REST_S / ctx.bar_s - 1e-9))
    for slot in slots:
        if _role(slot) not in ("voice", "lead"):
            continue
        act = ctx.active[slot]
        if _longest_rest(act[:full]) >= need:
            continue
        for _label, start, n in sections:  # silence a whole section that is long enough
            if n >= need and start + need <= full and act[:start].sum() + act[start + n:].sum() > 0:
                act[start:start + n] = False
                break
        else:
            if need < full and act[need:].any():
                act[:need] = False
    pitched = [s for s in slots if _role(s) in ("bass", "chords", "pad", "lead", "voice", "arp")]
    for _label, start, n in sections:
        if not any(ctx.active[s][start:start + n].any() for s in pitched):
            ctx.active["chords"][start:start + n] = True


def _longest_rest(act: np.ndarray) -> int:
    best = run = 0
    for a in act:
        run = 0 if a else run + 1
        best = max(best, run)
    return best


def perform(notes: list[Note], ctx, rng: np.random.Generator, labels: Sequence[str],
            sections: Sequence[Section]) -> list[Note]:
    """A player's timing offset and drift, and the section dynamics, on humanised notes."""
    ms_to_ticks = TICKS_PER_BEAT * ctx.tempo_bpm / 60000.0
    steps = rng.normal(0.0, DRIFT_MS, ctx.n_bars)
    drift = np.clip(np.cumsum(steps), -DRIFT_MAX_MS, DRIFT_MAX_MS) + rng.normal(0.0, OFFSET_MS)
    outro = next(((start, n) for label, start, n in sections if label == "outro"), None)
    out = []
    for note in notes:
        bar = min(note.start // ctx.bar_ticks, ctx.n_bars - 1)
        vel = note.velocity + DYNAMICS[labels[bar]]
        if outro is not None and bar >= outro[0]:
            vel -= OUTRO_FADE * (note.start - outro[0] * ctx.bar_ticks) / (outro[1] * ctx.bar_ticks)
        start = max(0, note.start + int(round(drift[bar] * ms_to_ticks)))
        out.append(Note(start, note.length, note.pitch, int(np.clip(round(vel), 1, 127))))
    return out
