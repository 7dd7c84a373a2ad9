"""MIDI and rendering: a composed song -> dry per-instrument stems on disk (FluidSynth).

Each part of a :class:`~training.synth.plan.SongPlan` is written as a type-0 General MIDI file
(:func:`part_to_midi`, needs mido) and rendered *dry* (reverb and chorus off) to 32-bit float by the
``fluidsynth`` command-line program with a GM soundfont (:func:`render_midi`); a stereo part is either the
preset's own stereo image narrowed to its width ("native") or two independent, slightly detuned takes
panned apart ("double"). :func:`generate_song` trims each stem to the song length, stores it at a random
recording level and writes ``song.json`` last; :func:`generate` makes a resumable data set of songs.
FluidSynth's float renderer is sample-exact from run to run, so the same seed gives byte-identical FLACs.
``realism="full"`` hands a song to :func:`training.synth.realistic.generate_real_song` instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from .compose import compose_song
from .plan import DRUM_CHANNEL, KITS, REALISM, TICKS_PER_BEAT, Part, SongPlan

SOUNDFONT = Path(os.environ.get("STYLEMIX_SOUNDFONT", "/usr/share/sounds/sf2/FluidR3_GM.sf2"))
FLUIDSYNTH = os.environ.get("STYLEMIX_FLUIDSYNTH", "fluidsynth")
FORMAT_VERSION = 1
RECORDING_PEAK_DBFS = (-30.0, -6.0)  # random recording level of each stem (sample peak)


def part_to_midi(part: Part, plan: SongPlan, take: int = 0):
    """A type-0 ``mido.MidiFile`` holding one take of one part (take 1 = second take of a stereo part)."""
    import mido

    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    ch = DRUM_CHANNEL if part.is_drum else 0
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(plan.tempo_bpm)))
    track.append(mido.MetaMessage("time_signature", numerator=plan.beats_per_bar, denominator=4))
    track.append(mido.MetaMessage("track_name", name=part.name))
    if not part.is_drum:
        track.append(mido.Message("control_change", channel=ch, control=0, value=0))
    track.append(mido.Message("program_change", channel=ch, program=part.program))
    for control, value in ((7, 100), (10, 64), (91, 0), (93, 0)):  # volume, centre pan, no FX sends
        track.append(mido.Message("control_change", channel=ch, control=control, value=value))
    notes = part.notes_b if take == 1 else part.notes
    if take == 1 and part.detune_cents:  # the second take is slightly detuned, like a real double
        cents = part.detune_cents
        track.append(mido.Message("pitchwheel", channel=ch, pitch=int(round(cents / 200.0 * 8191))))
    events = []
    for n in notes:
        events.append((n.start, 1, n.pitch, n.velocity))
        events.append((n.start + n.length, 0, n.pitch, 0))
    events.sort()  # at equal ticks, note-offs (0) come before note-ons (1)
    now = 0
    for tick, on, pitch, vel in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=ch, note=pitch, velocity=vel if on else 0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=TICKS_PER_BEAT))
    return mid


def have_fluidsynth(soundfont: str | Path = SOUNDFONT) -> bool:
    """True when the ``fluidsynth`` program and the soundfont are both present."""
    return shutil.which(FLUIDSYNTH) is not None and Path(soundfont).is_file()


def render_midi(midi_path: str | Path, sample_rate: int, soundfont: str | Path = SOUNDFONT,
                wav_path: str | Path | None = None) -> np.ndarray:
    """Render a MIDI file dry (reverb and chorus off) with fluidsynth; returns float32 (samples, 2).

    Rendering to 32-bit float keeps it free of dither, so it is sample-exact from run to run.
    """
    import soundfile as sf

    midi_path = Path(midi_path)
    wav = Path(wav_path) if wav_path else midi_path.with_suffix(".wav")
    cmd = [FLUIDSYNTH, "-ni", "-q", "-g", "0.5", "-r", str(int(sample_rate)), "-R", "0", "-C", "0",
           "-o", "synth.dynamic-sample-loading=1",  # load only the samples used: 46 MB instead of 174 MB
           "-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(midi_path)]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 or not wav.is_file():
        raise RuntimeError(f"fluidsynth failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz instead of {sample_rate} Hz")
    wav.unlink()
    return audio


def _fit(audio: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Trim or zero-pad to n samples; a 10 ms fade-out avoids a click where the song is cut."""
    out = np.zeros((n, audio.shape[1]), dtype=np.float64)
    m = min(n, audio.shape[0])
    out[:m] = audio[:m]
    fade = min(int(0.01 * sr), n)
    out[n - fade:] *= np.cos(np.linspace(0.0, np.pi / 2, fade))[:, None]
    return out


def _louder(x: np.ndarray) -> np.ndarray:
    """One channel of a (samples, 2) render: the louder one (a mono 'microphone')."""
    return x[:, int(np.argmax(np.sum(x * x, axis=0)))]


def _render_part(part: Part, plan: SongPlan, tmp: Path, sr: int,
                 soundfont: Path) -> tuple[np.ndarray, str | None]:
    """Audio of one stem, (samples,) or (samples, 2), and how it was made stereo (None, native, double)."""
    n = int(round(plan.seconds * sr))

    def take(i: int) -> np.ndarray:
        path = tmp / f"{part.name}_{i}.mid"
        part_to_midi(part, plan, take=i).save(str(path))
        return _fit(render_midi(path, sr, soundfont), n, sr)

    a = take(0)
    if part.stereo == "mono":
        return _louder(a), None
    mid, side = (a[:, 0] + a[:, 1]) / 2, (a[:, 0] - a[:, 1]) / 2
    if np.sum(side**2) > 0.01 * np.sum(mid**2):  # the preset (or kit panning) is already stereo
        w = part.width
        return np.stack([mid + w * side, mid - w * side], axis=1), "native"
    if part.is_drum:
        return _louder(a), None
    b = _louder(take(1))
    a = _louder(a)
    w = part.width
    return np.stack([(1 + w) / 2 * a + (1 - w) / 2 * b, (1 - w) / 2 * a + (1 + w) / 2 * b], axis=1), "double"


def _lufs(x: np.ndarray, sr: int) -> float | None:
    """Integrated loudness of a stem (samples,) or (samples, 2) for song.json, rounded to 0.01 LU; None
    when it is shorter than one 400 ms gating block or silent."""
    from core.meter import integrated_lufs

    if x.shape[0] < int(0.4 * sr) + 1:
        return None
    value = integrated_lufs(np.asarray(x).T, sr)
    return round(float(value), 2) if np.isfinite(value) else None


def generate_song(out_dir: str | Path, seed: int, seconds: float = 30.0, sample_rate: int = 44100,
                  genre: str | None = None, *, song_id: str | None = None, n_stems: int | None = None,
                  subtype: str = "PCM_24", soundfont: str | Path | None = None,
                  keep_midi: bool = False, realism: str = "off", dry_mix: bool = True) -> Path:
    """Compose, render and store one song; returns the song folder ``out_dir/<song_id>``.

    Writes ``<stem>.flac`` per stem (peak at a random recording level in ``RECORDING_PEAK_DBFS``) and
    ``song.json`` last, so a folder with a song.json is complete. Same arguments give byte-identical files.

    realism: ``"off"`` (default: the original songs, unchanged for existing seeds; ``soundfont`` defaults
    to :data:`SOUNDFONT`) or ``"full"`` (:func:`training.synth.realistic.generate_real_song`: song form,
    recorded drum kits, a soundfont drawn per song unless ``soundfont`` is given, bleed, noise floors and
    a dry mix ``mix.flac`` unless ``dry_mix=False``; ``keep_midi`` is not supported there).
    """
    import soundfile as sf

    if realism not in REALISM:
        raise ValueError(f"unknown realism {realism!r}; choose from {list(REALISM)}")
    if realism == "full":
        from .realistic import generate_real_song

        return generate_real_song(out_dir, seed, seconds, sample_rate, genre, song_id=song_id,
                                  n_stems=n_stems, subtype=subtype, soundfont=soundfont, dry_mix=dry_mix)
    soundfont = Path(soundfont) if soundfont is not None else SOUNDFONT
    if not have_fluidsynth(soundfont):
        raise RuntimeError(f"generating needs the fluidsynth program and the soundfont {soundfont}")
    plan = compose_song(seed, seconds, genre, n_stems)
    song_dir = Path(out_dir) / (song_id or f"seed_{int(seed)}")
    song_dir.mkdir(parents=True, exist_ok=True)
    for old in [song_dir / "song.json", *song_dir.glob("*.flac")]:  # no stale stems from an earlier run
        old.unlink(missing_ok=True)
    level_rng = np.random.default_rng([int(seed), 1])
    stems_meta = []
    with tempfile.TemporaryDirectory(prefix="synth_") as tmp_name:
        tmp = Path(tmp_name)
        for part in plan.parts:
            level_db = float(level_rng.uniform(*RECORDING_PEAK_DBFS))
            audio, stereo = _render_part(part, plan, tmp, sample_rate, soundfont)
            peak = float(np.max(np.abs(audio)))
            if peak < 1e-5:  # nothing audible inside the song (should not happen): leave it out
                continue
            audio = audio * (10 ** (level_db / 20) / peak)
            path = song_dir / f"{part.name}.flac"
            sf.write(str(path), audio, sample_rate, subtype=subtype, format="FLAC")
            if keep_midi:
                (song_dir / "midi").mkdir(exist_ok=True)
                part_to_midi(part, plan).save(str(song_dir / "midi" / f"{part.name}.mid"))
            stems_meta.append({
                "name": part.name, "file": path.name, "role": part.role, "slot": part.slot,
                "instrument": part.instrument, "program": part.program, "bank": 128 if part.is_drum else 0,
                "is_drum": part.is_drum, "channels": 1 if audio.ndim == 1 else 2, "stereo": stereo,
                "width": round(part.width, 3) if stereo else None, "peak_dbfs": round(level_db, 2),
                "lufs": _lufs(audio, sample_rate), "n_notes": len(part.notes),
            })
    meta = {
        "format": FORMAT_VERSION, "seed": int(seed), "song_id": song_dir.name, "genre": plan.genre,
        "tempo_bpm": plan.tempo_bpm, "beats_per_bar": plan.beats_per_bar, "key": plan.key,
        "key_pc": plan.key_pc, "mode": plan.mode, "density": round(plan.density, 3),
        "swing": round(plan.swing, 3), "progressions": [list(p) for p in plan.progressions],
        "section_variants": plan.section_variants, "seconds": plan.seconds, "sample_rate": int(sample_rate),
        "n_samples": int(round(plan.seconds * sample_rate)), "subtype": subtype,
        "soundfont": Path(soundfont).name, "drum_kit": {"program": plan.kit, "name": KITS[plan.kit]},
        "stems": stems_meta,
    }
    tmp_json = song_dir / "song.json.tmp"
    tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
    tmp_json.replace(song_dir / "song.json")
    return song_dir


def song_seed(seed: int, index: int) -> int:
    """Seed of song ``index`` of a data set generated with ``seed`` (independent streams per song)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _song_job(args: tuple) -> Path:
    out_dir, index, seed, kwargs = args
    return generate_song(out_dir, song_seed(seed, index), song_id=f"song_{index:05d}", **kwargs)


def generate(out_dir: str | Path, n_songs: int, seed: int, seconds: float = 30.0, sample_rate: int = 44100,
             jobs: int = 1, genre: str | None = None, progress: bool = True, subtype: str = "PCM_24",
             soundfont: str | Path | None = None, realism: str = "off", dry_mix: bool = True) -> list[Path]:
    """Generate ``n_songs`` songs as ``out_dir/song_00000`` ... (``jobs`` songs at a time).

    Songs whose song.json already exists with the same seed, length, rate and realism are kept
    (resumable). ``realism`` and ``dry_mix`` as in :func:`generate_song`.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kwargs = {"seconds": seconds, "sample_rate": sample_rate, "genre": genre, "subtype": subtype,
              "soundfont": None if soundfont is None else str(soundfont), "realism": realism}
    if realism == "full":
        kwargs["dry_mix"] = dry_mix
    todo, done = [], []
    for i in range(n_songs):
        meta_path = out_dir / f"song_{i:05d}" / "song.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            have = (meta.get("seed"), meta.get("seconds"), meta.get("sample_rate"),
                    meta.get("realism", "off"))
            if have == (song_seed(seed, i), float(seconds), int(sample_rate), realism):
                done.append(meta_path.parent)
                continue
        todo.append((str(out_dir), i, seed, kwargs))
    bar = tqdm(total=n_songs, initial=len(done), unit="song", disable=not progress)
    if jobs <= 1:
        for job in todo:
            done.append(_song_job(job))
            bar.update()
    else:
        # Threads suffice: the heavy work runs in fluidsynth processes and in numpy/libsndfile calls.
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for fut in as_completed([pool.submit(_song_job, job) for job in todo]):
                done.append(fut.result())
                bar.update()
    bar.close()
    return sorted(done)


def read_song(song_dir: str | Path) -> dict:
    """The song.json of a generated song."""
    return json.loads((Path(song_dir) / "song.json").read_text())


def load_song(song_dir: str | Path) -> tuple[dict, dict[str, np.ndarray], int]:
    """(meta, {stem name: float32 (samples,) or (samples, 2)}, sample rate) of a generated song."""
    import soundfile as sf

    meta = read_song(song_dir)
    stems = {}
    for s in meta["stems"]:
        audio, sr = sf.read(str(Path(song_dir) / s["file"]), dtype="float32")
        stems[s["name"]] = audio
    return meta, stems, int(meta["sample_rate"])
