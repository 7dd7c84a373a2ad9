"""Live playback without a sound card: the test plays the device and calls the audio callback itself.

The callback is driven deterministically (:func:`pump`): before each callback the render thread has
filled the ring (``Player.wait_idle``), and the device clock the player reads is a fake one that moves
one callback period per callback (:class:`DeviceClock`), so which blocks an edit re-renders does not
depend on how busy the machine is. One stress test (:func:`pump_realtime`, marked ``slow``) paces the
callback in real time against the render thread instead.
"""

import math
import time
import tracemalloc

import numpy as np
import pytest

import core.playback
from core.engine import StreamingConsole, render_stream
from core.features import integrated_lufs, momentary_lufs
from core.params import MASTER, TRACK
from core.playback import (
    AB_XFADE_S,
    PREROLL_S,
    SEEK_XFADE_S,
    NoAudioError,
    Player,
    check_audio,
)
from core.playback_meters import METER_FLOOR, RMS_S

SR = 44100


def _stems(n_tracks=4, seconds=1.5, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    stems = np.zeros((n_tracks, 2, n), np.float32)
    for i in range(n_tracks):
        f = 110.0 * (i + 1) * 1.01
        x = 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(n)
        x[rng.integers(0, n, 4)] += 0.8  # transients
        stems[i] = x if i % 2 == 0 else np.stack([x, np.roll(x, 37)])
    return stems, np.array([i % 2 == 1 for i in range(n_tracks)])


def _params(seed=0, n_tracks=4):
    rng = np.random.default_rng(seed)
    tp = TRACK.from_unit(rng.random((n_tracks, len(TRACK))))
    tp[:, TRACK.index("gain_db")] = rng.uniform(-12, 0, n_tracks)
    return tp, MASTER.from_unit(rng.random(len(MASTER)))


class DeviceClock:
    """Stands in for the ``time`` module inside ``core.playback``: the device timing it reads
    (``perf_counter``: when the last callback came) moves only when :func:`pump` says a callback period
    has passed. Waiting (``monotonic``, ``sleep``) stays real."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    fake = DeviceClock()
    monkeypatch.setattr(core.playback, "time", fake)
    return fake


def pump(player, n_blocks, frames=None):
    """Play ``n_blocks`` device callbacks, one period apart on the device clock; returns (2, n) float32.

    Before each callback the render thread has caught up (the ring is full and every request applied),
    so the output is a function of the calls the test made, never of the machine's load."""
    clock = core.playback.time
    assert isinstance(clock, DeviceClock)
    frames = player.block if frames is None else frames
    buf = np.zeros((frames, 2), np.float32)
    out = np.empty((n_blocks * frames, 2), np.float32)
    period = frames / player.sample_rate
    for k in range(n_blocks):
        assert player.wait_idle(), "the render thread did not fill the ring"
        player.callback(buf, frames, None, None)
        out[k * frames:(k + 1) * frames] = buf
        clock.advance(period)
    return out.T


def pump_realtime(player, n_blocks, frames=None):
    """Call the audio callback ``n_blocks`` times, one block period apart in real time, racing the
    render thread as a sound card does; returns (2, n) float32."""
    frames = player.block if frames is None else frames
    buf = np.zeros((frames, 2), np.float32)
    out = np.empty((n_blocks * frames, 2), np.float32)
    period = frames / player.sample_rate
    deadline = time.monotonic()
    for k in range(n_blocks):
        player.callback(buf, frames, None, None)
        out[k * frames:(k + 1) * frames] = buf
        deadline += period
        time.sleep(max(0.0, deadline - time.monotonic()))
    return out.T


@pytest.fixture
def song():
    stems, stereo = _stems()
    tp, mp = _params()
    return stems, stereo, tp, mp


def _player(stems, stereo, tp=None, mp=None, **kw):
    p = Player(stems, stereo, SR, tp, mp, audio=False, **kw)
    assert p.wait_idle()
    return p


def _offline(stems, stereo, tp, mp, blocks_before, block, changes, total_blocks):
    """Streaming console with ``changes`` (kwargs of set_params) applied after ``blocks_before`` blocks."""
    con = StreamingConsole(stems, stereo, SR, tp, mp)
    parts = [con.process(block).copy() for _ in range(blocks_before)]
    con.set_params(**changes)
    parts += [con.process(block).copy() for _ in range(total_blocks - blocks_before)]
    return np.concatenate(parts, axis=1)


# --- the basics ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [256, 512, 1024])
def test_plays_exactly_the_offline_render(song, block):
    stems, stereo, tp, mp = song
    with _player(stems, stereo, tp, mp, block=block) as p:
        p.play()
        n = math.ceil(stems.shape[-1] / block)
        out = pump(p, n)
        assert p.underruns == 0
        ref = render_stream(stems, stereo, tp, mp, SR)
        np.testing.assert_array_equal(out[:, :ref.shape[1]], ref)
        assert p.position == stems.shape[-1]  # the end of the song


def test_callback_frames_need_not_match_the_block(song):
    stems, stereo, tp, mp = song
    with _player(stems, stereo, tp, mp) as p:
        p.play()
        out = pump(p, 40, frames=300)
        ref = render_stream(stems, stereo, tp, mp, SR)
        np.testing.assert_array_equal(out, ref[:, :out.shape[1]])
        assert p.underruns == 0


def test_parameter_change_reaches_the_output_within_two_blocks(song):
    stems, stereo, tp, mp = song
    b = 512
    with _player(stems, stereo, tp, mp, block=b) as p:
        p.play()
        before = pump(p, 6)
        tp2 = tp.copy()
        tp2[:, TRACK.index("gain_db")] -= 30.0  # every fader down 30 dB
        tp2[2, TRACK.index("eq_band2_gain_db")] = 9.0  # and one strip re-filtered
        snap = p.set_params(tp2)
        assert p.wait_idle()  # the render thread has taken the unplayed blocks back
        after = pump(p, 20)
        assert p.played_version == snap.version
        ref = _offline(stems, stereo, tp, mp, 7, b, {"track_params": tp2}, 26)
        # block 7 (the one the device was about to take) is old; block 8 is the new mix, exactly
        np.testing.assert_array_equal(np.concatenate([before, after], axis=1), ref)
        unchanged = render_stream(stems, stereo, tp, mp, SR)[:, 6 * b:8 * b]
        np.testing.assert_array_equal(after[:, :b], unchanged[:, :b])  # 1st block: queued before the edit
        assert np.sqrt(np.mean(after[:, b:2 * b] ** 2)) < 0.5 * np.sqrt(np.mean(unchanged[:, b:] ** 2))


def test_master_and_pan_edits_during_playback_match_the_offline_console(song):
    stems, stereo, tp, mp = song
    b = 512
    with _player(stems, stereo, tp, mp, block=b) as p:
        p.play()
        before = pump(p, 10)
        tp2, mp2 = tp.copy(), mp.copy()
        tp2[:, TRACK.index("pan")] = -tp2[:, TRACK.index("pan")]
        mp2[MASTER.index("eq_band3_gain_db")] = -8.0
        p.set_params(tp2, mp2)
        assert p.wait_idle()
        after = pump(p, 12)
    ref = _offline(stems, stereo, tp, mp, 11, b, {"track_params": tp2, "master_params": mp2}, 22)
    np.testing.assert_array_equal(np.concatenate([before, after], axis=1), ref)


def test_single_control_edits_match_the_offline_console(song):
    stems, stereo, tp, mp = song
    b = 256
    with _player(stems, stereo, tp, mp, block=b) as p:
        p.play()
        before = pump(p, 10)
        p.set_value(2, "eq_band3_gain_db", 7.0)
        p.set_value(1, "gain_db", -20.0)
        snap = p.set_value(-1, "eq_band2_gain_db", -5.0)
        assert p.wait_idle()
        after = pump(p, 14)
        assert p.played_version == snap.version
    tp2, mp2 = tp.copy(), mp.copy()
    tp2[2, TRACK.index("eq_band3_gain_db")] = 7.0
    tp2[1, TRACK.index("gain_db")] = -20.0
    mp2[MASTER.index("eq_band2_gain_db")] = -5.0
    ref = _offline(stems, stereo, tp, mp, 11, b, {"track_params": tp2, "master_params": mp2}, 24)
    np.testing.assert_array_equal(np.concatenate([before, after], axis=1), ref)


def test_mute_and_solo(song):
    stems, stereo, tp, mp = song
    mute = np.array([False, True, False, False])
    solo = np.array([False, False, True, True])
    with _player(stems, stereo, tp, mp) as p:
        p.set_params(mute=mute, solo=solo)
        assert p.wait_idle()
        p.play()
        out = pump(p, 30)
    ref = render_stream(stems, stereo, tp, mp, SR, mute=mute, solo=solo)
    np.testing.assert_array_equal(out, ref[:, :out.shape[1]])
    dry = tp.copy()
    dry[:, TRACK.index("send_db")] = TRACK["send_db"].min  # sends off: no reverb tail either
    with _player(stems, stereo, dry, MASTER.defaults()) as p:  # a neutral master bus: no filter tails
        p.play()
        pump(p, 4)
        for t in range(4):
            p.set_mute(t, True)
        assert p.wait_idle()
        out = pump(p, 3)
        assert np.abs(out[:, :512]).max() > 0.01  # the block already queued
        assert np.abs(out[:, 512 + 64:]).max() < 1e-6  # silent from the 2nd block (after a 64-sample ramp)
        p.set_solo(0, True)
        assert p.snapshot.solo.tolist() == [True, False, False, False]


def test_pause_resumes_seamlessly_and_counts_no_underruns(song):
    stems, stereo, tp, mp = song
    with _player(stems, stereo, tp, mp) as p:
        p.play()
        a = pump(p, 5)
        p.pause()
        silent = pump(p, 3)
        assert not silent.any() and p.position == 5 * 512
        p.play()
        c = pump(p, 5)
        assert p.underruns == 0
    ref = render_stream(stems, stereo, tp, mp, SR)
    np.testing.assert_array_equal(np.concatenate([a, c], axis=1), ref[:, :10 * 512])


def test_end_of_song_stops_playback():
    stems, stereo = _stems(2, seconds=0.2)
    with _player(stems, stereo) as p:
        p.play()
        pump(p, 40)
        assert not p.playing
        assert p.position >= stems.shape[-1]
        p.play()  # from the end: starts again at the beginning
        assert p.position == 0


# --- seek and loop -----------------------------------------------------------------------------------------


def test_seek_prerolls_and_crossfades(song):
    stems, stereo, tp, mp = song
    b = 512
    target = 30000
    with _player(stems, stereo, tp, mp, block=b) as p:
        p.play()
        pump(p, 6)
        p.seek(target)
        assert p.position == target
        assert p.wait_idle()
        out = pump(p, 12)
        assert p.position == target + 11 * b
        assert p.underruns == 0
    # offline: the same console, from the initial state PREROLL_S before the target
    pre = round(PREROLL_S * SR)
    con = StreamingConsole(stems, stereo, SR, tp, mp)
    con.reset(target - pre)
    con.process(pre)
    ref = con.process(11 * b)
    fade = round(SEEK_XFADE_S * SR)
    new = out[:, b:]  # the first block after the seek is the one the device had already
    np.testing.assert_array_equal(new[:, fade:], ref[:, fade:])
    # the cross-fade starts from the old audio: no jump at the seek
    jump = np.abs(new[:, 0] - out[:, b - 1]).max()
    assert jump < 4 * np.abs(np.diff(out, axis=1)).mean() + 0.05


def test_loop_wraps_seamlessly_and_the_playhead_stays_inside():
    n = SR
    t = np.arange(n) / SR
    tone = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    stems = np.stack([np.stack([tone, tone])])
    start, end = 10000, 10000 + 6 * 512 + 37  # the phase at the end differs from the start
    with _player(stems, [False], block=512) as p:
        p.set_loop(start, end)
        p.seek(start)
        assert p.wait_idle()
        p.play()
        positions = []
        chunks = []
        for _ in range(25):
            chunks.append(pump(p, 1))
            positions.append(p.position)
        out = np.concatenate(chunks, axis=1)[0]
        assert p.underruns == 0
    assert all(start <= q <= end for q in positions)
    assert len(set(positions)) > 6  # it moves and wraps
    step = np.abs(np.diff(out))
    smooth = 2 * np.pi * 220 / SR * 0.5 * np.cos(np.pi / 4)  # largest step of the tone itself
    assert step.max() < 1.1 * smooth  # no click at any wrap
    # a hard cut would have jumped by this much:
    assert abs(tone[end] - tone[start]) > 10 * smooth
    # between wraps the loop plays the song's own samples
    loop_len = end - start
    second = out[loop_len + 400:2 * loop_len]
    np.testing.assert_allclose(second, tone[start + 400:end] * np.cos(np.pi / 4), atol=1e-6)


def test_loop_is_validated(song):
    stems, stereo, _, _ = song
    with _player(stems, stereo) as p:
        with pytest.raises(ValueError):
            p.set_loop(1000, 1100)
        p.set_loop(1000, 9000)
        assert p.loop == (1000, 9000) and p.match_region() == (1000, 9000)
        p.set_loop(None)
        assert p.loop is None and p.match_region() == (0, stems.shape[-1])


# --- A/B ------------------------------------------------------------------------------------------------


def test_ab_reference_is_loudness_matched_and_loops(song):
    stems, stereo, tp, mp = song
    rng = np.random.default_rng(3)
    ref_song = (0.05 * rng.standard_normal((2, 2 * SR))).astype(np.float32)  # quieter, other content
    start, end = 5120, 5120 + 40 * 512
    b = 512
    with _player(stems, stereo, tp, mp, block=b) as p:
        p.set_loop(start, end)
        p.seek(start)
        p.set_reference(ref_song)
        gain_db = p.update_reference_gain()
        assert p.wait_idle()
        p.play()
        a = pump(p, 40)  # exactly one loop of A
        p.set_ab("B")
        assert p.wait_idle()
        pump(p, 2)  # the block already queued, then the cross-fade
        b_out = pump(p, 40)  # one loop of B (it loops with the mix)
        assert p.ab == "B" and p.underruns == 0
    assert abs(integrated_lufs(a, SR) - integrated_lufs(b_out, SR)) <= 0.5
    gain = 10 ** (gain_db / 20)
    # B is the reference at the playhead: the loop rotated by the two blocks played meanwhile
    rot = (start + 42 * b - start) % (end - start)
    seg = ref_song[:, start:end]
    expect = np.roll(seg, -rot, axis=1) * gain
    body = slice(400, (end - start) - rot - 300)  # away from the wrap cross-fade
    np.testing.assert_allclose(b_out[:, body], expect[:, body], rtol=1e-5, atol=1e-6)


def test_reference_gain_follows_edits_in_the_background(song):
    stems, stereo, tp, _ = song
    mp = MASTER.defaults()  # no master compressor to hold the level
    ref_song = (0.05 * np.random.default_rng(4).standard_normal((2, 2 * SR))).astype(np.float32)
    with _player(stems, stereo, tp, mp) as p:
        p.set_reference(ref_song)
        first = _wait_for(lambda: p.reference_gain_db != 0.0)
        assert first is not None
        tp2 = tp.copy()
        tp2[:, TRACK.index("gain_db")] -= 6.0
        p.set_params(tp2)
        before = p.reference_gain_db
        second = _wait_for(lambda: p.reference_gain_db < before - 3.0)
        assert second is not None


def _wait_for(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return None


def test_ab_console_b_is_the_predicted_mix_after_a_click_free_crossfade(song):
    stems, stereo, tp, mp = song
    tp_b, mp_b = _params(9)
    b = 512
    with _player(stems, stereo, tp, mp, block=b) as p:
        p.set_b_params(tp_b, mp_b)
        assert p.wait_idle()
        p.play()
        a = pump(p, 8)
        assert p.toggle_ab() == "B"
        assert p.wait_idle()
        rest = pump(p, 20)
    ref_a = render_stream(stems, stereo, tp, mp, SR)
    ref_b = render_stream(stems, stereo, tp_b, mp_b, SR)
    out = np.concatenate([a, rest], axis=1)
    np.testing.assert_array_equal(out[:, :9 * b], ref_a[:, :9 * b])  # the queued block is still A
    xf = round(AB_XFADE_S * SR)
    np.testing.assert_array_equal(out[:, 9 * b + xf:], ref_b[:, 9 * b + xf:out.shape[1]])
    seg = out[:, 9 * b:9 * b + xf]
    w = (np.arange(1, xf + 1) / xf)
    np.testing.assert_allclose(seg, ref_a[:, 9 * b:9 * b + xf] * (1 - w) + ref_b[:, 9 * b:9 * b + xf] * w,
                               atol=1e-6)


# --- meters and robustness ----------------------------------------------------------------------------


def test_meters_follow_the_playhead():
    n = 4 * SR
    t = np.arange(n) / SR
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    stems = np.stack([np.stack([tone, tone]), np.stack([tone, tone])])
    tp = np.tile(TRACK.defaults(), (2, 1))
    tp[1, TRACK.index("comp_threshold_db")] = -30.0
    tp[1, TRACK.index("comp_ratio")] = 8.0
    with _player(stems, [False, False], tp) as p:
        m0 = p.meters()
        assert (m0.peak_db == -120).all()
        p.play()
        out = pump(p, 300)  # 3.5 s: past the 3 s short-term window
        m = p.meters()
    strip = 20 * np.log10(0.5 * np.cos(np.pi / 4))
    assert m.peak_db[0] == pytest.approx([strip, strip], abs=0.05)
    assert m.rms_db[0] == pytest.approx([strip - 3.01, strip - 3.01], abs=0.05)
    assert m.gain_reduction_db[0] == 0.0 and m.gain_reduction_db[1] > 10.0
    ref = momentary_lufs(out[:, -round(0.4 * SR) - 512:], SR)[-1]
    assert m.momentary_lufs[2] == pytest.approx(ref, abs=0.3)
    assert m.short_term_lufs[2] == pytest.approx(m.momentary_lufs[2], abs=0.5)
    assert m.position == p.position



def test_fx_return_meter_and_mute():
    """The FX return's meter: at the floor while every send is off; with a send open on a tone it reads
    the reverb's output of the block played (as the offline console computes it); muted, the return
    adds nothing (the output is the dry console's) and its meter falls to the floor."""
    n = 3 * SR
    t = np.arange(n) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stems = np.stack([np.stack([tone, tone])])
    tp = np.tile(TRACK.defaults(), (1, 1))
    mp = MASTER.defaults()
    b = 512
    with _player(stems, [False], tp, mp, block=b) as p:
        p.play()
        pump(p, 20)
        m = p.meters()
        assert (m.fx_peak_db == METER_FLOOR).all() and (m.fx_rms_db == METER_FLOOR).all()
        assert (m.peak_db[1] > -10).all()  # the master does play
    tp[:, TRACK.index("send_db")] = 0.0
    con = StreamingConsole(stems, [False], SR, tp, mp)  # the same console offline, its wet blocks kept
    wet = []
    for _ in range(80):
        con.process(b)
        wet.append(con.fx.wet.copy())
    with _player(stems, [False], tp, mp, block=b) as p:
        p.play()
        pump(p, 80)
        m = p.meters()
        w = wet[79]
        assert m.fx_peak_db == pytest.approx(20 * np.log10(np.abs(w).max(axis=1)), abs=1e-6)
        k = round(RMS_S * SR / b)
        ms = np.mean(np.concatenate(wet[80 - k:], axis=1) ** 2, axis=1)
        assert m.fx_rms_db == pytest.approx(10 * np.log10(ms), abs=1e-6)
        assert (m.fx_rms_db > -40).all()
        p.set_fx_mute(True)
        assert p.snapshot.fx_mute and p.wait_idle()
        out = pump(p, 40)
        m = p.meters()
        assert (m.fx_peak_db == METER_FLOOR).all() and (m.fx_rms_db == METER_FLOOR).all()
    dry_tp = tp.copy()
    dry_tp[:, TRACK.index("send_db")] = TRACK["send_db"].min
    dry = render_stream(stems, [False], dry_tp, mp, SR)
    # from the second block after the edit (the first was queued, then the return's ramp) the dry mix
    np.testing.assert_allclose(out[:, 2 * b:], dry[:, 82 * b:120 * b], rtol=0, atol=1e-6)

def test_underruns_are_counted():
    stems, stereo = _stems(2, seconds=0.2)
    p = Player(stems, stereo, SR, audio=False, render_thread=False)
    p.play()
    buf = np.ones((512, 2), np.float32)
    p.callback(buf, 512, None, None)
    assert p.underruns == 1 and not buf.any()
    p.pause()
    p.callback(buf, 512, None, None)
    assert p.underruns == 1
    p.close()


def test_callback_does_not_allocate_audio_buffers(song):
    stems, stereo, tp, mp = song
    with _player(stems, stereo, tp, mp) as p:
        p.play()
        buf = np.zeros((512, 2), np.float32)
        p.callback(buf, 512, None, None)
        tracemalloc.start()
        for _ in range(5):
            p.callback(buf, 512, None, None)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 512 * 2 * 4 // 2  # less than half a block of audio in all


def test_missing_portaudio_raises_one_clear_error(song, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if libportaudio could not be loaded
    reason = check_audio()
    assert reason is not None and "PortAudio" in reason and "\n" not in reason
    stems, stereo, tp, mp = song
    with Player(stems, stereo, SR, tp, mp) as p:
        with pytest.raises(NoAudioError, match="PortAudio library"):
            p.play()
        assert not p.playing
        p.set_params(tp)  # the console still takes edits


def test_no_audio_device_raises_one_clear_error(song):
    stems, stereo, tp, mp = song
    reason = check_audio()
    if reason is None:  # a real device: open a stream briefly
        with Player(stems, stereo, SR, tp, mp) as p:
            p.play()
            time.sleep(0.3)
            assert p.position > 0
        return
    assert "\n" not in reason and "export" in reason
    with Player(stems, stereo, SR, tp, mp) as p:
        with pytest.raises(NoAudioError) as info:
            p.play()
        assert "\n" not in str(info.value)
        assert not p.playing
    # everything else keeps working
    assert render_stream(stems, stereo, tp, mp, SR).shape == (2, stems.shape[-1])


@pytest.mark.slow
def test_random_edits_seeks_loops_and_ab_while_playing(monkeypatch):
    """Everything at once, in random order, while the device keeps asking for blocks in real time
    (the one test here that races the render thread against a real clock)."""
    monkeypatch.setattr(core.playback, "time", time)  # the real clock, not the test's device clock
    stems, stereo = _stems(6, seconds=2.0, seed=7)
    tp, mp = _params(0, 6)
    tp_b, mp_b = _params(5, 6)
    rng = np.random.default_rng(1)
    ref_song = (0.1 * rng.standard_normal((2, SR))).astype(np.float32)
    total = stems.shape[-1]
    with _player(stems, stereo, tp, mp) as p:
        p.play()
        outs = []
        for _ in range(60):
            r = rng.random()
            if r < 0.35:
                t2 = p.snapshot.track.copy()
                k = rng.integers(6)
                t2[k, TRACK.index("gain_db")] = rng.uniform(-20, 0)
                t2[k, TRACK.index("eq_band1_gain_db")] = rng.uniform(-12, 12)
                p.set_params(t2)
            elif r < 0.45:
                p.seek(int(rng.integers(0, total)))
            elif r < 0.55:
                a = int(rng.integers(0, total - 20000))
                p.set_loop(a, a + int(rng.integers(2000, 20000)))
            elif r < 0.6:
                p.set_loop(None)
            elif r < 0.7:
                p.toggle_ab()
            elif r < 0.8:
                if rng.random() < 0.5:
                    p.set_reference(ref_song)
                else:
                    p.set_b_params(tp_b, mp_b)
            elif r < 0.9:
                p.set_mute(int(rng.integers(6)), bool(rng.random() < 0.5))
            else:
                p.set_solo(int(rng.integers(6)), bool(rng.random() < 0.3))
            outs.append(pump_realtime(p, int(rng.integers(1, 4))))
            if not p.playing:
                p.play()
            assert 0 <= p.position <= total
        assert p.wait_idle()
    out = np.concatenate(outs, axis=1)
    assert np.isfinite(out).all() and np.abs(out).max() > 0
