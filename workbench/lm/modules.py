"""Griffin's blocks and their decode caches: RecurrentBlock, AttentionBlock (multi-query), ResidualBlock.

Every temporal block has one code path for training, prefill and decoding: `forward(x, positions, resets,
start, cache)` processes a chunk of t tokens (t = 1 when decoding) whose stream indices are start .. start+t-1,
continuing from `cache` (None in training: no state in, none out). Chunks therefore compose: running a
sequence in pieces with the returned caches gives the same outputs as running it whole.

Caches are typed: a dataclass per block kind, created by `init_cache()` on the block that owns them, and one
union type `BlockCache` for "either":
- RecurrentBlockCache: RG-LRU state h (b, r) in fp32 and the conv buffer of the last c - 1 inputs;
- AttentionBlockCache: post-RoPE keys/values (b, s, k) and each slot's stream index (-1: empty, or from before
  a reset). With a window w it is a ring buffer of s = w slots (token i lives in slot i mod w), so Griffin's
  decode state has constant size; with global attention (the Transformer) it grows by one slot per token.
Each knows its size in bytes (`nbytes()`): what decoding keeps in memory.

Every module takes `device` and `dtype` like torch's own layers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.nn import RMSNorm, apply_rope, init_linear
from workbench.lm.config import ATTENTION, RECURRENT, ModelConfig
from workbench.lm.layers import MLP, Conv1D, segment_ids
from workbench.ops.layer import RGLRU


class _TensorCache:
    def nbytes(self) -> int:
        """Bytes held by the cache's tensors."""
        return sum(t.numel() * t.element_size() for t in (getattr(self, f.name) for f in fields(self)))


@dataclass
class RecurrentBlockCache(_TensorCache):
    rg_lru_state: torch.Tensor  # (b, r) fp32
    conv1d_state: torch.Tensor  # (b, c - 1, r)


@dataclass
class AttentionBlockCache(_TensorCache):
    keys: torch.Tensor  # (b, s, k), RoPE already applied
    values: torch.Tensor  # (b, s, k)
    index: torch.Tensor  # (b, s) long: stream index of the token in each slot, -1 if none


BlockCache = Union[RecurrentBlockCache, AttentionBlockCache]


def last_reset_index(resets: torch.Tensor | None, idx: torch.Tensor, b: int) -> torch.Tensor:
    """(b,) stream index of the last reset in the chunk, -1 if none."""
    if resets is None:
        return torch.full((b,), -1, dtype=torch.long, device=idx.device)
    return torch.where(resets, idx, torch.full_like(idx, -1)).amax(dim=1)


class RecurrentBlock(nn.Module):
    """GeLU(x W_y) * RG-LRU(Conv1D(x W_x)), then W_out: Griffin's recurrent temporal-mixing block."""

    def __init__(self, width: int, lru_width: int, num_heads: int, conv_width: int,
                 final_w_init_variance_scale: float = 1.0, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.lru_width, self.final_w_init_variance_scale = lru_width, final_w_init_variance_scale
        self.linear_y = nn.Linear(width, lru_width, **dd)
        self.linear_x = nn.Linear(width, lru_width, **dd)
        self.conv_1d = Conv1D(lru_width, conv_width, **dd)
        self.rg_lru = RGLRU(lru_width, num_heads, **dd)
        self.linear_out = nn.Linear(lru_width, width, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_linear(self.linear_y)
        init_linear(self.linear_x)
        init_linear(self.linear_out, self.final_w_init_variance_scale)
        self.conv_1d.reset_parameters()
        self.rg_lru.reset_parameters()

    def init_cache(self, batch: int, device=None, dtype=torch.float32) -> RecurrentBlockCache:
        return RecurrentBlockCache(
            rg_lru_state=torch.zeros(batch, self.lru_width, device=device, dtype=torch.float32),
            conv1d_state=self.conv_1d.init_state(batch, device, dtype))

    def forward(self, x, positions, resets, start, cache: RecurrentBlockCache | None = None):
        y = F.gelu(self.linear_y(x), approximate="tanh")
        u, conv_state = self.conv_1d(self.linear_x(x), resets, None if cache is None else cache.conv1d_state)
        h0 = None if cache is None else cache.rg_lru_state
        if cache is not None and x.shape[1] == 1:  # decoding: the single-step kernel
            u, h = self.rg_lru.step(u[:, 0], h0, None if resets is None else resets[:, 0])
            u = u[:, None]
        else:
            u, h = self.rg_lru(u, h0=h0, resets=resets)
        out = self.linear_out(u * y)
        if cache is None:
            return out, None
        return out, RecurrentBlockCache(rg_lru_state=h, conv1d_state=conv_state.to(cache.conv1d_state.dtype))


class AttentionBlock(nn.Module):
    """Causal multi-query attention (n query heads, one key/value head) with half-dim RoPE, over a sliding
    window of w tokens (Griffin's local attention) or over everything (window None: the Transformer)."""

    def __init__(self, width: int, num_heads: int, window: int | None, rope_max_wavelength: float = 10_000.0,
                 final_w_init_variance_scale: float = 1.0, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.num_heads, self.head_dim, self.window = num_heads, width // num_heads, window
        self.rope_max_wavelength, self.final_w_init_variance_scale = rope_max_wavelength, final_w_init_variance_scale
        self.proj_q = nn.Linear(width, width, bias=False, **dd)
        self.proj_k = nn.Linear(width, self.head_dim, bias=False, **dd)
        self.proj_v = nn.Linear(width, self.head_dim, bias=False, **dd)
        self.proj_final = nn.Linear(width, width, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for proj in (self.proj_q, self.proj_k, self.proj_v):
            init_linear(proj)
        init_linear(self.proj_final, self.final_w_init_variance_scale)

    def init_cache(self, batch: int, device=None, dtype=torch.float32) -> AttentionBlockCache:
        slots = self.window or 0
        return AttentionBlockCache(
            keys=torch.zeros(batch, slots, self.head_dim, device=device, dtype=dtype),
            values=torch.zeros(batch, slots, self.head_dim, device=device, dtype=dtype),
            index=torch.full((batch, slots), -1, dtype=torch.long, device=device))

    def forward(self, x, positions, resets, start, cache: AttentionBlockCache | None = None):
        b, t, _ = x.shape
        q = apply_rope(self.proj_q(x).view(b, t, self.num_heads, self.head_dim), positions, self.rope_max_wavelength)
        k = apply_rope(self.proj_k(x)[:, :, None], positions, self.rope_max_wavelength)[:, :, 0]
        v = self.proj_v(x)
        idx = torch.arange(start, start + t, device=x.device).expand(b, t)  # stream index of each query
        seg = segment_ids(resets, b, t, x.device)
        if cache is None:
            keys, values, kidx, kseg = k, v, idx, seg
        else:  # cached slots hold only the current segment (older ones are invalidated), i.e. segment 0
            keys = torch.cat([cache.keys, k.to(cache.keys.dtype)], dim=1).to(k.dtype)
            values = torch.cat([cache.values, v.to(cache.values.dtype)], dim=1).to(v.dtype)
            kidx = torch.cat([cache.index, idx], dim=1)
            kseg = F.pad(seg, (cache.index.shape[1], 0))
        dist = idx[:, :, None] - kidx[:, None, :]  # (b, t, s)
        mask = (kidx[:, None, :] >= 0) & (dist >= 0) & (kseg[:, None, :] == seg[:, :, None])
        if self.window is not None:
            mask &= dist < self.window
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), keys[:, None].expand(b, self.num_heads, -1, -1),
            values[:, None].expand(b, self.num_heads, -1, -1), attn_mask=mask[:, None])
        out = self.proj_final(out.transpose(1, 2).reshape(b, t, -1))
        if cache is None:
            return out, None
        return out, self._update_cache(cache, k, v, idx, resets)

    def _update_cache(self, cache, k, v, idx, resets) -> AttentionBlockCache:
        b, t = idx.shape
        k, v = k.to(cache.keys.dtype), v.to(cache.values.dtype)
        if self.window is None:  # growing cache
            keys, values = torch.cat([cache.keys, k], 1), torch.cat([cache.values, v], 1)
            index = torch.cat([cache.index, idx], 1)
        else:  # ring buffer: write the last min(t, w) tokens to their slots
            keep = min(t, self.window)
            slots = idx[0, -keep:] % self.window
            keys = cache.keys.index_copy(1, slots, k[:, -keep:])
            values = cache.values.index_copy(1, slots, v[:, -keep:])
            index = cache.index.index_copy(1, slots, idx[:, -keep:])
        last = last_reset_index(resets, idx, b)
        index = torch.where(index < last[:, None], torch.full_like(index, -1), index)
        return AttentionBlockCache(keys=keys, values=values, index=index)


class ResidualBlock(nn.Module):
    """x + temporal(RMSNorm(x)), then + MLP(RMSNorm(.)): one Griffin layer."""

    def __init__(self, config: ModelConfig, block_type: str, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        final_scale = 2.0 / config.num_layers  # RecurrentGemma's scale for the projections into the residual
        self.block_type = block_type
        self.temporal_pre_norm = RMSNorm(config.width, **dd)
        self.temporal_block: RecurrentBlock | AttentionBlock
        if block_type == RECURRENT:
            self.temporal_block = RecurrentBlock(config.width, config.lru_width or config.width, config.num_heads,
                                                 config.conv_width, final_scale, **dd)
        elif block_type == ATTENTION:
            self.temporal_block = AttentionBlock(config.width, config.num_heads, config.attention_window,
                                                 config.rope_max_wavelength, final_scale, **dd)
        else:
            raise ValueError(f"unknown block type {block_type!r}")
        self.channel_pre_norm = RMSNorm(config.width, **dd)
        self.mlp_block = MLP(config.width, config.mlp_expansion, final_scale, **dd)

    def init_cache(self, batch: int, device=None, dtype=torch.float32) -> BlockCache:
        return self.temporal_block.init_cache(batch, device, dtype)

    def forward(self, x, positions, resets, start, cache: BlockCache | None = None):
        mixed, cache = self.temporal_block(self.temporal_pre_norm(x), positions, resets, start, cache)
        x = x + mixed
        return x + self.mlp_block(self.channel_pre_norm(x)), cache


__all__ = ["RecurrentBlock", "AttentionBlock", "ResidualBlock", "RecurrentBlockCache", "AttentionBlockCache",
           "BlockCache"]
