"""What a song is made of: genre presets, instrument ranges, and the plan a composed song is.

Tables only (no randomness): the scales, chord progressions, pitch ranges, General MIDI drum notes and
programs, the genre presets (:data:`GENRES`) and the arrangement slots; and the data classes
:class:`Note`, :class:`Part` and :class:`SongPlan` that :func:`training.synth.compose.compose_song`
fills in and :mod:`training.synth.render` turns into MIDI and audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TICKS_PER_BEAT = 480
STEP = TICKS_PER_BEAT // 4  # one sixteenth note, in ticks
DRUM_CHANNEL = 9  # GM channel 10
BARS_PER_SECTION = 4
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
#: Realism modes of the generator: "off" (the original songs, unchanged per seed) and "full"
#: (:mod:`training.synth.arrange` and :mod:`training.synth.realistic`).
REALISM = ("off", "full")


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
    sections: list[tuple[str, int, int]] = field(default_factory=list)  # realism "full": (label, bar, bars)
    realism: str = "off"

    @property
    def key(self) -> str:
        return NOTE_NAMES[self.key_pc]

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.tempo_bpm
