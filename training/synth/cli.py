"""Command line of the synthetic multitrack generator::

    python -m training.synth generate OUT_DIR --songs N --seed S [--seconds 30] [--sample-rate 44100]
                                      [--jobs 2] [--genre GENRE] [--bits 24] [--soundfont SF2]
                                      [--realism off|full] [--no-dry-mix]
    python -m training.synth demo OUT_DIR [--soundfont SF2]

``--realism full`` makes songs closer to real sessions (:mod:`training.synth.realistic`); the default
``off`` keeps the original songs of every seed. For large realistic data sets use
``python -m training.datasets synth`` (size estimate, disk check, ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .demo import build_demo
from .plan import GENRES, REALISM
from .render import SOUNDFONT, generate, have_fluidsynth

DESCRIPTION = "Synthetic multitracks made like Slakh2100: procedural MIDI songs rendered per instrument."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m training.synth", description=DESCRIPTION)
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
    gen.add_argument("--soundfont", type=Path, default=None,
                     help=f"default: {SOUNDFONT}; with --realism full, drawn per song")
    gen.add_argument("--realism", choices=REALISM, default="off",
                     help="off: the original songs (default); full: song form, recorded drum kits, "
                          "bleed, noise floors, a dry mix")
    gen.add_argument("--no-dry-mix", dest="dry_mix", action="store_false",
                     help="with --realism full, do not write mix.flac")
    demo = sub.add_parser("demo", help="build the demo stems and reference")
    demo.add_argument("out_dir", type=Path)
    demo.add_argument("--soundfont", type=Path, default=None, help=f"default: {SOUNDFONT}")
    args = parser.parse_args(argv)
    if not have_fluidsynth(args.soundfont or SOUNDFONT):
        print(f"error: needs the fluidsynth program and the soundfont {args.soundfont or SOUNDFONT} "
              "(Debian: apt-get install fluidsynth fluid-soundfont-gm)", file=sys.stderr)
        return 2
    if args.command == "generate":
        songs = generate(args.out_dir, args.songs, args.seed, args.seconds, args.sample_rate, args.jobs,
                         args.genre, subtype=f"PCM_{args.bits}", soundfont=args.soundfont,
                         realism=args.realism, dry_mix=args.dry_mix)
        print(f"{len(songs)} songs in {args.out_dir}")
    else:
        info = build_demo(args.out_dir, soundfont=args.soundfont or SOUNDFONT)
        print(json.dumps(info["reference"], indent=2))
    return 0

