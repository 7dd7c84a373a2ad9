"""The mixing controller: raw tracks + a reference song -> console parameters (Diff-MST).

``P = g(f_t(T), f_r(M_r))`` (Vanka, Steinmetz et al., ISMIR 2024): one spectrogram encoder embeds each
track, another embeds each channel of the reference; a transformer encoder over
``[master token, reference L, reference R, track 1..N]`` mixes the information; a head shared by all
tracks turns each track token into that track's parameters and a master head turns the master token into
the master-bus parameters. Outputs are in the schema's unit space [0, 1] (``core.params``); head widths
come from ``TRACK.n_predicted`` / ``MASTER.n_predicted``.

Input convention (the caller normalises; the model does not):

* audio at ``config.sample_rate``, float, shape ``(B, N, 2, T)`` or mono ``(B, N, T)`` for tracks and
  ``(B, 2, T)`` for the reference;
* each track loudness-normalised to ``config.track_lufs`` (-48 LUFS) and the reference to
  ``config.reference_lufs`` (-16 LUFS), as in the paper's training recipe, so levels carry no
  information the console cannot undo with its trim.

Differences from the paper's model, and why:

* The spectrogram (Hann 2048 / hop 512, ``|X|**0.3``) is reduced to ``n_bands`` mel-spaced bands before
  the CNN, and every conv layer downsamples by 2 in both axes. The paper's CNN runs at full resolution
  (1025 bins x 862 frames), which costs ~32 s and 11.5 GB for 16 tracks x 10 s on a 2-core CPU.
* The CNN output is pooled over time only (mean and standard deviation), keeping a coarse frequency
  axis, so the embedding still says *where* in the spectrum energy sits (EQ) and how much it varies
  (dynamics).
* A stereo track is one token; its spectrogram is the mean of the two channels' magnitude spectrograms
  (not the spectrogram of the mid signal, which would hide anti-phase content). A mono stem stored as two
  identical channels therefore gives exactly the mono spectrogram.
* The reference L and R tokens get learned "which channel" embeddings. Without them the controller sees
  the reference channels as an unordered set and cannot tell a left-heavy reference from a right-heavy
  one (stereo imbalance is one of the style features). Tracks get one shared "track" embedding, so the
  model stays permutation-equivariant over tracks and works for any track count.
* The heads start at the console defaults (a neutral mix) rather than at 0.5 everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from core.params import MASTER, TRACK, Schema


@dataclass
class ModelConfig:
    """Everything that rebuilds a :class:`MixController` (stored in checkpoints)."""

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 512
    mag_power: float = 0.3  # |X| ** mag_power
    n_bands: int = 128  # mel-spaced bands the spectrogram is pooled to before the CNN
    f_min_hz: float = 20.0
    cnn_channels: tuple[int, ...] = (16, 32, 64, 128)  # one stride-2 conv block per entry
    embed_dim: int = 256
    n_layers: int = 4
    n_heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.1
    encoder_chunk: int = 8  # spectrograms encoded at once (bounds the STFT's transient memory)
    track_lufs: float = -48.0  # input convention, documented here and applied by the caller
    reference_lufs: float = -16.0

    def __post_init__(self):
        self.cnn_channels = tuple(int(c) for c in self.cnn_channels)
        if self.embed_dim % self.n_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by n_heads {self.n_heads}")
        if self.n_bands >> len(self.cnn_channels) < 1:
            raise ValueError(f"n_bands {self.n_bands} is too small for {len(self.cnn_channels)} conv blocks")


def mel_filterbank(sample_rate: int, n_fft: int, n_bands: int, f_min_hz: float = 20.0) -> torch.Tensor:
    """Triangular mel-spaced filterbank, shape ``(n_bands, n_fft // 2 + 1)``.

    Each row sums to 1 (a weighted mean of the bins under the triangle), so a band's value is on the same
    scale as a bin's. A band too narrow to contain any bin takes its nearest bin.
    """
    n_bins = n_fft // 2 + 1
    bin_hz = torch.arange(n_bins, dtype=torch.float64) * sample_rate / n_fft

    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(f_min_hz), hz_to_mel(sample_rate / 2), n_bands + 2, dtype=torch.float64)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)  # (n_bands + 2,) Hz
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (bin_hz[None] - lo) / (centre - lo)
    fall = (hi - bin_hz[None]) / (hi - centre)
    fb = torch.clamp(torch.minimum(rise, fall), min=0.0)  # (n_bands, n_bins)
    empty = fb.sum(dim=1) == 0
    if empty.any():
        nearest = torch.argmin((bin_hz[None] - centre[empty]).abs(), dim=1)
        fb[empty] = 0.0
        fb[empty.nonzero().squeeze(1), nearest] = 1.0
    return (fb / fb.sum(dim=1, keepdim=True)).float()


class SpectrogramEncoder(nn.Module):
    """Audio -> one embedding per signal.

    ``(S, C, T)`` (S signals of C channels each, C = 1 or 2) -> ``(S, embed_dim)``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # derived from the config, so not stored in checkpoints
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_bands, config.f_min_hz)
        self.register_buffer("filterbank", fb.T.contiguous(), persistent=False)  # (n_bins, n_bands)
        blocks, c_in = [], 1
        for c_out in config.cnn_channels:
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
                # GroupNorm normalises each signal on its own: no statistics shared across the batch, so
                # padded or neighbouring tracks never leak into a track's embedding.
                nn.GroupNorm(min(8, c_out), c_out),
                nn.GELU(),
            ]
            c_in = c_out
        self.cnn = nn.Sequential(*blocks)
        f_out = config.n_bands
        for _ in config.cnn_channels:
            f_out = (f_out + 1) // 2
        self.proj = nn.Sequential(
            nn.Linear(2 * c_in * f_out, config.embed_dim), nn.LayerNorm(config.embed_dim)
        )

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """``(S, C, T)`` -> compressed band spectrogram ``(S, 1, n_bands, frames)``."""
        S, C, T = audio.shape
        spec = torch.stft(
            audio.reshape(S * C, T), self.config.n_fft, self.config.hop, window=self.window,
            center=True, pad_mode="constant", return_complex=True,
        )  # (S*C, n_bins, frames)
        bands = spec.abs().transpose(1, 2) @ self.filterbank  # (S*C, frames, n_bands)
        bands = bands.reshape(S, C, -1, self.config.n_bands).mean(dim=1)  # (S, frames, n_bands)
        bands = bands.clamp_min(1e-10) ** self.config.mag_power
        return bands.transpose(1, 2).unsqueeze(1)  # (S, 1, n_bands, frames)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.shape[0] == 0:  # e.g. a batch whose tracks are all padding
            return audio.new_zeros(0, self.config.embed_dim)
        chunk = max(1, self.config.encoder_chunk)
        return torch.cat([self._encode(audio[i : i + chunk]) for i in range(0, audio.shape[0], chunk)])

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        h = self.cnn(self.spectrogram(audio))  # (S, c, f, t)
        mean = h.mean(dim=-1)  # (S, c, f)
        # sqrt(var + eps): bounded gradient where features barely vary over time (a silent track)
        spread = (h.var(dim=-1, unbiased=False) + 1e-6).sqrt()  # (S, c, f)
        pooled = torch.cat([mean, spread], dim=1)  # (S, 2c, f)
        return self.proj(pooled.flatten(1))  # (S, embed_dim)


class ParamHead(nn.Module):
    """Token -> predicted parameters of one schema in [0, 1]; starts at the schema's defaults."""

    def __init__(self, embed_dim: int, schema: Schema):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, schema.n_predicted)
        )
        default_unit = schema.to_unit(schema.defaults())[schema.predicted_mask]
        default_unit = torch.as_tensor(default_unit, dtype=torch.float32)
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.copy_(torch.logit(default_unit.clamp(0.05, 0.95)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class MixController(nn.Module):
    """Tracks + reference -> track and master console parameters."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        d = config.embed_dim
        self.track_encoder = SpectrogramEncoder(config)
        self.reference_encoder = SpectrogramEncoder(config)
        self.master_token = nn.Parameter(torch.randn(d) * 0.02)
        self.track_type = nn.Parameter(torch.randn(d) * 0.02)
        self.reference_type = nn.Parameter(torch.randn(2, d) * 0.02)  # L, R
        layer = nn.TransformerEncoderLayer(
            d, config.n_heads, config.ffn_dim, config.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, config.n_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False
        )
        self.track_head = ParamHead(d, TRACK)
        self.master_head = ParamHead(d, MASTER)

    def forward(
        self, tracks: torch.Tensor, reference: torch.Tensor, track_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict unit-space parameters.

        Args:
            tracks: ``(B, N, 2, T)`` stereo or ``(B, N, T)`` mono, loudness-normalised (module docstring).
            reference: ``(B, 2, T_ref)``; ``T_ref`` need not equal ``T``.
            track_mask: ``(B, N)`` bool, True for real tracks, False for padding (default: all real).
                Padded tracks are never encoded and never attended to, so their content does not matter.

        Returns:
            ``track_unit (B, N, TRACK.n_predicted)`` and ``master_unit (B, MASTER.n_predicted)`` in [0, 1],
            in schema order of the predicted parameters. Rows of padded tracks are 0.
        """
        if tracks.dim() == 3:
            tracks = tracks.unsqueeze(2)  # (B, N, 1, T)
        if tracks.dim() != 4 or tracks.shape[2] not in (1, 2):
            raise ValueError(f"tracks must be (B, N, 2, T) or (B, N, T), got {tuple(tracks.shape)}")
        if reference.dim() != 3 or reference.shape[1] != 2:
            raise ValueError(f"reference must be (B, 2, T), got {tuple(reference.shape)}")
        B, N, C, T = tracks.shape
        if reference.shape[0] != B:
            raise ValueError(f"batch sizes differ: tracks {B}, reference {reference.shape[0]}")
        if track_mask is None:
            track_mask = torch.ones(B, N, dtype=torch.bool, device=tracks.device)
        track_mask = track_mask.to(device=tracks.device, dtype=torch.bool)
        if track_mask.shape != (B, N):
            raise ValueError(f"track_mask must be {(B, N)}, got {tuple(track_mask.shape)}")

        d = self.config.embed_dim
        flat_mask = track_mask.reshape(B * N)
        # encode only the real tracks, then scatter them back into their (B, N) slots
        real = self.track_encoder(tracks.reshape(B * N, C, T)[flat_mask])  # (n_real, d)
        track_tok = real.new_zeros(B * N, d).index_put((flat_mask,), real).reshape(B, N, d)
        track_tok = track_tok + self.track_type
        ref_tok = self.reference_encoder(reference.reshape(B * 2, 1, -1)).reshape(B, 2, d)
        ref_tok = ref_tok + self.reference_type
        master_tok = self.master_token.expand(B, 1, d)
        tokens = torch.cat([master_tok, ref_tok, track_tok], dim=1)  # (B, 3 + N, d)

        ignore = torch.cat([track_mask.new_zeros(B, 3), ~track_mask], dim=1)  # True = padding
        out = self.transformer(tokens, src_key_padding_mask=ignore)  # (B, 3 + N, d)

        master_unit = self.master_head(out[:, 0])  # (B, Pm)
        track_unit = self.track_head(out[:, 3:])  # (B, N, Pt)
        track_unit = torch.where(track_mask[..., None], track_unit, torch.zeros_like(track_unit))
        return track_unit, master_unit

    @staticmethod
    def to_physical(
        track_unit: torch.Tensor,
        master_unit: torch.Tensor,
        track_mask: torch.Tensor | None = None,
        fixed: dict[str, torch.Tensor | float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted unit values -> full physical vectors in schema order.

        Args:
            track_unit: ``(B, N, TRACK.n_predicted)``; master_unit: ``(B, MASTER.n_predicted)``.
            track_mask: ``(B, N)`` bool; padded tracks get the schema defaults.
            fixed: physical values of the track parameters the model does not predict (e.g.
                ``{"trim_db": tensor (B, N)}``); those not given take their default.

        Returns:
            ``(B, N, len(TRACK))`` and ``(B, len(MASTER))`` physical values (differentiable).
        """
        tracks = _fill(TRACK, track_unit, fixed or {})
        master = _fill(MASTER, master_unit, {})
        if track_mask is not None:
            defaults = torch.as_tensor(TRACK.defaults(), dtype=tracks.dtype, device=tracks.device)
            tracks = torch.where(track_mask.to(tracks.device, torch.bool)[..., None], tracks, defaults)
        return tracks, master

    def predict_params(
        self,
        tracks: torch.Tensor,
        reference: torch.Tensor,
        track_mask: torch.Tensor | None = None,
        fixed: dict[str, torch.Tensor | float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`forward`, returning physical ``(B, N, len(TRACK))`` and ``(B, len(MASTER))``."""
        track_unit, master_unit = self(tracks, reference, track_mask)
        return self.to_physical(track_unit, master_unit, track_mask, fixed)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _fill(schema: Schema, unit: torch.Tensor, fixed: dict[str, torch.Tensor | float]) -> torch.Tensor:
    """Predicted unit values ``(..., n_predicted)`` -> physical ``(..., len(schema))``.

    Non-predicted parameters take ``fixed[key]`` (physical, broadcast to ``unit.shape[:-1]``, clipped to
    the range) or their default.
    """
    predicted = schema.predicted_mask
    if unit.shape[-1] != schema.n_predicted:
        raise ValueError(
            f"{schema.name}: expected {schema.n_predicted} predicted values, got {unit.shape[-1]}"
        )
    unknown = set(fixed) - {p.key for p in schema if not p.predicted}
    if unknown:
        raise KeyError(f"{schema.name}: not settable parameters: {', '.join(sorted(unknown))}")
    idx = torch.as_tensor(predicted.nonzero()[0], device=unit.device)
    full_unit = unit.new_zeros(*unit.shape[:-1], len(schema)).index_copy(-1, idx, unit)
    physical = schema.from_unit(full_unit)  # (..., len(schema)); non-predicted columns replaced below
    columns = []
    for i, p in enumerate(schema):
        if p.predicted:
            columns.append(physical[..., i])
        else:
            value = torch.as_tensor(fixed.get(p.key, p.default), dtype=unit.dtype, device=unit.device)
            columns.append(value.expand(unit.shape[:-1]).clamp(p.min, p.max))
    return torch.stack(columns, dim=-1)
