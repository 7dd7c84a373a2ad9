"""Model checkpoints: everything that rebuilds the controller, in one file.

A checkpoint is a ``torch.save`` dict of plain types (so it loads with ``weights_only=True``: no code
runs when a file is opened)::

    {"format": "stylemix-model", "format_version": 1,
     "config": asdict(ModelConfig), "schema": core.params.fingerprint(),
     "state_dict": {...}, "extra": {...}}   # extra: JSON-like (training steps, metrics, data description)

A checkpoint trained for another console schema (other parameters, ranges or scales) cannot drive this
console; loading it raises :class:`CheckpointError` instead of producing wrong mixes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from core.fileio import atomic_write
from core.model import MixController, ModelConfig
from core.params import fingerprint

FORMAT = "stylemix-model"
FORMAT_VERSION = 1


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
    if schema != current:
        raise CheckpointError(f"{path}: was trained for console schema {schema}, this build has {current}")

    config = _config_from_dict(path, payload.get("config"))
    model = MixController(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: weights do not match the stored model config: {first}") from None
    model.to(map_location).eval()
    meta = {"config": config, "schema": schema, "extra": payload.get("extra", {}), "path": str(path)}
    return model, meta


def _config_from_dict(path: Path, stored: Any) -> ModelConfig:
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path}: checkpoint has no model config")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise CheckpointError(
            f"{path}: model config has fields this build does not know: {', '.join(unknown)}"
        )
    try:
        return ModelConfig(**stored)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
