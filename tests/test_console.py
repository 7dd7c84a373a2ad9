"""The torch console: physical facts of each stage, exactness of the EQ, gradients, batching, no latency."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

from core import console, reverb
from core.console import (
    EQ,
    RMS_MS,
    apply_eq,
    biquad_coeffs,
    biquad_sos,
    compressor,
    db_to_amp,
    eq_response,
    pan_gains,
    render,
    render_long,
    split_params,
)
from core.params import EQ_BAND_KEYS, EQ_BAND_TYPES, MASTER, TRACK

RATES = [44100, 48000]
PEAKING = [band for band, kind in zip(EQ_BAND_KEYS, EQ_BAND_TYPES, strict=True) if kind == "peaking"]
LOW_SHELF = EQ_BAND_KEYS[EQ_BAND_TYPES.index("low_shelf")]
HIGH_SHELF = EQ_BAND_KEYS[EQ_BAND_TYPES.index("high_shelf")]


# --- helpers ----------------------------------------------------------------------------------------------


def _vec(schema, **values) -> torch.Tensor:
    """Physical parameter vector (float32), defaults except ``values``."""
    return torch.tensor(schema.to_vector(values), dtype=torch.float32)


def _track_params(n: int, **values) -> torch.Tensor:
    return _vec(TRACK, **values).expand(1, n, -1).clone()


def _db(x) -> float:
    return 20 * math.log10(float(x))


def _energy_db(err, ref) -> float:
    err, ref = np.asarray(err, np.float64), np.asarray(ref, np.float64)
    return 10 * math.log10(np.sum(err**2) / np.sum(ref**2))


def _sine(freq, sr, seconds, amp=1.0, channels=2) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float().expand(channels, -1).clone()


def _steady_window(freq: int, sr: int, seconds: float) -> int:
    """Samples in the longest whole number of periods of ``freq`` that fits in ``seconds``."""
    period = sr // math.gcd(sr, int(freq))
    return max(1, int(seconds * sr) // period) * period


def _rms(x) -> float:
    return float(torch.sqrt(torch.mean(torch.as_tensor(x, dtype=torch.float64) ** 2)))


def _steady_gain_db(y, x, freq, sr, seconds=0.25) -> float:
    """Gain (dB) of ``x -> y`` measured on the last whole periods of a steady-state sine."""
    w = _steady_window(freq, sr, seconds)
    return _db(_rms(y[..., -w:]) / _rms(x[..., -w:]))


def _eq(**values) -> torch.Tensor:
    return _vec(EQ, **values)


# --- helpers of the module ----------------------------------------------------------------------------


def test_db_to_amp_and_split_params():
    assert db_to_amp(-20.0) == pytest.approx(0.1)
    assert float(db_to_amp(torch.tensor(6.0206))) == pytest.approx(2.0, rel=1e-4)
    p = TRACK.from_unit(torch.rand(3, 4, len(TRACK)))
    named = split_params(p, TRACK)
    assert set(named) == set(TRACK.keys)
    for key in TRACK.keys:
        assert torch.equal(named[key], p[..., TRACK.index(key)])
    with pytest.raises(ValueError):
        split_params(p[..., :-1], TRACK)


def test_rms_time_constant_is_exported():
    assert RMS_MS == 5.0


# --- trim, fader, pan -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("key", ["gain_db", "trim_db"])
def test_minus_6_db_halves_amplitude(sr, key):
    x = torch.randn(1, 1, 2, 2000, generator=torch.Generator().manual_seed(1)) * 0.1
    ref = render(x, _track_params(1), _vec(MASTER)[None], sr)
    out = render(x, _track_params(1, **{key: -6.0206}), _vec(MASTER)[None], sr)
    assert torch.allclose(ref, x[:, 0], atol=1e-6)  # default strip and bus: identity for a stereo stem
    assert _rms(out) / _rms(ref) == pytest.approx(0.5, abs=1e-3)
    assert torch.allclose(out, 0.5 * ref, atol=1e-6)


@pytest.mark.parametrize("sr", RATES)
def test_master_fader(sr):
    x = torch.randn(1, 2, 2, 1000, generator=torch.Generator().manual_seed(2)) * 0.1
    ref = render(x, _track_params(2), _vec(MASTER)[None], sr)
    out = render(x, _track_params(2), _vec(MASTER, gain_db=-6.0206)[None], sr)
    assert torch.allclose(out, 0.5 * ref, atol=1e-6)


def test_pan_law():
    mono, stereo = torch.tensor(False), torch.tensor(True)
    centre = pan_gains(torch.tensor(0.0), mono)
    assert torch.allclose(centre, torch.full((2,), math.sqrt(0.5)), atol=1e-7)
    assert _db(centre[0]) == pytest.approx(-3.0103, abs=1e-3)
    left = pan_gains(torch.tensor(-1.0), mono)
    assert float(left[0]) == pytest.approx(1.0, abs=1e-7) and abs(float(left[1])) < 1e-5
    right = pan_gains(torch.tensor(1.0), mono)
    assert abs(float(right[0])) < 1e-5 and float(right[1]) == pytest.approx(1.0, abs=1e-7)
    assert torch.equal(pan_gains(torch.tensor(0.0), stereo), torch.ones(2))
    # constant power for a mono stem anywhere
    pans = torch.linspace(-1, 1, 21)
    g = pan_gains(pans, torch.zeros(21, dtype=torch.bool))
    assert torch.allclose(g.square().sum(-1), torch.ones(21), atol=1e-6)


@pytest.mark.parametrize("sr", RATES)
def test_pan_in_the_console(sr):
    x = torch.randn(1, 1, 1, 1500, generator=torch.Generator().manual_seed(3)).expand(1, 1, 2, -1) * 0.1
    mp = _vec(MASTER)[None]
    mono = torch.zeros(1, 1, dtype=torch.bool)
    centre = render(x, _track_params(1), mp, sr, stereo=mono)
    assert torch.allclose(centre, x[:, 0] * math.sqrt(0.5), atol=1e-6)
    left = render(x, _track_params(1, pan=-1.0), mp, sr, stereo=mono)
    assert torch.allclose(left[:, 0], x[:, 0, 0], atol=1e-6)
    assert _rms(left[:, 1]) <= 1e-5 * _rms(left[:, 0])  # below -100 dB
    # a stereo stem at centre passes unchanged (balance, not pan)
    xs = torch.randn(1, 1, 2, 1500, generator=torch.Generator().manual_seed(4)) * 0.1
    assert torch.allclose(render(xs, _track_params(1), mp, sr), xs[:, 0], atol=1e-6)
    hard = render(xs, _track_params(1, pan=1.0), mp, sr)
    assert _rms(hard[:, 0]) < 1e-5 * _rms(hard[:, 1])


# --- EQ ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", RATES)
def test_peaking_bands_reach_their_gain_at_centre_on_audio(sr):
    for band in PEAKING:
        freq = int(TRACK[f"{band}_freq_hz"].default)
        x = _sine(freq, sr, 0.4)[None]  # (1, 2, T)
        for q in (1.0, 4.0):
            for gain in (12.0, 6.0, -6.0, -12.0):
                y = apply_eq(x, _eq(**{f"{band}_gain_db": gain, f"{band}_q": q})[None], sr)
                assert _steady_gain_db(y, x, freq, sr) == pytest.approx(gain, abs=0.1), (band, q, gain)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("gain", [12.0, 6.0, -6.0, -12.0])
def test_shelves_on_audio(sr, gain):
    # low shelf at 300 Hz: full gain deep inside the shelf (20 Hz), half the gain (dB) at the corner
    low = _eq(**{f"{LOW_SHELF}_gain_db": gain, f"{LOW_SHELF}_freq_hz": 300.0})[None]
    high = _eq(**{f"{HIGH_SHELF}_gain_db": gain, f"{HIGH_SHELF}_freq_hz": 2000.0})[None]
    for params, inside, corner in ((low, 20, 300), (high, 18000, 2000)):
        for freq, expected, tol in ((inside, gain, 0.2), (corner, gain / 2, 0.1)):
            x = _sine(freq, sr, 1.0 if freq < 100 else 0.3)[None]
            y = apply_eq(x, params, sr)
            measured = _steady_gain_db(y, x, freq, sr, seconds=0.5 if freq < 100 else 0.2)
            assert measured == pytest.approx(expected, abs=tol), (freq, gain)


@pytest.mark.parametrize("sr", RATES)
def test_eq_matches_causal_iir(sr):
    """apply_eq equals scipy.signal.sosfilt (zero state) on the same float64 sections."""
    rng = np.random.default_rng(sr)
    n = 6000
    x = rng.standard_normal((4, 2, n)) * 0.3
    x[:, :, 0] += 4.0  # an impulse at the start ...
    x[:, :, n // 2] += 4.0  # ... and in the middle
    params = EQ.from_unit(torch.from_numpy(rng.random((4, len(EQ)))))
    sos = biquad_sos(params, sr).numpy()  # (4, 6, 6)
    ref = np.stack([scipy.signal.sosfilt(s, xi) for s, xi in zip(sos, x, strict=True)])
    out32 = apply_eq(torch.from_numpy(x).float(), params.float(), sr).double().numpy()
    assert _energy_db(out32 - ref, ref) < -100  # float32 signal path
    out64 = apply_eq(torch.from_numpy(x), params, sr).numpy()
    assert _energy_db(out64 - ref, ref) < -200  # float64: the design is exact


@pytest.mark.parametrize("sr", RATES)
def test_eq_long_resonance_is_not_circular(sr):
    """The slowest impulse response the schema allows, on a signal longer than the FIR: still the IIR."""
    band = PEAKING[0]
    params = _eq(**{f"{band}_gain_db": 12.0, f"{band}_freq_hz": TRACK[f"{band}_freq_hz"].min,
                    f"{band}_q": TRACK[f"{band}_q"].max}).double()
    x = np.random.default_rng(0).standard_normal((1, 90000)) * 0.1
    x[:, -200:] += 3.0  # a burst at the very end must not ring into the start
    ref = scipy.signal.sosfilt(biquad_sos(params, sr).numpy(), x)
    out = apply_eq(torch.from_numpy(x), params, sr).numpy()
    assert _energy_db(out - ref, ref) < -100


def test_eq_response_matches_scipy_and_gradcheck():
    sr = 44100
    gen = torch.Generator().manual_seed(5)
    params = EQ.from_unit(torch.rand(3, len(EQ), dtype=torch.float64, generator=gen))
    resp = eq_response(params, sr, 513).numpy()
    for p, h in zip(params, resp, strict=True):
        _, ref = scipy.signal.sosfreqz(biquad_sos(p, sr).numpy(), worN=np.linspace(0, np.pi, 513))
        assert np.max(np.abs(h - ref)) < 1e-9 * np.max(np.abs(ref))
    b, a = biquad_coeffs(params, sr)
    assert b.dtype == a.dtype == torch.float64 and b.shape == a.shape == (3, len(EQ_BAND_KEYS), 3)
    assert torch.allclose(a[..., 0], torch.ones(()).double())
    p = params[:1].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: eq_response(v, sr, 9), (p,))


def test_eq_response_gradient_matches_reference_evaluation():
    p = EQ.from_unit(torch.rand(2, len(EQ), dtype=torch.float64, generator=torch.Generator().manual_seed(6)))
    b, a = biquad_coeffs(p, 48000)
    grads = []
    for fn in (console._cascade_response, console._cascade_response_torch):
        bb, aa = b.clone().requires_grad_(), a.clone().requires_grad_()
        h = fn(bb, aa, 257)
        (h.abs().log().sum() + h.real.sum()).backward()
        grads.append((h.detach(), bb.grad, aa.grad))
    for x, y in zip(*grads, strict=True):
        assert torch.allclose(x, y, rtol=1e-9, atol=1e-9)


# --- compressor -------------------------------------------------------------------------------------------


def _comp(x, sr, **kw):
    args = dict(threshold_db=-20.0, ratio=4.0, attack_ms=20.0, release_ms=20.0, knee_db=0.0, makeup_db=0.0)
    args.update(kw)
    return compressor(x, sample_rate=sr, **args)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("ratio", [2.0, 4.0, 10.0])
def test_compressor_static_curve(sr, ratio):
    level_in, threshold = -6.0, -20.0
    x = _sine(1000, sr, 0.6, amp=math.sqrt(2) * db_to_amp(level_in))  # RMS level = -6 dB
    y = _comp(x, sr, ratio=ratio, threshold_db=threshold)
    level_out = _db(_rms(y[..., -_steady_window(1000, sr, 0.2):]))
    assert level_out - threshold == pytest.approx((level_in - threshold) / ratio, abs=0.05)


@pytest.mark.parametrize("sr", RATES)
def test_compressor_soft_knee_at_threshold(sr):
    # at the threshold a knee of width W reduces by (1 - 1/R) * W / 8 dB
    ratio, knee, threshold = 4.0, 12.0, -20.0
    x = _sine(1000, sr, 0.6, amp=math.sqrt(2) * db_to_amp(threshold))
    y = _comp(x, sr, ratio=ratio, threshold_db=threshold, knee_db=knee)
    reduction = _steady_gain_db(y, x, 1000, sr, 0.2)
    assert reduction == pytest.approx(-(1 - 1 / ratio) * knee / 8, abs=0.1)


@pytest.mark.parametrize("sr", RATES)
def test_compressor_below_threshold_and_ratio_one_are_identity(sr):
    x = _sine(440, sr, 0.2, amp=math.sqrt(2) * db_to_amp(-30.0))
    y, gain = _comp(x, sr, threshold_db=-20.0, knee_db=0.0, return_gain=True)
    assert torch.max(torch.abs(y - x)) < 1e-6 and torch.all(gain <= 1.0)
    noise = torch.randn(3, 2, 3000, generator=torch.Generator().manual_seed(7))
    thresholds = torch.tensor([-60.0, -30.0, -10.0])
    y = _comp(noise, sr, ratio=1.0, threshold_db=thresholds, knee_db=6.0, attack_ms=1.0)
    assert torch.allclose(y, noise, atol=1e-6)


def test_static_curve_gradient_is_exact():
    """The fused detector-to-gain step has the derivative of its reference formula, knee 0 included."""
    gen = torch.Generator().manual_seed(12)
    env = (torch.rand(3, 40, dtype=torch.float64, generator=gen) * 0.3).requires_grad_()
    params = [torch.tensor(v, dtype=torch.float64).reshape(3, 1).requires_grad_()
              for v in ([-20.0, -10.0, -5.0], [2.0, 4.0, 1.5], [6.0, 0.0, 12.0])]
    assert torch.autograd.gradcheck(console._TargetGain.apply, (env, *params))

    def reference(e, t, r, k):
        return db_to_amp(console.gain_computer_db(10 * torch.log10(e + console.LEVEL_FLOOR), t, r, k))

    assert torch.allclose(console._TargetGain.apply(env, *params), reference(env, *params))


def _burst(sr):
    """0.1 s of a loud sine, then 0.3 s of the same sine 40 dB lower."""
    x = _sine(1000, sr, 0.4, amp=0.5)
    x[:, int(0.1 * sr):] *= 0.01
    return x


@pytest.mark.parametrize("sr", RATES)
def test_release_and_attack_shape_the_output(sr):
    x = _burst(sr)
    after = slice(int(0.1 * sr), int(0.15 * sr))
    fast, slow = (_comp(x, sr, threshold_db=-30.0, attack_ms=5.0, release_ms=r) for r in (20.0, 500.0))
    # a long release keeps the gain down after the burst
    assert _db(_rms(fast[:, after]) / _rms(slow[:, after])) > 3.0
    onset = slice(0, int(0.02 * sr))
    quick, lazy = (_comp(x, sr, threshold_db=-30.0, attack_ms=a, release_ms=100.0) for a in (1.0, 50.0))
    # a short attack reduces the gain sooner
    assert _db(_rms(lazy[:, onset]) / _rms(quick[:, onset])) > 3.0
    # gain reduction read-out
    _, gain = _comp(x, sr, threshold_db=-30.0, return_gain=True)
    assert gain.shape == (x.shape[-1],) and float(gain[0]) <= 1.0 and float(gain.min()) < db_to_amp(-10.0)


# --- the console: gradients, batching, masks, latency, chunks ---------------------------------------------


def _random_setting(n_tracks, seed, n_batch=1):
    gen = torch.Generator().manual_seed(seed)
    tp = TRACK.from_unit(torch.rand(n_batch, n_tracks, len(TRACK), generator=gen))
    mp = MASTER.from_unit(torch.rand(n_batch, len(MASTER), generator=gen))
    return tp, mp


def _active_setting(n_tracks):
    """Compressors working, EQ gains non-zero, pans off centre, trims non-zero."""
    track = dict(trim_db=3.0, comp_threshold_db=-30.0, comp_ratio=4.0, comp_attack_ms=5.0,
                 comp_release_ms=50.0, comp_knee_db=6.0, comp_makeup_db=2.0, gain_db=-3.0, pan=0.3,
                 send_db=-12.0)
    master = dict(comp_threshold_db=-24.0, comp_ratio=3.0, comp_attack_ms=5.0, comp_release_ms=50.0,
                  comp_knee_db=6.0, comp_makeup_db=1.0, gain_db=-1.0, reverb_rt60_s=0.4,
                  reverb_predelay_ms=8.0, reverb_hf_ratio=0.4, reverb_lowcut_hz=200.0, reverb_width=0.7,
                  reverb_return_db=-3.0)
    for i, band in enumerate(EQ_BAND_KEYS):
        track[f"{band}_gain_db"] = 4.0 if i % 2 else -3.0
        master[f"{band}_gain_db"] = -2.0 if i % 2 else 3.0
    pans = [-0.4 if i % 2 else 0.3 for i in range(n_tracks)]
    tp = torch.stack([_vec(TRACK, **{**track, "pan": pan}) for pan in pans])[None]
    return tp, _vec(MASTER, **master)[None]


def _modulated_noise(n_batch, n_tracks, sr, seconds, seed=0):
    """Noise whose level sweeps up and down over 30 dB: every compressor region and both ballistics."""
    gen = torch.Generator().manual_seed(seed)
    n = int(sr * seconds)
    t = torch.arange(n) / sr
    env = db_to_amp(-30.0 * torch.abs(torch.sin(2 * math.pi * 3.0 * t)))
    return torch.randn(n_batch, n_tracks, 2, n, generator=gen) * 0.5 * env


def test_every_parameter_gets_a_gradient():
    sr = 44100
    x = _modulated_noise(1, 2, sr, 0.3).requires_grad_()
    tp, mp = _active_setting(2)
    tp.requires_grad_()
    mp.requires_grad_()
    stereo = torch.tensor([[False, True]])
    mix = render(x, tp, mp, sr, stereo=stereo)
    target = torch.randn(mix.shape, generator=torch.Generator().manual_seed(1)) * 0.05
    (mix - target).square().mean().backward()
    for grad, schema in ((tp.grad[0], TRACK), (mp.grad[0], MASTER)):
        assert torch.all(torch.isfinite(grad))
        for key in schema.keys:
            g = grad[..., schema.index(key)]
            assert torch.all(g != 0), f"{schema.name} {key} has no gradient"
    assert torch.all(torch.isfinite(x.grad)) and x.grad.abs().sum() > 0


def test_hard_knee_gradients_are_finite():
    sr = 48000
    x = _modulated_noise(1, 2, sr, 0.2, seed=3)
    tp, mp = _active_setting(2)
    tp[..., TRACK.index("comp_knee_db")] = 0.0
    mp[..., MASTER.index("comp_knee_db")] = 0.0
    tp.requires_grad_()
    mp.requires_grad_()
    render(x, tp, mp, sr).square().mean().backward()
    assert torch.all(torch.isfinite(tp.grad)) and torch.all(torch.isfinite(mp.grad))
    assert torch.all(tp.grad[..., TRACK.index("comp_threshold_db")] != 0)


def test_permuting_tracks_permutes_outputs():
    sr = 44100
    x = _modulated_noise(2, 5, sr, 0.1, seed=4)
    tp, mp = _random_setting(5, seed=8, n_batch=2)
    stereo = torch.tensor([[True, False, True, False, False], [False, True, True, True, False]])
    perm = torch.tensor([3, 0, 4, 1, 2])
    mix, per_track = render(x, tp, mp, sr, stereo=stereo, return_tracks=True)
    mix_p, per_track_p = render(x[:, perm], tp[:, perm], mp, sr, stereo=stereo[:, perm], return_tracks=True)
    assert torch.allclose(mix_p, mix, rtol=1e-5, atol=1e-6)
    assert torch.allclose(per_track_p, per_track[:, perm], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n_tracks", [1, 64])
def test_track_counts_and_shapes(n_tracks):
    sr = 44100
    x = torch.randn(2, n_tracks, 2, 512, generator=torch.Generator().manual_seed(n_tracks)) * 0.1
    tp, mp = _random_setting(n_tracks, seed=n_tracks, n_batch=2)
    mix, per_track = render(x, tp, mp, sr, return_tracks=True)
    assert mix.shape == (2, 2, 512) and per_track.shape == (2, n_tracks, 2, 512)
    assert torch.all(torch.isfinite(mix))


def test_mask_excludes_a_track_exactly():
    sr = 44100
    x = _modulated_noise(1, 4, sr, 0.1, seed=5)
    tp, mp = _random_setting(4, seed=9)
    mask = torch.tensor([[True, False, True, True]])
    mix, per_track = render(x, tp, mp, sr, mask=mask, return_tracks=True)
    # whatever the masked track holds, the mix does not change, bit for bit
    x2 = x.clone()
    x2[:, 1] = torch.randn_like(x2[:, 1])
    tp2 = tp.clone()
    tp2[:, 1, TRACK.index("gain_db")] += 12.0
    assert torch.equal(render(x2, tp2, mp, sr, mask=mask), mix)
    assert torch.equal(per_track[:, 1], torch.zeros_like(per_track[:, 1]))
    # and it equals the console without that track
    keep = torch.tensor([0, 2, 3])
    assert torch.allclose(render(x[:, keep], tp[:, keep], mp, sr), mix, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sr", RATES)
def test_no_latency(sr):
    n = 4000
    x = torch.zeros(1, 2, 2, n)
    x[..., 0] = 0.5
    default = render(x, _track_params(2), _vec(MASTER)[None], sr)
    assert int(torch.argmax(default.abs().sum(1))) == 0
    assert torch.allclose(default[..., 0], torch.ones(1, 2))  # two stereo stems at unity
    tp, mp = _active_setting(2)
    active = render(x, tp, mp, sr)
    assert int(torch.argmax(active.abs().sum(1))) == 0
    # an impulse later in the stem comes out at that sample too, nothing before it
    y = torch.roll(x, 1000, dims=-1)
    shifted = render(y, tp, mp, sr).abs().sum(1)[0]
    assert int(torch.argmax(shifted)) == 1000
    assert float(shifted[:1000].max()) < 1e-6 * float(shifted[1000])  # FFT round-off only


@pytest.mark.parametrize("sr", RATES)
def test_render_long_matches_render(sr):
    chunk = 4096
    x = _modulated_noise(2, 3, sr, (5 * chunk + 123) / sr, seed=6)
    tp, mp = _random_setting(3, seed=10, n_batch=2)
    tp[0, 1] = _active_setting(1)[0][0, 0]  # one strip with a working compressor for sure
    stereo = torch.tensor([[True, False, True], [False, False, True]])
    mask = torch.tensor([[True, True, True], [True, False, True]])
    ref, ref_tracks = render(x, tp, mp, sr, stereo=stereo, mask=mask, return_tracks=True)
    out, out_tracks = render_long(x, tp, mp, sr, stereo=stereo, mask=mask, return_tracks=True, chunk=chunk)
    assert out.shape == ref.shape and out_tracks.shape == ref_tracks.shape
    assert _energy_db(out - ref, ref) < -80
    assert _energy_db(out_tracks - ref_tracks, ref_tracks) < -80
    # a numpy (e.g. memory-mapped) input and another chunk length give the same mix
    other = render_long(x.numpy(), tp, mp, sr, stereo=stereo, mask=mask, chunk=7000)
    assert _energy_db(other - out, out) < -100


def test_render_long_with_flat_eq_and_no_compression_is_exact():
    sr = 44100
    x = torch.randn(1, 2, 2, 10000, generator=torch.Generator().manual_seed(11)) * 0.1
    tp = _track_params(2, gain_db=-6.0, pan=0.5)
    mp = _vec(MASTER, gain_db=2.0)[None]
    assert torch.allclose(render_long(x, tp, mp, sr, chunk=3000), render(x, tp, mp, sr), atol=1e-6)


def test_rejects_bad_shapes():
    sr = 44100
    x = torch.zeros(1, 2, 2, 100)
    tp, mp = _random_setting(2, seed=0)
    with pytest.raises(ValueError):
        render(x[:, :, :1], tp, mp, sr)
    with pytest.raises(ValueError):
        render(x, tp[..., :-1], mp, sr)
    with pytest.raises(ValueError):
        render(x, tp, mp[..., :-1], sr)


# --- the fused CPU passes against the torch formulation ---------------------------------------------------


def _torch_gain(x, params, sr):
    """Mean-linked gain of ``x (..., C, T)`` by the torch formulation (torchlpc's one-pole, the static
    curve, torchcomp's ballistics); ``params``: threshold, ratio, attack, release, knee, each ``(...)``."""
    lead, n = x.shape[:-2], x.shape[-1]
    power = x.square().mean(dim=-2).reshape(-1, n)
    rows = [p.broadcast_to(lead).reshape(-1) for p in params]
    return console._detector_gain(power, *rows, sr)[0].reshape(*lead, n)


def _reference_render(tracks, tp, mp, sr, stereo):
    """The console by autograd's FFT filtering and the torch compressor (what render computes)."""
    named, m_named = split_params(tp, TRACK), split_params(mp, MASTER)
    b, a = biquad_coeffs(tp[..., console._TRACK_EQ], sr)
    fir = console._eq_fir(b, a, console.EQ_TAIL, gain=db_to_amp(named["trim_db"]))
    x = console._filter_fft(tracks, fir)
    gain = _torch_gain(x, [named[k] for k in console._DETECTOR_ARGS], sr)
    level = db_to_amp(named["comp_makeup_db"] + named["gain_db"])
    per_track = x * gain.unsqueeze(-2) * (pan_gains(named["pan"], stereo) * level[..., None])[..., None]
    bus = per_track.sum(1) + reverb.render_return(reverb.send_bus(per_track, named["send_db"]),
                                                  mp[..., console._MASTER_RETURN], sr)
    b, a = biquad_coeffs(mp[..., console._MASTER_EQ], sr)
    bus = console._filter_fft(bus, console._eq_fir(b, a, console.EQ_TAIL))
    m_gain = _torch_gain(bus, [m_named[k] for k in console._DETECTOR_ARGS], sr)
    m_level = db_to_amp(m_named["comp_makeup_db"] + m_named["gain_db"])
    return bus * (m_gain * m_level[:, None]).unsqueeze(-2)


def _comp_params(*rows):
    """threshold, ratio, attack, release, knee (float64 rows, with gradients)."""
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in rows]


def test_fused_compressor_matches_torch_formulation():
    sr = 44100
    x = _modulated_noise(1, 3, sr, 0.2, seed=13)[0].double().requires_grad_()  # (3, 2, T)
    params = _comp_params([-30.0, -12.0, -40.0], [4.0, 1.0, 8.0], [5.0, 1.0, 30.0], [50.0, 200.0, 20.0],
                          [6.0, 0.0, 12.0])
    weights = torch.randn(3, x.shape[-1], generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    fused = console._linked_gain(x, *params, sr)[0]
    ref = _torch_gain(x, params, sr)
    assert float(ref.detach().min()) < db_to_amp(-10.0)  # compressing hard
    assert torch.allclose(fused, ref, rtol=1e-9, atol=1e-12)
    grads = [torch.autograd.grad((g * weights).sum(), [x, *params]) for g in (fused, ref)]
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-12)


def test_fused_compressor_gradcheck():
    sr = 8000
    gen = torch.Generator().manual_seed(15)
    x = (torch.randn(2, 2, 48, dtype=torch.float64, generator=gen) * 0.5).requires_grad_()
    params = _comp_params([-30.0, -20.0], [4.0, 2.0], [1.0, 3.0], [20.0, 10.0], [6.0, 0.0])
    assert torch.autograd.gradcheck(lambda *a: console._linked_gain(*a, sr)[0], (x, *params))


def test_fused_compress_and_mix_matches_torch():
    sr = 44100
    y = (_modulated_noise(1, 5, sr, 0.1, seed=16)[0, :, 0]).double().requires_grad_()  # rows (5, T)
    chan = torch.tensor([[0, 1], [2, 2], [3, 4]])  # the second strip is mono (one row for both channels)
    group = torch.tensor([0, 0, 1])
    params = _comp_params([-25.0, -35.0, -20.0], [3.0, 6.0, 2.0], [2.0, 10.0, 5.0], [40.0, 100.0, 30.0],
                          [6.0, 3.0, 0.0])
    out_gain = torch.tensor([[0.5, 0.7], [1.2, 0.3], [0.9, 1.1]], dtype=torch.float64, requires_grad=True)
    out = console._compress_mix(y, chan, group, 2, dict(zip(console._DETECTOR_ARGS, params, strict=True)),
                                out_gain, sr)
    x = y[chan]  # (3, 2, T)
    per = x * _torch_gain(x, params, sr).unsqueeze(-2) * out_gain[..., None]
    ref = torch.zeros(2, 2, y.shape[-1], dtype=torch.float64).index_add(0, group, per)
    assert out.shape == ref.shape and torch.allclose(out, ref, rtol=1e-9, atol=1e-12)
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    grads = [torch.autograd.grad((o * weights).sum(), [y, out_gain, *params]) for o in (out, ref)]
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-12)


def test_row_filter_gradcheck_and_agreement():
    gen = torch.Generator().manual_seed(18)
    x = torch.randn(4, 40, dtype=torch.float64, generator=gen).requires_grad_()
    fir = torch.randn(2, 8, dtype=torch.float64, generator=gen).requires_grad_()
    owner = torch.tensor([0, 0, 1, 1])
    ref = console._filter_fft(x.reshape(2, 2, 40), fir).reshape(4, 40)
    out = console._RowFilter.apply(x, fir, owner, 48)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: console._RowFilter.apply(a, b, owner, 48), (x, fir))
    x = x.detach()
    spec = torch.fft.rfft(x, n=64)  # precomputed spectrum, larger grid
    assert torch.autograd.gradcheck(lambda b: console._RowFilter.apply(x, b, owner, 64, spec), (fir,))


def test_render_matches_torch_formulation_with_gradients():
    sr = 44100
    x = _modulated_noise(2, 3, sr, 0.15, seed=19).double()
    tp, mp = _random_setting(3, seed=20, n_batch=2)
    tp[:, 0] = _active_setting(1)[0][0, 0]
    mp[0] = _active_setting(1)[1][0]
    stereo = torch.tensor([[True, False, True], [False, True, True]])
    target = torch.randn(2, 2, x.shape[-1], generator=torch.Generator().manual_seed(21), dtype=torch.float64)
    results = []
    for fn in (render, _reference_render):
        t, m = tp.double().requires_grad_(), mp.double().requires_grad_()
        mix = fn(x, t, m, sr, stereo=stereo) if fn is render else fn(x, t, m, sr, stereo)
        (mix - 0.1 * target).square().mean().backward()
        results.append((mix.detach(), t.grad, m.grad))
    (mix, tg, mg), (ref, tg_ref, mg_ref) = results
    assert _energy_db(mix - ref, ref) < -200
    assert torch.allclose(tg, tg_ref, rtol=1e-6, atol=1e-12)
    assert torch.allclose(mg, mg_ref, rtol=1e-6, atol=1e-12)


def test_prepared_spectra_give_the_same_mix_and_gradients():
    sr = 44100
    x = _modulated_noise(2, 3, sr, 0.25, seed=22)
    x[:, 1, 1] = x[:, 1, 0]  # a mono stem in both items
    tp, mp = _random_setting(3, seed=23, n_batch=2)
    tp[:, 2] = _active_setting(1)[0][0, 0]
    stereo = torch.tensor([[True, False, True]] * 2)
    spectra = console.TrackSpectra(x)
    assert spectra.rows.shape == (2 * 3 * 2 - 2, x.shape[-1])  # the mono stem's channel once per item
    results = []
    for prepared in (None, spectra):
        t = tp.clone().requires_grad_()
        mix = render(x, t, mp, sr, stereo=stereo, spectra=prepared)
        mix.square().mean().backward()
        results.append((mix.detach(), t.grad))
    (ref, g_ref), (out, g) = results
    # same filter, other float32 rounding order (depends on the thread count): compare error energy
    assert 10 * torch.log10((out - ref).square().sum() / ref.square().sum()) < -120
    assert torch.linalg.norm(g - g_ref) <= 1e-4 * torch.linalg.norm(g_ref)
    # the spectra belong to that tensor: other (or modified) stems are rendered from their own samples
    other = x.clone()
    other[..., 100] += 1.0
    assert torch.equal(render(other, tp, mp, sr, spectra=spectra), render(other, tp, mp, sr))
    x[..., 100] += 1.0
    assert not spectra.matches(x)


# --- the FX return (reverb send) ---------------------------------------------------------------------------


def _send_setting(n_tracks, send_db, seed=30):
    tp, mp = _random_setting(n_tracks, seed)
    tp[..., TRACK.index("send_db")] = send_db
    return tp, mp


def test_sends_off_leave_the_mix_bit_identical():
    """A send at "off" is exactly no reverb: whatever the return's controls, and also when the reverb is
    rendered because a gradient is asked of its controls (its input is then exactly zero)."""
    sr = 44100
    x = _modulated_noise(1, 3, sr, 0.3, seed=31)
    tp, mp = _send_setting(3, TRACK["send_db"].min)
    mp_other = mp.clone()
    for key in reverb.RETURN.keys:
        mp_other[..., MASTER.index(key)] = MASTER[key].max
    dry = render(x, tp, mp, sr)
    assert torch.equal(render(x, tp, mp_other, sr), dry)
    t, m = tp.clone().requires_grad_(), mp_other.clone().requires_grad_()
    assert console.reverb_active(t, m) and not console.reverb_active(tp, mp)
    forced = render(x, t, m, sr)
    assert torch.equal(forced.detach(), dry)
    forced.square().sum().backward()
    assert torch.all(t.grad[..., TRACK.index("send_db")] != 0)  # a closed send can be opened
    with torch.no_grad():
        long = render_long(x, tp, mp, sr, chunk=5000)
        assert torch.equal(render_long(x, tp, mp_other, sr, chunk=5000), long)


def test_open_send_adds_the_reverb_of_the_post_fader_signal():
    """Send 0 dB, return 0 dB, neutral master bus: mix = dry mix + core.reverb of the tracks' outputs."""
    sr = 44100
    x = _modulated_noise(1, 3, sr, 0.5, seed=32)
    tp, mp = _send_setting(3, 0.0)
    neutral = torch.as_tensor(MASTER.defaults(), dtype=mp.dtype)[None]
    for key in reverb.RETURN.keys:
        neutral[..., MASTER.index(key)] = mp[..., MASTER.index(key)]
    neutral[..., MASTER.index("reverb_return_db")] = 0.0
    stereo = torch.tensor([[True, False, True]])
    with torch.no_grad():
        wet_mix, per_track = render(x, tp, neutral, sr, stereo=stereo, return_tracks=True)
        dry_tp = tp.clone()
        dry_tp[..., TRACK.index("send_db")] = TRACK["send_db"].min
        dry_mix = render(x, dry_tp, neutral, sr, stereo=stereo)
        expected = reverb.render_return(per_track.sum(1), neutral[..., console._MASTER_RETURN], sr)
    assert _energy_db(expected, dry_mix) > -30  # the reverb is clearly there
    assert _energy_db(wet_mix - dry_mix - expected, expected) < -100
    # chunked rendering rings across chunks and agrees
    long = render_long(x, tp, neutral, sr, stereo=stereo, chunk=3000)
    assert _energy_db(long - wet_mix, wet_mix) < -80
