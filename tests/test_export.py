"""Export through the streaming console: formats, loudness target, true-peak ceiling, stems, atomicity."""

import os

import numpy as np
import pytest
import soundfile as sf

from core.audio_io import AudioError
from core.engine import StreamingConsole, render_stream
from core.export import export_mix, render_track, stem_file_names
from core.features import integrated_lufs, true_peak_dbtp
from core.params import MASTER, TRACK

SR = 44100


def _stems(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    kick = np.zeros(n)
    for s in range(0, n - 4000, SR // 4):
        kick[s:s + 4000] = np.sin(2 * np.pi * 60 * t[:4000]) * np.exp(-t[:4000] * 30)
    bass = 0.4 * np.sin(2 * np.pi * 110 * t)
    pad = 0.2 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 443 * t + 1)])
    noise = 0.1 * rng.standard_normal((2, n))
    stems = np.stack([np.stack([kick, kick]), np.stack([bass, bass]), pad, noise]).astype(np.float32)
    return stems, np.array([False, False, True, True])


def _params(seed=0):
    rng = np.random.default_rng(seed)
    tp = np.tile(TRACK.defaults(), (4, 1))
    tp[:, TRACK.index("pan")] = rng.uniform(-0.8, 0.8, 4)
    tp[:, TRACK.index("eq_band2_gain_db")] = rng.uniform(-6, 6, 4)
    tp[:, TRACK.index("comp_threshold_db")] = -20.0
    tp[:, TRACK.index("comp_ratio")] = 4.0
    tp[:, TRACK.index("gain_db")] = -6.0  # the mix stays below full scale
    return tp, MASTER.defaults()


@pytest.mark.parametrize("fmt,bits,subtype", [
    ("wav", "16", "PCM_16"), ("wav", "24", "PCM_24"), ("wav", "32f", "FLOAT"),
    ("flac", "16", "PCM_16"), ("flac", "24", "PCM_24"),
])
def test_bit_depths_and_formats(tmp_path, fmt, bits, subtype):
    stems, stereo = _stems()
    tp, mp = _params()
    path = tmp_path / f"mix.{fmt}"
    res = export_mix(stems, tp, mp, SR, path, bits=bits, stereo=stereo)
    info = sf.info(str(path))
    assert info.subtype == subtype and info.samplerate == SR and info.channels == 2
    assert info.frames == stems.shape[-1] == res.frames
    data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    ref = render_stream(stems, stereo, tp, mp, SR)
    assert np.abs(ref).max() < 1.0
    step = {"16": 2.0**-15, "24": 2.0**-23, "32f": 1e-7}[bits]
    np.testing.assert_allclose(data.T, ref, rtol=0, atol=step)


def test_float_export_equals_the_engine_exactly(tmp_path):
    stems, stereo = _stems(seed=1)
    tp, mp = _params(1)
    path = tmp_path / "mix.wav"
    export_mix(stems, tp, mp, SR, path, bits="32f", stereo=stereo, threads=2)
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(data.T, render_stream(stems, stereo, tp, mp, SR, threads=1))


def test_export_with_the_fx_return_muted_is_the_mix_with_sends_off(tmp_path):
    stems, stereo = _stems(seed=2)
    tp, mp = _params(2)
    tp[:, TRACK.index("send_db")] = 0.0
    mp[MASTER.index("reverb_return_db")] = 6.0
    dry = tp.copy()
    dry[:, TRACK.index("send_db")] = TRACK["send_db"].min
    out = {}
    for name, params, fx_mute in (("muted", tp, True), ("dry", dry, False), ("wet", tp, False)):
        export_mix(stems, params, mp, SR, tmp_path / f"{name}.wav", bits="32f", stereo=stereo, threads=2,
                   fx_mute=fx_mute)
        out[name], _ = sf.read(str(tmp_path / f"{name}.wav"), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(out["muted"], out["dry"])
    assert np.abs(out["wet"] - out["dry"]).max() > 1e-2  # unmuted, the reverb is in the file


def test_loudness_target_and_true_peak_ceiling(tmp_path):
    stems, stereo = _stems(seconds=3.0, seed=2)
    tp, mp = _params(2)
    path = tmp_path / "loud.wav"
    res = export_mix(stems, tp, mp, SR, path, bits="24", loudness_lufs=-14.0, ceiling_dbtp=-1.0,
                     stereo=stereo)
    data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    assert true_peak_dbtp(data.T, SR) <= -1.0 + 1e-3  # the limiter holds the ceiling (measured)
    assert abs(integrated_lufs(data.T, SR) - (-14.0)) < 0.1
    assert res.true_peak_dbtp <= -1.0 + 1e-3
    # the master fader that reaches the target is reported
    assert res.master_gain_db > 0.0


def test_quiet_target_needs_no_limiting(tmp_path):
    stems, stereo = _stems(seconds=2.0, seed=3)
    tp, mp = _params(3)
    path = tmp_path / "quiet.wav"
    res = export_mix(stems, tp, mp, SR, path, bits="32f", loudness_lufs=-30.0, ceiling_dbtp=-1.0,
                     stereo=stereo)
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    assert abs(integrated_lufs(data.T, SR) + 30.0) < 0.05
    # a plain fader change: the file is the engine's output scaled, sample-aligned
    ref = render_stream(stems, stereo, tp, mp, SR)
    scale = 10 ** ((res.master_gain_db - mp[MASTER.index("gain_db")]) / 20)
    np.testing.assert_allclose(data.T, ref * scale, rtol=1e-5, atol=1e-7)


def test_processed_stems(tmp_path):
    stems, stereo = _stems(seed=4)
    tp, mp = _params(4)
    names = ["kick", "bass", "pad/left", "kick"]
    calls = []
    res = export_mix(stems, tp, mp, SR, tmp_path / "mix.wav", bits="32f", stereo=stereo, names=names,
                     stems_dir=tmp_path / "stems", progress=lambda d, t: calls.append((d, t)))
    files = [os.path.basename(p) for p in res.stem_paths]
    assert files == ["kick.wav", "bass.wav", "pad_left.wav", "kick_2.wav"]
    total = 0
    for t, p in enumerate(res.stem_paths):
        data, _ = sf.read(p, dtype="float32", always_2d=True)
        assert data.shape == (stems.shape[-1], 2)
        total = total + data.T.astype(np.float64)
        if t == 1:  # a mono stem panned: both sides follow the pan law
            theta = (tp[1, TRACK.index("pan")] + 1) * np.pi / 4
            ratio = np.abs(data[:, 1]).max() / np.abs(data[:, 0]).max()
            assert ratio == pytest.approx(np.tan(theta), rel=1e-4)
    # with a neutral master bus the stems sum to the mix
    mix, _ = sf.read(str(tmp_path / "mix.wav"), dtype="float64", always_2d=True)
    np.testing.assert_allclose(total, mix.T, rtol=0, atol=1e-5)
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1]


def test_render_track_matches_the_cache_of_a_full_render():
    stems, stereo = _stems(seconds=0.5, seed=5)
    tp, mp = _params(5)
    con = StreamingConsole(stems, stereo, SR, tp, mp)
    solo = np.zeros(4, bool)
    solo[2] = True
    one = render_stream(stems, stereo, tp, MASTER.defaults(), SR, solo=solo)
    np.testing.assert_allclose(render_track(con, 2), one, rtol=0, atol=1e-6)


def test_stem_file_names_are_safe_and_unique():
    assert stem_file_names(["a b", "a_b", "../x", ""], "flac") == ["a_b.flac", "a_b_2.flac", "x.flac",
                                                                   "track.flac"]


def test_bad_destination_fails_before_rendering(tmp_path):
    stems, stereo = _stems(seconds=0.2)
    tp, mp = _params()
    calls = []
    with pytest.raises(AudioError, match="unsupported output format"):
        export_mix(stems, tp, mp, SR, tmp_path / "mix.mp3", progress=lambda d, t: calls.append(d))
    with pytest.raises(AudioError, match="folder does not exist"):
        export_mix(stems, tp, mp, SR, tmp_path / "nope" / "mix.wav", progress=lambda d, t: calls.append(d))
    with pytest.raises(AudioError, match="cannot store"):
        export_mix(stems, tp, mp, SR, tmp_path / "mix.flac", bits="32f")
    assert calls == []


def test_failed_export_leaves_existing_file_and_no_temporary(tmp_path):
    stems, stereo = _stems(seconds=0.5)
    tp, mp = _params()
    path = tmp_path / "mix.wav"
    path.write_bytes(b"previous render")

    def boom(done, total):
        raise KeyboardInterrupt  # the user cancels half way

    with pytest.raises(KeyboardInterrupt):
        export_mix(stems, tp, mp, SR, path, progress=boom)
    assert path.read_bytes() == b"previous render"
    assert sorted(os.listdir(tmp_path)) == ["mix.wav"]
    # and a completed export replaces it in one step
    export_mix(stems, tp, mp, SR, path, bits="16")
    assert sf.info(str(path)).subtype == "PCM_16"
    assert sorted(os.listdir(tmp_path)) == ["mix.wav"]
