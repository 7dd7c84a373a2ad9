"""Nothing the user owns is lost: a battery of awkward inputs and faults, on small stand-ins.

Every failure must be one line (exit 1, no traceback), leave every input and every existing output
byte-identical and leave no temporary file behind. Faults the test machine cannot produce for real
(a full disk, a read-only folder when running as root) are simulated at the lowest level: the write
or the file creation raises the OSError the operating system would.
"""

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import core.fileio as fileio
from core.audio_io import AudioError
from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.cli import main
from core.export import STEMS_MANIFEST, check_export_paths
from core.fileio import OutputError, WriteError, WriteGroup, remove_stale_temps
from core.paramfile import MixParams, ParamsError, from_json, read_params, write_params
from core.params import TRACK, fingerprint
from core.prepare import MIN_ANALYSIS_SECONDS, load_inputs
from core.session import SESSION_VERSION, Session, SessionError, Stem, load_session, save_session

from conftest import need_qt
from synthetic import write_stems

SR = 44100
# the cheapest full run: no model, no refinement
FAST = ["--no-model", "--steps", "0"]


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """Six 2-second stems in stems/, a reference, and a params file from a real run."""
    root = tmp_path_factory.mktemp("reliability")
    stems, ref = write_stems(root / "stems", seconds=2.0)
    assert main(["mix", str(root / "stems"), "--reference", ref, "--out", str(root / "first.wav"),
                 "--params-out", str(root / "params.json"), *FAST]) == 0
    return root, stems, ref


def _digests(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` -> its SHA-1: what must stay byte-identical."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylemix: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*.tmp")]


@pytest.fixture
def work(material, tmp_path):
    """A private copy of the material (tests may try to destroy it) and its digests."""
    root, _, _ = material
    dst = tmp_path / "w"
    shutil.copytree(root, dst)
    return dst, _digests(dst)


# --- 1. inputs are sacred ---------------------------------------------------------------------------------

def _mix(w: Path, *more: str) -> list[str]:
    return ["mix", str(w / "stems"), "--reference", str(w / "reference_0.wav"), *FAST, *more]


def _render(w: Path, *more: str) -> list[str]:
    return ["render", str(w / "stems"), "--params", str(w / "params.json"), *more]


# case -> (argv for the work folder w, the input the error must name)
ONTO_INPUTS = {
    "out is a stem": (lambda w: _mix(w, "--out", str(w / "stems" / "kick.wav")), "kick.wav"),
    "out is the reference": (lambda w: _mix(w, "--out", str(w / "reference_0.wav")), "reference_0.wav"),
    "out is a hard link to a stem": (lambda w: _mix(w, "--out", str(w / "bass_link.wav")), "bass.wav"),
    "out is a symlink to the reference": (lambda w: _mix(w, "--out", str(w / "ref_symlink.wav")),
                                          "reference_0.wav"),
    "params-out is a stem": (lambda w: _mix(w, "--out", str(w / "m.wav"), "--params-out",
                                            str(w / "stems" / "pad.wav")), "pad.wav"),
    "params-out is params-in": (
        lambda w: _mix(w, "--out", str(w / "m.wav"), "--params-in", str(w / "params.json"), "--params-out",
                       str(w / "params.json")), "params.json"),
    "params-out is the checkpoint": (
        lambda w: ["mix", str(w / "stems"), "--reference", str(w / "reference_0.wav"), "--model",
                   str(w / "params.json"), "--out", str(w / "m.wav"), "--params-out", str(w / "params.json")],
        "params.json"),
    "stems-out is the stems' folder": (lambda w: _mix(w, "--out", str(w / "m.wav"), "--stems-out",
                                                      str(w / "stems")), "stems"),
    "stems-out is the stems' folder by another name": (
        lambda w: _mix(w, "--out", str(w / "m.wav"), "--stems-out", str(w / "stems" / ".." / "stems")),
        "stems"),
    "render out is a stem": (lambda w: _render(w, "--out", str(w / "stems" / "lead.wav")), "lead.wav"),
    "render out is its params": (lambda w: _render(w, "--out", str(w / "params.json"), "--format", "wav"),
                                 "params.json"),
    "params-out is out": (lambda w: _mix(w, "--out", str(w / "m.wav"), "--params-out", str(w / "m.wav")),
                          "m.wav"),
}


@pytest.mark.parametrize("case", sorted(ONTO_INPUTS))
def test_no_output_may_be_an_input(work, case, capsys, monkeypatch):
    w, _ = work
    os.link(w / "stems" / "bass.wav", w / "bass_link.wav")
    os.symlink(w / "reference_0.wav", w / "ref_symlink.wav")
    make_argv, named = ONTO_INPUTS[case]
    argv = make_argv(w)
    before = _digests(w)

    def no_work(*a, **k):
        raise AssertionError("inputs were loaded before the outputs were checked")

    monkeypatch.setattr("core.prepare.load_inputs", no_work)
    assert main(argv) == 1
    err = _one_line_error(capsys)
    assert named in err
    assert _digests(w) == before and _temps(w) == []


def test_stems_out_overwrites_only_files_it_wrote(work, capsys):
    w, _ = work
    stems, out = w / "stems", w / "processed"
    render = _render(w, "--out", str(w / "r.wav"), "--stems-out", str(out))
    assert main(render) == 0
    manifest = json.loads((out / STEMS_MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in stems.iterdir())
    assert main(render) == 0  # its own files: overwritten
    # a folder holding a file of the user's with a stem's name: refused, nothing written
    foreign = w / "mine"
    foreign.mkdir()
    (foreign / "bass.wav").write_bytes(b"my own bass take")
    before = _digests(w)
    render[-1] = str(foreign)
    render[render.index("--out") + 1] = str(w / "r2.wav")
    assert main(render) == 1
    err = _one_line_error(capsys)
    assert "bass.wav" in err and "did not write it" in err
    assert _digests(w) == before and not (w / "r2.wav").exists()


def test_core_check_is_what_the_app_uses(tmp_path):
    """The export dialog's rule: a session's audio, reference and the session file are never outputs."""
    stem, ref, session = tmp_path / "a.wav", tmp_path / "ref.wav", tmp_path / "s.stylemix"
    for p in (stem, ref, session):
        p.write_bytes(b"x")
    for out in (stem, ref, session):
        with pytest.raises(OutputError, match=str(out)):
            check_export_paths(out, None, ["a"], "wav", stem_files=[stem], protect=[ref, session])
    with pytest.raises(OutputError, match="input stems are in"):
        check_export_paths(tmp_path / "m.wav", tmp_path, ["a"], "wav", stem_files=[stem])
    assert check_export_paths(tmp_path / "m.wav", tmp_path / "new" / "stems", ["a"], "wav",
                              stem_files=[stem]) == [str(tmp_path / "new" / "stems" / "a.wav")]
    assert not (tmp_path / "new").exists()  # checking creates nothing


# --- 2. all outputs land together or not at all -----------------------------------------------------------

def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_on_params_leaves_the_old_pair(work, capsys, monkeypatch):
    w, _ = work
    stems, ref = w / "stems", str(w / "reference_0.wav")
    (w / "old.json").write_text("old params")
    before = _digests(w)
    real = WriteGroup.write
    monkeypatch.setattr(WriteGroup, "write", lambda self, dest, fn: real(self, dest, _enospc))
    code = main(["mix", str(stems), "--reference", ref, "--out", str(w / "first.wav"),
                 "--params-out", str(w / "old.json"), "--stems-out", str(w / "new_stems"), *FAST])
    assert code == 1
    err = _one_line_error(capsys)
    assert f"disk full in {w}" in err
    # the mix (rendered and staged) did not land without its params; the new stems folder is gone
    assert _digests(w) == before and _temps(w) == [] and not (w / "new_stems").exists()


def test_disk_full_on_the_mix_says_so_and_names_the_folder(work, capsys, monkeypatch):
    w, _ = work
    before = _digests(w)
    monkeypatch.setattr(sf.SoundFile, "write", _enospc)
    code = main(_render(w, "--out", str(w / "first.wav")))
    assert code == 1
    assert f"first.wav: disk full in {w}" in _one_line_error(capsys)
    assert _digests(w) == before and _temps(w) == []


def test_group_commit_failing_half_way_restores_replaced_files(tmp_path, monkeypatch):
    a, b, c = tmp_path / "a.wav", tmp_path / "b.json", tmp_path / "c.wav"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")
    real_replace, calls = os.replace, []

    def fail_third(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", fail_third)
    with pytest.raises(WriteError, match="c.wav"), WriteGroup() as g:
        for p in (a, b, c):
            g.write_bytes(p, b"new " + p.name.encode())
        g.commit()
    assert a.read_bytes() == b"old a" and b.read_bytes() == b"old b" and not c.exists()
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "b.json"]


def test_interrupted_group_removes_temps_and_created_folders(tmp_path):
    (tmp_path / "keep.wav").write_bytes(b"keep")
    with pytest.raises(KeyboardInterrupt), WriteGroup() as g:
        g.make_dirs(tmp_path / "x" / "y")
        g.write_bytes(tmp_path / "keep.wav", b"new")
        g.write_bytes(tmp_path / "x" / "y" / "s.wav", b"stem")
        raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["keep.wav"] and (tmp_path / "keep.wav").read_bytes() == b"keep"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temps_of_a_killed_run_are_removed_on_the_next_run(work, capsys):
    w, _ = work
    dead = _dead_pid()
    stale = w / f".first.wav.{dead}-0123abcd.tmp"
    live = w / f".first.wav.{os.getpid()}-0123abcd.tmp"  # a run still going: left alone
    others = [w / ".notes.tmp", w / "first.wav.tmp", w / f".x.{dead}-zzzzzzzz.tmp"]  # not our naming
    for p in (stale, live, *others):
        p.write_bytes(b"partial")
    assert main(_render(w, "--out", str(w / "r.wav"))) == 0
    assert not stale.exists() and live.exists() and all(p.exists() for p in others)


def test_legacy_temps_are_removed_only_when_old(tmp_path):
    young, old = tmp_path / ".a.wav.0123abcd.tmp", tmp_path / ".b.wav.89abcdef.tmp"
    for p in (young, old):
        p.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert remove_stale_temps(tmp_path) == [str(old)]
    assert young.exists()


# --- 4. one line for every failure ------------------------------------------------------------------------

@pytest.mark.parametrize("code,message", [(errno.EROFS, "is on a read-only file system"),
                                          (errno.EACCES, "permission denied: cannot write in"),
                                          (errno.ENOSPC, "disk full in")])
def test_unwritable_output_folder_is_refused_before_any_work(work, capsys, monkeypatch, code, message):
    w, _ = work
    (w / "ro").mkdir()
    real = fileio.temp_path

    def refuse(folder, base):
        if Path(folder) == w / "ro":
            raise OSError(code, os.strerror(code))
        return real(folder, base)

    monkeypatch.setattr(fileio, "temp_path", refuse)
    monkeypatch.setattr("core.prepare.load_inputs", lambda *a, **k: pytest.fail("work started"))
    before = _digests(w)
    assert main(_mix(w, "--out", str(w / "m.wav"), "--params-out", str(w / "ro" / "p.json"))) == 1
    err = _one_line_error(capsys)
    assert "--params-out" in err and message in err and str(w / "ro") in err
    assert _digests(w) == before


def _params_doc(material) -> dict:
    root, _, _ = material
    return json.loads((root / "params.json").read_text())


def _hostile_params(doc: dict) -> dict[str, tuple[bytes, str]]:
    def edited(fn):
        d = json.loads(json.dumps(doc))
        fn(d)
        return json.dumps(d).encode()

    return {
        "huge integer": (json.dumps(doc).replace('"gain_db": 0.0', '"gain_db": ' + "9" * 5000, 1).encode(),
                         "5000 digits"),
        "deep nesting": (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        "NaN value": (edited(lambda d: d["tracks"][0]["params"].update(gain_db=float("nan"))),
                      "gain_db must be a finite number"),
        "Infinity": (edited(lambda d: d["master"].update(gain_db=float("inf"))),
                     "gain_db must be a finite number"),
        "wrong type": (edited(lambda d: d["tracks"][0].update(stereo="yes")), "'stereo' must be a bool"),
        "tracks not a list": (edited(lambda d: d.update(tracks={"a": 1})),
                              "'tracks' must be a non-empty list"),
        "absurd sample rate": (edited(lambda d: d.update(sample_rate=10 ** 20)), "sample_rate"),
        "not UTF-8": (bytes(range(256)) * 4, "not UTF-8"),
        "not JSON": (b"{nope", "not valid JSON"),
    }


@pytest.mark.parametrize("case", ["huge integer", "deep nesting", "NaN value", "Infinity", "wrong type",
                                  "tracks not a list", "absurd sample rate", "not UTF-8", "not JSON"])
def test_hostile_params_files_are_one_line_errors(material, work, capsys, case):
    w, _ = work
    data, expected = _hostile_params(_params_doc(material))[case]
    bad = w / "bad.json"
    bad.write_bytes(data)
    assert main(["render", str(w / "stems"), "--params", str(bad), "--out", str(w / "m.wav")]) == 1
    err = _one_line_error(capsys)
    assert str(bad) in err and expected in err
    assert not (w / "m.wav").exists()


def test_huge_params_file_is_refused_unread(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "big.json"
    with open(bad, "wb") as f:
        f.truncate(100 << 20)  # 100 MB, sparse: costs no disk
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(ParamsError, match="104.9 MB.*refused unread"):
        read_params(bad)


def test_many_tracks_duplicate_check_is_linear():
    """200 000 tracks (quadratic checking would take hours) with the one duplicate name at the end."""
    tracks = [{"name": f"t{i}", "params": {}} for i in range(200_000)] + [{"name": "t7", "params": {}}]
    doc = {"schema": fingerprint(), "tracks": tracks, "master": {}}
    with pytest.raises(ParamsError, match="'t7' appears twice"):
        from_json(doc, "many.json")
    p = from_json({**doc, "tracks": tracks[:-1]}, "many.json").select(["t199999", "t0"])
    assert p.names == ["t199999", "t0"]


def _session_file(tmp_path: Path) -> tuple[Path, dict]:
    s = Session(stems=[Stem("bass", str(tmp_path / "bass.wav")), Stem("keys", str(tmp_path / "keys.wav"))],
                params=MixParams.defaults(["bass", "keys"]))
    s.lock_tracks = np.zeros((2, len(TRACK)), bool)
    path = tmp_path / "song.stylemix"
    save_session(path, s)
    return path, json.loads(path.read_text())


def _set(path_keys, value):
    def fn(d):
        target = d
        for k in path_keys[:-1]:
            target = target[k]
        target[path_keys[-1]] = value
    return fn


BROKEN_SESSIONS = {  # refused: a SessionError naming the file
    "not JSON": lambda d: "{nope",
    "deep nesting": lambda d: "[" * 200_000 + "]" * 200_000,
    "huge integer": lambda d: json.dumps(d).replace(f'"version": {SESSION_VERSION}',
                                                    '"version": ' + "1" * 5000),
    "top level list": lambda d: "[1, 2]",
    "stems not a list": lambda d: json.dumps({**d, "stems": {"a": 1}}),
    "stem without file": lambda d: json.dumps({**d, "stems": ["bass.wav"]}),
    "version a string": lambda d: json.dumps({**d, "version": "1"}),
    "65 stems": lambda d: json.dumps({**d, "stems": d["stems"][:1] * 65}),
}
REPAIRED_SESSIONS = {  # opened, with a warning naming the key
    "NaN gain": (_set(["stems", 0, "params", "gain_db"], float("nan")), "gain_db is not finite"),
    "Infinity master": (_set(["master", "gain_db"], float("inf")), "gain_db is not finite"),
    "huge number": (_set(["stems", 1, "params", "pan"], 1e308 * 10), "pan is not finite"),
    "locks a number": (_set(["stems", 0, "locks"], 5), "locks are not a list"),
    "params a list": (_set(["stems", 0, "params"], [1, 2]), "parameters are not a set"),
    "mute a string": (_set(["stems", 1, "mute"], "no"), "'mute' is not true/false"),
    "absurd sample rate": (_set(["sample_rate"], 10 ** 20), "sample_rate"),
    "NaN loop": (_set(["loop"], [float("nan"), 2.0]), "loop"),
    "NaN strength": (_set(["strength"], {"eq": float("nan")}), "strength: eq"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_SESSIONS))
def test_broken_sessions_are_one_line_errors(tmp_path, case):
    path, doc = _session_file(tmp_path)
    path.write_text(BROKEN_SESSIONS[case](doc))
    with pytest.raises(SessionError) as e:
        load_session(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("case", sorted(REPAIRED_SESSIONS))
def test_sessions_with_unusable_values_are_repaired_with_a_warning(tmp_path, case):
    path, doc = _session_file(tmp_path)
    edit, expected = REPAIRED_SESSIONS[case]
    edit(doc)
    path.write_text(json.dumps(doc))
    s = load_session(path)
    assert any(expected in w for w in s.warnings), s.warnings
    assert np.isfinite(s.params.tracks).all() and np.isfinite(s.params.master).all()
    assert s.sample_rate in (44100, 48000) and len(s.stems) == 2


def test_a_bad_session_never_takes_the_app_down(tmp_path, capsys):
    need_qt()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.main import make_app
    from app.mainwindow import MainWindow

    make_app([])
    path, doc = _session_file(tmp_path)
    window = MainWindow(audio=False)  # offscreen: unattended, no dialog waits for an answer
    try:
        for text in (BROKEN_SESSIONS["huge integer"](doc), BROKEN_SESSIONS["stem without file"](doc)):
            path.write_text(text)
            assert window.open_paths([str(path)]) is False
            title, message = window.notices[-1]
            assert title == "Cannot open session" and str(path) in message
            assert len(window.model.session) == 0  # opened empty
        assert "cannot open session" in capsys.readouterr().err
    finally:
        window.shutdown()


def test_screenshot_of_an_unreadable_session_does_not_wait(tmp_path, capsys):
    need_qt()
    from app.main import run_app

    bad = tmp_path / "bad.stylemix"
    bad.write_bytes(b"\xff\xfe not a session")
    out = tmp_path / "shot.png"
    assert run_app(["--screenshot", str(out), "--size", "1280x720", str(bad)]) == 0
    assert out.is_file() and str(bad) in capsys.readouterr().err


def _tiny_checkpoint(path: Path) -> Path:
    from core.model import MixController, ModelConfig

    cfg = ModelConfig(n_bands=16, cnn_channels=(4, 8), embed_dim=16, n_layers=1, n_heads=2, ffn_dim=32)
    return save_checkpoint(path, MixController(cfg), cfg)


@pytest.mark.parametrize("field,value,expected", [
    ("embed_dim", 10 ** 6, "embed_dim = 1000000 is not a whole number within"),
    ("n_fft", 2 ** 30, "n_fft"),
    ("n_layers", "4", "n_layers = '4'"),
    ("cnn_channels", [16] * 100, "cnn_channels"),
    ("ffn_dim", 16384, "M parameters"),  # each field in bounds, the whole far too large
])
def test_absurd_checkpoint_configs_are_refused_before_building(tmp_path, monkeypatch, field, value, expected):
    import torch

    path = _tiny_checkpoint(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"][field] = value
    if field == "ffn_dim":
        payload["config"].update(embed_dim=4096, n_layers=48, n_heads=64)
    torch.save(payload, path)
    monkeypatch.setattr("core.checkpoint.MixController", lambda *a: pytest.fail("model built"))
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path)


def test_oversized_checkpoint_is_refused_unread(tmp_path, capsys, monkeypatch):
    import torch

    big = tmp_path / "big.pt"
    with open(big, "wb") as f:
        f.truncate(2 << 30)  # sparse
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read"))
    with pytest.raises(CheckpointError, match="refused unread"):
        load_checkpoint(big)


def test_more_than_64_stems_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    sf.write(folder / "s00.wav", np.zeros(100, np.float32), SR)
    for i in range(1, 65):
        os.link(folder / "s00.wav", folder / f"s{i:02d}.wav")
    sf.write(tmp_path / "ref.wav", np.zeros(100, np.float32), SR)
    monkeypatch.setattr("core.prepare.load_inputs", lambda *a, **k: pytest.fail("work started"))
    assert main(["mix", str(folder), "--reference", str(tmp_path / "ref.wav"), "--out",
                 str(tmp_path / "m.wav"), *FAST]) == 1
    assert "65 stems given; the console takes at most 64" in _one_line_error(capsys)


def test_stems_too_short_to_analyse_are_named_with_their_length(tmp_path, capsys):
    one, ten = tmp_path / "one.wav", tmp_path / "ten.wav"
    sf.write(one, np.full(1, 0.5, np.float32), SR)
    sf.write(ten, np.random.default_rng(0).uniform(-0.5, 0.5, 10).astype(np.float32), SR)
    ref = tmp_path / "ref.wav"
    sf.write(ref, 0.3 * np.sin(np.arange(SR) * 0.05).astype(np.float32), SR)
    assert main(["mix", str(one), str(ten), "--reference", str(ref), "--out", str(tmp_path / "m.wav"),
                 *FAST]) == 1
    err = _one_line_error(capsys)
    assert f"{one} is 1 sample" in err and f"{ten} is 10 samples" in err
    assert f"at least {MIN_ANALYSIS_SECONDS:g} s" in err
    with pytest.raises(AudioError, match=f"{ten}: reference too short to analyse: 10 samples"):
        load_inputs([str(ref)], str(ten))


def test_a_mostly_dc_stem_is_warned_about_and_high_passed(tmp_path, capsys):
    t = np.arange(2 * SR) / SR
    tone = 0.05 * np.sin(2 * np.pi * 220 * t)
    dc = tmp_path / "dc.wav"
    sf.write(dc, (0.5 + tone).astype(np.float32), SR, subtype="FLOAT")
    inputs = load_inputs([str(dc)], None)
    assert inputs.dc_removed and inputs.dc_removed[0][0] == str(dc) and inputs.dc_removed[0][1] > 0.9
    x = inputs.read_stem(0, 0, inputs.frames)[0]
    assert abs(float(np.mean(x))) < 1e-3  # DC gone
    mid = slice(SR // 2, 3 * SR // 2)  # the tone passes the 5 Hz high-pass unchanged
    assert np.sqrt(np.mean(x[mid] ** 2)) == pytest.approx(0.05 / np.sqrt(2), rel=0.02)
    ref = tmp_path / "ref.wav"
    sf.write(ref, tone.astype(np.float32), SR)
    assert main(["render", str(dc), "--params", str(_render_params(tmp_path, "dc")),
                 "--out", str(tmp_path / "m.wav")]) == 0
    assert f"warning: {dc} is mostly DC" in capsys.readouterr().err


def _render_params(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "p.json"
    write_params(path, MixParams.defaults(list(names)))
    return path


def test_export_dialog_refuses_the_sessions_own_files(material, tmp_path, qtbot, monkeypatch):
    need_qt()
    monkeypatch.setenv("STYLEMIX_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    from app.mainwindow import MainWindow

    root, _, _ = material
    shutil.copytree(root / "stems", tmp_path / "stems")
    session = Session(stems=[Stem(n, str(tmp_path / "stems" / f"{n}.wav")) for n in ("bass", "keys")],
                      params=MixParams.defaults(["bass", "keys"]), reference=str(root / "reference_0.wav"))
    session.lock_tracks = np.zeros((2, len(TRACK)), bool)
    save_session(tmp_path / "song.stylemix", session)
    window = MainWindow(audio=False)
    qtbot.addWidget(window)
    try:
        assert window.open_session(str(tmp_path / "song.stylemix"))
        qtbot.waitUntil(lambda: window.model.inputs is not None, timeout=30000)
        before = _digests(tmp_path)
        dlg = window.open_export()
        for target in (tmp_path / "stems" / "keys.wav", tmp_path / "song.stylemix"):
            dlg.path.setText(str(target))
            dlg.start()
            assert dlg.task is None and str(target) in dlg.error and "Export refused" in dlg.status.text()
        assert _digests(tmp_path) == before
        # the stems folder next to the mix holds a file of the user's with a stem's name
        (tmp_path / "mix_stems").mkdir()
        (tmp_path / "mix_stems" / "bass.wav").write_bytes(b"mine")
        before = _digests(tmp_path)
        dlg.path.setText(str(tmp_path / "mix.wav"))
        dlg.stems.setChecked(True)
        dlg.start()
        assert dlg.task is None and "did not write it" in dlg.error
        assert _digests(tmp_path) == before and _temps(tmp_path) == []
        dlg.close()
    finally:
        window.shutdown()


def test_missing_output_folder_is_refused_before_any_work(work, capsys, monkeypatch):
    w, _ = work
    monkeypatch.setattr("core.prepare.load_inputs", lambda *a, **k: pytest.fail("work started"))
    assert main(_mix(w, "--out", str(w / "m.wav"), "--params-out", str(w / "nope" / "p.json"))) == 1
    assert f"folder {w / 'nope'} does not exist" in _one_line_error(capsys)
