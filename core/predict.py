"""Prediction: console parameters from the model, on analysis sections of a whole song.

A song is longer than what the model was trained on, and the parameters are static for the song, so the
model runs on a few analysis sections (the parts where the most stems play, or a region the caller
gives, such as the loop the user picked), each paired with one of the loudest sections of the reference,
and the unit-space predictions are averaged over sections. Refinement (:mod:`core.refine`) then starts
from the result.

Levels follow the model's input convention (:class:`core.model.ModelConfig`): the console sees stems
trimmed to :data:`core.prepare.STEM_LUFS`; the model sees the same trimmed stems scaled to
``config.track_lufs``, and the reference normalised to ``config.reference_lufs``. Both are fixed gains,
so what the model learns about levels carries over to the console exactly.

    model = load_default_model()            # None when no model is shipped
    init = predict(inputs, model) if model is not None else inputs.default_params()
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .paramfile import MixParams
from .prepare import REFERENCE_LUFS, STEM_LUFS, Inputs
from .refine import choose_sections, inputs_activity, reference_sections

#: The model shipped with the program (``None`` from :func:`load_default_model` when it is absent).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "assets" / "model" / "default.pt"

#: Length (s) and number of analysis sections the model runs on.
SECTION_SECONDS = 4.0
N_SECTIONS = 2

#: Mean energy, at REFERENCE_LUFS, below which a section of a stem (or of a reference) counts as silent;
#: the model does not see a stem in a section where it is silent (as in training).
SILENCE_ENERGY = 1e-3


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a checkpoint -> model in eval mode. Raises :class:`core.checkpoint.CheckpointError`."""
    from .checkpoint import load_checkpoint

    model, _ = load_checkpoint(path, map_location=device)
    return model


def load_default_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """The shipped model (``assets/model/default.pt``), or ``None`` when the file is not there.

    A file that exists but cannot be used (corrupt, other console schema) raises ``CheckpointError``
    rather than silently mixing without a model.
    """
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    if not path.is_file():
        return None
    return load_model(path, device)


# --- input convention -------------------------------------------------------------------------------

def track_input_gain(config) -> float:
    """Linear gain from console-ready stems (at STEM_LUFS) to the model's ``track_lufs``."""
    return 10.0 ** ((config.track_lufs - STEM_LUFS) / 20.0)


def reference_input_gain(config) -> float:
    """Linear gain from a reference at REFERENCE_LUFS to the model's ``reference_lufs``."""
    return 10.0 ** ((config.reference_lufs - REFERENCE_LUFS) / 20.0)


def model_inputs(tracks: torch.Tensor, reference: torch.Tensor, config) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale console-ready stems ``(B, N, 2, T)`` (trimmed to STEM_LUFS) and a reference ``(B, 2, T)`` at
    REFERENCE_LUFS to the model's input convention. Shared by prediction and training."""
    return tracks * track_input_gain(config), reference * reference_input_gain(config)


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    import soxr

    shape = x.shape
    flat = x.reshape(-1, shape[-1]).T  # (T, channels)
    y = soxr.resample(np.ascontiguousarray(flat), rate_in, rate_out)
    return np.ascontiguousarray(y.T).reshape(*shape[:-1], -1).astype(np.float32)


def section_activity(sections: np.ndarray) -> np.ndarray:
    """``(S, N)`` bool: stem ``n`` plays in section ``s`` of console-ready sections ``(S, N, 2, L)``.

    The training data's silence rule (DESIGN.md section 1): a section is silent when its mean energy, with
    the stem at the reference level (REFERENCE_LUFS), is below :data:`SILENCE_ENERGY`, i.e. about 15 dB
    or more below the stem's average.
    """
    energy = np.mean(np.square(sections, dtype=np.float64), axis=(-2, -1))
    return energy * 10.0 ** ((REFERENCE_LUFS - STEM_LUFS) / 10.0) >= SILENCE_ENERGY


# --- prediction -------------------------------------------------------------------------------------

def analysis_sections(inputs: Inputs, region: tuple[float, float] | None = None,
                      section_seconds: float = SECTION_SECONDS, n_sections: int = N_SECTIONS
                      ) -> list[tuple[int, int]]:
    """Sample ranges ``[(start, end)]`` the model analyses: the most active sections of the song, or of
    ``region`` (seconds) when given. The same choice as refinement's (:mod:`core.refine`)."""
    score = inputs_activity(inputs)
    return choose_sections(score, inputs.sample_rate, section_seconds, n_sections, inputs.frames, region)


def predict(inputs: Inputs, model, region: tuple[float, float] | None = None, *,
            section_seconds: float = SECTION_SECONDS, n_sections: int = N_SECTIONS) -> MixParams:
    """Console parameters predicted by ``model`` for ``inputs`` (which must have a reference).

    region: ``(start_s, end_s)`` of the stems to analyse (default: the most active sections of the song);
    the song's most active sections are analysed too, so a short loop cannot decide the whole console.
    Returns a :class:`MixParams` whose trims are the import trims and whose other values come from the
    model; silent stems keep the defaults. The prediction is the mean, in unit space, over the analysis
    sections in which a stem plays.
    """
    if inputs.reference is None:
        raise ValueError("prediction needs a reference")
    cfg = model.config
    sr = inputs.sample_rate
    out = inputs.default_params()
    silent = np.asarray(inputs.silent, bool)
    if silent.all():
        return out

    spans = analysis_sections(inputs, region, section_seconds, n_sections)
    if region is not None:  # the region is what is analysed, the whole song stays the context
        spans += [s for s in analysis_sections(inputs, None, section_seconds, n_sections) if s not in spans]
    gains = (10.0 ** (np.asarray(inputs.trim_db, dtype=np.float64) / 20.0)).astype(np.float32)
    sections = np.stack([inputs.section(a, b) * gains[:, None, None] for a, b in spans])  # (S, N, 2, L)
    active = section_activity(sections) & ~silent  # (S, N)
    refs = reference_sections(inputs.reference, sr, section_seconds, n_sections)  # (R, 2, Lr)
    refs = refs[np.arange(len(spans)) % len(refs)]  # pair stem section s with reference section s mod R

    never = ~active.any(axis=0) & ~silent
    active[:, never] = True  # a stem quiet in every section is still mixed: let the model see it
    sections = _resample(sections, sr, cfg.sample_rate)
    refs = _resample(refs, sr, cfg.sample_rate)

    device = next(model.parameters()).device
    tracks_t, ref_t = model_inputs(torch.from_numpy(sections), torch.from_numpy(refs), cfg)
    mask_t = torch.from_numpy(active)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            track_unit, master_unit = model(tracks_t.to(device), ref_t.to(device), mask_t.to(device))
    finally:
        model.train(was_training)
    weights = mask_t.to(track_unit.dtype).to(track_unit.device)[..., None]  # (S, N, 1)
    track_unit = (track_unit * weights).sum(0) / weights.sum(0).clamp_min(1.0)  # (N, Pt)
    master_unit = master_unit.mean(0, keepdim=True)  # (1, Pm)

    trims = torch.as_tensor(np.asarray(inputs.trim_db), dtype=track_unit.dtype, device=track_unit.device)
    phys_t, phys_m = model.to_physical(track_unit[None], master_unit, fixed={"trim_db": trims[None]})
    tracks = phys_t[0].detach().cpu().double().numpy()
    tracks[silent] = out.tracks[silent]  # silent stems are left out of the mix analysis: defaults
    out.tracks = tracks
    out.master = phys_m[0].detach().cpu().double().numpy()
    if not np.all(np.isfinite(out.tracks)) or not np.all(np.isfinite(out.master)):
        raise FloatingPointError("the model produced non-finite parameters")
    return out


def describe_sections(spans: list[tuple[int, int]], sample_rate: int) -> str:
    """``"12.0-16.0 s, 40.5-44.5 s"``: analysis sections for messages."""
    return ", ".join(f"{a / sample_rate:.1f}-{b / sample_rate:.1f} s" for a, b in spans)
