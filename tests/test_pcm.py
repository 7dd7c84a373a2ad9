"""Fast PCM decoding (core.pcm) gives libsndfile's samples bit for bit; the read-ahead of stem blocks,
the two-stage render and the output stage measured during the render give the samples and numbers of
the plain, one-step-after-the-other path."""

import numpy as np
import pytest
import soundfile as sf

from core import render
from core.audio_io import load_stems
from core.engine import render_stream
from core.params import MASTER, TRACK
from core.pcm import raw_reader
from core.stream_io import FrameStore, StemFiles

SR = 44100


def _signal(frames=20011, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    x = np.clip(0.4 * rng.standard_normal((frames, channels)), -1.0, 1.0)
    x[:4] = [[-1.0] * channels, [1.0] * channels, [0.0] * channels, [-0.5] * channels]  # extremes
    return x.astype(np.float32)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_raw_decoding_is_bit_identical_to_libsndfile(tmp_path, subtype, channels):
    path = tmp_path / "x.wav"
    sf.write(path, _signal(channels=channels), SR, subtype=subtype)
    with sf.SoundFile(path) as f:
        want = f.read(dtype="float32", always_2d=True)
    with sf.SoundFile(path) as f:
        read = raw_reader(f)
        assert read is not None
        parts = []
        for n in (1, 999, 4096, 1 << 20):  # ragged blocks, the last runs past the end
            parts.append(read(n))
        assert read(100).shape == (0, channels)  # at the end: nothing more
    got = np.concatenate(parts)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_raw_decoding_follows_seeks(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, _signal(), SR, subtype="PCM_24")
    with sf.SoundFile(path) as f:
        want = f.read(dtype="float32", always_2d=True)
        read = raw_reader(f)
        f.seek(12345)
        np.testing.assert_array_equal(read(100), want[12345:12445])
        f.seek(0)
        np.testing.assert_array_equal(read(10), want[:10])


@pytest.mark.parametrize("fmt,subtype", [("FLAC", "PCM_24"), ("AIFF", "PCM_16"), ("WAV", "PCM_U8"),
                                         ("WAV", "DOUBLE")])
def test_other_formats_are_left_to_libsndfile(tmp_path, fmt, subtype):
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, _signal(channels=1), SR, format=fmt, subtype=subtype)
    with sf.SoundFile(path) as f:
        assert raw_reader(f) is None


def _stems(folder, n=5, seconds=1.3):
    rng = np.random.default_rng(3)
    folder.mkdir()
    t = np.arange(int(seconds * SR)) / SR
    paths = []
    for i in range(n):
        x = 0.3 * np.sin(2 * np.pi * 70 * (i + 1) * t)[:, None]
        x = x + 0.05 * rng.standard_normal((t.size, 1 + i % 2))
        p = folder / f"s{i}.wav"
        sf.write(p, x[: t.size - 977 * i], SR, subtype="PCM_24")  # different lengths
        paths.append(str(p))
    return paths


def test_read_ahead_gives_the_same_blocks_and_refuses_another_block(tmp_path):
    paths = _stems(tmp_path / "s")
    blocks = {}
    for ahead in (False, True):
        got = []
        with StemFiles(paths, SR, threads=2) as src:
            buf = np.zeros((src.n_tracks, 2, 4000), np.float32)
            for s in range(0, src.frames, 4000):
                n = min(4000, src.frames - s)
                src.read_block(s, n, buf, ahead=min(4000, src.frames - s - n) if ahead else 0)
                got.append(buf[:, :, :n].copy())
        blocks[ahead] = np.concatenate(got, axis=2)
    np.testing.assert_array_equal(blocks[True], blocks[False])
    with StemFiles(paths, SR, threads=2) as src:
        buf = np.zeros((src.n_tracks, 2, 4000), np.float32)
        src.read_block(0, 4000, buf, ahead=4000)
        with pytest.raises(ValueError, match="read ahead"):
            src.read_block(4000, 1000, buf)


def _params(n, seed=1):
    rng = np.random.default_rng(seed)
    tp = TRACK.from_unit(rng.random((n, len(TRACK))))  # sends open: the FX return runs in the mixer stage
    tp[:, TRACK.index("gain_db")] = -6.0
    return tp, MASTER.from_unit(rng.random(len(MASTER)))


def test_two_stage_render_equals_one_thread_for_any_block(tmp_path):
    paths = _stems(tmp_path / "s")
    tp, mp = _params(len(paths))
    outs, strips = [], []
    for threads, block in ((1, 8192), (2, 8192), (2, 3000), (3, 32768)):
        seen = []
        def note(con, cache, s, n, seen=seen):
            seen.append(cache[:, 0, :n].sum())

        with StemFiles(paths, SR) as src:
            out = render_stream(src, None, tp, mp, SR, threads=threads, block=block, on_block=note)
        outs.append(out)
        strips.append(sum(seen))
    whole = load_stems(paths, SR)  # the stems in memory, rendered in one thread, the plain way
    stems = np.stack([np.broadcast_to(st.data, (2, whole.frames)) for st in whole.stems]).astype(np.float32)
    plain = render_stream(stems, np.array([st.is_stereo for st in whole.stems]), tp, mp, SR, threads=1)
    np.testing.assert_array_equal(outs[0], plain)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    assert strips[1] == pytest.approx(strips[0], rel=1e-6)  # on_block saw each block's own strips
    assert np.abs(outs[0]).max() > 0.01


def test_measured_store_gives_the_output_stage_the_same_numbers():
    rng = np.random.default_rng(7)
    x = (0.3 * rng.standard_normal((2, 3 * render.CHUNK + 12345))).astype(np.float32)
    x[:, 5000] = 2.5  # a peak over the ceiling: the limiter works
    for loudness in (None, -9.0):
        a = render.output_stage_store(FrameStore.of(x), SR, 0.0, loudness, -1.0)
        store = render.MeasuredStore(2, x.shape[1], SR)
        for s in range(0, x.shape[1], 7777):  # blocks as a render hands them over
            store.write(s, x[:, s:s + 7777])
        b = render.output_stage_store(store, SR, 0.0, loudness, -1.0)
        np.testing.assert_array_equal(a.out.array(), b.out.array())
        for key in ("gain_db", "loudness_lufs", "true_peak_dbtp"):
            assert getattr(a, key) == getattr(b, key)
        assert b.true_peak_dbtp <= -1.0
        np.testing.assert_array_equal(store.store.array(), x)  # the mix is left as it was
        store.close()
    with pytest.raises(ValueError, match="in order"):
        render.MeasuredStore(2, 100, SR).write(10, x[:, :10])


def test_window_stats_and_crest_match_plain_numpy():
    from core.meter import window_stats
    from core.report import crest_factor_db

    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 10 * 4410 + 77)) * np.linspace(0.01, 1.0, 10 * 4410 + 77)).astype(np.float32)
    peak, power = window_stats(x, 4410)
    frames = x[:, : 10 * 4410].astype(np.float64).reshape(2, 10, 4410)
    np.testing.assert_array_equal(peak, np.abs(frames).max(axis=(0, 2)))
    np.testing.assert_allclose(power, np.mean(frames ** 2, axis=(0, 2)), rtol=1e-12)
    short = x[:, :1000]  # shorter than a window: one window over everything
    p1, w1 = window_stats(short, 4410)
    assert p1.shape == (1,) and p1[0] == np.abs(short).max()
    # a square wave's crest factor is 0 dB, a sine's 3.01 dB, whatever the window
    t = np.arange(3 * SR) / SR
    assert crest_factor_db(np.sign(np.sin(2 * np.pi * 100 * t + 0.1)), SR) == pytest.approx(0.0, abs=1e-9)
    assert crest_factor_db(np.sin(2 * np.pi * 100 * t), SR) == pytest.approx(3.0103, abs=0.01)


def test_analyse_reuses_what_the_caller_measured():
    from core import meter, report

    rng = np.random.default_rng(9)
    x = (0.2 * rng.standard_normal((2, 6 * SR))).astype(np.float32)
    x[1] = 0.6 * x[1] + 0.4 * x[0]
    plain = report.analyse(x, SR)
    m = meter.meter(x, SR)
    given = report.analyse(x, SR, measured={
        "cross": report.cross_spectra(x, SR, report.analysis_fft(SR)), "lufs": m.integrated(),
        "true_peak_dbtp": meter.true_peak_dbtp(x, SR), "short_term": m.short_term()})
    for key in ("lufs", "crest_db", "lra_lu", "plr_db", "low_end_db", "air_db"):
        assert getattr(given, key) == getattr(plain, key)
    np.testing.assert_array_equal(given.mid_db, plain.mid_db)
    np.testing.assert_array_equal(given.side_db, plain.side_db)
    # numbers measured elsewhere are used, not measured again (and ignored for a region)
    odd = report.analyse(x, SR, measured={"lufs": -30.0, "true_peak_dbtp": 0.0})
    assert odd.lufs == -30.0 and odd.plr_db == 30.0
    assert report.analyse(x, SR, region=(0, 6), measured={"lufs": -30.0}).lufs == plain.lufs
