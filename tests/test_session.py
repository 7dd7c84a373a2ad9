"""Sessions: JSON round trip with relative paths, missing files, autosave/recovery, strength blend."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.paramfile import MixParams
from core.params import MASTER, TRACK, fingerprint, keys_of_version
from core.session import (
    SESSION_VERSION,
    STRENGTH_GROUPS,
    Session,
    SessionError,
    Stem,
    autosave_path,
    blend,
    discard_autosave,
    find_autosave,
    load_session,
    recover_autosave,
    save_session,
    search_folder,
    write_autosave,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _autosave_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEMIX_AUTOSAVE_DIR", str(tmp_path / "autosave"))


def _session(folder: Path, n=3) -> Session:
    (folder / "stems").mkdir(parents=True, exist_ok=True)
    stems = []
    for i in range(n):
        p = folder / "stems" / f"s{i}.wav"
        p.write_bytes(b"x")
        stems.append(Stem(f"s{i}", str(p), stereo=i == 1))
    (folder / "ref.wav").write_bytes(b"x")
    s = Session(stems=stems, params=MixParams.defaults([st.name for st in stems]))
    s.lock_tracks = np.zeros((n, len(TRACK)), bool)
    s.reference = str(folder / "ref.wav")
    return s


def _edit(s: Session) -> None:
    s.params.tracks[0, TRACK.index("gain_db")] = -6.5
    s.params.tracks[2, TRACK.index("eq_band2_freq_hz")] = 1234.5
    s.params.master[MASTER.index("comp_ratio")] = 3.0
    s.predicted = s.params.copy()
    s.predicted.tracks[1, TRACK.index("pan")] = -0.4
    s.lock_tracks[1, TRACK.index("pan")] = True
    s.lock_master[MASTER.index("gain_db")] = True
    s.stems[2].mute = True
    s.stems[0].solo = True
    s.loop = (2.0, 7.5)
    s.strength["eq"] = 0.25


def test_round_trip_keeps_everything_with_relative_paths(tmp_path):
    s = _session(tmp_path / "proj")
    _edit(s)
    path = tmp_path / "proj" / "song.stylemix"
    save_session(path, s)
    doc = json.loads(path.read_text())
    assert doc["version"] == SESSION_VERSION and doc["schema"] == fingerprint()
    assert doc["stems"][0]["file"] == "stems/s0.wav" and doc["reference"] == "ref.wav"
    assert doc["stems"][1]["locks"] == ["pan"] and doc["master_locks"] == ["gain_db"]

    back = load_session(path)
    assert back.path == str(path) and back.names == s.names and back.warnings == []
    np.testing.assert_allclose(back.params.tracks, s.params.tracks)
    np.testing.assert_allclose(back.params.master, s.params.master)
    np.testing.assert_allclose(back.predicted.tracks, s.predicted.tracks)
    np.testing.assert_array_equal(back.lock_tracks, s.lock_tracks)
    np.testing.assert_array_equal(back.lock_master, s.lock_master)
    assert list(back.mute) == [False, False, True] and list(back.solo) == [True, False, False]
    assert back.loop == (2.0, 7.5) and back.strength["eq"] == 0.25
    assert [st.stereo for st in back.stems] == [False, True, False]
    assert back.missing() == []



def test_fx_return_mute_round_trips_and_is_off_in_older_files(tmp_path):
    s = _session(tmp_path / "proj")
    assert not s.fx_mute
    s.fx_mute = True
    path = tmp_path / "proj" / "song.stylemix"
    save_session(path, s)
    doc = json.loads(path.read_text())
    assert doc["fx_mute"] is True
    assert load_session(path).fx_mute is True
    recovered = recover_autosave(write_autosave(s))
    assert recovered.fx_mute is True
    del doc["fx_mute"]  # a file written before the return had a mute
    path.write_text(json.dumps(doc))
    back = load_session(path)
    assert back.fx_mute is False and back.warnings == []
    path.write_text(json.dumps(doc | {"fx_mute": None}))
    back = load_session(path)  # not true/false: unmuted, said so
    assert back.fx_mute is False and any("FX return" in w and "fx_mute" in w for w in back.warnings)

def test_moved_folder_still_finds_its_audio(tmp_path):
    s = _session(tmp_path / "a")
    save_session(tmp_path / "a" / "x.stylemix", s)
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    back = load_session(tmp_path / "b" / "x.stylemix")
    assert back.missing() == []
    assert back.stems[0].path == str(tmp_path / "b" / "stems" / "s0.wav")


def test_missing_audio_is_reported_and_relocated_without_loss(tmp_path):
    s = _session(tmp_path / "p")
    _edit(s)
    save_session(tmp_path / "p" / "x.stylemix", s)
    moved = tmp_path / "elsewhere" / "deep"
    moved.mkdir(parents=True)
    shutil.move(str(tmp_path / "p" / "stems" / "s1.wav"), str(moved / "s1.wav"))
    os.unlink(tmp_path / "p" / "ref.wav")
    back = load_session(tmp_path / "p" / "x.stylemix")
    missing = back.missing()
    assert [(m.index, m.name) for m in missing] == [(1, "s1"), (-1, "reference")]
    np.testing.assert_allclose(back.params.tracks, s.params.tracks)  # nothing lost
    found = search_folder(missing, str(tmp_path / "elsewhere"))
    assert found == {missing[0].path: str(moved / "s1.wav")}
    assert back.relocate(missing[0].path, found[missing[0].path]) == 1
    assert [m.index for m in back.missing()] == [-1]
    save_session(tmp_path / "p" / "x.stylemix", back)
    doc = json.loads((tmp_path / "p" / "x.stylemix").read_text())
    assert doc["stems"][1]["file"] == "../elsewhere/deep/s1.wav"


def test_bad_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.stylemix"
    bad.write_text("{nope")
    with pytest.raises(SessionError, match="not valid JSON"):
        load_session(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(SessionError, match="not a stylemix session"):
        load_session(bad)
    bad.write_text(json.dumps({"format": "stylemix-session", "version": SESSION_VERSION + 1}))
    with pytest.raises(SessionError, match="newer stylemix"):
        load_session(bad)
    with pytest.raises(SessionError, match="file not found"):
        load_session(tmp_path / "none.stylemix")


def test_out_of_range_and_unknown_values_become_warnings(tmp_path):
    s = _session(tmp_path)
    save_session(tmp_path / "x.stylemix", s)
    doc = json.loads((tmp_path / "x.stylemix").read_text())
    doc["stems"][0]["params"]["gain_db"] = 99.0
    doc["stems"][0]["params"]["wobble"] = 1.0
    (tmp_path / "x.stylemix").write_text(json.dumps(doc))
    back = load_session(tmp_path / "x.stylemix")
    assert back.params.tracks[0, TRACK.index("gain_db")] == TRACK["gain_db"].max
    assert len(back.warnings) == 2 and any("wobble" in w for w in back.warnings)


def test_save_is_atomic(tmp_path, monkeypatch):
    s = _session(tmp_path)
    target = tmp_path / "x.stylemix"
    save_session(target, s)
    before = target.read_text()
    s.params.tracks[0, 0] = 3.0

    def boom(*a, **k):
        raise OSError("disk full")

    import core.fileio

    monkeypatch.setattr(core.fileio.os, "replace", boom)  # fail after the temp file is written
    with pytest.raises(OSError):
        save_session(target, s)
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_autosave_recovers_edits_after_a_crash(tmp_path):
    s = _session(tmp_path)
    path = tmp_path / "song.stylemix"
    save_session(path, s)
    os.utime(path, (1, 1))  # the session on disk is older than any autosave
    assert find_autosave(str(path)) is None
    _edit(s)
    copy = write_autosave(s)
    assert copy == autosave_path(str(path)) and copy.parent == tmp_path / "autosave"
    # "crash": nothing saved; the next start finds the copy
    found = find_autosave(str(path))
    assert found == copy
    rec = recover_autosave(found)
    assert rec.path == str(path)
    np.testing.assert_allclose(rec.params.tracks, s.params.tracks)
    assert rec.loop == (2.0, 7.5) and rec.stems[0].path == s.stems[0].path
    discard_autosave(str(path))
    assert find_autosave(str(path)) is None


def test_untitled_autosave(tmp_path):
    s = _session(tmp_path)
    write_autosave(s)
    assert find_autosave(None) == autosave_path(None)
    assert recover_autosave(autosave_path(None)).path is None


def test_insert_and_remove_rows_stay_aligned(tmp_path):
    s = _session(tmp_path)
    _edit(s)
    before = s.params.tracks.copy()
    taken = s.remove_stems(1)
    assert s.names == ["s0", "s2"] and s.params.tracks.shape == (2, len(TRACK))
    assert s.predicted.tracks.shape == (2, len(TRACK)) and s.lock_tracks.shape == (2, len(TRACK))
    s.insert_stems(1, *taken)
    assert s.names == ["s0", "s1", "s2"]
    np.testing.assert_array_equal(s.params.tracks, before)
    assert s.lock_tracks[1, TRACK.index("pan")]


def test_blend_strength():
    names = ["a", "b"]
    neutral = MixParams.defaults(names)
    pred = neutral.copy()
    g, f, thr = TRACK.index("gain_db"), TRACK.index("eq_band1_freq_hz"), TRACK.index("comp_threshold_db")
    pred.tracks[:, g] = -10.0
    pred.tracks[:, f] = TRACK["eq_band1_freq_hz"].default * 4
    pred.tracks[:, thr] = -30.0
    pred.master[MASTER.index("gain_db")] = 6.0
    full = blend(neutral, pred, dict.fromkeys(STRENGTH_GROUPS, 1.0))
    np.testing.assert_array_equal(full.tracks, pred.tracks)
    half = blend(neutral, pred, {"level": 0.5, "eq": 0.5, "dynamics": 0.0, "pan": 1.0, "master": 0.0})
    assert half.tracks[0, g] == pytest.approx(-5.0)
    assert half.tracks[0, f] == pytest.approx(TRACK["eq_band1_freq_hz"].default * 2)  # log scale: geometric
    assert half.tracks[0, thr] == pytest.approx(0.0)
    assert half.master[MASTER.index("gain_db")] == pytest.approx(0.0)


def test_demo_session_is_bundled():
    s = load_session(ROOT / "assets" / "demo" / "demo.stylemix")
    assert len(s) == 8 and s.missing() == [] and s.reference.endswith("reference.flac")
    doc = json.loads((ROOT / "assets" / "demo" / "demo.stylemix").read_text())
    assert all(not os.path.isabs(st["file"]) for st in doc["stems"])


def _as_version_1(doc: dict) -> dict:
    """A session document as version 1 (schema version 1, before the reverb) wrote it."""
    old = json.loads(json.dumps(doc))
    old["version"], old["schema"] = 1, fingerprint(1)
    old_track, old_master = (set(keys_of_version(s, 1)) for s in (TRACK, MASTER))
    for entry in old["stems"]:
        for key in ("params", "predicted"):
            entry[key] = {k: v for k, v in entry[key].items() if k in old_track}
    for key in ("master", "master_predicted"):
        old[key] = {k: v for k, v in old[key].items() if k in old_master}
    old["strength"] = {k: v for k, v in old["strength"].items() if k != "reverb"}
    return old


def test_version_1_session_migrates_with_sends_off(tmp_path):
    s = _session(tmp_path / "proj")
    _edit(s)
    s.params.tracks[:, TRACK.index("send_db")] = -12.0  # what version 1 cannot store
    s.params.master[MASTER.index("reverb_rt60_s")] = 4.0
    path = tmp_path / "proj" / "old.stylemix"
    path.write_text(json.dumps(_as_version_1(s.to_json(str(path.parent)))))
    assert "send_db" not in json.loads(path.read_text())["stems"][0]["params"]

    back = load_session(path)
    assert back.warnings == []  # a known earlier version: migrated, not "another console"
    assert back.fx_mute is False  # the return unmuted
    send = TRACK.index("send_db")
    assert np.all(back.params.tracks[:, send] == TRACK["send_db"].min)  # off
    assert np.all(back.predicted.tracks[:, send] == TRACK["send_db"].min)
    reverb = MASTER.group_mask("reverb")
    np.testing.assert_array_equal(back.params.master[reverb], MASTER.defaults()[reverb])
    # everything version 1 stored is as it was
    other = np.arange(len(TRACK)) != send
    np.testing.assert_array_equal(back.params.tracks[:, other], s.params.tracks[:, other])
    np.testing.assert_array_equal(back.params.master[~reverb], s.params.master[~reverb])
    assert back.strength["reverb"] == 1.0 and back.strength["eq"] == 0.25
    save_session(path, back)  # saved again: the current version
    doc = json.loads(path.read_text())
    assert doc["version"] == SESSION_VERSION == 2 and doc["schema"] == fingerprint()
    assert doc["stems"][0]["params"]["send_db"] == TRACK["send_db"].min


def test_version_1_params_file_migrates_with_sends_off(tmp_path):
    from core.paramfile import ParamsError, read_params, write_params

    mp = MixParams.defaults(["a", "b"])
    mp.tracks[0, TRACK.index("gain_db")] = -4.0
    mp.tracks[:, TRACK.index("send_db")] = 0.0
    path = tmp_path / "old.json"
    write_params(path, mp)
    doc = json.loads(path.read_text())
    doc["schema"] = fingerprint(1)
    for t in doc["tracks"]:
        t["params"].pop("send_db")
    doc["master"] = {k: v for k, v in doc["master"].items() if not k.startswith("reverb_")}
    path.write_text(json.dumps(doc))
    back = read_params(path)
    assert np.all(back.tracks[:, TRACK.index("send_db")] == TRACK["send_db"].min)
    assert back.tracks[0, TRACK.index("gain_db")] == -4.0
    # a version 1 file cannot hold a key of version 2: strict reading names it
    doc["tracks"][0]["params"]["send_db"] = -3.0
    path.write_text(json.dumps(doc))
    with pytest.raises(ParamsError, match="unknown track parameter 'send_db'"):
        read_params(path)
