"""Training loop: config file, curriculum of methods 1 and 2, AMP, gradient accumulation, checkpoints and
bit-for-bit resume, quality validation, logs and learning curve, DDP.

    python -m training.train --config training/configs/synth_real_mixed.json [--resume] [--set steps=200]
    torchrun --nproc_per_node=2 -m training.train --config ...        # DDP: gloo on CPU, nccl on GPU
    torchrun --nnodes=2 --node_rank=R --master_addr=HOST --nproc_per_node=8 -m training.train --config ...

A config is a JSON object of :class:`TrainConfig` fields (``data`` holds :class:`DataConfig` fields,
``model`` holds :class:`core.model.ModelConfig` overrides, ``curriculum`` :class:`training.methods.Curriculum`
fields, ``loss`` :class:`training.methods.LossWeights` overrides); relative paths are relative to the
current folder. ``--set KEY=VALUE`` overrides a field (``data.references=[...]``, ``model.embed_dim=128``,
``curriculum.end=0.3``; the value is JSON, or a plain string).

``method``: 1 (paired: engineer mixes with known settings, :mod:`training.methods`), 2 (unrelated
reference) or ``"mixed"``: each step is method 1 with the curriculum's share (``start`` at step 0,
moving linearly to ``end`` at ``curriculum.steps``, 0 = the whole run), drawn from the step's own seed.

Validation (every ``val_every`` steps, and before the first step with ``val_at_start``): the loss on
fixed examples of each method (logged), and the quality benchmark's measures of the model alone on
held-out songs (:class:`training.evaluate.QualityValidation`: ``val_cross`` cross-song and ``val_same``
same-song cases of ``val_seconds``). ``best.pt`` is the checkpoint with the lowest validation score
(:func:`training.evaluate.validation_score`), or the lowest validation loss when no held-out songs are
measured -- never the training loss.

Written to ``out_dir`` (``runs/NAME/``; ``runs/`` is not tracked): ``last.pt`` (a model checkpoint,
:mod:`core.checkpoint`, usable as ``stylemix mix --model``), ``last_state.pt`` (optimiser, schedule, RNG
and counters for ``--resume``), ``best.pt``, ``step_NNNNNN.pt`` every ``keep_every`` steps,
``config.json``, ``log.csv`` (or TensorBoard events with ``"log": "tensorboard"``) and ``curve.png``
(:mod:`training.curves`). Progress lines give s/step, the ETA to ``steps`` and the time left of this
piece (``max_minutes``).

**Resume is bit-for-bit**: example ``k`` of the run is made from its own seed (:class:`ExampleSet`), the
method of each step from the step's seed, and the optimiser, schedule and RNG states are restored, so a
run stopped (``max_minutes``, ``stop_after``, Ctrl-C: a checkpoint is written) and resumed with
``--resume`` ends with the same weights as one that never stopped (``tests/test_training_balance.py``).
Change ``steps`` on resume only knowingly: the cosine schedule and the curriculum follow it.

``batch_size`` is per process and per micro-step: an optimiser step sees
``batch_size x accum_steps x world_size`` examples. Each process draws its own examples (seeded by
rank), so there is no sampler to shard.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.model import MixController, ModelConfig
from training.datasets import describe, scan_multitracks, scan_references, split_songs
from training.evaluate import VAL_COLUMNS, QualityValidation
from training.methods import (
    METHODS,
    PAIRINGS,
    Batch,
    Curriculum,
    ExampleSet,
    ExampleStream,
    LossWeights,
    StepBatches,
    collate,
    default_loss,
    training_loss,
    unwrap,
)

#: ``method`` values: 1, 2, or both under a curriculum.
MIXED = "mixed"
#: Loss terms logged per method (``m1_mrstft`` ...), fixed so the CSV has the same columns throughout.
TERM_COLUMNS = {1: ("mrstft", "af", "params", "tonal", "octave", "width"),
                2: ("af", "prior", "tonal", "octave", "width")}


@dataclass
class DataConfig:
    """Where examples come from. ``train``/``val``: multitrack roots; ``references``/``val_references``:
    reference folders (method 2). Without ``val``, ``held_out`` songs (a count, or a fraction < 1) of the
    training roots are kept apart for validation."""

    train: list[str] = field(default_factory=list)
    layout: str = "auto"
    references: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    val_references: list[str] = field(default_factory=list)
    held_out: float = 0.0
    cache: str | None = None  # JSON index of file headers and loudness (speeds up restarts)


@dataclass
class TrainConfig:
    out_dir: str = "runs/default"
    method: int | str = 2  # 1, 2 or "mixed" (both; share of method 1 from ``curriculum``)
    pairing: str = "engineer"  # method 1's mix: "engineer" (finished mix, known settings) or "random"
    curriculum: dict[str, Any] = field(default_factory=dict)  # training.methods.Curriculum fields
    loss: dict[str, float] = field(default_factory=dict)  # training.methods.LossWeights overrides
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    section_seconds: float = 4.0
    min_tracks: int = 2
    max_tracks: int = 16
    batch_size: int = 4
    accum_steps: int = 1
    steps: int = 1000
    lr: float = 3e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay ends at lr x this
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    af_weight: float = 1.0  # method 1: weight of the AF term next to MRSTFT
    amp: bool = True  # mixed precision for the model on CUDA (bf16 where supported, else fp16)
    log: str = "csv"  # or "tensorboard"
    log_every: int = 10
    checkpoint_every: int = 100
    keep_every: int = 0  # also keep step_NNNNNN.pt every this many steps (0 = never)
    val_every: int = 0
    val_examples: int = 8  # fixed examples per method for the validation loss (logged)
    val_cross: int = 2  # held-out cross-song cases of the quality validation (picks best.pt)
    val_same: int = 2  # held-out same-song cases
    val_seconds: float = 12.0  # length of each validation case (from the middle of the song)
    val_at_start: bool = True  # also validate before the first step (the starting point's numbers)
    val_at_end: bool = True  # and when a piece stops between validations (time limit, stop_after, Ctrl-C)
    num_workers: int = 0
    seed: int = 0
    threads: int = 0  # torch CPU threads per process (0 = torch's default)
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time in this run (0 = no limit)
    stop_after: int = 0  # stop (with a checkpoint) after this many steps in this run (0 = no limit)
    plot: bool = True  # draw the learning curve into out_dir/curve.png at each validation and at the end
    init_from: str | None = None  # start from this checkpoint's weights (its config wins over ``model``)
    device: str = "auto"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        d = dict(d)
        data = d.pop("data", {}) or {}
        data_known = {f.name for f in fields(DataConfig)}
        bad = sorted(set(data) - data_known)
        if bad:
            raise ValueError(f"unknown data field(s): {', '.join(bad)}")
        for key in ("train", "references", "val", "val_references"):
            if isinstance(data.get(key), str):
                data[key] = [data[key]]
        cfg = cls(**d, data=DataConfig(**data))
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.method not in (*METHODS, MIXED):
            raise ValueError(f"method must be 1, 2 or \"{MIXED}\", got {self.method!r}")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}, got {self.pairing!r}")
        if not self.data.train:
            raise ValueError("data.train: no multitrack folders given")
        try:
            c = Curriculum(**self.curriculum)
        except TypeError as exc:
            raise ValueError(f"curriculum: {exc}") from None
        if not (0.0 <= c.start <= 1.0 and 0.0 <= c.end <= 1.0) or c.steps < 0:
            raise ValueError("curriculum: start and end are shares in 0..1, steps >= 0")
        LossWeights.from_dict(self.loss)
        if self.log not in ("csv", "tensorboard"):
            raise ValueError(f"log must be 'csv' or 'tensorboard', got {self.log!r}")
        for name in ("batch_size", "accum_steps", "steps", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        ModelConfig(**self.model)  # fail early on a bad model config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """Read a JSON config and apply ``KEY=VALUE`` overrides (dotted keys reach into data/model)."""
    d = json.loads(Path(path).read_text())
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        target = d
        *parents, last = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    return TrainConfig.from_dict(d)


# --- distributed ----------------------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def methods_of(cfg: TrainConfig) -> tuple[int, ...]:
    return METHODS if cfg.method == MIXED else (int(cfg.method),)


def setup_distributed(device: str = "auto") -> Dist:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT).

    Backend: nccl when each process has a GPU, gloo otherwise (``STYLEMIX_DIST_BACKEND`` overrides).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        backend = os.environ.get("STYLEMIX_DIST_BACKEND") or ("nccl" if use_cuda else "gloo")
        dist.init_process_group(backend)
    rank = dist.get_rank() if world > 1 else 0
    return Dist(rank, world, local_rank, dev)


def _any_rank(flag: bool, d: Dist) -> bool:
    """True on every process when ``flag`` is True on any (so all stop at the same step)."""
    if d.world == 1:
        return flag
    t = torch.tensor([float(flag)], device=d.device if d.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _all_mean(values: list[float], d: Dist) -> list[float]:
    if d.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=d.device if d.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return (t / d.world).tolist()


# --- logging ----------------------------------------------------------------------------------------------

class Logger:
    """CSV or TensorBoard scalars plus progress lines, on the main process only."""

    VAL_KEYS = ("val_loss", "val_equal_loudness", *VAL_COLUMNS)

    def __init__(self, cfg: TrainConfig, d: Dist, resumed: bool):
        self.enabled = d.main
        self.kind = cfg.log
        self.methods = methods_of(cfg)
        self.path = Path(cfg.out_dir) / "log.csv"
        self.writer = None
        self.header: list[str] | None = None
        if not self.enabled:
            return
        if self.kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise RuntimeError("log 'tensorboard' needs the tensorboard package "
                                   "(pip install tensorboard), or use log 'csv'") from exc
            self.writer = SummaryWriter(str(Path(cfg.out_dir) / "tensorboard"))
        elif resumed and self.path.is_file():
            with open(self.path, newline="") as f:
                self.header = next(csv.reader(f), None)
        elif self.path.exists():
            self.path.unlink()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for k, v in values.items():
                if v is not None and math.isfinite(v):
                    self.writer.add_scalar(k, v, step)
            self.writer.flush()
            return
        row = {"step": step, **values}
        if self.header is None:  # fixed columns: every term of every method, then the validation ones
            self.header = columns(self.methods)
            self.header += [k for k in row if k not in self.header]
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.header)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(["" if row.get(k) is None else row.get(k) for k in self.header])

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def columns(methods: tuple[int, ...]) -> list[str]:
    """The CSV log's columns for a run of ``methods``."""
    cols = ["step", "loss"]
    if len(methods) > 1:
        cols += [f"loss_m{m}" for m in methods] + ["m1_share"]
    cols += [f"m{m}_{t}" for m in methods for t in TERM_COLUMNS[m]]
    return cols + ["grad_norm", "lr", "s_per_step", "wall_s", "skipped", *Logger.VAL_KEYS]


# --- checkpoints -------------------------------------------------------------------------------------------

def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` at ``steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


# --- validation ------------------------------------------------------------------------------------------

def _val_batches(cfg: TrainConfig, streams: dict[int, ExampleStream]) -> list[Batch]:
    """A fixed validation set per method (same examples at every evaluation), in batches."""
    if cfg.val_examples <= 0:
        return []
    out = []
    for method, stream in streams.items():
        rng = np.random.default_rng([cfg.seed, 7919, method])
        examples, tries = [], 0
        while len(examples) < cfg.val_examples and tries < 20 * cfg.val_examples:
            tries += 1
            e = stream.draw(rng)
            if e is not None:
                examples.append(e)
        out += [collate(examples[i:i + cfg.batch_size]) for i in range(0, len(examples), cfg.batch_size)]
    return out


def validate(model, batches: list[Batch], cfg: TrainConfig, sample_rate: int, device) -> tuple[float, float]:
    """(mean loss of the model, mean loss of the equal-loudness sum) over the validation batches."""
    was = model.training
    model.eval()
    weights = LossWeights.from_dict(cfg.loss)
    total, base, count = 0.0, 0.0, 0
    with torch.no_grad():
        for b in batches:
            b = b.to(device)
            loss, _ = training_loss(model, b, None, sample_rate, cfg.af_weight, weights=weights)
            ref_loss, _ = default_loss(b, sample_rate, weights, cfg.af_weight)
            total += loss.item() * b.size
            base += ref_loss.item() * b.size
            count += b.size
    model.train(was)
    return total / max(count, 1), base / max(count, 1)


def better(score: float, best: float) -> bool:
    """The best-checkpoint rule: a finite validation score strictly below the best so far."""
    return math.isfinite(score) and score < best


# --- the loop --------------------------------------------------------------------------------------------

def _autocast(cfg: TrainConfig, device: torch.device):
    """(autocast context or None, GradScaler) for the model's forward pass."""
    if not (cfg.amp and device.type == "cuda"):
        return None, torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return (torch.autocast("cuda", dtype=dtype),
            torch.amp.GradScaler("cuda", enabled=dtype == torch.float16))


def _load_data(cfg: TrainConfig, d: Dist):
    songs = scan_multitracks(cfg.data.train, cfg.data.layout, cfg.data.cache, min_tracks=cfg.min_tracks)
    val_songs = []
    if cfg.data.val:
        val_songs = scan_multitracks(cfg.data.val, cfg.data.layout, cfg.data.cache, min_tracks=cfg.min_tracks)
    elif cfg.data.held_out > 0:
        songs, val_songs = split_songs(songs, cfg.data.held_out, cfg.seed)
    refs = scan_references(cfg.data.references, cfg.data.cache) if cfg.data.references else None
    val_refs = refs
    if cfg.data.val_references:
        val_refs = scan_references(cfg.data.val_references, cfg.data.cache)
    return songs, refs, val_songs, val_refs


def _streams(cfg: TrainConfig, songs, refs, sample_rate: int, rank: int, seed: int, validation: bool = False
             ) -> dict[int, ExampleStream]:
    """An example stream per method of the run. For validation, method 2 only where it has references
    (files, or a second song to mix them from); for training, their absence is an error."""
    w = LossWeights.from_dict(cfg.loss)
    match = bool(w.tonal or w.octave or w.width)
    return {m: ExampleStream(m, songs, refs, cfg.section_seconds, sample_rate, cfg.min_tracks, cfg.max_tracks,
                             seed=seed, rank=rank, pairing=cfg.pairing, match=match)
            for m in methods_of(cfg) if not validation or m == 1 or refs or len(songs) > 1}


def _plot(out: Path) -> None:
    from training.curves import plot_log

    try:
        plot_log(out / "log.csv", out / "curve.png")
    except (OSError, ValueError) as exc:  # a curve is a convenience: never stop training for it
        print(f"  (learning curve not drawn: {exc})", flush=True)


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) training; returns a summary (steps, wall time, last losses) on every process."""
    d = setup_distributed(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed + 1000 * d.rank)

    state_path, last_path = out / "last_state.pt", out / "last.pt"
    state = None
    if resume and state_path.is_file() and last_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    elif resume and d.main:
        print(f"--resume: nothing to resume in {out}, starting from scratch", flush=True)

    if state is not None:
        model, _ = load_checkpoint(last_path)
        model_cfg = model.config
    elif cfg.init_from:
        model, _ = load_checkpoint(cfg.init_from)
        model_cfg = model.config
    else:
        model_cfg = ModelConfig(**cfg.model)
        torch.manual_seed(cfg.seed)  # identical initial weights on every process
        model = MixController(model_cfg)
    model.to(d.device).train()
    sample_rate = model_cfg.sample_rate
    weights = LossWeights.from_dict(cfg.loss)

    songs, refs, val_songs, val_refs = _load_data(cfg, d)
    data_info = {"train": describe(songs), "val": describe(val_songs) if val_songs else None,
                 "references": len(refs) if refs else 0}
    start_step = int(state["step"]) if state else 0
    pieces = int(state.get("epoch", 0)) + 1 if state else 0  # how many times this run was resumed
    per_step = cfg.batch_size * cfg.accum_steps
    last_step = min(cfg.steps, start_step + cfg.stop_after) if cfg.stop_after else cfg.steps
    curriculum = Curriculum(**cfg.curriculum)
    dataset = ExampleSet(_streams(cfg, songs, refs, sample_rate, d.rank, cfg.seed), per_step, cfg.steps,
                         cfg.seed, d.rank, cfg.method, curriculum)
    loader = torch.utils.data.DataLoader(
        # a piece of stop_after steps draws no batch beyond its end: a worker is then idle (not mid-batch,
        # with its threads running) when the loader shuts it down
        dataset, batch_sampler=StepBatches(start_step * per_step, cfg.batch_size, last_step * per_step),
        collate_fn=collate, num_workers=cfg.num_workers, pin_memory=d.device.type == "cuda",
        # workers are spawned, not forked: the parent has already run threaded kernels (OpenMP)
        multiprocessing_context="spawn" if cfg.num_workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.seed))  # the global RNG (dropout) stays untouched
    val_batches, quality = [], None
    if d.main and cfg.val_every and val_songs:
        val_streams = _streams(cfg, val_songs, val_refs, sample_rate, 0, cfg.seed + 7919, validation=True)
        val_batches = _val_batches(cfg, val_streams)
        if cfg.val_cross + cfg.val_same > 0:
            quality = QualityValidation(val_songs, cfg.val_cross, cfg.val_same, cfg.val_seconds, sample_rate,
                                        cfg.seed)

    ddp = model
    if d.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    autocast, scaler = _autocast(cfg, d.device)
    wall_before = 0.0
    best_val = math.inf  # the best-checkpoint criterion: quality score, or validation loss without cases
    best_info: dict[str, Any] | None = None
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        wall_before = float(state.get("wall_seconds", 0.0))
        best_val = float(state.get("best_val", math.inf))
        if "rng" in state:
            _set_rng_state(state["rng"])

    logger = Logger(cfg, d, resumed=state is not None)
    if d.main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        how = (f"methods 1 and 2 (share of method 1 {curriculum.start:g} -> {curriculum.end:g})"
               if cfg.method == MIXED else f"method {cfg.method}")
        logger.line(f"training {how} on {data_info['train']['songs']} songs "
                    f"({data_info['train']['tracks']} tracks), {data_info['references']} references; "
                    f"model {model.num_parameters() / 1e6:.2f} M parameters; {d.world} process(es) on "
                    f"{d.device.type}; steps {start_step}->{cfg.steps}, "
                    f"{cfg.batch_size * cfg.accum_steps * d.world} examples/step"
                    + (f"; validation on {len(quality)} held-out cases" if quality else ""))

    def extra(step: int, wall: float) -> dict[str, Any]:
        return {"step": step, "method": cfg.method, "wall_seconds": round(wall, 1), "world_size": d.world,
                "examples_seen": step * cfg.batch_size * cfg.accum_steps * d.world, "data": data_info,
                "section_seconds": cfg.section_seconds, "train_config": cfg.to_dict(),
                "best_val": None if not math.isfinite(best_val) else best_val}

    def checkpoint(step: int, wall: float) -> None:
        if not d.main:
            return
        save_checkpoint(last_path, model, model_cfg, extra(step, wall))
        _save_state(state_path, {"step": step, "epoch": pieces, "optimizer": opt.state_dict(),
                                 "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                                 "wall_seconds": wall, "best_val": best_val, "rng": _rng_state()})
        if cfg.keep_every and step % cfg.keep_every == 0:
            save_checkpoint(out / f"step_{step:06d}.pt", model, model_cfg, extra(step, wall))

    def run_validation(step: int, wall: float) -> None:
        nonlocal best_val, best_info
        with torch.random.fork_rng(devices=[]):  # validation draws nothing from training's generators
            values: dict[str, float] = {}
            if val_batches:
                v, base = validate(model, val_batches, cfg, sample_rate, d.device)
                values.update(val_loss=v, val_equal_loudness=base)
                logger.line(f"  validation loss: model {v:.4f}, equal-loudness sum {base:.4f} "
                            f"({v / base * 100 if base > 0 else 0:.1f} %)")
            result = None
            if quality:
                result = quality.run(unwrap(model))
                values.update(quality.flat(result))
                logger.line("  validation (model only): score " + f"{result['score']:.3f}; " + "; ".join(
                    f"{kind}: " + ", ".join(f"{k} {v:.2f}" for k, v in m.items())
                    for kind, m in result["summary"].items()))
        logger.scalars(step, values)
        score = values.get("val_score", values.get("val_loss", math.nan))
        if better(score, best_val):
            best_val = score
            best_info = {"step": step, "score": score, **({"validation": result} if result else {})}
            save_checkpoint(out / "best.pt", model, model_cfg, {**extra(step, wall), "best": best_info})
            logger.line(f"  best so far (step {step}): {out / 'best.pt'}")
        if cfg.plot and d.main and cfg.log == "csv" and step > 0:
            _plot(out)

    t_run = time.perf_counter()
    t_log, steps_since_log, skipped = t_run, 0, 0
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    last_metrics: dict[str, float] = {}
    step = start_step
    stop_reason = "done"
    if d.main and (val_batches or quality) and cfg.val_at_start and start_step == 0:
        run_validation(0, 0.0)
        t_run = t_log = time.perf_counter()  # the ETA counts training steps only
    batches = iter(loader)
    try:
        while step < cfg.steps:
            step_loss = 0.0
            method = dataset.method_at(step)
            for micro in range(cfg.accum_steps):
                batch = next(batches).to(d.device)
                sync = (d.world > 1 and micro < cfg.accum_steps - 1)
                with ddp.no_sync() if sync else contextlib.nullcontext():
                    loss, terms = training_loss(ddp, batch, None, sample_rate, cfg.af_weight, autocast,
                                                weights)
                    scaler.scale(loss / cfg.accum_steps).backward()
                step_loss += loss.item() / cfg.accum_steps
                for k, v in terms.items():
                    key = f"m{method}_{k}"
                    sums[key] = sums.get(key, 0.0) + v.item() / cfg.accum_steps
                    counts[key] = counts.get(key, 0) + (micro == 0)
            scaler.unscale_(opt)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
            if math.isfinite(grad_norm):  # identical on every process (gradients are all-reduced)
                scaler.step(opt)
            else:
                skipped += 1
            scaler.update()
            opt.zero_grad(set_to_none=True)
            sched.step()
            step += 1
            steps_since_log += 1
            for key, value in (("loss", step_loss), (f"loss_m{method}", step_loss), ("m1_share", method == 1),
                               ("grad_norm", grad_norm if math.isfinite(grad_norm) else 0.0)):
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1

            wall = wall_before + time.perf_counter() - t_run
            if step % cfg.log_every == 0 or step == cfg.steps:
                keys = sorted(sums)
                means = _all_mean([sums[k] / counts[k] for k in keys], d)
                now = time.perf_counter()
                per_step = (now - t_log) / steps_since_log
                metrics = dict(zip(keys, means, strict=True))
                if cfg.method != MIXED:
                    metrics.pop("m1_share", None)
                    metrics.pop(f"loss_m{cfg.method}", None)
                metrics.update(lr=sched.get_last_lr()[0], s_per_step=per_step, wall_s=wall, skipped=skipped)
                last_metrics = metrics
                logger.scalars(step, metrics)
                eta = per_step * (cfg.steps - step)
                left = ""
                if cfg.max_minutes:
                    piece_left = max(0.0, cfg.max_minutes - (time.perf_counter() - t_run) / 60)
                    left = f", {piece_left:.1f} min of this piece left"
                parts = " ".join(f"{k} {metrics[k]:.4g}" for k in keys
                                 if k in metrics and k not in ("loss", "grad_norm"))
                logger.line(f"step {step}/{cfg.steps}  loss {metrics['loss']:.4f}  ({parts})  "
                            f"{per_step:.2f} s/step  eta {eta / 60:.1f} min{left}")
                sums, counts, steps_since_log, t_log = {}, {}, 0, now
            if d.main and (val_batches or quality) and step % cfg.val_every == 0:
                t_val = time.perf_counter()
                run_validation(step, wall)
                t_log += time.perf_counter() - t_val  # validation time is not in s/step
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                checkpoint(step, wall)
            if cfg.max_minutes and _any_rank(time.perf_counter() - t_run > 60 * cfg.max_minutes, d):
                stop_reason = "time limit"
                break
            if cfg.stop_after and step - start_step >= cfg.stop_after:
                stop_reason = f"stop_after {cfg.stop_after} steps"
                break
    except KeyboardInterrupt:
        stop_reason = "interrupted"
    del batches  # the data workers shut down here, before validation and the checkpoint
    wall = wall_before + time.perf_counter() - t_run
    if (d.main and (val_batches or quality) and cfg.val_at_end and step > start_step
            and step % cfg.val_every != 0):
        run_validation(step, wall)  # the piece's end point is measured too (best.pt may be it)
    checkpoint(step, wall)
    if cfg.plot and d.main and cfg.log == "csv":
        _plot(out)
    logger.line(f"stopped at step {step} ({stop_reason}); {wall / 60:.1f} min of training in total; "
                f"checkpoint {last_path}" + (f"; best {out / 'best.pt'} (step {best_info['step']}, "
                                             f"{best_info['score']:.4g})" if best_info else ""))
    logger.close()
    if d.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"step": step, "wall_seconds": wall, "metrics": last_metrics, "stop": stop_reason,
            "rank": d.rank, "world": d.world, "best": best_info}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON config file")
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/last_state.pt")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="sets",
                        help="override config fields (dotted keys for data.* and model.*)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.sets)
        train(cfg, resume=args.resume)
    except (ValueError, CheckpointError, OSError) as exc:
        print(f"training: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
