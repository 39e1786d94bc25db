"""The codec: a SEANet-style convolutional encoder/decoder (SoundStream, EnCodec) around residual VQ.

    waveform (B, 1, T) --encoder--> latent (B, D, T/hop) --RVQ--> codes (n_q, B, T/hop) --decoder--> waveform

Encoder: a k=7 convolution, then at each resolution residual units (ELU, dilated k=3 conv to half width, ELU,
k=1 conv back, skip) followed by a strided convolution (kernel 2*stride) that doubles the width; a final conv
to D. Three decoders: `conv` mirrors the encoder with transposed convolutions (SoundStream, EnCodec); `istft`
(Vocos) runs residual units at the frame rate and predicts a log-magnitude and phase spectrum per frame, turned
into audio by an inverse FFT and overlap-add -- a tenth of the compute; `griffinlim` (the laptop default)
predicts the magnitudes only and recovers the phase by fast Griffin-Lim, which is what learns harmonic speech on
a CPU budget (see README.md). Weight normalisation on every conv, as in the papers. With `causal=True` every convolution pads
on the left only (transposed ones trim on the right, iSTFT frames start at their hop), so an output never
depends on later input: the codec can stream, and chunked coding needs left context only.

Lengths are kept multiples of the hop: `encode` zero-pads the end, and T samples give exactly T/hop frames.
`context_frames()` bounds how far (in frames) an output can see, which is what `stream.py` needs to code long
audio in chunks with results identical to coding it whole.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from workbench.codec.config import ModelConfig
from workbench.codec.quantizer import ResidualVectorQuantizer


class _ExpELU(torch.autograd.Function):
    """ELU (alpha 1) as max(x, exp(min(x, 0)) - 1), its gradient from the output alone: 1 where y > 0, y + 1 below."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.maximum(x, torch.exp(x.clamp(max=0.0)).sub_(1.0))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (y.clamp(max=0.0) + 1.0)


class ELU(nn.Module):
    """nn.ELU's function. Torch's CPU kernel evaluates expm1 element by element, ~35x slower than its vectorised
    exp (0.50 against 0.015 ms on a 256-channel, 8 x 1 s batch): it was 14% of a laptop codec training step. On
    CPU it is computed from exp instead (absolute error < 1e-7); elsewhere F.elu is one fused kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ExpELU.apply(x) if x.device.type == "cpu" else F.elu(x)


class Conv(nn.Module):
    """Conv1d whose output length is exactly input_length / stride (input a multiple of stride)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, causal: bool = False):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(cin, cout, kernel, stride, dilation=dilation))
        self.pad = (kernel - 1) * dilation + 1 - stride
        self.left = self.pad if causal else self.pad // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.left, self.pad - self.left)))


class ConvUp(nn.Module):
    """ConvTranspose1d whose output length is exactly input_length * stride."""

    def __init__(self, cin: int, cout: int, stride: int, causal: bool = False):
        super().__init__()
        self.conv = weight_norm(nn.ConvTranspose1d(cin, cout, 2 * stride, stride))
        self.trim = stride  # a transposed conv of kernel 2s outputs (T+1)*s samples; s too many
        self.left = 0 if causal else self.trim // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y[..., self.left: y.shape[-1] - (self.trim - self.left)]


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int, causal: bool):
        super().__init__()
        hidden = max(1, channels // 2)
        self.block = nn.Sequential(ELU(), Conv(channels, hidden, 3, dilation=dilation, causal=causal),
                                   ELU(), Conv(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def frame_rate_backbone(cfg: ModelConfig, channels: int) -> list[nn.Module]:
    """The residual units the STFT encoder and the iSTFT / Griffin-Lim decoders run at the frame rate."""
    return [ResidualUnit(channels, d, cfg.causal) for d in (*cfg.dilations, *cfg.dilations)]


class Encoder(nn.Sequential):
    def __init__(self, cfg: ModelConfig):
        c = cfg.channels
        layers: list[nn.Module] = [Conv(1, c, 7, causal=cfg.causal)]
        for s in cfg.strides:
            layers += [ResidualUnit(c, d, cfg.causal) for d in cfg.dilations]
            layers += [ELU(), Conv(c, 2 * c, 2 * s, stride=s, causal=cfg.causal)]
            c *= 2
        layers += [ELU(), Conv(c, cfg.dim, 3, causal=cfg.causal)]
        super().__init__(*layers)


def frame_spectrum(wav: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, causal: bool = False
                   ) -> torch.Tensor:
    """(B, T) with T a multiple of hop -> complex spectra (B, n_fft/2 + 1, T / hop): one Hann window of n_fft per
    hop, centred on its hop (or ending with it if causal); the signal is zero-padded at both ends."""
    left = n_fft - hop if causal else (n_fft - hop) // 2
    x = F.pad(wav, (left, n_fft - hop - left))
    return torch.fft.rfft(x.float().unfold(-1, n_fft, hop) * window).transpose(1, 2)


class STFTEncoder(nn.Module):
    """Frame-rate encoder for CPU budgets: the log-magnitude spectrum of each frame (Hann window of 4 hops,
    centred on its hop, or ending with it if causal), then residual conv units at 50 Hz down to D. Its input
    already exposes the spectral envelope a raw-waveform encoder must first learn to compute."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.channels * 2 ** len(cfg.strides)
        self.hop, self.n_fft, self.causal = cfg.hop, 4 * cfg.hop, cfg.causal
        self.net = nn.Sequential(Conv(self.n_fft // 2 + 1, c, 3, causal=cfg.causal), *frame_rate_backbone(cfg, c),
                                 ELU(), Conv(c, cfg.dim, 3, causal=cfg.causal))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        log_mag = torch.log(frame_spectrum(wav[:, 0], self.n_fft, self.hop, self.window, self.causal).abs() + 1e-5)
        return self.net(log_mag)


class Decoder(nn.Sequential):
    def __init__(self, cfg: ModelConfig):
        c = cfg.decoder_channels * 2 ** len(cfg.strides)
        layers: list[nn.Module] = [Conv(cfg.dim, c, 7, causal=cfg.causal)]
        for s in reversed(cfg.strides):
            layers += [ELU(), ConvUp(c, c // 2, s, causal=cfg.causal)]
            c //= 2
            layers += [ResidualUnit(c, d, cfg.causal) for d in cfg.dilations]
        layers += [ELU(), Conv(c, 1, 7, causal=cfg.causal)]
        super().__init__(*layers)


class ISTFTDecoder(nn.Module):
    """Vocos-style decoder (Siuzdak 2023): residual conv units at the frame rate, then per frame a log-magnitude
    and a phase for every bin of an n_fft = 4 * hop spectrum, turned into audio by inverse FFT + overlap-add.
    All its convolutions run at 50 Hz instead of 16 kHz, so it costs a tenth of the transposed-conv decoder.
    Non-causal: frame k's window is centred on its hop; causal: it starts there, so a sample depends on its
    own frame and the three before it only."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.decoder_channels * 2 ** len(cfg.strides)
        self.hop, self.n_fft, self.causal = cfg.hop, 4 * cfg.hop, cfg.causal
        self.net = nn.Sequential(Conv(cfg.dim, c, 7, causal=cfg.causal), *frame_rate_backbone(cfg, c),
                                 ELU(), Conv(c, self.n_fft + 2, 1))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        frames = z.shape[-1]
        log_mag, phase = self.net(z).float().chunk(2, 1)
        spec = torch.polar(log_mag.clamp(max=10).exp(), phase)  # (B, bins, F)
        chunks = torch.fft.irfft(spec, self.n_fft, dim=1) * self.window[:, None]  # (B, n_fft, F)
        length = (frames - 1) * self.hop + self.n_fft
        wav = F.fold(chunks, (1, length), (1, self.n_fft), stride=(1, self.hop))[:, :, 0]  # overlap-add
        wav = wav / 1.5  # sum of hann^2 over 4x-overlapping frames
        start = 0 if self.causal else (self.n_fft - self.hop) // 2
        return wav[..., start: start + frames * self.hop]


POSTFILTER_FRAMES = 101  # the postfilter's moving average in time: 2 s at 50 Hz
POSTFILTER_BINS = 15  # and in frequency: 187.5 Hz of the 1280-point spectrum at 16 kHz


def moving_average(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Mean over `width` (odd) neighbours along `dim` of (B, bins, F), edges repeated."""
    x = x.transpose(dim, -1)
    y = F.avg_pool1d(F.pad(x, (width // 2, width // 2), mode="replicate"), width, 1)
    return y.transpose(dim, -1)


ENVELOPE_CEPSTRA = 30  # 30 cepstral coefficients at 16 kHz: quefrencies under 1.9 ms, below any pitch period (>= 2.5 ms)


def spectral_envelope(log_mag: torch.Tensor, keep: int = ENVELOPE_CEPSTRA) -> torch.Tensor:
    """The smooth part of each frame's log-magnitude spectrum (B, bins, F): its first `keep` cepstral
    coefficients (the vocal tract's resonances and the channel's colour). `log_mag` minus it is the fine structure:
    the harmonics of the pitch, and the noise between them."""
    cepstrum = torch.fft.irfft(log_mag, dim=1)
    cepstrum[:, keep:cepstrum.shape[1] - keep + 1] = 0
    return torch.fft.rfft(cepstrum, dim=1).real


def postfilter(log_mag: torch.Tensor, time: float, freq: float) -> torch.Tensor:
    """Widen the contrast of predicted log magnitudes (B, bins, F): deviations from the moving average over
    POSTFILTER_FRAMES frames times `time`, then from the moving average over POSTFILTER_BINS bins times `freq`.

    Why: a decoder regressed to the log spectrum predicts what is likely, which is smoother than speech -- pauses
    and the valleys between harmonics and formants come out too loud. Classic codecs (Codec2's, CELP's) end with a
    postfilter that deepens the valleys for the same reason. Measured on the laptop codec (README): `time` 1.1
    lifts PESQ-WB by 0.06-0.10 and leaves speaker similarity alone; sharpening in frequency lifts PESQ more but
    moves the voice (a d-vector's similarity to the original falls), so the laptop preset leaves `freq` at 1."""
    if time != 1:
        mean = moving_average(log_mag, POSTFILTER_FRAMES, -1)
        log_mag = mean + time * (log_mag - mean)
    if freq != 1:
        mean = moving_average(log_mag, POSTFILTER_BINS, 1)
        log_mag = mean + freq * (log_mag - mean)
    return log_mag


class GriffinLimDecoder(nn.Module):
    """Magnitude decoder + Griffin-Lim phase: the frame-rate trunk of the iSTFT decoder predicts only the log
    magnitude of each frame's spectrum (the frames of `frame_spectrum`), trained by direct regression on the
    input's own spectrum; the phase is recovered by fast Griffin-Lim (Perraudin et al. 2013: alternate
    projections onto consistent spectrograms and onto the predicted magnitudes, with momentum), from zero phase
    so decoding is deterministic.

    Why: without a discriminator, a decoder that must also invent phases learns them slowly and overlap-adds
    inconsistent frames into noise -- harmonics vanish (see README.md). Magnitudes are an easy, dense target,
    and from exact magnitudes 32 Griffin-Lim iterations already give PESQ ~3.1 on our test speech. The decoder's
    magnitudes are not exact, and more iterations fit the phase to their errors too: 16 decode them better than 32
    (README). Each iteration lets a frame see 3 more frames on each side, so the reach stays bounded
    (`reach_frames`) and chunked decoding still equals whole-signal decoding. Not causal."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.decoder_channels * 2 ** len(cfg.strides)
        self.hop, self.n_fft, self.iters, self.momentum = cfg.hop, 4 * cfg.hop, cfg.gla_iters, cfg.gla_momentum
        self.contrast = (cfg.postfilter_time, cfg.postfilter_freq)
        self.net = nn.Sequential(Conv(cfg.dim, c, 7), *frame_rate_backbone(cfg, c), ELU(),
                                 Conv(c, self.n_fft // 2 + 1, 1))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def log_magnitude(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, F) -> predicted log |spectrum| (B, n_fft/2 + 1, F), the frames of `frame_spectrum`."""
        return self.net(z).float().clamp(-12.0, 10.0)

    def reach_frames(self) -> int:
        """Frames on each side that one output frame depends on, from the postfilter to the audio."""
        postfilter = POSTFILTER_FRAMES // 2 if self.contrast[0] != 1 else 0
        return self.iters * (self.n_fft // self.hop - 1) + postfilter

    def _istft(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, bins, F) -> the overlap-added signal over all frames, (B, (F - 1) * hop + n_fft)."""
        frames = spec.shape[-1]
        chunks = torch.fft.irfft(spec, self.n_fft, dim=1) * self.window[:, None]
        length = (frames - 1) * self.hop + self.n_fft
        fold = lambda x: F.fold(x, (1, length), (1, self.n_fft), stride=(1, self.hop))[:, 0, 0]  # noqa: E731
        norm = fold(self.window.pow(2)[None, :, None].expand(1, -1, frames))
        return fold(chunks) / norm.clamp(min=1e-3)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft(x.unfold(-1, self.n_fft, self.hop) * self.window).transpose(1, 2)

    def griffin_lim(self, mag: torch.Tensor) -> torch.Tensor:
        """Magnitudes (B, bins, F) of `frame_spectrum`'s frames -> waveform (B, 1, F * hop)."""
        frames = mag.shape[-1]
        spec, previous = mag.to(torch.complex64), torch.zeros_like(mag, dtype=torch.complex64)
        for _ in range(self.iters):
            rebuilt = self._stft(self._istft(spec))
            angles = rebuilt - (self.momentum / (1 + self.momentum)) * previous
            spec, previous = mag * angles / (angles.abs() + 1e-8), rebuilt
        wav = self._istft(spec)
        start = (self.n_fft - self.hop) // 2
        return wav[:, None, start: start + frames * self.hop]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.griffin_lim(postfilter(self.log_magnitude(z), *self.contrast).exp())


def _context_samples(layers, step: int) -> int:
    """How far (in samples of the input of `layers`, whose first layer runs at `step` input samples per
    position) any output can reach on one side: the sum of every layer's one-sided span. A safe bound."""
    reach = 0
    for m in layers.modules():
        if isinstance(m, Conv):
            reach += (m.pad + m.conv.stride[0]) * step
            step *= m.conv.stride[0]
    return reach


class Codec(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.encoder = STFTEncoder(cfg) if cfg.encoder == "stft" else Encoder(cfg)
        self.quantizer = ResidualVectorQuantizer(cfg.dim, cfg.codebook_size, cfg.num_quantizers, cfg.ema_decay,
                                                 cfg.dead_code_threshold)
        self.decoder = {"istft": ISTFTDecoder, "griffinlim": GriffinLimDecoder, "conv": Decoder}[cfg.decoder](cfg)

    @property
    def hop(self) -> int:
        return self.cfg.hop

    def pad(self, wav: torch.Tensor) -> torch.Tensor:
        """Zero-pad (..., T) at the end to a multiple of the hop."""
        return F.pad(wav, (0, -wav.shape[-1] % self.hop))

    def forward(self, wav: torch.Tensor, n_q: int | None = None, magnitudes: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: wav (B, 1, T), T a multiple of hop -> (reconstruction, codes, commitment loss). With
        `magnitudes` (the griffinlim decoder) the first is the decoder's log-magnitude frames instead: that
        decoder trains on them, without running Griffin-Lim."""
        z, codes, commit = self.quantizer(self.encoder(wav), n_q)
        if magnitudes:
            if self.cfg.decoder != "griffinlim":
                raise ValueError(f"the {self.cfg.decoder} decoder has no magnitude-only pass")
            return self.decoder.log_magnitude(z), codes, commit
        return self.decoder(z), codes, commit

    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """wav (B, T) or (B, 1, T) -> codes (n_q, B, ceil(T / hop)); the end is zero-padded to a whole frame."""
        wav = self.pad(wav if wav.dim() == 3 else wav[:, None])
        return self.quantizer.encode(self.encoder(wav), n_q, self.cfg.rvq_beam)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_q, B, F) -> wav (B, F * hop)."""
        return self.decoder(self.quantizer.decode(codes))[:, 0]

    def context_frames(self) -> tuple[int, int]:
        """(encoder, decoder) reach in frames on each side (left only if causal): code a chunk with this many
        frames of context around it and its middle equals the whole-signal result."""
        if self.cfg.encoder == "stft":  # its convolutions run at the frame rate, after one window of 4 hops
            enc = self.encoder.n_fft // self.hop + 1 + sum(m.pad + 1 for m in self.encoder.modules() if isinstance(m, Conv))
        else:
            enc = math.ceil(_context_samples(self.encoder, 1) / self.hop)
        # the decoder's first conv runs at frame rate; every ConvUp multiplies the rate
        reach, rate = (self.decoder.n_fft / self.hop + 1 if self.cfg.decoder in ("istft", "griffinlim") else 0.0), 1
        if self.cfg.decoder == "griffinlim":
            reach += self.decoder.reach_frames()
        for m in self.decoder.modules():
            if isinstance(m, Conv):
                reach += (m.pad + 1) / rate
            elif isinstance(m, ConvUp):
                reach += 2 / rate
                rate *= m.conv.stride[0]
        return enc, math.ceil(reach)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
