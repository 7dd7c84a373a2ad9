"""Quality of the mix as heard, on generated songs never used for training (issue 8, item 5).

    .venv/bin/python benchmarks/quality.py                   # defaults below, about 10-15 min here
    .venv/bin/python benchmarks/quality.py --songs-cross 6 --songs-same 4 --steps 60 --verbose --json q.json
    .venv/bin/python benchmarks/quality.py --tiny            # one short song of each kind, 3 steps

**Songs.** Procedural songs rendered per instrument with FluidSynth (:mod:`training.synth`), 24 s each,
from seeds that training does not use: the plain seeds 900001... and 900501... (training's songs take
seeds derived from ``--seed 1``; none of its first 20,000 falls in 900001-900999). They are generated
once and cached under ``data/quality/songs/`` (``--data``; the folder is git-ignored), keyed by seed and
length. References are finished mixes made
like an engineer would (:func:`training.engineer.engineer_mix`: per-role EQ, compression, balance and
pan, a reverb send, then a mastering EQ of several dB, bus compression and a true-peak limiter to a
loudness between -16 and -8 LUFS); they are recomputed on every run (deterministic, a few seconds each).
Two kinds of case:

* **cross-song** (default 8): stems of song A (seed 900001 + 2k), reference = finished mix of song B
  (seed 900002 + 2k): the product's everyday use;
* **same-song** (default 6): the finished mix of song C (seed 900501 + m) is cut in halves; the reference
  is the first half, the stems are the second half, and the true mix of the second half and each stem's
  true contribution to it are kept ("match my rough mix", "extend the first chorus").

``--synthetic`` uses the numpy songs of ``tests/synthetic.py`` instead (no FluidSynth; for the test
suite). ``--tiny``: one 8 s song of each kind and 3 refinement steps (the code paths, not the numbers).

**Rows**, each through :func:`core.suggest.suggest` as ``stylemix mix`` runs it (seed 0):
equal-loudness sum (``inputs.default_params()``), model only (shipped model, 0 steps), refine only (no
model, ``--steps``), model + refine. Every result is rendered like ``stylemix mix`` writes it:
:func:`core.render.render_mix` then :func:`core.render.output_stage` at the reference's integrated
loudness and a -1 dBTP ceiling.

**Columns** (means over the songs of a kind; ``--verbose`` prints every song):

* *AF loss, % of sum*: the paper's AF loss (:func:`core.refine.evaluate`, on the sections refinement
  uses) relative to the equal-loudness sum's, geometric mean over songs of the per-song ratio;
* *tonal*, *worst octave*, *width*, *dynamics*: the match report of the output against the reference
  (:func:`core.report.compare`, whole song, loudness-matched): RMS of the mid 1/3-octave differences
  40 Hz-16 kHz (dB), the largest octave difference (dB), RMS of the side/mid differences in three ranges
  (dB), RMS of the crest factor / loudness range / peak-to-loudness differences;
* *MRSTFT x sum* (same-song): multi-resolution STFT distance (:func:`core.features.mrstft_loss`) from the
  output to the true mix of the second half, after one scalar gain that gives the output the true mix's
  integrated loudness (level is the output stage's business; balance and tone are measured), relative
  to the equal-loudness sum's distance, geometric mean over songs;
* *balance error* (same-song): each stem's share of the mix energy (its energy over the sum of all stems'
  energies, through the master EQ and the master bus's gain curve), ours against the true contribution's;
  RMS over stems of the difference in dB (stems whose true share is below -40 dB are left out);
* *at limit*: share of parameters whose unit value is below 0.005 or above 0.995, over the predicted
  parameters of the non-silent tracks and the master bus, leaving out parameters that do nothing (a
  compressor's threshold/ratio/attack/release/knee while its ratio is 1:1; an EQ band's frequency and Q
  while its gain is 0 dB) and the neutral positions that sit at a range end by design (ratio 1:1, makeup
  0 dB). The JSON also holds the plain share (``at_limit_all``);
* *EQ > 9 dB*: songs with an EQ gain beyond +-9 dB in a band that matters (any band of the master; on a
  track, a band whose region holds the stem's energy within 30 dB of its loudest 1/3 octave);
* *fast comp*: songs with a compressor (track or master, ratio > 1.5) at attack < 1 ms or release < 20 ms;
* *s/song*: seconds of :func:`core.suggest.suggest` per song (prediction and refinement; no rendering).

The targets of issue 8 are printed beside the table. ``--json OUT`` writes every number. The measures
(:func:`training.evaluate.measure` and the functions it calls) live in :mod:`training.evaluate`, where
training's validation uses the same code.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.evaluate import (  # noqa: E402  (the measures, shared with training's validation)
    Case,
    cross_case_of,
    measure,
    plausibility,  # noqa: F401  (re-exported: quality.plausibility)
    same_case_of,
    stem_band_levels,
)

_stem_band_levels = stem_band_levels  # the name the tests use

SAMPLE_RATE = 44100
SEED_CROSS = 900001  # song pairs (900001, 900002), (900003, 900004), ...
SEED_SAME = 900501
DEFAULT_CROSS = 8
DEFAULT_SAME = 6
DEFAULT_STEPS = 60
DEFAULT_SECONDS = 24.0
TINY = {"cross": 1, "same": 1, "steps": 3, "seconds": 8.0}

ROWS = ("sum", "model", "refine", "model_refine")
ROW_LABELS = {"sum": "equal-loudness sum", "model": "model only", "refine": "refine only ({steps} steps)",
              "model_refine": "model + refine ({steps} steps)"}
KINDS = ("cross", "same")
KIND_TITLES = {"cross": "cross-song (stems of song A, reference: a finished mix of song B)",
               "same": "same-song (reference: finished mix of the first half; stems: the second half)"}

# column key, header, format; same-song only where marked
COLUMNS = (
    ("af_rel", "AF loss, % of sum", "{:.2f} %", False),
    ("tonal_db", "tonal (dB)", "{:.2f}", False),
    ("worst_octave_db", "worst octave (dB)", "{:.2f}", False),
    ("width_db", "width (dB)", "{:.2f}", False),
    ("dynamics", "dynamics", "{:.2f}", False),
    ("mrstft_rel", "MRSTFT x sum", "{:.2f}", True),
    ("balance_db", "balance error (dB)", "{:.2f}", True),
    ("at_limit", "at limit", "{:.1f} %", False),
    ("eq_over", "EQ > 9 dB", "{}", False),
    ("fast_comp", "fast comp", "{}", False),
    ("seconds", "s/song", "{:.1f}", False),
)
#: Issue 8's targets (model + refine); a column left out has no target for that kind.
TARGETS = {
    "cross": {"af_rel": "<= 1 %", "tonal_db": "<= 1.5", "worst_octave_db": "<= 3", "width_db": "<= 2",
              "dynamics": "<= 1.5", "at_limit": "<= 2 %", "eq_over": "<= 1 in 10", "fast_comp": "<= 1 in 10",
              "seconds": "<= 15 (8 stems x 20 s)"},
    "same": {"af_rel": "<= 1 %", "mrstft_rel": "<= 0.6", "balance_db": "<= 2", "at_limit": "<= 2 %",
             "eq_over": "<= 1 in 10", "fast_comp": "<= 1 in 10"},
}


# --- songs and cases -----------------------------------------------------------------------------------

def fluidsynth_song(seed: int, seconds: float, data_dir: Path) -> dict[str, np.ndarray]:
    """Stems of generated song ``seed`` ({name: (T,) or (T, 2)}), generated once into ``data_dir``."""
    from training.synth import generate_song, load_song, read_song

    folder = Path(data_dir) / "songs"
    song_id = f"seed_{seed}_{seconds:g}s"
    song_dir = folder / song_id
    ok = False
    if (song_dir / "song.json").is_file():
        meta = read_song(song_dir)
        ok = (meta.get("seed"), meta.get("seconds"), meta.get("sample_rate")) == (seed, seconds, SAMPLE_RATE)
    if not ok:
        generate_song(folder, seed, seconds, SAMPLE_RATE, song_id=song_id)
    _, stems, _ = load_song(song_dir)
    return stems


def numpy_song(seed: int, seconds: float) -> dict[str, np.ndarray]:
    """Stems of a numpy-made song (tests/synthetic.py), {name: (C, T)}."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from synthetic import make_stems

    return make_stems(SAMPLE_RATE, seconds, seed=seed, bpm=90.0 + seed % 50)


def cross_case(index: int, song, seconds: float) -> Case:
    seed_a, seed_b = SEED_CROSS + 2 * index, SEED_CROSS + 2 * index + 1
    stems_b = song(seed_b, seconds)
    case = cross_case_of(song(seed_a, seconds), stems_b, SAMPLE_RATE, np.random.default_rng([seed_b, 1]),
                         f"{seed_a}<-{seed_b}")
    case.info = {"stems_seed": seed_a, "reference_seed": seed_b, **case.info}
    return case


def same_case(index: int, song, seconds: float) -> Case:
    seed = SEED_SAME + index
    case = same_case_of(song(seed, seconds), SAMPLE_RATE, np.random.default_rng([seed, 1]), f"{seed} halves")
    case.info = {"seed": seed, **case.info}
    return case


# --- measures: training.evaluate (shared with training's validation) ------------------------------------

def run_case(case: Case, model, steps: int, seed: int = 0, reverb: bool | None = None) -> dict[str, dict]:
    """All rows for one case -> {row: measures}; ``reverb``: prediction and refinement may set the reverb
    sends and the FX return (``SuggestConfig.reverb``)."""
    from core.suggest import SuggestConfig, suggest

    inputs = case.inputs
    levels = stem_band_levels(inputs)
    out = {"sum": measure(case, inputs.default_params(), 0.0, levels)}
    plans = [("model", model, 0), ("refine", None, steps), ("model_refine", model, steps)]
    for row, m, s in plans:
        if row != "refine" and model is None:
            continue
        extra = {} if reverb is None else {"reverb": reverb}
        result = suggest(inputs, m, SuggestConfig(steps=s, seed=seed, **extra))
        out[row] = measure(case, result.params, result.seconds, levels)
        out[row]["reference_kind"] = getattr(result, "reference_kind", None)  # what suggest detected
    base = out["sum"]
    for r in out.values():
        r["af_rel"] = r["af"] / base["af"] if base["af"] > 0 else float("nan")
        if "mrstft" in r:
            r["mrstft_rel"] = r["mrstft"] / base["mrstft"] if base["mrstft"] > 0 else float("nan")
    return out


def warm_up(case: Case, model) -> None:
    """One short prediction and refinement, so compiled kernels are ready before anything is timed."""
    from core.suggest import SuggestConfig, suggest

    suggest(case.inputs, model, SuggestConfig(steps=2))


# --- summary and table ---------------------------------------------------------------------------------

def _geomean(values) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    return float(np.exp(np.mean(np.log(np.maximum(v, 1e-12))))) if v.size else float("nan")


def summarise(results: list[dict]) -> dict[str, dict[str, dict]]:
    """{kind: {row: {column: mean over songs, "songs": n}}} from per-case results."""
    out: dict[str, dict[str, dict]] = {}
    for kind in KINDS:
        cases = [c for c in results if c["kind"] == kind]
        if not cases:
            continue
        out[kind] = {}
        for row in ROWS:
            rows = [c["rows"][row] for c in cases if row in c["rows"]]
            if not rows:
                continue
            s = {"songs": len(rows), "af_rel": 100.0 * _geomean(r["af_rel"] for r in rows),
                 "eq_over": sum(bool(r["eq_over"]) for r in rows),
                 "fast_comp": sum(bool(r["fast_comp"]) for r in rows)}
            for key in ("tonal_db", "worst_octave_db", "width_db", "dynamics", "at_limit", "at_limit_all",
                        "seconds", "balance_db", "af"):
                if all(key in r for r in rows):
                    s[key] = float(np.mean([r[key] for r in rows]))
            if all("mrstft_rel" in r for r in rows):
                s["mrstft_rel"] = _geomean(r["mrstft_rel"] for r in rows)
            out[kind][row] = s
    return out


def _cell(key: str, fmt: str, s: dict) -> str:
    if key not in s:
        return "–"
    if key in ("eq_over", "fast_comp"):
        return f"{s[key]}/{s['songs']}"
    value = s[key]
    return "–" if isinstance(value, float) and not math.isfinite(value) else fmt.format(value)


def markdown(summary: dict, steps: int) -> str:
    """One Markdown table per kind of case, rows beside issue 8's targets."""
    parts = []
    for kind in KINDS:
        if kind not in summary:
            continue
        cols = [c for c in COLUMNS if kind == "same" or not c[3]]
        songs = max(s["songs"] for s in summary[kind].values())
        parts.append(f"**{KIND_TITLES[kind]}**, {songs} song{'s' * (songs != 1)}\n")
        head = ["row", *(c[1] for c in cols)]
        lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(cols)]
        for row, s in summary[kind].items():
            cells = [ROW_LABELS[row].format(steps=steps), *(_cell(k, f, s) for k, _, f, _ in cols)]
            lines.append("| " + " | ".join(cells) + " |")
        target = TARGETS.get(kind, {})
        cells = ["*target (model + refine)*", *(target.get(k, "–") for k, *_ in cols)]
        lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _per_song_line(case: dict, steps: int) -> str:
    bits = []
    for row, r in case["rows"].items():
        extra = ""
        if "mrstft_rel" in r:
            extra = f" mrstft x{r['mrstft_rel']:.2f} balance {r['balance_db']:.1f} dB"
        flags = "".join([" EQ>9" if r["eq_over"] else "", " fast-comp" if r["fast_comp"] else ""])
        bits.append(f"  {ROW_LABELS[row].format(steps=steps)}: AF {100 * r['af_rel']:.1f} %, tonal "
                    f"{r['tonal_db']:.2f}, worst {r['worst_octave_db']:.2f} ({r['worst_octave']}), width "
                    f"{r['width_db']:.2f}, dyn {r['dynamics']:.2f}{extra}, limit {r['at_limit']:.1f} %"
                    f"{flags}, {r['seconds']:.1f} s")
    return f"{case['kind']} {case['name']} ({case['info'].get('stems')} stems)\n" + "\n".join(bits)


# --- main ----------------------------------------------------------------------------------------------

def run(n_cross: int, n_same: int, steps: int, seconds: float, song, model, seed: int = 0,
        verbose: bool = False, log=print, reverb: bool | None = None) -> tuple[list[dict], dict]:
    """Build and measure every case; returns (per-case results, summary)."""
    results = []
    jobs = [(cross_case, k) for k in range(n_cross)] + [(same_case, m) for m in range(n_same)]
    for i, (make, k) in enumerate(jobs):
        t0 = time.perf_counter()
        case = make(k, song, seconds)
        if i == 0:
            warm_up(case, model)
        rows = run_case(case, model, steps, seed, reverb=reverb)
        entry = {"kind": case.kind, "name": case.name, "info": case.info, "rows": rows,
                 "wall_s": round(time.perf_counter() - t0, 1)}
        results.append(entry)
        log(f"[{i + 1}/{len(jobs)}] {case.kind} {case.name}: {len(case.inputs.names)} stems, "
            f"{entry['wall_s']:.0f} s")
        if verbose:
            log(_per_song_line(entry, steps))
    return results, summarise(results)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/quality.py", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs-cross", type=int, help=f"cross-song cases (default {DEFAULT_CROSS})")
    ap.add_argument("--songs-same", type=int, help=f"same-song cases (default {DEFAULT_SAME})")
    ap.add_argument("--steps", type=int, help=f"refinement steps (default {DEFAULT_STEPS})")
    ap.add_argument("--seconds", type=float,
                    help=f"length of each generated song (default {DEFAULT_SECONDS:g})")
    ap.add_argument("--tiny", action="store_true",
                    help="one 8 s song of each kind, 3 steps (code paths only; the flags above override)")
    ap.add_argument("--synthetic", action="store_true",
                    help="numpy songs from tests/synthetic.py instead of FluidSynth songs")
    ap.add_argument("--data", default=str(ROOT / "data" / "quality"), help="cache of generated songs")
    ap.add_argument("--no-model", action="store_true", help="leave out the model rows")
    ap.add_argument("--model", metavar="CHECKPOINT",
                    help="the model rows with this checkpoint (default: the shipped assets/model/default.pt)")
    ap.add_argument("--seed", type=int, default=0, help="refinement seed (default 0)")
    ap.add_argument("--json", metavar="OUT", help="write per-song results and the summary here")
    ap.add_argument("--verbose", action="store_true", help="print every song's rows")
    ap.add_argument("--reverb", action=argparse.BooleanOptionalAction, default=None,
                    help="let prediction and refinement set the reverb sends and the FX return "
                         "(default: as stylemix mix does)")
    args = ap.parse_args(argv)
    defaults = TINY if args.tiny else {"cross": DEFAULT_CROSS, "same": DEFAULT_SAME, "steps": DEFAULT_STEPS,
                                       "seconds": DEFAULT_SECONDS}
    for attr, key in (("songs_cross", "cross"), ("songs_same", "same"), ("steps", "steps"),
                      ("seconds", "seconds")):
        if getattr(args, attr) is None:
            setattr(args, attr, defaults[key])
    if min(args.songs_cross, args.songs_same, args.steps) < 0 or args.seconds <= 0:
        ap.error("counts and steps must be >= 0, --seconds > 0")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        ap.error(f"--json {args.json}: folder {Path(args.json).resolve().parent} does not exist")

    from core.predict import load_default_model
    from training.synth import have_fluidsynth

    synthetic = args.synthetic
    if not synthetic and not have_fluidsynth():
        print("quality: FluidSynth or its soundfont is missing (scripts/setup.sh installs them); "
              "using the numpy songs of tests/synthetic.py", file=sys.stderr)
        synthetic = True
    if synthetic:
        def song(seed, seconds):
            return numpy_song(seed, seconds)
    else:
        def song(seed, seconds):
            return fluidsynth_song(seed, seconds, Path(args.data))
    model = None if args.no_model else load_default_model(args.model)
    if model is None and not args.no_model:
        print("quality: no shipped model; model rows left out", file=sys.stderr)

    t0 = time.perf_counter()
    try:
        results, summary = run(args.songs_cross, args.songs_same, args.steps, args.seconds, song, model,
                               args.seed, args.verbose, log=lambda s: print(s, file=sys.stderr, flush=True),
                               reverb=args.reverb)
    except (RuntimeError, OSError) as exc:  # e.g. FluidSynth failing, the data folder not writable
        print(f"quality: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    source = "numpy songs (tests/synthetic.py)" if synthetic else "FluidSynth songs"
    print(f"## Quality on held-out generated songs ({source}, {args.seconds:g} s each, "
          f"{args.steps} refine steps; {wall / 60:.1f} min)\n")
    print(markdown(summary, args.steps))
    if args.json:
        from core.fileio import atomic_write

        meta = {"songs_cross": args.songs_cross, "songs_same": args.songs_same, "steps": args.steps,
                "seconds": args.seconds, "source": source, "seed": args.seed, "wall_s": round(wall, 1)}
        doc = {"meta": meta, "targets": TARGETS, "summary": summary, "songs": results}
        blob = (json.dumps(_jsonable(doc), indent=1) + "\n").encode()
        atomic_write(args.json, lambda f: f.write(blob))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
