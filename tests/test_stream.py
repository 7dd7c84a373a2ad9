"""Rendering with flat memory: stems decoded in blocks, the mix kept in a temporary file, the output
written in blocks -- the same samples as the in-memory path; and the command line around it."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import core.stream_io as sio
from core import meter
from core.audio_io import AudioError, load_audio, load_stems
from core.cli import build_parser, main
from core.export import export_mix
from core.params import MASTER, TRACK
from core.stream_io import FrameStore, StemFiles

SR = 44100
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(folder, seed=0):
    """Stems of different lengths, rates and channel counts."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    specs = [("kick", SR, 1, 2.0), ("pad", 48000, 2, 1.5), ("bass", SR, 1, 1.2), ("keys", 22050, 2, 2.1)]
    paths = []
    for name, rate, ch, sec in specs:
        n = int(rate * sec)
        t = np.arange(n) / rate
        x = 0.3 * np.sin(2 * np.pi * (80 + 50 * len(paths)) * t)[:, None]
        x = x + 0.05 * rng.standard_normal((n, ch))
        p = folder / f"{name}.wav"
        sf.write(p, x, rate, subtype="FLOAT")
        paths.append(str(p))
    return paths


def _params(n, seed=0):
    rng = np.random.default_rng(seed)
    tp = TRACK.from_unit(rng.random((n, len(TRACK))))
    tp[:, TRACK.index("gain_db")] = rng.uniform(-6, 6, n)
    return tp, MASTER.from_unit(rng.random(len(MASTER)))


def test_stem_blocks_equal_the_loaded_stems(tmp_path):
    paths = _write(tmp_path / "s")
    whole = load_stems(paths, SR)
    with StemFiles(paths, SR) as src:
        assert src.frames == whole.frames and src.names == whole.names
        assert list(src.stereo) == [s.is_stereo for s in whole.stems]
        out = np.zeros((src.n_tracks, 2, src.frames), np.float32)
        buf = np.zeros((src.n_tracks, 2, 5000), np.float32)
        for s in range(0, src.frames, 5000):
            n = min(5000, src.frames - s)
            src.read_block(s, n, buf)
            out[:, :, s:s + n] = buf[:, :, :n]
    for i, stem in enumerate(whole.stems):
        x = np.broadcast_to(stem.data, (2, whole.frames))
        np.testing.assert_array_equal(out[i], x)


def test_export_from_files_through_temporary_store_equals_in_memory(tmp_path, monkeypatch):
    paths = _write(tmp_path / "s", seed=1)
    whole = load_stems(paths, SR)
    stems = np.stack([np.broadcast_to(s.data, (2, whole.frames)) for s in whole.stems]).astype(np.float32)
    stereo = np.array([s.is_stereo for s in whole.stems])
    tp, mp = _params(len(paths))
    a = export_mix(stems, tp, mp, SR, tmp_path / "a.wav", bits="32f", loudness_lufs=-12.0, ceiling_dbtp=-1.0,
                   stereo=stereo, stems_dir=tmp_path / "sa")
    monkeypatch.setattr(sio, "MEMORY_STORE_BYTES", 0)  # every store a temporary file
    with StemFiles(paths, SR) as src:
        b = export_mix(src, tp, mp, SR, tmp_path / "b.wav", bits="32f", loudness_lufs=-12.0,
                       ceiling_dbtp=-1.0, stems_dir=tmp_path / "sb", temp_folder=str(tmp_path))
    xa, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    xb, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    np.testing.assert_array_equal(xa, xb)
    assert a.master_gain_db == b.master_gain_db
    assert a.loudness_lufs == pytest.approx(b.loudness_lufs, abs=1e-9)
    for pa, pb in zip(a.stem_paths, b.stem_paths, strict=True):
        np.testing.assert_array_equal(sf.read(pa)[0], sf.read(pb)[0])
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "b.wav", "s", "sa", "sb"]  # no temporary left


def test_ceiling_holds_on_the_written_file(tmp_path):
    paths = _write(tmp_path / "s", seed=2)
    tp, mp = _params(len(paths), seed=3)
    tp[:, TRACK.index("gain_db")] = 12.0  # far over full scale before the limiter
    with StemFiles(paths, SR) as src:
        res = export_mix(src, tp, mp, SR, tmp_path / "m.wav", bits="24", loudness_lufs=-6.0,
                         ceiling_dbtp=-1.0)
    data, _ = sf.read(tmp_path / "m.wav", dtype="float64")
    assert meter.true_peak_dbtp(data.T, SR) <= -1.0 + 0.01  # 24-bit rounding
    assert res.true_peak_dbtp <= -1.0
    assert meter.integrated_lufs(data.T, SR) == pytest.approx(res.loudness_lufs, abs=0.01)


def test_frame_store_file_backend_round_trip():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 10000)).astype(np.float32)
    with FrameStore(2, 10000, memory_limit=0) as st:
        assert not st.in_memory
        for s in range(0, 10000, 3000):
            st.write(s, x[:, s:s + 3000])
        np.testing.assert_array_equal(st.read(-5, 20)[:, 5:], x[:, :15])
        assert not st.read(-5, 20)[:, :5].any() and not st.read(9990, 20)[:, 10:].any()
        np.testing.assert_array_equal(st.array(), x)


def test_truncated_wav_is_refused_with_one_line(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((SR, 2)) * 0.1
    good = tmp_path / "good.wav"
    sf.write(good, x, SR, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[: os.path.getsize(good) // 2])
    with pytest.raises(AudioError, match="cut.wav: truncated: the header declares 44100 frames"):
        load_audio(cut)
    with pytest.raises(AudioError, match="truncated"):
        StemFiles([str(good), str(cut)], SR)
    params = tmp_path / "p.json"
    assert main(["mix", str(good), "--reference", str(good), "--out", str(tmp_path / "m.wav"),
                 "--params-out", str(params), "--no-model", "--steps", "0"]) == 0
    capsys.readouterr()
    assert main(["render", str(cut), "--params", str(params), "--out", str(tmp_path / "r.wav")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cut.wav: truncated" in err
    assert not (tmp_path / "r.wav").exists()


def test_lock_before_stems_does_not_swallow_them():
    args = build_parser(60).parse_args(["mix", "--lock", "eq,pan", "a.wav", "b.wav", "--reference", "r.wav",
                                        "--out", "o.wav", "--lock", "bass:gain_db",
                                        "--set", "pan=0.1,gain_db=-3"])
    assert args.stems == ["a.wav", "b.wav"]
    from core.cli import _comma_list

    assert _comma_list(args.lock) == ["eq", "pan", "bass:gain_db"]
    assert _comma_list(args.sets) == ["pan=0.1", "gain_db=-3"]


@pytest.mark.parametrize("command", ["render", "analyze", "params", "compare"])
def test_render_analyze_params_and_compare_do_not_import_torch(tmp_path, command):
    paths = _write(tmp_path / "s", seed=4)
    tp, mp = _params(len(paths))
    from core.paramfile import MixParams, write_params

    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    write_params(tmp_path / "p.json", MixParams(names, tp, mp))
    argv = {"render": ["render", *paths, "--params", str(tmp_path / "p.json"),
                       "--out", str(tmp_path / "o.wav"), "--engine", "stream"],
            "analyze": ["analyze", paths[0]], "params": ["params"],
            "compare": ["compare", paths[0], paths[1]]}[command]
    code = ("import sys; from core.cli import main; rc = main(sys.argv[1:]); "
            "sys.exit(rc or (3 if 'torch' in sys.modules else 0))")
    env = dict(os.environ, PYTHONPATH=ROOT, STYLEMIX_NO_WARMUP="1")
    r = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr


def test_mix_too_large_for_memory_fails_before_work(tmp_path, capsys, monkeypatch):
    import core.stream_io

    paths = _write(tmp_path / "s", seed=5)
    monkeypatch.setattr(core.stream_io, "available_memory", lambda: 10**8)  # 100 MB left
    out = tmp_path / "m.wav"
    assert main(["mix", *paths, "--reference", paths[0], "--out", str(out), "--no-model"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "GB of memory, 0.1 GB is available" in err and "needs about 1.1" in err
    assert not out.exists()


# --- mixing songs of any length: stems decoded once, read a section at a time ------------------------


def test_stem_store_reads_the_samples_load_stems_gives(tmp_path, monkeypatch):
    from core.stream_io import StemStore

    paths = _write(tmp_path / "s", seed=1)
    loaded = load_stems(paths, SR)
    for limit in (0, None):  # temporary files, then memory
        with StemStore.decode(paths, SR, memory_limit=limit) as store:
            # a mono stem stays mono
            assert [st.channels for st in store.stores] == [a.channels for a in loaded.stems]
            assert store.frames == loaded.frames and store.names == loaded.names
            assert all(st.in_memory == (limit is None) for st in store.stores)
            whole = np.stack([np.repeat(a.data, 2 // a.channels, axis=0) for a in loaded.stems])
            for a, b in ((0, 500), (loaded.frames - 300, loaded.frames + 200), (12345, 54321)):
                got = store.section(a, b)
                want = np.zeros_like(got)
                want[:, :, : max(0, min(b, loaded.frames) - a)] = whole[:, :, a:b]
                np.testing.assert_array_equal(got, want)
            assert [(n, round(sec, 3)) for n, sec in store.padded()] == \
                [(n, round(sec, 3)) for n, sec in loaded.padded]


def test_inputs_from_files_analyse_as_inputs_in_memory(tmp_path, monkeypatch):
    """The lazy inputs of ``stylemix mix`` (stems in temporary files) give the in-memory numbers:
    trims, section choice, the song model's spectra, same-song detection, refinement."""
    from core.prepare import from_audio, load_inputs, stem_frame_stats
    from core.refine import RefineConfig, refine
    from core.samesong import detect

    from synthetic import write_stems

    stems, ref = write_stems(tmp_path / "song", seconds=20.0)  # long enough for spread song-model windows
    monkeypatch.setattr(sio, "MEMORY_STORE_BYTES", 0)
    lazy = load_inputs(stems, ref, SR)
    assert not lazy.in_memory and not lazy.stems.stores[0].in_memory
    loaded = load_stems(stems, SR, remove_mostly_dc=True)
    eager = from_audio(loaded.stems, SR, load_audio(ref, SR), loaded.padded)
    np.testing.assert_array_equal(lazy.trim_db, eager.trim_db)
    np.testing.assert_array_equal(lazy.silent, eager.silent)
    for x, y in zip(stem_frame_stats(lazy)[0], stem_frame_stats(eager)[0], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12)
    np.testing.assert_allclose(stem_frame_stats(lazy)[1], stem_frame_stats(eager)[1], rtol=1e-12)
    d1, d2 = detect(lazy), detect(eager)
    assert d1.kind == d2.kind and d1.score == pytest.approx(d2.score, rel=1e-4)
    cfg = RefineConfig(steps=3)
    r1, r2 = refine(lazy, None, cfg), refine(eager, None, cfg)
    assert r1.sections == r2.sections
    np.testing.assert_allclose(r1.params.tracks, r2.params.tracks, rtol=1e-9, atol=1e-9)
    assert r1.loss_after == pytest.approx(r2.loss_after, rel=1e-9)
    lazy.close()


def test_mix_of_a_long_stand_in_never_holds_a_whole_stem(tmp_path, monkeypatch, capsys):
    """``stylemix mix`` reads the stems a section at a time: no stem file is ever decoded whole and
    no read is longer than a few seconds (the read sizes are shrunk so that a 30 s song stands in
    for an hour)."""
    import core.audio_io
    import core.prepare
    import core.samesong

    from synthetic import write_stems

    stems, ref = write_stems(tmp_path / "song", seconds=30.0)
    frames = int(30.0 * SR)
    monkeypatch.setattr(sio, "MEMORY_STORE_BYTES", 0)
    monkeypatch.setattr(core.prepare, "STATS_BLOCK_FRAMES", 1 << 16)
    monkeypatch.setattr(core.samesong, "_CHUNK_FRAMES", 128)
    whole_reads = []
    read_file = core.audio_io._read_file

    def refuse_stems(path):
        whole_reads.append(path)
        return read_file(path)

    monkeypatch.setattr(core.audio_io, "_read_file", refuse_stems)
    largest = []
    read_stem = sio.StemStore.read_stem

    def counting(self, i, start, n):
        largest.append(n)
        return read_stem(self, i, start, n)

    monkeypatch.setattr(sio.StemStore, "read_stem", counting)
    out = tmp_path / "mix.wav"
    assert main(["mix", *stems, "--reference", ref, "--out", str(out), "--steps", "2"]) == 0, \
        capsys.readouterr().err
    assert whole_reads and not set(whole_reads) & set(stems)  # the reference is read whole; no stem ever is
    assert max(largest) < frames / 5  # sections of 4-5 s, blocks of 1.5 s: never more than 6 s at once
    assert sf.info(out).frames == frames


def test_mix_refuses_when_the_temporary_folder_is_too_small(tmp_path, capsys, monkeypatch):
    import shutil

    import core.prepare

    paths = _write(tmp_path / "s", seed=6)
    monkeypatch.setattr(sio, "MEMORY_STORE_BYTES", 0)  # the stems would go to temporary files
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    out = tmp_path / "m.wav"
    assert main(["mix", *paths, "--reference", paths[0], "--out", str(out), "--no-model"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "GB of temporary disk space in" in err and "0.0 GB is free" in err
    assert not out.exists()
    need, count, seconds, disk = core.prepare.mix_memory_needed(paths, None, SR)
    assert count == 4 and seconds == pytest.approx(2.1, abs=0.01)
    # every stem padded to the longest, float32 per channel (1 + 2 + 1 + 2 channels)
    assert disk == 4 * 6 * round(2.1 * SR) and need > core.prepare.MIX_BASE_BYTES
