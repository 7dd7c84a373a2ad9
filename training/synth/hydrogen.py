"""Recorded drum kits: Hydrogen drumkits (Debian ``hydrogen-drumkits``) played back sample by sample.

A kit is a folder with a ``drumkit.xml`` and its samples (``.wav`` / ``.flac``). :func:`parse_kit` reads
its instruments -- name, volume, pan and the velocity *layers* (each a sample for a velocity range
``min..max`` in 0..1 with a gain; kits of the old format have one ``<filename>`` per instrument, i.e.
one layer over the whole range; layers inside ``<instrumentComponent>`` are read too) -- and maps
General MIDI drum notes to the instruments by their names (:func:`gm_map`: "Kick" -> 35/36, "Closed
HH" -> 42, "Tom Low" -> 41/43, "Ride Bell" -> 53 ...; a note the kit lacks borrows a close relative,
e.g. pedal hi-hat -> closed hi-hat, crash 2 -> crash, side stick -> snare). A kit can play a song when
it has a kick, a snare and a closed hi-hat.

:func:`render_hits` plays notes: each hit picks the layer whose range holds its velocity (one of them at
random where layers overlap: round robin), scales it by ``velocity / 127`` and the layer and instrument
gains, and an open hi-hat is choked (20 ms fade) by the next hi-hat hit, as a drummer's foot does.

Kits are found under :data:`KIT_DIRS` (``STYLEMIX_DRUMKITS`` overrides, ``:``-separated); without
any, the generator falls back to FluidSynth's General MIDI kits and says so once
(:mod:`training.synth.realistic`).
"""

from __future__ import annotations

import functools
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KIT_DIRS = tuple(Path(p) for p in os.environ.get(
    "STYLEMIX_DRUMKITS", "/usr/share/hydrogen/data/drumkits:~/.hydrogen/data/drumkits").split(":") if p)
#: Words in a kit's name that mark it as electronic (drum machines, synthesised kits).
ELECTRONIC_WORDS = ("electro", "electric", "808", "909", "606", "626", "techno", "tr-", "breaks", "machine")
#: Notes a playable kit must have (kick, snare, closed hi-hat).
REQUIRED_NOTES = (36, 38, 42)
HAT_NOTES = frozenset({42, 44, 46})
CHOKE_S = 0.02


@dataclass(frozen=True)
class Layer:
    """One sample of an instrument, for velocities ``lo..hi`` (0..1)."""

    path: Path
    lo: float
    hi: float
    gain: float


@dataclass(frozen=True)
class Instrument:
    name: str
    volume: float
    pan_l: float
    pan_r: float
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class Kit:
    """A parsed kit: its instruments and the GM note -> instrument index map."""

    name: str
    folder: Path
    instruments: tuple[Instrument, ...]
    notes: dict[int, int]

    @property
    def electronic(self) -> bool:
        text = f"{self.name} {self.folder.name}".lower()
        return any(w in text for w in ELECTRONIC_WORDS)

    @property
    def playable(self) -> bool:
        return all(n in self.notes for n in REQUIRED_NOTES)


def _text(el: ET.Element, tag: str, default: str = "") -> str:
    child = el.find(tag)
    return child.text.strip() if child is not None and child.text else default


def _num(el: ET.Element, tag: str, default: float) -> float:
    try:
        return float(_text(el, tag, str(default)))
    except ValueError:
        return default


def parse_kit(folder: str | os.PathLike) -> Kit:
    """The kit in ``folder`` (its ``drumkit.xml``); raises ``ValueError`` naming the file when it is not
    a readable kit. Instruments without a sample file on disk are left out."""
    folder = Path(folder)
    xml = folder / "drumkit.xml"
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ValueError(f"{xml}: not a readable Hydrogen drumkit ({exc})") from None
    for el in root.iter():  # drop XML namespaces (newer kits declare one)
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    instruments = []
    for inst in root.iter("instrument"):
        name = _text(inst, "name")
        layers = []
        for layer in inst.iter("layer"):
            path = folder / _text(layer, "filename")
            if path.is_file():
                layers.append(Layer(path, _num(layer, "min", 0.0), _num(layer, "max", 1.0),
                                    _num(layer, "gain", 1.0)))
        if not layers and _text(inst, "filename"):
            path = folder / _text(inst, "filename")
            if path.is_file():
                layers.append(Layer(path, 0.0, 1.0, 1.0))
        if name and layers and _text(inst, "isMuted", "false") != "true":
            instruments.append(Instrument(name, _num(inst, "volume", 1.0), _num(inst, "pan_L", 1.0),
                                          _num(inst, "pan_R", 1.0), tuple(layers)))
    return Kit(_text(root, "name", folder.name), folder, tuple(instruments),
               gm_map([i.name for i in instruments]))


# GM drum notes an instrument name serves, first rule that matches wins (lower case, words).
_RULES: tuple[tuple[str, tuple[int, ...]], ...] = (
    (r"ride.*(bell|cup)|(bell|cup).*ride", (53,)),
    (r"ride", (51, 59)),
    (r"china", (52,)),
    (r"splash", (55,)),
    (r"crash", (49, 57)),
    (r"(hi.?hat|\bhh\b|\bhat\b).*(pedal|\bpd\b|foot)|(pedal|foot).*(hat|hh)", (44,)),
    (r"(hi.?hat|\bhh\b|\bhat\b|hats\b).*(open|\bop\b|ohh)|open.*(hat|hh)|\bohh\b", (46,)),
    (r"(hi.?hat|\bhh\b|\bhat\b|hats\b)", (42,)),
    (r"(floor|low|lo\b).*tom|tom.*(floor|low|lo\b)", (41, 43)),
    (r"(mid|middle).*tom|tom.*(mid|middle)|tom ?2", (45, 47)),
    (r"(high|hi\b).*tom|tom.*(high|hi\b)|tom ?1", (48, 50)),
    (r"\btom", (47, 45)),
    (r"rim.?shot", (40,)),
    (r"side.?stick|\bstick\b|rim", (37,)),
    (r"clap", (39,)),
    (r"snare(?!.*roll)", (38, 40)),
    (r"kick|bass.?drum|bassdrum|\bbd\b", (36, 35)),
    (r"tambourine", (54,)),
    (r"cowbell", (56,)),
    (r"clave", (75,)),
    (r"bongo.*(hi|high)", (60,)),
    (r"bongo", (61,)),
    (r"conga", (63, 62, 64)),
    (r"maraca|shaker", (70,)),
)
# A note the kit lacks borrows from these, in order.
_BORROW = {35: (36,), 37: (38,), 39: (38,), 40: (38,), 42: (44, 46), 44: (42,), 46: (42,), 57: (49, 51),
           49: (57, 51, 55), 51: (59, 53, 49), 59: (51, 49), 53: (51,), 52: (49, 57), 55: (49, 57),
           41: (43, 45), 43: (41, 45), 45: (47, 43), 47: (45, 48), 48: (50, 47), 50: (48, 47)}


def gm_map(names: Sequence[str]) -> dict[int, int]:
    """GM drum note -> index of the instrument (in ``names`` order) that plays it (see the module doc)."""
    out: dict[int, int] = {}
    for i, name in enumerate(names):
        low = re.sub(r"[_\-]+", " ", str(name).lower())
        for pattern, notes in _RULES:
            if re.search(pattern, low):
                for note in notes:
                    out.setdefault(note, i)
                break
    for note, options in _BORROW.items():
        if note not in out:
            for other in options:
                if other in out:
                    out[note] = out[other]
                    break
    return out


def find_kits(dirs: Sequence[Path] = KIT_DIRS) -> list[Kit]:
    """The playable kits under ``dirs`` (one kit per subfolder with a drumkit.xml), sorted by folder name."""
    kits = []
    for d in dirs:
        d = Path(d).expanduser()
        if not d.is_dir():
            continue
        for folder in sorted(d.iterdir(), key=lambda p: p.name):
            if (folder / "drumkit.xml").is_file():
                try:
                    kit = parse_kit(folder)
                except ValueError:
                    continue
                if kit.playable:
                    kits.append(kit)
    return kits


@functools.lru_cache(maxsize=512)
def _sample(path: Path, sample_rate: int) -> np.ndarray:
    """A sample as float32 (T, 2) at ``sample_rate`` (mono duplicated)."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    data = data[:, :2]
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    if sr != sample_rate and len(data):
        import soxr

        data = soxr.resample(data, sr, sample_rate).astype(np.float32)
    return np.ascontiguousarray(data)


def render_hits(kit: Kit, hits: Sequence[tuple[float, int, int]], n: int, sample_rate: int,
                rng: np.random.Generator) -> np.ndarray:
    """Stereo audio (n, 2) float64 of ``hits`` ``(seconds, GM note, velocity)``; notes the kit cannot play
    are skipped. Each instrument sits where the kit pans it."""
    out = np.zeros((n, 2))
    order = sorted(hits)
    for k, (t, note, vel) in enumerate(order):
        idx = kit.notes.get(int(note))
        start = int(round(t * sample_rate))
        if idx is None or start >= n:
            continue
        inst = kit.instruments[idx]
        v = float(np.clip(vel / 127.0, 0.0, 1.0))
        fits = [la for la in inst.layers if la.lo - 1e-6 <= v <= la.hi + 1e-6]
        if not fits:
            fits = [min(inst.layers, key=lambda la: min(abs(v - la.lo), abs(v - la.hi)))]
        layer = fits[int(rng.integers(len(fits)))]
        x = _sample(layer.path, sample_rate)
        length = min(len(x), n - start)
        if note == 46:  # an open hi-hat rings until the next hi-hat hit chokes it
            nxt = next((tt for tt, nn, _ in order[k + 1:] if nn in HAT_NOTES and tt > t), None)
            if nxt is not None:
                length = min(length, int(round((nxt - t + CHOKE_S) * sample_rate)))
        seg = x[:length].astype(np.float64) * (v * layer.gain * inst.volume)
        if note == 46 and length < len(x):
            fade = min(length, int(CHOKE_S * sample_rate))
            seg[length - fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
        out[start:start + length] += seg * np.array([inst.pan_l, inst.pan_r])
    return out
