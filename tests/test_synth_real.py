"""Songs closer to real sessions (``realism="full"``: training/synth/arrange.py, hydrogen.py, realistic.py):
song form and rests, Hydrogen kit parsing and playback on a tiny fake kit, the fallbacks, bleed, noise,
and on rendered songs determinism, the dry mix, silences, stereo, bleed and engineer mixes in the prior."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.objective import prior
from core.params import MASTER, TRACK
from training import synth
from training.synth import arrange, engineer, hydrogen, realistic

SR = 22050
SECONDS = 12.0
SEED = 15  # rock, 10 stems: vocals, a lead, overheads, bleed drawn

needs_fluidsynth = pytest.mark.skipif(
    not synth.have_fluidsynth(),
    reason=f"needs the fluidsynth program and the soundfont {synth.SOUNDFONT}",
)


def _plan_digest(plan) -> str:
    fields = ("seed", "genre", "seconds", "tempo_bpm", "beats_per_bar", "key_pc", "mode", "density", "swing",
              "kit", "progressions", "section_variants", "n_bars", "parts")
    return hashlib.sha256(repr([getattr(plan, f) for f in fields]).encode()).hexdigest()[:16]


# ----- composition (no fluidsynth) -------------------------------------------------------------------


def test_default_songs_are_unchanged_and_realism_is_a_separate_mode():
    # the quality benchmark's songs (seeds 900001.., 900501.., 24 s) must not move
    assert _plan_digest(synth.compose_song(900001, 24.0)) == "7b29821ec84e590b"
    assert _plan_digest(synth.compose_song(900501, 24.0)) == "6bb7589dfba4e00e"
    a = synth.compose_song(7, 30.0, realism="full")
    assert a == synth.compose_song(7, 30.0, realism="full")
    assert a.realism == "full" and a.sections
    assert synth.compose_song(7, 30.0).sections == []
    assert [p.notes for p in synth.compose_song(8, 30.0, realism="full").parts] != [p.notes for p in a.parts]
    with pytest.raises(ValueError, match="realism"):
        synth.compose_song(7, 30.0, realism="some")


@pytest.mark.parametrize("genre", sorted(synth.GENRES))
def test_sections_tile_the_song_and_leads_and_vocals_rest(genre):
    labels = set()
    for seed in range(10):
        plan = synth.compose_song(seed, 30.0, genre, realism="full")
        bar = 0
        for label, start, bars in plan.sections:  # contiguous, in order, covering every bar
            assert label in arrange.SECTION_LABELS and start == bar and bars > 0
            bar += bars
            labels.add(label)
        assert bar == plan.n_bars
        ticks_s = 60.0 / (plan.tempo_bpm * synth.TICKS_PER_BEAT)
        for part in plan.parts:
            assert part.notes, (seed, part.name)
            if part.role not in ("voice", "lead"):
                continue
            # the longest stretch inside the song where no note of the part sounds
            sounding_end, longest = 0.0, 0.0
            for n in sorted(part.notes, key=lambda n: n.start):
                longest = max(longest, n.start * ticks_s - sounding_end)
                sounding_end = max(sounding_end, (n.start + n.length) * ticks_s)
            longest = max(longest, plan.seconds - sounding_end)
            assert longest >= arrange.MIN_REST_S - 0.1, (genre, seed, part.name, longest)
    assert {"verse", "chorus", "intro"} <= labels


def test_performance_follows_the_sections():
    # choruses are played louder than verses (dynamics), by the same players
    loud, soft = [], []
    for seed in range(12):
        plan = synth.compose_song(seed, 30.0, "pop", realism="full")
        label_of = [label for label, _, n in plan.sections for _ in range(n)]
        bar_ticks = plan.beats_per_bar * synth.TICKS_PER_BEAT
        for part in plan.parts:
            for n in part.notes:
                label = label_of[min(n.start // bar_ticks, plan.n_bars - 1)]
                (loud if label == "chorus" else soft if label == "verse" else []).append(n.velocity)
    assert np.mean(loud) - np.mean(soft) > 0.5 * (arrange.DYNAMICS["chorus"] - arrange.DYNAMICS["verse"])


# ----- Hydrogen kits (a tiny fake kit written here) ------------------------------------------------------


def _write_wav(path: Path, value: float, n: int = 2205, channels: int = 1) -> None:
    sf.write(str(path), np.full((n, channels), value, np.float32), SR, subtype="FLOAT")


KIT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
  <name>Tiny Test Kit</name>
  <instrumentList>
    <instrument><id>0</id><name>Kick</name><volume>1</volume><pan_L>1</pan_L><pan_R>1</pan_R>
      <layer><filename>kick_soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
      <layer><filename>kick_hard.wav</filename><min>0.5</min><max>1</max><gain>0.5</gain></layer>
    </instrument>
    <instrument><id>1</id><name>Snare Rock</name><volume>0.5</volume><pan_L>1</pan_L><pan_R>1</pan_R>
      <layer><filename>snare.wav</filename><min>0</min><max>1</max><gain>1</gain></layer>
    </instrument>
    <instrument><id>2</id><filename>hat.wav</filename><name>Closed HH</name><volume>1</volume>
      <pan_L>1</pan_L><pan_R>0.5</pan_R></instrument>
    <instrument><id>3</id><name>Open HH</name><volume>1</volume><pan_L>1</pan_L><pan_R>1</pan_R>
      <layer><filename>open.wav</filename><min>0</min><max>1</max><gain>1</gain></layer>
    </instrument>
    <instrument><id>4</id><name>Tom Low</name><volume>1</volume><pan_L>1</pan_L><pan_R>1</pan_R>
      <layer><filename>missing.wav</filename><min>0</min><max>1</max><gain>1</gain></layer>
    </instrument>
  </instrumentList>
</drumkit_info>
"""


@pytest.fixture
def fake_kit(tmp_path):
    folder = tmp_path / "kits" / "tiny"
    folder.mkdir(parents=True)
    (folder / "drumkit.xml").write_text(KIT_XML)
    _write_wav(folder / "kick_soft.wav", 0.1)
    _write_wav(folder / "kick_hard.wav", 0.8)
    _write_wav(folder / "snare.wav", 0.4, channels=2)
    _write_wav(folder / "hat.wav", 0.2)
    _write_wav(folder / "open.wav", 0.3, n=SR)  # one second of ring
    return folder


def test_parse_kit_layers_and_gm_map(fake_kit):
    kit = hydrogen.parse_kit(fake_kit)
    assert kit.name == "Tiny Test Kit" and kit.folder == fake_kit
    names = [i.name for i in kit.instruments]
    assert names == ["Kick", "Snare Rock", "Closed HH", "Open HH"]  # the tom's sample is missing
    kick = kit.instruments[0]
    assert [(la.path.name, la.lo, la.hi, la.gain) for la in kick.layers] == \
        [("kick_soft.wav", 0.0, 0.5, 1.0), ("kick_hard.wav", 0.5, 1.0, 0.5)]
    hat = kit.instruments[2]  # the old format: one file for the whole instrument
    assert len(hat.layers) == 1 and hat.layers[0].path.name == "hat.wav" and hat.pan_r == 0.5
    assert kit.notes[36] == kit.notes[35] == 0 and kit.notes[38] == 1 and kit.notes[42] == 2
    assert kit.notes[46] == 3
    assert kit.notes[44] == 2 and kit.notes[37] == 1  # borrowed: pedal hat -> closed hat, side stick -> snare
    assert 41 not in kit.notes and 49 not in kit.notes
    assert kit.playable and not kit.electronic
    assert hydrogen.gm_map(["TR-808 Kick", "Ride Bell", "Hi-Hat Pedal", "Floor Tom", "Crash Left"]) == \
        {36: 0, 35: 0, 53: 1, 51: 1, 59: 1, 44: 2, 42: 2, 46: 2, 41: 3, 43: 3, 45: 3, 47: 3, 48: 3, 50: 3,
         49: 4, 57: 4, 52: 4, 55: 4}  # one tom plays every tom note


def test_render_hits_picks_layers_by_velocity_and_chokes_the_open_hat(fake_kit):
    kit = hydrogen.parse_kit(fake_kit)
    rng = np.random.default_rng(0)
    n = SR
    soft = hydrogen.render_hits(kit, [(0.0, 36, 40)], n, SR, rng)
    hard = hydrogen.render_hits(kit, [(0.0, 36, 127)], n, SR, rng)
    assert soft.shape == (n, 2)
    np.testing.assert_allclose(soft[100], 0.1 * 40 / 127)  # soft layer, scaled by velocity
    np.testing.assert_allclose(hard[100], 0.8 * 0.5)  # hard layer, its gain 0.5
    hat = hydrogen.render_hits(kit, [(0.25, 42, 127)], n, SR, rng)
    start = int(0.25 * SR)
    assert np.all(hat[:start] == 0)
    np.testing.assert_allclose(hat[start + 10], [0.2, 0.1])  # the kit's pan
    snare = hydrogen.render_hits(kit, [(0.0, 38, 127)], n, SR, rng)
    np.testing.assert_allclose(snare[10], 0.4 * 0.5)  # instrument volume 0.5
    ring = hydrogen.render_hits(kit, [(0.0, 46, 127)], n, SR, rng)
    choked = hydrogen.render_hits(kit, [(0.0, 46, 127), (0.5, 42, 127)], n, SR, rng)
    after = int((0.5 + 2 * hydrogen.CHOKE_S) * SR)
    assert np.all(ring[after:after + 100, 0] > 0.29)
    np.testing.assert_allclose(choked[after:after + 100], 0.2 * np.array([1.0, 0.5]) * np.ones((100, 1)))
    assert not np.any(hydrogen.render_hits(kit, [(0.0, 41, 100)], n, SR, rng))  # a note the kit lacks


def test_find_kits_and_a_broken_kit(fake_kit, tmp_path):
    kits = hydrogen.find_kits([fake_kit.parent, tmp_path / "nowhere"])
    assert [k.name for k in kits] == ["Tiny Test Kit"]
    broken = fake_kit.parent / "broken"
    broken.mkdir()
    (broken / "drumkit.xml").write_text("<drumkit_info><name>x</name")
    with pytest.raises(ValueError, match=r"broken/drumkit\.xml"):
        hydrogen.parse_kit(broken)
    assert [k.name for k in hydrogen.find_kits([fake_kit.parent])] == ["Tiny Test Kit"]  # skipped
    assert hydrogen.find_kits([tmp_path / "nowhere"]) == []


def test_fallbacks_say_so_once(monkeypatch, capsys, fake_kit):
    monkeypatch.setattr(realistic, "_warned", set())
    rng = np.random.default_rng(0)
    assert realistic.choose_kit(rng, "rock", []) is None
    assert realistic.choose_kit(rng, "pop", []) is None
    err = capsys.readouterr().err
    assert err.count("no Hydrogen drum kits") == 1 and "setup-train.sh" in err
    monkeypatch.setattr(realistic, "SOUNDFONTS", (Path("/nonexistent/a.sf2"),))
    fallback = Path("/some/fallback.sf2")
    assert realistic.choose_soundfont(rng, fallback) == fallback
    assert realistic.choose_soundfont(rng, fallback) == fallback
    err = capsys.readouterr().err
    assert err.count("/nonexistent/a.sf2 not found") == 1
    kit = hydrogen.parse_kit(fake_kit)
    assert realistic.choose_kit(np.random.default_rng(1), "rock", [kit]) is kit
    # the draws do not depend on what is installed: the same stream position afterwards
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    realistic.choose_kit(a, "rock", [])
    realistic.choose_kit(b, "rock", [kit])
    assert a.random() == b.random()


# ----- bleed and noise (pure numpy) -------------------------------------------------------------------


def test_bleed_is_attenuated_delayed_and_from_the_dry_signals():
    n = SR
    kick, snare = np.zeros(n), np.zeros(n)
    kick[1000] = 1.0
    snare[5000] = 1.0
    for seed in range(20):  # find a draw where the snare mic hears the kick
        wet, info = realistic.add_bleed({"kick": kick, "snare": snare}, np.random.default_rng(seed), SR)
        if any(b["from"] == "kick" for b in info["snare"]):
            break
    (b,) = [b for b in info["snare"] if b["from"] == "kick"]
    assert realistic.BLEED_DB[0] <= b["db"] <= realistic.BLEED_DB[1]
    lag = int(round(b["delay_ms"] * 1e-3 * SR))
    extra = wet["snare"] - snare
    assert np.all(extra[:1000 + lag] == 0)  # nothing before the kick reaches the snare mic
    assert abs(int(np.argmax(extra)) - (1000 + lag)) <= 1
    assert 20 * math.log10(extra.sum()) == pytest.approx(b["db"], abs=0.1)  # low-pass keeps DC gain
    assert np.array_equal(kick, np.eye(1, n, 1000)[0])  # inputs untouched


def test_noise_floor_level_and_hum():
    rng = np.random.default_rng(0)
    x = realistic.noise_floor(SR * 2, 2, 1e-3, SR, rng)
    assert x.shape == (SR * 2, 2)
    assert np.sqrt(np.mean(x ** 2)) == pytest.approx(1e-3, rel=1e-6)
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.05  # independent per channel
    h = realistic.noise_floor(SR * 2, 1, 1e-3, SR, rng, hum_hz=50.0)
    spec = np.abs(np.fft.rfft(h))
    freqs = np.fft.rfftfreq(len(h), 1 / SR)
    assert spec[np.argmin(np.abs(freqs - 50))] > 20 * np.median(spec)


# ----- rendered songs (needs fluidsynth) -------------------------------------------------------------


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    if not synth.have_fluidsynth():
        pytest.skip("needs fluidsynth")
    out = tmp_path_factory.mktemp("real")
    return synth.generate_song(out, SEED, SECONDS, SR, "rock", n_stems=10, realism="full")


@needs_fluidsynth
def test_same_seed_same_files(song, tmp_path):
    again = synth.generate_song(tmp_path, SEED, SECONDS, SR, "rock", n_stems=10, realism="full")
    files = sorted(p.name for p in song.glob("*.flac"))
    assert files == sorted(p.name for p in again.glob("*.flac")) and "mix.flac" in files
    for name in files:
        assert (song / name).read_bytes() == (again / name).read_bytes(), name
    meta, meta2 = synth.read_song(song), synth.read_song(again)
    assert meta == meta2 and meta["realism"] == "full"


@needs_fluidsynth
def test_stems_sum_to_the_dry_mix(song):
    meta = synth.read_song(song)
    total = np.zeros((meta["n_samples"], 2))
    for s in meta["stems"]:
        x, sr = sf.read(str(song / s["file"]), always_2d=True)
        assert sr == SR and x.shape == (meta["n_samples"], s["channels"])
        total += x if x.shape[1] == 2 else np.repeat(x, 2, axis=1)
    mix, _ = sf.read(str(song / meta["dry_mix"]["file"]))
    expected = total * 10 ** (meta["dry_mix"]["gain_db"] / 20)
    assert np.max(np.abs(mix - expected)) <= 1.0 / 32768  # 16-bit rounding
    assert np.max(np.abs(mix)) == pytest.approx(10 ** (realistic.DRY_MIX_PEAK_DBFS / 20), abs=1e-3)


@needs_fluidsynth
def test_song_layout_levels_and_noise_floor(song):
    meta = synth.read_song(song)
    assert meta["seconds"] == SECONDS and meta["sections"][-1]["end_s"] == SECONDS
    for s in meta["stems"]:
        x, _ = sf.read(str(song / s["file"]), always_2d=True)
        peak = 20 * math.log10(np.max(np.abs(x)))
        assert peak == pytest.approx(s["peak_dbfs"], abs=0.01)
        assert realistic.PEAK_DBFS[0] - 0.5 <= peak <= realistic.PEAK_DBFS[1] + 0.5
        # the noise floor is there even where the part is silent: the quietest 50 ms is not digital zero
        block = int(0.05 * SR)
        rms = np.sqrt(np.mean(x[: len(x) // block * block].reshape(-1, block, x.shape[1]) ** 2, axis=(1, 2)))
        quiet = 20 * math.log10(rms.min())
        assert quiet > s["noise_dbfs"] - 12
        assert s["source"].split(":")[0] in ("hydrogen", "fluidsynth")


def _silent_stretch_s(x: np.ndarray, below_db: float) -> float:
    block = int(0.05 * SR)
    mono = x if x.ndim == 1 else x.mean(axis=1)
    rms = np.sqrt(np.mean(mono[: len(mono) // block * block].reshape(-1, block) ** 2, axis=1) + 1e-30)
    quiet = 20 * np.log10(rms) < 20 * np.log10(rms.max()) + below_db
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best * 0.05


@needs_fluidsynth
def test_leads_and_vocals_have_long_silences(song):
    meta, stems, _ = synth.load_song(song)
    parts = [s for s in meta["stems"] if s["role"] in ("voice", "lead")]
    assert parts
    for s in parts:
        assert _silent_stretch_s(stems[s["name"]], -36.0) >= 2.0, s["name"]
    # while the bass and the chords play through most of the song
    chords = [s["name"] for s in meta["stems"] if s["role"] == "chords"]
    assert any(_silent_stretch_s(stems[name], -36.0) < 2.0 for name in chords)


@needs_fluidsynth
def test_stereo_stems_are_decorrelated(song):
    meta, stems, _ = synth.load_song(song)
    wide = [s for s in meta["stems"] if s["channels"] == 2]
    assert wide and all(s["stereo"] in ("native", "double", "overheads") for s in wide)
    corrs = {}
    for s in wide:
        x = stems[s["name"]]
        corrs[s["name"]] = float(np.corrcoef(x[:, 0], x[:, 1])[0, 1])
        assert corrs[s["name"]] < 0.995, s["name"]  # never dual mono
        side, mid = (x[:, 0] - x[:, 1]) / 2, (x[:, 0] + x[:, 1]) / 2
        assert np.sum(side ** 2) > 1e-3 * np.sum(mid ** 2)
    assert min(corrs.values()) < 0.9, corrs


@needs_fluidsynth
def test_bleed_in_a_drum_stem(song):
    meta, stems, _ = synth.load_song(song)
    assert meta["bleed"]
    by_role = {s["role"]: s for s in meta["stems"]}
    close = {"kick", "snare", "hats", "toms"}
    ratios = []
    for s in meta["stems"]:
        assert not s["bleed"] or s["role"] in close
        for b in s["bleed"]:
            assert b["from"] in realistic.BLEED_FROM[s["role"]] and b["from"] in by_role
            assert realistic.BLEED_DB[0] <= b["db"] <= realistic.BLEED_DB[1]
            assert realistic.BLEED_DELAY_MS[0] <= b["delay_ms"] <= realistic.BLEED_DELAY_MS[1]
            # the source shows up in the stem at the stated delay: the phase-transform (whitened)
            # cross-correlation there, against its largest value at 10-50 ms where no bleed path lies
            x, y = stems[by_role[b["from"]]["name"]], stems[s["name"]]
            n = len(x)
            cross = np.fft.rfft(y, 2 * n) * np.conj(np.fft.rfft(x, 2 * n))
            xc = np.abs(np.fft.irfft(cross / (np.abs(cross) + 1e-12), 2 * n))
            lag = int(round(b["delay_ms"] * 1e-3 * SR))
            ratios.append(float(xc[lag - 2:lag + 3].max() / xc[int(0.01 * SR):int(0.05 * SR)].max()))
    # low, dark bleed (a kick in the snare mic) hides in the whitened correlation; the clearest stands out
    assert ratios and max(ratios) > 10, ratios


@needs_fluidsynth
def test_engineer_mixes_of_real_songs_stay_in_the_prior(song):
    _, stems, _ = synth.load_song(song)
    inputs = engineer.stems_inputs(stems, SR)
    assert engineer.role_of("overheads") == "cymbals"
    n = len(inputs.names)

    def value(pt: np.ndarray, pm: np.ndarray) -> float:
        t, m = torch.from_numpy(pt), torch.from_numpy(pm)
        return float(prior(t, m, TRACK.to_unit(t), MASTER.to_unit(m), torch.ones(n, dtype=torch.bool),
                           torch.ones(n, len(TRACK), dtype=torch.float64),
                           torch.ones(len(MASTER), dtype=torch.float64)))

    rng = np.random.default_rng(0)
    gains = [TRACK.index(f"{b}_gain_db") for b in ("eq_low_shelf", "eq_band1", "eq_band2", "eq_band3",
                                                   "eq_band4", "eq_high_shelf")]
    for seed in range(8):
        st = engineer.draw_console(inputs, np.random.default_rng(seed))
        t, m = st.params.tracks, st.params.master
        for schema, vec in [(TRACK, row) for row in t] + [(MASTER, m)]:
            lo, hi = schema.mins, schema.maxs
            assert np.all(vec >= lo - 1e-9) and np.all(vec <= hi + 1e-9)
        assert np.abs(t[:, gains]).max() <= 6.0  # the prior's comfortable track EQ
        assert np.all((t[:, TRACK.index("gain_db")] >= -24.0) & (t[:, TRACK.index("gain_db")] <= 12.0))
        drawn = value(t, m)
        random_t = TRACK.from_unit(rng.random((n, len(TRACK))))
        random_m = MASTER.from_unit(rng.random(len(MASTER)))
        assert drawn < 0.25 * value(random_t, random_m), seed


@needs_fluidsynth
def test_without_kits_drums_come_from_the_soundfont(tmp_path, monkeypatch):
    monkeypatch.setattr(realistic, "_kits_cache", {"kits": []})
    monkeypatch.setattr(realistic, "_warned", set())
    song = synth.generate_song(tmp_path, SEED, 4.0, SR, "rock", n_stems=5, realism="full", dry_mix=False)
    meta = json.loads((song / "song.json").read_text())
    assert meta["drum_kit"]["hydrogen"] is None and meta["dry_mix"] is None
    assert not (song / "mix.flac").exists()
    assert all(s["source"].startswith("fluidsynth:") for s in meta["stems"])



# ----- the data set command and the training set-up ---------------------------------------------------


def test_dataset_estimate_and_refusals(tmp_path, monkeypatch):
    from training import datasets

    est = datasets.estimate_synth(1000, 1, 30.0, 44100, 16, sample=6)
    assert est["songs"] == 1000 and 4 <= est["channels_per_song"] <= 2 * synth.MAX_STEMS
    wider = datasets.estimate_synth(1000, 1, 30.0, 44100, 24, sample=6)
    shorter = datasets.estimate_synth(1000, 1, 30.0, 22050, 16, sample=6)
    assert wider["mb_per_song"] > 1.5 * est["mb_per_song"]
    assert shorter["mb_per_song"] == pytest.approx(est["mb_per_song"] / 2, rel=0.02)
    assert est["gb_total"] == pytest.approx(est["mb_per_song"], rel=0.01)
    lines = []
    out = tmp_path / "ds"
    datasets.synth_dataset(out, 1000, dry_run=True, log=lines.append)
    assert lines[-1].startswith("estimate:") and "GB free" in lines[-1] and not out.exists()
    # a data set that does not fit is refused before anything is written
    monkeypatch.setattr(datasets, "SYNTH_STEM_BYTES_PER_S", {16: 1e12, 24: 1e12})
    with pytest.raises(datasets.DatasetError, match="GB are free"):
        datasets.synth_dataset(out, 1000, log=lines.append)
    assert not out.exists()


@needs_fluidsynth
def test_dataset_command_resumes(tmp_path, capsys):
    from training import datasets

    out = tmp_path / "ds"
    args = ["synth", str(out), "--seconds", "3", "--sample-rate", str(SR), "--seed", "5"]
    assert datasets.main([*args, "--songs", "1"]) == 0
    first = out / "song_00000"
    stamp = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    assert datasets.main([*args, "--songs", "2"]) == 1  # a folder with songs needs --resume
    assert "--resume" in capsys.readouterr().out
    assert datasets.main([*args, "--songs", "2", "--resume", "--bits", "24"]) == 1  # other settings
    assert "bits" in capsys.readouterr().out
    assert datasets.main([*args, "--songs", "2", "--resume"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamp  # kept, not redone
    meta = synth.read_song(out / "song_00001")
    assert meta["realism"] == "full" and meta["seed"] == synth.song_seed(5, 1)
    assert sf.info(str(out / "song_00001" / meta["stems"][0]["file"])).subtype == "PCM_16"
    assert json.loads((out / "dataset.json").read_text())["bits"] == 16


def test_training_packages_stay_out_of_the_app_setup():
    root = Path(__file__).resolve().parents[1]
    app = (root / "scripts" / "setup.sh").read_text()
    train = (root / "scripts" / "setup-train.sh").read_text()
    for pkg in ("hydrogen-drumkits", "musescore-general-soundfont-lossless"):
        assert pkg not in app and pkg in train
    assert "DPkg::Lock::Timeout=300" in train and "sudo" in train
