"""The console's parameter schema, defined once.

Every consumer derives from the two :class:`Schema` objects here: the model heads (width = number of
predicted parameters), the torch console and the streaming engine (argument order), the app's widgets
(label, unit, range, display format, group), session/params JSON (keys), the CLI (``--set``/``--lock``
keys, ``stylemix params``) and checkpoints (:func:`fingerprint`).

Values exist in two spaces:

* *physical*: dB, Hz, ms, ratio, pan position, as a user reads them;
* *unit*: [0, 1], what the model predicts and what refinement optimises. Frequencies, Q, times and
  ratio map logarithmically, the rest linearly (DESIGN.md section 2).

Arrays and tensors hold parameters in schema order along their last axis.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

SCHEMA_VERSION = 1



@dataclass(frozen=True)
class Group:
    """A group of controls: a section of a strip, a lock, a strength slider, a refinement group."""

    key: str
    title: str  # the strip section's title
    name: str  # in a sentence: "Lock the {name}"
    strength_label: str  # the strength slider's label


#: The groups, in strip order.
GROUP_TABLE = (
    Group("trim", "TRIM", "trim", "Trim"),
    Group("level", "FADER", "fader", "Levels"),
    Group("eq", "EQ", "EQ", "EQ"),
    Group("dynamics", "COMPRESSOR", "compressor", "Dynamics"),
    Group("pan", "PAN", "pan", "Pan"),
)
#: Groups used by the app (strength blend, sections) and by refinement.
GROUPS = tuple(g.key for g in GROUP_TABLE)


def group(key: str) -> Group:
    """The :class:`Group` called ``key``."""
    for g in GROUP_TABLE:
        if g.key == key:
            return g
    raise KeyError(f"unknown parameter group '{key}'")


@dataclass(frozen=True)
class Param:
    """One console control."""

    key: str
    label: str
    unit: str
    min: float
    max: float
    default: float
    scale: str  # "lin" or "log"
    fmt: str  # str.format pattern for display, e.g. "{:+.1f}"
    group: str  # one of GROUPS
    predicted: bool = True  # False: set by import or by the user, never by the model
    #: Where engineers typically set it: ``(low, high, log-uniform?)``, physical. Training draws its
    #: "musical" random consoles from it; None: anywhere in the range (log scales log-uniform).
    typical: tuple[float, float, bool] | None = None

    def to_unit(self, value: float) -> float:
        """Physical value -> [0, 1] (clipped to the range)."""
        v = min(max(float(value), self.min), self.max)
        if self.scale == "log":
            return math.log(v / self.min) / math.log(self.max / self.min)
        return (v - self.min) / (self.max - self.min)

    def from_unit(self, u: float) -> float:
        """[0, 1] -> physical value (clipped to the range)."""
        u = min(max(float(u), 0.0), 1.0)
        if self.scale == "log":
            return self.min * (self.max / self.min) ** u
        return self.min + u * (self.max - self.min)

    def clip(self, value: float) -> float:
        return min(max(float(value), self.min), self.max)

    def format(self, value: float) -> str:
        """Display text with unit, e.g. ``-6.0 dB``."""
        text = self.fmt.format(value)
        return f"{text} {self.unit}" if self.unit else text


# --- the table --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EqBand:
    """One band of the 6-band EQ; its controls are ``{key}_gain_db``, ``{key}_freq_hz`` and ``{key}_q``."""

    key: str  # key prefix
    label: str  # e.g. "Band 1"
    short: str  # on the band's button, e.g. "1"
    kind: str  # filter type: "low_shelf", "peaking" or "high_shelf" (as the console and engine read it)

    @property
    def gain(self) -> str:
        return f"{self.key}_gain_db"

    @property
    def freq(self) -> str:
        return f"{self.key}_freq_hz"

    @property
    def q(self) -> str:
        return f"{self.key}_q"

    def controls(self) -> tuple[tuple[str, str], ...]:
        """``(key, short label)`` of the band's controls: gain, frequency, Q."""
        return tuple((f"{self.key}_{what}", short) for what, _, short in _EQ_CONTROLS)


_EQ_BANDS = (
    # band, freq min, freq max, freq default, q min, q max, q default
    (EqBand("eq_low_shelf", "Low shelf", "LS", "low_shelf"), 30.0, 1000.0, 100.0, 0.3, 3.0, 0.707),
    (EqBand("eq_band1", "Band 1", "1", "peaking"), 40.0, 600.0, 150.0, 0.3, 8.0, 1.0),
    (EqBand("eq_band2", "Band 2", "2", "peaking"), 150.0, 2500.0, 600.0, 0.3, 8.0, 1.0),
    (EqBand("eq_band3", "Band 3", "3", "peaking"), 600.0, 8000.0, 2200.0, 0.3, 8.0, 1.0),
    (EqBand("eq_band4", "Band 4", "4", "peaking"), 2000.0, 16000.0, 5600.0, 0.3, 8.0, 1.0),
    (EqBand("eq_high_shelf", "High shelf", "HS", "high_shelf"), 1000.0, 16000.0, 8000.0, 0.3, 3.0, 0.707),
)
# a band's controls: key suffix, label after the band's ("Band 1 gain"), label within the band ("Gain")
_EQ_CONTROLS = (("gain_db", "gain", "Gain"), ("freq_hz", "freq", "Freq"), ("q", "Q", "Q"))

#: The EQ bands, in band order.
EQ_BANDS = tuple(b[0] for b in _EQ_BANDS)
#: Filter type of each EQ band, in band order (as understood by the console and engine).
EQ_BAND_TYPES = tuple(b.kind for b in EQ_BANDS)
EQ_BAND_KEYS = tuple(b.key for b in EQ_BANDS)

# Typical settings (Param.typical): EQ gains within +/- this many dB; Q within this range (log-uniform).
_TYPICAL_EQ_GAIN_DB = {"track": 9.0, "master": 3.0}
_TYPICAL_EQ_Q = (0.5, 3.0)
# The other typical settings, by schema and key: (low, high, log-uniform?); keys checked when the schema
# is built (a key the schema lacks raises at import).
_TYPICAL = {
    "track": {
        "gain_db": (-15.0, 6.0, False), "pan": (-0.9, 0.9, False),
        "comp_threshold_db": (-36.0, 0.0, False), "comp_ratio": (1.0, 8.0, True),
        "comp_attack_ms": (1.0, 50.0, True), "comp_release_ms": (30.0, 500.0, True),
        "comp_knee_db": (0.0, 12.0, False), "comp_makeup_db": (0.0, 6.0, False),
    },
    "master": {
        "gain_db": (-6.0, 6.0, False), "comp_threshold_db": (-24.0, 0.0, False),
        "comp_ratio": (1.0, 4.0, True), "comp_attack_ms": (5.0, 50.0, True),
        "comp_release_ms": (50.0, 500.0, True), "comp_knee_db": (3.0, 12.0, False),
        "comp_makeup_db": (0.0, 3.0, False),
    },
}


def _eq_params(typical_gain_db: float) -> list[Param]:
    out = []
    g = typical_gain_db
    for band, fmin, fmax, fdef, qmin, qmax, qdef in _EQ_BANDS:
        (gain, gain_label, _), (freq, freq_label, _), (q, q_label, _) = (
            (f"{band.key}_{what}", f"{band.label} {label}", short) for what, label, short in _EQ_CONTROLS)
        typical_q = (max(_TYPICAL_EQ_Q[0], qmin), min(_TYPICAL_EQ_Q[1], qmax), True)
        out += [
            Param(gain, gain_label, "dB", -12.0, 12.0, 0.0, "lin", "{:+.1f}", "eq", typical=(-g, g, False)),
            Param(freq, freq_label, "Hz", fmin, fmax, fdef, "log", "{:.0f}", "eq"),
            Param(q, q_label, "", qmin, qmax, qdef, "log", "{:.2f}", "eq", typical=typical_q),
        ]
    return out


def _comp_params() -> list[Param]:
    return [
        Param("comp_threshold_db", "Threshold", "dB", -60.0, 0.0, 0.0, "lin", "{:.1f}", "dynamics"),
        Param("comp_ratio", "Ratio", ":1", 1.0, 20.0, 1.0, "log", "{:.1f}", "dynamics"),
        Param("comp_attack_ms", "Attack", "ms", 0.5, 100.0, 10.0, "log", "{:.1f}", "dynamics"),
        Param("comp_release_ms", "Release", "ms", 10.0, 1000.0, 100.0, "log", "{:.0f}", "dynamics"),
        Param("comp_knee_db", "Knee", "dB", 0.0, 12.0, 6.0, "lin", "{:.1f}", "dynamics"),
        Param("comp_makeup_db", "Makeup", "dB", 0.0, 24.0, 0.0, "lin", "{:+.1f}", "dynamics"),
    ]


def _with_typical(name: str, params: list[Param]) -> tuple[Param, ...]:
    """``params`` with the typical settings of :data:`_TYPICAL` [name]; unknown keys raise."""
    table = _TYPICAL[name]
    unknown = set(table) - {p.key for p in params}
    if unknown:
        raise RuntimeError(f"typical settings for unknown {name} parameter(s): {', '.join(sorted(unknown))}")
    return tuple(replace(p, typical=table[p.key]) if p.key in table else p for p in params)


@dataclass(frozen=True)
class Schema:
    """An ordered set of parameters: the track strip or the master bus."""

    name: str
    params: tuple[Param, ...]

    def __post_init__(self):
        keys = [p.key for p in self.params]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate keys in schema {self.name}")
        for p in self.params:
            if p.typical is not None and not p.min <= p.typical[0] < p.typical[1] <= p.max:
                raise ValueError(f"{self.name} parameter {p.key}: typical range {p.typical[:2]} is not "
                                 f"inside {p.min:g}..{p.max:g}")

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self):
        return iter(self.params)

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.params)

    def __getitem__(self, key: str) -> Param:
        for p in self.params:
            if p.key == key:
                return p
        raise KeyError(f"unknown {self.name} parameter '{key}'")

    def index(self, key: str) -> int:
        try:
            return self.keys.index(key)
        except ValueError:
            raise KeyError(f"unknown {self.name} parameter '{key}'") from None

    # vectors in schema order ---------------------------------------------------------------------
    @property
    def mins(self) -> np.ndarray:
        return np.array([p.min for p in self.params], dtype=np.float64)

    @property
    def maxs(self) -> np.ndarray:
        return np.array([p.max for p in self.params], dtype=np.float64)

    @property
    def log_mask(self) -> np.ndarray:
        return np.array([p.scale == "log" for p in self.params])

    @property
    def predicted_mask(self) -> np.ndarray:
        return np.array([p.predicted for p in self.params])

    @property
    def n_predicted(self) -> int:
        return int(self.predicted_mask.sum())

    def defaults(self) -> np.ndarray:
        return np.array([p.default for p in self.params], dtype=np.float64)

    def default_dict(self) -> dict[str, float]:
        return {p.key: p.default for p in self.params}

    def group_mask(self, group: str) -> np.ndarray:
        return np.array([p.group == group for p in self.params])

    # dict <-> vector -----------------------------------------------------------------------------
    def to_vector(self, values: dict[str, float], strict: bool = True) -> np.ndarray:
        """Dict of physical values -> vector; missing keys take defaults. Unknown keys raise if strict."""
        if strict:
            unknown = set(values) - set(self.keys)
            if unknown:
                raise KeyError(f"unknown {self.name} parameter(s): {', '.join(sorted(unknown))}")
        return np.array([float(values.get(p.key, p.default)) for p in self.params], dtype=np.float64)

    def to_dict(self, vector) -> dict[str, float]:
        vec = np.asarray(vector, dtype=np.float64).reshape(-1)
        if vec.shape[0] != len(self):
            raise ValueError(f"{self.name} vector has {vec.shape[0]} values, schema has {len(self)}")
        return {p.key: float(v) for p, v in zip(self.params, vec, strict=True)}

    def clip(self, vector):
        """Clip physical values (numpy or torch, last axis in schema order) to their ranges."""
        lo, hi = _like(self.mins, vector), _like(self.maxs, vector)
        if _is_torch(vector):
            import torch

            return torch.minimum(torch.maximum(vector, lo), hi)
        return np.minimum(np.maximum(vector, lo), hi)

    # physical <-> unit (vectorised: numpy arrays or torch tensors, last axis in schema order) -----
    def to_unit(self, vector):
        """Physical values -> [0, 1]. Works on numpy arrays and on torch tensors (differentiably)."""
        x = self.clip(vector)
        lo, hi, log = _like(self.mins, x), _like(self.maxs, x), _like(self.log_mask, x, bool_=True)
        if _is_torch(x):
            import torch

            lin_u = (x - lo) / (hi - lo)
            log_u = torch.log(x.clamp_min(1e-12) / lo.clamp_min(1e-12)) / torch.log(
                hi.clamp_min(1e-12) / lo.clamp_min(1e-12)
            )
            return torch.where(log, log_u, lin_u)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_u = np.log(np.maximum(x, 1e-12) / np.maximum(lo, 1e-12)) / np.log(
                np.maximum(hi, 1e-12) / np.maximum(lo, 1e-12)
            )
        return np.where(log, log_u, (x - lo) / (hi - lo))

    def from_unit(self, unit):
        """[0, 1] -> physical values. Works on numpy arrays and on torch tensors (differentiably)."""
        if _is_torch(unit):
            import torch

            u = unit.clamp(0.0, 1.0)
            lo, hi, log = _like(self.mins, u), _like(self.maxs, u), _like(self.log_mask, u, bool_=True)
            lin_x = lo + u * (hi - lo)
            log_x = lo.clamp_min(1e-12) * torch.exp(u * torch.log(hi.clamp_min(1e-12) / lo.clamp_min(1e-12)))
            return torch.where(log, log_x, lin_x)
        u = np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0)
        lo, hi, log = self.mins, self.maxs, self.log_mask
        with np.errstate(divide="ignore", invalid="ignore"):
            log_x = np.maximum(lo, 1e-12) * (np.maximum(hi, 1e-12) / np.maximum(lo, 1e-12)) ** u
        return np.where(log, log_x, lo + u * (hi - lo))

    def describe(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.params]


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _like(arr: np.ndarray, ref, bool_: bool = False):
    """Broadcastable constant matching ``ref`` (numpy array or torch tensor)."""
    if _is_torch(ref):
        import torch

        if bool_:
            return torch.as_tensor(arr, device=ref.device)
        return torch.as_tensor(arr, dtype=ref.dtype, device=ref.device)
    return arr


TRACK = Schema(
    "track",
    _with_typical(
        "track",
        [Param("trim_db", "Trim", "dB", -48.0, 48.0, 0.0, "lin", "{:+.1f}", "trim", predicted=False)]
        + _eq_params(_TYPICAL_EQ_GAIN_DB["track"])
        + _comp_params()
        + [
            Param("gain_db", "Fader", "dB", -48.0, 24.0, 0.0, "lin", "{:+.1f}", "level"),
            Param("pan", "Pan", "", -1.0, 1.0, 0.0, "lin", "{:+.2f}", "pan"),
        ],
    ),
)

MASTER = Schema(
    "master",
    _with_typical(
        "master",
        _eq_params(_TYPICAL_EQ_GAIN_DB["master"])
        + _comp_params()
        + [Param("gain_db", "Master", "dB", -48.0, 24.0, 0.0, "lin", "{:+.1f}", "level")],
    ),
)

for _p in TRACK.params + MASTER.params:  # every console control has a group with its labels
    if _p.group not in GROUPS:
        raise RuntimeError(f"parameter {_p.key} has group '{_p.group}', which GROUP_TABLE lacks")

#: Groups with their own strength control: the track groups the model predicts, in strip order, plus
#: ``"master"`` (the whole master bus).
STRENGTH_GROUPS = tuple(g for g in GROUPS if any(p.group == g and p.predicted for p in TRACK)) + ("master",)
#: Label of each strength control.
STRENGTH_LABELS = {**{g: group(g).strength_label for g in STRENGTH_GROUPS[:-1]}, "master": "Master"}


def _group_keys(schema: Schema, group: str) -> tuple[str, ...]:
    return tuple(p.key for p in schema if p.group == group)


#: The EQ controls in the order both consoles take them: gain, frequency and Q of each band, bands in
#: :data:`EQ_BAND_KEYS` order (the same keys on the track strip and the master bus).
EQ_KEYS = _group_keys(TRACK, "eq")
#: The compressor controls in the order both consoles take them: threshold, ratio, attack, release,
#: knee, makeup (the same keys on the track strip and the master bus).
COMP_KEYS = _group_keys(TRACK, "dynamics")
if (_group_keys(MASTER, "eq"), _group_keys(MASTER, "dynamics")) != (EQ_KEYS, COMP_KEYS):
    raise RuntimeError("the master bus's EQ and compressor keys must be the track strip's, in its order")


def fingerprint() -> str:
    """Short hash of everything that changes what a stored parameter vector means.

    Stored in every checkpoint, params file and session; a mismatch means the file was made for a
    different console and cannot be read as is.
    """
    desc = {
        "version": SCHEMA_VERSION,
        "eq_types": EQ_BAND_TYPES,
        "schemas": {
            s.name: [(p.key, p.min, p.max, p.scale, p.predicted) for p in s.params] for s in (TRACK, MASTER)
        },
    }
    blob = json.dumps(desc, sort_keys=True).encode()
    return f"v{SCHEMA_VERSION}-" + hashlib.sha256(blob).hexdigest()[:12]


def table(schema: Schema) -> str:
    """Plain-text table of a schema, as printed by ``stylemix params``."""
    rows = [("key", "label", "unit", "min", "max", "default", "scale", "group", "model")]
    for p in schema:
        rows.append(
            (p.key, p.label, p.unit, f"{p.min:g}", f"{p.max:g}", f"{p.default:g}", p.scale, p.group,
             "yes" if p.predicted else "no")
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
