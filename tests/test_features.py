"""Physical facts about the AF features, losses, loudness and peak meters."""

import math

import numpy as np
import pytest
import torch

from core import features as F

SR = 44100


def sine(freq, seconds=1.0, amp=1.0, sr=SR, phase=0.0):
    t = np.arange(round(seconds * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t + phase)


def stereo(left, right):
    return torch.as_tensor(np.stack([left, right]))


@pytest.fixture(scope="module")
def noise_mix():
    rng = np.random.default_rng(0)
    return torch.as_tensor(rng.standard_normal((1, 2, SR)) * 0.1, dtype=torch.float32)


# --- AF features --------------------------------------------------------------------------------------


def test_width_and_imbalance_known_values():
    s = np.random.default_rng(1).standard_normal(SR // 2)
    z = np.zeros_like(s)
    assert abs(float(F.af_features(stereo(s, s), SR)["width"])) < 1e-6
    assert float(F.af_features(stereo(s, 0.5 * s), SR)["width"]) == pytest.approx(1 / 9, rel=1e-6)
    assert float(F.af_features(stereo(s, z), SR)["imbalance"]) == pytest.approx(-1.0, abs=1e-6)
    assert float(F.af_features(stereo(z, s), SR)["imbalance"]) == pytest.approx(1.0, abs=1e-6)
    assert abs(float(F.af_features(stereo(s, s), SR)["imbalance"])) < 1e-6


def test_shapes_and_unbatched_input(noise_mix):
    feats = F.af_features(noise_mix.repeat(3, 1, 1), SR)
    assert feats["rms"].shape == (3, 2) and feats["crest_db"].shape == (3, 2)
    assert feats["width"].shape == (3,) and feats["imbalance"].shape == (3,)
    assert feats["bark"].shape == (3, 2, F.BARK_BANDS)
    single = F.af_features(noise_mix[0], SR)
    assert torch.allclose(single["bark"], feats["bark"][:1], atol=1e-5)
    with pytest.raises(ValueError):
        F.af_features(noise_mix[:, :1], SR)


@pytest.mark.parametrize("amp", [1.0, 0.25])
def test_sine_rms_and_crest(amp):
    x = sine(441.0, amp=amp)  # 441 whole periods
    feats = F.af_features(stereo(x, x), SR)
    assert feats["rms"][0].numpy() == pytest.approx([amp / math.sqrt(2)] * 2, rel=1e-5)
    assert feats["crest_db"][0].numpy() == pytest.approx([10 * math.log10(2)] * 2, abs=0.05)


def test_noise_crest_factor():
    x = np.random.default_rng(2).standard_normal((2, SR))
    assert (F.af_features(torch.as_tensor(x), SR)["crest_db"].numpy() > 9.0).all()


def test_bark_filterbank_layout():
    fb = F.bark_filterbank(SR)
    freqs = np.fft.rfftfreq(F.BARK_N_FFT, 1 / SR)
    assert fb.shape == (24, F.BARK_N_FFT // 2 + 1)
    assert not fb[:, freqs > 20000.0].any() and not fb[:, freqs < 20.0].any()
    pts = F.bark_band_points_hz()
    assert pts[0] == 20.0 and pts[-1] == 20000.0 and np.all(np.diff(pts) > 0)
    # every band has weight, the first starts near 20 Hz, the last reaches nearly 20 kHz
    assert (fb.max(axis=1) > 0.9).all()
    covered = freqs[fb.sum(axis=0) > 0]
    assert covered.min() < 25.0 and covered.max() > 19900.0
    assert np.allclose(F.bark_band_centres_hz(), pts[1:-1])
    assert F.bark_filterbank(SR) is fb  # cached


def test_bark_sine_peaks_in_nearest_band():
    x = sine(1000.0, seconds=2.0)
    bark = F.af_features(stereo(x, x), SR)["bark"][0, 0].numpy()  # mid
    expected = int(np.argmin(np.abs(F.bark_band_centres_hz() - 1000.0)))
    assert int(np.argmax(bark)) == expected


def test_bark_short_signal_and_side_of_mono():
    x = sine(1000.0, seconds=0.1)  # shorter than the FFT
    bark = F.af_features(stereo(x, x), SR)["bark"][0]
    assert torch.isfinite(bark).all()
    assert (bark[1] < bark[0].max() - 10).all()  # mono: side is empty (log of eps)


def _stft_bark(x, sr):
    """The bark spectrum by torch.stft (the definition), for comparison."""
    b, _, t = x.shape
    ms = torch.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]], dim=1).reshape(b * 2, t)
    fb = torch.tensor(F.bark_filterbank(sr), dtype=x.dtype)
    window = torch.hann_window(F.BARK_N_FFT, dtype=x.dtype)
    spec = torch.stft(ms, F.BARK_N_FFT, F.BARK_HOP, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return torch.log(spec.abs().mean(dim=-1) @ fb.T + 1e-8).reshape(b, 2, -1)


@pytest.mark.parametrize("n", [100, 30000, 3 * F.BARK_HOP + 17])
def test_bark_spectrum_equals_stft_definition_with_gradient(n):
    x = torch.as_tensor(np.random.default_rng(n).standard_normal((2, 2, n)) * 0.1).requires_grad_()
    weights = torch.as_tensor(np.random.default_rng(1).standard_normal((2, 2, F.BARK_BANDS)))
    results = []
    for fn in (F.bark_spectrum, _stft_bark):
        out = fn(x, SR)
        (out * weights).sum().backward()
        results.append((out.detach(), x.grad.clone()))
        x.grad = None
    (out, grad), (ref, grad_ref) = results
    assert torch.allclose(out, ref, atol=1e-10)
    assert torch.allclose(grad, grad_ref, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("n_fft, hop", [(64, 16), (63, 20)])
def test_mean_magnitude_gradcheck(n_fft, hop):
    x = torch.as_tensor(np.random.default_rng(3).standard_normal((2, 150))).requires_grad_()
    window = torch.hann_window(n_fft, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: F._MeanMagnitude.apply(v, window, hop), (x,))


# --- AF loss ------------------------------------------------------------------------------------------


def test_af_loss_zero_for_identical(noise_mix):
    total, terms = F.af_loss(noise_mix, noise_mix, SR)
    assert float(total) == 0.0
    assert set(terms) == set(F.AF_WEIGHTS) == set(F.AF_LABELS)


def test_af_loss_terms_sum_and_grow_with_level(noise_mix):
    losses = []
    for gain_db in (1.0, 3.0, 6.0):
        total, terms = F.af_loss(noise_mix * 10 ** (gain_db / 20), noise_mix, SR)
        assert float(total) == pytest.approx(float(sum(terms.values())), rel=1e-6)
        losses.append(float(total))
    assert 0 < losses[0] < losses[1] < losses[2]


def test_af_loss_gradient(noise_mix):
    gain = torch.tensor(0.5, requires_grad=True)
    total, _ = F.af_loss(gain * noise_mix, noise_mix, SR)
    total.backward()
    assert torch.isfinite(gain.grad) and gain.grad < 0  # raising the gain lowers the loss


def test_af_loss_per_item_and_precomputed_reference(noise_mix):
    pred = torch.cat([noise_mix, noise_mix * 0.5])
    per_item, terms = F.af_loss(pred, noise_mix, SR, reduction="none")
    assert per_item.shape == (2,) and all(t.shape == (2,) for t in terms.values())
    assert abs(float(per_item[0])) < 1e-10 and float(per_item[1]) > 1e-3
    ref_feats = F.af_features(noise_mix, SR)
    mean, _ = F.af_loss(pred, ref_feats, SR)
    assert float(mean) == pytest.approx(float(per_item.mean()), rel=1e-6)


def test_af_features_np():
    x = np.stack([sine(441.0), 0.5 * sine(441.0)])
    feats = F.af_features_np(x, SR)
    assert isinstance(feats["width"], float) and feats["width"] == pytest.approx(1 / 9, rel=1e-6)
    assert feats["rms"].shape == (2,) and feats["bark"].shape == (2, 24)


# --- MRSTFT -------------------------------------------------------------------------------------------


def test_mrstft_loss(noise_mix):
    assert float(F.mrstft_loss(noise_mix, noise_mix)) == 0.0
    other = torch.roll(noise_mix, 1, dims=1) * 0.5
    assert float(F.mrstft_loss(other, noise_mix)) > 0.1
    short = noise_mix[..., :1000]
    assert float(F.mrstft_loss(short[0], short[0])) == 0.0


# --- loudness -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [44100, 48000])
def test_full_scale_997hz_sine_reads_minus_3_lufs(sr):
    x = sine(997.0, seconds=3.0, sr=sr)[None]
    assert F.integrated_lufs(x, sr) == pytest.approx(-3.01, abs=0.1)


def test_integrated_lufs_matches_pyloudnorm():
    import pyloudnorm

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5 * SR)) * 0.05
    x[:, 2 * SR : 3 * SR] *= 0.01  # a quiet stretch that the relative gate drops
    ref = pyloudnorm.Meter(SR).integrated_loudness(x.T)
    assert F.integrated_lufs(x, SR) == pytest.approx(ref, abs=0.02)


def test_silence_and_short_signals():
    assert F.integrated_lufs(np.zeros((2, SR)), SR) == -math.inf
    short = sine(997.0, seconds=0.2)[None]  # shorter than one gating block
    assert F.integrated_lufs(short, SR) == pytest.approx(-3.01, abs=0.2)
    y, gain = F.loudness_normalize(np.zeros((2, 100)), SR, -16.0)
    assert gain == 0.0 and not y.any()


@pytest.mark.parametrize("target", [-16.0, -48.0])
def test_loudness_normalize_hits_target(target):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 4 * SR)) * 0.1).astype(np.float32)
    x[:, SR : 2 * SR] *= 0.003
    y, gain_db = F.loudness_normalize(x, SR, target)
    assert y.dtype == np.float32
    assert F.integrated_lufs(y, SR) == pytest.approx(target, abs=0.05)
    assert y[0, 0] == pytest.approx(x[0, 0] * 10 ** (gain_db / 20), rel=1e-5)


def test_momentary_and_short_term():
    x = np.concatenate([sine(997.0, 4.0), np.zeros(4 * SR)])[None]
    m = F.momentary_lufs(x, SR)
    s = F.short_term_lufs(x, SR)
    assert len(m) == 1 + (8 * SR - round(0.4 * SR)) // round(0.1 * SR)
    assert len(s) == 1 + (8 * SR - 3 * SR) // round(0.1 * SR)
    assert m[:30] == pytest.approx(-3.01, abs=0.1) and s[:10] == pytest.approx(-3.01, abs=0.1)
    assert m[-1] == -120.0 and s[-1] == -120.0
    assert len(F.short_term_lufs(x[:, :SR], SR)) == 1


# --- peaks and activity -------------------------------------------------------------------------------


def test_true_peak_between_samples():
    amp = 0.5
    x = sine(SR / 4, seconds=2.0, amp=amp, phase=math.pi / 4)
    fade = np.minimum(1.0, np.arange(x.size) / 441.0)  # 10 ms fade-in, no start transient
    x = np.stack([x * fade * fade[::-1], np.zeros_like(x)])
    assert F.sample_peak_dbfs(x) == pytest.approx(20 * math.log10(amp) - 3.01, abs=0.05)
    assert F.true_peak_dbtp(x, SR) == pytest.approx(20 * math.log10(amp), abs=0.2)


def test_true_peak_chunking_is_seamless():
    rng = np.random.default_rng(5)
    from core import meter

    x = rng.standard_normal((2, 3 * meter._CHUNK + 123)) * 0.1
    import scipy.signal

    whole = np.abs(scipy.signal.resample_poly(x, 4, 1, axis=-1)).max()
    assert F.true_peak_dbtp(x, SR) == pytest.approx(20 * math.log10(whole), abs=1e-9)
    assert F.true_peak_dbtp(np.zeros((2, 10)), SR) == -math.inf


def test_db_helpers():
    assert F.db_to_amp(-6.0206) == pytest.approx(0.5, rel=1e-4)
    assert F.amp_to_db(0.5) == pytest.approx(-6.0206, abs=1e-4)
    assert F.amp_to_db(0.0) == -math.inf and F.amp_to_db(0.0, floor_db=-100.0) == -100.0


def test_activity_frames():
    x = np.concatenate([np.zeros(SR), sine(441.0, amp=0.5), np.zeros(SR // 2)])
    act = F.activity_frames(np.stack([x, x]), SR, 0.5)
    assert act.shape == (5,)
    assert act[:2] == pytest.approx([0, 0]) and act[4] == 0
    assert act[2:4] == pytest.approx([0.5 / math.sqrt(2)] * 2, rel=1e-3)
