"""SoundStorm's model: a bidirectional Conformer over codec frames, one output head per RVQ level.

    semantic (b, t) ─ embedding ─┐
    codes (b, q, t) ─ per-level embeddings (index k = mask), summed over q ─┴─ + ─> Conformer x L ─> LayerNorm
        ─> head of level q ─> logits (b, t, k)  [+ log p(code of level q | semantic token): `semantic_prior`]
        [─> latent head ─> (b, t, D): the codec latent the masked levels add up to (`latent_head`)]

The semantic tokens arrive already repeated to the codec frame rate (`data.upsample_semantic`), so the sequence
length is the number of codec frames and every frame's embedding is the sum of its conditioning and all its
levels (SoundStorm). Conformer block (Gulati et al. 2020): x + FFN/2, x + MHSA (bidirectional, RoPE on half of
each head's dims), x + conv module (pointwise + GLU, depthwise conv, norm, SiLU, pointwise), x + FFN/2,
LayerNorm. The conv module normalises with LayerNorm over channels rather than BatchNorm, so a frame's output
never depends on the other items of a batch: windows decode the same alone or batched.

Padding (`pad`, (b, t) bool, True = not a frame): keys at padded frames are never attended to and the
depthwise convolution sees zeros there, so padded and unpadded inputs give the same outputs at real frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench.acoustic.config import AcousticModelConfig
from workbench.core.nn import apply_rope, init_linear


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, dim), nn.Dropout(dropout))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)  # (b, t, n, h)
        positions = torch.arange(t, device=x.device).expand(b, t)
        q, k = apply_rope(q, positions), apply_rope(k, positions)
        mask = None if keep is None else keep[:, None, None, :]  # (b, 1, 1, t): attend to real frames only
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return F.dropout(self.out(y.transpose(1, 2).reshape(b, t, d)), self.dropout, self.training)


class ConvModule(nn.Module):
    def __init__(self, dim: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.conv_norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        y = F.glu(self.pointwise_in(self.norm(x)), dim=-1)
        if keep is not None:
            y = y * keep[..., None].to(y.dtype)  # padded frames are zeros to the convolution
        y = self.depthwise(y.transpose(1, 2)).transpose(1, 2)
        y = self.pointwise_out(F.silu(self.conv_norm(y)))
        return F.dropout(y, self.dropout, self.training)


class ConformerBlock(nn.Module):
    def __init__(self, cfg: AcousticModelConfig):
        super().__init__()
        hidden = cfg.ff_mult * cfg.dim
        self.ff1 = FeedForward(cfg.dim, hidden, cfg.dropout)
        self.attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout)
        self.conv = ConvModule(cfg.dim, cfg.conv_kernel, cfg.dropout)
        self.ff2 = FeedForward(cfg.dim, hidden, cfg.dropout)
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, keep)
        x = x + self.conv(x, keep)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class SoundStorm(nn.Module):
    def __init__(self, cfg: AcousticModelConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        q, k, d = cfg.num_levels, cfg.codebook_size, cfg.dim
        self.semantic_embedding = nn.Embedding(cfg.semantic_vocab, d)
        self.code_embedding = nn.Embedding(q * (k + 1), d)  # level q's table at rows q (k + 1) ..; row k = mask
        self.register_buffer("level_offset", torch.arange(q) * (k + 1), persistent=False)
        self.speaker_projection = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d)) if cfg.prompt_pooling else None
        self.blocks = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.layers))
        self.head_weight = nn.Parameter(torch.empty(q, k, d))  # one output head per level
        self.head_bias = nn.Parameter(torch.zeros(q, k))
        # log p(code | semantic token) per level, counted on the training pairs (`set_prior`); saved with the weights
        self.register_buffer("prior", torch.zeros(q, cfg.semantic_vocab, k) if cfg.semantic_prior else None)
        # the regression head and the codec's codebooks (q, k, D) it is read against (`set_codebooks`); saved with
        # the weights, so decoding needs no codec to pick the nearest code
        self.latent_head = nn.Linear(d, cfg.latent_dim) if cfg.latent_head else None
        self.register_buffer("codebooks", torch.zeros(q, k, cfg.latent_dim) if cfg.latent_head else None)
        # the mean codec latent of each semantic token (`set_latent_table`), where the estimate starts
        self.register_buffer("latent_table", torch.zeros(cfg.semantic_vocab, cfg.latent_dim) if cfg.latent_prior else None)
        self.reset_parameters()

    @property
    def mask_id(self) -> int:
        return self.cfg.codebook_size

    def reset_parameters(self) -> None:
        nn.init.normal_(self.semantic_embedding.weight, std=1.0)
        # every frame sums 1 + q embeddings: scale them so the sum starts at unit variance
        nn.init.normal_(self.code_embedding.weight, std=1.0 / math.sqrt(self.cfg.num_levels))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init_linear(m)
        # with a semantic prior the heads start at zero, so the model starts as the counted table (random heads
        # would first add noise to it); measured, it then learns little beyond the table (README: the prior is off)
        nn.init.normal_(self.head_weight, std=0.0 if self.cfg.semantic_prior else 1.0 / math.sqrt(self.cfg.dim))
        nn.init.zeros_(self.head_bias)
        if self.cfg.latent_prior:  # the estimate starts as the table's (as the semantic prior's heads do)
            nn.init.zeros_(self.latent_head.weight)
            nn.init.zeros_(self.latent_head.bias)

    def forward(self, semantic: torch.Tensor, codes: torch.Tensor, pad: torch.Tensor | None = None,
                level: int | torch.Tensor | None = None, latent: bool = False):
        """semantic (b, t) at the codec rate, codes (b, q, t) with `mask_id` where masked -> hidden (b, t, d), or
        with `level` that level's logits (b, t, k) (what training calls: one pass through `forward`); with `latent`
        also the latent head's output (b, t, D): (logits, latent)."""
        frames = self.code_embedding(codes + self.level_offset[:, None]).sum(1)
        x = self.semantic_embedding(semantic) + frames
        keep = None if pad is None else ~pad
        if self.speaker_projection is not None:
            x = x + self.speaker(frames, codes, keep)[:, None]
        for block in self.blocks:
            x = block(x, keep)
        if level is None:
            return x
        logits = self.logits(x, level, semantic)
        return (logits, self.latent_estimate(x, semantic, codes)) if latent else logits

    def latent_estimate(self, hidden: torch.Tensor, semantic: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(b, t, D): the latent head's estimate of what a frame's masked levels add up to; with `latent_prior`,
        the token's table latent moved by the prompt's mean offset from the table, less the codes known at the
        frame, plus the head's correction."""
        estimate = self.latent_head(hidden)
        if self.latent_table is None:
            return estimate
        known = self.known_latent(codes)
        table = self.latent_table[semantic]  # (b, t, D)
        # the table speaks an average voice; the frames known at every level (the prompt, the overlap) say how far
        # this speaker's latent sits from it, and every frame is moved by that mean offset
        full = (codes != self.mask_id).all(1).to(table.dtype)  # (b, t)
        offset = torch.einsum("bt,btd->bd", full, known - table) / full.sum(1, keepdim=True).clamp(min=1)
        return estimate + table + offset[:, None] - known

    def known_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """(b, t, D): the sum of the codebook vectors of each frame's known (unmasked) codes."""
        known = codes != self.mask_id  # (b, q, t)
        q = torch.arange(codes.shape[1], device=codes.device)[None, :, None]
        return (self.codebooks[q, codes.clamp(max=self.mask_id - 1)] * known[..., None]).sum(1)

    def speaker(self, frames: torch.Tensor, codes: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """(b, d): the projected mean of the summed code embeddings `frames` (b, t, d) over the frames whose every
        level is known -- the prompt, and the overlap a window takes from its predecessor; in training the
        unmasked prefix (the finest level's loss frames excepted when it is the level trained: they are masked).
        Averaged over seconds of speech, what the words put in cancels and the voice stays (a d-vector's trick),
        so the voice reaches every frame in one step instead of through attention it must first learn."""
        full = (codes != self.mask_id).all(1)
        if keep is not None:
            full = full & keep
        weights = full.to(frames.dtype) / full.sum(1, keepdim=True).clamp(min=1)
        return self.speaker_projection(torch.einsum("bt,btd->bd", weights, frames))

    def set_prior(self, log_probs: torch.Tensor) -> None:
        """Set the semantic prior: (q, semantic_vocab, k) log p(code of level q | semantic token)."""
        if self.prior is None:
            raise ValueError("this model was built without a semantic prior (AcousticModelConfig.semantic_prior)")
        self.prior.copy_(log_probs)

    def logits(self, hidden: torch.Tensor, level: int | torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        """hidden (b, t, d) and semantic (b, t) -> logits (b, t, k) of `level` (an int, or (b,) one level per
        item)."""
        if isinstance(level, int):
            out = hidden @ self.head_weight[level].T + self.head_bias[level]
            return out if self.prior is None else out + self.prior[level][semantic]
        out = torch.einsum("btd,bkd->btk", hidden, self.head_weight[level]) + self.head_bias[level][:, None]
        return out if self.prior is None else out + self.prior[level[:, None], semantic]

    def set_codebooks(self, codebooks: torch.Tensor) -> None:
        """Keep the codec's codebooks (q, k, D), which the latent head's targets and `nearest_code_logits` use."""
        if self.codebooks is None:
            raise ValueError("this model was built without a latent head (AcousticModelConfig.latent_head)")
        if codebooks.shape != self.codebooks.shape:
            raise ValueError(f"codebooks of shape {tuple(codebooks.shape)}; this model needs {tuple(self.codebooks.shape)}")
        self.codebooks.copy_(codebooks)

    def whole_latent(self, semantic: torch.Tensor, codes: torch.Tensor, pad: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """(b, t, D): the estimate of a frame's whole latent (what the masked levels add up to, plus the known)."""
        return self.latent_estimate(self(semantic, codes, pad), semantic, codes) + self.known_latent(codes)

    def set_latent_table(self, table: torch.Tensor) -> None:
        """Keep the mean codec latent of each semantic token (semantic_vocab, D): `latent_prior`'s start."""
        if self.latent_table is None:
            raise ValueError("this model was built without a latent prior (AcousticModelConfig.latent_prior)")
        self.latent_table.copy_(table)

    def level_logits(self, semantic: torch.Tensor, codes: torch.Tensor, level: int,
                     pad: torch.Tensor | None = None) -> torch.Tensor:
        """What decoding calls: (b, t, k) logits of one level."""
        return self.logits(self(semantic, codes, pad), level, semantic)

    def nearest_code_logits(self, semantic: torch.Tensor, codes: torch.Tensor, level: int,
                            pad: torch.Tensor | None = None, whole: torch.Tensor | None = None) -> torch.Tensor:
        """Decoding by regression: -|estimate - code|^2 (b, t, k) for every code of `level`, where the estimate is
        the latent head's guess of what the masked levels add up to. Its argmax is the code a greedy RVQ would send
        for that estimate: level q's code is the one nearest the whole remaining residual. `whole` (b, t, D), an
        estimate of the whole latent made before (`whole_latent`), replaces the head's: the residual is then it
        less the codes known."""
        if self.latent_head is None:
            raise ValueError("this model was built without a latent head (AcousticModelConfig.latent_head)")
        if whole is None:
            estimate = self.latent_estimate(self(semantic, codes, pad), semantic, codes).float()  # (b, t, D)
        else:
            estimate = (whole - self.known_latent(codes)).float()
        book = self.codebooks[level].float()  # (k, D)
        return -(estimate.pow(2).sum(-1, keepdim=True) - 2 * estimate @ book.T + book.pow(2).sum(-1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
