"""Evaluation on held-out multitracks: AF loss of each way of mixing, as a Markdown table (cf. Table 2 of
Diff-MST, ISMIR 2024).

    python -m training.evaluate --model assets/model/default.pt --data data/synth_test --songs 16 \\
        --steps 25 [--references REF_DIR] [--out table.md] [--json results.json]

Each song's stems are imported as ``stylemix mix`` imports them (trims by loudness normalisation) and
paired with a reference: the i-th file of ``--references`` (cycled), or, for generated songs, a
:func:`training.synth.reference_mix` of the *next* song (an unrelated song, as in the paper's method 2
and Table 2). Rows, all measured by :func:`core.refine.evaluate` on the same analysis sections:

* equal-loudness sum -- console defaults (the baseline the paper reports);
* random parameters -- uniform over each parameter's range, and random "musical" settings;
* model only -- :func:`core.predict.predict`;
* refine only -- :func:`core.refine.refine` from the defaults, ``--steps`` steps;
* model + refine -- refinement from the model's prediction, the same number of steps.

Columns: the AF loss (sum of the weighted terms) and its five weighted terms, each the mean over songs;
"% of sum": the mean loss as a percentage of the equal-loudness sum's mean loss (the paper's measure);
"per-song ratio": the geometric mean over songs of loss / equal-loudness loss (not dominated by the
few songs whose equal-loudness sum has almost no side signal, where the sum's bark term explodes);
the median loss; and the time each row took per song.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.audio_io import Audio, load_audio
from core.features import AF_WEIGHTS
from core.prepare import Inputs, from_audio
from core.refine import RefineConfig, evaluate, refine
from training.datasets import DatasetError, Song, detect_layout, scan_multitracks, scan_references
from training.methods import random_params

TERMS = tuple(AF_WEIGHTS)  # rms, crest_db, width, imbalance, bark
TERM_LABELS = {"rms": "RMS", "crest_db": "Crest", "width": "Width", "imbalance": "Imbalance", "bark": "Bark"}


def _stems(song: Song, sample_rate: int) -> list[Audio]:
    return [load_audio(t.path, sample_rate) for t in song.tracks]


def _generated_reference(song_dir: Path, sample_rate: int, seed: int) -> Audio:
    from training.synth import load_song, reference_mix

    _, stems, sr = load_song(song_dir)
    rng = np.random.default_rng([seed, 31337])
    mix = reference_mix(stems, sr, rng, master=bool(rng.random() < 0.5)).T  # (2, T)
    if sr != sample_rate:
        import soxr

        mix = soxr.resample(mix.T, sr, sample_rate).T
    mix = np.ascontiguousarray(mix, dtype=np.float32)
    name = f"{song_dir.name} (mix)"
    return Audio(mix, sample_rate, str(song_dir / "reference_mix"), name, sr, mix.shape[-1])


def song_inputs(songs: Sequence[Song], root_of: dict[str, Path], references: Sequence | None,
                sample_rate: int, seed: int = 0):
    """Yield ``(song name, reference name, Inputs)`` for each song, paired with its reference."""
    for i, song in enumerate(songs):
        if references:
            ref = load_audio(references[i % len(references)].path, sample_rate)
        else:
            other = songs[(i + 1) % len(songs)]
            ref = _generated_reference(root_of[other.name] / other.name, sample_rate, seed)
        yield song.name, ref.name, from_audio(_stems(song, sample_rate), sample_rate, ref)


def _row(loss: float, terms: dict[str, float]) -> dict[str, float]:
    return {"loss": float(loss), **{k: float(terms[k]) for k in TERMS}}


def evaluate_song(inputs: Inputs, model, steps: int, seed: int = 0, rows: Sequence[str] | None = None
                  ) -> dict[str, dict[str, float]]:
    """AF loss and terms of each method on one song -> ``{method: {"loss", terms..., "seconds"}}``."""
    cfg = RefineConfig(steps=steps, seed=seed)
    rng = np.random.default_rng([seed, len(inputs.names)])
    out: dict[str, dict[str, float]] = {}
    want = set(rows) if rows else None

    def timed(name, fn):
        if want is not None and name not in want:
            return
        t0 = time.perf_counter()
        loss, terms = fn()
        out[name] = {**_row(loss, terms), "seconds": time.perf_counter() - t0}

    def with_random(style):
        mp = inputs.default_params()
        tracks, master = random_params(len(inputs.names), rng, style)
        trim = mp.tracks[:, 0].copy()
        mp.tracks, mp.master = tracks, master
        mp.tracks[:, 0] = trim
        return evaluate(inputs, mp, cfg)

    def refined(init):
        r = refine(inputs, init, cfg)
        return evaluate(inputs, r.params, cfg)  # the paper's AF loss of the refined console

    timed("equal_loudness", lambda: evaluate(inputs, inputs.default_params(), cfg))
    timed("random_uniform", lambda: with_random("uniform"))
    timed("random_musical", lambda: with_random("musical"))
    if model is not None:
        from core.predict import predict

        prediction = {}

        def model_only():
            prediction["p"] = predict(inputs, model)
            return evaluate(inputs, prediction["p"], cfg)

        timed("model", model_only)
    if steps > 0:
        timed("refine", lambda: refined(None))
        if model is not None:
            if "p" not in prediction:
                from core.predict import predict

                prediction["p"] = predict(inputs, model)
            timed("model_refine", lambda: refined(prediction["p"]))
    return out


ROW_NAMES = {
    "equal_loudness": "Equal-loudness sum (console defaults)",
    "random_uniform": "Random parameters (uniform over ranges)",
    "random_musical": "Random parameters (musical ranges)",
    "model": "Model only",
    "refine": "Refine only ({steps} steps from defaults)",
    "model_refine": "Model + refine ({steps} steps)",
}


def summarise(per_song: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of every column over songs, per method, plus the median loss and wins against the baseline."""
    methods = [m for m in ROW_NAMES if any(m in r for r in per_song.values())]
    summary = {}
    for m in methods:
        rows = [r[m] for r in per_song.values() if m in r]
        keys = ["loss", *TERMS, "seconds"]
        s = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        s["median_loss"] = float(np.median([r["loss"] for r in rows]))
        s["songs"] = len(rows)
        base = [r["equal_loudness"]["loss"] for r in per_song.values() if m in r and "equal_loudness" in r]
        if len(base) == len(rows) and all(b > 0 for b in base):
            ratios = [r["loss"] / b for r, b in zip(rows, base, strict=True)]
            s["geomean_ratio"] = float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-12)))))
        summary[m] = s
    return summary


def markdown_table(summary: dict[str, dict[str, float]], steps: int) -> str:
    """The summary as a Markdown table (mean AF loss and its weighted terms over songs)."""
    base = summary.get("equal_loudness", {}).get("loss")
    head = ["Method", "AF loss", *(TERM_LABELS[t] for t in TERMS), "% of sum", "Per-song ratio", "Median",
            "s/song"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for m, s in summary.items():
        pct = f"{100 * s['loss'] / base:.2f} %" if base else "-"
        ratio = f"{100 * s['geomean_ratio']:.2f} %" if "geomean_ratio" in s else "-"
        cells = [ROW_NAMES[m].format(steps=steps), f"{s['loss']:.4f}", *(f"{s[t]:.4f}" for t in TERMS), pct,
                 ratio, f"{s['median_loss']:.4f}", f"{s['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="checkpoint (default: none; model rows are left out)")
    parser.add_argument("--data", nargs="+", required=True, help="held-out multitrack folder(s)")
    parser.add_argument("--layout", default="auto", choices=("auto", "synth", "medleydb", "folders"))
    parser.add_argument("--references", nargs="+", help="reference folder(s) (default for generated songs: "
                                                          "a reference mix of the next song)")
    parser.add_argument("--songs", type=int, default=0, help="use the first N songs (default all)")
    parser.add_argument("--steps", type=int, default=25, help="refinement steps (0: no refine rows)")
    parser.add_argument("--rows", nargs="+", choices=list(ROW_NAMES), help="only these rows")
    parser.add_argument("--sample-rate", type=int, default=44100, choices=(44100, 48000))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the Markdown table here")
    parser.add_argument("--json", help="write per-song and summary results here")
    args = parser.parse_args(argv)

    from core.checkpoint import CheckpointError
    from core.predict import load_model

    try:
        model = load_model(args.model) if args.model else None
        songs, root_of = [], {}
        for root in args.data:
            for s in scan_multitracks(root, args.layout):
                songs.append(s)
                root_of[s.name] = Path(root)
        if args.songs:
            songs = songs[: args.songs]
        refs = scan_references(args.references) if args.references else None
        if refs is None and any(detect_layout(r) != "synth" for r in args.data):
            raise DatasetError("--references is needed for songs that were not generated")
    except (CheckpointError, DatasetError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1

    per_song: dict[str, dict] = {}
    t0 = time.perf_counter()
    pairs = song_inputs(songs, root_of, refs, args.sample_rate, args.seed)
    for k, (name, ref_name, inputs) in enumerate(pairs):
        result = evaluate_song(inputs, model, args.steps, args.seed, args.rows)
        per_song[name] = result
        line = ", ".join(f"{m} {r['loss']:.4f}" for m, r in result.items())
        print(f"[{k + 1}/{len(songs)}] {name} ({len(inputs.names)} stems) vs {ref_name}: {line}",
              file=sys.stderr, flush=True)
    summary = summarise(per_song)
    table = markdown_table(summary, args.steps)
    print(table)
    meta = {"model": args.model, "data": args.data, "songs": len(per_song), "steps": args.steps,
            "seed": args.seed, "seconds": round(time.perf_counter() - t0, 1)}
    if args.out:
        Path(args.out).write_text(table + "\n")
    if args.json:
        doc = {"meta": meta, "summary": summary, "songs": per_song}
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
