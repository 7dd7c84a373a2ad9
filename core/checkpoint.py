"""Model checkpoints: everything that rebuilds the controller, in one file.

A checkpoint is a ``torch.save`` dict of plain types (so it loads with ``weights_only=True``: no code
runs when a file is opened)::

    {"format": "stylemix-model", "format_version": 1,
     "config": asdict(ModelConfig), "schema": core.params.fingerprint(),
     "state_dict": {...}, "extra": {...}}   # extra: JSON-like (training steps, metrics, data description)

A checkpoint trained for another console schema (other parameters, ranges or scales) cannot drive this
console; loading it raises :class:`CheckpointError` instead of producing wrong mixes. A checkpoint of an
earlier version of this schema (:func:`core.params.schema_version`) is migrated when loaded
(:func:`migrate_heads`): its weights drive the parameters it knows, bit for bit, and the heads' outputs
for the parameters added since have zero weights and a bias that predicts their default exactly (a
version 1 model, trained before the reverb, predicts every send off and a neutral return).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from core.fileio import atomic_write
from core.model import MixController, ModelConfig
from core.params import MASTER, TRACK, Schema, fingerprint, keys_of_version, schema_version

FORMAT = "stylemix-model"
FORMAT_VERSION = 1

#: Checkpoints larger than this are refused before they are read (the shipped model is ~18 MB).
MAX_CHECKPOINT_BYTES = 1 << 30
#: A config whose model would have more parameters than this is refused before anything is built.
MAX_MODEL_PARAMETERS = 100_000_000
#: Bounds of each numeric config field, checked before the model is built.
CONFIG_BOUNDS: dict[str, tuple[float, float]] = {
    "sample_rate": (8000, 192000), "n_fft": (64, 16384), "hop": (16, 16384), "mag_power": (0.01, 2.0),
    "n_bands": (8, 1024), "f_min_hz": (0.0, 1000.0), "embed_dim": (8, 4096), "n_layers": (1, 48),
    "n_heads": (1, 64), "ffn_dim": (8, 16384), "dropout": (0.0, 0.9), "encoder_chunk": (1, 1024),
    "track_lufs": (-100.0, 0.0), "reference_lufs": (-100.0, 0.0),
}
_MAX_CNN_BLOCKS, _MAX_CNN_CHANNELS = 8, 2048


class CheckpointError(Exception):
    """A checkpoint that cannot be used: unreadable, not a checkpoint, or made for another console."""


def save_checkpoint(path: str | os.PathLike, model: MixController, config: ModelConfig,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` atomically to ``path`` (a temporary file in the same folder, then renamed).

    ``config`` must be the config the model was built with. ``extra`` must be JSON-serialisable
    (numbers, strings, lists, dicts); it is checked here so that a bad value fails when saving, not later
    when loading with ``weights_only=True``.
    """
    path = Path(path)
    if asdict(config) != asdict(model.config):
        raise ValueError(f"{path}: the config given does not match the model's config")
    try:
        extra = json.loads(json.dumps(extra or {}))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: 'extra' is not JSON-serialisable: {exc}") from None
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": asdict(config),
        "schema": fingerprint(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(payload, f))
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[MixController, dict[str, Any]]:
    """Load a checkpoint -> ``(model in eval mode, meta)``; meta has config, schema, extra, path.

    Raises :class:`CheckpointError` (message names the file) for a missing, corrupt, truncated or foreign
    file, or one trained for another console schema.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: {size / 1e9:.1f} GB is more than a stylemix checkpoint can be "
                              f"({MAX_CHECKPOINT_BYTES / 1e9:.1f} GB; refused unread)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as exc:  # torch raises several types for damaged or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable stylemix checkpoint (corrupt or truncated?): "
                              f"{reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a stylemix model checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload.get('format_version')} is not "
                              f"supported (this build reads version {FORMAT_VERSION})")
    schema, current = payload.get("schema"), fingerprint()
    version = schema_version(schema)
    if version is None:
        raise CheckpointError(f"{path}: was trained for console schema {schema}, this build has {current}")

    config = _config_from_dict(path, payload.get("config"))
    model = MixController(config)
    try:
        state = payload["state_dict"]
        model.load_state_dict(migrate_heads(state, version) if schema != current else state)
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: weights do not match the stored model config: {first}") from None
    model.to(map_location).eval()
    meta = {"config": config, "schema": schema, "extra": payload.get("extra", {}), "path": str(path)}
    return model, meta


#: Bias of a head output whose default is at a range limit: the sigmoid gives exactly 0 or 1 there, in
#: float32 and float64, so the parameter is exactly at its default (a send exactly off).
_SATURATED_BIAS = 200.0
_HEADS = (("track_head", TRACK), ("master_head", MASTER))


def migrate_heads(state_dict: dict, version: int) -> dict:
    """The weights of a model trained for schema ``version``, for this schema's heads.

    Each head's last layer gets a row per predicted parameter of this schema: a parameter the old
    schema had keeps its row (weights and bias, bit for bit, so its prediction does not change); a
    parameter added since gets zero weights and the bias whose sigmoid is its default's unit value
    (exactly 0 or 1 for a default at a range limit, e.g. a send at "off"). Other weights are kept.
    """
    out = dict(state_dict)
    for head, schema in _HEADS:
        w_key, b_key = f"{head}.net.2.weight", f"{head}.net.2.bias"
        if w_key not in out or b_key not in out:
            continue  # load_state_dict names what is missing
        old_keys = [k for k in keys_of_version(schema, version) if schema[k].predicted]
        weight, bias = out[w_key], out[b_key]
        if weight.shape[0] != len(old_keys):
            continue  # not the old head either: load_state_dict reports the mismatch
        keys = [p.key for p in schema if p.predicted]
        new_w = weight.new_zeros(len(keys), weight.shape[1])
        new_b = torch.as_tensor(_default_bias(schema, keys), dtype=bias.dtype)
        for i, key in enumerate(keys):
            if key in old_keys:
                j = old_keys.index(key)
                new_w[i], new_b[i] = weight[j], bias[j]
        out[w_key], out[b_key] = new_w, new_b
    return out


def _default_bias(schema: Schema, keys: list[str]) -> list[float]:
    """Per key, the logit of its default's unit value (saturated at a range limit)."""
    out = []
    for key in keys:
        u = schema[key].to_unit(schema[key].default)
        out.append(-_SATURATED_BIAS if u <= 0.0 else _SATURATED_BIAS if u >= 1.0 else math.log(u / (1.0 - u)))
    return out


def _config_from_dict(path: Path, stored: Any) -> ModelConfig:
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path}: checkpoint has no model config")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise CheckpointError(
            f"{path}: model config has fields this build does not know: {', '.join(unknown)}"
        )
    _check_bounds(path, stored)
    try:
        config = ModelConfig(**stored)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    n = estimated_parameters(config)
    if n > MAX_MODEL_PARAMETERS:
        raise CheckpointError(f"{path}: model config asks for {n / 1e6:.0f} M parameters, more than the "
                              f"{MAX_MODEL_PARAMETERS / 1e6:.0f} M a stylemix model may have")
    return config


def _check_bounds(path: Path, stored: dict) -> None:
    """Every numeric field a real number within :data:`CONFIG_BOUNDS`; cnn_channels a short list."""
    for key, (lo, hi) in CONFIG_BOUNDS.items():
        if key not in stored:
            continue
        value = stored[key]
        whole = isinstance(getattr(ModelConfig, key), int)
        kinds = (int,) if whole else (int, float)
        if not isinstance(value, kinds) or isinstance(value, bool) or not lo <= value <= hi:
            raise CheckpointError(f"{path}: model config {key} = {repr(value)[:40]} is not "
                                  f"{'a whole number' if whole else 'a number'} within {lo:g}..{hi:g}")
    channels = stored.get("cnn_channels", ModelConfig.cnn_channels)
    if not isinstance(channels, (list, tuple)) or not 1 <= len(channels) <= _MAX_CNN_BLOCKS or not all(
            isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= _MAX_CNN_CHANNELS for c in channels):
        raise CheckpointError(f"{path}: model config cnn_channels must be 1 to {_MAX_CNN_BLOCKS} whole "
                              f"numbers within 1..{_MAX_CNN_CHANNELS}")
    if stored.get("hop", 1) > stored.get("n_fft", ModelConfig.n_fft):
        raise CheckpointError(f"{path}: model config hop is longer than n_fft")


def estimated_parameters(config: ModelConfig) -> int:
    """Parameters (and buffers) a :class:`MixController` with ``config`` holds, without building it."""
    d, bins = config.embed_dim, config.n_fft // 2 + 1
    conv, c_in, f_out = 0, 1, config.n_bands
    for c in config.cnn_channels:
        conv, c_in, f_out = conv + 9 * c_in * c + 3 * c, c, (f_out + 1) // 2
    encoder = conv + (2 * c_in * f_out + 3) * d + config.n_fft + bins * config.n_bands
    layer = 4 * d * d + 2 * d * config.ffn_dim + config.ffn_dim + 9 * d
    heads = 2 * (d * d + d) + d * (len(TRACK) + len(MASTER) + 2)
    return 2 * encoder + config.n_layers * layer + heads + 6 * d
