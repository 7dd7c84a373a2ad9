"""The two training methods of Diff-MST (DESIGN.md section 1), as example streams and losses.

**Method 1** (self-supervised, a ground-truth mix exists): a ``2 L`` section of a multitrack is mixed by
the console with *random* parameters (:func:`random_params`); the mix is split in halves A and B. The
model gets the tracks of half B and the random mix of half A as reference, and its mix of half B is
compared with the random mix of half B (MRSTFT loss, plus the AF loss with weight ``af_weight``).
Reference and target share one gain that brings the whole random mix to REFERENCE_LUFS, as a reference
is at inference, so the target's level is knowable from the reference.

**Method 2**: tracks of song A, reference = a section of an unrelated song B (a real or generated mix);
AF loss only.

Everything the model sees follows :mod:`core.predict`'s convention: tracks are console-ready (trimmed to
STEM_LUFS by whole-file loudness), the reference sits at REFERENCE_LUFS; :func:`core.predict.model_inputs`
applies the model's own input gains. Examples are drawn at random, forever, from per-rank, per-worker
random streams (:class:`ExampleStream`); a batch is padded to its largest track count with a mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core import console
from core.features import af_loss, integrated_lufs, mrstft_loss
from core.model import MixController
from core.params import MASTER, TRACK
from core.predict import model_inputs
from core.prepare import REFERENCE_LUFS
from training.datasets import AudioFile, Song, sample_reference, sample_section

METHODS = (1, 2)


@dataclass
class Example:
    """One training item. tracks (N, 2, L) console-ready; stereo (N,) bool; reference (2, Lr) at
    REFERENCE_LUFS; target (2, L) (method 1 only)."""

    tracks: np.ndarray
    stereo: np.ndarray
    reference: np.ndarray
    target: np.ndarray | None = None


@dataclass
class Batch:
    """tracks (B, N, 2, L); stereo, mask (B, N) bool; reference (B, 2, Lr); target (B, 2, L) or None."""

    tracks: torch.Tensor
    stereo: torch.Tensor
    mask: torch.Tensor
    reference: torch.Tensor
    target: torch.Tensor | None = None

    def to(self, device) -> Batch:
        return Batch(*(None if t is None else t.to(device, non_blocking=True)
                       for t in (self.tracks, self.stereo, self.mask, self.reference, self.target)))

    @property
    def size(self) -> int:
        return int(self.tracks.shape[0])


def collate(examples: Sequence[Example]) -> Batch:
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
    return Batch(torch.from_numpy(tracks), torch.from_numpy(stereo), torch.from_numpy(mask), reference,
                 target)


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


# --- example streams --------------------------------------------------------------------------------------

class ExampleStream(torch.utils.data.IterableDataset):
    """Endless random examples for method 1 or 2.

    songs: multitracks; references: reference files (method 2). Each (rank, worker) pair draws from its
    own ``numpy`` stream seeded by ``(seed, rank, worker, epoch)``; ``epoch`` is bumped on resume so a
    resumed run does not replay the examples it already saw.
    """

    def __init__(self, method: int, songs: Sequence[Song], references: Sequence[AudioFile] | None,
                 seconds: float, sample_rate: int, min_tracks: int = 2, max_tracks: int = 16, seed: int = 0,
                 rank: int = 0, epoch: int = 0):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be 1 or 2, got {method}")
        if method == 2 and not references:
            raise ValueError("method 2 needs reference songs")
        if not songs:
            raise ValueError("no songs to train on")
        self.method, self.songs, self.references = method, list(songs), list(references or [])
        self.seconds, self.sample_rate = float(seconds), int(sample_rate)
        self.min_tracks, self.max_tracks = int(min_tracks), int(max_tracks)
        self.seed, self.rank, self.epoch = int(seed), int(rank), int(epoch)

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
        song = self.songs[int(rng.integers(len(self.songs)))]
        if self.method == 2:
            sec = sample_section(song, self.seconds, self.sample_rate, rng, self.max_tracks, self.min_tracks)
            if sec is None:
                return None
            ref = sample_reference(self.references, self.seconds, self.sample_rate, rng)
            return None if ref is None else Example(sec.tracks, sec.stereo, ref)
        sec = sample_section(song, 2 * self.seconds, self.sample_rate, rng, self.max_tracks, self.min_tracks)
        return None if sec is None else method1_example(sec.tracks, sec.stereo, self.sample_rate, rng)


def method1_example(tracks: np.ndarray, stereo: np.ndarray, sample_rate: int, rng: np.random.Generator,
                    style: str = "musical") -> Example | None:
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
    return Example(np.ascontiguousarray(tracks[:, :, half:2 * half]), stereo, reference, target)


# --- losses -------------------------------------------------------------------------------------------------

def unwrap(model) -> MixController:
    """The :class:`MixController` inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def predict_mix(model, batch: Batch, sample_rate: int, autocast=None) -> torch.Tensor:
    """Model -> parameters -> console mix ``(B, 2, L)``. ``autocast``: a context manager for the model only
    (the console always runs in float32)."""
    cfg = unwrap(model).config
    tracks_in, ref_in = model_inputs(batch.tracks, batch.reference, cfg)
    if autocast is None:
        track_unit, master_unit = model(tracks_in, ref_in, batch.mask)
    else:
        with autocast:
            track_unit, master_unit = model(tracks_in, ref_in, batch.mask)
    pt, pm = MixController.to_physical(track_unit.float(), master_unit.float(), batch.mask)
    return console.render(batch.tracks, pt, pm, sample_rate, stereo=batch.stereo, mask=batch.mask)


def loss_terms(method: int, mix: torch.Tensor, batch: Batch, sample_rate: int, af_weight: float = 1.0
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss of a predicted mix and its named parts (for logs).

    Method 2: AF loss against the reference (terms: the five weighted AF terms). Method 1: MRSTFT against
    the target plus ``af_weight`` x AF against the target (terms: ``mrstft``, ``af`` and the AF terms).
    """
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


def training_loss(model, batch: Batch, method: int, sample_rate: int, af_weight: float = 1.0, autocast=None
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    mix = predict_mix(model, batch, sample_rate, autocast)
    return loss_terms(method, mix, batch, sample_rate, af_weight)


def default_mix(batch: Batch, sample_rate: int) -> torch.Tensor:
    """The equal-loudness sum of a batch: console defaults on the console-ready tracks."""
    b, n = batch.tracks.shape[:2]
    pt = torch.as_tensor(TRACK.defaults(), dtype=torch.float32).expand(b, n, -1)
    pm = torch.as_tensor(MASTER.defaults(), dtype=torch.float32).expand(b, -1)
    with torch.no_grad():
        return console.render(batch.tracks, pt.to(batch.tracks.device), pm.to(batch.tracks.device),
                              sample_rate, stereo=batch.stereo, mask=batch.mask)
