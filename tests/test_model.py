"""The controller (core/model.py) and its checkpoints (core/checkpoint.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.model import MixController, ModelConfig, mel_filterbank
from core.params import MASTER, TRACK, fingerprint, keys_of_version

SR = 8000
T = 4000  # 0.5 s


def tiny_config(**kw) -> ModelConfig:
    base = dict(sample_rate=SR, n_fft=256, hop=64, n_bands=16, cnn_channels=(4, 8), embed_dim=16, n_layers=2,
                n_heads=2, ffn_dim=32, dropout=0.0, encoder_chunk=4)
    base.update(kw)
    return ModelConfig(**base)


def tiny_model(seed: int = 0, **kw) -> MixController:
    torch.manual_seed(seed)
    return MixController(tiny_config(**kw)).eval()


def audio(*shape, seed: int = 1, scale: float = 0.1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


# --- shapes and ranges -----------------------------------------------------------------------------

def test_output_shapes_and_range():
    model = tiny_model()
    with torch.no_grad():
        tu, mu = model(audio(2, 3, 2, T), audio(2, 2, T, seed=2))
    assert tu.shape == (2, 3, TRACK.n_predicted)
    assert mu.shape == (2, MASTER.n_predicted)
    for x in (tu, mu):
        assert torch.isfinite(x).all()
        assert (x >= 0).all() and (x <= 1).all()


def test_head_width_comes_from_schema():
    model = tiny_model()
    assert model.track_head.net[-1].out_features == int(TRACK.predicted_mask.sum())
    assert model.master_head.net[-1].out_features == int(MASTER.predicted_mask.sum())


def test_predict_params_physical_vectors_in_range():
    model = tiny_model()
    trims = torch.tensor([[-6.0, 3.0, 100.0], [0.0, 1.5, -2.0]])  # 100 dB is out of range: clipped
    with torch.no_grad():
        tp, mp = model.predict_params(audio(2, 3, 2, T), audio(2, 2, T, seed=2), fixed={"trim_db": trims})
    assert tp.shape == (2, 3, len(TRACK)) and mp.shape == (2, len(MASTER))
    for schema, x in ((TRACK, tp), (MASTER, mp)):
        lo = torch.as_tensor(schema.mins, dtype=x.dtype)
        hi = torch.as_tensor(schema.maxs, dtype=x.dtype)
        assert ((x >= lo - 1e-4) & (x <= hi + 1e-4)).all()
    trim = tp[..., TRACK.index("trim_db")]
    assert torch.allclose(trim, trims.clamp(TRACK["trim_db"].min, TRACK["trim_db"].max))


def test_to_physical_maps_predicted_columns_through_schema():
    g = torch.Generator().manual_seed(3)
    tu = torch.rand(1, 2, TRACK.n_predicted, generator=g)
    mu = torch.rand(1, MASTER.n_predicted, generator=g)
    tp, mp = MixController.to_physical(tu, mu)
    pred = TRACK.predicted_mask
    np.testing.assert_allclose(tp[..., pred].numpy(), TRACK.from_unit(
        np.insert(tu.numpy().astype(np.float64), np.flatnonzero(~pred), 0.0, axis=-1))[..., pred], rtol=1e-5)
    np.testing.assert_allclose(mp.numpy(), MASTER.from_unit(mu.numpy().astype(np.float64)), rtol=1e-5)
    # non-predicted parameters default when not given
    for p in TRACK:
        if not p.predicted:
            assert torch.all(tp[..., TRACK.index(p.key)] == p.default)


def test_to_physical_padded_tracks_get_defaults_and_unknown_fixed_key_raises():
    tu = torch.full((1, 2, TRACK.n_predicted), 0.9)
    mu = torch.full((1, MASTER.n_predicted), 0.9)
    tp, _ = MixController.to_physical(tu, mu, track_mask=torch.tensor([[True, False]]))
    np.testing.assert_allclose(tp[0, 1].numpy(), TRACK.defaults(), rtol=1e-6)
    assert not torch.allclose(tp[0, 0], tp[0, 1])
    with pytest.raises(KeyError, match="gain_db"):
        MixController.to_physical(tu, mu, fixed={"gain_db": 0.0})


def test_untrained_model_starts_near_console_defaults():
    model = tiny_model()
    with torch.no_grad():
        tp, mp = model.predict_params(audio(1, 3, T), audio(1, 2, T, seed=2))
    for schema, x in ((TRACK, tp[0]), (MASTER, mp[0])):
        unit = schema.to_unit(x.double().numpy())
        default = np.clip(schema.to_unit(schema.defaults()), 0.05, 0.95)
        assert np.abs(unit - default).max() < 0.1


# --- invariances -----------------------------------------------------------------------------------

def test_permutation_equivariance():
    model = tiny_model()
    tracks, ref = audio(2, 5, 2, T), audio(2, 2, T, seed=2)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        tu, mu = model(tracks, ref)
        tu_p, mu_p = model(tracks[:, perm], ref)
    assert (tu[:, 0] - tu[:, 1]).abs().max() > 1e-4  # tracks get different outputs: the test has teeth
    torch.testing.assert_close(tu_p, tu[:, perm], atol=1e-5, rtol=0)
    torch.testing.assert_close(mu_p, mu, atol=1e-5, rtol=0)


def test_padding_does_not_change_real_outputs():
    model = tiny_model()
    tracks, ref = audio(2, 3, 2, T), audio(2, 2, T, seed=2)
    garbage = audio(2, 4, 2, T, seed=9, scale=50.0)
    garbage[0, 0, 0, :10] = float("nan")  # padded audio is never even read
    padded = torch.cat([tracks[:, :2], garbage[:, :2], tracks[:, 2:], garbage[:, 2:]], dim=1)
    mask = torch.tensor([True, True, False, False, True, False, False]).expand(2, 7)
    with torch.no_grad():
        tu, mu = model(tracks, ref)
        tu_p, mu_p = model(padded, ref, mask)
    torch.testing.assert_close(tu_p[:, mask[0]], tu, atol=1e-5, rtol=0)
    torch.testing.assert_close(mu_p, mu, atol=1e-5, rtol=0)
    assert torch.all(tu_p[:, ~mask[0]] == 0)


def test_ragged_batch_matches_separate_calls():
    model = tiny_model()
    tracks, ref = audio(2, 4, 2, T), audio(2, 2, T, seed=2)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    with torch.no_grad():
        tu, mu = model(tracks, ref, mask)
        tu1, mu1 = model(tracks[1:, :2], ref[1:])
    torch.testing.assert_close(tu[1, :2], tu1[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(mu[1], mu1[0], atol=1e-5, rtol=0)


def test_all_tracks_padded():
    model = tiny_model()
    with torch.no_grad():
        tu, mu = model(audio(1, 2, T), audio(1, 2, T, seed=2), torch.zeros(1, 2, dtype=torch.bool))
    assert torch.all(tu == 0) and torch.isfinite(mu).all()


@pytest.mark.parametrize("n_tracks", [1, 64])
def test_track_counts(n_tracks):
    model = tiny_model()
    with torch.no_grad():
        tu, mu = model(audio(1, n_tracks, T, scale=0.05), audio(1, 2, T, seed=2))
    assert tu.shape == (1, n_tracks, TRACK.n_predicted) and mu.shape == (1, MASTER.n_predicted)
    assert torch.isfinite(tu).all() and torch.isfinite(mu).all()


def test_mono_input_equals_dual_mono_stereo_input():
    model = tiny_model()
    mono, ref = audio(2, 3, T), audio(2, 2, T, seed=2)
    stereo = mono.unsqueeze(2).expand(2, 3, 2, T).contiguous()
    with torch.no_grad():
        a = model(mono, ref)
        b = model(stereo, ref)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0)


def test_stereo_content_matters():
    model = tiny_model()
    mono, ref = audio(1, 2, T), audio(1, 2, T, seed=2)
    wide = torch.stack([mono, audio(1, 2, T, seed=5)], dim=2)  # different content in R
    with torch.no_grad():
        a, _ = model(mono, ref)
        b, _ = model(wide, ref)
    assert (a - b).abs().max() > 1e-4


def test_reference_channels_are_distinguished():
    """Swapping the reference's L and R must be able to change the prediction (stereo imbalance)."""
    model = tiny_model()
    tracks = audio(1, 2, T)
    ref = torch.stack([audio(T, seed=2), audio(T, seed=3, scale=0.02)])[None]  # (1, 2, T), loud left
    with torch.no_grad():
        a = model(tracks, ref)
        b = model(tracks, ref.flip(1))
    assert max((x - y).abs().max().item() for x, y in zip(a, b, strict=True)) > 1e-5


def test_reference_may_have_another_length():
    model = tiny_model()
    with torch.no_grad():
        tu, mu = model(audio(1, 2, T), audio(1, 2, 3 * T, seed=2))
    assert tu.shape == (1, 2, TRACK.n_predicted) and mu.shape == (1, MASTER.n_predicted)


def test_bad_shapes_raise():
    model = tiny_model()
    with pytest.raises(ValueError, match="tracks"):
        model(audio(1, 2, 3, T), audio(1, 2, T))
    with pytest.raises(ValueError, match="reference"):
        model(audio(1, 2, T), audio(1, T))
    with pytest.raises(ValueError, match="track_mask"):
        model(audio(1, 2, T), audio(1, 2, T), torch.ones(1, 3, dtype=torch.bool))


def test_bad_config_raises():
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(embed_dim=15)


def test_mel_filterbank_rows_are_normalised_and_nonempty():
    fb = mel_filterbank(44100, 2048, 128, 20.0)
    assert fb.shape == (128, 1025)
    torch.testing.assert_close(fb.sum(dim=1), torch.ones(128))
    assert (fb >= 0).all()
    peaks = fb.argmax(dim=1)
    assert torch.all(peaks[1:] >= peaks[:-1])  # bands ascend in frequency


# --- training --------------------------------------------------------------------------------------

def test_one_optimisation_step_lowers_loss_deterministically():
    def run():
        model = tiny_model(seed=4).train()
        tracks, ref = audio(2, 3, 2, T), audio(2, 2, T, seed=2)
        g = torch.Generator().manual_seed(7)
        target_t = torch.rand(2, 3, TRACK.n_predicted, generator=g)
        target_m = torch.rand(2, MASTER.n_predicted, generator=g)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)

        def loss_fn():
            tu, mu = model(tracks, ref)
            return torch.nn.functional.mse_loss(tu, target_t) + torch.nn.functional.mse_loss(mu, target_m)

        before = loss_fn()
        opt.zero_grad()
        before.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        opt.step()
        with torch.no_grad():
            after = loss_fn()
        return before.item(), after.item()

    before, after = run()
    assert after < before
    assert run() == (before, after)


def test_silent_track_gives_finite_gradients():
    model = tiny_model().train()
    tracks = audio(1, 3, 2, T)
    tracks[0, 1] = 0.0  # a part that does not play in this section
    tu, mu = model(tracks, audio(1, 2, T, seed=2))
    (tu.sum() + mu.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# --- checkpoints -----------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path):
    model = tiny_model(seed=5)
    path = tmp_path / "sub" / "model.pt"
    extra = {"steps": 123, "metrics": {"af_loss": 0.05}, "data": "synthetic, 10 s sections"}
    save_checkpoint(path, model, model.config, extra)
    assert sorted(os.listdir(path.parent)) == ["model.pt"]  # no temporary file left behind

    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    assert meta["extra"] == extra and meta["schema"] == fingerprint() and meta["config"] == model.config
    tracks, ref = audio(2, 3, 2, T), audio(2, 2, T, seed=2)
    with torch.no_grad():
        a, b = model(tracks, ref), loaded(tracks, ref)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_checkpoint_loads_with_weights_only(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "m.pt", model, model.config, {"steps": 1})
    payload = torch.load(path, weights_only=True)
    assert payload["schema"] == fingerprint()
    assert payload["config"]["embed_dim"] == 16
    assert set(payload["state_dict"]) == set(model.state_dict())
    assert "window" not in payload["state_dict"]  # derived buffers are rebuilt from the config


def test_checkpoint_overwrite_is_atomic_replacement(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_model(seed=1), tiny_config(), {"steps": 1})
    save_checkpoint(path, tiny_model(seed=2), tiny_config(), {"steps": 2})
    _, meta = load_checkpoint(path)
    assert meta["extra"]["steps"] == 2
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_checkpoint_extra_must_be_json(tmp_path):
    model = tiny_model()
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "m.pt", model, model.config, {"array": np.zeros(3)})
    assert not list(tmp_path.iterdir())


def test_checkpoint_config_must_match_model(tmp_path):
    with pytest.raises(ValueError, match="config"):
        save_checkpoint(tmp_path / "m.pt", tiny_model(), tiny_config(embed_dim=32))


def test_checkpoint_schema_mismatch(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "old.pt", model, model.config)
    payload = torch.load(path, weights_only=True)
    payload["schema"] = "v0-0123456789ab"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert f"was trained for console schema v0-0123456789ab, this build has {fingerprint()}" in msg


def _as_version_1(model: MixController, path) -> dict:
    """Save ``model`` as a checkpoint of schema version 1 (before the reverb): heads without the rows of
    the parameters added since. Returns the old heads' weights."""
    save_checkpoint(path, model, model.config)
    payload = torch.load(path, weights_only=True)
    old = {}
    for head, schema in (("track_head", TRACK), ("master_head", MASTER)):
        keys = [p.key for p in schema if p.predicted]
        rows = [keys.index(k) for k in keys_of_version(schema, 1) if schema[k].predicted]
        for part in ("weight", "bias"):
            name = f"{head}.net.2.{part}"
            payload["state_dict"][name] = old[name] = payload["state_dict"][name][rows].clone()
    payload["schema"] = fingerprint(1)
    torch.save(payload, path)
    return old


def test_version_1_checkpoint_loads_with_sends_off(tmp_path):
    """A model trained before the reverb: its predictions of the old parameters are unchanged, bit for
    bit; every send is exactly off and the return at its defaults."""
    model = tiny_model(seed=3)
    old = _as_version_1(model, tmp_path / "v1.pt")
    loaded, meta = load_checkpoint(tmp_path / "v1.pt")
    assert meta["schema"] == fingerprint(1)
    x, ref = audio(2, 3, 2, T), audio(2, 2, T, seed=2)
    with torch.no_grad():
        tu, mu = loaded(x, ref)
        pt, pm = loaded.to_physical(tu, mu)
        # the old model: the same network with the old heads' last layers
        for head in ("track_head", "master_head"):
            layer = getattr(loaded, head).net[2]
            old_layer = torch.nn.Linear(layer.in_features, old[f"{head}.net.2.bias"].shape[0])
            old_layer.weight.copy_(old[f"{head}.net.2.weight"])
            old_layer.bias.copy_(old[f"{head}.net.2.bias"])
            getattr(loaded, head).net[2] = old_layer
        tu_old, mu_old = loaded(x, ref)
    for schema, new, before in ((TRACK, tu, tu_old), (MASTER, mu, mu_old)):
        keys = [p.key for p in schema if p.predicted]
        kept = [keys.index(k) for k in keys_of_version(schema, 1) if schema[k].predicted]
        assert torch.equal(new[..., kept], before)  # bit-identical
    assert torch.all(pt[..., TRACK.index("send_db")] == TRACK["send_db"].min)  # exactly off
    for p in MASTER:
        if p.group == "reverb":
            assert torch.allclose(pm[:, MASTER.index(p.key)], torch.tensor(p.default), rtol=1e-5, atol=1e-5)


def test_shipped_checkpoint_loads_with_sends_off():
    from core.predict import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("no shipped model")
    model, _ = load_checkpoint(DEFAULT_MODEL_PATH)
    with torch.no_grad():
        tracks, ref = audio(1, 2, 2, 44100, scale=0.05), audio(1, 2, 44100, seed=4, scale=0.05)
        pt, _ = model.predict_params(tracks, ref)
    assert torch.all(pt[..., TRACK.index("send_db")] == TRACK["send_db"].min)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "foreign", "wrong_weights", "missing"])
def test_checkpoint_damaged_files(tmp_path, damage):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "m.pt", model, model.config)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(bytes(range(256)) * 40)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif damage == "wrong_weights":
        payload = torch.load(path, weights_only=True)
        payload["config"]["embed_dim"] = 32
        torch.save(payload, path)
    else:
        path.unlink()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
