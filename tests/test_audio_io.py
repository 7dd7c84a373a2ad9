"""Tests for core.audio_io: reading, resampling, validation, stem sets and atomic writing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from core import audio_io
from core.audio_io import (
    AUDIO_EXTENSIONS,
    SUPPORTED_RATES,
    Audio,
    AudioError,
    StemSet,
    check_sample_rate,
    expand_paths,
    load_audio,
    load_stems,
    to_stereo,
    unique_names,
    write_audio,
)


def sine(freq=1000.0, sr=44100, seconds=1.0, amp=0.5, channels=1) -> np.ndarray:
    """(channels, frames) float64 sine."""
    t = np.arange(round(seconds * sr)) / sr
    return np.tile(amp * np.sin(2 * np.pi * freq * t), (channels, 1))


def write_fixture(path, data_ct, sr, **kw) -> str:
    """Write (channels, frames) data with soundfile directly (independent of write_audio)."""
    sf.write(str(path), np.asarray(data_ct).T, sr, **kw)
    return str(path)


def peak_frequency(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / sr)[np.argmax(spec)])


def sine_amplitude_db(x: np.ndarray) -> float:
    """Amplitude (dB) of a steady sine, from the RMS of its middle half (away from edge transients)."""
    n = len(x)
    mid = x[n // 4 : 3 * n // 4]
    return 20 * np.log10(np.sqrt(np.mean(mid.astype(np.float64) ** 2)) * np.sqrt(2))


def error_message(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    return msg


# --- round trips ------------------------------------------------------------------------------------

QUANT_STEP = {"16": 2.0**-15, "24": 2.0**-23}


@pytest.mark.parametrize("ext", ["wav", "flac"])
@pytest.mark.parametrize("bits", ["16", "24", "32f"])
def test_round_trip(tmp_path, ext, bits):
    rng = np.random.default_rng(0)
    data = rng.uniform(-0.99, 0.99, size=(2, 4410)).astype(np.float32)
    path = tmp_path / f"mix.{ext}"
    if ext == "flac" and bits == "32f":
        with pytest.raises(AudioError) as e:
            write_audio(path, data, 44100, bits=bits)
        assert "mix.flac" in error_message(e)
        assert not path.exists()
        return
    write_audio(path, data, 44100, bits=bits)
    info = sf.info(str(path))
    assert info.format == ext.upper()
    assert info.subtype == audio_io.WRITE_BITS[bits]
    assert info.channels == 2 and info.samplerate == 44100
    audio = load_audio(path)
    assert audio.data.dtype == np.float32
    assert audio.data.shape == data.shape
    err = float(np.max(np.abs(audio.data.astype(np.float64) - data)))
    if bits == "32f":
        assert err == 0.0
    else:
        assert err <= QUANT_STEP[bits] * 1.01


@pytest.mark.parametrize(
    "bits,dtype,lo,hi", [("16", "int16", -32768, 32767), ("24", "int32", -(2**31), 2**31 - 256)]
)
def test_pcm_write_clips_instead_of_wrapping(tmp_path, bits, dtype, lo, hi):
    path = tmp_path / "hot.wav"
    write_audio(path, np.array([[1.5, -1.5, 1.0, -1.0, 0.0]]), 44100, bits=bits)
    ints, _ = sf.read(str(path), dtype=dtype)
    assert ints.tolist() == [hi, lo, hi, lo, 0]


def test_write_mono_1d_and_overwrite(tmp_path):
    path = tmp_path / "out.wav"
    write_audio(path, np.full(100, 0.25), 48000, bits="32f")
    write_audio(path, np.full((1, 200), -0.5), 48000, bits="32f")
    audio = load_audio(path, 48000)
    assert audio.channels == 1 and audio.frames == 200
    np.testing.assert_array_equal(audio.data, np.full((1, 200), -0.5, dtype=np.float32))
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_written_file_has_normal_permissions(tmp_path):
    ref = tmp_path / "ref"
    ref.write_bytes(b"")
    path = tmp_path / "out.wav"
    write_audio(path, np.zeros((2, 10)), 44100)
    assert path.stat().st_mode & 0o777 == ref.stat().st_mode & 0o777


# --- resampling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sr_in,session", [(22050, 44100), (48000, 44100), (96000, 44100), (44100, 48000)])
def test_resampling_keeps_frequency_amplitude_and_length(tmp_path, sr_in, session):
    seconds, amp = 2.0, 0.5
    path = write_fixture(tmp_path / "tone.wav", sine(1000.0, sr_in, seconds, amp, 2), sr_in, subtype="FLOAT")
    audio = load_audio(path, session)
    assert audio.sample_rate == session
    assert audio.original_sample_rate == sr_in
    assert audio.original_frames == round(seconds * sr_in)
    assert abs(audio.frames - round(seconds * session)) <= 1
    assert audio.duration == pytest.approx(seconds, abs=2 / session)
    assert audio.is_stereo and audio.channels == 2
    for ch in audio.data:
        assert peak_frequency(ch, session) == pytest.approx(1000.0, abs=1.0)
        assert sine_amplitude_db(ch) == pytest.approx(20 * np.log10(amp), abs=0.1)


def test_same_rate_is_not_altered(tmp_path):
    data = np.random.default_rng(1).uniform(-1, 1, (1, 1000)).astype(np.float32)
    path = write_fixture(tmp_path / "x.wav", data, 44100, subtype="FLOAT")
    audio = load_audio(path)
    np.testing.assert_array_equal(audio.data, data)
    assert audio.name == "x" and audio.path == path and not audio.silent


# --- formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ext,fmt,subtype,lossy",
    [
        ("flac", "FLAC", "PCM_24", False),
        ("aiff", "AIFF", "PCM_16", False),
        ("aif", "AIFF", "PCM_24", False),
        ("ogg", "OGG", "VORBIS", True),
        ("mp3", "MP3", "MPEG_LAYER_III", True),
    ],
)
def test_formats_readable(tmp_path, ext, fmt, subtype, lossy):
    if fmt not in sf.available_formats() or not sf.check_format(fmt, subtype):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}, so no {ext} fixture can be made offline")
    seconds, amp = 2.0, 0.5
    path = write_fixture(
        tmp_path / f"tone.{ext}", sine(1000.0, 44100, seconds, amp, 2), 44100, format=fmt, subtype=subtype
    )
    audio = load_audio(path)
    assert audio.data.dtype == np.float32 and audio.channels == 2
    assert audio.name == "tone"
    tol_s = 0.1 if lossy else 0.0  # encoder delay and padding
    assert abs(audio.duration - seconds) <= tol_s + 1 / 44100
    for ch in audio.data:
        assert peak_frequency(ch, 44100) == pytest.approx(1000.0, abs=1.0)
        assert sine_amplitude_db(ch) == pytest.approx(20 * np.log10(amp), abs=0.5 if lossy else 0.01)


def test_audio_extensions_cover_supported_formats():
    for ext in (".wav", ".flac", ".aiff", ".aif", ".ogg", ".mp3"):
        assert ext in AUDIO_EXTENSIONS


# --- rejected inputs --------------------------------------------------------------------------------


def test_three_channels_rejected(tmp_path):
    path = write_fixture(tmp_path / "surround.wav", np.zeros((3, 100)), 44100)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    msg = error_message(e)
    assert path in msg and "channels" in msg and "3" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_rejected(tmp_path, bad):
    data = np.zeros((1, 100), dtype=np.float32)
    data[0, 50] = bad
    path = write_fixture(tmp_path / "bass.wav", data, 44100, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert error_message(e) == f"{path}: contains NaN or infinite samples"


def test_zero_frame_file_rejected(tmp_path):
    path = write_fixture(tmp_path / "empty.wav", np.zeros((1, 0)), 44100)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    msg = error_message(e)
    assert path in msg and "empty" in msg


def test_zero_byte_file_rejected(tmp_path):
    path = tmp_path / "nothing.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    msg = error_message(e)
    assert str(path) in msg and "empty" in msg


def test_text_file_named_wav_rejected(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my mix notes\nline two\n")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    msg = error_message(e)
    assert msg.startswith(f"{path}: ") and "not a readable audio file" in msg


def test_missing_file_rejected(tmp_path):
    path = str(tmp_path / "ghost.wav")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert error_message(e) == f"{path}: file not found"


def test_directory_rejected_by_load_audio(tmp_path):
    folder = tmp_path / "stems.wav"
    folder.mkdir()
    with pytest.raises(AudioError) as e:
        load_audio(folder)
    msg = error_message(e)
    assert str(folder) in msg and "folder" in msg


def test_audio_error_is_value_error():
    assert issubclass(AudioError, ValueError)


def test_message_uses_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("in")
    write_fixture("in/three.wav", np.zeros((3, 10)), 44100)
    with pytest.raises(AudioError) as e:
        load_audio("in/three.wav")
    assert error_message(e).startswith("in/three.wav: ")


# --- sample rates -----------------------------------------------------------------------------------


def test_session_rate_validation(tmp_path):
    assert SUPPORTED_RATES == (44100, 48000)
    assert check_sample_rate(44100) == 44100
    assert check_sample_rate(np.int64(48000)) == 48000
    for bad in (22050, 96000, 0, None, "44100", True, 44100.5):
        with pytest.raises(AudioError, match="sample rate"):
            check_sample_rate(bad)
    path = write_fixture(tmp_path / "a.wav", np.zeros((1, 10)), 22050)
    assert load_audio(path, 48000).original_sample_rate == 22050
    with pytest.raises(AudioError, match="22050"):
        load_audio(path, 22050)


# --- silence ----------------------------------------------------------------------------------------


def test_silent_stems_flagged_and_kept(tmp_path):
    write_fixture(tmp_path / "a_zero.wav", np.zeros((1, 4410)), 44100, subtype="FLOAT")
    write_fixture(tmp_path / "b_hiss.wav", np.full((1, 4410), 1e-6), 44100, subtype="FLOAT")
    write_fixture(tmp_path / "c_quiet.wav", sine(amp=1e-4, seconds=0.1), 44100, subtype="FLOAT")
    write_fixture(tmp_path / "d_loud.wav", sine(seconds=0.1), 44100)
    stems = load_stems(tmp_path)
    assert stems.names == ["a_zero", "b_hiss", "c_quiet", "d_loud"]
    assert [s.silent for s in stems.stems] == [True, True, False, False]
    assert load_audio(tmp_path / "a_zero.wav").silent


# --- stem sets --------------------------------------------------------------------------------------


def test_lengths_padded_to_longest_and_reported(tmp_path):
    short = write_fixture(tmp_path / "short.wav", sine(seconds=1.0, amp=0.3), 44100, subtype="FLOAT")
    long_ = write_fixture(tmp_path / "long.wav", sine(seconds=2.5, channels=2), 44100, subtype="FLOAT")
    other = write_fixture(tmp_path / "other.wav", sine(sr=48000, seconds=2.5), 48000, subtype="FLOAT")
    stems = load_stems([short, long_, other])
    assert isinstance(stems, StemSet) and len(stems) == 3
    assert stems.sample_rate == 44100
    assert stems.frames == round(2.5 * 44100)
    assert stems.duration == pytest.approx(2.5)
    assert all(s.frames == stems.frames for s in stems.stems)
    assert stems.padded == [("short", pytest.approx(1.0))]
    assert stems.truncated == []
    s = stems.stems[0]
    assert s.channels == 1 and s.original_frames == 44100
    np.testing.assert_array_equal(s.data[:, 44100:], 0.0)
    np.testing.assert_allclose(s.data[:, :44100], sine(seconds=1.0, amp=0.3), atol=1e-7)
    assert stems.stems[1].is_stereo
    assert all(s.data.flags.c_contiguous and s.data.dtype == np.float32 for s in stems.stems)


def test_imposed_length_pads_and_truncates(tmp_path):
    a = write_fixture(tmp_path / "a.wav", np.full((1, 1000), 0.1), 44100, subtype="FLOAT")
    b = write_fixture(tmp_path / "b.wav", np.full((2, 3000), 0.2), 44100, subtype="FLOAT")
    stems = load_stems([a, b], frames=2000)
    assert stems.frames == 2000
    assert [s.frames for s in stems.stems] == [2000, 2000]
    assert stems.padded == [("a", pytest.approx(1000 / 44100))]
    assert stems.truncated == [("b", pytest.approx(3000 / 44100))]
    np.testing.assert_allclose(stems.stems[1].data, 0.2, atol=1e-7)
    with pytest.raises(AudioError):
        load_stems([a], frames=0)


def test_duplicate_names_disambiguated(tmp_path):
    paths = []
    for folder, name in (("a", "gtr"), ("b", "gtr"), ("c", "GTR"), ("d", "vox")):
        (tmp_path / folder).mkdir()
        paths.append(write_fixture(tmp_path / folder / f"{name}.wav", np.full((1, 10), 0.1), 44100))
    stems = load_stems(paths)
    assert stems.names == ["gtr", "gtr (2)", "GTR (3)", "vox"]
    assert [s.path for s in stems.stems] == paths
    assert unique_names(["gtr (2)", "gtr", "gtr"]) == ["gtr (2)", "gtr", "gtr (3)"]


def test_bad_stem_aborts_with_its_name(tmp_path):
    write_fixture(tmp_path / "good.wav", np.full((1, 10), 0.1), 44100)
    (tmp_path / "broken.wav").write_text("nope")
    with pytest.raises(AudioError, match="broken.wav"):
        load_stems(tmp_path)


# --- expand_paths -----------------------------------------------------------------------------------


def test_expand_paths_folder(tmp_path):
    d = tmp_path / "song"
    (d / "drums" / "deeper").mkdir(parents=True)
    audio = ["vox.wav", "Bass.FLAC", "keys.aiff", "drums/kick.wav"]
    ignored = ["drums/deeper/ride.wav", ".hidden.wav", "._vox.wav", "readme.txt", "session.json"]
    for rel in audio + ignored:
        (d / rel).write_bytes(b"x")
    single = tmp_path / "ref.mp3"
    single.write_bytes(b"x")
    out = expand_paths([d, single, d / "vox.wav"])
    assert out == [
        os.path.join(str(d), "Bass.FLAC"),
        os.path.join(str(d), "drums", "kick.wav"),
        os.path.join(str(d), "keys.aiff"),
        os.path.join(str(d), "vox.wav"),
        str(single),
    ]
    assert expand_paths(str(single)) == [str(single)]


def test_expand_paths_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(AudioError) as e:
        expand_paths([empty])
    assert str(empty) in error_message(e) and "no audio files" in str(e.value)
    with pytest.raises(AudioError) as e:
        expand_paths([tmp_path / "missing"])
    assert "not found" in error_message(e)
    with pytest.raises(AudioError):
        expand_paths([])


# --- to_stereo --------------------------------------------------------------------------------------


def test_to_stereo():
    mono = np.arange(5, dtype=np.float32)[None, :]
    st = to_stereo(mono)
    assert st.shape == (2, 5) and st.dtype == np.float32
    np.testing.assert_array_equal(st[0], st[1])
    np.testing.assert_array_equal(to_stereo(np.arange(5.0)), np.vstack([np.arange(5.0)] * 2))
    both = np.ones((2, 4))
    assert to_stereo(both) is both
    with pytest.raises(ValueError):
        to_stereo(np.zeros((3, 4)))


def test_audio_properties():
    a = Audio(np.zeros((2, 48000), np.float32), 48000, "x.wav", "x", 96000, 96000)
    assert (a.channels, a.frames, a.duration, a.is_stereo, a.silent) == (2, 48000, 1.0, True, False)
    assert a.original_duration == 1.0


# --- write_audio validation and atomicity -----------------------------------------------------------


def test_nan_data_rejected_no_file(tmp_path):
    path = tmp_path / "mix.wav"
    data = np.zeros((2, 100))
    data[1, 3] = np.nan
    with pytest.raises(AudioError) as e:
        write_audio(path, data, 44100)
    msg = error_message(e)
    assert str(path) in msg and "NaN" in msg
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs,data,needle",
    [
        ({"format": "mp3"}, np.zeros((2, 10)), "format"),
        ({"bits": "8"}, np.zeros((2, 10)), "bit depth"),
        ({}, np.zeros((10, 2)), "channels"),
        ({}, np.zeros((2, 10), dtype=np.int16), "floating-point"),
        ({"sample_rate": 0}, np.zeros((2, 10)), "sample rate"),
    ],
)
def test_write_rejects_bad_arguments(tmp_path, kwargs, data, needle):
    path = tmp_path / "mix.wav"
    kwargs = {"sample_rate": 44100, **kwargs}
    with pytest.raises(AudioError) as e:
        write_audio(path, data, **kwargs)
    msg = error_message(e)
    assert str(path) in msg and needle in msg
    assert os.listdir(tmp_path) == []


def test_unknown_extension_rejected(tmp_path):
    with pytest.raises(AudioError, match="format"):
        write_audio(tmp_path / "mix.ogg", np.zeros((2, 10)), 44100)
    write_audio(tmp_path / "mix.ogg", np.zeros((2, 10)), 44100, format="flac")
    assert sf.info(str(tmp_path / "mix.ogg")).format == "FLAC"


def test_missing_destination_folder(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        write_audio(tmp_path / "nope" / "mix.wav", np.zeros((2, 10)), 44100)


@pytest.fixture
def existing_mix(tmp_path):
    path = tmp_path / "mix.wav"
    write_audio(path, np.full((2, 1000), 0.25), 44100)
    return path, path.read_bytes()


def test_failure_mid_write_keeps_previous_file(tmp_path, monkeypatch, existing_mix):
    path, before = existing_mix
    real_write = sf.SoundFile.write

    def write_half_then_fail(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", write_half_then_fail)
    with pytest.raises(AudioError) as e:
        write_audio(path, np.full((2, 50000), -0.5), 44100)
    msg = error_message(e)
    assert str(path) in msg and f"disk full in {tmp_path}" in msg
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["mix.wav"]


def test_failure_opening_keeps_previous_file(tmp_path, monkeypatch, existing_mix):
    path, before = existing_mix

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot open")

    monkeypatch.setattr(sf, "SoundFile", refuse)
    with pytest.raises(AudioError, match="cannot open"):
        write_audio(path, np.zeros((2, 10)), 44100)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["mix.wav"]


def test_failure_replacing_keeps_previous_file(tmp_path, monkeypatch, existing_mix):
    path, before = existing_mix

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(audio_io.os, "replace", refuse)
    with pytest.raises(AudioError, match=f"permission denied: cannot write in {tmp_path}"):
        write_audio(path, np.zeros((2, 10)), 44100)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["mix.wav"]


def test_failed_write_creates_nothing(tmp_path, monkeypatch):
    def fail(self, data):
        raise OSError("boom")

    monkeypatch.setattr(sf.SoundFile, "write", fail)
    with pytest.raises(AudioError):
        write_audio(tmp_path / "new.flac", np.zeros((2, 10)), 44100)
    assert os.listdir(tmp_path) == []


def test_interrupt_cleans_up_and_propagates(tmp_path, monkeypatch):
    def interrupt(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(sf.SoundFile, "write", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_audio(tmp_path / "new.wav", np.zeros((2, 10)), 44100)
    assert os.listdir(tmp_path) == []
