"""The streaming console renders the same console as the torch console, at any block size."""

import numpy as np
import pytest
import torch

from core import console
from core.engine import (
    EngineState,
    Snapshot,
    StreamingConsole,
    as_stems,
    audible,
    frame_indices,
    render_stream,
)
from core.params import MASTER, RETURN, TRACK

SR = 44100
AGREE_DB = -55.0  # error energy relative to the signal, float32 output


def make_stems(n_tracks, seconds=1.0, sr=SR, seed=0, stereo=None):
    """Transients, noise and tones: (N, 2, T) float32 and (N,) stereo flags."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    stems = np.zeros((n_tracks, 2, n), np.float32)
    flags = rng.random(n_tracks) < 0.5 if stereo is None else np.broadcast_to(stereo, (n_tracks,))
    for i in range(n_tracks):
        kind = i % 4
        if kind == 0:  # clicks and decaying hits
            x = np.zeros((2, n))
            for start in rng.integers(0, n - 2000, size=8):
                x[:, start:start + 2000] += rng.uniform(0.3, 1.0) * np.exp(-np.arange(2000) / 300.0)
            x[:, rng.integers(0, n, size=5)] = 1.0
        elif kind == 1:  # noise bursts
            x = rng.standard_normal((2, n)) * (0.05 + 0.3 * (np.sin(2 * np.pi * 2.5 * t) > 0))
        elif kind == 2:  # tones
            f = rng.uniform(40, 4000)
            x = np.stack([np.sin(2 * np.pi * f * t), np.sin(2 * np.pi * f * 1.01 * t + 0.3)]) * 0.5
        else:  # a plucked tone with silence around it
            x = np.zeros((2, n))
            seg = np.sin(2 * np.pi * rng.uniform(80, 800) * t[: n // 2]) * np.exp(-t[: n // 2] * 6)
            x[:, n // 4:n // 4 + seg.size] = seg
        if not flags[i]:
            x = np.repeat(x[:1], 2, axis=0)
        stems[i] = x * rng.uniform(0.1, 1.0)
    return stems, np.asarray(flags, bool)


def torch_mix(stems, stereo, tp, mp, sr=SR, mask=None):
    with torch.no_grad():
        out = console.render(
            torch.from_numpy(stems)[None], torch.from_numpy(tp).float()[None],
            torch.from_numpy(np.asarray(mp)).float()[None], sr,
            stereo=torch.from_numpy(stereo)[None],
            mask=None if mask is None else torch.from_numpy(np.asarray(mask))[None],
        )
    return out[0].numpy()


def err_db(out, ref):
    return 10 * np.log10(np.sum((out.astype(np.float64) - ref) ** 2) / np.sum(ref.astype(np.float64) ** 2))


def random_params(rng, n_tracks):
    return TRACK.from_unit(rng.random((n_tracks, len(TRACK)))), MASTER.from_unit(rng.random(len(MASTER)))


# --- agreement with the torch console -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_parameters_agree_with_torch_console(seed):
    rng = np.random.default_rng(100 + seed)
    stems, stereo = make_stems(4, seconds=1.0, seed=seed)
    tp, mp = random_params(rng, 4)
    ref = torch_mix(stems, stereo, tp, mp)
    out = render_stream(stems, stereo, tp, mp, SR, threads=1)
    assert out.shape == ref.shape and out.dtype == np.float32
    assert err_db(out, ref) <= AGREE_DB


def test_agrees_at_48k_with_threads():
    rng = np.random.default_rng(7)
    stems, stereo = make_stems(6, seconds=0.75, sr=48000, seed=3)
    tp, mp = random_params(rng, 6)
    ref = torch_mix(stems, stereo, tp, mp, sr=48000)
    out = render_stream(stems, stereo, tp, mp, 48000, threads=2, block=2048)
    assert err_db(out, ref) <= AGREE_DB


_EFFECTS = {
    "trim": (["trim_db"], []),
    "track_eq": ([p.key for p in TRACK if p.group == "eq"], []),
    "track_comp": ([p.key for p in TRACK if p.group == "dynamics"], []),
    "fader": (["gain_db"], []),
    "pan": (["pan"], []),
    "master_eq": ([], [p.key for p in MASTER if p.group == "eq"]),
    "master_comp": ([], [p.key for p in MASTER if p.group == "dynamics"]),
    "master_fader": ([], ["gain_db"]),
    "reverb": (["send_db"], list(RETURN.keys)),
}


@pytest.mark.parametrize("effect", sorted(_EFFECTS))
def test_each_effect_alone_agrees(effect):
    rng = np.random.default_rng(1000 + sorted(_EFFECTS).index(effect))  # the same draw every run
    stems, stereo = make_stems(4, seconds=0.75, seed=11)
    track_keys, master_keys = _EFFECTS[effect]
    tp = np.tile(TRACK.defaults(), (4, 1))
    mp = MASTER.defaults()
    rand_t, rand_m = random_params(rng, 4)
    for k in track_keys:
        tp[:, TRACK.index(k)] = rand_t[:, TRACK.index(k)]
    for k in master_keys:
        mp[MASTER.index(k)] = rand_m[MASTER.index(k)]
    if effect == "reverb":  # every send open
        tp[:, TRACK.index("send_db")] = np.maximum(tp[:, TRACK.index("send_db")], -30.0)
    if effect in ("track_comp", "master_comp"):  # make sure the compressor works hard
        tp[:, TRACK.index("comp_threshold_db")] = np.minimum(tp[:, TRACK.index("comp_threshold_db")], -20)
        mp[MASTER.index("comp_threshold_db")] = min(mp[MASTER.index("comp_threshold_db")], -20)
    ref = torch_mix(stems, stereo, tp, mp)
    out = render_stream(stems, stereo, tp, mp, SR, threads=1)
    assert err_db(out, ref) <= AGREE_DB


@pytest.mark.parametrize("n_tracks", [1, 64])
def test_track_count_limits(n_tracks):
    rng = np.random.default_rng(n_tracks)
    stems, stereo = make_stems(n_tracks, seconds=0.3, seed=n_tracks)
    tp, mp = random_params(rng, n_tracks)
    tp[:, TRACK.index("gain_db")] -= 12  # 64 random faders sum loud; keep the master compressor sane
    ref = torch_mix(stems, stereo, tp, mp)
    out = render_stream(stems, stereo, tp, mp, SR)
    assert err_db(out, ref) <= AGREE_DB


def test_too_many_tracks_is_refused():
    with pytest.raises(ValueError, match="1 to 64"):
        StreamingConsole(np.zeros((65, 2, 100), np.float32), False, SR)


# --- streaming behaviour -----------------------------------------------------------------------------


def _stream(stems, stereo, tp, mp, block, total):
    con = StreamingConsole(stems, stereo, SR, tp, mp)
    parts, done = [], 0
    while done < total:
        n = min(block, total - done)
        parts.append(con.process(n).copy())
        done += n
    return np.concatenate(parts, axis=1)


def test_block_size_invariance():
    rng = np.random.default_rng(5)
    stems, stereo = make_stems(5, seconds=0.5, seed=5)
    tp, mp = random_params(rng, 5)
    total = stems.shape[-1] + 3000  # past the end: the filters ring out into silence
    ref = _stream(stems, stereo, tp, mp, 4096, total)
    for block in (64, 256, 1024, 1000, 1):
        if block == 1:
            out = _stream(stems[:, :, :2000], stereo, tp, mp, 1, 2000)
            np.testing.assert_array_equal(out, _stream(stems[:, :, :2000], stereo, tp, mp, 4096, 2000))
            continue
        np.testing.assert_array_equal(_stream(stems, stereo, tp, mp, block, total), ref)
    assert np.isfinite(ref).all()


def test_no_latency_and_unity_defaults():
    stems = np.zeros((2, 2, 1000), np.float32)
    stems[0, :, 0] = 0.5  # mono impulse at sample 0
    stems[1, 0, 10] = 0.25  # stereo, left only
    out = render_stream(stems, [False, True], np.tile(TRACK.defaults(), (2, 1)), MASTER.defaults(), SR)
    centre = np.cos(np.pi / 4)  # a mono stem is -3 dB each side at centre
    np.testing.assert_allclose(out[:, 0], [0.5 * centre, 0.5 * centre], rtol=1e-6)
    np.testing.assert_allclose(out[:, 10], [0.25, 0.0], rtol=1e-6, atol=1e-9)
    rest = np.ones(out.shape, bool)
    rest[:, 0] = rest[0, 10] = False
    assert np.abs(out[rest]).max() < 1e-12  # 0 dB bands are the identity up to rounding


def test_mute_and_solo_match_the_torch_mask():
    rng = np.random.default_rng(9)
    stems, stereo = make_stems(4, seconds=0.5, seed=9)
    tp, mp = random_params(rng, 4)
    mute = np.array([False, True, False, False])
    solo = np.array([False, False, True, True])
    assert audible(mute, solo).tolist() == [False, False, True, True]
    assert audible(mute, np.zeros(4, bool)).tolist() == [True, False, True, True]
    mask = audible(mute, solo)
    ref = torch_mix(stems, stereo, tp, mp, mask=mask)
    out = render_stream(stems, stereo, tp, mp, SR, mute=mute, solo=solo)
    assert err_db(out, ref) <= AGREE_DB
    # soloing a muted track: mute wins
    silent = render_stream(stems, stereo, tp, mp, SR, mute=[True] * 4, solo=[True] * 4)
    assert not np.any(silent)


def test_fader_pan_mute_and_master_changes_reuse_the_track_cache():
    rng = np.random.default_rng(12)
    stems, stereo = make_stems(4, seconds=0.4, seed=12)
    tp, mp = random_params(rng, 4)
    con = StreamingConsole(stems, stereo, SR, tp, mp)
    n = stems.shape[-1]
    cache = np.empty((4, 2, n), np.float32)
    start = con.state.copy()
    con.render_strips(frame_indices(0, n, n), cache)

    tp2, mp2 = tp.copy(), MASTER.from_unit(rng.random(len(MASTER)))
    tp2[:, TRACK.index("gain_db")] += rng.uniform(-6, 6, 4)
    tp2[:, TRACK.index("pan")] = rng.uniform(-1, 1, 4)
    snap = con.snapshot.replace(tp2, mp2, mute=[False, False, True, False])
    assert not con.snapshot.strip_changes(tp2).any()
    np.testing.assert_array_equal(snap.sos, con.snapshot.sos)  # no redesign either
    state = start.copy()
    out = np.empty((2, n), np.float32)
    con.mix(cache, n, out, snapshot=snap, state=state)
    ref = render_stream(stems, stereo, tp2, mp2, SR, mute=[False, False, True, False])
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_strip_edit_redesigns_only_that_track():
    rng = np.random.default_rng(13)
    stems, stereo = make_stems(3, seconds=0.1, seed=13)
    tp, mp = random_params(rng, 3)
    snap = Snapshot.build(tp, mp, SR, stereo)
    tp2 = tp.copy()
    tp2[1, TRACK.index("eq_band2_gain_db")] += 3.0
    assert snap.strip_changes(tp2).tolist() == [False, True, False]
    new = snap.replace(tp2)
    assert new.version == snap.version + 1
    np.testing.assert_array_equal(new.sos[[0, 2]], snap.sos[[0, 2]])
    assert not np.array_equal(new.sos[1], snap.sos[1])
    np.testing.assert_array_equal(new.sos, Snapshot.build(tp2, mp, SR, stereo).sos)
    with pytest.raises(ValueError):
        new.track[0, 0] = 1.0  # snapshots are immutable


def _same_snapshot(a, b):
    for name in ("track", "master", "pre_gain", "eq_gain", "sos", "comp", "out_gain", "m_sos", "m_comp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.m_eq_gain, a.m_gain) == (b.m_eq_gain, b.m_gain)


@pytest.mark.parametrize("items", [
    [(1, "gain_db", -7.5)],  # fader: output gains only
    [(2, "pan", -0.4)],
    [(0, "eq_band4_freq_hz", 2500.0)],  # that strip is filtered again
    [(1, "comp_ratio", 6.0), (1, "trim_db", -3.0)],
    [(-1, "eq_band1_gain_db", 4.0)],  # master EQ
    [(-1, "comp_threshold_db", -30.0), (-1, "gain_db", -2.0)],
])
def test_narrow_edit_designs_what_a_full_build_designs(items):
    rng = np.random.default_rng(21)
    _, stereo = make_stems(3, seconds=0.05, seed=21)
    tp, mp = random_params(rng, 3)
    snap = Snapshot.build(tp, mp, SR, stereo, mute=[False, True, False])
    new = snap.edit(items)
    tp2, mp2 = tp.copy(), mp.copy()
    for t, key, value in items:
        if t < 0:
            mp2[MASTER.index(key)] = value
        else:
            tp2[t, TRACK.index(key)] = value
    _same_snapshot(new, Snapshot.build(tp2, mp2, SR, stereo, mute=[False, True, False]))
    assert new.version == snap.version + 1
    strips = sorted({t for t, key, _ in items if t >= 0 and key not in ("gain_db", "pan")})
    assert np.flatnonzero(new.strips_since(snap)).tolist() == strips
    np.testing.assert_array_equal(new.strips_since(snap), snap.strip_changes(new.track))
    if not any(t < 0 and key.startswith("eq_") for t, key, _ in items):
        assert new.m_sos is snap.m_sos  # the master EQ is not designed again
    if not strips:
        assert new.sos is snap.sos
    with pytest.raises(ValueError):
        new.track[0, 0] = 1.0  # still immutable
    unrelated = Snapshot.build(tp, mp, SR, stereo)
    np.testing.assert_array_equal(new.strips_since(unrelated), unrelated.strip_changes(new.track))


def test_checkpoint_restore_reproduces_blocks():
    rng = np.random.default_rng(14)
    stems, stereo = make_stems(3, seconds=0.3, seed=14)
    tp, mp = random_params(rng, 3)
    con = StreamingConsole(stems, stereo, SR, tp, mp)
    con.process(3000)
    saved, pos, fx = con.state.copy(), con.position, con.fx.checkpoint()
    assert fx[1] is not None  # the sends are open: the reverb's state is part of it
    a = con.process(2048).copy()
    con.state.copy_from(saved)
    con.fx.restore(fx)
    con.position = pos
    np.testing.assert_array_equal(con.process(2048), a)
    # restoring one track leaves the others alone
    other = EngineState(3)
    other.copy_from(saved, tracks=np.array([1]), master=False)
    np.testing.assert_array_equal(other.tz[1], saved.tz[1])
    assert not other.tz[0].any() and other.tc[0, 1] == 1.0


def test_as_stems_accepts_lists_of_mono_and_stereo():
    mono = np.ones(10, np.float32)
    st = np.stack([np.ones(12), -np.ones(12)]).astype(np.float32)
    arr, flags = as_stems([mono, st])
    assert arr.shape == (2, 2, 12) and flags.tolist() == [False, True]
    np.testing.assert_array_equal(arr[0, 1, :10], mono)
    assert not arr[0, :, 10:].any()


def test_loop_crossfade_inputs():
    """The wrap cross-fade reads two song positions and blends them before the strip."""
    stems = np.zeros((1, 2, 100), np.float32)
    stems[0, 0] = np.arange(100)
    stems[0, 1] = stems[0, 0]
    con = StreamingConsole(stems, [False], SR)
    idx = np.array([10, 11, 12, 13], np.int64)
    tidx = np.array([50, 51, -1, -1], np.int64)
    tw = np.array([0.75, 0.25, 0.0, 0.0])
    cache = np.empty((1, 2, 4), np.float32)
    con.render_strips(idx, cache, tidx=tidx, tw=tw)
    np.testing.assert_allclose(cache[0, 0], [10 * 0.25 + 50 * 0.75, 11 * 0.75 + 51 * 0.25, 12, 13])


@pytest.mark.parametrize("sr", [44100, 48000, 22050])
def test_numpy_eq_design_equals_the_torch_console(sr):
    from core.console import EQ, biquad_coeffs
    from core.dsp import eq_coeffs

    rng = np.random.default_rng(sr)
    p = EQ.from_unit(rng.random((64, len(EQ))))
    b, a = eq_coeffs(p, sr)
    with torch.no_grad():
        tb, ta = biquad_coeffs(torch.from_numpy(p), sr)
    np.testing.assert_allclose(b, tb.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a, ta.numpy(), rtol=1e-12, atol=1e-14)


# --- the FX return ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_reverb_agrees_with_torch_console(seed):
    """Random reverb settings, every send open, the whole console random too: <= -55 dB."""
    rng = np.random.default_rng(200 + seed)
    stems, stereo = make_stems(4, seconds=1.0, seed=20 + seed)
    tp, mp = random_params(rng, 4)
    tp[:, TRACK.index("send_db")] = rng.uniform(-20, 6, 4)
    tp[:, TRACK.index("gain_db")] -= 6
    mp[MASTER.index("reverb_return_db")] = rng.uniform(-6, 6)
    ref = torch_mix(stems, stereo, tp, mp)
    dry = tp.copy()
    dry[:, TRACK.index("send_db")] = TRACK["send_db"].min
    assert err_db(torch_mix(stems, stereo, dry, mp), ref) > AGREE_DB + 10  # the reverb is part of the mix
    out = render_stream(stems, stereo, tp, mp, SR, threads=1, block=1000)
    assert err_db(out, ref) <= AGREE_DB


def test_sends_off_never_run_the_reverb():
    rng = np.random.default_rng(8)
    stems, stereo = make_stems(3, seconds=0.5, seed=8)
    tp, mp = random_params(rng, 3)
    tp[:, TRACK.index("send_db")] = TRACK["send_db"].min
    con = StreamingConsole(stems, stereo, SR, tp, mp)
    out = con.process(stems.shape[-1]).copy()
    assert con.fx.reverb is None and con.snapshot.reverb is None  # nothing built, nothing run
    mp2 = mp.copy()
    mp2[MASTER.index("reverb_rt60_s")] = 7.0
    np.testing.assert_array_equal(render_stream(stems, stereo, tp, mp2, SR, threads=1), out)


def test_reverb_adds_no_latency_to_the_dry_path():
    """An impulse through an open send: the output equals the dry console's until the pre-delay has
    passed (to the FFT levels' rounding, -120 dB; exactly at the impulse): the wet path starts there,
    and the dry one is not delayed."""
    stems = np.zeros((1, 2, 8000), np.float32)
    stems[0, :, 100] = 0.5
    tp = np.tile(TRACK.defaults(), (1, 1))
    mp = MASTER.defaults()
    mp[MASTER.index("reverb_predelay_ms")] = 50.0
    dry = render_stream(stems, [False], tp, mp, SR, block=256)
    tp[:, TRACK.index("send_db")] = 0.0
    wet = render_stream(stems, [False], tp, mp, SR, block=256)
    onset = 100 + int(50.0 * SR / 1000)
    np.testing.assert_array_equal(wet[:, :101], dry[:, :101])
    np.testing.assert_allclose(wet[:, :onset], dry[:, :onset], rtol=0, atol=1e-7)
    assert np.abs(dry[:, 100]).max() > 0.3
    assert np.abs(wet[:, onset:onset + 200] - dry[:, onset:onset + 200]).max() > 1e-3


def _tone_through_open_send() -> StreamingConsole:
    """A console of one mono 110 Hz tone (1 s) with its send wide open and the return at +6 dB."""
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    tp = np.tile(TRACK.defaults(), (1, 1))
    tp[:, TRACK.index("send_db")] = 0.0
    mp = MASTER.defaults()
    mp[MASTER.index("reverb_return_db")] = 6.0
    return StreamingConsole(np.stack([np.stack([tone, tone])]), [False], SR, tp, mp)


def test_reverb_edit_while_streaming_is_heard_without_a_click():
    """Decay, width and pre-delay changed between two blocks of a steady tone: the output changes, and
    its largest sample-to-sample step stays that of the steady signal (cross-fade, no jump)."""
    con = _tone_through_open_send()
    before = np.concatenate([con.process(512).copy() for _ in range(40)], axis=1)
    kernel = con.snapshot.reverb
    snap = con.snapshot.edit([(-1, "reverb_rt60_s", 0.3), (-1, "reverb_width", 0.0),
                              (-1, "reverb_predelay_ms", 120.0)])
    assert snap.reverb is not kernel and snap.reverb.same_response(snap.master[[MASTER.index(k)
                                                                                 for k in RETURN.keys]])
    con.snapshot = snap
    after = np.concatenate([con.process(512).copy() for _ in range(20)], axis=1)
    steady = np.abs(np.diff(before[:, -4096:], axis=1)).max()
    edge = np.abs(np.diff(np.concatenate([before[:, -64:], after[:, :2048]], axis=1), axis=1)).max()
    assert edge <= 1.2 * steady
    assert np.abs(after[0, 1024:] - after[1, 1024:]).max() < 1e-6  # width 0 after the cross-fade: L == R ...
    assert np.abs(before[0] - before[1]).max() > 1e-3  # ... and not before


def test_muted_return_mixes_the_dry_console_and_keeps_its_level():
    """Sends open, the FX return muted: the mix is bit-identical to the one with every send off; the
    return level keeps its value (only the gain into the master bus is 0)."""
    rng = np.random.default_rng(11)
    stems, stereo = make_stems(3, seconds=0.6, seed=11)
    tp, mp = random_params(rng, 3)
    tp[:, TRACK.index("send_db")] = 0.0
    mp[MASTER.index("reverb_return_db")] = 6.0
    dry = tp.copy()
    dry[:, TRACK.index("send_db")] = TRACK["send_db"].min
    ref = render_stream(stems, stereo, dry, mp, SR, threads=1, block=1000)
    muted = render_stream(stems, stereo, tp, mp, SR, fx_mute=True, threads=1, block=1000)
    np.testing.assert_array_equal(muted, ref)
    wet = render_stream(stems, stereo, tp, mp, SR, threads=1, block=1000)
    assert err_db(wet, ref) > -40  # unmuted, the reverb is part of the mix
    snap = Snapshot.build(tp, mp, SR, stereo, fx_mute=True)
    assert snap.return_gain == 0.0 and snap.master[MASTER.index("reverb_return_db")] == 6.0
    # every way of deriving a snapshot keeps the mute; replace() changes it
    assert snap.edit([(-1, "reverb_return_db", 3.0)]).return_gain == 0.0
    assert snap.edit([(0, "send_db", -6.0)]).fx_mute and snap.replace(mute=[True, False, False]).fx_mute
    unmuted = snap.replace(fx_mute=False)
    assert not unmuted.fx_mute and unmuted.return_gain == pytest.approx(10 ** (6 / 20))


def test_analysis_measures_the_mix_with_the_return_muted_as_heard():
    """The Analysis panel's measurement (core.measure.analyse) takes the return's mute: with the sends
    open and the return muted it measures the dry mix."""
    from types import SimpleNamespace

    from core import measure
    from core.paramfile import MixParams

    rng = np.random.default_rng(12)
    stems, stereo = make_stems(3, seconds=1.5, seed=12)
    tp, mp = random_params(rng, 3)
    tp[:, TRACK.index("send_db")] = 0.0
    mp[MASTER.index("reverb_return_db")] = 6.0
    dry = tp.copy()
    dry[:, TRACK.index("send_db")] = TRACK["send_db"].min
    inputs = SimpleNamespace(stems=stems, stereo=stereo, sample_rate=SR, frames=stems.shape[-1],
                             duration=stems.shape[-1] / SR, section=lambda a, b: stems[:, :, a:b])
    names = [f"t{i}" for i in range(3)]
    none = np.zeros(3, bool)
    muted = measure.analyse(inputs, MixParams(names, tp, mp), none, none, None, None, fx_mute=True)
    off = measure.analyse(inputs, MixParams(names, dry, mp), none, none, None, None)
    wet = measure.analyse(inputs, MixParams(names, tp, mp), none, none, None, None)
    assert muted.mix.lufs == off.mix.lufs and muted.mix.true_peak == off.mix.true_peak
    assert abs(wet.mix.lufs - off.mix.lufs) > 0.1  # unmuted, the reverb is measured with the mix


def test_return_mute_while_streaming_fades_out_without_a_click():
    """Muting the return between two blocks of a tone through an open send: no jump at the edit (the
    return's gain ramps like a return-level change), the reverb's output (``fx.wet``) is exactly 0
    after the ramp and the output is the dry console's; unmuting brings the ringing reverb back."""
    con = _tone_through_open_send()
    before = np.concatenate([con.process(512).copy() for _ in range(40)], axis=1)
    assert np.abs(con.fx.wet).max() > 0.05
    con.set_params(fx_mute=True)
    after = np.concatenate([con.process(512).copy() for _ in range(10)], axis=1)
    steady = np.abs(np.diff(before[:, -4096:], axis=1)).max()
    edge = np.abs(np.diff(np.concatenate([before[:, -64:], after[:, :2048]], axis=1), axis=1)).max()
    assert edge <= 1.2 * steady
    assert not con.fx.wet.any()
    dry_tp = con.snapshot.track.copy()
    dry_tp[:, TRACK.index("send_db")] = TRACK["send_db"].min
    dry = render_stream(con.stems, [False], dry_tp, con.snapshot.master.copy(), SR, threads=1)
    np.testing.assert_allclose(after[:, 1024:], dry[:, 40 * 512 + 1024:50 * 512], rtol=0, atol=1e-6)
    con.set_params(fx_mute=False)
    con.process(1024)
    assert np.abs(con.fx.wet).max() > 0.05  # the tail kept ringing while muted
