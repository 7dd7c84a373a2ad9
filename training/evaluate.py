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

Also here, shared so that one copy exists: the quality benchmark's measures of one case
(:func:`measure`: match report, MRSTFT to the true mix, balance error, plausibility; cases from
:func:`cross_case_of` / :func:`same_case_of`), used by ``benchmarks/quality.py`` and by training's
validation (:class:`QualityValidation`, :func:`validation_score`: the rule that picks ``best.pt``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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


# --- quality measures (shared with benchmarks/quality.py) ---------------------------------------------
#
# The quality benchmark's columns for one case and one set of console parameters (benchmarks/quality.py
# documents each); training's validation (:class:`QualityValidation`) measures the model with the same code.

CEILING_DBTP = -1.0
SHARE_FLOOR = 1e-4  # stems below -40 dB of the true mix's energy are left out of the balance error
LIMIT_EPS = 0.005
EQ_LIMIT_DB = 9.0
EQ_MATTERS_DB = 30.0


@dataclass
class Case:
    kind: str  # "cross" or "same"
    name: str
    inputs: object  # core.prepare.Inputs with the reference
    true_mix: np.ndarray | None = None  # (2, T) same-song only
    true_shares: np.ndarray | None = None  # (N,)
    info: dict = field(default_factory=dict)


def energy_shares(parts: np.ndarray) -> np.ndarray:
    """Each part's share of the summed energies of ``parts`` (N, 2, T)."""
    e = np.einsum("nct,nct->n", parts.astype(np.float64), parts.astype(np.float64))
    return e / max(float(e.sum()), 1e-30)


def cross_case_of(stems: dict, reference_stems: dict, sample_rate: int, rng: np.random.Generator,
                  name: str) -> Case:
    """A cross-song case: ``stems`` (as imported) against an engineer mix of ``reference_stems`` drawn
    from ``rng`` ({name: (C, T)} each)."""
    from training.engineer import engineer_mix, stems_inputs

    ref = engineer_mix(reference_stems, sample_rate, rng)
    inputs = stems_inputs(stems, sample_rate, reference=ref.mix)
    info = {"reference_lufs": ref.settings.loudness_lufs, "stems": len(inputs.names)}
    return Case("cross", name, inputs, info=info)


def same_case_of(stems: dict, sample_rate: int, rng: np.random.Generator, name: str) -> Case:
    """A same-song case: an engineer mix of ``stems`` (drawn from ``rng``) cut in halves; reference = the
    first half, stems = the second half, with the true mix and each stem's true share of it."""
    from training.engineer import engineer_mix, stems_inputs

    em = engineer_mix(stems, sample_rate, rng)
    half = em.mix.shape[-1] // 2
    src = em.inputs
    part = {n: src.stems[i, : (2 if src.stereo[i] else 1), half:] for i, n in enumerate(src.names)}
    inputs = stems_inputs(part, sample_rate, reference=em.mix[:, :half])
    info = {"reference_lufs": em.settings.loudness_lufs, "stems": len(inputs.names)}
    return Case("same", name, inputs, em.mix[:, half:].copy(), energy_shares(em.contributions[:, :, half:]),
                info)


# --- measures ------------------------------------------------------------------------------------------

def stem_band_levels(inputs) -> list[np.ndarray | None]:
    """1/3-octave levels (dB) of each stem's mid signal, None for silent stems."""
    from core.report import analysis_fft, band_levels_db, cross_spectra, mid_side

    out = []
    for x, silent in zip(inputs.stems, inputs.silent, strict=True):
        if silent:
            out.append(None)
            continue
        mid, _ = mid_side(cross_spectra(x, inputs.sample_rate))
        out.append(band_levels_db(mid, inputs.sample_rate, analysis_fft(inputs.sample_rate)))
    return out


def _band_region(kind: str, freq: float, q: float) -> tuple[float, float]:
    if kind == "low_shelf":
        return 20.0, freq
    if kind == "high_shelf":
        return freq, 20000.0
    octaves = 2.0 / math.log(2.0) * math.asinh(1.0 / (2.0 * q))
    return freq * 2.0 ** (-octaves / 2), freq * 2.0 ** (octaves / 2)


def _band_matters(levels: np.ndarray | None, kind: str, freq: float, q: float) -> bool:
    from core.report import CENTRES_HZ

    if levels is None:
        return True
    lo, hi = _band_region(kind, freq, q)
    inside = (CENTRES_HZ >= lo) & (CENTRES_HZ <= hi)
    if not inside.any():
        inside[np.argmin(np.abs(np.log(CENTRES_HZ / freq)))] = True
    return bool(levels[inside].max() >= levels.max() - EQ_MATTERS_DB)


def plausibility(inputs, params, band_levels) -> dict:
    """Range-limit shares, EQ gains beyond 9 dB (bands that matter) and fast compressors of ``params``."""
    from core.params import EQ_BAND_KEYS, EQ_BAND_TYPES, MASTER, TRACK

    rows = [(TRACK, params.tracks[i], band_levels[i])
            for i in range(len(inputs.names)) if not inputs.silent[i]]
    rows.append((MASTER, params.master, None))
    sends_open = any(TRACK.to_unit(vec)[TRACK.index("send_db")] >= LIMIT_EPS for _, vec, _ in rows[:-1])
    counted = at_limit = total_all = at_limit_all = 0
    eq_over, fast = [], []
    for schema, vec, levels in rows:
        unit = schema.to_unit(vec)
        pinned = (unit < LIMIT_EPS) | (unit > 1 - LIMIT_EPS)
        keep = schema.predicted_mask.copy()
        total_all += int(keep.sum())
        at_limit_all += int((pinned & keep).sum())
        ratio = vec[schema.index("comp_ratio")]
        if unit[schema.index("comp_ratio")] < LIMIT_EPS:  # compressor off: its detector does nothing
            for k in ("comp_threshold_db", "comp_ratio", "comp_attack_ms", "comp_release_ms", "comp_knee_db"):
                keep[schema.index(k)] = False
        if unit[schema.index("comp_makeup_db")] < LIMIT_EPS:  # no makeup: the neutral position
            keep[schema.index("comp_makeup_db")] = False
        if schema is TRACK and unit[schema.index("send_db")] < LIMIT_EPS:  # send off: the neutral position
            keep[schema.index("send_db")] = False
        if schema is MASTER and not sends_open:  # every send off: the FX return does nothing
            keep &= ~schema.group_mask("reverb")
        for band, kind in zip(EQ_BAND_KEYS, EQ_BAND_TYPES, strict=True):
            gain = vec[schema.index(f"{band}_gain_db")]
            freq, q = vec[schema.index(f"{band}_freq_hz")], vec[schema.index(f"{band}_q")]
            if abs(gain) < 0.05:
                keep[schema.index(f"{band}_freq_hz")] = keep[schema.index(f"{band}_q")] = False
            if abs(gain) > EQ_LIMIT_DB and _band_matters(levels, kind, freq, q):
                eq_over.append(f"{band} {gain:+.1f} dB")
        counted += int(keep.sum())
        at_limit += int((pinned & keep).sum())
        attack, release = vec[schema.index("comp_attack_ms")], vec[schema.index("comp_release_ms")]
        if ratio > 1.5 and (attack < 1.0 or release < 20.0):
            fast.append(f"{attack:.1f}/{release:.0f} ms")
    return {"at_limit": 100.0 * at_limit / max(counted, 1),
            "at_limit_all": 100.0 * at_limit_all / max(total_all, 1),
            "eq_over": bool(eq_over), "fast_comp": bool(fast), "eq_over_bands": eq_over,
            "fast_comp_list": fast}


def stem_shares(inputs, params, out: np.ndarray) -> np.ndarray:
    """Each stem's share of the energy of our output ``out``: strips through the master EQ and the master
    bus's gain curve (compressor, fader, limiter), as :func:`training.engineer.engineer_mix` measures
    the true contributions."""
    from training.engineer import apply_master_eq, render_strips, stage_gain

    strips = apply_master_eq(render_strips(inputs, params), params.master, inputs.sample_rate)
    gain = stage_gain(strips.sum(axis=0, dtype=np.float64), out)
    return energy_shares(strips * gain.astype(np.float32)[None, None, :])


def measure(case: Case, params, seconds: float, band_levels) -> dict:
    """Every column for one case and one row's parameters."""
    import torch

    from core.features import integrated_lufs, mrstft_loss
    from core.refine import evaluate
    from core.render import output_stage, render_mix
    from core.report import compare

    inputs = case.inputs
    sr = inputs.sample_rate
    ref_lufs = integrated_lufs(inputs.reference, sr)
    af, _ = evaluate(inputs, params)
    out, _ = output_stage(render_mix(inputs, params), sr, params, ref_lufs, CEILING_DBTP)
    rep = compare(out, inputs.reference, sr)
    row = {"af": float(af), "tonal_db": rep.tonal_deviation_db, "worst_octave_db": rep.worst_octave_db,
           "worst_octave": rep.worst_octave, "width_db": rep.width_deviation_db,
           "dynamics": rep.dynamics_deviation, "seconds": float(seconds),
           **plausibility(inputs, params, band_levels)}
    if case.true_mix is not None:
        gain = 10 ** ((integrated_lufs(case.true_mix, sr) - integrated_lufs(out, sr)) / 20)
        with torch.no_grad():
            row["mrstft"] = float(mrstft_loss(torch.from_numpy(out * np.float32(gain)),
                                              torch.from_numpy(case.true_mix)))
        ours = stem_shares(inputs, params, out)
        use = (case.true_shares >= SHARE_FLOOR) & ~np.asarray(inputs.silent, bool)
        diff = 10 * np.log10(np.maximum(ours[use], 1e-12) / case.true_shares[use])
        row["balance_db"] = float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0
        row["balance_per_stem_db"] = {inputs.names[i]: round(float(d), 2)
                                      for i, d in zip(np.flatnonzero(use), diff, strict=True)}
    return row


# --- validation during training -------------------------------------------------------------------------

#: Issue 9's model-only targets; the validation score is each metric over its target (1 = on target).
VAL_TARGETS = {"same": {"mrstft_rel": 0.8, "balance_db": 3.0},
               "cross": {"tonal_db": 2.5, "worst_octave_db": 4.5}}
#: Plausibility limits (the quality issue's): share of parameters at a range limit (%), share of cases
#: with an EQ gain beyond 9 dB where it matters, share with a fast compressor.
VAL_PLAUSIBLE = {"at_limit": 2.0, "eq_over": 0.1, "fast_comp": 0.1}


def validation_score(summary: dict[str, dict[str, float]]) -> float:
    """The scalar that picks the best checkpoint (lower is better), from :meth:`QualityValidation.run`'s
    summary ``{kind: {metric: mean over cases}}``.

    ``score = mean(metric / target)`` over the metrics of :data:`VAL_TARGETS` whose kind was measured
    (same-song: MRSTFT to the true mix relative to the equal-loudness sum's, balance error; cross-song:
    tonal deviation, worst octave), ``+ sum(max(0, value / limit - 1))`` over :data:`VAL_PLAUSIBLE`
    (means over all cases): a model on every target scores at most 1, and implausible settings only
    count once they pass their limit.
    """
    ratios = [summary[kind][k] / target for kind, targets in VAL_TARGETS.items() if kind in summary
              for k, target in targets.items() if k in summary[kind]]
    if not ratios:
        return math.nan
    score = float(np.mean(ratios))
    all_cases = summary.get("all", {})
    for k, limit in VAL_PLAUSIBLE.items():
        if k in all_cases:
            score += max(0.0, all_cases[k] / limit - 1.0)
    return score


def song_stems(song: Song, start_s: float, seconds: float, sample_rate: int) -> dict[str, np.ndarray]:
    """{track name: (C, T)} of ``seconds`` of ``song`` from ``start_s``, as recorded (mono stays one
    channel; the import trims them)."""
    from training.datasets import read_section

    out = {}
    for f in song.tracks:
        x = read_section(f, start_s, seconds, sample_rate)
        out[Path(f.path).stem] = x if f.channels >= 2 else x[:1]
    return out


class QualityValidation:
    """Model-only rows of the quality benchmark on held-out songs, for validation during training.

    From ``songs`` (held out from training), ``n_cross`` cross-song cases (stems of song i, reference =
    an engineer mix of song i + 1) and ``n_same`` same-song cases (an engineer mix of song j cut in
    halves), ``seconds`` from the middle of each song, engineer mixes drawn from ``seed``. The cases and
    the equal-loudness sum's measures are made once; :meth:`run` measures the model's own prediction
    (:func:`core.predict.predict`, no refinement and no same-song fit) with :func:`measure`.
    """

    def __init__(self, songs: Sequence[Song], n_cross: int = 2, n_same: int = 2, seconds: float = 12.0,
                 sample_rate: int = 44100, seed: int = 0):
        self.cases: list[Case] = []
        self.levels, self.base = [], []
        songs = list(songs)
        if not songs:
            return

        def stems(k):
            s = songs[k % len(songs)]
            return song_stems(s, max(0.0, (s.seconds - seconds) / 2), seconds, sample_rate)

        for i in range(n_cross):
            other = (i + 1) % len(songs)
            self.cases.append(cross_case_of(stems(i), stems(other), sample_rate,
                                            np.random.default_rng([seed, 1, i]),
                                            f"{songs[i % len(songs)].name}<-{songs[other].name}"))
        for j in range(n_same):
            k = n_cross + j
            self.cases.append(same_case_of(stems(k), sample_rate, np.random.default_rng([seed, 2, j]),
                                           f"{songs[k % len(songs)].name} halves"))
        for case in self.cases:
            levels = stem_band_levels(case.inputs)
            self.levels.append(levels)
            self.base.append(measure(case, case.inputs.default_params(), 0.0, levels))

    def __len__(self) -> int:
        return len(self.cases)

    def run(self, model) -> dict:
        """``{"score", "summary": {kind: means, "all": plausibility means}, "cases": [...]}``."""
        from core.predict import predict

        rows = []
        for case, levels, base in zip(self.cases, self.levels, self.base, strict=True):
            t0 = time.perf_counter()
            params = predict(case.inputs, model)
            row = measure(case, params, time.perf_counter() - t0, levels)
            if "mrstft" in row:
                row["mrstft_rel"] = row["mrstft"] / base["mrstft"] if base["mrstft"] > 0 else math.nan
            rows.append((case.kind, row))
        summary: dict[str, dict[str, float]] = {}
        keys = {"cross": ("tonal_db", "worst_octave_db", "width_db"),
                "same": ("mrstft_rel", "balance_db", "tonal_db")}
        for kind, ks in keys.items():
            got = [r for k, r in rows if k == kind]
            if got:
                summary[kind] = {k: float(np.mean([r[k] for r in got])) for k in ks}
        summary["all"] = {"at_limit": float(np.mean([r["at_limit"] for _, r in rows])),
                          "eq_over": float(np.mean([bool(r["eq_over"]) for _, r in rows])),
                          "fast_comp": float(np.mean([bool(r["fast_comp"]) for _, r in rows]))}
        return {"score": validation_score(summary), "summary": summary,
                "cases": [{"kind": k, **{m: r[m] for m in ("tonal_db", "worst_octave_db", "mrstft_rel",
                                                           "balance_db", "at_limit") if m in r}}
                          for k, r in rows]}

    def flat(self, result: dict) -> dict[str, float]:
        """The result as flat log columns (``val_score``, ``val_same_mrstft_rel`` ...)."""
        out = {"val_score": result["score"]}
        for kind, metrics in result["summary"].items():
            for k, v in metrics.items():
                out[f"val_{kind}_{k}"] = v
        return out


#: Log columns of :meth:`QualityValidation.flat`.
VAL_COLUMNS = ("val_score", "val_same_mrstft_rel", "val_same_balance_db", "val_same_tonal_db",
               "val_cross_tonal_db", "val_cross_worst_octave_db", "val_cross_width_db", "val_all_at_limit",
               "val_all_eq_over", "val_all_fast_comp")


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
