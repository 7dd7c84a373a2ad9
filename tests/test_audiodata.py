"""The app's inputs are built by the same function as ``stylemix mix``'s (core.prepare.from_audio)."""

import numpy as np
import pytest
import soundfile as sf

from app.audiodata import build_inputs, load_files
from core.audio_io import Audio, AudioError
from core.paramfile import MixParams
from core.params import TRACK
from core.prepare import from_audio, trim_for
from core.session import Session, Stem

SR = 44100


def _session(tmp_path, missing: bool):
    rng = np.random.default_rng(3)
    stems = []
    for name, ch, sec in (("kick", 1, 1.0), ("pad", 2, 1.5), ("gone", 1, 2.0)):
        path = tmp_path / f"{name}.wav"
        if name != "gone" or not missing:
            sf.write(path, (0.1 * rng.standard_normal((int(sec * SR), ch))).astype(np.float32), SR)
        stems.append(Stem(name, str(path), stereo=ch == 2))
    params = MixParams.defaults([s.name for s in stems])
    params.tracks[:, TRACK.index("trim_db")] = [1.5, -2.0, 3.0]
    return Session(stems=stems, params=params, sample_rate=SR)


def test_build_inputs_keeps_a_missing_stem_as_a_silent_placeholder(tmp_path):
    session = _session(tmp_path, missing=True)
    audio = load_files([s.path for s in session.stems], SR)
    assert isinstance(audio[session.stems[2].path], AudioError)
    inputs = build_inputs(session, audio)
    assert inputs.names == ["kick", "pad", "gone"] and inputs.stems.shape == (3, 2, int(1.5 * SR))
    assert inputs.silent.tolist() == [False, False, True] and inputs.stereo.tolist() == [False, True, False]
    np.testing.assert_array_equal(inputs.trim_db, [1.5, -2.0, 3.0])  # the session's trims, not new ones
    assert not inputs.stems[2].any()
    np.testing.assert_array_equal(inputs.stems[0, 1, :SR], audio[session.stems[0].path].data[0])
    assert inputs.reference is None and inputs.reference_file is None


def test_build_inputs_equals_the_mix_commands_construction(tmp_path):
    session = _session(tmp_path, missing=False)
    session.reference = session.stems[1].path
    audio = load_files([s.path for s in session.stems], SR, references=[session.reference])
    inputs = build_inputs(session, audio)
    loaded = [audio[s.path] for s in session.stems]
    assert all(isinstance(a, Audio) for a in loaded)
    core = from_audio(loaded, SR, audio[session.reference])
    np.testing.assert_array_equal(inputs.stems, core.stems)
    np.testing.assert_array_equal(inputs.reference, core.reference)
    assert inputs.reference_file == session.reference and inputs.frames == int(2.0 * SR)
    # the command measures trims at import; the app keeps the session's
    assert core.trim_db[0] == pytest.approx(trim_for(loaded[0].data, SR, False))
    assert -20.0 < core.trim_db[0] < -5.0 and inputs.trim_db[0] == 1.5


def test_build_inputs_without_any_audio_is_one_second_of_silence(tmp_path):
    session = _session(tmp_path, missing=True)
    inputs = build_inputs(session, {})
    assert inputs.frames == SR and inputs.silent.all()
    assert build_inputs(Session(), {}) is None
