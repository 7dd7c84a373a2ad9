"""What refinement minimises: what is heard, plus where engineers work (docs/objective.md).

Three parts, all differentiable in the console's physical parameters:

* :class:`SongModel` predicts the *whole song's* long-term spectrum of the console's mix from each stem's
  long-term cross spectra (L, R, L·R*), the exact EQ magnitude responses, the pan and fader gains and a
  static model of each compressor (its curve applied to 50 ms frame levels of the stem). Tracks add in
  power (different instruments are uncorrelated over a song). It costs a few milliseconds per step, sees
  every second of every stem, and gives the match report's terms in the dB domain: 1/3-octave balance of
  mid, octave balance, width per range (side/mid). A band cannot hide behind a global statistic.
* the paper's AF terms and the crest factor on rendered sections (:class:`core.refine.Objective`): the
  compressors' real ballistics and the peaks are only visible in audio.
* :func:`prior`: a plausibility penalty, zero where engineers usually work and growing outside it (EQ
  within +-6 dB on tracks and +-3 dB on the bus, attack >= 3 ms and release >= 40 ms when a compressor
  compresses, faders within a few dB of the loudness-normalised start and never below -24 dB, nothing
  resting on a range limit, reverb sends closed unless the match pays for opening them), and a pull
  toward the model's prediction when there is one.

The reverb's FX return is heard in the rendered terms only: the song model leaves it out (a reverb's
long-term spectrum and width are not modelled yet), so sends open where the sections' AF and crest
terms gain more than the prior's cost of an open send.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from . import console
from .params import EQ_BAND_KEYS, MASTER, TRACK
from .report import OCTAVES, SCORED, WIDTH_FLOOR_DB, WIDTH_RANGES, band_matrix, cross_spectra

#: FFT length of the song model's spectra (5.4 Hz bins at 44.1 kHz) and the most frames it averages.
MODEL_FFT = 8192
MAX_FRAMES = 192
#: Frame length (s) of the compressor level model.
LEVEL_FRAME_S = 0.05
#: Soft floor of the side/mid ratio (power), the report's width floor: narrower is inaudible.
WIDTH_FLOOR = 10.0 ** (WIDTH_FLOOR_DB / 10.0)


@dataclass
class Weights:
    """Weights of the objective's terms (docs/objective.md gives the reasons)."""

    tonal: float = 1.5  # mean square 1/3-octave mid difference, dB^2
    octave: float = 1.0  # mean square octave difference, dB^2
    width: float = 0.5  # mean square side/mid difference per range, dB^2
    crest: float = 0.2  # square crest-factor difference on rendered sections, dB^2
    af: float = 20.0  # the paper's AF loss on rendered sections
    prior: float = 1.0  # the plausibility prior (``--prior``)
    toward_prediction: float = 4.0  # mean square unit-space distance to the prediction (scaled by prior)


_T_EQ, _M_EQ = console._TRACK_EQ, console._MASTER_EQ  # the EQ columns, as the console reads them


@functools.lru_cache(maxsize=8)
def _k_weight_power(sample_rate: int, n_fft: int) -> np.ndarray:
    """|K(f)|^2 of the BS.1770 K-weighting on the rfft grid."""
    from scipy.signal import sosfreqz

    from .features import _k_weighting_sos

    _, h = sosfreqz(_k_weighting_sos(sample_rate), worN=n_fft // 2 + 1, whole=False, fs=sample_rate)
    return np.abs(h) ** 2


def _frame_spread_cross(x: np.ndarray, sample_rate: int, n_fft: int, max_frames: int) -> np.ndarray:
    """:func:`core.report.cross_spectra` over at most ``max_frames`` windows spread evenly over ``x``."""
    return spread_cross(lambda a, n: x[:, a:a + n], x.shape[-1], sample_rate, n_fft, max_frames)


def spread_cross(read, total: int, sample_rate: int, n_fft: int = MODEL_FFT,
                 max_frames: int = MAX_FRAMES) -> np.ndarray:
    """:func:`_frame_spread_cross` of a signal of ``total`` frames read through ``read(start, n)``
    (float ``(2, n)``): the whole signal when it has few windows, else only the windows it uses, so
    a song of any length is never read whole."""
    hop = n_fft // 2
    n_frames = max(1, 1 + (total - n_fft) // hop)
    if n_frames <= max_frames:
        return cross_spectra(np.asarray(read(0, total), dtype=np.float64), sample_rate, n_fft)
    starts = np.linspace(0, total - n_fft, max_frames).astype(int)
    window = np.hanning(n_fft + 1)[:-1]
    acc = np.zeros((3, n_fft // 2 + 1))
    for k in range(0, max_frames, 32):  # 32 windows at a time: one FFT call, bounded memory
        frames = np.stack([np.asarray(read(int(a), n_fft), dtype=np.float64) for a in starts[k:k + 32]],
                          axis=1)  # (2, frames, n_fft)
        spec = np.fft.rfft(frames * window, axis=-1)  # (2, frames, F)
        acc[0] += np.sum(spec[0].real ** 2 + spec[0].imag ** 2, axis=0)
        acc[1] += np.sum(spec[1].real ** 2 + spec[1].imag ** 2, axis=0)
        acc[2] += np.sum((spec[0] * spec[1].conj()).real, axis=0)
    acc *= 2.0 / (max_frames * np.sum(window ** 2) * n_fft)  # the scaling of cross_spectra
    acc[:, 0] *= 0.5
    acc[:, -1] *= 0.5
    return acc


def frame_energy(x: np.ndarray, sample_rate: int, frame_s: float = LEVEL_FRAME_S) -> np.ndarray:
    """Mean square over channels in consecutive ``frame_s`` frames, (frames,)."""
    frame = max(1, int(round(frame_s * sample_rate)))
    n = x.shape[-1] // frame
    if n == 0:
        return np.atleast_1d(np.mean(np.square(x, dtype=np.float64)))
    return np.mean(np.square(x[:, : n * frame].reshape(x.shape[0], n, frame), dtype=np.float64), axis=(0, 2))


@dataclass
class Target:
    """The reference as the song model compares it: spectra and widths, loudness-normalised."""

    mid_db: torch.Tensor  # (bands,)
    octave_db: torch.Tensor  # (octaves,)
    width_db: torch.Tensor  # (ranges,)
    floor_db: float  # band levels below this read as this
    crest_db: float


def crest_db_torch(x: torch.Tensor, sample_rate: int, window_s: float = 1.0) -> torch.Tensor:
    """Mean over ``window_s`` windows of peak/RMS (dB) of ``x`` (..., C, T) -> (...,)."""
    w = int(window_s * sample_rate)
    n = max(1, x.shape[-1] // w)
    w = min(w, x.shape[-1])
    frames = x[..., : n * w].reshape(*x.shape[:-1], n, w)  # (..., C, n, w)
    peak = frames.abs().amax(dim=(-3, -1)).clamp_min(1e-9)
    ms = frames.square().mean(dim=(-3, -1)).clamp_min(1e-18)
    return (20 * torch.log10(peak) - 10 * torch.log10(ms)).mean(-1)


class SongModel:
    """The whole song's mid/side spectrum and level statistics as functions of the console settings.

    Args:
        stems: ``(N, 2, T)`` raw stems (the console applies the trim), sample_rate: Hz; or None with
            ``stats`` = (cross ``(N, 3, F)``, frame energy ``(N, frames)``) measured beforehand
            (:meth:`of_inputs`).
        active: ``(N,)`` bool, stems that take part (silent stems contribute nothing).
        stereo: ``(N,)`` bool (pan acts as balance on stereo stems).
        region: ``(a, b)`` samples: the part of the song whose spectrum matters (default: all of it).
    """

    def __init__(self, stems: np.ndarray | None, sample_rate: int, active, stereo, region=None,
                 n_fft: int = MODEL_FFT, max_frames: int = MAX_FRAMES, *, stats=None):
        self.sample_rate, self.n_fft = int(sample_rate), n_fft
        self.active = torch.as_tensor(np.asarray(active, bool))
        if stats is None:
            a, b = region if region is not None else (0, stems.shape[-1])
            crosses, energies = [], []
            for x in stems:
                seg = np.asarray(x[:, a:b], dtype=np.float64)
                crosses.append(_frame_spread_cross(seg, sample_rate, n_fft, max_frames))
                energies.append(frame_energy(seg, sample_rate))
            stats = np.stack(crosses), np.stack(energies)
        self.cross = torch.from_numpy(np.asarray(stats[0]))  # (N, 3, F)
        self.energy = torch.from_numpy(np.asarray(stats[1]))  # (N, frames)
        self.stereo = torch.as_tensor(np.asarray(stereo, bool))
        self.bands = torch.from_numpy(band_matrix(self.sample_rate, n_fft))  # (F, B)
        self.k_weight = torch.from_numpy(_k_weight_power(self.sample_rate, n_fft))
        f = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
        self.ranges = torch.from_numpy(np.stack([((f >= lo) & (f < hi)).astype(np.float64)
                                                 for _, lo, hi in WIDTH_RANGES], axis=1))  # (F, 3)

    @classmethod
    def of_inputs(cls, inputs, active) -> SongModel:
        """The song model of :class:`core.prepare.Inputs` (whole song), from its cached measurements:
        the cross spectra of :data:`MAX_FRAMES` windows read from each stem and the frame levels of
        :func:`core.prepare.stem_frame_stats`. Stems of any length are never read whole."""
        from .prepare import stem_frame_stats

        def cross():
            return np.stack([spread_cross(lambda a, n, i=i: inputs.read_stem(i, a, n), inputs.frames,
                                          inputs.sample_rate) for i in range(len(inputs.names))])

        stats = (inputs.cached("song_cross", cross), stem_frame_stats(inputs)[1])
        return cls(None, inputs.sample_rate, active, inputs.stereo, stats=stats)

    def spectra(self, pt: torch.Tensor, pm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mid and side power spectra ``(F,)`` of the whole song's mix for physical ``pt (N, P)``, ``pm``."""
        pt, pm = pt.to(torch.float64), pm.to(torch.float64)
        n_freqs = self.cross.shape[-1]
        h_t = console.eq_response(pt[:, _T_EQ], self.sample_rate, n_freqs).abs().square()  # (N, F)
        h_m = console.eq_response(pm[_M_EQ], self.sample_rate, n_freqs).abs().square()  # (F,)
        named = console.split_params(pt, TRACK)
        m_named = console.split_params(pm[None], MASTER)
        trim = console.db_to_amp(named["trim_db"]).square()  # (N,)
        ll, rr, lr = self.cross[:, 0], self.cross[:, 1], self.cross[:, 2]
        chan_mean = (ll + rr) / 2
        eta = (h_t * chan_mean).sum(-1) / chan_mean.sum(-1).clamp_min(1e-30)  # EQ's power gain per stem
        level_in = self.energy * (trim * eta)[:, None]  # (N, frames), compressor input power
        g = console.gain_computer_db(10 * torch.log10(level_in + 1e-20), named["comp_threshold_db"][:, None],
                                     named["comp_ratio"][:, None], named["comp_knee_db"][:, None])
        frame_gain = 10 ** (g / 10)  # (N, frames), power
        comp = (self.energy * frame_gain).sum(-1) / self.energy.sum(-1).clamp_min(1e-30)  # (N,)
        pan = console.pan_gains(named["pan"], self.stereo).to(torch.float64)  # (N, 2)
        level = console.db_to_amp(named["comp_makeup_db"] + named["gain_db"])
        al, ar = pan[:, 0] * level, pan[:, 1] * level
        on = self.active.to(torch.float64) * trim * comp
        common = (al.square()[:, None] * ll + ar.square()[:, None] * rr) * h_t
        cross = 2 * (al * ar)[:, None] * lr * h_t
        mid = ((common + cross) / 4 * on[:, None]).sum(0)
        side = ((common - cross) / 4 * on[:, None]).sum(0).clamp_min(0.0)
        # master compressor on the bus's frame levels (tracks add in power)
        bus = (level_in * frame_gain * ((al.square() + ar.square()) / 2 * self.active)[:, None]).sum(0)
        eta_m = ((mid + side) * h_m).sum() / (mid + side).sum().clamp_min(1e-30)
        gm = console.gain_computer_db(10 * torch.log10(bus * eta_m + 1e-20), m_named["comp_threshold_db"],
                                      m_named["comp_ratio"], m_named["comp_knee_db"])
        comp_m = (bus * 10 ** (gm / 10)).sum() / bus.sum().clamp_min(1e-30)
        out = h_m * comp_m * console.db_to_amp(m_named["comp_makeup_db"] + m_named["gain_db"]).square()
        return mid * out, side * out

    def levels(self, mid: torch.Tensor, side: torch.Tensor) -> dict[str, torch.Tensor]:
        """Band levels (dB) at a common K-weighted loudness, octave levels and widths per range."""
        k = ((mid + side) * self.k_weight).sum().clamp_min(1e-30)
        norm = 1.0 / k
        mid_b = (mid * norm) @ self.bands
        side_b = (side * norm) @ self.bands
        mid_db = 10 * torch.log10(mid_b + 1e-30)
        octave = torch.stack([10 * torch.log10(mid_b[i:i + 3].sum() + 1e-30) for i, _ in OCTAVES])
        m_r, s_r = mid @ self.ranges, side @ self.ranges
        width = 10 * torch.log10(s_r / m_r.clamp_min(1e-30) + WIDTH_FLOOR)
        return {"mid_db": mid_db, "side_db": 10 * torch.log10(side_b + 1e-30), "octave_db": octave,
                "width_db": width}

    def __call__(self, pt, pm) -> dict[str, torch.Tensor]:
        return self.levels(*self.spectra(pt, pm))


def reference_target(reference: np.ndarray, sample_rate: int, n_fft: int = MODEL_FFT,
                     max_frames: int = MAX_FRAMES) -> Target:
    """The reference's levels as :class:`SongModel` measures the mix (the same K-weighted normalisation)."""
    from .report import crest_factor_db, mid_side

    ref = np.asarray(reference, dtype=np.float64)
    model = SongModel(ref[None], sample_rate, [True], [True], n_fft=n_fft, max_frames=max_frames)
    mid, side = (torch.from_numpy(s) for s in mid_side(model.cross[0].numpy()))
    lv = model.levels(mid, side)
    floor = float(lv["mid_db"][SCORED].max()) - 60.0
    return Target(lv["mid_db"].clamp_min(floor), lv["octave_db"], lv["width_db"], floor,
                  crest_factor_db(ref, sample_rate))


def match_terms(levels: dict[str, torch.Tensor], target: Target) -> dict[str, torch.Tensor]:
    """Mean square differences (dB^2) of the song model's levels against the reference's."""
    mid = levels["mid_db"].clamp_min(target.floor_db) - target.mid_db
    return {"tonal": mid[SCORED].square().mean(),
            "octave": (levels["octave_db"] - target.octave_db).square().mean(),
            "width": (levels["width_db"] - target.width_db).square().mean()}


# --- the prior --------------------------------------------------------------------------------------------

def _hinge(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x).square()


def _limit_barrier(unit: torch.Tensor, schema) -> torch.Tensor:
    """Penalty for resting within 2 % of a range limit, on the sides where the default is not."""
    defaults = torch.as_tensor(schema.to_unit(schema.defaults()), dtype=unit.dtype)
    lower = (defaults > 0.02).to(unit.dtype)
    upper = (defaults < 0.98).to(unit.dtype)
    return (lower * _hinge((0.02 - unit) / 0.02) + upper * _hinge((unit - 0.98) / 0.02)).sum(-1)


#: Prior cost per unit of send opening (unit 0 = off, 1 = +6 dB), in the track term (averaged over the
#: tracks): linear, so that it pulls a send that is barely open back to "off" as firmly as a wide open
#: one, and only a real gain of the match opens one. Calibrated on the synthetic dry reference of
#: tests/test_refine.py: without it, sections' AF terms open a send to about -11 dB (the song model
#: does not model the reverb, so nothing else weighs against it); with 6 every send ends below -50 dB,
#: also from a start at -20 dB.
SEND_COST = 6.0
_T_SEND = TRACK.index("send_db")


def _eq_prior(p: torch.Tensor, schema, comfortable_db: float) -> torch.Tensor:
    total = p.new_zeros(p.shape[:-1])
    for band in EQ_BAND_KEYS:
        g = p[..., schema.index(f"{band}_gain_db")]
        q = p[..., schema.index(f"{band}_q")]
        total = (total + 0.02 * (g / comfortable_db).square() + _hinge((g.abs() - comfortable_db) / 2.0)
                 + _hinge((g.abs() - comfortable_db - 2.5) / 0.5))  # a wall 2.5 dB further out
        # narrow boosts and cuts are for surgery, not for balance
        total = total + (g.abs() / comfortable_db).clamp(max=1.0) * _hinge(torch.log2(q / 3.0))
    return total


def _comp_prior(p: torch.Tensor, schema, min_attack_ms: float, min_release_ms: float,
                max_ratio: float) -> torch.Tensor:
    ratio = p[..., schema.index("comp_ratio")]
    working = 1.0 - 1.0 / ratio  # 0 when the compressor does nothing
    attack = p[..., schema.index("comp_attack_ms")]
    release = p[..., schema.index("comp_release_ms")]
    makeup = p[..., schema.index("comp_makeup_db")]
    too_fast = _hinge(torch.log2(min_attack_ms / attack)) + _hinge(torch.log2(min_release_ms / release))
    return (working * 4.0 * too_fast
            + _hinge(torch.log2(ratio / max_ratio)) + _hinge((makeup - 12.0) / 3.0))


def prior(pt: torch.Tensor, pm: torch.Tensor, ut: torch.Tensor, um: torch.Tensor, active: torch.Tensor,
          free_t: torch.Tensor, free_m: torch.Tensor, centre_t: torch.Tensor | None = None,
          centre_m: torch.Tensor | None = None, toward: float = 4.0) -> torch.Tensor:
    """The plausibility penalty of physical ``pt (N, P)``, ``pm (Pm,)`` (units ``ut``, ``um`` in [0, 1]).

    Zero inside the ranges engineers usually work in, growing quadratically outside them; only active
    tracks and free (unlocked) parameters count. ``centre_t/m``: unit-space centre (the model's
    prediction), pulled toward with weight ``toward`` per mean square unit.
    """
    w_t = active.to(pt.dtype)
    fader = pt[:, TRACK.index("gain_db")]
    track = (_eq_prior(pt, TRACK, 6.0) + _comp_prior(pt, TRACK, 3.0, 40.0, 8.0)
             + 0.5 * (fader / 12.0).square() + _hinge((-24.0 - fader) / 2.0) + _hinge((fader - 12.0) / 2.0)
             + _limit_barrier(ut * free_t + (1 - free_t) * 0.5, TRACK)
             + SEND_COST * ut[:, _T_SEND] * free_t[:, _T_SEND])
    master = (2.0 * _eq_prior(pm[None], MASTER, 3.0)[0]
              + 2.0 * _comp_prior(pm[None], MASTER, 5.0, 50.0, 4.0)[0]
              + _limit_barrier((um * free_m + (1 - free_m) * 0.5)[None], MASTER)[0])
    total = (track * w_t).sum() / w_t.sum().clamp_min(1.0) + master
    # tidiness: unused controls drift back toward their defaults
    d_t = torch.as_tensor(TRACK.to_unit(TRACK.defaults()), dtype=ut.dtype)
    d_m = torch.as_tensor(MASTER.to_unit(MASTER.defaults()), dtype=um.dtype)
    tidy = ((ut - d_t).square() * free_t * w_t[:, None]).sum() / (free_t * w_t[:, None]).sum().clamp_min(1.0)
    total = total + 0.05 * (tidy + ((um - d_m).square() * free_m).sum() / free_m.sum().clamp_min(1.0))
    if centre_t is not None and toward > 0:
        mask = free_t * w_t[:, None]
        dt = ((ut - centre_t).square() * mask).sum() / mask.sum().clamp_min(1.0)
        dm = ((um - centre_m).square() * free_m).sum() / free_m.sum().clamp_min(1.0)
        total = total + toward * (dt + dm)
    return total
