"""The demo session's material (``assets/demo``): stems of one generated song and a finished-sounding
reference mix of another (:func:`build_demo`, ``python -m training.synth demo assets/demo``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .compose import compose_song
from .mixes import reference_mix
from .plan import SongPlan
from .render import SOUNDFONT, generate_song, load_song, read_song

DEMO_STEMS = {"genre": "funk", "first_seed": 101}
DEMO_REFERENCE = {"genre": "pop", "first_seed": 202}
DEMO_SECONDS = 20.0
DEMO_REFERENCE_LUFS = -12.0


def _find_seed(genre: str, first_seed: int, seconds: float, ok) -> tuple[int, SongPlan]:
    for seed in range(first_seed, first_seed + 1000):
        plan = compose_song(seed, seconds, genre)
        if ok(plan):
            return seed, plan
    raise RuntimeError("no suitable seed found")


def build_demo(out_dir: str | Path, seconds: float = DEMO_SECONDS, sample_rate: int = 44100,
               soundfont: str | Path = SOUNDFONT) -> dict:
    """Demo session material: ``out_dir/stems/*.flac`` (6-10 stems of one song, 16-bit) and
    ``out_dir/reference.flac``, a mastered-sounding mix of a different song; returns what was made."""
    import soundfile as sf

    from core.meter import integrated_lufs, true_peak_dbtp

    out_dir = Path(out_dir)

    def stems_ok(plan: SongPlan) -> bool:
        stereo = any(p.stereo != "mono" and not p.is_drum for p in plan.parts)
        return 6 <= len(plan.parts) <= 10 and stereo

    def reference_ok(plan: SongPlan) -> bool:
        return len(plan.parts) >= 9 and any(p.role == "lead" for p in plan.parts)

    stems_seed, _ = _find_seed(DEMO_STEMS["genre"], DEMO_STEMS["first_seed"], seconds, stems_ok)
    ref_seed, _ = _find_seed(DEMO_REFERENCE["genre"], DEMO_REFERENCE["first_seed"], seconds, reference_ok)
    stems_dir = out_dir / "stems"
    if stems_dir.exists():
        shutil.rmtree(stems_dir)
    stems_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="demo_") as tmp_name:
        tmp = Path(tmp_name)
        song = generate_song(tmp, stems_seed, seconds, sample_rate, DEMO_STEMS["genre"], song_id="stems",
                             subtype="PCM_16", soundfont=soundfont)
        stems_meta = read_song(song)
        for s in stems_meta["stems"]:
            shutil.copy(song / s["file"], stems_dir / s["file"])
        ref_song = generate_song(tmp, ref_seed, seconds, sample_rate, DEMO_REFERENCE["genre"],
                                 song_id="reference", soundfont=soundfont)
        ref_meta, ref_stems, _ = load_song(ref_song)
    mix = reference_mix(ref_stems, sample_rate, np.random.default_rng([ref_seed, 2]),
                        target_lufs=DEMO_REFERENCE_LUFS, ceiling_dbtp=-1.2, master=True)
    sf.write(str(out_dir / "reference.flac"), mix, sample_rate, subtype="PCM_16", format="FLAC")
    written, _ = sf.read(str(out_dir / "reference.flac"), dtype="float64")
    info = {
        "stems": {"seed": stems_seed, "genre": stems_meta["genre"], "tempo_bpm": stems_meta["tempo_bpm"],
                  "key": f"{stems_meta['key']} {stems_meta['mode']}", "seconds": seconds,
                  "stems": [{k: s[k] for k in ("name", "program", "channels", "stereo", "peak_dbfs", "lufs")}
                            for s in stems_meta["stems"]]},
        "reference": {"seed": ref_seed, "genre": ref_meta["genre"], "tempo_bpm": ref_meta["tempo_bpm"],
                      "key": f"{ref_meta['key']} {ref_meta['mode']}", "n_stems": len(ref_meta["stems"]),
                      "lufs": round(integrated_lufs(written.T, sample_rate), 2),
                      "true_peak_dbtp": round(true_peak_dbtp(written.T, sample_rate), 2)},
        "sample_rate": sample_rate,
    }
    (out_dir / "demo.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
