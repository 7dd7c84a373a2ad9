"""The stylemix command line: each command's success path, the end-to-end promise, bad input."""

import json
import re

import numpy as np
import pytest
import soundfile as sf

from core.cli import main
from core.features import integrated_lufs, true_peak_dbtp
from core.paramfile import read_params
from core.params import TRACK
from core.report import NOMINAL_HZ, OCTAVES

from synthetic import write_stems


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    stems, ref = write_stems(root / "stems", seconds=6.0)
    return root, stems, ref


@pytest.fixture(scope="module")
def mixed(material):
    """One real `stylemix mix` run shared by several tests."""
    root, stems, ref = material
    out, params = root / "mix.wav", root / "mix.json"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["mix", *stems, "--reference", ref, "--out", str(out), "--params-out", str(params),
                     "--steps", "60", "--seed", "1", "--no-model"])
    return code, buf.getvalue(), out, params


def test_mix_end_to_end_beats_equal_loudness_sum_tenfold(mixed, material):
    code, text, out, params = mixed
    assert code == 0
    m = re.search(r"equal-loudness sum ([\d.]+) -> defaults [\d.]+ -> mix ([\d.]+)", text)
    baseline, result = float(m.group(1)), float(m.group(2))
    assert result * 10 <= baseline, text
    for name in ("kick", "bass", "pad", "stereo", "mono", "LUFS", "AF loss"):
        assert name in text


def test_mix_output_is_loudness_matched_and_never_clips(mixed, material):
    _, _, out, _ = mixed
    _, _, ref = material
    y, sr = sf.read(out, always_2d=True)
    r, _ = sf.read(ref, always_2d=True)
    assert y.shape[1] == 2 and sr == 44100 and sf.info(out).subtype == "PCM_24"
    assert abs(integrated_lufs(y.T, sr) - integrated_lufs(r.T, sr)) < 0.5
    assert true_peak_dbtp(y.T, sr) <= -1.0 + 0.05


def test_params_out_round_trips_through_render(mixed, material, tmp_path):
    _, _, out, params = mixed
    _, stems, _ = material
    p = read_params(params)
    assert sorted(p.names) == sorted(["kick", "hats", "bass", "keys", "pad", "lead"])
    assert p.stereo[p.names.index("pad")] and not p.stereo[p.names.index("kick")]
    again = tmp_path / "again.wav"
    stems_dir = tmp_path / "processed"
    assert main(["render", *stems, "--params", str(params), "--out", str(again),
                 "--stems-out", str(stems_dir)]) == 0
    assert sorted(f.stem for f in stems_dir.iterdir() if f.suffix == ".wav") == sorted(p.names)
    a, _ = sf.read(out)
    b, _ = sf.read(again)
    # same console, same settings: the same mix (24-bit quantisation apart)
    assert np.max(np.abs(a - b)) < 1e-4


def test_params_in_and_locks(material, tmp_path, mixed):
    _, stems, ref = material
    _, _, _, params = mixed
    out, p2 = tmp_path / "m.flac", tmp_path / "p2.json"
    code = main(["mix", *stems, "--reference", ref, "--out", str(out), "--params-in", str(params),
                 "--steps", "3", "--lock", "eq", "--set", "bass:pan=-0.5", "--params-out", str(p2),
                 "--bits", "16"])
    assert code == 0 and sf.info(out).format == "FLAC" and sf.info(out).subtype == "PCM_16"
    before, after = read_params(params), read_params(p2).select(read_params(params).names)
    eq = TRACK.group_mask("eq")
    np.testing.assert_allclose(after.tracks[:, eq], before.tracks[:, eq], atol=1e-6)
    assert after.tracks[after.names.index("bass"), TRACK.index("pan")] == -0.5


def test_analyze_table_and_json(material, tmp_path, capsys):
    _, stems, ref = material
    assert main(["analyze", ref, stems[0]]) == 0
    text = capsys.readouterr().out
    assert "LUFS" in text and "reference_0.wav" in text
    assert main(["analyze", "--json", ref]) == 0
    rep = json.loads(capsys.readouterr().out)[0]
    r, sr = sf.read(ref, always_2d=True)
    assert rep["integrated_lufs"] == pytest.approx(integrated_lufs(r.T, sr), abs=0.01)
    assert rep["true_peak_dbtp"] >= rep["sample_peak_dbfs"] - 1e-6
    assert 0 <= rep["width"] < 1
    # the match report's terms: mid level per octave at the common loudness, width per range
    assert list(rep["mid_octave_db"]) == [label for _, label in OCTAVES]
    assert len(rep["mid_third_octave_db"]) == len(NOMINAL_HZ)
    assert set(rep["width_db"]) == {"low", "mid", "high"} and rep["lra_lu"] >= 0
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, r * 0.1, sr)
    assert main(["analyze", "--json", ref, str(quiet)]) == 0
    a, b = json.loads(capsys.readouterr().out)
    assert a["mid_octave_db"] == pytest.approx(b["mid_octave_db"], abs=0.02)  # level-independent
    assert main(["analyze", str(quiet)]) == 0
    text = capsys.readouterr().out
    assert "630-1k" in text and "w.mid" in text and "LRA" in text


def _tilted(path, out, db_per_octave):
    x, sr = sf.read(path, always_2d=True)
    f = np.fft.rfftfreq(x.shape[0], 1 / sr)
    f[0] = f[1]
    y = np.fft.irfft(np.fft.rfft(x, axis=0) * 10 ** (db_per_octave * np.log2(f / 1000) / 20)[:, None],
                     x.shape[0], axis=0)
    sf.write(out, 0.5 * y / np.abs(y).max(), sr, subtype="FLOAT")
    return out


def test_compare_table_json_and_region(material, tmp_path, capsys):
    _, _, ref = material
    mix = _tilted(ref, tmp_path / "bright.wav", 2.0)
    assert main(["compare", str(mix), ref]) == 0
    text = capsys.readouterr().out
    for needle in ("tonal deviation", "worst octave", "worst bands: too much 16 kHz (+",
                   "width low", "width mid", "width high", "crest factor", "loudness range (LRA)",
                   "peak to loudness (PLR)", "low end", "air", "1.25k", "10k-16k"):
        assert needle in text, needle
    assert main(["compare", "--json", str(mix), ref]) == 0
    doc = json.loads(capsys.readouterr().out)
    d, f = np.array(doc["mid_diff_db"]), np.array(doc["centres_hz"])
    # the tilt (the reference's tones sit anywhere in a band, so fit a line rather than read each step)
    slope, _ = np.polyfit(np.log2(f[3:-2]), d[3:-2], 1)
    assert slope == pytest.approx(2.0, abs=0.1)
    assert doc["worst_bands"][0][0] == 16000 and doc["worst_octave"] == "10k-16k Hz"
    assert set(doc["summary"]) == {"tonal_deviation_db", "worst_octave_db", "width_deviation_db",
                                   "dynamics_deviation"}
    assert main(["compare", "--json", ref, ref, "--region", "1", "3", "--ref-region", "1", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tonal_deviation_db"] < 1e-6 and doc["region"] == [1.0, 3.0]


def test_compare_bad_input_is_one_line(material, tmp_path, capsys):
    _, _, ref = material
    assert main(["compare", str(tmp_path / "nope.wav"), ref]) == 1
    _one_line_error(capsys, "nope.wav")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((44100, 2)), 44100)
    assert main(["compare", ref, str(silent)]) == 1
    _one_line_error(capsys, "silent.wav: silent")
    assert main(["compare", ref, ref, "--region", "100", "110"]) == 1
    _one_line_error(capsys, "starts after the end")
    assert main(["compare", ref, ref, "--region", "3", "1"]) == 1
    _one_line_error(capsys, "before the end")


def test_params_command(capsys):
    assert main(["params"]) == 0
    text = capsys.readouterr().out
    for p in TRACK:
        assert p.key in text
    assert main(["params", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["key"] for p in doc["track"]] == list(TRACK.keys)


def _one_line_error(capsys, needle):
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylemix: error:") and needle in err and "\n" not in err
    assert "Traceback" not in err


def test_bad_input_exit_1(material, tmp_path, capsys):
    _, stems, ref = material
    out = str(tmp_path / "o.wav")
    assert main(["mix", str(tmp_path / "nope.wav"), "--reference", ref, "--out", out]) == 1
    _one_line_error(capsys, "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert main(["mix", str(bad), "--reference", ref, "--out", out]) == 1
    _one_line_error(capsys, "bad.wav")
    assert main(["mix", *stems, "--reference", ref, "--out", str(tmp_path / "o.mp3")]) == 1
    _one_line_error(capsys, "o.mp3")
    assert main(["mix", *stems, "--reference", ref, "--out", str(tmp_path / "o.flac"), "--bits", "32f"]) == 1
    _one_line_error(capsys, "FLAC")
    assert main(["mix", *stems, "--reference", ref, "--out", out, "--lock", "wobble"]) == 1
    _one_line_error(capsys, "wobble")
    assert main(["mix", *stems, "--reference", ref, "--out", out, "--threads", "0"]) == 1
    _one_line_error(capsys, "--threads")
    assert main(["mix", *stems, "--reference", ref, "--out", out, "--prior", "-1"]) == 1
    _one_line_error(capsys, "--prior")
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"schema": "v0-old", "tracks": [], "master": {}}))
    assert main(["render", *stems, "--params", str(params), "--out", out]) == 1
    _one_line_error(capsys, "console schema")
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("argv", [["mix"], ["render", "x.wav"], ["mix", "a.wav", "--out", "o.wav"],
                                  ["analyze"], ["mix", "a", "--reference", "r", "--out", "o", "--bits", "8"],
                                  ["compare", "a.wav"], ["compare", "a.wav", "b.wav", "--region", "1"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


@pytest.mark.parametrize("cmd", ["mix", "render", "analyze", "compare", "params"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and "usage: stylemix" in capsys.readouterr().out


def test_render_engines_agree(mixed, material, tmp_path):
    """The streaming engine (default) and the torch console render the same mix."""
    _, _, _, params = mixed
    _, stems, _ = material
    outs = {}
    for engine in ("stream", "torch"):
        outs[engine] = tmp_path / f"{engine}.wav"
        assert main(["render", *stems, "--params", str(params), "--out", str(outs[engine]),
                     "--engine", engine, "--bits", "32f"]) == 0
    a, _ = sf.read(outs["stream"])
    b, _ = sf.read(outs["torch"])
    err_db = 10 * np.log10(np.sum((a - b) ** 2) / np.sum(b**2))
    assert err_db < -55


def test_model_only_and_model_errors(material, tmp_path, capsys):
    """--model picks a checkpoint, --steps 0 is model only; a bad checkpoint is a one-line error."""
    import torch

    from core.checkpoint import save_checkpoint
    from core.model import MixController, ModelConfig

    _, stems, ref = material
    torch.manual_seed(0)
    cfg = ModelConfig(cnn_channels=(4, 8), embed_dim=16, n_layers=1, n_heads=2, ffn_dim=32)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, MixController(cfg), cfg)
    out = tmp_path / "m.wav"
    assert main(["mix", *stems, "--reference", ref, "--out", str(out), "--model", str(ckpt),
                 "--steps", "0"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"-> model [\d.]+ -> mix [\d.]+ \(no refinement", text) and out.exists()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["mix", *stems, "--reference", ref, "--out", str(out), "--model", str(bad)]) == 1
    _one_line_error(capsys, "bad.pt")
    assert main(["mix", *stems, "--reference", ref, "--out", str(out), "--model", str(ckpt),
                 "--no-model"]) == 1
    _one_line_error(capsys, "contradict")
