"""The one mixing pipeline: model prediction, then refinement, with locks, region and progress.

Both front ends call :func:`suggest`: ``stylemix mix`` and the app's Predict worker. It takes the
session's inputs (stems with their import trims, the reference), the current console (whose trims and
locked values are kept), and returns the prediction, the refined parameters and what was decided on the
way (the kind of reference, the region analysed), so the two front ends cannot drift apart.

    result = suggest(inputs, model, SuggestConfig(steps=40), current=params, lock_tracks=lt, lock_master=lm)
    result.params        # the console to apply
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .paramfile import MixParams
from .params import MASTER, TRACK
from .prepare import Inputs

#: progress(done, total, message) -> True to cancel
Progress = Callable[[int, int, str], bool | None]


@dataclass
class SuggestConfig:
    steps: int = 60  # refinement steps (0: the model alone)
    seed: int = 0
    region: tuple[float, float] | None = None  # analysis region of the stems (seconds), e.g. the loop
    prior: float = 1.0  # strength of the plausibility prior (0: off)
    reference_kind: str = "auto"  # "auto", "same-song" or "other"
    threads: int | None = 1  # compute threads of refinement (core.refine.RefineConfig.threads)
    # let prediction and refinement set the reverb sends and the FX return; off: they stay as in
    # ``current`` (sends off by default). Off by default until the song model knows the reverb.
    reverb: bool = False


@dataclass
class Suggestion:
    params: MixParams  # the console to apply (trims and locked values as in ``current``)
    prediction: MixParams | None  # the model's prediction (None without a model)
    start: MixParams  # where refinement started
    reference_kind: str = "other"  # what was used: "same-song" or "other"
    detection: dict = field(default_factory=dict)  # how the kind was decided (scores)
    refine: object = None  # core.refine.RefineResult, or None when no refinement ran
    seconds: float = 0.0
    region: tuple[float, float] | None = None
    messages: list[str] = field(default_factory=list)


#: Pull toward the same-song fit during refinement (the prior's "toward the prediction" weight): the fit
#: read the balance from the reference itself, so refinement adjusts tone and dynamics around it.
SAME_SONG_TOWARD = 12.0
#: Track controls that refinement may still move after a same-song fit. Everything else on the tracks
#: (faders, EQ, compressors) stays as fitted: matching the reference's tone through the tracks trades one
#: stem's level against another's (on generated same-song cases the balance error went from 3.1 dB to
#: 9 dB while the tonal error fell), so tone and dynamics are matched on the master bus instead. Pans do
#: not change a stem's share of the energy and bring the reference's width back.
SAME_SONG_FREE_TRACK_KEYS = ("pan",)


def _reference_kind(inputs: Inputs, wanted: str, progress: Progress | None, total: int):
    """(Detection or None, "same-song" | "other") for ``wanted`` = "auto", "same-song" or "other"."""
    if wanted not in ("auto", "same-song", "other"):
        raise ValueError(f"unknown reference kind '{wanted}' (auto, same-song or other)")
    if wanted == "other":
        return None, "other"
    from .samesong import detect

    if progress is not None:
        progress(0, total, "Comparing the reference with the stems…")
    try:
        detection = detect(inputs, wanted)
    except ValueError:  # too short to decide: treat it as another song
        return None, "other"
    return detection, detection.kind


def _keep_user_values(params: MixParams, current: MixParams | None, lock_tracks, lock_master) -> MixParams:
    """``params`` with the trims and locked values of ``current`` put back."""
    if current is None:
        return params
    out = params.copy()
    ti = TRACK.index("trim_db")
    out.tracks[:, ti] = current.tracks[:, ti]
    if lock_tracks is not None:
        out.tracks[lock_tracks] = current.tracks[lock_tracks]
    if lock_master is not None:
        out.master[lock_master] = current.master[lock_master]
    return out


def suggest(inputs: Inputs, model=None, config: SuggestConfig | None = None, *,
            current: MixParams | None = None, init: MixParams | None = None,
            lock_tracks: np.ndarray | None = None, lock_master: np.ndarray | None = None,
            progress: Progress | None = None) -> Suggestion:
    """Prediction (when ``model`` is given) then refinement of the console for ``inputs``.

    current: the console as it is (its trims and locked values are kept; default: the equal-loudness
    defaults). init: start refinement here instead of the model's prediction (e.g. a params file).
    lock_tracks (N, len(TRACK)) / lock_master (len(MASTER),): values that stay. progress(done, total,
    message) is called along the way; returning True cancels (the best parameters so far are returned).
    """
    from .predict import predict
    from .refine import RefineConfig, refine

    if inputs.reference is None:
        raise ValueError("suggest needs a reference")
    cfg = config or SuggestConfig()
    t0 = time.perf_counter()
    n = len(inputs.names)
    lock_t = np.zeros((n, len(TRACK)), bool) if lock_tracks is None else np.asarray(lock_tracks, bool)
    lock_m = np.zeros(len(MASTER), bool) if lock_master is None else np.asarray(lock_master, bool)
    if not cfg.reverb:  # the reverb's controls stay as they are (kept like the user's locks)
        lock_t, lock_m = lock_t.copy(), lock_m.copy()
        lock_t[:, TRACK.group_mask("reverb")] = True
        lock_m[MASTER.group_mask("reverb")] = True
    base = current if current is not None else inputs.default_params()
    total = cfg.steps + 1

    prediction = None
    if init is not None:
        start = init.copy()
    elif model is not None:
        if progress is not None:
            progress(0, total, "Predicting…")
        prediction = predict(inputs, model, cfg.region)
        # the model has not learnt the reverb yet (its send and return outputs are untrained): the
        # reverb's controls start where the console has them, and refinement opens sends where the
        # match pays for them (the prior holds them off otherwise)
        prediction = prediction.copy()
        prediction.tracks[:, TRACK.group_mask("reverb")] = base.tracks[:, TRACK.group_mask("reverb")]
        prediction.master[MASTER.group_mask("reverb")] = base.master[MASTER.group_mask("reverb")]
        start = prediction
    else:
        start = inputs.default_params()
    start = _keep_user_values(start, base, lock_t, lock_m)

    detection, kind = _reference_kind(inputs, cfg.reference_kind, progress, total)
    centre, toward = prediction, None
    if kind == "same-song":
        # the reference holds these stems: read their balance from it, and hold refinement near it
        from .samesong import fit_same_song

        if progress is not None:
            progress(0, total, "Fitting the balance of the reference…")
        # the tracks start from the plain console (the fit reads faders, pans and shelves; the model's
        # track EQ and compressors are not what the rough mix did), the master from the prediction
        # (a given ``init`` is kept whole)
        plain = start
        if init is None:
            plain = inputs.default_params()
            plain.master[:] = start.master
        start = _keep_user_values(fit_same_song(inputs, plain, detection), base, lock_t, lock_m)
        centre, toward = start, SAME_SONG_TOWARD
    result = Suggestion(params=start, prediction=prediction, start=start, region=cfg.region,
                        reference_kind=kind, detection=detection.to_dict() if detection is not None else {})
    if detection is not None:
        result.messages.append(detection.describe())
    if cfg.steps > 0:
        def callback(step, steps, loss):
            if progress is not None:
                return progress(step + 1, total, f"Refining: loss {loss:.4f}")
            return None

        rcfg = RefineConfig(steps=cfg.steps, seed=cfg.seed, region=cfg.region, prior=cfg.prior,
                            threads=cfg.threads)
        if toward is not None:
            rcfg.weights.toward_prediction = toward
        hold = lock_t
        if kind == "same-song":  # keep the fitted balance: only the master bus and the pans move
            hold = lock_t.copy()
            free = [TRACK.index(k) for k in SAME_SONG_FREE_TRACK_KEYS]
            hold[:, [j for j in range(len(TRACK)) if j not in free]] = True
        res = refine(inputs, start, rcfg, hold, lock_m, callback, centre=centre)
        result.refine = res
        result.params = _keep_user_values(res.params, base, lock_t, lock_m)
    result.seconds = time.perf_counter() - t0
    return result
