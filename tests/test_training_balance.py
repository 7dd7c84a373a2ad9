"""Training that teaches balance: the paired (engineer-mix) method 1 and the method 2 losses, the
curriculum, bit-for-bit resume, the best checkpoint chosen by the quality validation, the learning
curve, and the shipped checkpoint."""

import csv
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import TINY_MODEL, _config, data  # noqa: F401  (the fixture folders)

from core.checkpoint import load_checkpoint
from core.model import MixController, ModelConfig
from core.params import MASTER, TRACK, schema_version
from core.predict import DEFAULT_MODEL_PATH
from training import evaluate as ev
from training import train as train_mod
from training.curves import plot_log
from training.methods import (
    Curriculum,
    ExampleSet,
    ExampleStream,
    LossWeights,
    collate,
    paired_example,
    training_loss,
)
from training.train import TrainConfig, train

from synthetic import make_stems

SR = 44100


def _ready(seconds, seed):
    stems = make_stems(SR, seconds, seed)
    names = list(stems)
    tracks = np.stack([np.broadcast_to(x, (2, x.shape[-1])) for x in stems.values()]).astype(np.float32)
    return tracks * np.float32(0.05), np.array([x.shape[0] == 2 for x in stems.values()]), names


def _steps_lower_the_loss(batch, steps=3):
    torch.manual_seed(0)
    model = MixController(ModelConfig(**TINY_MODEL)).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    w = LossWeights()
    first, terms = training_loss(model, batch, None, SR, af_weight=0.5, weights=w)
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = training_loss(model, batch, None, SR, af_weight=0.5, weights=w)
        loss.backward()
        opt.step()
    with torch.no_grad():
        last, _ = training_loss(model, batch, None, SR, af_weight=0.5, weights=w)
    return first.item(), last.item(), terms


def test_paired_example_is_an_engineer_mix_with_known_settings():
    tracks, stereo, names = _ready(4.0, 1)
    e = paired_example(tracks, stereo, SR, np.random.default_rng(3), names)
    again = paired_example(tracks, stereo, SR, np.random.default_rng(3), names)
    np.testing.assert_array_equal(e.target, again.target)  # deterministic by the generator
    half = tracks.shape[-1] // 2
    assert e.tracks.shape == (len(names), 2, half) and e.reference.shape == e.target.shape == (2, half)
    assert e.unit_tracks.shape == (len(names), TRACK.n_predicted)
    assert e.unit_master.shape == (MASTER.n_predicted,)
    assert np.all((e.unit_tracks >= 0) & (e.unit_tracks <= 1)) and e.known.all()
    # an engineer's balance, not the equal-loudness sum: faders spread over several dB
    faders = TRACK.from_unit(np.pad(e.unit_tracks, ((0, 0), (1, 0))))[:, TRACK.index("gain_db")]
    assert np.ptp(faders) > 3.0
    assert e.song_model is not None and e.match_target is not None


def test_a_few_steps_lower_the_paired_method1_loss():
    tracks, stereo, names = _ready(3.0, 2)
    batch = collate([paired_example(tracks, stereo, SR, np.random.default_rng(s), names) for s in (0, 1)])
    assert batch.method == 1
    first, last, terms = _steps_lower_the_loss(batch)
    assert {"mrstft", "params", "tonal", "octave", "width"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    assert last < first


def test_a_few_steps_lower_the_method2_loss(data):  # noqa: F811
    from training.datasets import scan_multitracks

    songs = scan_multitracks(data["synth"])
    stream = ExampleStream(2, songs, None, 1.5, SR, seed=5)  # references: engineer mixes of other songs
    rng = np.random.default_rng(0)
    examples = []
    while len(examples) < 2:
        e = stream.draw(rng)
        if e is not None:
            examples.append(e)
    batch = collate(examples)
    assert batch.method == 2 and batch.target is None and len(batch.song_models) == 2
    first, last, terms = _steps_lower_the_loss(batch)
    assert set(terms) == {"af", "prior", "tonal", "octave", "width"}
    assert last < first


def test_curriculum_share_and_per_step_methods_are_fixed():
    c = Curriculum(start=1.0, end=0.0, steps=10)
    assert c.share(0, 100) == 1.0 and c.share(5, 100) == pytest.approx(0.5) and c.share(50, 100) == 0.0
    assert c.method(0, 100, seed=1) == 1 and c.method(20, 100, seed=1) == 2
    mid = Curriculum(start=0.5, end=0.5)
    methods = [mid.method(s, 200, seed=4) for s in range(200)]
    assert methods == [mid.method(s, 200, seed=4) for s in range(200)]
    assert 70 < methods.count(1) < 130


def test_examples_depend_on_their_index_only(data):  # noqa: F811
    from training.datasets import scan_multitracks

    songs = scan_multitracks(data["synth"])
    streams = {m: ExampleStream(m, songs, None, 1.0, SR, pairing="random", match=False) for m in (1, 2)}
    ds = ExampleSet(streams, per_step=2, total_steps=10, seed=3, method="mixed",
                    curriculum=Curriculum(0.5, 0.5))
    a, b = ds[7], ds[7]
    np.testing.assert_array_equal(a.tracks, b.tracks)
    assert (a.target is not None) == (ds.method_at(3) == 1)
    assert not np.array_equal(ds[6].reference, ds[7].reference)


def _run_cfg(tmp_path, data, name, held_out=0, **over):  # noqa: F811
    cfg = _config(tmp_path, data, out_dir=str(tmp_path / name), method="mixed", steps=4, val_every=0,
                  checkpoint_every=100, log_every=1, curriculum={"start": 0.5, "end": 0.5},
                  model={**TINY_MODEL, "dropout": 0.2}, pairing="random", plot=False)
    cfg["data"] = {"train": [str(data["synth"])], "held_out": held_out}
    cfg.update(over)
    return TrainConfig.from_dict(cfg)


def test_resume_continues_bit_for_bit(tmp_path, data):  # noqa: F811
    whole = train(_run_cfg(tmp_path, data, "whole"))
    assert whole["step"] == 4
    # the first piece draws its examples in a spawned worker process: the same examples
    first = train(_run_cfg(tmp_path, data, "pieces", stop_after=2, num_workers=1))
    assert first["step"] == 2 and first["stop"].startswith("stop_after")
    rest = train(_run_cfg(tmp_path, data, "pieces"), resume=True)
    assert rest["step"] == 4
    a, _ = load_checkpoint(tmp_path / "whole" / "last.pt")
    b, _ = load_checkpoint(tmp_path / "pieces" / "last.pt")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k
    rows = {}
    for name in ("whole", "pieces"):
        with open(tmp_path / name / "log.csv", newline="") as f:
            rows[name] = [(r["step"], r["loss"]) for r in csv.DictReader(f) if r["loss"]]
    assert rows["whole"] == rows["pieces"] and len(rows["whole"]) == 4
    with open(tmp_path / "whole" / "log.csv", newline="") as f:
        shares = [float(r["m1_share"]) for r in csv.DictReader(f) if r["m1_share"]]
    assert len(shares) == 4 and set(shares) <= {0.0, 1.0}  # a mixed run logs each step's method


def test_validation_score_rule():
    on_target = {"same": {"mrstft_rel": 0.8, "balance_db": 3.0},
                 "cross": {"tonal_db": 2.5, "worst_octave_db": 4.5},
                 "all": {"at_limit": 1.0, "eq_over": 0.0, "fast_comp": 0.1}}
    assert ev.validation_score(on_target) == pytest.approx(1.0)
    worse = json.loads(json.dumps(on_target))
    worse["same"]["balance_db"] = 6.0
    assert ev.validation_score(worse) == pytest.approx(1.25)
    worse["all"]["at_limit"] = 4.0  # twice the limit: +1
    assert ev.validation_score(worse) == pytest.approx(2.25)
    assert np.isnan(ev.validation_score({"all": {"at_limit": 0.0}}))


def test_best_checkpoint_follows_the_validation_score_not_the_loss(tmp_path, data, monkeypatch):  # noqa: F811
    scores = iter([5.0, 3.0, 1.0, 2.0, 4.0])  # steps 0, 1, 2, 3, 4: best at step 2
    seen = []

    def fake_run(self, model):
        s = next(scores)
        seen.append(s)
        return {"score": s, "summary": {"same": {"balance_db": s}}, "cases": []}

    def fake_validate(model, batches, cfg, sample_rate, device):  # the loss keeps falling
        return 10.0 - len(seen), 10.0

    monkeypatch.setattr(ev.QualityValidation, "run", fake_run)
    monkeypatch.setattr(train_mod, "validate", fake_validate)
    cfg = _run_cfg(tmp_path, data, "best", held_out=1, val_every=1, val_examples=1, plot=True,
                   val_seconds=1.0)
    summary = train(cfg)
    assert seen == [5.0, 3.0, 1.0, 2.0, 4.0]
    _, meta = load_checkpoint(tmp_path / "best" / "best.pt")
    assert meta["extra"]["best"]["step"] == 2 and meta["extra"]["best"]["score"] == 1.0
    assert summary["best"]["step"] == 2
    with open(tmp_path / "best" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_score"]) for r in rows if r["val_score"]] == [5.0, 3.0, 1.0, 2.0, 4.0]
    png = (tmp_path / "best" / "curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_quality_validation_measures_held_out_cases(data):  # noqa: F811
    from training.datasets import scan_multitracks

    songs = scan_multitracks(data["synth"])
    q = ev.QualityValidation(songs, n_cross=1, n_same=1, seconds=2.0, seed=1)
    assert [c.kind for c in q.cases] == ["cross", "same"]
    torch.manual_seed(0)
    result = q.run(MixController(ModelConfig(**TINY_MODEL)))
    s = result["summary"]
    assert set(s) == {"cross", "same", "all"}
    assert s["same"]["mrstft_rel"] > 0 and s["same"]["balance_db"] >= 0 and s["cross"]["tonal_db"] > 0
    assert result["score"] == pytest.approx(ev.validation_score(s))
    flat = q.flat(result)
    assert set(flat) <= set(ev.VAL_COLUMNS) and "val_score" in flat


def test_learning_curve_png_without_plotting_packages(tmp_path):
    log = tmp_path / "log.csv"
    with open(log, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss", "loss_m1", "val_score"])
        for s in range(1, 21):
            w.writerow([s, 3.0 / s, 2.0 / s, (1.0 + 1.0 / s) if s % 5 == 0 else ""])
    png = plot_log(log, tmp_path / "c.png", width=300, height=200).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (300, 200)
    idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
    pixels = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(200, 1 + 300 * 3)[:, 1:]
    assert (pixels < 255).any() and (pixels == 255).mean() > 0.5  # curves drawn on white
    with pytest.raises(ValueError, match="no rows"):
        (tmp_path / "empty.csv").write_text("step,loss\n")
        plot_log(tmp_path / "empty.csv", tmp_path / "e.png")


def test_shipped_checkpoint_loads_with_weights_only_and_its_schema():
    payload = torch.load(DEFAULT_MODEL_PATH, map_location="cpu", weights_only=True)
    assert schema_version(payload["schema"]) is not None  # this schema or an earlier one (migrated on load)
    model, meta = load_checkpoint(DEFAULT_MODEL_PATH)
    assert meta["schema"] == payload["schema"] and isinstance(model, MixController)
    assert Path(DEFAULT_MODEL_PATH).stat().st_size < 64 << 20
