"""Synthetic multitracks made like Slakh2100: procedural MIDI songs rendered per instrument, and their mixes.

A song is composed from a genre preset (tempo, mode, chord progressions, drum/bass/chord styles and
instrument choices), written as one General MIDI file per stem (drum pieces split into kick, snare, hats,
toms, cymbals and percussion, all on the GM drum channel), rendered *dry* (reverb and chorus off) with the
``fluidsynth`` command-line program and a GM soundfont, trimmed to the song length and stored at a random
recording level::

    OUT_DIR/<song_id>/<stem>.flac      mono, or stereo for wide / double-tracked parts
    OUT_DIR/<song_id>/song.json        seed, genre, tempo, key, stems (program, level, channels, ...)

Everything is a function of the seed: composing uses only ``numpy.random.Generator`` streams derived from
it, and FluidSynth's float renderer is sample-exact from run to run, so the same seed gives byte-identical
FLAC files.

Two modes (``realism=`` of :func:`compose_song`, :func:`generate_song`, :func:`generate` and
``--realism`` on the command line): ``"off"`` (the default) makes the original songs, unchanged for every
existing seed (the quality benchmark and the tests depend on them); ``"full"`` makes songs closer to real
sessions -- a song form with intro, verses, choruses, breaks and outro, parts that drop in and out, long
rests in vocals and leads, player drift and section dynamics, recorded Hydrogen drum kits and a
soundfont drawn per song, stereo overheads and hard-panned doubles, bleed between drum microphones,
recording levels and noise floors, and a dry mix ``mix.flac`` (:mod:`.arrange`, :mod:`.hydrogen`,
:mod:`.realistic`). The realistic mode is a separate option rather than a new default so that existing
callers keep their data.

Composing (:func:`compose_song`) needs neither FluidSynth nor mido; writing MIDI needs mido; rendering
needs the ``fluidsynth`` binary and the soundfont (:func:`have_fluidsynth`).

The package, one module per stage (each name below is also importable from ``training.synth``):

* :mod:`.plan` -- genre presets, instrument ranges, GM tables; :class:`Note`, :class:`Part`,
  :class:`SongPlan`.
* :mod:`.compose` -- :func:`compose_song`: seed -> plan (pure numpy).
* :mod:`.arrange` -- the realistic mode's song form, part activity and performance.
* :mod:`.hydrogen` -- Hydrogen drum kits: ``drumkit.xml`` parsing, GM note mapping, sample playback.
* :mod:`.realistic` -- :func:`~training.synth.realistic.generate_real_song`: rendering, bleed, noise,
  the dry mix.
* :mod:`.render` -- :func:`part_to_midi`, :func:`render_midi` (FluidSynth), :func:`generate_song`,
  :func:`generate` (a resumable data set), :func:`read_song`, :func:`load_song`.
* :mod:`.mixes` -- :func:`reference_mix`: a plain (or mastered) stereo mix with core's meter, pan law,
  EQ design, compressor and limiter.
* :mod:`.engineer` -- :func:`~training.synth.engineer.engineer_mix`: finished mixes through the console,
  with each stem's true contribution (also importable as ``training.engineer``; not re-exported here).
* :mod:`.demo` -- :func:`build_demo`: the demo session's stems and reference.
* :mod:`.cli` -- the command line::

    python -m training.synth generate OUT_DIR --songs N --seed S [--seconds 30] [--sample-rate 44100]
                                      [--jobs 2] [--genre GENRE] [--bits 24] [--realism off|full]
    python -m training.synth demo assets/demo

  (``python -m training.datasets synth`` makes large data sets: size estimate, disk check, ``--resume``.)
"""

from .cli import main
from .compose import compose_song
from .demo import DEMO_REFERENCE, DEMO_REFERENCE_LUFS, DEMO_SECONDS, DEMO_STEMS, build_demo
from .mixes import (
    CENTRED_ROLES,
    ROLE_MIX_LU,
    MasterSettings,
    ReferenceSettings,
    draw_reference,
    master_chain,
    reference_mix,
    render_reference,
)
from .plan import (
    BARS_PER_SECTION,
    CORE_SLOTS,
    DISTORTED,
    DRUM_CHANNEL,
    DRUM_NOTES,
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
    NOTE_NAMES,
    OPTIONAL_SLOTS,
    PITCHED_ROLES,
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
from .render import (
    FLUIDSYNTH,
    FORMAT_VERSION,
    RECORDING_PEAK_DBFS,
    SOUNDFONT,
    generate,
    generate_song,
    have_fluidsynth,
    load_song,
    part_to_midi,
    read_song,
    render_midi,
    song_seed,
)

__all__ = [
    "BARS_PER_SECTION", "CENTRED_ROLES", "CORE_SLOTS", "DEMO_REFERENCE", "DEMO_REFERENCE_LUFS",
    "DEMO_SECONDS", "DEMO_STEMS", "DISTORTED", "DRUM_CHANNEL", "DRUM_NOTES", "DRUM_ROLES", "FLUIDSYNTH",
    "FORMAT_VERSION", "GENRES", "GM_SLUGS", "GUITARS", "JAZZ_PROGRESSIONS", "KITS", "LEAD_CENTRE",
    "MAX_STEMS", "MIN_STEMS", "MODES", "NOTE_NAMES", "OPTIONAL_SLOTS", "PITCHED_ROLES", "PROGRESSIONS",
    "REALISM", "RECORDING_PEAK_DBFS", "ROLE_MIX_LU", "ROLE_RANGES", "SLOT_NEEDS", "SLOT_WEIGHT", "SOUNDFONT",
    "STEP", "STEREO_PROB", "TICKS_PER_BEAT", "Genre", "MasterSettings", "Note", "Part", "ReferenceSettings",
    "SongPlan", "build_demo", "compose_song", "draw_reference", "generate", "generate_song",
    "have_fluidsynth", "load_song", "main", "master_chain", "part_to_midi", "read_song", "reference_mix",
    "render_midi", "render_reference", "song_seed",
]
