"""The two training methods of Diff-MST (DESIGN.md section 1), as examples, batches and losses.

**Method 1** (paired: a ground-truth mix exists). A ``2 L`` section of a multitrack is mixed, and the mix
is split in halves A and B: the model gets the tracks of half B and the mix of half A as reference, and
its mix of half B is compared with the mix of half B. Two ways to make the mix (``pairing``):

* ``"engineer"`` (default): a finished, mastered mix made like an engineer would
  (:func:`training.synth.engineer.engineer_mix`: per-role console, reverb send, mastering EQ, bus
  compression, limiter). Its console settings are known, so the loss also holds the distance of the
  prediction to them in unit space (the reverb and the limiter are outside the console; their traces in
  the target are what the console cannot reach);
* ``"random"``: the console with random "musical" parameters (:func:`random_params`).

Reference and target share one gain that brings the whole mix to REFERENCE_LUFS, as a reference is at
inference, so the target's level is knowable from the reference (the known master fader moves with it).

**Method 2** (unrelated reference): tracks of song A, reference = a section of another song B: a file of
``data.references`` or, without reference folders, an engineer mix of a section of another training song
(the quality benchmark's cross-song case).

**Losses** (:func:`mix_loss`, weights in :class:`LossWeights`). Everything is core's own loss code:

* method 1: MRSTFT to the target (:func:`core.features.mrstft_loss`), the match-report terms against the
  target (:class:`core.objective.SongModel` + :func:`core.objective.match_terms`: 1/3-octave tonal
  balance, octaves and width, dB^2), the mean square unit-space distance to the known settings
  (predicted parameters of the tracks that play in half B, and the master), and optionally the AF loss
  to the target (``af_weight``);
* method 2: the match-report terms against the reference, the AF loss (:func:`core.features.af_loss`) and
  the plausibility prior (:func:`core.objective.prior`).

The default weights are :class:`core.objective.Weights` (refinement's balance of tonal, octave, width,
AF and prior) divided by its AF weight, so the AF term keeps weight 1 as in the earlier method-2 loss.

Everything the model sees follows :mod:`core.predict`'s convention: tracks are console-ready (trimmed to
STEM_LUFS), the reference sits at REFERENCE_LUFS; :func:`core.predict.model_inputs` applies the model's
own input gains. A batch is padded to its largest track count with a mask; all examples of a batch
share one method. :class:`ExampleSet` makes example ``k`` from its own seed, so the data of every step is
fixed by (seed, rank, step) and a resumed run sees exactly the examples an uninterrupted run would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from core import console
from core.features import af_loss, integrated_lufs, mrstft_loss
from core.model import MixController
from core.objective import SongModel, Target, Weights, match_terms, prior, reference_target
from core.params import MASTER, TRACK
from core.predict import SILENCE_ENERGY, model_inputs
from core.prepare import REFERENCE_LUFS, STEM_LUFS
from training.datasets import AudioFile, Song, sample_reference, sample_section

METHODS = (1, 2)
PAIRINGS = ("engineer", "random")
MATCH_TERMS = ("tonal", "octave", "width")


@dataclass
class Example:
    """One training item. tracks (N, 2, L) console-ready; stereo (N,) bool; reference (2, Lr) at
    REFERENCE_LUFS; target (2, L) (method 1 only).

    Optional: ``unit_tracks (N, TRACK.n_predicted)`` / ``unit_master (MASTER.n_predicted,)``: the known
    settings in unit space (method 1), ``known (N,)`` bool: tracks whose settings count (those that play
    in the target); ``song_model``/``match_target``: the song model of the tracks and the levels it is
    compared with (:mod:`core.objective`), for the match-report terms.
    """

    tracks: np.ndarray
    stereo: np.ndarray
    reference: np.ndarray
    target: np.ndarray | None = None
    unit_tracks: np.ndarray | None = None
    unit_master: np.ndarray | None = None
    known: np.ndarray | None = None
    song_model: SongModel | None = field(default=None, repr=False)
    match_target: Target | None = field(default=None, repr=False)


_TENSORS = ("tracks", "stereo", "mask", "reference", "target", "unit_tracks", "unit_master", "known")


@dataclass
class Batch:
    """tracks (B, N, 2, L); stereo, mask (B, N) bool; reference (B, 2, Lr); target (B, 2, L) or None;
    unit_tracks (B, N, Pt), unit_master (B, Pm), known (B, N) or None; song_models / match_targets: one
    per example or empty; method: 1 or 2 (default: 1 when there is a target)."""

    tracks: torch.Tensor
    stereo: torch.Tensor
    mask: torch.Tensor
    reference: torch.Tensor
    target: torch.Tensor | None = None
    unit_tracks: torch.Tensor | None = None
    unit_master: torch.Tensor | None = None
    known: torch.Tensor | None = None
    song_models: list = field(default_factory=list)
    match_targets: list = field(default_factory=list)
    method: int = 0

    def __post_init__(self):
        if not self.method:
            self.method = 1 if self.target is not None else 2

    def to(self, device) -> Batch:
        moved = {k: None if getattr(self, k) is None else getattr(self, k).to(device, non_blocking=True)
                 for k in _TENSORS}
        return Batch(**moved, song_models=self.song_models, match_targets=self.match_targets,
                     method=self.method)

    @property
    def size(self) -> int:
        return int(self.tracks.shape[0])


def collate(examples: Sequence[Example], method: int = 0) -> Batch:
    """Stack examples, padding tracks with silence (mask False) to the largest count."""
    b = len(examples)
    n = max(e.tracks.shape[0] for e in examples)
    length = examples[0].tracks.shape[-1]
    tracks = np.zeros((b, n, 2, length), np.float32)
    stereo = np.zeros((b, n), bool)
    mask = np.zeros((b, n), bool)
    for i, e in enumerate(examples):
        k = e.tracks.shape[0]
        tracks[i, :k], stereo[i, :k], mask[i, :k] = e.tracks, e.stereo, True
    reference = torch.from_numpy(np.stack([e.reference for e in examples]))
    target = None
    if examples[0].target is not None:
        target = torch.from_numpy(np.stack([e.target for e in examples]))
    unit_t = unit_m = known = None
    if all(e.unit_tracks is not None for e in examples):
        unit_t = np.zeros((b, n, TRACK.n_predicted), np.float32)
        known = np.zeros((b, n), bool)
        for i, e in enumerate(examples):
            k = e.tracks.shape[0]
            unit_t[i, :k] = e.unit_tracks
            known[i, :k] = True if e.known is None else e.known
        unit_t, known = torch.from_numpy(unit_t), torch.from_numpy(known)
        unit_m = torch.from_numpy(np.stack([e.unit_master for e in examples]).astype(np.float32))
    models, targets = [], []
    if all(e.song_model is not None and e.match_target is not None for e in examples):
        models, targets = [e.song_model for e in examples], [e.match_target for e in examples]
    return Batch(torch.from_numpy(tracks), torch.from_numpy(stereo), torch.from_numpy(mask), reference,
                 target, unit_t, unit_m, known, models, targets, method)


# --- random console settings ------------------------------------------------------------------------------

def _draw(schema, rng: np.random.Generator, rows: int) -> np.ndarray:
    """Each predicted parameter drawn from its schema's typical setting (:attr:`core.params.Param.typical`),
    or uniformly over its unit range where it has none; the others at their defaults."""
    out = schema.from_unit(rng.uniform(0.0, 1.0, size=(rows, len(schema))))
    for j, p in enumerate(schema):
        if not p.predicted:
            out[:, j] = p.default
            continue
        if p.typical is None:
            continue  # frequencies: log-uniform over the band's whole range (the unit draw above)
        lo, hi, log = p.typical
        u = rng.uniform(0.0, 1.0, size=rows)
        out[:, j] = lo * (hi / lo) ** u if log else lo + u * (hi - lo)
    return schema.clip(out)


def random_params(n_tracks: int, rng: np.random.Generator, style: str = "musical"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Random physical console settings: ``(n_tracks, len(TRACK))`` and ``(len(MASTER),)``.

    style ``"uniform"``: every predicted parameter uniform in its unit range (log scales log-uniform).
    ``"musical"``: each parameter within its schema's typical setting (:attr:`core.params.Param.typical`:
    faders -15..+6 dB, EQ gains within +/-9 dB (master +/-3), Q 0.5..3, moderate compression, pans
    anywhere but hard). Non-predicted parameters (the trim) stay at their defaults.
    """
    if style == "uniform":
        tracks = TRACK.from_unit(rng.uniform(0.0, 1.0, size=(n_tracks, len(TRACK))))
        master = MASTER.from_unit(rng.uniform(0.0, 1.0, size=len(MASTER)))
        tracks[:, ~TRACK.predicted_mask] = TRACK.defaults()[~TRACK.predicted_mask]
        return tracks, master
    if style != "musical":
        raise ValueError(f"unknown random parameter style '{style}'")
    tracks = _draw(TRACK, rng, n_tracks)
    master = _draw(MASTER, rng, 1)[0]
    return tracks, master


# --- examples -------------------------------------------------------------------------------------------

def _known_units(tracks_phys: np.ndarray, master_phys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit values of the predicted parameters of physical track ``(N, len(TRACK))`` and master vectors."""
    ut = TRACK.to_unit(np.asarray(tracks_phys, np.float64))[:, TRACK.predicted_mask]
    um = MASTER.to_unit(np.asarray(master_phys, np.float64))[MASTER.predicted_mask]
    return ut.astype(np.float32), um.astype(np.float32)


def _plays(tracks: np.ndarray) -> np.ndarray:
    """(N,) bool: console-ready tracks (at STEM_LUFS) whose mean energy, raised to the reference level,
    is not silence (:data:`core.predict.SILENCE_ENERGY`)."""
    energy = np.mean(np.square(tracks, dtype=np.float64), axis=(1, 2))
    return energy * 10.0 ** ((REFERENCE_LUFS - STEM_LUFS) / 10.0) >= SILENCE_ENERGY


def _match(tracks: np.ndarray, stereo: np.ndarray, target: np.ndarray, sample_rate: int, plays=None
           ) -> tuple[SongModel, Target]:
    """The song model of console-ready ``tracks`` and the levels of ``target`` it is compared with."""
    active = np.ones(len(tracks), bool) if plays is None else np.asarray(plays, bool)
    return SongModel(tracks, sample_rate, active, stereo), reference_target(target, sample_rate)


def _stems_dict(tracks: np.ndarray, stereo: np.ndarray, names: Sequence[str] | None = None) -> dict:
    """{name: (C, T)} for :func:`training.synth.engineer.engineer_mix` (mono strips as one channel)."""
    out = {}
    for i, x in enumerate(tracks):
        name = names[i] if names is not None else f"track{i}"
        while name in out:
            name += "_"
        out[name] = x if stereo[i] else x[:1]
    return out


def method1_example(tracks: np.ndarray, stereo: np.ndarray, sample_rate: int, rng: np.random.Generator,
                    style: str = "musical", match: bool = True) -> Example | None:
    """Method 1 from console-ready tracks ``(N, 2, 2L)``: random mix, split into reference A / target B."""
    n, _, length2 = tracks.shape
    half = length2 // 2
    tp, mp = random_params(n, rng, style)
    with torch.no_grad():
        mix = console.render(torch.from_numpy(tracks)[None], torch.from_numpy(tp)[None].float(),
                             torch.from_numpy(mp)[None].float(), sample_rate,
                             stereo=torch.from_numpy(stereo)[None])[0].numpy()
    level = integrated_lufs(mix, sample_rate)
    if not math.isfinite(level) or not np.all(np.isfinite(mix)):
        return None
    gain = np.float32(10.0 ** ((REFERENCE_LUFS - level) / 20.0))
    reference = np.ascontiguousarray(mix[:, :half] * gain)
    target = np.ascontiguousarray(mix[:, half:2 * half] * gain)
    tracks_b = np.ascontiguousarray(tracks[:, :, half:2 * half])
    mp = mp.copy()
    g = MASTER.index("gain_db")
    mp[g] = MASTER["gain_db"].clip(mp[g] + REFERENCE_LUFS - level)
    unit_t, unit_m = _known_units(tp, mp)
    plays = _plays(tracks_b)
    e = Example(tracks_b, stereo, reference, target, unit_t, unit_m, plays)
    if match and plays.any():
        e.song_model, e.match_target = _match(tracks_b, stereo, target, sample_rate, plays)
    return e


def paired_example(tracks: np.ndarray, stereo: np.ndarray, sample_rate: int, rng: np.random.Generator,
                   names: Sequence[str] | None = None, match: bool = True) -> Example | None:
    """Method 1 with an engineer's finished mix of console-ready tracks ``(N, 2, 2L)`` (names give the
    roles): reference = the mix of half A, target = the mix of half B, tracks = half B (trimmed as the
    engineer's console trimmed them), known settings = the engineer's console."""
    from training.synth.engineer import engineer_mix

    half = tracks.shape[-1] // 2
    em = engineer_mix(_stems_dict(tracks, stereo, names), sample_rate, rng)
    level = integrated_lufs(em.mix, sample_rate)
    if not math.isfinite(level) or not np.all(np.isfinite(em.mix)):
        return None
    gain_db = REFERENCE_LUFS - level
    gain = np.float32(10.0 ** (gain_db / 20.0))
    trims = (10.0 ** (np.asarray(em.inputs.trim_db, np.float64) / 20.0)).astype(np.float32)
    ready = em.inputs.stems[:, :, :2 * half] * trims[:, None, None]  # what the engineer's console met
    tracks_b = np.ascontiguousarray(ready[:, :, half:2 * half])
    plays = _plays(tracks_b) & ~np.asarray(em.inputs.silent, bool)
    if not plays.any():
        return None
    reference = np.ascontiguousarray(em.mix[:, :half] * gain)
    target = np.ascontiguousarray(em.mix[:, half:2 * half] * gain)
    master = em.params.master.copy()
    g = MASTER.index("gain_db")
    master[g] = MASTER["gain_db"].clip(master[g] + gain_db)
    unit_t, unit_m = _known_units(em.params.tracks, master)
    st = np.asarray(em.inputs.stereo, bool)
    e = Example(tracks_b, st, reference, target, unit_t, unit_m, plays)
    if match:
        e.song_model, e.match_target = _match(tracks_b, st, target, sample_rate, plays)
    return e


def engineer_reference(song: Song, seconds: float, sample_rate: int, rng: np.random.Generator,
                       max_tracks: int = 64) -> np.ndarray | None:
    """A ``(2, L)`` engineer mix of a random section of ``song`` at REFERENCE_LUFS (a method-2 reference
    when no reference folders are given)."""
    from training.synth.engineer import engineer_mix

    sec = sample_section(song, seconds, sample_rate, rng, max_tracks, 1)
    if sec is None:
        return None
    mix = engineer_mix(_stems_dict(sec.tracks, sec.stereo, sec.names), sample_rate, rng).mix
    level = integrated_lufs(mix, sample_rate)
    if not math.isfinite(level):
        return None
    return np.ascontiguousarray(mix * np.float32(10.0 ** ((REFERENCE_LUFS - level) / 20.0)))


class ExampleStream(torch.utils.data.IterableDataset):
    """Random examples for method 1 or 2 (:meth:`draw`), or endless ones by iterating.

    songs: multitracks; references: reference files (method 2; without them, engineer mixes of other
    songs). pairing: method 1's mix (module docstring). When iterated, each (rank, worker) pair draws
    from its own ``numpy`` stream seeded by ``(seed, rank, worker, epoch)``.
    """

    def __init__(self, method: int, songs: Sequence[Song], references: Sequence[AudioFile] | None,
                 seconds: float, sample_rate: int, min_tracks: int = 2, max_tracks: int = 16, seed: int = 0,
                 rank: int = 0, epoch: int = 0, pairing: str = "random", match: bool = True):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be 1 or 2, got {method}")
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
        if not songs:
            raise ValueError("no songs to train on")
        if method == 2 and not references and len(songs) < 2:
            raise ValueError("method 2 needs reference songs, or at least two songs to mix references from")
        self.method, self.songs, self.references = method, list(songs), list(references or [])
        self.seconds, self.sample_rate = float(seconds), int(sample_rate)
        self.min_tracks, self.max_tracks = int(min_tracks), int(max_tracks)
        self.seed, self.rank, self.epoch = int(seed), int(rank), int(epoch)
        self.pairing, self.match = pairing, bool(match)

    def rng(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        return np.random.default_rng([self.seed, self.rank, worker, self.epoch])

    def __iter__(self) -> Iterator[Example]:
        rng = self.rng()
        while True:
            example = self.draw(rng)
            if example is not None:
                yield example

    def draw(self, rng: np.random.Generator) -> Example | None:
        k = int(rng.integers(len(self.songs)))
        song = self.songs[k]
        if self.method == 2:
            sec = sample_section(song, self.seconds, self.sample_rate, rng, self.max_tracks, self.min_tracks)
            if sec is None:
                return None
            if self.references:
                ref = sample_reference(self.references, self.seconds, self.sample_rate, rng)
            else:
                other = (k + 1 + int(rng.integers(len(self.songs) - 1))) % len(self.songs)
                ref = engineer_reference(self.songs[other], self.seconds, self.sample_rate, rng)
            if ref is None:
                return None
            e = Example(sec.tracks, sec.stereo, ref)
            if self.match:
                e.song_model, e.match_target = _match(sec.tracks, sec.stereo, ref, self.sample_rate)
            return e
        sec = sample_section(song, 2 * self.seconds, self.sample_rate, rng, self.max_tracks, self.min_tracks)
        if sec is None:
            return None
        if self.pairing == "engineer":
            return paired_example(sec.tracks, sec.stereo, self.sample_rate, rng, sec.names, self.match)
        return method1_example(sec.tracks, sec.stereo, self.sample_rate, rng, match=self.match)


@dataclass
class Curriculum:
    """The share of method-1 (paired) batches over training: ``start`` at step 0, moving linearly to
    ``end`` at step ``steps`` (0: over the whole run), then ``end``. Whether step ``s`` is a method-1 step
    is drawn from the step's own seed, so it does not depend on where a run was interrupted."""

    start: float = 0.8
    end: float = 0.5
    steps: int = 0

    def share(self, step: int, total_steps: int) -> float:
        span = self.steps or total_steps
        t = min(1.0, step / span) if span > 0 else 1.0
        return float(self.start + (self.end - self.start) * t)

    def method(self, step: int, total_steps: int, seed: int) -> int:
        u = np.random.default_rng([int(seed), 104729, int(step)]).random()
        return 1 if u < self.share(step, total_steps) else 2


class ExampleSet(torch.utils.data.Dataset):
    """Example ``k`` of a run, made from its own seed ``(seed, rank, k)``: step ``k // per_step``'s method
    (fixed, or drawn by the :class:`Curriculum`). Indexed, not streamed, so the examples of a step do not
    depend on worker count, interruptions or resumes. Draws that hit silence are retried with the same
    generator."""

    def __init__(self, streams: dict[int, ExampleStream], per_step: int, total_steps: int, seed: int = 0,
                 rank: int = 0, method: int | str = 2, curriculum: Curriculum | None = None,
                 tries: int = 64):
        self.streams, self.per_step, self.total_steps = streams, int(per_step), int(total_steps)
        self.seed, self.rank, self.fixed, self.curriculum, self.tries = int(seed), int(rank), method, \
            curriculum, tries

    def method_at(self, step: int) -> int:
        if self.fixed in METHODS:
            return int(self.fixed)
        return self.curriculum.method(step, self.total_steps, self.seed)

    def __len__(self) -> int:  # indices are generated on demand; this bounds a plain sampler
        return (self.total_steps + 1) * self.per_step

    def __getitem__(self, k: int) -> Example:
        stream = self.streams[self.method_at(k // self.per_step)]
        rng = np.random.default_rng([self.seed, self.rank, int(k)])
        for _ in range(self.tries):
            e = stream.draw(rng)
            if e is not None:
                return e
        raise RuntimeError(f"example {k}: {self.tries} draws found no usable section (data too quiet?)")


class StepBatches(torch.utils.data.Sampler):
    """Batches of consecutive example indices: ``[start, start + b)``, ``[start + b, start + 2 b)`` ..."""

    def __init__(self, start: int, batch_size: int, stop: int):
        self.start, self.batch_size, self.stop = int(start), int(batch_size), int(stop)

    def __iter__(self):
        for k in range(self.start, self.stop, self.batch_size):
            yield list(range(k, min(k + self.batch_size, self.stop)))

    def __len__(self) -> int:
        return max(0, -(-(self.stop - self.start) // self.batch_size))


# --- losses -------------------------------------------------------------------------------------------------

@dataclass
class LossWeights:
    """Weights of the training loss's terms (:func:`mix_loss`). Defaults: the match terms, AF and the prior
    as in :class:`core.objective.Weights` over its AF weight (so AF keeps weight 1, as in the earlier
    method-2 loss); ``mrstft`` 1 as in the earlier method 1; ``params`` 100, so a mean square unit
    distance of 0.01 (settings 10 % of their ranges off, RMS) weighs as much as an MRSTFT of 1."""

    mrstft: float = 1.0
    params: float = 100.0
    tonal: float = Weights.tonal / Weights.af
    octave: float = Weights.octave / Weights.af
    width: float = Weights.width / Weights.af
    af: float = 1.0  # method 2 (method 1: ``af_weight`` of the config)
    prior: float = Weights.prior / Weights.af

    @classmethod
    def from_dict(cls, d: dict | None) -> LossWeights:
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d or {}) - known)
        if bad:
            raise ValueError(f"unknown loss weight(s): {', '.join(bad)} (known: {', '.join(sorted(known))})")
        return cls(**(d or {}))


def unwrap(model) -> MixController:
    """The :class:`MixController` inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def predict_units(model, batch: Batch, autocast=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Model -> predicted unit values ``(B, N, Pt)``, ``(B, Pm)`` in float32."""
    cfg = unwrap(model).config
    tracks_in, ref_in = model_inputs(batch.tracks, batch.reference, cfg)
    if autocast is None:
        track_unit, master_unit = model(tracks_in, ref_in, batch.mask)
    else:
        with autocast:
            track_unit, master_unit = model(tracks_in, ref_in, batch.mask)
    return track_unit.float(), master_unit.float()


def render_units(track_unit: torch.Tensor, master_unit: torch.Tensor, batch: Batch, sample_rate: int):
    """Unit values -> (physical track, physical master, console mix ``(B, 2, L)``)."""
    pt, pm = MixController.to_physical(track_unit, master_unit, batch.mask)
    mix = console.render(batch.tracks, pt, pm, sample_rate, stereo=batch.stereo, mask=batch.mask)
    return pt, pm, mix


def predict_mix(model, batch: Batch, sample_rate: int, autocast=None) -> torch.Tensor:
    """Model -> parameters -> console mix ``(B, 2, L)``. ``autocast``: a context manager for the model only
    (the console always runs in float32)."""
    return render_units(*predict_units(model, batch, autocast), batch, sample_rate)[2]


def _full_units(unit: torch.Tensor, schema) -> torch.Tensor:
    """Predicted unit values ``(..., n_predicted)`` -> ``(..., len(schema))`` (others 0.5; the prior
    ignores them)."""
    idx = torch.as_tensor(schema.predicted_mask.nonzero()[0], device=unit.device)
    return torch.full((*unit.shape[:-1], len(schema)), 0.5, dtype=unit.dtype,
                      device=unit.device).index_copy(-1, idx, unit)


def _match_terms(batch: Batch, pt: torch.Tensor, pm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean over the batch of :func:`core.objective.match_terms` (dB^2), on the CPU in float64."""
    sums = {k: 0.0 for k in MATCH_TERMS}
    mask = batch.mask.cpu()
    for i, (sm, target) in enumerate(zip(batch.song_models, batch.match_targets, strict=True)):
        n = int(mask[i].sum())
        terms = match_terms(sm(pt[i, :n].cpu(), pm[i].cpu()), target)
        for k in MATCH_TERMS:
            sums[k] = sums[k] + terms[k]
    return {k: (v / batch.size).to(pt.device, torch.float32) for k, v in sums.items()}


def _prior_term(batch: Batch, pt, pm, track_unit, master_unit) -> torch.Tensor:
    """Mean over the batch of :func:`core.objective.prior` of the predicted settings (on the CPU, where
    the prior keeps its constants; the settings are small)."""
    device = pt.device
    pt, pm = pt.cpu(), pm.cpu()
    ut, um = _full_units(track_unit.cpu(), TRACK), _full_units(master_unit.cpu(), MASTER)
    mask = batch.mask.cpu()
    free_t = torch.as_tensor(TRACK.predicted_mask, dtype=pt.dtype)
    free_m = torch.as_tensor(MASTER.predicted_mask, dtype=pt.dtype)
    total = pt.new_zeros(())
    for i in range(batch.size):
        n = int(mask[i].sum())
        total = total + prior(pt[i, :n], pm[i], ut[i, :n], um[i], mask[i, :n], free_t.expand(n, -1), free_m)
    return (total / batch.size).to(device)


def _params_term(batch: Batch, track_unit, master_unit) -> torch.Tensor:
    """Mean square unit distance to the known settings: tracks that play in the target, and the master."""
    w = (batch.known & batch.mask).to(track_unit.dtype)[..., None]
    dt = ((track_unit - batch.unit_tracks).square() * w).sum() / (w.sum() * track_unit.shape[-1]).clamp_min(1)
    dm = (master_unit - batch.unit_master).square().mean()
    return (dt * TRACK.n_predicted + dm * MASTER.n_predicted) / (TRACK.n_predicted + MASTER.n_predicted)


def mix_loss(batch: Batch, mix, pt, pm, track_unit, master_unit, sample_rate: int,
             weights: LossWeights | None = None, af_weight: float = 1.0, method: int | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss of a mix and its settings, and its named (unweighted) parts for the logs.

    method 1: ``mrstft`` + ``params`` + match terms (+ ``af_weight`` x ``af`` against the target);
    method 2: match terms + ``af`` against the reference + ``prior``. Terms need what the batch holds:
    the match terms its song models, ``params`` its known settings.
    """
    w = weights or LossWeights()
    method = method or batch.method
    terms: dict[str, torch.Tensor] = {}
    total = mix.new_zeros(())
    if method == 1:
        if batch.target is None:
            raise ValueError("method 1 needs a target mix")
        terms["mrstft"] = mrstft_loss(mix, batch.target)
        total = total + w.mrstft * terms["mrstft"]
        if af_weight > 0:
            terms["af"], _ = af_loss(mix, batch.target, sample_rate)
            total = total + af_weight * terms["af"]
        if batch.unit_tracks is not None and w.params > 0:
            terms["params"] = _params_term(batch, track_unit, master_unit)
            total = total + w.params * terms["params"]
    else:
        terms["af"], _ = af_loss(mix, batch.reference, sample_rate)
        total = total + w.af * terms["af"]
        if w.prior > 0:
            terms["prior"] = _prior_term(batch, pt, pm, track_unit, master_unit)
            total = total + w.prior * terms["prior"]
    if batch.song_models and (w.tonal or w.octave or w.width):
        match = _match_terms(batch, pt, pm)
        terms.update(match)
        total = total + w.tonal * match["tonal"] + w.octave * match["octave"] + w.width * match["width"]
    return total, terms


def training_loss(model, batch: Batch, method: int | None = None, sample_rate: int = 44100,
                  af_weight: float = 1.0, autocast=None, weights: LossWeights | None = None
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Model -> settings -> console mix -> :func:`mix_loss`."""
    track_unit, master_unit = predict_units(model, batch, autocast)
    pt, pm, mix = render_units(track_unit, master_unit, batch, sample_rate)
    return mix_loss(batch, mix, pt, pm, track_unit, master_unit, sample_rate, weights, af_weight, method)


def default_units(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit values of the console defaults (the equal-loudness sum), shaped like a prediction."""
    b, n = batch.tracks.shape[:2]
    ut = torch.as_tensor(TRACK.to_unit(TRACK.defaults())[TRACK.predicted_mask], dtype=torch.float32)
    um = torch.as_tensor(MASTER.to_unit(MASTER.defaults())[MASTER.predicted_mask], dtype=torch.float32)
    dev = batch.tracks.device
    return ut.to(dev).expand(b, n, -1) * batch.mask[..., None].to(dev), um.to(dev).expand(b, -1)


def default_loss(batch: Batch, sample_rate: int, weights: LossWeights | None = None, af_weight: float = 1.0,
                 method: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`mix_loss` of the equal-loudness sum (the baseline of the validation loss)."""
    with torch.no_grad():
        ut, um = default_units(batch)
        pt, pm, mix = render_units(ut, um, batch, sample_rate)
        return mix_loss(batch, mix, pt, pm, ut, um, sample_rate, weights, af_weight, method)


def loss_terms(method: int, mix: torch.Tensor, batch: Batch, sample_rate: int, af_weight: float = 1.0
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The earlier mix-only losses: method 2 the AF loss against the reference (terms: the five weighted
    AF terms); method 1 MRSTFT against the target plus ``af_weight`` x AF (terms: ``mrstft``, ``af``)."""
    if method == 2:
        return af_loss(mix, batch.reference, sample_rate)
    if batch.target is None:
        raise ValueError("method 1 needs a target mix")
    spec = mrstft_loss(mix, batch.target)
    terms = {"mrstft": spec}
    total = spec
    if af_weight > 0:
        af, af_parts = af_loss(mix, batch.target, sample_rate)
        total = total + af_weight * af
        terms["af"] = af
        terms.update(af_parts)
    return total, terms


def default_mix(batch: Batch, sample_rate: int) -> torch.Tensor:
    """The equal-loudness sum of a batch: console defaults on the console-ready tracks."""
    b, n = batch.tracks.shape[:2]
    pt = torch.as_tensor(TRACK.defaults(), dtype=torch.float32).expand(b, n, -1)
    pm = torch.as_tensor(MASTER.defaults(), dtype=torch.float32).expand(b, -1)
    with torch.no_grad():
        return console.render(batch.tracks, pt.to(batch.tracks.device), pm.to(batch.tracks.device),
                              sample_rate, stereo=batch.stereo, mask=batch.mask)
