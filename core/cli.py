"""``stylemix`` command line.

``stylemix mix`` turns raw stems plus a reference song into a mix and a full set of console
parameters; ``render`` re-renders a saved parameter set; ``analyze`` measures files; ``params`` prints
the console's parameter table. With no sub-command (or a session / audio files) it opens the desktop
app. Exit status: 0 success, 1 bad input, 2 usage error. Errors are one line on stderr; ``--debug``
shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

COMMANDS = ("mix", "render", "analyze", "params")


class CliError(Exception):
    """Bad input detected by the CLI itself; the message is one line for the user."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .audio_io import AudioError
    from .paramfile import ParamsError

    errors: list[type[BaseException]] = [CliError, AudioError, ParamsError]
    try:
        from .checkpoint import CheckpointError

        errors.append(CheckpointError)
    except ImportError:
        pass
    return tuple(errors)


# --- argument parsing -----------------------------------------------------------------------------

def _add_output_args(p: argparse.ArgumentParser, loudness_help: str) -> None:
    p.add_argument("--out", required=True, metavar="MIX.wav", help="output audio file (.wav or .flac)")
    p.add_argument("--format", choices=["wav", "flac"],
                   help="output format (default: from --out's extension)")
    p.add_argument("--bits", choices=["16", "24", "32f"], default="24",
                   help="sample format: 16- or 24-bit integer, or 32-bit float (default 24)")
    p.add_argument("--sample-rate", type=int, choices=[44100, 48000], default=44100,
                   help="session sample rate; inputs are resampled to it (default 44100)")
    p.add_argument("--loudness", type=float, metavar="LUFS", help=loudness_help)
    p.add_argument("--ceiling", type=float, default=-1.0, metavar="DBTP",
                   help="true-peak ceiling of the output limiter, dBTP (default -1)")
    p.add_argument("--engine", choices=["stream", "torch"], default="stream",
                   help="renderer: the streaming engine that playback uses (default) or the torch console")
    p.add_argument("--stems-out", metavar="DIR",
                   help="also write each processed stem (after its strip, before the master bus) here")


def build_parser() -> argparse.ArgumentParser:
    from .refine import RefineConfig

    parser = argparse.ArgumentParser(
        prog="stylemix",
        description="Mixing assistant: fills a mixing console from raw stems and a reference song.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'stylemix COMMAND --help' for a command's options.\n\n"
               "Without a command, stylemix opens the desktop app:\n"
               "  stylemix [SESSION | FILES...] [--reference REF] [--demo] [--no-audio] [--compact]\n"
               "  stylemix --screenshot OUT.png [--size WxH] [--predict] [SESSION]\n"
               "--demo opens the bundled demo session (without a display: the command-line demo).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("mix", help="mix stems to match a reference song",
                       description="Mix STEMs (files or folders) so that the mix matches REF's style: "
                                   "fits the console by gradient descent on the AF style loss, "
                                   "writes the mix and optionally the parameters.")
    p.add_argument("stems", nargs="+", metavar="STEM", help="stem files or folders of stems")
    p.add_argument("--reference", required=True, metavar="REF", help="reference song")
    _add_output_args(p, "output loudness, LUFS integrated (default: the reference's loudness)")
    p.add_argument("--params-out", metavar="P.json", help="write the console parameters here")
    p.add_argument("--params-in", metavar="P.json",
                   help="start from these parameters (instead of the model's prediction)")
    p.add_argument("--model", metavar="PATH", help="model checkpoint (default: the shipped model)")
    p.add_argument("--no-model", action="store_true",
                   help="no prediction: refine from the equal-loudness defaults")
    p.add_argument("--steps", type=int, default=RefineConfig.steps,
                   help=f"refinement steps after the prediction (default {RefineConfig.steps}; "
                        "0 = model only)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--lock", nargs="+", default=[], metavar="KEY",
                   help="keep these parameters: KEY or GROUP (all tracks), TRACK:KEY, master:KEY")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=V", dest="sets",
                   help="set (and lock) values: [TRACK:|master:]KEY=VALUE")
    p.add_argument("--region", nargs=2, type=float, metavar=("START", "END"),
                   help="analyse only this part of the stems (seconds), e.g. the chorus; the whole song "
                        "stays the context of the fit")
    p.add_argument("--prior", type=float, default=1.0, metavar="S",
                   help="strength of the plausibility prior that keeps settings where engineers work "
                        "(default 1; 0 = off, 2 = twice as firm)")
    p.add_argument("--reference-kind", choices=["auto", "same-song", "other"], default="auto",
                   help="is the reference a mix of these stems (a rough mix, another section of the same "
                        "song)? auto detects it (default); same-song fits the balance from its content")

    p = sub.add_parser("render", help="render stems with a saved parameter set",
                       description="Re-render STEMs with the console parameters in P.json (tracks are "
                                   "matched by name).")
    p.add_argument("stems", nargs="+", metavar="STEM", help="stem files or folders of stems")
    p.add_argument("--params", required=True, metavar="P.json", help="parameter file from 'mix --params-out'")
    _add_output_args(p, "re-normalise the output to this loudness, LUFS (default: as the parameters give)")

    p = sub.add_parser("analyze", help="loudness, true peak and style features of audio files",
                       description="Measure integrated/short-term/momentary loudness, true peak and "
                                   "the AF style features of each FILE.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("params", help="print the console's parameter table",
                       description="Print every console parameter: key, unit, range, default, scale.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


# --- helpers --------------------------------------------------------------------------------------

def _out_format(args) -> str:
    fmt = args.format or Path(args.out).suffix.lower().lstrip(".")
    if fmt not in ("wav", "flac"):
        raise CliError(f"{args.out}: unknown output format; use .wav or .flac, or --format")
    if fmt == "flac" and args.bits == "32f":
        raise CliError(f"{args.out}: FLAC has no 32-bit float; use --bits 16 or 24, or WAV")
    parent = Path(args.out).resolve().parent
    if not parent.is_dir():
        raise CliError(f"{args.out}: folder {parent} does not exist")
    return fmt


def _fmt_db(v: float) -> str:
    return f"{v:6.1f}" if math.isfinite(v) else "  -inf"


def _print_inputs(inputs, out=None) -> None:
    out = out or sys.stdout
    print(f"{len(inputs.names)} stems, {inputs.duration:.1f} s at {inputs.sample_rate} Hz:", file=out)
    for i, name in enumerate(inputs.names):
        kind = "stereo" if inputs.stereo[i] else "mono"
        flag = "  (silent: left out of analysis)" if inputs.silent[i] else ""
        print(f"  {name:24s} {kind:6s} trim {inputs.trim_db[i]:+6.1f} dB{flag}", file=out)
    for name, seconds in inputs.padded:
        print(f"  note: {name} is {seconds:.2f} s long, padded with silence to {inputs.duration:.2f} s",
              file=out)


def _progress(total: int, label: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="step", disable=not sys.stderr.isatty(), leave=False)

    def callback(step, steps, loss):
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        return False

    return bar, callback


def _finish(inputs, params, args, fmt: str, loudness: float | None):
    """Render, match loudness with the master fader, limit to the ceiling, write atomically.

    Returns (params as written, console loudness, output loudness, output true peak).
    """
    from .audio_io import write_audio
    from .export import export_mix
    from .features import integrated_lufs, true_peak_dbtp
    from .render import output_stage, render_mix

    sr = inputs.sample_rate
    if args.engine == "torch":
        if args.stems_out:
            raise CliError("--stems-out needs the streaming engine (--engine stream)")
        mix = render_mix(inputs, params, engine="torch")
        before = integrated_lufs(mix, sr)
        mix, params = output_stage(mix, sr, params, loudness, args.ceiling)
        write_audio(args.out, mix, sr, format=fmt, bits=args.bits)
        return params, before, integrated_lufs(mix, sr), true_peak_dbtp(mix, sr)
    from tqdm import tqdm

    with tqdm(total=100, desc="render", unit="%", disable=not sys.stderr.isatty(), leave=False) as bar:
        def progress(done, total):
            bar.update(int(100 * done / max(total, 1)) - bar.n)

        res = export_mix(inputs.stems, params.tracks, params.master, sr, args.out, fmt, args.bits,
                         loudness, args.ceiling, args.stems_out, progress, stereo=inputs.stereo,
                         names=inputs.names)
    from .params import MASTER

    # the console's own loudness: the output's, less the master-fader move (the limiter's share is
    # a few hundredths of a dB)
    fader_move = res.master_gain_db - params.master[MASTER.index("gain_db")]
    params = params.copy()
    params.master = np.asarray(res.master, dtype=np.float64)
    return params, res.loudness_lufs - fader_move, res.loudness_lufs, res.true_peak_dbtp


# --- commands -------------------------------------------------------------------------------------

def _start_params(inputs, args):
    """(current console, refinement start or None, model or None, source label) for ``mix``."""
    from .paramfile import read_params

    if args.params_in:
        init = read_params(args.params_in).select(inputs.names, args.params_in)
        init.files, init.stereo = list(inputs.files), [bool(s) for s in inputs.stereo]
        return init.copy(), init, None, "params-in"
    if args.no_model:
        if args.model:
            raise CliError("--model and --no-model contradict each other")
        return inputs.default_params(), None, None, "defaults"
    from .predict import load_default_model, load_model

    model = load_model(args.model) if args.model else load_default_model()
    if model is None:
        print("model: none shipped; refining from the equal-loudness defaults")
        return inputs.default_params(), None, None, "defaults"
    return inputs.default_params(), None, model, "model"


def _print_report(path: str, reference, sample_rate: int) -> None:
    """The match report's headline of the written mix against the reference (songs up to 20 min)."""
    from .audio_io import load_audio, to_stereo
    from .report import compare

    if reference.shape[-1] > 20 * 60 * sample_rate:
        return
    mix = to_stereo(load_audio(path, sample_rate).data)
    rep = compare(mix, reference, sample_rate)
    worst = ", ".join(f"{hz:g} Hz {d:+.1f}" for hz, d in rep.worst_bands(3))
    octave = float(rep.octave_diff_db[np.argmax(np.abs(rep.octave_diff_db))])
    print(f"match vs reference: tonal balance {rep.tonal_deviation_db:.1f} dB RMS (1/3 octaves 40 Hz-16 kHz; "
          f"worst octave {rep.worst_octave} {octave:+.1f} dB; "
          f"worst bands {worst}), width {rep.width_deviation_db:.1f} dB, dynamics {rep.dynamics_deviation:.1f}"
          " ('stylemix compare' shows all of it)")


def cmd_mix(args) -> int:
    from .features import integrated_lufs
    from .paramfile import apply_sets, lock_masks, write_params
    from .prepare import load_inputs
    from .refine import RefineConfig, evaluate
    from .suggest import SuggestConfig, suggest

    t0 = time.perf_counter()
    fmt = _out_format(args)
    if args.steps < 0:
        raise CliError(f"--steps must be >= 0, got {args.steps}")
    if not (math.isfinite(args.prior) and args.prior >= 0):
        raise CliError(f"--prior must be a number >= 0, got {args.prior}")
    inputs = load_inputs(args.stems, args.reference, args.sample_rate)
    _print_inputs(inputs)
    if inputs.silent.all():
        raise CliError("every stem is silent: nothing to mix")
    ref_lufs = integrated_lufs(inputs.reference, inputs.sample_rate)
    print(f"reference: {Path(args.reference).name}, {inputs.reference.shape[-1] / inputs.sample_rate:.1f} s, "
          f"{ref_lufs:.1f} LUFS")

    region = tuple(args.region) if args.region else None
    if region and not (0 <= region[0] < region[1] <= inputs.duration):
        raise CliError(f"--region {region[0]:g} {region[1]:g} is not within 0..{inputs.duration:.1f} s")
    current, init, model, source = _start_params(inputs, args)
    locks = list(args.lock) + apply_sets(current, args.sets)
    if init is not None:
        apply_sets(init, args.sets)
    lock_t, lock_m = lock_masks(locks, inputs.names)
    cfg = SuggestConfig(steps=args.steps, seed=args.seed, region=region, prior=args.prior,
                        reference_kind=args.reference_kind)
    bar, callback = _progress(args.steps + 1, "refine")
    result = suggest(inputs, model, cfg, current=current, init=init, lock_tracks=lock_t, lock_master=lock_m,
                     progress=lambda done, total, msg: done > 0 and callback(done, total, 0.0))
    bar.close()
    for line in result.messages:
        print(line)
    if model is not None:
        print(f"model: {args.model or 'default'}" + (f", analysing {region[0]:g}-{region[1]:g} s" if region else ""))
    params = result.params

    ecfg = RefineConfig(seed=args.seed, region=region)
    baseline = evaluate(inputs, inputs.default_params(), ecfg)[0]
    start = evaluate(inputs, result.start, ecfg)[0] if source != "defaults" else baseline
    loss1 = evaluate(inputs, params, ecfg)[0] if args.steps else start

    target = ref_lufs if args.loudness is None else args.loudness
    if not math.isfinite(target):
        raise CliError(f"{args.reference}: reference has no measurable loudness")
    params, lufs_before, lufs_after, peak = _finish(inputs, params, args, fmt, target)
    if args.params_out:
        write_params(args.params_out, params)
    steps = f"{args.steps} refine steps" if args.steps else "no refinement"
    print(f"AF loss vs reference: equal-loudness sum {baseline:.4f} -> {source} {start:.4f} -> mix "
          f"{loss1:.4f} ({steps}; {loss1 / baseline * 100 if baseline > 0 else 0:.1f} % of the sum)")
    print(f"loudness: console {lufs_before:.1f} LUFS -> output {lufs_after:.1f} LUFS "
          f"(target {target:.1f}), true peak {peak:.1f} dBTP (ceiling {args.ceiling:.1f})")
    _print_report(args.out, inputs.reference, inputs.sample_rate)
    if args.stems_out:
        print(f"processed stems in {args.stems_out}")
    print(f"wrote {args.out}" + (f" and {args.params_out}" if args.params_out else "")
          + f" in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_render(args) -> int:
    from .paramfile import read_params
    from .prepare import load_inputs

    t0 = time.perf_counter()
    fmt = _out_format(args)
    saved = read_params(args.params)
    inputs = load_inputs(args.stems, None, args.sample_rate)
    params = saved.select(inputs.names, args.params)
    params, before, after, peak = _finish(inputs, params, args, fmt, args.loudness)
    print(f"rendered {len(inputs.names)} stems, {inputs.duration:.1f} s: {after:.1f} LUFS, "
          f"true peak {peak:.1f} dBTP -> {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_analyze(args) -> int:
    from .audio_io import load_audio, to_stereo
    from .features import (
        af_features_np,
        integrated_lufs,
        momentary_lufs,
        sample_peak_dbfs,
        short_term_lufs,
        true_peak_dbtp,
    )

    reports = []
    for path in args.files:
        a = load_audio(path)
        x = to_stereo(a.data)
        f = af_features_np(x, a.sample_rate)
        st, mo = short_term_lufs(a.data, a.sample_rate), momentary_lufs(a.data, a.sample_rate)
        reports.append({
            "file": path, "channels": a.channels, "seconds": round(a.original_duration, 3),
            "sample_rate": a.original_sample_rate,
            "integrated_lufs": integrated_lufs(a.data, a.sample_rate),
            "max_short_term_lufs": float(st.max()) if st.size else -math.inf,
            "max_momentary_lufs": float(mo.max()) if mo.size else -math.inf,
            "true_peak_dbtp": true_peak_dbtp(a.data, a.sample_rate),
            "sample_peak_dbfs": sample_peak_dbfs(a.data),
            "rms_dbfs": [float(20 * np.log10(max(v, 1e-12))) for v in np.ravel(f["rms"])],
            "crest_db": [float(v) for v in np.ravel(f["crest_db"])],
            "width": float(f["width"]), "imbalance": float(f["imbalance"]),
        })
    if args.json:
        clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                 for r in reports]
        print(json.dumps(clean, indent=2))
        return 0
    print(f"{'file':30s} {'LUFS':>6s} {'maxST':>6s} {'maxM':>6s} {'dBTP':>6s} {'crest L/R':>11s} "
          f"{'width':>6s} {'imbal':>6s}")
    for r in reports:
        crest = "/".join(f"{c:.1f}" for c in r["crest_db"])
        print(f"{Path(r['file']).name[:30]:30s} {_fmt_db(r['integrated_lufs'])} "
              f"{_fmt_db(r['max_short_term_lufs'])} {_fmt_db(r['max_momentary_lufs'])} "
              f"{_fmt_db(r['true_peak_dbtp'])} {crest:>11s} {r['width']:6.3f} {r['imbalance']:+6.3f}")
    return 0


def cmd_params(args) -> int:
    from .params import MASTER, TRACK, fingerprint, table

    if args.json:
        print(json.dumps({"schema": fingerprint(), "track": TRACK.describe(), "master": MASTER.describe()},
                         indent=2))
        return 0
    print(f"console schema {fingerprint()}\n\nTrack strip ({len(TRACK)} parameters)\n{table(TRACK)}\n")
    print(f"Master bus ({len(MASTER)} parameters)\n{table(MASTER)}")
    return 0


HANDLERS = {"mix": cmd_mix, "render": cmd_render, "analyze": cmd_analyze, "params": cmd_params}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in COMMANDS for a in argv) and not any(a in ("-h", "--help") for a in argv):
        return _open_app(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return HANDLERS[args.command](args)
    except _user_errors() as e:
        if args.debug:
            raise
        print(f"stylemix: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stylemix: interrupted", file=sys.stderr)
        return 130


def _open_app(argv: list[str]) -> int:
    try:
        from app.main import run_app
    except ImportError:
        build_parser().print_help()
        return 0 if not argv else 2
    return run_app(argv)


def entry() -> None:
    sys.exit(main())
