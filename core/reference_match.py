"""Loudness matching of a reference song to the mix, for A/B listening. No Qt.

:func:`reference_gain_db` measures the gain that brings the reference to the mix's integrated loudness
(ITU-R BS.1770) over a region; :class:`ReferenceMatcher` measures again in a background thread after
the mix's edits have settled for :data:`MATCH_DEBOUNCE_S`, so that a fader move does not wait for a
whole-song render. :class:`core.playback.Player` uses both.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import numpy as np

from .engine import Snapshot, StreamingConsole

#: Reference loudness matching waits for edits to settle this long before measuring.
MATCH_DEBOUNCE_S = 0.25

_CHUNK = 8192


def reference_gain_db(stems: np.ndarray, stereo: np.ndarray, sample_rate: int, snapshot: Snapshot,
                      reference: np.ndarray, region: tuple[int, int], *, looped: bool = False,
                      preroll: int = 0) -> float:
    """Integrated loudness of the mix minus that of ``reference (2, Tr)`` over frames ``region``.

    The mix (``stems`` through the console ``snapshot``) is measured as it is heard: the whole song
    from the start, or, when ``looped``, the region on its second pass (filters and compressors as
    they are when the loop comes round; the first pass starts ``preroll`` frames early). 0 dB when
    either side is silent.
    """
    from .meter import integrated_lufs

    a, b = region
    n_tracks = stems.shape[0]
    con = StreamingConsole(stems, stereo, sample_rate, snapshot.track, snapshot.master,
                           mute=snapshot.mute, solo=snapshot.solo, fx_mute=snapshot.fx_mute)
    cache = np.empty((n_tracks, 2, _CHUNK), np.float32)
    mix = np.empty((2, b - a), np.float32)
    passes = 2 if looped else 1
    con.reset(a if passes == 1 else a - preroll)
    if passes == 2:
        con.process(a - con.position, cache=cache)
    for _ in range(passes):
        con.position = a
        for start in range(0, b - a, _CHUNK):
            n = min(_CHUNK, b - a - start)
            con.process(n, out=mix[:, start:start + n], cache=cache)
    con.close()
    seg = np.zeros((2, b - a), np.float32)
    have = max(0, min(b, reference.shape[1]) - a)
    seg[:, :have] = reference[:, a:a + have]
    lm, lr = integrated_lufs(mix, sample_rate), integrated_lufs(seg, sample_rate)
    if not (math.isfinite(lm) and math.isfinite(lr)):
        return 0.0
    return float(lm - lr)


class ReferenceMatcher:
    """Measures in a background thread, once edits have settled.

    Args:
        measure: returns the gain in dB (called in the matcher's thread).
        apply: receives it (called in the matcher's thread; a failed measurement leaves the previous
            gain and calls nothing).

    The thread starts on the first :meth:`request`; :meth:`close` ends it.
    """

    def __init__(self, measure: Callable[[], float], apply: Callable[[float], None]):
        self._measure, self._apply = measure, apply
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._pending = False
        self._quit = False

    def request(self) -> None:
        """Measure again after :data:`MATCH_DEBOUNCE_S` without a further request."""
        self._pending = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="stylemix-match", daemon=True)
            self._thread.start()
        self._wake.set()

    def close(self) -> None:
        self._quit = True
        self._wake.set()
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout=5)

    def _loop(self) -> None:
        while not self._quit:
            self._wake.wait()
            self._wake.clear()
            while self._pending and not self._quit:  # debounce: wait for edits to settle
                self._pending = False
                time.sleep(MATCH_DEBOUNCE_S)
            if self._quit:
                return
            try:
                self._apply(self._measure())
            except Exception:  # a failed measurement leaves the previous gain
                pass
