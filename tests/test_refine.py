"""Refinement: section choice, locks, determinism, cancel, and that it actually matches the reference."""

import numpy as np
import pytest
import torch

from core.audio_io import Audio
from core.params import MASTER, TRACK
from core.prepare import from_audio
from core.refine import RefineConfig, choose_sections, refine, stem_activity

from synthetic import make_reference, make_stems

SR = 44100


def _inputs(seconds=5.0, seed=0):
    stems = make_stems(SR, seconds, seed)
    auds = [Audio(x, SR, f"{n}.wav", n, SR, x.shape[-1]) for n, x in stems.items()]
    ref = make_reference(SR, seconds)
    return from_audio(auds, SR, Audio(ref, SR, "ref.wav", "ref", SR, ref.shape[-1]))


def test_sections_follow_activity():
    n = SR * 8
    stems = np.zeros((3, 2, n), np.float32)
    rng = np.random.default_rng(0)
    stems[:, :, SR * 5:] = 0.1 * rng.standard_normal((3, 2, n - SR * 5))  # only the last 3 s play
    stems[0, :, : SR * 5] = 0.1 * rng.standard_normal((2, SR * 5))  # one stem plays throughout
    score = stem_activity(stems, np.zeros(3, bool), SR)
    (a, b), = choose_sections(score, SR, 2.0, 1, n)
    assert a >= SR * 5 and b - a == 2 * SR
    # a region restricts the choice, even to a less active part
    (a, b), = choose_sections(score, SR, 2.0, 1, n, region=(1.0, 4.0))
    assert SR * 1 <= a and b <= SR * 4


def test_two_sections_do_not_overlap():
    score = np.ones(100)
    spans = choose_sections(score, SR, 2.0, 2, 100 * SR // 4)
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]


def test_refine_lowers_loss_keeps_locks_and_is_deterministic():
    inputs = _inputs()
    init = inputs.default_params()
    lock_t = np.zeros((len(inputs.names), len(TRACK)), bool)
    lock_t[:, TRACK.index("pan")] = True  # every pan locked
    lock_t[0, TRACK.index("gain_db")] = True
    lock_m = np.zeros(len(MASTER), bool)
    lock_m[MASTER.index("eq_high_shelf_gain_db")] = True
    cfg = RefineConfig(steps=12, seed=3, section_seconds=2.0)
    r1 = refine(inputs, init, cfg, lock_t, lock_m)
    r2 = refine(inputs, init, cfg, lock_t, lock_m)
    assert r1.loss_after < 0.7 * r1.loss_before
    np.testing.assert_array_equal(r1.params.tracks, r2.params.tracks)
    np.testing.assert_array_equal(r1.params.master, r2.params.master)
    p = r1.params
    np.testing.assert_array_equal(p.tracks[:, TRACK.index("pan")], init.tracks[:, TRACK.index("pan")])
    assert p.tracks[0, TRACK.index("gain_db")] == init.tracks[0, TRACK.index("gain_db")]
    assert p.master[MASTER.index("eq_high_shelf_gain_db")] == 0.0
    np.testing.assert_array_equal(p.tracks[:, TRACK.index("trim_db")], inputs.trim_db)  # trims stay
    assert np.any(p.tracks[1:, TRACK.index("gain_db")] != 0.0)  # unlocked faders moved
    assert np.all(p.tracks >= TRACK.mins) and np.all(p.tracks <= TRACK.maxs)


def test_refine_cancel_and_progress():
    inputs = _inputs(seconds=3.0)
    seen = []

    def callback(step, steps, loss):
        seen.append((step, steps, loss))
        return step == 3  # cancel after three steps

    r = refine(inputs, config=RefineConfig(steps=50, section_seconds=2.0), callback=callback)
    assert [s[0] for s in seen] == [1, 2, 3] and seen[0][1] == 50
    assert len(r.history) == 4 and r.loss_after <= r.loss_before


def test_refine_threads_are_restored():
    inputs = _inputs(seconds=2.0)
    before = torch.get_num_threads()
    refine(inputs, config=RefineConfig(steps=1, section_seconds=1.0, threads=1))
    assert torch.get_num_threads() == before


def test_refine_needs_reference():
    inputs = _inputs(seconds=2.0)
    inputs.reference = None
    with pytest.raises(ValueError, match="reference"):
        refine(inputs)


def test_dry_reference_keeps_every_send_off():
    """The reference has no reverb: refinement may move every control, sends included, and leaves each
    send below -40 dB (the prior's cost of an open send is not paid by the match), also when they
    start open."""
    inputs = _inputs()
    for start_db in (TRACK["send_db"].min, -20.0):
        init = inputs.default_params()
        init.tracks[:, TRACK.index("send_db")] = start_db
        r = refine(inputs, init, RefineConfig(steps=30, seed=1, section_seconds=2.0))
        sends = r.params.tracks[:, TRACK.index("send_db")]
        assert np.all(sends < -40.0), (start_db, sends)
        assert r.loss_after < r.loss_before
