"""``stylemix`` command line.

``stylemix mix`` turns raw stems plus a reference song into a mix and a full set of console
parameters; ``render`` re-renders a saved parameter set; ``analyze`` measures files; ``params`` prints
the console's parameter table. The ``stylemix`` program (:mod:`app.launcher`) sends these commands
here and opens the desktop app with no sub-command (or a session / audio files); ``python -m core.cli
COMMAND ...`` runs them without the app. Exit status: 0 success, 1 bad input, 2 usage error. Errors
are one line on stderr; ``--debug`` shows tracebacks.

``compare`` prints the match report of a mix against a reference (:mod:`core.report`).

Before any work, outputs are checked against the inputs (an output that is a stem, the reference, a
params file read or the checkpoint is refused), output folders must be writable, and at most 64 stems
are taken. The mix, the params file and the processed stems land together at the end, or none does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

COMMANDS = ("mix", "render", "analyze", "compare", "params")


class CliError(Exception):
    """Bad input detected by the CLI itself; the message is one line for the user."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .audio_io import AudioError
    from .fileio import OutputError, WriteError
    from .paramfile import ParamsError

    errors: list[type[BaseException]] = [CliError, AudioError, ParamsError, OutputError, WriteError]
    checkpoint = sys.modules.get("core.checkpoint")  # only loaded (with torch) by commands that use it
    if checkpoint is not None:
        errors.append(checkpoint.CheckpointError)
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
                   help="also write each processed stem (after its strip, before the master bus) here: a new "
                        "folder, or one an earlier export wrote (never the stems' own folder)")


def _comma_list(values: list[str]) -> list[str]:
    """``["eq,pan", "gain_db"]`` -> ``["eq", "pan", "gain_db"]``."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def build_parser(default_steps: int | None = None) -> argparse.ArgumentParser:
    """The argument parser. ``default_steps`` (refinement's default, from :mod:`core.refine`) is
    only needed to parse ``mix``; other commands leave it out so that they do not load torch."""
    parser = argparse.ArgumentParser(
        prog="stylemix",
        description="Mixing assistant: fills a mixing console from raw stems and a reference song.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'stylemix COMMAND --help' for a command's options.\n\n"
               "No output may overwrite an input; all outputs of a command land together or not at all.\n\n"
               "Without a command, stylemix opens the desktop app:\n"
               "  stylemix [SESSION | FILES...] [--reference REF] [--demo] [--no-audio] [--compact]\n"
               "  stylemix --screenshot OUT.png [--size WxH] [--predict] [SESSION]\n"
               "--demo opens the bundled demo session (without a display: the command-line demo).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("mix", help="mix stems to match a reference song",
                       description="Mix STEMs (files or folders) so that the mix matches REF's style: "
                                   "the model's prediction, then refinement of the console on the "
                                   "whole song's tonal balance and width, crest and AF terms, under a "
                                   "plausibility prior (docs/objective.md); writes the mix and "
                                   "optionally the parameters.")
    p.add_argument("stems", nargs="+", metavar="STEM", help="stem files or folders of stems")
    p.add_argument("--reference", required=True, metavar="REF", help="reference song")
    _add_output_args(p, "output loudness, LUFS integrated (default: the reference's loudness)")
    p.add_argument("--params-out", metavar="P.json", help="write the console parameters here")
    p.add_argument("--params-in", metavar="P.json",
                   help="start from these parameters (instead of the model's prediction)")
    p.add_argument("--model", metavar="PATH", help="model checkpoint (default: the shipped model)")
    p.add_argument("--no-model", action="store_true",
                   help="no prediction: refine from the equal-loudness defaults")
    p.add_argument("--steps", type=int, default=default_steps,
                   help=f"refinement steps after the prediction (default {default_steps}; "
                        "0 = model only)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--lock", action="append", default=[], metavar="KEY[,KEY...]",
                   help="keep these parameters: KEY or GROUP (all tracks), TRACK:KEY, master:KEY; "
                        "a comma list, and the option may be repeated")
    p.add_argument("--set", action="append", default=[], metavar="KEY=V[,KEY=V...]", dest="sets",
                   help="set (and lock) values: [TRACK:|master:]KEY=VALUE; a comma list, and the "
                        "option may be repeated")
    p.add_argument("--region", nargs=2, type=float, metavar=("START", "END"),
                   help="analyse only this part of the stems (seconds), e.g. the chorus; the whole song "
                        "stays the context of the fit")
    p.add_argument("--prior", type=float, default=1.0, metavar="S",
                   help="strength of the plausibility prior that keeps settings where engineers work "
                        "(default 1; 0 = off, 2 = twice as firm)")
    p.add_argument("--threads", type=int, default=2, metavar="N",
                   help="compute threads for refinement (default 2; 1 when other work shares the cores)")
    p.add_argument("--reference-kind", choices=["auto", "same-song", "other"], default="auto",
                   help="is the reference a mix of these stems (a rough mix, another section of the same "
                        "song)? auto detects it (default); same-song fits the balance from its content")
    p.add_argument("--reverb", action="store_true",
                   help="let prediction and refinement set the reverb sends and the FX return (default: "
                        "they stay as they are, sends off; set them with --set send_db=... or in a params "
                        "file)")

    p = sub.add_parser("render", help="render stems with a saved parameter set",
                       description="Re-render STEMs with the console parameters in P.json (tracks are "
                                   "matched by name). Works at any length with flat memory: with the "
                                   "streaming engine the stems are read, and the output written, in "
                                   "blocks.")
    p.add_argument("stems", nargs="+", metavar="STEM", help="stem files or folders of stems")
    p.add_argument("--params", required=True, metavar="P.json", help="parameter file from 'mix --params-out'")
    _add_output_args(p, "re-normalise the output to this loudness, LUFS (default: as the parameters give)")

    p = sub.add_parser("analyze", help="loudness, true peak, style features and spectrum of audio files",
                       description="Measure integrated/short-term/momentary loudness, true peak and "
                                   "the AF style features of each FILE, and the match report's terms: "
                                   "octave levels of the mid signal (at -16 LUFS, so files compare), "
                                   "width (side/mid) in low/mid/high, loudness range and "
                                   "peak-to-loudness ratio. --json adds the 1/3-octave mid levels.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("compare", help="match report: how a mix differs from a reference",
                       description="How MIX differs from REF as an engineer reads it, both at the same "
                                   "loudness: tonal balance (mix minus reference per 1/3 octave of the "
                                   "mid signal, per octave, tonal deviation, worst octave, worst bands), "
                                   "width (side/mid) in low/mid/high, dynamics (crest factor, loudness "
                                   "range, peak-to-loudness ratio), low end and air. Differences "
                                   "are mix minus reference: + means the mix has more.")
    p.add_argument("mix", metavar="MIX", help="the mix (audio file)")
    p.add_argument("reference", metavar="REF", help="the reference song (audio file)")
    p.add_argument("--region", nargs=2, type=float, metavar=("START", "END"),
                   help="compare only this part of MIX (seconds)")
    p.add_argument("--ref-region", nargs=2, type=float, metavar=("START", "END"),
                   help="use only this part of REF (seconds; default: all of it)")
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
    _warn_dc(inputs)


def _warn_dc(inputs) -> None:
    for path, share in inputs.dc_removed:
        print(f"stylemix: warning: {path} is mostly DC ({share:.0%} of its energy); DC removed (high-passed)",
              file=sys.stderr)


def _progress(total: int, label: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="step", disable=not sys.stderr.isatty(), leave=False)

    def callback(step, steps, loss):
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        return False

    return bar, callback


def _guard_outputs(args, fmt: str, protect: list) -> dict:
    """Before any work: expand the stems, check the stem count, refuse outputs that would destroy an
    input (or a file stylemix did not write) and unwritable output folders.

    Returns what :func:`core.export.export_mix` needs to check the same again (``stem_files``,
    ``protect``).
    """
    from .audio_io import expand_paths, unique_names
    from .engine import StreamingConsole
    from .export import check_export_paths

    if args.engine == "torch" and args.stems_out:
        raise CliError("--stems-out needs the streaming engine (--engine stream)")
    files = expand_paths(args.stems)
    if len(files) > StreamingConsole.MAX_TRACKS:
        raise CliError(f"{len(files)} stems given; the console takes at most {StreamingConsole.MAX_TRACKS}")
    protect = [os.fspath(p) for p in protect if p]
    extra = [("--params-out", args.params_out)] if getattr(args, "params_out", None) else []
    check_export_paths(args.out, args.stems_out, unique_names(Path(f).stem for f in files), fmt,
                       stem_files=files, protect=protect, extra_outputs=extra,
                       stem_folders=[p for p in args.stems if os.path.isdir(p)],
                       labels=("--out", "--stems-out"))
    return {"stem_files": files, "protect": protect}


def _finish(inputs, params, args, fmt: str, loudness: float | None, group, guard: dict):
    """Render, match loudness with the master fader, limit to the ceiling, stage in ``group``.

    ``inputs``: :class:`core.prepare.Inputs`, or (streaming engine) a block source such as
    :class:`core.stream_io.StemFiles`. Returns (params as written, console loudness, output loudness,
    output true peak).
    """
    from .export import export_mix

    sr = inputs.sample_rate
    if args.engine == "torch":
        from .audio_io import write_audio
        from .meter import integrated_lufs, true_peak_dbtp
        from .render import output_stage, render_mix

        if not getattr(inputs, "in_memory", True):  # the torch console renders the song whole
            from dataclasses import replace

            inputs = replace(inputs, stems=inputs.section(0, inputs.frames))
        mix = render_mix(inputs, params, engine="torch")
        before = integrated_lufs(mix, sr)
        mix, params = output_stage(mix, sr, params, loudness, args.ceiling)
        write_audio(args.out, mix, sr, format=fmt, bits=args.bits, group=group)
        return params, before, integrated_lufs(mix, sr), true_peak_dbtp(mix, sr)
    from tqdm import tqdm

    with tqdm(total=100, desc="render", unit="%", disable=not sys.stderr.isatty(), leave=False) as bar:
        def progress(done, total):
            bar.update(int(100 * done / max(total, 1)) - bar.n)

        stems = inputs.stems if hasattr(inputs, "stems") else inputs  # an array or a block source
        res = export_mix(stems, params.tracks, params.master, sr, args.out, fmt, args.bits,
                         loudness, args.ceiling, args.stems_out, progress, stereo=inputs.stereo,
                         names=inputs.names, group=group, **guard)
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


def _print_report(path: str, reference, sample_rate: int, mix_seconds: float) -> None:
    """The match report's headline of the written mix against the reference (songs up to 10 min)."""
    from .audio_io import load_audio, to_stereo
    from .prepare import REPORT_MAX_SECONDS
    from .report import compare

    if max(reference.shape[-1] / sample_rate, mix_seconds) > REPORT_MAX_SECONDS:
        print(f"match report: left out for songs over {REPORT_MAX_SECONDS // 60} min "
              "('stylemix compare' measures any length)")
        return
    mix = to_stereo(load_audio(path, sample_rate).data)
    rep = compare(mix, reference, sample_rate)
    worst = ", ".join(f"{hz:g} Hz {d:+.1f}" for hz, d in rep.worst_bands(3))
    octave = float(rep.octave_diff_db[np.argmax(np.abs(rep.octave_diff_db))])
    print(f"match vs reference: tonal balance {rep.tonal_deviation_db:.1f} dB RMS (1/3 octaves 40 Hz-16 kHz; "
          f"worst octave {rep.worst_octave} {octave:+.1f} dB; "
          f"worst bands {worst}), width {rep.width_deviation_db:.1f} dB, "
          f"dynamics {rep.dynamics_deviation:.1f}"
          " ('stylemix compare' shows all of it)")


def _check_memory(args) -> None:
    """Refuse, before any work, a mix that cannot fit in memory or whose decoded stems cannot fit in
    the temporary folder (one line with the numbers)."""
    import shutil
    import tempfile

    from .prepare import MIX_BASE_BYTES, MIX_BYTES_PER_CHANNEL_SECOND, mix_memory_needed
    from .stream_io import available_memory

    need, count, seconds, disk = mix_memory_needed(args.stems, args.reference, args.sample_rate)
    avail = available_memory()
    what = f"mixing {count} stem{'s' if count != 1 else ''} of {seconds / 60:.1f} min"
    if avail is not None and need > avail:
        raise CliError(f"{what} needs about {need / 1e9:.1f} GB of memory, {avail / 1e9:.1f} GB is available "
                       f"({MIX_BASE_BYTES / 1e9:.1f} GB plus "
                       f"{MIX_BYTES_PER_CHANNEL_SECOND * 60 / 1e6:.1f} MB per minute of each stem channel); "
                       "close other programs or mix fewer stems")
    if disk:
        folder = tempfile.gettempdir()
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = None
        if free is not None and disk > free:
            raise CliError(f"{what} needs about {disk / 1e9:.1f} GB of temporary disk space in {folder}, "
                           f"{free / 1e9:.1f} GB is free; free some space or set TMPDIR to a larger disk")


def _checkpoint(args) -> str | None:
    """The checkpoint ``mix`` reads (protected from being overwritten), if any."""
    if args.params_in or args.no_model:
        return None
    if args.model:
        return args.model
    from .predict import DEFAULT_MODEL_PATH

    return str(DEFAULT_MODEL_PATH)


def cmd_mix(args) -> int:
    from .prepare import load_inputs

    t0 = time.perf_counter()
    fmt = _out_format(args)
    if args.steps < 0:
        raise CliError(f"--steps must be >= 0, got {args.steps}")
    if not (math.isfinite(args.prior) and args.prior >= 0):
        raise CliError(f"--prior must be a number >= 0, got {args.prior}")
    guard = _guard_outputs(args, fmt, [args.reference, args.params_in, _checkpoint(args)])
    _check_memory(args)
    inputs = load_inputs(guard["stem_files"], args.reference, args.sample_rate)
    try:
        return _mix(args, inputs, fmt, guard, t0)
    finally:
        inputs.close()  # the decoded stems' temporary files


def _mix(args, inputs, fmt: str, guard: dict, t0: float) -> int:
    """``mix`` once the inputs are loaded: suggest, evaluate, render and write."""
    from .fileio import WriteGroup
    from .meter import integrated_lufs
    from .paramfile import apply_sets, lock_masks, write_params
    from .refine import RefineConfig, evaluate_many
    from .suggest import SuggestConfig, suggest

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
    sets = _comma_list(args.sets)
    locks = _comma_list(args.lock) + apply_sets(current, sets)
    if init is not None:
        apply_sets(init, sets)
    lock_t, lock_m = lock_masks(locks, inputs.names)
    if args.threads < 1:
        raise CliError(f"--threads must be >= 1, got {args.threads}")
    cfg = SuggestConfig(steps=args.steps, seed=args.seed, region=region, prior=args.prior,
                        reference_kind=args.reference_kind, threads=args.threads, reverb=args.reverb)
    bar, callback = _progress(args.steps + 1, "refine")
    result = suggest(inputs, model, cfg, current=current, init=init, lock_tracks=lock_t, lock_master=lock_m,
                     progress=lambda done, total, msg: done > 0 and callback(done, total, 0.0))
    bar.close()
    for line in result.messages:
        print(line)
    if model is not None:
        where = f", analysing {region[0]:g}-{region[1]:g} s" if region else ""
        print(f"model: {args.model or 'default'}{where}")
    params = result.params

    if result.reference_kind == "same-song":
        source = f"{source} + same-song fit" if source != "defaults" else "same-song fit"
    ecfg = RefineConfig(seed=args.seed, region=region)
    baseline, start, loss1 = (v for v, _ in evaluate_many(inputs, [inputs.default_params(), result.start,
                                                                   params], ecfg))

    target = ref_lufs if args.loudness is None else args.loudness
    if not math.isfinite(target):
        raise CliError(f"{args.reference}: reference has no measurable loudness")
    with WriteGroup() as outputs:  # the mix, its params and the stems land together or not at all
        params, lufs_before, lufs_after, peak = _finish(inputs, params, args, fmt, target, outputs, guard)
        if args.params_out:
            write_params(args.params_out, params, group=outputs)
        outputs.commit()
    steps = f"{args.steps} refine steps" if args.steps else "no refinement"
    print(f"AF loss vs reference: equal-loudness sum {baseline:.4f} -> {source} {start:.4f} -> mix "
          f"{loss1:.4f} ({steps}; {loss1 / baseline * 100 if baseline > 0 else 0:.1f} % of the sum)")
    print(f"loudness: console {lufs_before:.1f} LUFS -> output {lufs_after:.1f} LUFS "
          f"(target {target:.1f}), true peak {peak:.1f} dBTP (ceiling {args.ceiling:.1f})")
    _print_report(args.out, inputs.reference, inputs.sample_rate, inputs.duration)
    if args.stems_out:
        print(f"processed stems in {args.stems_out}")
    print(f"wrote {args.out}" + (f" and {args.params_out}" if args.params_out else "")
          + f" in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_render(args) -> int:
    from .fileio import WriteGroup
    from .paramfile import read_params

    t0 = time.perf_counter()
    fmt = _out_format(args)
    guard = _guard_outputs(args, fmt, [args.params])
    saved = read_params(args.params)
    if args.engine == "torch":
        from .prepare import load_inputs

        inputs = load_inputs(guard["stem_files"], None, args.sample_rate)
        try:
            _warn_dc(inputs)
            params = saved.select(inputs.names, args.params)
            with WriteGroup() as outputs:
                params, before, after, peak = _finish(inputs, params, args, fmt, args.loudness, outputs,
                                                      guard)
                outputs.commit()
            count, seconds = len(inputs.names), inputs.duration
        finally:
            inputs.close()
    else:
        # the stems are decoded block by block as they are rendered: memory does not grow with length
        from .stream_io import StemFiles

        with StemFiles(guard["stem_files"], args.sample_rate) as source:
            _warn_dc(source)
            params = saved.select(source.names, args.params)
            with WriteGroup() as outputs:
                params, before, after, peak = _finish(source, params, args, fmt, args.loudness, outputs,
                                                      guard)
                outputs.commit()
            count, seconds = source.n_tracks, source.duration
    print(f"rendered {count} stems, {seconds:.1f} s: {after:.1f} LUFS, "
          f"true peak {peak:.1f} dBTP -> {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_analyze(args) -> int:
    from .audio_io import load_audio, to_stereo
    from .meter import af_features_np, meter, sample_peak_dbfs, true_peak_dbtp
    from .report import analysis_fft, cross_spectra

    reports = []
    for path in args.files:
        a = load_audio(path)
        x = to_stereo(a.data)
        with ThreadPoolExecutor(2) as workers:  # the two spectra beside the loudness and peak meters
            job = workers.submit(af_features_np, x, a.sample_rate)
            cross = workers.submit(cross_spectra, x, a.sample_rate, analysis_fft(a.sample_rate))
            m = meter(a.data, a.sample_rate)  # one K-weighting pass for all three loudness figures
            st, mo = m.short_term(), m.momentary()
            peak = true_peak_dbtp(a.data, a.sample_rate)
            same = {"cross": cross.result(), "true_peak_dbtp": peak}  # L = R peaks where a mono file does
            if a.channels == 2:  # the match report reads a mono file as L = R: louder than the file
                same.update(lufs=m.integrated(), short_term=st)
            columns = _spectrum_columns(x, a.sample_rate, same)
            f = job.result()
        reports.append({
            "file": path, "channels": a.channels, "seconds": round(a.original_duration, 3),
            "sample_rate": a.original_sample_rate,
            "integrated_lufs": m.integrated(),
            "max_short_term_lufs": float(st.max()) if st.size else -math.inf,
            "max_momentary_lufs": float(mo.max()) if mo.size else -math.inf,
            "true_peak_dbtp": peak,
            "sample_peak_dbfs": sample_peak_dbfs(a.data),
            "rms_dbfs": [float(20 * np.log10(max(v, 1e-12))) for v in np.ravel(f["rms"])],
            "crest_db": [float(v) for v in np.ravel(f["crest_db"])],
            "width": float(f["width"]), "imbalance": float(f["imbalance"]),
            **columns,
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
    _print_spectrum_columns(reports)
    return 0


# --- match report (numpy only: no torch) -------------------------------------------------------------

def _spectrum_columns(x, sample_rate: int, measured: dict | None = None) -> dict:
    """The match report's terms of one signal, for ``analyze`` (None where the signal is silent);
    ``measured``: see :func:`core.report.analyse`."""
    from .report import OCTAVES, analyse, octave_levels_db

    keys = ("mid_octave_db", "mid_third_octave_db", "width_db", "lra_lu", "plr_db", "low_end_db", "air_db")
    try:
        a = analyse(x, sample_rate, measured=measured)
    except ValueError:
        return dict.fromkeys(keys)
    octaves = [round(float(v), 2) for v in octave_levels_db(a.mid_db)]
    return {"mid_octave_db": {label: v for (_, label), v in zip(OCTAVES, octaves, strict=True)},
            "mid_third_octave_db": [round(float(v), 2) for v in a.mid_db],
            "width_db": {k: round(v, 2) for k, v in a.width_db.items()},
            "lra_lu": a.lra_lu, "plr_db": a.plr_db, "low_end_db": a.low_end_db, "air_db": a.air_db}


def _print_spectrum_columns(reports) -> None:
    from .report import OCTAVES, WIDTH_RANGES

    octs = [label.replace(" Hz", "") for _, label in OCTAVES]
    print("\nmid level per octave (dB, Hz; at -16 LUFS), width = side/mid (dB) low/mid/high, LRA, PLR")
    print(f"{'file':30s} " + " ".join(f"{o:>8s}" for o in octs)
          + "".join(f" {'w.' + name:>6s}" for name, _, _ in WIDTH_RANGES) + f" {'LRA':>5s} {'PLR':>5s}")
    for r in reports:
        name = f"{Path(r['file']).name[:30]:30s}"
        if r["mid_octave_db"] is None:
            print(f"{name} (silent)")
            continue
        print(name + " " + " ".join(f"{v:8.1f}" for v in r["mid_octave_db"].values())
              + "".join(f" {v:6.1f}" for v in r["width_db"].values())
              + f" {r['lra_lu']:5.1f} {r['plr_db']:5.1f}")


def _load_for_report(path: str, region):
    from .audio_io import load_audio
    from .report import analyse

    a = load_audio(path)
    try:
        return analyse(a.data, a.sample_rate, region=region)
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from None


def _signed(v: float) -> str:
    return f"{v:+6.1f}"


def cmd_compare(args) -> int:
    from .report import CENTRES_HZ, NOMINAL_HZ, OCTAVES, WIDTH_RANGES, compare_analyses, short_hz

    mix = _load_for_report(args.mix, args.region)
    ref = _load_for_report(args.reference, args.ref_region)
    rep = compare_analyses(mix, ref, tuple(args.region) if args.region else None)
    if args.json:
        doc = {"mix": args.mix, "reference": args.reference, "reference_region": args.ref_region,
               **rep.to_dict(), "summary": rep.summary(),
               "smoothed_mid_diff_db": [round(float(v), 3) for v in rep.smoothed_mid_diff_db]}
        print(json.dumps(doc, indent=2))
        return 0
    where = "whole song" if args.region is None else f"{args.region[0]:g}-{args.region[1]:g} s"
    print(f"{Path(args.mix).name} ({where}, {rep.mix_lufs:.1f} LUFS) vs {Path(args.reference).name} "
          f"({rep.ref_lufs:.1f} LUFS), compared at the same loudness; + = the mix has more\n")
    print(f"tonal deviation   {rep.tonal_deviation_db:5.1f} dB   (RMS of the mid difference, 1/3 octaves "
          f"40 Hz-16 kHz)")
    print(f"worst octave      {rep.worst_octave_db:5.1f} dB   ({rep.worst_octave}, "
          f"{rep.octave_diff_db[[label for _, label in OCTAVES].index(rep.worst_octave)]:+.1f} dB)")
    print(f"width deviation   {rep.width_deviation_db:5.1f} dB   (RMS of the side/mid differences)")
    print(f"dynamics dev.     {rep.dynamics_deviation:5.1f}      (RMS of the crest, LRA and PLR differences)")
    print(f"worst bands: {rep.worst_bands_text()}\n")

    print("tonal balance, mix - reference per 1/3 octave (dB):")
    for lo in range(0, len(CENTRES_HZ), 14):
        cols = range(lo, min(lo + 14, len(CENTRES_HZ)))
        print("  Hz   " + "".join(f"{short_hz(NOMINAL_HZ[i]):>6s}" for i in cols))
        print("  mid  " + "".join(_signed(rep.mid_diff_db[i]) for i in cols))
        print("  side " + "".join(_signed(rep.side_diff_db[i]) for i in cols))
    print("\nper octave (Hz):\n  " + "".join(f"{label.replace(' Hz', ''):>10s}" for _, label in OCTAVES))
    print("  " + "".join(f"{v:+10.1f}" for v in rep.octave_diff_db))

    print(f"\n{'':32s}{'mix':>7s}{'ref':>7s}{'diff':>7s}")

    def row(name, m, r, unit):
        print(f"{name:32s}{m:7.1f}{r:7.1f}{m - r:+7.1f} {unit}")

    for name, lo, hi in WIDTH_RANGES:
        row(f"width {name} ({short_hz(lo)}-{short_hz(hi)} Hz, side/mid)", rep.width_mix_db[name],
            rep.width_ref_db[name], "dB")
    row("crest factor", rep.dynamics_mix["crest_db"], rep.dynamics_ref["crest_db"], "dB")
    row("loudness range (LRA)", rep.dynamics_mix["lra_lu"], rep.dynamics_ref["lra_lu"], "LU")
    row("peak to loudness (PLR)", rep.dynamics_mix["plr_db"], rep.dynamics_ref["plr_db"], "dB")
    row("low end (< 100 Hz, share of mid)", *rep.low_end_db, "dB")
    row("air (> 10 kHz, share of mid)", *rep.air_db, "dB")
    row("integrated loudness", rep.mix_lufs, rep.ref_lufs, "LUFS")
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


HANDLERS = {"mix": cmd_mix, "render": cmd_render, "analyze": cmd_analyze, "compare": cmd_compare,
            "params": cmd_params}


def is_command_line(argv: list[str]) -> bool:
    """Whether ``stylemix ARGV`` is a command-line run (a command, or help), not the desktop app."""
    return any(a in COMMANDS for a in argv) or any(a in ("-h", "--help") for a in argv)


def main(argv: list[str] | None = None) -> int:
    """Run a command (``argv`` default: the process's arguments); without one, print the help."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not is_command_line(argv):
        build_parser().print_help()
        return 0 if not argv else 2
    command = next((a for a in argv if a in COMMANDS), None)
    steps = None
    if command == "mix":
        from .refine import RefineConfig

        steps = RefineConfig.steps
    parser = build_parser(steps)
    args = parser.parse_args(argv)
    if args.command in ("mix", "render", "analyze"):
        from .warmup import ensure_compiled

        ensure_compiled(with_torch=args.command == "mix")
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
    except (OSError, MemoryError) as e:  # anything the checks above did not foresee: still one line
        if args.debug:
            raise
        print(f"stylemix: error: {_describe(e)}", file=sys.stderr)
        return 1


def _describe(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "out of memory (try fewer or shorter stems, or close other programs)"
    if getattr(e, "filename", None) and getattr(e, "strerror", None):
        return f"{e.filename}: {e.strerror}"
    return " ".join((str(e) or type(e).__name__).splitlines())


def exit_quickly(code: int) -> None:
    """End the process with ``code`` after a command: what is alive now (numba's and numpy's many
    objects) is left to the operating system instead of collected one by one at exit, which took
    about 0.25 s (``gc.freeze``; files are closed and output written by then, and exit handlers run)."""
    import gc

    sys.stdout.flush()
    gc.freeze()
    sys.exit(code)


def entry() -> None:
    """``python -m core.cli``: the command line alone (the ``stylemix`` program is
    :func:`app.launcher.entry`)."""
    exit_quickly(main())


if __name__ == "__main__":
    entry()
