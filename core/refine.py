"""Reference matching by optimisation through the differentiable console ("refine").

Works without any model (start from the equal-loudness defaults) and after one (start from its
prediction). The loss is the AF style loss (:mod:`core.features`) between the console's mix and the
reference, over analysis sections chosen automatically: the parts where the most stems play, and the
loudest parts of the reference (normalised to ``REFERENCE_LUFS``). The console's absolute level is
part of the fit (the RMS and bark terms), so the settings land near a sane gain structure; the output
stage then sets the final loudness with the master fader.

Parameters are optimised in the schema's unit space with Adam, projected back to [0, 1] after every
step; locked parameters (and the import trims) never move. Deterministic for a given seed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from . import console
from .features import activity_frames, af_features, af_loss, loudness_normalize
from .objective import SongModel, Weights, crest_db_torch, match_terms, prior, reference_target
from .paramfile import MixParams
from .params import MASTER, TRACK
from .prepare import REFERENCE_LUFS, Inputs

FRAME_S = 0.25  # resolution of section choice


@dataclass
class RefineConfig:
    steps: int = 60  # steps that render the sections (the cost)
    lr: float = 0.05
    # steps on the song model and the prior alone, before the rendered ones, per rendered step: they cost
    # about 5 ms each and bring the whole-song balance close before the audio is looked at
    coarse_per_step: int = 0
    seed: int = 0
    section_seconds: float = 5.0
    n_sections: int = 1  # stem sections rendered at every step (the cost)
    ref_sections: int = 3  # reference sections, analysed once and averaged
    region: tuple[float, float] | None = None  # analysis region of the stems (seconds), e.g. a loop
    # compute threads while refining (torch and the console's kernels); None keeps torch's setting.
    # A step is a few dozen medium-sized operations, each of which waits for all of its threads: on an
    # idle two-core machine two threads save about a third of a step, but where other work shares the
    # cores (playback, a training run) waiting threads that spin make a step many times slower.
    threads: int | None = 1
    prior: float = 1.0  # strength of the plausibility prior (0: off); see core.objective
    weights: Weights = field(default_factory=Weights)


@dataclass
class RefineResult:
    params: MixParams
    loss_before: float
    loss_after: float
    terms_before: dict[str, float]
    terms_after: dict[str, float]
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    sections: list[tuple[int, int]] = field(default_factory=list)
    af_before: float = 0.0  # the paper's AF loss (on the sections) before and after
    af_after: float = 0.0


# --- analysis sections ----------------------------------------------------------------------------

def _best_windows(score: np.ndarray, win: int, count: int) -> list[int]:
    """Start frames of up to ``count`` non-overlapping windows of ``win`` frames with the largest sum."""
    if score.size <= win:
        return [0]
    sums = np.convolve(score, np.ones(win), mode="valid")
    starts: list[int] = []
    for _ in range(count):
        i = int(np.argmax(sums))
        if sums[i] == -np.inf:
            break
        starts.append(i)
        sums[max(0, i - win + 1): i + win] = -np.inf
    return sorted(starts)


def stem_activity(stems: np.ndarray, silent: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame score: how many stems play (each stem's frame RMS relative to its own median level)."""
    return activity_score([activity_frames(x, sample_rate, FRAME_S) for x in stems], silent)


def inputs_activity(inputs: Inputs) -> np.ndarray:
    """:func:`stem_activity` of ``inputs``' stems, from the cached whole-song frame levels."""
    from .prepare import stem_frame_stats

    return activity_score(stem_frame_stats(inputs)[0], np.asarray(inputs.silent, bool))


def activity_score(frame_rms: list[np.ndarray], silent: np.ndarray) -> np.ndarray:
    """:func:`stem_activity` from each stem's frame RMS (:func:`core.meter.activity_frames`)."""
    score = None
    for rms, quiet in zip(frame_rms, silent, strict=True):
        if quiet:
            continue
        typical = np.median(rms[rms > 1e-6]) if np.any(rms > 1e-6) else 1.0
        s = np.minimum(1.0, rms / (typical + 1e-12))
        score = s if score is None else score + s
    return score if score is not None else np.zeros(1)


def choose_sections(score: np.ndarray, sample_rate: int, seconds: float, count: int,
                    total_frames: int, region: tuple[float, float] | None = None) -> list[tuple[int, int]]:
    """Sample ranges ``[(start, end)]`` of the ``count`` most active ``seconds``-long sections."""
    length = min(total_frames, int(round(seconds * sample_rate)))
    win = max(1, int(round(seconds / FRAME_S)))
    offset = 0
    if region is not None:
        a, b = (int(round(t / FRAME_S)) for t in region)
        offset, score = a, score[a:max(a + 1, b)]
    starts = _best_windows(score, win, count)
    out = []
    for s in starts:
        start = min((s + offset) * int(round(FRAME_S * sample_rate)), total_frames - length)
        out.append((max(0, start), max(0, start) + length))
    return out


def reference_sections(reference: np.ndarray, sample_rate: int, seconds: float, count: int):
    """The loudest sections of the reference, normalised to REFERENCE_LUFS: (S, 2, L) float32."""
    ref, _ = loudness_normalize(reference, sample_rate, REFERENCE_LUFS)
    score = activity_frames(ref, sample_rate, FRAME_S)
    spans = choose_sections(score, sample_rate, seconds, count, ref.shape[-1])
    return np.stack([ref[:, a:b] for a, b in spans]).astype(np.float32)


# --- loss -----------------------------------------------------------------------------------------

def mean_features(ref: torch.Tensor, sample_rate: int) -> dict[str, torch.Tensor]:
    """AF features of the reference sections, averaged over sections (batch of one)."""
    with torch.no_grad():
        f = af_features(ref, sample_rate)
        return {k: v.mean(dim=0, keepdim=True) for k, v in f.items()}


class Objective:
    """AF loss of the console's mix of fixed stem sections against fixed reference features."""

    def __init__(self, inputs: Inputs, spans, ref_sections: np.ndarray):
        sr = inputs.sample_rate
        self.sample_rate = sr
        tracks = np.stack([inputs.section(a, b) for a, b in spans])  # (S, N, 2, L)
        self.tracks = torch.from_numpy(tracks)
        s, n = tracks.shape[:2]
        self.stereo = torch.from_numpy(np.asarray(inputs.stereo, bool)).expand(s, n)
        self.mask = torch.ones(s, n, dtype=torch.bool)
        self.spectra = console.TrackSpectra(self.tracks)  # the stems do not change between steps
        ref = torch.from_numpy(ref_sections)
        self.ref_features = mean_features(ref, sr)

    def mix(self, track_phys: torch.Tensor, master_phys: torch.Tensor) -> torch.Tensor:
        s = self.tracks.shape[0]
        tp = track_phys.to(self.tracks.dtype).unsqueeze(0).expand(s, -1, -1)
        mp = master_phys.to(self.tracks.dtype).unsqueeze(0).expand(s, -1)
        return console.render(self.tracks, tp, mp, self.sample_rate, stereo=self.stereo, mask=self.mask,
                              spectra=self.spectra)

    def __call__(self, track_phys, master_phys):
        return af_loss(self.mix(track_phys, master_phys), self.ref_features, self.sample_rate)


def _terms(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: v.item() for k, v in terms.items()}


# --- refine ---------------------------------------------------------------------------------------

@contextmanager
def _threads(count: int | None):
    """torch's intra-op thread count set to ``count`` (if given) for the block, then restored."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count:
            torch.set_num_threads(before)


def refine(inputs: Inputs, init: MixParams | None = None, config: RefineConfig | None = None,
           lock_tracks: np.ndarray | None = None, lock_master: np.ndarray | None = None,
           callback: Callable[[int, int, float], bool | None] | None = None,
           centre: MixParams | None = None) -> RefineResult:
    """Fit console parameters to ``inputs.reference`` by gradient descent on the objective
    (:mod:`core.objective`: whole-song tonal balance and width, crest and AF terms on sections, prior).

    init: starting parameters (default: the equal-loudness defaults). lock_tracks (N, len(TRACK)) and
    lock_master (len(MASTER),) bool: parameters that stay as they are. centre: the model's prediction,
    which the prior pulls toward (default: none). callback(step, steps, loss) is called after every
    step; returning True stops early (cancel). Returns the best parameters seen.
    """
    if inputs.reference is None:
        raise ValueError("refine needs a reference")
    cfg = config or RefineConfig()
    with _threads(cfg.threads):
        return _refine(inputs, init, cfg, lock_tracks, lock_master, callback, centre)


class FullObjective:
    """Everything refinement minimises, for physical parameters; see :mod:`core.objective`."""

    def __init__(self, inputs: Inputs, cfg: RefineConfig, centre: MixParams | None = None):
        sr = inputs.sample_rate
        self.sample_rate, self.cfg, self.w = sr, cfg, cfg.weights
        silent = np.asarray(inputs.silent, bool)
        score = inputs_activity(inputs)
        self.spans = choose_sections(score, sr, cfg.section_seconds, cfg.n_sections, inputs.frames,
                                     cfg.region)
        ref_sec = reference_sections(inputs.reference, sr, cfg.section_seconds, cfg.ref_sections)
        self.af = Objective(inputs, self.spans, ref_sec)
        self.song = SongModel.of_inputs(inputs, ~silent)
        self.target = reference_target(inputs.reference, sr)
        self.active = torch.from_numpy(~silent)
        self.centre = None
        if centre is not None:
            self.centre = (torch.from_numpy(TRACK.to_unit(centre.tracks)),
                           torch.from_numpy(MASTER.to_unit(centre.master)))

    def __call__(self, pt, pm, ut, um, free_t, free_m, render: bool = True
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its (unweighted) terms; ``render=False`` leaves out the rendered terms."""
        w = self.w
        terms = match_terms(self.song(pt, pm), self.target)
        if render:
            mix = self.af.mix(pt, pm)
            af, _ = af_loss(mix, self.af.ref_features, self.sample_rate)
            terms["crest"] = (crest_db_torch(mix, self.sample_rate).mean() - self.target.crest_db).square()
            terms["af"] = af
        ct, cm = self.centre if self.centre is not None else (None, None)
        terms["prior"] = prior(pt, pm, ut, um, self.active, free_t, free_m, ct, cm, w.toward_prediction)
        weights = {"tonal": w.tonal, "octave": w.octave, "width": w.width, "crest": w.crest, "af": w.af,
                   "prior": w.prior * self.cfg.prior}
        total = sum(weights[k] * v for k, v in terms.items())
        return total, terms


def _refine(inputs, init, cfg, lock_tracks, lock_master, callback, centre) -> RefineResult:
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    init = init.copy() if init is not None else inputs.default_params()
    n = len(inputs.names)
    objective = FullObjective(inputs, cfg, centre)

    fixed_t = np.zeros((n, len(TRACK)), bool) if lock_tracks is None else lock_tracks.copy()
    fixed_t[:, ~TRACK.predicted_mask] = True  # trims belong to import, not to the fit
    fixed_t[np.asarray(inputs.silent, bool)] = True
    fixed_m = np.zeros(len(MASTER), bool) if lock_master is None else lock_master.copy()
    free_t = torch.from_numpy(~fixed_t).double()
    free_m = torch.from_numpy(~fixed_m).double()

    ut = torch.tensor(TRACK.to_unit(init.tracks), dtype=torch.float64, requires_grad=True)
    um = torch.tensor(MASTER.to_unit(init.master), dtype=torch.float64, requires_grad=True)
    # exact physical values where nothing moves (unit round trip would clip/round them)
    init_t = torch.tensor(init.tracks)
    init_m = torch.tensor(init.master)

    # the reverb's controls all locked: render it only where a send is open, and ask no gradient of it
    reverb_locked = bool(fixed_t[:, TRACK.group_mask("reverb")].all()
                         and fixed_m[MASTER.group_mask("reverb")].all())
    with console.reverb_fixed() if reverb_locked else contextlib.nullcontext():
        return _refine_loop(inputs, init, cfg, callback, objective, t0, free_t, free_m, init_t, init_m,
                            ut, um)


def _refine_loop(inputs, init, cfg, callback, objective, t0, free_t, free_m, init_t, init_m, ut, um):
    def physical():
        pt = torch.where(free_t.bool(), TRACK.from_unit(ut), init_t)
        pm = torch.where(free_m.bool(), MASTER.from_unit(um), init_m)
        return pt, pm

    best_loss, best_t, best_m, best_terms = float("inf"), init.tracks, init.master, {}
    loss0, terms0 = None, None
    history = []
    opt = torch.optim.Adam([ut, um], lr=cfg.lr)
    coarse = cfg.coarse_per_step * cfg.steps if cfg.steps > 0 else 0
    total = coarse + cfg.steps
    for step in range(total + 1):
        # losses belong to the parameters before this step's update; steps before `coarse` update on the
        # song model and prior alone; the start and every later step are measured in full (rendered)
        opt.zero_grad()
        pt, pm = physical()
        last = step == total
        full = step >= coarse
        if full or step == 0:
            with torch.set_grad_enabled(full and not last):
                loss, terms = objective(pt, pm, ut, um, free_t, free_m, render=True)
            value = loss.item()
            history.append(value)
            if loss0 is None:
                loss0, terms0 = value, _terms(terms)
            if value < best_loss:
                best_loss, best_terms = value, _terms(terms)
                best_t, best_m = pt.detach().numpy().copy(), pm.detach().numpy().copy()
        if not full:
            loss, _ = objective(pt, pm, ut, um, free_t, free_m, render=False)
            value = loss.item()
        if last or (step and callback is not None and callback(step, total, value)):
            break
        loss.backward()
        ut.grad.mul_(free_t)
        um.grad.mul_(free_m)
        opt.step()
        with torch.no_grad():
            ut.clamp_(0.0, 1.0)
            um.clamp_(0.0, 1.0)

    out = init.copy()
    out.tracks, out.master = best_t, best_m
    return RefineResult(out, loss0, best_loss, terms0, best_terms, history, time.perf_counter() - t0,
                        objective.spans, terms0.get("af", 0.0), best_terms.get("af", 0.0))


def evaluate(inputs: Inputs, params: MixParams, config: RefineConfig | None = None) -> tuple[float, dict]:
    """The paper's AF loss of ``params`` against the reference on the sections refine renders."""
    return evaluate_many(inputs, [params], config)[0]


def evaluate_many(inputs: Inputs, params: list[MixParams], config: RefineConfig | None = None
                  ) -> list[tuple[float, dict]]:
    """:func:`evaluate` of several parameter sets, analysing the stems and the reference once."""
    cfg = config or RefineConfig()
    sr = inputs.sample_rate
    score = inputs_activity(inputs)
    spans = choose_sections(score, sr, cfg.section_seconds, cfg.n_sections, inputs.frames, cfg.region)
    out = []
    with _threads(cfg.threads), torch.no_grad():
        objective = Objective(inputs, spans, reference_sections(inputs.reference, sr, cfg.section_seconds,
                                                                cfg.ref_sections))
        for p in params:
            loss, terms = objective(torch.tensor(p.tracks), torch.tensor(p.master))
            out.append((float(loss), _terms(terms)))
    return out
