"""The reverb: physical facts of its impulse response, and its two renderers agreeing."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

from core import reverb
from core.params import Param
from core.reverb import (
    RETURN,
    SEND,
    SEND_OFF_DB,
    ReverbKernel,
    StreamingReverb,
    impulse_response,
    impulse_response_np,
    ir_length,
    render_return,
    render_stream_return,
    send_bus,
    send_gain,
)

SR = 44100
AGREE_DB = -55.0  # error energy relative to the signal, as for the console


def settings(**values) -> np.ndarray:
    return RETURN.to_vector(values)


def t30(x: np.ndarray, sr: int = SR) -> float:
    """RT60 from the Schroeder backward integral: the -5..-35 dB slope extrapolated to 60 dB."""
    energy = np.cumsum((x.astype(np.float64) ** 2)[::-1])[::-1]
    edc = 10 * np.log10(energy / energy[0] + 1e-300)
    i5, i35 = int(np.argmax(edc <= -5)), int(np.argmax(edc <= -35))
    slope = np.polyfit(np.arange(i5, i35) / sr, edc[i5:i35], 1)[0]
    return -60.0 / slope


def octave(x: np.ndarray, centre: float, sr: int = SR) -> np.ndarray:
    edges = [centre / math.sqrt(2), centre * math.sqrt(2)]
    sos = scipy.signal.butter(4, edges, "bandpass", fs=sr, output="sos")
    return scipy.signal.sosfilt(sos, x)


def err_db(out, ref) -> float:
    ref = np.asarray(ref, np.float64)
    return 10 * np.log10(np.sum((np.asarray(out, np.float64) - ref) ** 2) / np.sum(ref**2))


def test_bursts(seconds: float, seed: int = 0) -> np.ndarray:
    """(2, T) float32 send bus: noise bursts, clicks and a tone, with silence between."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.3 * rng.standard_normal((2, n)) * (np.sin(2 * np.pi * 1.5 * t) > 0.3)
    x[:, rng.integers(0, n, 6)] += 1.0
    x[0] += 0.2 * np.sin(2 * np.pi * 220 * t)
    return x.astype(np.float32)


test_bursts.__test__ = False  # a helper, not a test


def stream(bus, params, blocks) -> np.ndarray:
    """Run the streaming reverb over ``bus`` with the given sequence of block sizes (cycled)."""
    rev = StreamingReverb(SR, params)
    out, done, i = [], 0, 0
    while done < bus.shape[-1]:
        n = min(blocks[i % len(blocks)], bus.shape[-1] - done)
        out.append(rev.process(bus[:, done:done + n]).copy())
        done, i = done + n, i + 1
    return np.concatenate(out, axis=1)


# --- the parameter table -------------------------------------------------------------------------------


def test_table_has_the_schema_shape_and_sends_default_off():
    assert all(isinstance(p, Param) for p in (*RETURN, SEND))
    assert RETURN.keys == ("reverb_rt60_s", "reverb_predelay_ms", "reverb_hf_ratio", "reverb_lowcut_hz",
                           "reverb_width", "reverb_return_db")
    for p in (*RETURN, SEND):
        assert p.min <= p.default <= p.max and p.scale in ("lin", "log")
        assert p.scale == "lin" or p.min > 0
        assert p.group == "reverb"
    assert SEND.default == SEND_OFF_DB == SEND.min
    # the round trip through unit space the model and refinement use
    u = np.random.default_rng(0).random((5, len(RETURN)))
    np.testing.assert_allclose(RETURN.to_unit(RETURN.from_unit(u)), u, atol=1e-12)


def test_send_gain_is_exactly_zero_at_the_floor_and_continuous_above():
    assert send_gain(SEND_OFF_DB) == 0.0 and send_gain(SEND_OFF_DB - 20) == 0.0
    assert send_gain(0.0) == 1.0
    assert send_gain(-6.0) == pytest.approx(10 ** (-6 / 20))
    db = np.linspace(SEND_OFF_DB, SEND.max, 2001)
    g = send_gain(db)
    assert np.all(np.diff(g) > 0)  # monotonic above the floor
    assert np.max(np.abs(np.diff(g))) < 0.01  # no step anywhere
    t = torch.tensor(db, dtype=torch.float64)
    np.testing.assert_allclose(send_gain(t).numpy(), g, rtol=1e-12, atol=0)


# --- the impulse response ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rt60", [0.2, 0.6, 1.5, 4.0, 8.0])
def test_rt60_of_the_impulse_response_within_10_percent(rt60):
    # undamped: the whole response decays at the setting
    h = impulse_response_np(settings(reverb_rt60_s=rt60, reverb_hf_ratio=1.0, reverb_lowcut_hz=20.0), SR)
    for ch in h:
        assert t30(ch) == pytest.approx(rt60, rel=0.10)
    # damped: the setting is the decay up to 1 kHz (measured in the 500 Hz octave)
    h = impulse_response_np(settings(reverb_rt60_s=rt60, reverb_hf_ratio=0.3), SR)
    assert t30(octave(h[0], 500.0)) == pytest.approx(rt60, rel=0.10)


def test_damping_shortens_the_high_band_decay():
    rt60 = 2.0
    ratios = {}
    for hf in (1.0, 0.5, 0.25):
        h = impulse_response_np(settings(reverb_rt60_s=rt60, reverb_hf_ratio=hf, reverb_lowcut_hz=20.0), SR)
        high, low = t30(octave(h[0], 8000.0)), t30(octave(h[0], 500.0))
        ratios[hf] = high / low
    assert ratios[1.0] == pytest.approx(1.0, rel=0.10)  # no damping: one decay
    assert ratios[0.5] == pytest.approx(0.5, rel=0.10)  # the 8 kHz octave decays in hf_ratio * RT60
    assert ratios[0.25] < 0.4 < ratios[0.5] < 0.6 < ratios[1.0]


@pytest.mark.parametrize("predelay_ms", [0.0, 0.5, 10.0, 12.5, 123.4, 200.0])
def test_predelay_is_exact_to_the_sample(predelay_ms):
    p = settings(reverb_predelay_ms=predelay_ms, reverb_rt60_s=0.3)
    expected = math.floor(predelay_ms * SR / 1000)
    h = impulse_response_np(p, SR)
    for ch in h:
        assert int(np.flatnonzero(ch)[0]) == expected
    ht = impulse_response(torch.tensor(p), SR)
    for ch in ht:
        assert int(torch.nonzero(ch)[0]) == expected
    assert h.shape[-1] == ir_length(0.3, predelay_ms, SR)
    # the streaming renderer: an impulse comes back at the pre-delay (FFT levels leave rounding noise
    # far below the response before it)
    bus = np.zeros((2, 20000), np.float32)
    bus[:, 0] = 1.0 / math.sqrt(2)  # mono input = unit impulse
    out = render_stream_return(bus, p, SR, block=256)
    loud = np.flatnonzero(np.abs(out[0]) > 1e-6 * np.abs(out[0]).max())
    assert int(loud[0]) == expected


def test_low_cut_removes_energy_below_it_only():
    def band_energy(h, lo, hi):
        spec = np.abs(np.fft.rfft(h[0])) ** 2
        f = np.fft.rfftfreq(h.shape[-1], 1 / SR)
        return spec[(f >= lo) & (f < hi)].sum()

    open_, cut = (impulse_response_np(settings(reverb_lowcut_hz=fc, reverb_hf_ratio=1.0), SR)
                  for fc in (20.0, 500.0))
    low_drop = 10 * np.log10(band_energy(cut, 30, 200) / band_energy(open_, 30, 200))
    high_drop = 10 * np.log10(band_energy(cut, 2000, 16000) / band_energy(open_, 2000, 16000))
    assert low_drop < -12.0
    assert abs(high_drop) < 0.5


def test_energy_is_normalised_without_damping_or_low_cut():
    for rt60 in (0.3, 2.0, 6.0):
        h = impulse_response_np(settings(reverb_rt60_s=rt60, reverb_hf_ratio=1.0, reverb_lowcut_hz=20.0), SR)
        energy = np.sum(h**2, axis=-1)
        np.testing.assert_allclose(energy, 1.0, rtol=0.15)


def test_width_zero_is_mono_and_width_one_decorrelated():
    for width, (lo, hi) in ((0.0, (1.0, 1.0)), (0.5, (0.5, 0.7)), (1.0, (-0.1, 0.1))):
        h = impulse_response_np(settings(reverb_width=width), SR)
        corr = np.corrcoef(h[0], h[1])[0, 1]
        assert lo - 1e-12 <= corr <= hi + 1e-12, (width, corr)
        if width == 0.0:
            np.testing.assert_array_equal(h[0], h[1])
            bus = test_bursts(0.5)
            out = render_stream_return(bus, settings(reverb_width=0.0), SR, block=512)
            np.testing.assert_array_equal(out[0], out[1])


def test_impulse_response_is_deterministic_and_the_same_in_torch():
    rng = np.random.default_rng(1)
    p = RETURN.from_unit(rng.random((3, len(RETURN))))
    h = impulse_response_np(p, SR)
    np.testing.assert_array_equal(h, impulse_response_np(p, SR))
    for i in range(3):  # batching does not change an item (beyond its own length, zeros)
        own = impulse_response_np(p[i], SR)
        np.testing.assert_array_equal(h[i, :, :own.shape[-1]], own)
        assert not np.any(h[i, :, own.shape[-1]:])
    ht = impulse_response(torch.tensor(p), SR).numpy()  # float64 torch: the same formula
    np.testing.assert_allclose(ht, h, rtol=0, atol=1e-12)


# --- the torch renderer ---------------------------------------------------------------------------------


def test_sends_off_leave_the_mix_bit_identical():
    rng = np.random.default_rng(2)
    track_out = torch.tensor(rng.standard_normal((2, 4, 2, 3000)), dtype=torch.float32)
    dry = track_out.sum(1)
    off = torch.full((2, 4), SEND_OFF_DB)
    params = torch.tensor(RETURN.from_unit(rng.random((2, len(RETURN)))), dtype=torch.float32)
    bus = send_bus(track_out, off)
    assert not torch.any(bus)
    wet = render_return(bus, params, SR)
    assert not torch.any(wet)
    assert torch.equal(dry + wet, dry)
    # one send open: only that track reaches the return
    sends = off.clone()
    sends[:, 2] = -6.0
    expected = (track_out[:, 2] * 10 ** (-6 / 20)).numpy()
    np.testing.assert_allclose(send_bus(track_out, sends).numpy(), expected, rtol=1e-6)
    # the streaming renderer: a silent bus gives exactly silence
    rev = StreamingReverb(SR, params[0].numpy())
    assert not np.any(rev.process(np.zeros((2, 5000), np.float32)))


def test_render_return_is_the_linear_convolution():
    bus = test_bursts(0.4)
    p = settings(reverb_rt60_s=0.5, reverb_return_db=-6.0)
    h = impulse_response_np(p, SR)
    mono = (bus[0].astype(np.float64) + bus[1]) / math.sqrt(2)
    ref = np.stack([scipy.signal.fftconvolve(mono, h[c])[:bus.shape[-1]] for c in range(2)]) * 10 ** (-6 / 20)
    with torch.no_grad():
        out = render_return(torch.tensor(bus, dtype=torch.float64)[None], torch.tensor(p)[None], SR)[0]
    assert err_db(out.numpy(), ref) < -200


def test_chunks_with_their_tails_overlap_added_equal_the_whole_render():
    bus = torch.tensor(test_bursts(0.6, seed=4), dtype=torch.float64)[None]
    p = torch.tensor(settings(reverb_rt60_s=0.3, reverb_predelay_ms=7.0))[None]
    whole = render_return(bus, p, SR)
    out = torch.zeros_like(whole)
    for start in range(0, bus.shape[-1], 5000):
        part = render_return(bus[..., start:start + 5000], p, SR, tail=True)
        end = min(out.shape[-1], start + part.shape[-1])
        out[..., start:end] += part[..., :end - start]
    assert err_db(out.numpy(), whole.numpy()) < -200
    assert render_return(bus, p, SR, tail=True).shape[-1] == bus.shape[-1] + ir_length(0.3, 7.0, SR) - 1


def test_gradients_reach_every_reverb_parameter_and_the_sends():
    rng = np.random.default_rng(3)
    track_out = torch.tensor(rng.standard_normal((2, 3, 2, 4000)), dtype=torch.float32)
    mid = RETURN.from_unit(np.full((2, len(RETURN)), 0.4))  # inside every range
    mid[:, RETURN.index("reverb_rt60_s")] = 0.3  # short, to keep the test quick
    params = torch.tensor(mid, dtype=torch.float32, requires_grad=True)
    sends = torch.tensor([[-12.0, SEND_OFF_DB, -3.0], [-20.0, -6.0, SEND_OFF_DB]], requires_grad=True)
    wet = render_return(send_bus(track_out, sends), params, SR)
    target = torch.tensor(rng.standard_normal(wet.shape), dtype=torch.float32)
    ((wet - 0.1 * target) ** 2).mean().backward()
    assert torch.isfinite(params.grad).all() and torch.isfinite(sends.grad).all()
    for key in RETURN.keys:
        assert torch.all(params.grad[:, RETURN.index(key)] != 0), key
    assert torch.all(sends.grad != 0)  # including sends at the floor: refinement can open them


# --- the streaming renderer -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_streaming_agrees_with_torch(seed):
    rng = np.random.default_rng(40 + seed)
    bus = test_bursts(1.0, seed)
    p = RETURN.from_unit(rng.random(len(RETURN)))
    if seed == 0:
        p[RETURN.index("reverb_predelay_ms")] = 0.3  # the direct-form head in use
    with torch.no_grad():
        ref = render_return(torch.from_numpy(bus)[None], torch.tensor(p, dtype=torch.float32)[None], SR)[0]
    for block in (64, 256, 1000):
        out = render_stream_return(bus, p, SR, block=block)
        assert err_db(out, ref.numpy()) < AGREE_DB
        # in fact the same response to float32 rounding (a gain error of 0.1 % would read -60 dB)
        assert err_db(out, ref.numpy()) < -100


def test_streaming_agrees_with_torch_at_48k():
    sr = 48000
    rng = np.random.default_rng(7)
    bus = test_bursts(0.8, 7)
    p = RETURN.from_unit(rng.random(len(RETURN)))
    with torch.no_grad():
        ref = render_return(torch.from_numpy(bus)[None], torch.tensor(p, dtype=torch.float32)[None], sr)[0]
    out = StreamingReverb(sr, p).process(bus)
    assert err_db(out, ref.numpy()) < AGREE_DB
    h = impulse_response_np(settings(reverb_rt60_s=1.0, reverb_hf_ratio=1.0, reverb_lowcut_hz=20.0), sr)
    assert t30(h[0], sr) == pytest.approx(1.0, rel=0.10)


def test_block_size_invariance():
    bus = test_bursts(1.2, seed=5)
    for pre in (0.2, 30.0):  # with and without the direct-form head
        p = settings(reverb_rt60_s=1.2, reverb_predelay_ms=pre)
        ref = stream(bus, p, [8192])
        for blocks in ([64], [256], [1000], [4096], [1, 7, 333, 20000, 64, 5000]):
            np.testing.assert_array_equal(stream(bus, p, blocks), ref)


def test_no_latency():
    p = settings(reverb_predelay_ms=0.0, reverb_rt60_s=0.5)
    bus = np.zeros((2, 300), np.float32)
    bus[:, 100] = 1.0 / math.sqrt(2)
    rev = StreamingReverb(SR, p)
    out = np.concatenate([rev.process(bus[:, i:i + 1]) for i in range(300)], axis=1)  # one sample a block
    h = impulse_response_np(p, SR)
    np.testing.assert_allclose(out[:, 100:], h[:, :200], rtol=1e-5, atol=1e-9)  # float32 input
    assert not np.any(out[:, :100])


def steady_sine(seconds: float, freq: float = 110.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.repeat((0.5 * np.sin(2 * np.pi * freq * t))[None], 2, axis=0).astype(np.float32)


def _edit_run(xfade: int | None, edit_at: int, bus, before, after, block=512):
    rev = StreamingReverb(SR, before)
    if xfade is not None:
        rev.xfade = xfade
    out = []
    for i in range(0, bus.shape[-1], block):
        if i == edit_at:
            rev.set_params(after)
        out.append(rev.process(bus[:, i:i + block]).copy())
    return np.concatenate(out, axis=1)


def test_edit_cross_fades_without_a_jump():
    bus = steady_sine(2.0)
    before = settings(reverb_rt60_s=0.4, reverb_width=1.0, reverb_predelay_ms=5.0)
    after = settings(reverb_rt60_s=0.7, reverb_width=0.3, reverb_predelay_ms=40.0, reverb_return_db=3.0)
    edit = 512 * 100  # 1.16 s: both responses are in their steady state
    out = _edit_run(None, edit, bus, before, after)
    old, new = stream(bus, before, [512]), stream(bus, after, [512])
    window = slice(edit - 2000, edit + 2000)
    natural = max(np.abs(np.diff(old[:, window])).max(), np.abs(np.diff(new[:, window])).max())
    jump = np.abs(np.diff(out[:, window])).max()
    assert jump <= 1.3 * natural
    # the same edit without a cross-fade clicks (so the check above can fail)
    hard = _edit_run(1, edit, bus, before, after)
    assert np.abs(np.diff(hard[:, window])).max() > 3 * natural
    # before the edit: the old response; after the cross-fade: exactly the new one, with its full tail
    np.testing.assert_array_equal(out[:, :edit], old[:, :edit])
    done = edit + int(reverb.XFADE_MS * SR / 1000) + 1
    np.testing.assert_array_equal(out[:, done:], new[:, done:])


def test_edit_to_a_response_that_needs_idle_levels_is_exact_after_the_fade():
    # a 100 ms pre-delay leaves the head and the two smallest levels idle (their transforms stop);
    # the edit to no pre-delay brings them back from the stored input
    bus = test_bursts(2.0, seed=11)
    before = settings(reverb_rt60_s=0.5, reverb_predelay_ms=100.0)
    after = settings(reverb_rt60_s=0.5, reverb_predelay_ms=0.0, reverb_width=0.4)
    edit = 1000 * 60 + 3 * 7
    rev = StreamingReverb(SR, before)
    out = [rev.process(bus[:, :edit]).copy()]
    assert rev.kernel.head is None and rev.kernel.spectra[0] is None and rev.kernel.spectra[1] is None
    rev.set_params(after)
    for i in range(edit, bus.shape[-1], 700):
        out.append(rev.process(bus[:, i:i + 700]).copy())
    out = np.concatenate(out, axis=1)
    done = edit + rev.xfade
    np.testing.assert_array_equal(out[:, done:], stream(bus, after, [700])[:, done:])


def test_return_level_change_ramps_without_rebuilding():
    bus = steady_sine(1.5)
    p = settings(reverb_rt60_s=0.3)
    rev = StreamingReverb(SR, p)
    kernel = rev.kernel
    out = [rev.process(bus[:, :44100]).copy()]
    rev.set_params({"reverb_return_db": -12.0})
    assert rev.kernel is kernel
    out.append(rev.process(bus[:, 44100:]))
    out = np.concatenate(out, axis=1)
    ref = stream(bus, p, [4096])
    np.testing.assert_allclose(out[:, 50000:], ref[:, 50000:] * 10 ** (-12 / 20), rtol=1e-9, atol=1e-12)
    assert np.abs(np.diff(out[:, 43000:46000])).max() <= 1.1 * np.abs(np.diff(ref[:, 43000:46000])).max()


def test_checkpoint_and_restore_reproduce_the_blocks():
    bus = test_bursts(1.5, seed=8)
    rev = StreamingReverb(SR, settings(reverb_rt60_s=0.8, reverb_predelay_ms=0.0))
    rev.process(bus[:, :30000])
    rev.set_params(settings(reverb_rt60_s=0.5, reverb_width=0.2))  # a cross-fade in progress
    rev.process(bus[:, 30000:30100])
    state = rev.checkpoint()
    first = rev.process(bus[:, 30100:50000]).copy()
    rev.set_params(settings(reverb_rt60_s=2.0))  # an edit that is then taken back
    rev.process(bus[:, 50000:51000])
    for _ in range(2):  # the checkpoint survives being restored
        rev.restore(state)
        np.testing.assert_array_equal(rev.process(bus[:, 30100:50000]), first)


def test_many_fast_edits_stay_bounded():
    bus = steady_sine(1.0)
    rev = StreamingReverb(SR, settings(reverb_rt60_s=0.3))
    rng = np.random.default_rng(9)
    for i in range(0, bus.shape[-1], 128):
        rev.set_params(settings(reverb_rt60_s=rng.uniform(0.2, 0.5), reverb_width=rng.random()))
        y = rev.process(bus[:, i:i + 128])
        assert len(rev.voices) <= reverb.MAX_VOICES and np.isfinite(y).all()


def test_bad_input_is_refused_with_a_clear_error():
    rev = StreamingReverb(SR)
    with pytest.raises(ValueError, match="send bus must be"):
        rev.process(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="48000 Hz"):
        rev.set_kernel(ReverbKernel.build(RETURN.defaults(), 48000))
    with pytest.raises(ValueError, match="reverb parameters"):
        impulse_response_np(np.zeros(3), SR)
