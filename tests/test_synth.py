"""Tests of the synthetic multitrack generator (the training/synth package: composing, rendering, reference
mixes, command line) and the demo assets it built."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.engine import pan_law
from core.meter import true_peak_dbtp
from training import synth

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"
SR = 22050  # rendering tests run at a low rate to stay fast
SECONDS = 4.0

needs_fluidsynth = pytest.mark.skipif(
    not synth.have_fluidsynth(),
    reason=f"needs the fluidsynth program and the soundfont {synth.SOUNDFONT} "
    "(apt-get install fluidsynth fluid-soundfont-gm)",
)


def _band_fraction(x: np.ndarray, sr: int, lo: float = 0.0, hi: float = np.inf) -> float:
    """Fraction of the signal's energy between lo and hi Hz."""
    mono = x if x.ndim == 1 else x.mean(axis=1)
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / sr)
    return float(power[(freqs >= lo) & (freqs < hi)].sum() / power.sum())


# ----- composition only (no fluidsynth) ---------------------------------------------------------------


def test_compose_is_deterministic_and_seed_dependent():
    a, b = synth.compose_song(7, 10.0), synth.compose_song(7, 10.0)
    assert a == b
    c = synth.compose_song(8, 10.0)
    assert [p.notes for p in c.parts] != [p.notes for p in a.parts]


@pytest.mark.parametrize("genre", sorted(synth.GENRES))
def test_compose_notes_in_instrument_ranges(genre):
    for seed in range(12):
        plan = synth.compose_song(seed, 12.0, genre)
        assert plan.genre == genre
        assert synth.MIN_STEMS <= len(plan.parts) <= synth.MAX_STEMS
        assert len({p.name for p in plan.parts}) == len(plan.parts)
        assert 70 <= plan.tempo_bpm <= 160 and plan.mode in synth.MODES
        end = plan.seconds * plan.tempo_bpm / 60 * synth.TICKS_PER_BEAT
        for part in plan.parts:
            assert part.notes, f"{genre} seed {seed}: {part.name} has no notes"
            for n in part.notes + part.notes_b:
                if part.is_drum:
                    assert n.pitch in synth.DRUM_NOTES[part.role], (part.name, n)
                else:
                    lo, hi = synth.ROLE_RANGES[part.role]
                    assert lo <= n.pitch <= hi, (part.name, n)
                assert 0 <= n.start < end and n.length > 0 and 1 <= n.velocity <= 127


def test_stem_counts_cover_the_range_and_n_stems_is_honoured():
    counts = {len(synth.compose_song(seed, 8.0).parts) for seed in range(60)}
    assert min(counts) <= 5 and max(counts) >= 14
    assert len(synth.compose_song(3, 8.0, "pop", n_stems=9).parts) == 9
    with pytest.raises(ValueError):
        synth.compose_song(3, 8.0, n_stems=17)
    with pytest.raises(ValueError):
        synth.compose_song(3, 8.0, genre="polka")


def test_part_to_midi_round_trip():
    mido = pytest.importorskip("mido")
    plan = synth.compose_song(11, 6.0, "rock", n_stems=10)
    for part in plan.parts:
        buf = io.BytesIO()
        synth.part_to_midi(part, plan).save(file=buf)
        buf.seek(0)
        mid = mido.MidiFile(file=buf)
        ons = [m for m in mid if m.type == "note_on" and m.velocity > 0]
        assert len(ons) == len(part.notes)
        assert {m.channel for m in ons} == {synth.DRUM_CHANNEL if part.is_drum else 0}
        programs = [m.program for m in mid if m.type == "program_change"]
        assert programs == [part.program]


def test_reference_mix_loudness_and_true_peak():
    rng = np.random.default_rng(0)
    sr, n = 22050, 22050 * 5
    t = np.arange(n) / sr
    stems = {
        "kick": np.sin(2 * np.pi * 55 * t) * (np.mod(t, 0.5) < 0.1),
        "hats": rng.normal(0, 0.05, n) * (np.mod(t, 0.25) < 0.03),
        "pad_strings": 0.1 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 221 * t)], axis=1),
        "lead_flute": 0.3 * np.sin(2 * np.pi * 660 * t),
    }
    pyloudnorm = pytest.importorskip("pyloudnorm")
    for master, target in ((False, -16.0), (True, -12.0)):
        mix = synth.reference_mix(stems, sr, np.random.default_rng(1), target_lufs=target, master=master)
        assert mix.shape == (n, 2) and mix.dtype == np.float32
        assert abs(pyloudnorm.Meter(sr).integrated_loudness(mix.astype(np.float64)) - target) < 0.05
        assert true_peak_dbtp(mix.T, sr) <= -1.0 + 1e-3
    again = synth.reference_mix(stems, sr, np.random.default_rng(1))
    assert np.array_equal(again, synth.reference_mix(stems, sr, np.random.default_rng(1)))


def test_reference_mix_pans_with_the_console_law():
    # Quiet enough that the limiter never acts: each channel is the stem times the console's pan gain.
    sr, n = 22050, 22050 * 2
    tone = 0.1 * np.sin(2 * np.pi * 330 * np.arange(n) / sr)
    cases = (("chords_piano", tone, False), ("pad_strings", np.stack([tone, tone], axis=1), True))
    for name, audio, stereo in cases:
        for seed in range(4):
            settings = synth.draw_reference([name], np.random.default_rng(seed))
            (pan,) = settings.pans
            assert 0.25 <= abs(pan) <= 0.85  # a role panned to one side
            mix = synth.render_reference([audio], sr, settings, target_lufs=-30.0).astype(np.float64)
            gains = pan_law(pan, stereo)
            np.testing.assert_allclose(mix[:, 1] * gains[0], mix[:, 0] * gains[1], rtol=0, atol=1e-6)


def test_reference_mix_bus_compressor_takes_off_the_drawn_gain_reduction():
    # A steady tone sits on the loud-passage level the threshold is set from: 2 dB more gain reduction
    # drawn gives a 2 dB quieter steady state.
    sr = 22050
    t = np.arange(3 * sr) / sr
    x = 0.1 * np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t + 0.3)], axis=1)
    levels = []
    for gr in (2.0, 4.0):
        m = synth.MasterSettings(100.0, 1.0, 8000.0, 2.0, ratio=3.0, gr_db=gr, attack_ms=10.0,
                                 release_ms=100.0)
        y = synth.master_chain(x, sr, m)[2 * sr:]
        levels.append(10 * math.log10(np.mean(y ** 2)))
    assert levels[0] - levels[1] == pytest.approx(2.0, abs=0.1)


def test_reference_mix_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no stems"):
        synth.reference_mix({}, 22050, np.random.default_rng(0))


def test_package_command_line_and_old_engineer_path(tmp_path, capsys):
    import training.engineer
    import training.synth.engineer

    assert training.engineer is training.synth.engineer
    res = subprocess.run([sys.executable, "-m", "training.synth", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0 and "generate" in res.stdout and "demo" in res.stdout
    missing = tmp_path / "none.sf2"
    assert synth.main(["generate", str(tmp_path / "out"), "--songs", "1", "--soundfont", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(missing) in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# ----- rendering (needs fluidsynth and the soundfont) -----------------------------------------------


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    out = tmp_path_factory.mktemp("songs")
    return synth.generate(out, 4, seed=11, seconds=SECONDS, sample_rate=SR, jobs=2, progress=False)


@needs_fluidsynth
def test_songs_layout_levels_and_lengths(songs):
    assert [p.name for p in songs] == [f"song_{i:05d}" for i in range(4)]
    n = int(SECONDS * SR)
    for song in songs:
        meta = synth.read_song(song)
        assert synth.MIN_STEMS <= len(meta["stems"]) <= synth.MAX_STEMS
        assert sorted(f.name for f in song.glob("*.flac")) == sorted(s["file"] for s in meta["stems"])
        for s in meta["stems"]:
            audio, sr = sf.read(str(song / s["file"]), always_2d=True)
            assert sr == SR and audio.shape == (n, s["channels"])
            peak_db = 20 * np.log10(np.max(np.abs(audio)))
            assert abs(peak_db - s["peak_dbfs"]) < 0.1  # recorded at its stated level, so not silent
            lo, hi = synth.RECORDING_PEAK_DBFS
            assert lo - 0.1 <= peak_db <= hi + 0.1
            active = np.mean(np.max(np.abs(audio), axis=1) > 10 ** ((s["peak_dbfs"] - 40) / 20))
            assert active > 0.005, f"{song.name}/{s['name']} is nearly silent"


@needs_fluidsynth
def test_some_stems_are_stereo(songs):
    channels = [s["channels"] for song in songs for s in synth.read_song(song)["stems"]]
    assert 2 in channels and 1 in channels
    for song in songs:
        meta, stems, _ = synth.load_song(song)
        for s in meta["stems"]:
            x = stems[s["name"]]
            if s["channels"] == 2:
                assert s["stereo"] in ("native", "double")
                assert not np.allclose(x[:, 0], x[:, 1])


@needs_fluidsynth
def test_song_json_round_trip(songs):
    song = songs[0]
    meta = synth.read_song(song)
    assert meta == json.loads((song / "song.json").read_text())
    plan = synth.compose_song(meta["seed"], meta["seconds"])
    assert meta["seed"] == synth.song_seed(11, 0)
    assert (meta["genre"], meta["tempo_bpm"], meta["key"], meta["mode"]) == \
        (plan.genre, plan.tempo_bpm, plan.key, plan.mode)
    assert [s["name"] for s in meta["stems"]] == [p.name for p in plan.parts]
    assert [s["program"] for s in meta["stems"]] == [p.program for p in plan.parts]
    assert meta["sample_rate"] == SR and meta["n_samples"] == int(SECONDS * SR)
    # generating again finds the finished songs and keeps them
    before = {p: p.stat().st_mtime_ns for p in song.iterdir()}
    again = synth.generate(song.parent, 4, seed=11, seconds=SECONDS, sample_rate=SR, progress=False)
    assert again == songs and {p: p.stat().st_mtime_ns for p in song.iterdir()} == before


@needs_fluidsynth
def test_same_seed_same_stems_other_seed_differs(tmp_path):
    # FluidSynth renders to float without dither, so stems are reproducible bit for bit.
    a = synth.generate_song(tmp_path / "a", 5, 3.0, SR, "rock")
    b = synth.generate_song(tmp_path / "b", 5, 3.0, SR, "rock")
    c = synth.generate_song(tmp_path / "c", 6, 3.0, SR, "rock")
    meta_a, stems_a, _ = synth.load_song(a)
    meta_b, stems_b, _ = synth.load_song(b)
    assert meta_a == meta_b and stems_a.keys() == stems_b.keys()
    for name in stems_a:
        assert np.array_equal(stems_a[name], stems_b[name]), name
        assert (a / f"{name}.flac").read_bytes() == (b / f"{name}.flac").read_bytes()
    _, stems_c, _ = synth.load_song(c)
    assert any(name not in stems_c or stems_c[name].shape != x.shape or not np.array_equal(stems_c[name], x)
               for name, x in stems_a.items())


@needs_fluidsynth
def test_drum_pieces_are_separate_stems(tmp_path):
    plan = synth.compose_song(21, 3.0, "rock", n_stems=8)
    assert {"kick", "snare", "hats"} <= {p.name for p in plan.parts}
    _, stems, sr = synth.load_song(synth.generate_song(tmp_path, 21, 3.0, SR, "rock", n_stems=8))
    assert _band_fraction(stems["kick"], sr, hi=200) > 0.6
    assert _band_fraction(stems["kick"], sr, lo=5000) < 0.05
    assert _band_fraction(stems["hats"], sr, lo=5000) > 0.6
    assert _band_fraction(stems["hats"], sr, hi=200) < 0.05


# ----- demo assets (committed files) ------------------------------------------------------------------


def test_demo_stems():
    files = sorted((DEMO / "stems").glob("*.flac"))
    assert 6 <= len(files) <= 10
    infos = [sf.info(str(f)) for f in files]
    assert all(i.samplerate == 44100 and i.subtype == "PCM_16" for i in infos)
    assert any(i.channels == 2 for i in infos)
    assert all(abs(i.duration - 20.0) < 0.5 for i in infos)
    for f in files:
        x, _ = sf.read(str(f))
        assert np.max(np.abs(x)) > 10 ** (-31 / 20), f.name
    assert (DEMO / "README.md").is_file()


def test_demo_reference_is_a_loud_stereo_mix():
    pyloudnorm = pytest.importorskip("pyloudnorm")
    x, sr = sf.read(str(DEMO / "reference.flac"))
    assert sr == 44100 and x.ndim == 2 and x.shape[1] == 2
    assert abs(x.shape[0] / sr - 20.0) < 0.5
    assert not np.allclose(x[:, 0], x[:, 1])
    assert -14.0 <= pyloudnorm.Meter(sr).integrated_loudness(x) <= -10.0
    assert true_peak_dbtp(x.T, sr) < -1.0
    info = json.loads((DEMO / "demo.json").read_text())
    assert info["reference"]["genre"] != info["stems"]["genre"]
    assert info["reference"]["seed"] != info["stems"]["seed"]
