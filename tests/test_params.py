"""The parameter schema and params files: conversions, fingerprint, JSON round trip, errors."""

import json

import numpy as np
import pytest
import torch

from core.paramfile import (
    MixParams,
    ParamsError,
    apply_sets,
    lock_masks,
    read_params,
    write_params,
)
from core.params import (
    GROUPS,
    MASTER,
    RETURN,
    SCHEMA_VERSION,
    SEND_OFF_DB,
    STRENGTH_GROUPS,
    TRACK,
    fingerprint,
    keys_of_version,
    schema_version,
    table,
)


@pytest.mark.parametrize("schema", [TRACK, MASTER])
def test_unit_round_trip_numpy_and_torch(schema):
    rng = np.random.default_rng(0)
    u = rng.random((5, len(schema)))
    x = schema.from_unit(u)
    assert np.all(x >= schema.mins - 1e-9) and np.all(x <= schema.maxs + 1e-9)
    np.testing.assert_allclose(schema.to_unit(x), u, atol=1e-12)
    xt = schema.from_unit(torch.tensor(u, requires_grad=True))
    np.testing.assert_allclose(xt.detach().numpy(), x, rtol=1e-9)
    np.testing.assert_allclose(schema.to_unit(xt).detach().numpy(), u, atol=1e-9)


def test_log_scale_midpoint_is_geometric_mean():
    p = TRACK["eq_band2_freq_hz"]
    assert p.scale == "log"
    assert p.from_unit(0.5) == pytest.approx((p.min * p.max) ** 0.5)
    lin = TRACK["gain_db"]
    assert lin.from_unit(0.5) == pytest.approx((lin.min + lin.max) / 2)


def test_defaults_in_range_and_neutral():
    for schema in (TRACK, MASTER):
        d = schema.defaults()
        assert np.all(d >= schema.mins) and np.all(d <= schema.maxs)
        for p in schema:
            if p.key.endswith("gain_db") or p.key in ("pan", "trim_db", "comp_makeup_db"):
                assert p.default == 0.0, p.key
        assert schema["comp_ratio"].default == 1.0  # a neutral console by default


def test_schema_lookup_and_errors():
    assert TRACK.keys[TRACK.index("pan")] == "pan"
    with pytest.raises(KeyError, match="nope"):
        TRACK.index("nope")
    with pytest.raises(KeyError, match="unknown"):
        TRACK.to_vector({"nope": 1.0})
    assert "pan" not in MASTER
    assert TRACK.n_predicted == len(TRACK) - 1  # trim is set at import, not predicted


def test_fingerprint_stable_and_in_table():
    assert fingerprint() == fingerprint()
    assert fingerprint().startswith(f"v{SCHEMA_VERSION}-")
    text = table(TRACK)
    for p in TRACK:
        assert p.key in text


def test_earlier_schema_fingerprint_is_the_shipped_one():
    """Version 1 (before the reverb) hashes as it did then: files of that version are recognised."""
    assert fingerprint(1) == "v1-d7203a85742a"
    assert schema_version(fingerprint(1)) == 1 and schema_version(fingerprint()) == SCHEMA_VERSION
    assert schema_version("v1-000000000000") is None
    assert keys_of_version(TRACK, 1) == tuple(k for k in TRACK.keys if k != "send_db")
    assert not any(k.startswith("reverb_") for k in keys_of_version(MASTER, 1))
    # the reverb group, defined once: send per track (off by default), the return on the master bus
    assert TRACK["send_db"].default == TRACK["send_db"].min == SEND_OFF_DB
    assert RETURN.keys == tuple(p.key for p in MASTER if p.group == "reverb")
    assert "reverb" in GROUPS and "reverb" in STRENGTH_GROUPS


def test_format_has_unit():
    assert TRACK["gain_db"].format(-6.0) == "-6.0 dB"
    assert TRACK["pan"].format(0.5) == "+0.50"


def _params():
    mp = MixParams.defaults(["kick", "bass"], files=["a/kick.wav", "a/bass.wav"], stereo=[False, True])
    mp.tracks[1, TRACK.index("gain_db")] = -7.5
    mp.master[MASTER.index("comp_ratio")] = 3.0
    return mp


def test_params_file_round_trip(tmp_path):
    path = tmp_path / "p.json"
    write_params(path, _params())
    back = read_params(path)
    assert back.names == ["kick", "bass"] and back.stereo == [False, True]
    np.testing.assert_allclose(back.tracks, _params().tracks, atol=1e-6)
    np.testing.assert_allclose(back.master, _params().master, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temp file left


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema="v0-old"), "made for console schema"),
        (lambda d: d["tracks"][0]["params"].update(gain_db=99.0), "outside -48..24"),
        (lambda d: d["tracks"][0]["params"].update(wobble=1.0), "unknown track parameter 'wobble'"),
        (lambda d: d["master"].update(gain_db="loud"), "must be a finite number"),
        (lambda d: d.pop("tracks"), "not a stylemix params file"),
    ],
)
def test_params_file_errors(tmp_path, mutate, message):
    doc = _params().to_json()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ParamsError, match=message) as err:
        read_params(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_params_file_not_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{oops")
    with pytest.raises(ParamsError, match="not valid JSON"):
        read_params(path)
    with pytest.raises(ParamsError, match="file not found"):
        read_params(tmp_path / "missing.json")


def test_select_reorders_and_reports_missing():
    mp = _params()
    sel = mp.select(["bass", "kick"])
    assert sel.tracks[0, TRACK.index("gain_db")] == -7.5
    with pytest.raises(ParamsError, match="snare"):
        mp.select(["snare"])


def test_locks_and_sets():
    mp = _params()
    locks = apply_sets(mp, ["bass:pan=-0.5", "master:gain_db=-2", "comp_ratio=2"])
    assert mp.tracks[1, TRACK.index("pan")] == -0.5 and mp.tracks[0, TRACK.index("pan")] == 0.0
    assert mp.master[MASTER.index("gain_db")] == -2.0
    assert np.all(mp.tracks[:, TRACK.index("comp_ratio")] == 2.0)
    tmask, mmask = lock_masks(locks + ["eq"], mp.names)
    assert tmask[1, TRACK.index("pan")] and not tmask[0, TRACK.index("pan")]
    assert mmask[MASTER.index("gain_db")] and mmask.sum() == 1
    assert tmask[:, TRACK.group_mask("eq")].all()
    with pytest.raises(ParamsError, match="no track named 'snare'"):
        lock_masks(["snare:pan"], mp.names)
    with pytest.raises(ParamsError, match="within -1..1"):
        apply_sets(mp, ["pan=3"])
