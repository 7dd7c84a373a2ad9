"""training/: folder layouts, silence checks, methods 1 and 2, one optimisation step, the train loop
(checkpoints, resume, logs), DDP with two gloo processes, and the evaluation table."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.features import integrated_lufs
from core.model import MixController, ModelConfig
from core.params import MASTER, TRACK
from core.prepare import REFERENCE_LUFS, STEM_LUFS
from training import evaluate as ev
from training.datasets import (
    DatasetError,
    detect_layout,
    gain_to,
    is_silent,
    read_section,
    sample_reference,
    sample_section,
    scan_multitracks,
    scan_references,
    split_songs,
)
from training.methods import (
    Example,
    ExampleStream,
    collate,
    default_mix,
    method1_example,
    random_params,
    training_loss,
)
from training.train import TrainConfig, load_config, lr_factor, train

from synthetic import make_reference, make_stems

ROOT = Path(__file__).resolve().parent.parent
SR = 44100
TINY_MODEL = {"n_fft": 512, "hop": 256, "n_bands": 16, "cnn_channels": [4, 8], "embed_dim": 16, "n_layers": 1,
              "n_heads": 2, "ffn_dim": 32, "dropout": 0.0}


# --- fixture folders -------------------------------------------------------------------------------------

def _write(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(x).T, sr)
    return path


def _song_audio(seconds=3.0, seed=0, sr=SR):
    return make_stems(sr, seconds, seed)


def make_medleydb(root: Path, n_songs=2, seconds=3.0) -> Path:
    for s in range(n_songs):
        name = f"Artist{s}_Song{s}"
        for k, x in enumerate(_song_audio(seconds, s).values()):
            _write(root / name / f"{name}_RAW" / f"{name}_RAW_{k + 1:02d}_01.wav", x)
        _write(root / name / f"{name}_STEMS" / f"{name}_STEM_01.wav", x)  # not raw: ignored
        _write(root / name / f"{name}_MIX.wav", make_reference(SR, seconds))  # the mix: ignored
    return root


def make_track_folders(root: Path, n_songs=2, seconds=3.0) -> Path:
    """Cambridge-mt style: one folder per song, tracks loose or in a subfolder, a mix file beside them."""
    for s in range(n_songs):
        song = root / f"Band {s} - Title"
        for k, (stem, x) in enumerate(_song_audio(seconds, 10 + s).items()):
            sub = song / "Tracks" if k % 2 else song
            _write(sub / f"{k + 1:02d}_{stem}.flac" if k % 2 else sub / f"{k + 1:02d}_{stem}.wav", x)
        _write(song / "Band - Title (Full Mix).wav", make_reference(SR, seconds))
        (song / "notes.txt").write_text("not audio")
    return root


def make_synth_layout(root: Path, n_songs=3, seconds=3.0, sr=SR) -> Path:
    for s in range(n_songs):
        folder = root / f"song_{s:05d}"
        stems_meta = []
        for name, x in _song_audio(seconds, 20 + s, sr).items():
            _write(folder / f"{name}.flac", x, sr)
            stems_meta.append({"name": name, "file": f"{name}.flac", "channels": x.shape[0],
                               "lufs": integrated_lufs(x, sr)})
        (folder / "song.json").write_text(json.dumps({"sample_rate": sr, "stems": stems_meta}))
    (root / "song_99999").mkdir()  # an incomplete song (no song.json): skipped
    return root


def make_references(root: Path, n=3, seconds=3.0) -> Path:
    """MTG-Jamendo style: audio files in numbered subfolders, any depth, other files around."""
    for i in range(n):
        _write(root / f"{i:02d}" / f"{1000 + i}.flac", make_reference(SR, seconds, seed=200 + i))
    _write(root / "deeper" / "still" / "x.wav", make_reference(SR, seconds, seed=300), sr=22050)
    (root / "README.txt").write_text("licence")
    _write(root / "silent.wav", np.zeros((2, SR)))
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    return {"synth": make_synth_layout(base / "synth"), "refs": make_references(base / "refs"),
            "medleydb": make_medleydb(base / "medleydb"), "folders": make_track_folders(base / "folders")}


# --- layouts --------------------------------------------------------------------------------------------

def test_medleydb_layout_reads_only_raw_tracks(data):
    assert detect_layout(data["medleydb"]) == "medleydb"
    songs = scan_multitracks(data["medleydb"])
    assert [s.name for s in songs] == ["Artist0_Song0", "Artist1_Song1"]
    for s in songs:
        assert len(s.tracks) == 6
        assert all(f"{s.name}_RAW" in t.path for t in s.tracks)
        assert all(t.sample_rate == SR and t.frames == 3 * SR for t in s.tracks)


def test_track_folder_layout_finds_nested_tracks_and_skips_mixes(data):
    assert detect_layout(data["folders"]) == "folders"
    songs = scan_multitracks(data["folders"])
    assert len(songs) == 2
    for s in songs:
        names = sorted(Path(t.path).name for t in s.tracks)
        assert len(names) == 6 and not any("Mix" in n for n in names)
        assert any("/Tracks/" in t.path for t in s.tracks)


def test_synth_layout_uses_song_json_and_skips_incomplete_songs(data):
    assert detect_layout(data["synth"]) == "synth"
    songs = scan_multitracks(data["synth"])
    assert [s.name for s in songs] == ["song_00000", "song_00001", "song_00002"]
    t = songs[0].tracks[0]
    x, _ = sf.read(t.path, always_2d=True)
    assert t.lufs == pytest.approx(integrated_lufs(x.T, SR), abs=0.01)


def test_reference_folder_any_depth_skips_silence_and_other_files(data):
    refs = scan_references(data["refs"])
    names = sorted(Path(r.path).name for r in refs)
    assert names == ["1000.flac", "1001.flac", "1002.flac", "x.wav"]
    assert {r.sample_rate for r in refs} == {SR, 22050}


def test_index_cache_is_reused_and_refreshed(tmp_path, data):
    cache = tmp_path / "index.json"
    first = scan_references(data["refs"], cache=cache)
    entries = json.loads(cache.read_text())
    assert len(entries) == 5  # the silent file is indexed too (it is skipped after measuring)
    again = scan_references(data["refs"], cache=cache)
    assert [(r.path, r.lufs) for r in again] == [(r.path, r.lufs) for r in first]
    target = Path(first[0].path)
    x, _ = sf.read(str(target), always_2d=True)
    sf.write(str(target), 0.5 * x, SR)  # changed file: measured again
    changed = {r.path: r for r in scan_references(data["refs"], cache=cache)}
    assert changed[str(target)].lufs == pytest.approx(first[0].lufs - 6.02, abs=0.05)
    sf.write(str(target), x, SR)


def test_missing_or_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        scan_multitracks(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no song folders"):
        scan_multitracks(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no usable reference"):
        scan_references(tmp_path / "empty")
    with pytest.raises(DatasetError, match="layout"):
        scan_multitracks(tmp_path / "empty", layout="stems")


def test_split_is_deterministic_and_disjoint(data):
    songs = scan_multitracks(data["synth"])
    a, b = split_songs(songs, 1, seed=3)
    c, d = split_songs(songs, 1, seed=3)
    assert [s.name for s in a] == [s.name for s in c] and len(b) == 1
    assert not {s.name for s in a} & {s.name for s in b}


# --- sections, loudness normalisation, silence -------------------------------------------------------------

def test_read_section_resamples_duplicates_mono_and_pads(tmp_path):
    t = np.arange(22050) / 22050
    path = _write(tmp_path / "mono.wav", (0.5 * np.sin(2 * np.pi * 440 * t))[None], sr=22050)
    f = scan_references(tmp_path)[0]
    x = read_section(f, 0.5, 1.0, SR)  # half of it lies past the end of the file
    assert x.shape == (2, SR) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], x[1])
    assert np.abs(x[:, : SR // 2 - 100]).max() > 0.4 and np.abs(x[:, SR // 2 + 100:]).max() == 0
    assert path.exists()


def test_sections_are_loudness_normalised_like_import(data):
    song = scan_multitracks(data["synth"])[0]
    sec = sample_section(song, 2.0, SR, np.random.default_rng(0), max_tracks=16, min_tracks=1)
    assert sec is not None and sec.tracks.shape[1:] == (2, 2 * SR)
    for x, name in zip(sec.tracks, sec.names, strict=True):
        f = next(t for t in song.tracks if Path(t.path).stem == name)
        raw = read_section(f, sec.start_s, 2.0, SR)
        np.testing.assert_allclose(x, raw * gain_to(f, STEM_LUFS), rtol=1e-5, atol=1e-7)
    refs = scan_references(data["refs"])
    ref = sample_reference(refs, 2.0, SR, np.random.default_rng(0))
    assert abs(integrated_lufs(ref, SR) - REFERENCE_LUFS) < 3.0  # a section of a file at -16 LUFS


def test_silent_sections_and_tracks_are_skipped(tmp_path):
    stems = _song_audio(4.0, 5)
    stems["late"] = stems["lead"].copy()
    stems["late"][:, : 2 * SR] = 0.0  # plays only in the second half
    stems["dead"] = np.zeros((1, 4 * SR), np.float32)
    root = tmp_path / "songs"
    for name, x in stems.items():
        _write(root / "one" / f"{name}.wav", x)
    song = scan_multitracks(root)[0]
    assert "dead" not in [Path(t.path).stem for t in song.playing]
    late = next(t for t in song.tracks if Path(t.path).stem == "late")
    assert is_silent(read_section(late, 0.0, 1.5, SR), late)
    assert not is_silent(read_section(late, 2.5, 1.5, SR), late)
    rng = np.random.default_rng(1)
    for _ in range(4):
        sec = sample_section(song, 1.5, SR, rng)
        if sec.start_s + 1.5 < 2.0:
            assert "late" not in sec.names
        assert "dead" not in sec.names
    capped = sample_section(song, 1.5, SR, rng, max_tracks=3)
    assert len(capped.names) == 3
    assert sample_section(song, 1.5, SR, rng, min_tracks=50) is None


# --- methods -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["uniform", "musical"])
def test_random_params_in_range_deterministic_trims_untouched(style):
    a_t, a_m = random_params(5, np.random.default_rng(4), style)
    b_t, b_m = random_params(5, np.random.default_rng(4), style)
    np.testing.assert_array_equal(a_t, b_t)
    np.testing.assert_array_equal(a_m, b_m)
    assert a_t.shape == (5, len(TRACK)) and a_m.shape == (len(MASTER),)
    assert np.all(a_t >= TRACK.mins) and np.all(a_t <= TRACK.maxs)
    assert np.all(a_m >= MASTER.mins) and np.all(a_m <= MASTER.maxs)
    assert np.all(a_t[:, TRACK.index("trim_db")] == 0.0)
    if style == "musical":
        assert np.all(np.abs(a_t[:, TRACK.index("eq_band2_gain_db")]) <= 9.0)


def test_method1_example_reference_and_target_share_one_gain(monkeypatch):
    # The target half is recorded 12 dB quieter than the reference half, so one shared gain keeps the
    # target clearly quieter, while gains set per half would bring both to REFERENCE_LUFS.
    from training import methods

    stems = make_stems(SR, 4.0, 0)
    tracks = np.stack([np.broadcast_to(x, (2, x.shape[-1])) for x in stems.values()]).astype(np.float32)
    tracks[:, :, 2 * SR:] *= np.float32(10 ** (-12 / 20))
    stereo = np.array([x.shape[0] == 2 for x in stems.values()])
    mixes = []
    render = methods.console.render

    def spy(*args, **kwargs):  # the random mix the example is cut from
        out = render(*args, **kwargs)
        mixes.append(out[0].numpy().astype(np.float64))
        return out

    monkeypatch.setattr(methods.console, "render", spy)
    e = method1_example(tracks, stereo, SR, np.random.default_rng(0))
    assert e.tracks.shape == (len(stems), 2, 2 * SR) and e.reference.shape == e.target.shape == (2, 2 * SR)
    np.testing.assert_array_equal(e.tracks, tracks[:, :, 2 * SR:])
    (mix,) = mixes
    a, b = mix[:, :2 * SR], mix[:, 2 * SR:4 * SR]
    gain_a = np.sum(e.reference * a) / np.sum(a * a)  # least-squares gain of each half
    gain_b = np.sum(e.target * b) / np.sum(b * b)
    np.testing.assert_allclose(e.reference, gain_a * a, rtol=0, atol=1e-6 * np.abs(e.reference).max())
    np.testing.assert_allclose(e.target, gain_b * b, rtol=0, atol=1e-6 * np.abs(e.target).max())
    assert gain_a == pytest.approx(gain_b, rel=1e-6)
    assert integrated_lufs(mix * gain_a, SR) == pytest.approx(REFERENCE_LUFS, abs=0.01)
    assert integrated_lufs(e.target, SR) < integrated_lufs(e.reference, SR) - 3.0


def test_collate_pads_and_masks():
    ex = [Example(np.ones((n, 2, 100), np.float32), np.ones(n, bool), np.zeros((2, 100), np.float32))
          for n in (2, 4)]
    b = collate(ex)
    assert b.tracks.shape == (2, 4, 2, 100) and b.target is None
    assert b.mask.tolist() == [[True, True, False, False], [True] * 4]
    assert b.tracks[0, 2:].abs().sum() == 0 and not b.stereo[0, 2:].any()


def _tiny_batch(method):
    stems = make_stems(SR, 3.0, 0)
    tracks = np.stack([np.broadcast_to(x, (2, x.shape[-1])) for x in stems.values()]).astype(np.float32)
    gains = np.array([gain_to(_lufs_file(x), STEM_LUFS) for x in tracks], np.float32)
    tracks = tracks * gains[:, None, None]
    stereo = np.array([x.shape[0] == 2 for x in stems.values()])
    if method == 1:
        return collate([method1_example(tracks, stereo, SR, np.random.default_rng(s)) for s in (0, 1)])
    ref = make_reference(SR, 1.5)
    ref = ref * np.float32(10 ** ((REFERENCE_LUFS - integrated_lufs(ref, SR)) / 20))
    return collate([Example(tracks[:, :, :SR * 3 // 2], stereo, ref),
                    Example(tracks[:4, :, SR * 3 // 2:], stereo[:4], ref)])


def _lufs_file(x):
    from training.datasets import AudioFile

    return AudioFile("x", x.shape[-1], SR, 2, integrated_lufs(x, SR))


@pytest.mark.parametrize("method", [1, 2])
def test_one_optimisation_step_lowers_the_loss(method):
    torch.manual_seed(0)
    model = MixController(ModelConfig(**TINY_MODEL)).train()
    batch = _tiny_batch(method)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before, terms = training_loss(model, batch, method, SR, af_weight=0.5)
    assert before.requires_grad and all(torch.isfinite(v) for v in terms.values())
    before.backward()
    opt.step()
    with torch.no_grad():
        after, _ = training_loss(model, batch, method, SR, af_weight=0.5)
    assert after.item() < before.item()


def test_default_mix_is_the_equal_loudness_sum():
    batch = _tiny_batch(2)
    mix = default_mix(batch, SR)
    assert mix.shape == (2, 2, SR * 3 // 2)
    # flat EQ, ratio-1 compressors, 0 dB faders, centre pans: mono stems at -3 dB per side, stereo at unity
    gains = torch.where(batch.stereo, 1.0, 0.5 ** 0.5) * batch.mask
    expected = (batch.tracks * gains[..., None, None]).sum(dim=1)
    torch.testing.assert_close(mix, expected, rtol=1e-3, atol=1e-5)


def test_example_stream_is_seeded_per_rank(data):
    songs, refs = scan_multitracks(data["synth"]), scan_references(data["refs"])

    def first(rank, epoch=0):
        e = next(iter(ExampleStream(2, songs, refs, 1.0, SR, seed=3, rank=rank, epoch=epoch)))
        return e.tracks

    np.testing.assert_array_equal(first(0), first(0))
    assert not np.array_equal(first(0), first(1))
    assert not np.array_equal(first(0), first(0, epoch=1))


# --- config and loop -----------------------------------------------------------------------------------

def _config(tmp_path, data, **over) -> dict:
    cfg = {"out_dir": str(tmp_path / "run"), "method": 2, "model": TINY_MODEL,
           "data": {"train": [str(data["synth"])], "references": [str(data["refs"])], "held_out": 1},
           "section_seconds": 1.0, "batch_size": 2, "steps": 3, "log_every": 1, "checkpoint_every": 2,
           "val_every": 2, "val_examples": 2, "warmup_steps": 1, "threads": 1, "seed": 0,
           "val_cross": 1, "val_same": 1, "val_seconds": 2.0}
    cfg.update(over)
    return cfg


def test_config_checks_and_overrides(tmp_path, data):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_config(tmp_path, data)))
    cfg = load_config(path, ["steps=7", "model.embed_dim=32", "data.held_out=0", "log=tensorboard"])
    assert cfg.steps == 7 and cfg.model["embed_dim"] == 32 and cfg.data.held_out == 0
    with pytest.raises(ValueError, match="unknown config"):
        TrainConfig.from_dict({**_config(tmp_path, data), "stpes": 3})
    assert TrainConfig.from_dict({**_config(tmp_path, data), "method": "mixed"}).method == "mixed"
    with pytest.raises(ValueError, match="method must be"):
        TrainConfig.from_dict({**_config(tmp_path, data), "method": 3})
    with pytest.raises(ValueError, match="curriculum"):
        TrainConfig.from_dict({**_config(tmp_path, data), "curriculum": {"start": 1.5}})
    with pytest.raises(ValueError, match="loss weight"):
        TrainConfig.from_dict({**_config(tmp_path, data), "loss": {"tonl": 1.0}})
    with pytest.raises(ValueError, match="pairing"):
        TrainConfig.from_dict({**_config(tmp_path, data), "pairing": "human"})
    with pytest.raises(ValueError, match="embed_dim"):
        TrainConfig.from_dict({**_config(tmp_path, data), "model": {"embed_dim": 30, "n_heads": 4}})
    for name in ("synth_method2.json", "synth_method1.json", "medleydb_method2.json",
                 "synth_real_mixed.json"):
        load_config(ROOT / "training" / "configs" / name)  # shipped configs are valid


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig.from_dict({"data": {"train": ["x"], "references": ["y"]}, "steps": 100,
                                 "warmup_steps": 10, "min_lr_ratio": 0.1})
    f = [lr_factor(s, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False)) and f[99] == pytest.approx(0.1, abs=0.01)


def test_train_checkpoints_logs_and_resumes(tmp_path, data):
    cfg = TrainConfig.from_dict(_config(tmp_path, data))
    summary = train(cfg)
    out = Path(cfg.out_dir)
    assert summary["step"] == 3 and (out / "last.pt").is_file() and (out / "best.pt").is_file()
    model, meta = load_checkpoint(out / "last.pt")
    assert meta["extra"]["step"] == 3 and meta["extra"]["method"] == 2
    assert model.config.embed_dim == TINY_MODEL["embed_dim"]
    rows = list(csv.DictReader((out / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows if r["loss"]] == ["1", "2", "3"]
    assert any(r["val_loss"] for r in rows)

    resumed = train(TrainConfig.from_dict(_config(tmp_path, data, steps=5)), resume=True)
    assert resumed["step"] == 5
    _, meta = load_checkpoint(out / "last.pt")
    assert meta["extra"]["step"] == 5
    rows = list(csv.DictReader((out / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows if r["loss"]] == ["1", "2", "3", "4", "5"]
    state = torch.load(out / "last_state.pt", weights_only=True)
    assert state["step"] == 5 and state["epoch"] == 1


def test_method1_with_accumulation_and_init_from(tmp_path, data):
    first = tmp_path / "first.pt"
    torch.manual_seed(0)
    model = MixController(ModelConfig(**TINY_MODEL))
    save_checkpoint(first, model, model.config)
    cfg = TrainConfig.from_dict(_config(tmp_path, data, method=1, accum_steps=2, steps=2, val_every=0,
                                        init_from=str(first), model={}))
    summary = train(cfg)
    assert summary["step"] == 2 and {"m1_mrstft", "m1_params", "m1_tonal"} <= set(summary["metrics"])
    trained, _ = load_checkpoint(Path(cfg.out_dir) / "last.pt")
    assert trained.config.embed_dim == TINY_MODEL["embed_dim"]  # the initial checkpoint's config


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path, data):
    """torchrun with 2 CPU processes: the gloo backend, gradients all-reduced, one checkpoint."""
    cfg_path = tmp_path / "ddp.json"
    cfg_path.write_text(json.dumps(_config(tmp_path, data, steps=3, val_every=0, checkpoint_every=3)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "training.train", "--config", str(cfg_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) on cpu" in proc.stdout
    _, meta = load_checkpoint(tmp_path / "run" / "last.pt")
    assert meta["extra"]["world_size"] == 2 and meta["extra"]["step"] == 3
    assert meta["extra"]["examples_seen"] == 3 * 2 * 2


# --- evaluation -------------------------------------------------------------------------------------------

def test_markdown_table_layout():
    per_song = {"a": {"equal_loudness": {"loss": 2.0, "rms": 0.1, "crest_db": 0.1, "width": 0.3,
                                         "imbalance": 0.5, "bark": 1.0, "seconds": 0.1},
                      "model": {"loss": 0.2, "rms": 0.01, "crest_db": 0.01, "width": 0.03,
                                "imbalance": 0.05, "bark": 0.1, "seconds": 0.2}}}
    table = ev.markdown_table(ev.summarise(per_song), steps=10)
    lines = table.splitlines()
    assert lines[0].startswith("| Method | AF loss | RMS | Crest | Width | Imbalance | Bark |")
    assert "| Model only | 0.2000 |" in lines[3] and "| 10.00 % | 10.00 % |" in lines[3]


def test_evaluate_command_on_folders(tmp_path, data, capsys):
    torch.manual_seed(0)
    model = MixController(ModelConfig(**TINY_MODEL))
    ckpt = save_checkpoint(tmp_path / "m.pt", model, model.config)
    out_json = tmp_path / "r.json"
    code = ev.main(["--model", str(ckpt), "--data", str(data["folders"]), "--references", str(data["refs"]),
                    "--songs", "1", "--steps", "1", "--json", str(out_json), "--out", str(tmp_path / "t.md")])
    assert code == 0
    table = capsys.readouterr().out
    for row in ("Equal-loudness sum", "Random parameters (uniform", "Model only", "Refine only (1 steps",
                "Model + refine (1 steps)"):
        assert row in table
    doc = json.loads(out_json.read_text())
    assert doc["meta"]["songs"] == 1 and set(doc["summary"]) >= {"equal_loudness", "model", "model_refine"}
    assert ev.main(["--data", str(data["folders"])]) == 1  # real songs need references
