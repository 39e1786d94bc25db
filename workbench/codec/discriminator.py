"""Multi-scale STFT discriminator (EnCodec sec. 3.3): one 2-D conv net per STFT resolution, reading the
complex spectrogram (real and imaginary parts as two channels), so it judges phase as well as magnitude.
Each net returns its logits map and its intermediate feature maps (for feature matching)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class STFTDiscriminator(nn.Module):
    def __init__(self, n_fft: int, channels: int):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(2, c, (3, 9), padding=(1, 4))),
            # frequency is downsampled, time is dilated: wider context at little cost
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(1, 1), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(2, 1), padding=(2, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(4, 1), padding=(4, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.out = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(wav.reshape(-1, wav.shape[-1]), self.n_fft, self.n_fft // 4, window=self.window,
                          return_complex=True)
        x = torch.stack([spec.real, spec.imag], 1).transpose(2, 3)  # (B, 2, time, freq)
        feats = []
        for conv in self.convs:
            x = self.act(conv(x))
            feats.append(x)
        return self.out(x), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, ffts: tuple[int, ...] = (256, 512, 1024), channels: int = 16):
        super().__init__()
        self.discs = nn.ModuleList(STFTDiscriminator(n, channels) for n in ffts)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, feats = zip(*(d(wav) for d in self.discs))
        return list(logits), list(feats)
