"""The app's side of live playback: a thin adapter over :class:`core.playback.Player`.

It keeps one rule for the rest of the app: the engine always exists once audio is loaded, even
without a sound card, so edits, A/B and loudness matching behave the same everywhere; only starting
the transport needs a device. Without PortAudio or a device, :attr:`reason` says why in one line
(shown in the status bar) and :meth:`play` refuses.
"""

from __future__ import annotations

import numpy as np

from core.paramfile import MixParams
from core.params import MASTER


class AudioEngine:
    """Wraps a Player; ``reason`` is None when audio output works."""

    def __init__(self, enabled: bool = True, device=None, external_clock: bool = False):
        self.device = device
        self.player = None
        self.sample_rate = 44100
        # external_clock: no device; the caller pulls blocks with player.callback (tests, tools)
        self.external_clock = external_clock
        if external_clock:
            self.reason = None
        else:
            self.reason = self._probe(device) if enabled else "audio output disabled"

    @staticmethod
    def _probe(device) -> str | None:
        try:
            from core.playback import check_audio
        except ImportError as exc:  # a broken install must not stop the app from opening
            return f"no audio output: playback engine unavailable ({exc})"
        return check_audio(device)

    @property
    def available(self) -> bool:
        return self.reason is None

    # -- material ------------------------------------------------------------------------------------------
    def load(self, inputs, params: MixParams, mute, solo, fx_mute: bool = False) -> None:
        """A new engine for these stems (the track count or audio changed); ``fx_mute``: the FX return
        muted."""
        from core.playback import Player

        self.close()
        self.sample_rate = inputs.sample_rate
        self.player = Player(inputs.stems, inputs.stereo, inputs.sample_rate, params.tracks, params.master,
                             audio=self.available and not self.external_clock, device=self.device)
        self.player.set_params(mute=np.asarray(mute, bool), solo=np.asarray(solo, bool),
                               fx_mute=bool(fx_mute))

    def close(self) -> None:
        if self.player is not None:
            self.player.close()
            self.player = None

    @property
    def loaded(self) -> bool:
        return self.player is not None

    # -- parameters ------------------------------------------------------------------------------------------
    def set_params(self, params: MixParams, mute, solo, fx_mute: bool = False) -> None:
        """Every model change arrives here; the engine swaps in a new immutable snapshot."""
        if self.player is not None:
            self.player.set_params(params.tracks, params.master, np.asarray(mute, bool),
                                   np.asarray(solo, bool), bool(fx_mute))

    def set_value(self, track: int, key: str, value: float) -> None:
        """One control (track -1: master) changed: only it is designed again."""
        if self.player is not None:
            self.player.set_value(track, key, value)

    def set_b_reference(self, reference) -> None:
        if self.player is not None:
            self.player.set_reference(reference)

    def set_b_params(self, params: MixParams, gain_db: float = 0.0) -> None:
        """B = another console (the prediction), its master fader offset by ``gain_db`` (loudness match)."""
        if self.player is None:
            return
        master = params.master.copy()
        gi = MASTER.index("gain_db")
        master[gi] = MASTER["gain_db"].clip(master[gi] + gain_db)
        self.player.set_b_params(params.tracks, master)

    @property
    def snapshot(self):
        """The engine's current parameters (A)."""
        return None if self.player is None else self.player.snapshot

    # -- transport -------------------------------------------------------------------------------------------
    def play(self) -> None:
        if self.player is None:
            return
        if not self.available:
            from core.playback import NoAudioError

            raise NoAudioError(self.reason)
        self.player.play()

    def pause(self) -> None:
        if self.player is not None:
            self.player.pause()

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()

    @property
    def playing(self) -> bool:
        return self.player is not None and self.player.playing

    def seek(self, seconds: float) -> None:
        if self.player is not None:
            self.player.seek(int(round(seconds * self.sample_rate)))

    def position(self) -> float:
        return 0.0 if self.player is None else self.player.position / self.sample_rate

    def set_loop(self, region: tuple[float, float] | None) -> None:
        if self.player is None:
            return
        if region is None:
            self.player.set_loop(None)
            return
        a, b = (int(round(t * self.sample_rate)) for t in region)
        if b - a >= self.player.block:
            self.player.set_loop(a, b)

    def set_ab(self, which: str) -> None:
        if self.player is not None:
            self.player.set_ab(which)

    @property
    def ab(self) -> str:
        return "A" if self.player is None else self.player.ab

    def meters(self):
        return None if self.player is None else self.player.meters()

    @property
    def reference_gain_db(self) -> float:
        return 0.0 if self.player is None else self.player.reference_gain_db
