"""Prediction: analysis sections, the model's input convention, defaults for silent stems, loading."""

import numpy as np
import pytest
import torch

from core.audio_io import Audio
from core.checkpoint import CheckpointError, save_checkpoint
from core.model import MixController, ModelConfig
from core.params import MASTER, TRACK, schema_version
from core.predict import (
    DEFAULT_MODEL_PATH,
    analysis_sections,
    load_default_model,
    load_model,
    model_inputs,
    predict,
    track_input_gain,
)
from core.prepare import REFERENCE_LUFS, STEM_LUFS, from_audio
from core.refine import RefineConfig, evaluate, refine

from synthetic import make_reference, make_stems

SR = 44100


def tiny_model(seed=0, sample_rate=SR) -> MixController:
    torch.manual_seed(seed)
    cfg = ModelConfig(sample_rate=sample_rate, n_fft=512, hop=256, n_bands=16, cnn_channels=(4, 8),
                      embed_dim=16, n_layers=1, n_heads=2, ffn_dim=32, dropout=0.0)
    model = MixController(cfg)
    with torch.no_grad():  # move the heads away from the defaults so predictions depend on the input
        for head in (model.track_head, model.master_head):
            head.net[-1].weight.mul_(30.0)
    return model.eval()


def _inputs(seconds=6.0, seed=0, sr=SR, gains=None, extra=None):
    stems = make_stems(sr, seconds, seed)
    if gains:
        stems = {k: v * gains.get(k, 1.0) for k, v in stems.items()}
    if extra:
        stems.update(extra)
    auds = [Audio(x, sr, f"{n}.wav", n, sr, x.shape[-1], silent=not np.any(x)) for n, x in stems.items()]
    ref = make_reference(sr, seconds)
    return from_audio(auds, sr, Audio(ref, sr, "ref.wav", "ref", sr, ref.shape[-1]))


def test_prediction_is_a_full_parameter_set_with_import_trims():
    inputs = _inputs()
    p = predict(inputs, tiny_model())
    assert p.names == inputs.names
    assert p.tracks.shape == (len(inputs.names), len(TRACK)) and p.master.shape == (len(MASTER),)
    np.testing.assert_allclose(p.tracks[:, TRACK.index("trim_db")], inputs.trim_db, atol=1e-4)
    assert np.all(p.tracks >= TRACK.mins - 1e-6) and np.all(p.tracks <= TRACK.maxs + 1e-6)
    assert np.all(p.master >= MASTER.mins - 1e-6) and np.all(p.master <= MASTER.maxs + 1e-6)
    # the model moved away from the defaults (the heads were scaled up)
    assert not np.allclose(p.tracks, inputs.default_params().tracks, atol=1e-3)


def test_silent_stem_keeps_defaults():
    inputs = _inputs(extra={"silence": np.zeros((1, int(SR * 6.0)), np.float32)})
    i = inputs.names.index("silence")
    assert inputs.silent[i]
    p = predict(inputs, tiny_model())
    np.testing.assert_array_equal(p.tracks[i], inputs.default_params().tracks[i])


def test_stem_level_only_changes_the_trim():
    """The model sees trimmed stems: a stem recorded 12 dB hotter gets another trim, nothing else."""
    model = tiny_model()
    a = predict(_inputs(), model)
    b = predict(_inputs(gains={"bass": 10 ** (12 / 20)}), model)
    i, trim = a.names.index("bass"), TRACK.index("trim_db")
    assert b.tracks[i, trim] == pytest.approx(a.tracks[i, trim] - 12.0, abs=0.05)
    others = np.delete(np.arange(len(TRACK)), trim)
    np.testing.assert_allclose(b.tracks[:, others], a.tracks[:, others], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(b.master, a.master, rtol=1e-3, atol=1e-3)


def test_stem_order_does_not_matter():
    model = tiny_model()
    inputs = _inputs()
    p = predict(inputs, model)
    order = np.arange(len(inputs.names))[::-1]
    flipped = _inputs()
    for name in ("names", "files"):
        setattr(flipped, name, [getattr(flipped, name)[k] for k in order])
    for name in ("stems", "stereo", "silent", "trim_db"):
        setattr(flipped, name, getattr(flipped, name)[order])
    q = predict(flipped, model)
    np.testing.assert_allclose(q.tracks, p.tracks[order], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q.master, p.master, rtol=1e-4, atol=1e-4)


def test_sections_are_the_most_active_or_inside_the_region():
    inputs = _inputs(seconds=10.0)
    inputs.stems[:, :, : 6 * SR] *= 1e-3  # only the last 4 s play fully
    (a, b), = analysis_sections(inputs, section_seconds=3.0, n_sections=1)
    assert a >= 6 * SR - SR // 4 and b - a == 3 * SR
    for a, b in analysis_sections(inputs, region=(1.0, 5.0), section_seconds=2.0, n_sections=2):
        assert SR <= a and b <= 5 * SR
    model = tiny_model()
    inputs = _inputs(seconds=10.0)
    inputs.stems[0, :, : 5 * SR] *= 0.2  # the first stem is quieter (but playing) in the first half
    whole = predict(inputs, model)
    loop = predict(inputs, model, region=(0.0, 5.0))
    assert not np.allclose(whole.tracks, loop.tracks)  # the region is analysed ...
    sections = analysis_sections(inputs, region=(0.0, 5.0)) + analysis_sections(inputs)
    assert predict(inputs, model, region=(0.0, 5.0), n_sections=2).tracks.shape == whole.tracks.shape
    assert len(sections) >= 3  # ... together with the song's most active sections (whole-song context)


def test_model_inputs_follow_the_config_convention():
    cfg = ModelConfig()
    tracks, ref = torch.ones(1, 2, 2, 10), torch.ones(1, 2, 10)
    t, r = model_inputs(tracks, ref, cfg)
    assert t[0, 0, 0, 0].item() == pytest.approx(10 ** ((cfg.track_lufs - STEM_LUFS) / 20))
    assert r[0, 0, 0].item() == pytest.approx(10 ** ((cfg.reference_lufs - REFERENCE_LUFS) / 20))
    assert track_input_gain(cfg) < 1.0  # -48 LUFS model input below the -28 LUFS console level


def test_other_session_rate_and_model_rate():
    model = tiny_model()
    p = predict(_inputs(sr=48000), model)
    assert np.all(np.isfinite(p.tracks)) and p.sample_rate == 48000


def test_needs_a_reference():
    inputs = _inputs()
    inputs.reference = None
    with pytest.raises(ValueError, match="reference"):
        predict(inputs, tiny_model())


def test_refinement_starts_from_the_prediction():
    inputs = _inputs(seconds=5.0)
    p = predict(inputs, tiny_model())
    cfg = RefineConfig(steps=2, section_seconds=2.0)
    start, _ = evaluate(inputs, p, cfg)
    r = refine(inputs, p, cfg)
    assert r.af_before == pytest.approx(start, rel=1e-5)  # the paper's AF loss of the prediction
    assert r.loss_after <= r.loss_before


def test_load_default_model_absent_present_and_broken(tmp_path):
    assert load_default_model(tmp_path / "nothing.pt") is None
    model = tiny_model()
    path = save_checkpoint(tmp_path / "m.pt", model, model.config, {"note": "test"})
    loaded = load_default_model(path)
    assert isinstance(loaded, MixController) and not loaded.training
    inputs = _inputs()
    np.testing.assert_allclose(predict(inputs, loaded).tracks, predict(inputs, model).tracks, atol=1e-5)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_default_model(broken)
    with pytest.raises(CheckpointError, match="no such"):
        load_model(tmp_path / "missing.pt")


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="no shipped model")
def test_shipped_model_loads_and_is_small():
    assert DEFAULT_MODEL_PATH.stat().st_size <= 50 * 2**20
    payload = torch.load(DEFAULT_MODEL_PATH, map_location="cpu", weights_only=True)
    assert schema_version(payload["schema"]) is not None  # this schema, or an earlier one (migrated)
    model = load_default_model()
    p = predict(_inputs(), model)
    assert np.all(np.isfinite(p.tracks)) and np.all(np.isfinite(p.master))
