"""Same-song references: detection scores, fit quality and speed on generated songs.

Run: .venv/bin/python benchmarks/bench_samesong.py [--songs 16] [--dir DIR] [--seconds 40]

Songs are FluidSynth renders from training/synth/ (generated into DIR, default a temporary folder;
existing songs are reused); without FluidSynth the numpy songs of tests/synthetic.py stand in. Each song
is split in halves; the stems are always the second half. Cases:

* aligned: reference = the second half through the console with random faders (-12..+6 dB), pans,
  shelves and a peaking band (+-6 / +-4 dB), compressors on half the tracks, in half the songs a master
  bus (shelves, compressor), in half a stereo reverb, then loudness-normalised and limited;
* section: reference = the first half through the same console (the finished mix of another section);
* unrelated: reference = another song's first half with its own random console (every ordered pair).

Detection: scores of each kind (same-song minimum against unrelated maximum). Fit: MRSTFT of our mix
(equal-loudness sum, then :func:`core.samesong.fit_same_song`) to the true mix of the second half (the
same console, no reverb/master), both loudness-matched, as a ratio to the sum's; per-stem balance error
(RMS over stems of the dB difference of each stem's share of the mix energy). Speed: detect + fit on
8 stems x 30 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import table  # noqa: E402

SR = 44100


def _inputs(stems: dict, reference=None):
    from core.audio_io import Audio
    from core.prepare import from_audio

    audio = []
    for name, x in stems.items():
        x = np.ascontiguousarray(np.atleast_2d(np.asarray(x, np.float32)))
        audio.append(Audio(x, SR, f"{name}.wav", name, SR, x.shape[-1], silent=bool(np.abs(x).max() < 1e-5)))
    ref = None if reference is None else Audio(reference, SR, "reference.wav", "reference", SR,
                                               reference.shape[-1])
    return from_audio(audio, SR, ref)


def _halves(stems: dict) -> tuple[dict, dict]:
    half = next(iter(stems.values())).shape[-1] // 2
    return ({k: v[..., :half] for k, v in stems.items()},
            {k: v[..., half:2 * half] for k, v in stems.items()})


def _songs(n: int, folder: Path | None, seconds: float) -> list[dict]:
    from training.synth import generate_song, have_fluidsynth, load_song, read_song, song_seed

    if not have_fluidsynth():
        from synthetic import make_stems

        print("FluidSynth not found: numpy songs from tests/synthetic.py", flush=True)
        return [make_stems(SR, seconds, seed=i, bpm=90.0 + 3.0 * i) for i in range(n)]
    folder = folder or Path(tempfile.mkdtemp(prefix="samesong_"))
    out = []
    for i in range(n):
        song = folder / f"s{i:02d}"
        seed = song_seed(777, i)
        if not ((song / "song.json").is_file() and read_song(song).get("seed") == seed):
            generate_song(folder, seed, seconds=seconds, sample_rate=SR, song_id=song.name)
        _, stems, _ = load_song(song)
        out.append({k: (v.T if v.ndim == 2 else v[None]) for k, v in stems.items()})
    return out


def _console(inputs, rng, master: bool):
    from core.params import MASTER, TRACK

    p = inputs.default_params()
    n = len(inputs.names)
    t = TRACK.index
    p.tracks[:, t("gain_db")] = rng.uniform(-12, 6, n)
    p.tracks[:, t("pan")] = rng.uniform(-0.7, 0.7, n)
    p.tracks[:, t("eq_low_shelf_gain_db")] = rng.uniform(-6, 6, n)
    p.tracks[:, t("eq_high_shelf_gain_db")] = rng.uniform(-6, 6, n)
    p.tracks[:, t("eq_band2_gain_db")] = rng.uniform(-4, 4, n)
    on = rng.random(n) < 0.5
    p.tracks[on, t("comp_ratio")] = rng.uniform(2, 5, on.sum())
    p.tracks[on, t("comp_threshold_db")] = rng.uniform(-40, -25, on.sum())
    p.tracks[on, t("comp_attack_ms")] = rng.uniform(3, 30, on.sum())
    p.tracks[on, t("comp_release_ms")] = rng.uniform(50, 300, on.sum())
    with_master = p.copy()
    if master:
        m = MASTER.index
        with_master.master[m("eq_low_shelf_gain_db")] = rng.uniform(0, 3)
        with_master.master[m("eq_high_shelf_gain_db")] = rng.uniform(1, 4)
        with_master.master[m("comp_ratio")] = rng.uniform(2, 3.5)
        with_master.master[m("comp_threshold_db")] = rng.uniform(-30, -22)
        with_master.master[m("comp_attack_ms")] = 20.0
        with_master.master[m("comp_release_ms")] = 150.0
    return p, with_master


def _reverb(x, rng, wet=0.2, rt=1.2):
    from scipy.signal import fftconvolve

    n = int(rt * SR)
    ir = rng.standard_normal((2, n)) * np.exp(-6.9 * np.arange(n) / SR / rt)
    ir /= np.sqrt((ir ** 2).sum(axis=1, keepdims=True))
    y = np.stack([fftconvolve(x[c], ir[c])[: x.shape[-1]] for c in range(2)])
    y *= np.sqrt((x ** 2).mean() / max((y ** 2).mean(), 1e-20))
    return ((1 - wet) * x + wet * y).astype(np.float32)


def _finish(x):
    from core.features import integrated_lufs
    from core.render import limit

    return limit((x * 10 ** ((-14.0 - integrated_lufs(x, SR)) / 20)).astype(np.float32), SR, -1.0)


def _mix_and_energies(inputs, params):
    import torch

    from core.console import render

    with torch.no_grad():
        mix, per = render(torch.from_numpy(inputs.stems)[None], torch.from_numpy(params.tracks)[None].float(),
                          torch.from_numpy(params.master)[None].float(), SR,
                          stereo=torch.from_numpy(np.asarray(inputs.stereo))[None], return_tracks=True)
    return mix[0].numpy(), (per[0].double() ** 2).sum(dim=(1, 2)).numpy()


def _mrstft(a, b):
    import torch

    from core.features import integrated_lufs, mrstft_loss

    a = a * np.float32(10 ** ((integrated_lufs(b, SR) - integrated_lufs(a, SR)) / 20))
    return float(mrstft_loss(torch.from_numpy(a), torch.from_numpy(b)))


def _balance(e, e_true, live):
    s, t = e[live] / e[live].sum(), e_true[live] / e_true[live].sum()
    return float(np.sqrt(np.mean((10 * np.log10(s + 1e-12) - 10 * np.log10(t + 1e-12)) ** 2)))


def main(argv=None) -> None:
    from core import samesong
    from core.render import render_mix

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=16)
    ap.add_argument("--dir", type=Path, default=None, help="where generated songs are kept (reused)")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--no-fit", action="store_true", help="detection scores only (faster)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    songs = _songs(args.songs, args.dir, args.seconds)

    analyses, refs, fits = [], [], {"aligned": [], "section": []}
    scores = {"aligned": [], "section": [], "unrelated": []}
    for i, song in enumerate(songs):
        first, second = _halves(song)
        inputs = _inputs(second)
        truth, finished = _console(inputs, rng, master=bool(rng.random() < 0.5))
        before = _inputs(first)
        before.trim_db = inputs.trim_db  # the same console on the other half
        aligned = render_mix(inputs, finished)
        if rng.random() < 0.5:
            aligned = _reverb(aligned, rng)
        cases = {"aligned": _finish(aligned), "section": _finish(render_mix(before, finished))}
        own, _ = _console(before, rng, master=True)
        refs.append(_finish(render_mix(before, own)))  # this song's first half, for the unrelated pairs
        if not args.no_fit:
            true_mix, e_true = _mix_and_energies(inputs, truth)
            sum_mix, e_sum = _mix_and_energies(inputs, inputs.default_params())
        live = ~inputs.silent
        for kind, ref in cases.items():
            inputs.reference = ref
            det = samesong.detect(inputs)
            scores[kind].append(det.score)
            if args.no_fit:
                continue
            fit = samesong.fit_same_song(inputs, inputs.default_params(), det)
            fit_mix, e_fit = _mix_and_energies(inputs, fit)
            fits[kind].append((_mrstft(fit_mix, true_mix) / _mrstft(sum_mix, true_mix),
                               _balance(e_sum, e_true, live), _balance(e_fit, e_true, live)))
        inputs.reference = refs[-1]
        analyses.append(samesong._analyse_inputs(inputs))
        line = f"song {i + 1}/{len(songs)}: score aligned {scores['aligned'][-1]:.2f}, " \
               f"section {scores['section'][-1]:.2f}"
        if not args.no_fit:
            line += "; MRSTFT ratio / balance (sum -> fit) " + ", ".join(
                f"{kind} {v[-1][0]:.2f} / {v[-1][1]:.1f} -> {v[-1][2]:.1f} dB" for kind, v in fits.items())
        print(line, flush=True)
    own_refs = [(an.ref_env, an.ref_fine) for an in analyses]
    for i, an in enumerate(analyses):
        for j, (ref_env, ref_fine) in enumerate(own_refs):
            if i != j:
                an.ref_env, an.ref_fine = ref_env, ref_fine
                scores["unrelated"].append(samesong._evidence(an)[0])

    rows = []
    for kind, v in scores.items():
        v = np.array(v)
        rows.append((kind, len(v), f"{v.min():.2f}", f"{np.median(v):.2f}", f"{v.max():.2f}",
                     f"{(v >= samesong.THRESHOLD).mean():.0%}"))
    print(f"\nDetection score (threshold {samesong.THRESHOLD:.2f})\n")
    print(table(rows, ("reference", "pairs", "min", "median", "max", "detected same-song")))
    rows = []
    for kind, v in fits.items():
        if not v:
            continue
        a = np.array(v)
        rows.append((kind, len(a), f"{a[:, 0].mean():.2f} (max {a[:, 0].max():.2f})", "<= 0.6",
                     f"{a[:, 1].mean():.1f}", f"{a[:, 2].mean():.1f} (max {a[:, 2].max():.1f})", "<= 2"))
    print("\nFit: MRSTFT to the true mix (ratio to the equal-loudness sum) and balance error (dB)\n")
    print(table(rows, ("reference", "songs", "MRSTFT ratio", "target", "balance: sum", "balance: fit",
                       "target")))

    from synthetic import make_stems

    stems = {f"{k}{j}": v for j in range(2) for k, v in make_stems(SR, 30.0, seed=j).items()}
    stems = dict(list(stems.items())[:8])
    inputs = _inputs(stems)
    inputs.reference = _finish(render_mix(inputs, _console(inputs, rng, master=True)[1]))
    samesong.fit_same_song(inputs, inputs.default_params())  # imports and first calls
    t0 = time.perf_counter()
    det = samesong.detect(inputs)
    t1 = time.perf_counter()
    samesong.fit_same_song(inputs, inputs.default_params(), det)
    t2 = time.perf_counter()
    print("\nSpeed, 8 stems x 30 s\n")
    print(table([("detect", f"{t1 - t0:.2f} s", "-"), ("fit", f"{t2 - t1:.2f} s", "-"),
                 ("detect + fit", f"{t2 - t0:.2f} s", "< 2 s")], ("step", "time", "target")))


if __name__ == "__main__":
    main()
