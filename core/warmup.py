"""Compile the audio kernels once, ahead of first use.

The sample loops are numba kernels cached on disk (``cache=True``), but each is compiled the first
time it runs with a given argument type, which took the first ``stylemix mix`` after set-up about a
minute longer than the second. :func:`compile_kernels` runs every kernel on a tiny generated song
through the same code paths the commands, playback and refinement use, so the cache holds what they
need; ``scripts/setup.sh`` calls it (``python -m core.warmup``), and the CLI and the app call
:func:`ensure_compiled` at start, which prints "preparing the audio engine (once)" and compiles only
when the cache is missing or stale (a new version of the code or of numba).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

_CORE = Path(__file__).resolve().parent
MESSAGE = "stylemix: preparing the audio engine (once, about a minute)..."


def _key(with_torch: bool) -> str:
    import numba
    import numpy

    h = hashlib.sha256()
    h.update(f"{sys.version}|{numba.__version__}|{numpy.__version__}|{with_torch}".encode())
    for p in sorted(_CORE.glob("*.py")):
        st = p.stat()
        h.update(f"{p.name}:{st.st_mtime_ns}:{st.st_size}".encode())
    return h.hexdigest()[:24]


def _stamp_paths() -> list[Path]:
    paths = [_CORE / "__pycache__" / "stylemix-kernels.stamp"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    paths.append(Path(cache) / "stylemix" / "kernels.stamp")
    return paths


def _stamp_ok(with_torch: bool) -> bool:
    key = _key(with_torch)
    for p in _stamp_paths():
        try:
            if p.read_text().split() and key in p.read_text().split():
                return True
        except OSError:
            continue
    return False


def _write_stamp(with_torch: bool) -> None:
    keys = {_key(with_torch)}
    if with_torch:
        keys.add(_key(False))  # a full warm-up covers the torch-free kernels too
    for p in _stamp_paths():
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("\n".join(sorted(keys)) + "\n")
            return
        except OSError:
            continue


def _song(seconds: float = 6.0, sr: int = 44100):
    import numpy as np

    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    stems = []
    for i in range(3):
        x = 0.2 * np.sin(2 * np.pi * 110.0 * (i + 1) * t) + 0.02 * rng.standard_normal(n)
        x[:: sr // 2] += 0.9
        stems.append(x[None] if i != 1 else np.stack([x, np.roll(x, 11)]))
    ref = 0.3 * rng.standard_normal((2, n))
    return [s.astype(np.float32) for s in stems], ref.astype(np.float32), sr


def compile_kernels(with_torch: bool = True, verbose: bool = False) -> float:
    """Run every compiled kernel once on a tiny song (seconds taken). ``with_torch`` also runs the
    torch console's kernels (refinement, prediction); without it only what ``render``, ``analyze``,
    export and playback use."""
    import numpy as np
    import soundfile as sf

    t0 = time.perf_counter()
    say = (lambda m: print(f"  {m}", file=sys.stderr, flush=True)) if verbose else (lambda m: None)
    stems, ref, sr = _song()
    with tempfile.TemporaryDirectory(prefix="stylemix-warmup-") as tmp:
        folder = os.path.join(tmp, "stems")
        os.mkdir(folder)
        for i, s in enumerate(stems):
            sf.write(os.path.join(folder, f"s{i}.wav"), s.T, sr if i != 2 else 48000,
                     subtype="PCM_24" if i == 1 else "PCM_16")  # 24-bit: core.pcm's kernel
        sf.write(os.path.join(tmp, "ref.wav"), ref.T, sr, subtype="PCM_16")

        say("meters and the output stage")
        from . import meter
        from .render import limit, output_stage_store
        from .stream_io import FrameStore

        for x in (ref, ref.astype(np.float64), ref[:1], ref[:, ::2]):
            meter.integrated_lufs(x, sr)
            meter.true_peak_dbtp(x, sr)
            meter.momentary_lufs(x, sr)
            meter.short_term_lufs(x, sr)
        meter.af_features_np(ref, sr)
        meter.af_features_np(ref.astype(np.float64), sr)
        from .report import analyse

        analyse(ref, sr)  # the match report's columns of `analyze` (crest factor kernel)
        analyse(ref.astype(np.float64), sr)
        limit(ref * 8, sr, -1.0)
        limit((ref * 8).astype(np.float64), sr, -1.0)
        output_stage_store(FrameStore.of(ref * 4), sr, 0.0, -10.0, -1.0).out.close()

        say("the streaming engine and export")
        from .engine import render_stream
        from .export import export_mix
        from .params import MASTER, TRACK
        from .stream_io import StemFiles

        n = len(stems)
        rng = np.random.default_rng(1)
        tp = TRACK.from_unit(rng.random((n, len(TRACK))))
        mp = MASTER.from_unit(rng.random(len(MASTER)))
        render_stream(stems, None, tp, mp, sr, threads=1)
        render_stream(stems, None, tp, mp, sr, threads=2)
        with StemFiles([folder], sr) as source:
            export_mix(source, tp, mp, sr, os.path.join(tmp, "out.wav"), loudness_lufs=-14.0,
                       ceiling_dbtp=-1.0, stems_dir=os.path.join(tmp, "proc"))
        export_mix(stems, tp, mp, sr, os.path.join(tmp, "out.flac"), bits="16")

        say("playback")
        from .playback import Player

        with Player(np.stack([np.broadcast_to(s, (2, s.shape[1])) for s in stems]), None, sr, tp, mp,
                    audio=False) as player:
            player.set_reference(ref)
            buf = np.zeros((player.block, 2), np.float32)
            player.play()
            for _ in range(8):
                player.callback(buf, player.block, None, None)
                time.sleep(player.block / sr)
            player.set_params(tp * 1.0, mp)
            player.toggle_ab()
            for _ in range(4):
                player.callback(buf, player.block, None, None)
            player.meters()

        if with_torch:
            say("refinement and prediction")
            from .prepare import load_inputs
            from .refine import RefineConfig, refine

            inputs = load_inputs([folder], os.path.join(tmp, "ref.wav"), sr)
            refine(inputs, inputs.default_params(), RefineConfig(steps=2))
            try:
                from .predict import load_default_model, predict

                model = load_default_model()
                if model is not None:
                    predict(inputs, model, None)
            except Exception:  # no shipped model: nothing to compile for it
                pass
    return time.perf_counter() - t0


def pending(with_torch: bool = False) -> bool:
    """Whether this version's kernels still need compiling (see :func:`ensure_compiled`)."""
    return not os.environ.get("STYLEMIX_NO_WARMUP") and not _stamp_ok(with_torch)


def prepare(with_torch: bool = False) -> None:
    """Compile the kernels and remember it (no message: the app shows its own)."""
    compile_kernels(with_torch)
    _write_stamp(with_torch)


def ensure_compiled(with_torch: bool = False, quiet: bool = False) -> bool:
    """Compile the kernels if this version's cache is not there yet (printing :data:`MESSAGE`
    first). Returns True when it compiled. Never fails: a problem only means compiling on first use."""
    if os.environ.get("STYLEMIX_NO_WARMUP") or _stamp_ok(with_torch):
        return False
    if not quiet:
        print(MESSAGE, file=sys.stderr, flush=True)
    try:
        compile_kernels(with_torch)
    except Exception as exc:  # compiling on first use still works
        if not quiet:
            print(f"stylemix: note: could not prepare the audio engine ahead ({exc})", file=sys.stderr)
        return True
    _write_stamp(with_torch)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with_torch = "--no-torch" not in argv
    if "--if-needed" in argv and _stamp_ok(with_torch):
        print("stylemix: audio engine already prepared", file=sys.stderr)
        return 0
    print(MESSAGE, file=sys.stderr, flush=True)
    seconds = compile_kernels(with_torch, verbose=True)
    _write_stamp(with_torch)
    print(f"stylemix: audio engine ready ({seconds:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
