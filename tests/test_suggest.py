"""The one pipeline (core.suggest): reference kind, same-song fit, locks and trims, progress and cancel."""

from __future__ import annotations

import numpy as np
import pytest
from test_samesong import SR, _inputs, _rough_mix

from core.params import MASTER, TRACK
from core.suggest import SuggestConfig, suggest

from synthetic import make_stems

GAIN = TRACK.index("gain_db")


@pytest.fixture(scope="module")
def same_song():
    stems = make_stems(SR, 8.0, seed=3, bpm=109.0)
    return _inputs(stems, _rough_mix(stems, seed=11))


@pytest.fixture(scope="module")
def other_song():
    stems = make_stems(SR, 8.0, seed=3, bpm=109.0)
    other = make_stems(SR, 8.0, seed=8, bpm=144.0)
    return _inputs(stems, _rough_mix(other, seed=2))


def test_same_song_reference_is_detected_fitted_and_reported(same_song):
    r = suggest(same_song, None, SuggestConfig(steps=0))
    assert r.reference_kind == "same-song" and r.detection["kind"] == "same-song"
    assert any("same song" in m for m in r.messages)
    # the fit read a balance from the reference: the faders left the equal-loudness start
    assert np.ptp(r.params.tracks[:, GAIN]) > 3.0
    np.testing.assert_array_equal(r.params.tracks[:, TRACK.index("trim_db")], same_song.trim_db)


def test_unrelated_reference_is_another_song_and_other_skips_detection(other_song):
    r = suggest(other_song, None, SuggestConfig(steps=0))
    assert r.reference_kind == "other" and r.detection["kind"] == "other"
    np.testing.assert_array_equal(r.params.tracks, other_song.default_params().tracks)  # nothing to fit
    forced = suggest(other_song, None, SuggestConfig(steps=0, reference_kind="other"))
    assert forced.reference_kind == "other" and forced.detection == {} and forced.messages == []
    with pytest.raises(ValueError, match="reference kind"):
        suggest(other_song, None, SuggestConfig(steps=0, reference_kind="rough"))


def test_locked_values_and_trims_survive_fit_and_refinement(same_song):
    current = same_song.default_params()
    current.tracks[0, GAIN] = -7.5
    current.master[MASTER.index("eq_band2_gain_db")] = 2.0
    lock_t = np.zeros((len(same_song.names), len(TRACK)), bool)
    lock_t[0, GAIN] = True
    lock_m = np.zeros(len(MASTER), bool)
    lock_m[MASTER.index("eq_band2_gain_db")] = True
    seen = []

    def progress(done, total, message):
        seen.append((done, total, message))
        return done >= 3  # cancel after three steps: the best so far comes back

    r = suggest(same_song, None, SuggestConfig(steps=20), current=current, lock_tracks=lock_t,
                lock_master=lock_m, progress=progress)
    assert r.params.tracks[0, GAIN] == -7.5 and r.start.tracks[0, GAIN] == -7.5
    assert r.params.master[MASTER.index("eq_band2_gain_db")] == 2.0
    np.testing.assert_array_equal(r.params.tracks[:, TRACK.index("trim_db")], same_song.trim_db)
    assert any("Comparing the reference" in m for _, _, m in seen)
    assert max(d for d, _, _ in seen) == 3 and r.refine is not None


@pytest.mark.slow
def test_loop_predict_stays_near_whole_song_predict():
    """Predict on a 3.2 s loop of the demo keeps every fader within 6 dB of the whole-song Predict."""
    from pathlib import Path

    from core.predict import load_default_model
    from core.prepare import load_inputs

    demo = Path(__file__).resolve().parent.parent / "assets" / "demo"
    inputs = load_inputs([str(demo / "stems")], str(demo / "reference.flac"))
    model = load_default_model()
    assert model is not None
    cfg = dict(steps=10, reference_kind="other")
    whole = suggest(inputs, model, SuggestConfig(**cfg)).params.tracks[:, GAIN]
    loop = suggest(inputs, model, SuggestConfig(region=(4.7, 7.9), **cfg)).params.tracks[:, GAIN]
    assert np.abs(loop - whole).max() <= 6.0
    assert loop.min() > -24.0  # no stem pulled out of the mix by a short loop


def test_reverb_controls_stay_put_unless_asked_and_the_reverb_is_not_run(other_song, monkeypatch):
    """By default Predict leaves the sends and the FX return as they are (the song model does not know
    the reverb yet), and refinement with them locked off never renders the reverb; with reverb=True they
    are free."""
    import core.reverb as reverb

    calls = []
    real = reverb.render_return
    monkeypatch.setattr(reverb, "render_return", lambda *a, **k: calls.append(1) or real(*a, **k))
    send = TRACK.index("send_db")
    ret = [MASTER.index(k) for k in ("reverb_rt60_s", "reverb_return_db")]
    current = other_song.default_params()
    current.master[ret[0]] = 2.5  # a user's return setting is kept as it is
    r = suggest(other_song, None, SuggestConfig(steps=3, reference_kind="other"), current=current)
    np.testing.assert_array_equal(r.params.tracks[:, send], current.tracks[:, send])
    np.testing.assert_array_equal(r.params.master[ret], current.master[ret])
    assert calls == []  # every send off and locked: no reverb rendered, no gradient asked of it

    cfg = SuggestConfig(steps=3, reference_kind="other", reverb=True)
    r = suggest(other_song, None, cfg, current=current)
    assert calls, "with reverb=True refinement renders the reverb (a send must be able to open)"


def test_predict_with_reverb_starts_the_sends_and_return_where_the_console_has_them(other_song):
    """The model has not learnt the reverb: with reverb=True its send and return outputs are not used;
    Predict without refinement leaves them as the console has them (the user's return setting too),
    and only the other controls come from the model."""
    from core.predict import load_default_model, predict

    model = load_default_model()
    assert model is not None
    reverb_t, reverb_m = TRACK.group_mask("reverb"), MASTER.group_mask("reverb")
    current = other_song.default_params()
    current.master[MASTER.index("reverb_rt60_s")] = 3.0
    current.tracks[0, TRACK.index("send_db")] = -12.0
    cfg = SuggestConfig(steps=0, reference_kind="other", reverb=True)
    r = suggest(other_song, model, cfg, current=current)
    np.testing.assert_array_equal(r.params.tracks[:, reverb_t], current.tracks[:, reverb_t])
    np.testing.assert_array_equal(r.params.master[reverb_m], current.master[reverb_m])
    raw = predict(other_song, model, None)
    keep = ~reverb_t & (np.arange(len(TRACK)) != TRACK.index("trim_db"))
    np.testing.assert_allclose(r.params.tracks[:, keep], raw.tracks[:, keep])
