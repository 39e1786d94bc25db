"""The RG-LRU module and the small layers: step == sequence, resets isolate, init ranges, bad shapes."""

import pytest
import torch

from workbench.core.nn import apply_rope
from workbench.lm.layers import Conv1D
from workbench.ops import RGLRU
from workbench.ops.layer import BlockDiagonalLinear


def test_rglru_forward_equals_steps_with_resets():
    torch.manual_seed(0)
    layer = RGLRU(12, num_heads=3)
    x = torch.randn(2, 9, 12)
    resets = torch.zeros(2, 9, dtype=torch.bool)
    resets[1, 4] = True
    y, h_last = layer(x, resets=resets)
    h, ys = None, []
    for t in range(9):
        yt, h = layer.step(x[:, t], h, resets[:, t])
        ys.append(yt)
    torch.testing.assert_close(torch.stack(ys, 1), y, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h, h_last, atol=1e-6, rtol=1e-5)
    # after the reset, row 1 is what the second segment gives on its own (starting with a reset)
    y_alone, _ = layer(x[1:, 4:], resets=resets[1:, 4:])
    torch.testing.assert_close(y[1:, 4:], y_alone, atol=1e-6, rtol=1e-5)


def test_rglru_init_puts_decay_in_ring():
    layer = RGLRU(4096, num_heads=8)
    a = torch.exp(-torch.nn.functional.softplus(layer.a_param.double()))  # a = sigmoid(Lambda)
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    # a^2 is uniform on [0.81, 0.998]: its mean is the midpoint
    assert abs((a**2).mean().item() - (0.81 + 0.999**2) / 2) < 0.005


def test_block_diagonal_equals_dense_block_matrix():
    torch.manual_seed(0)
    layer = BlockDiagonalLinear(6, 3)
    torch.nn.init.normal_(layer.b)
    dense = torch.block_diag(*layer.w)
    x = torch.randn(5, 6)
    torch.testing.assert_close(layer(x), x @ dense + layer.b.flatten())


def test_width_not_divisible_by_heads_is_an_error():
    with pytest.raises(ValueError, match="not divisible"):
        RGLRU(10, num_heads=3)


def test_conv1d_chunks_compose_and_resets_block_the_past():
    torch.manual_seed(0)
    conv = Conv1D(5, conv_width=4)
    x = torch.randn(2, 11, 5)
    resets = torch.zeros(2, 11, dtype=torch.bool)
    resets[0, 6] = True
    whole, _ = conv(x, resets)
    state, parts = conv.init_state(2), []
    for a, b in [(0, 5), (5, 6), (6, 7), (7, 11)]:
        y, state = conv(x[:, a:b], resets[:, a:b], state)
        parts.append(y)
    torch.testing.assert_close(torch.cat(parts, 1), whole)
    alone, _ = conv(x[:1, 6:])
    torch.testing.assert_close(whole[:1, 6:], alone)


def test_rope_is_relative_and_leaves_half_the_dims():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq, pk):
        return (apply_rope(q, torch.tensor([[pq]])) * apply_rope(k, torch.tensor([[pk]]))).sum()

    torch.testing.assert_close(score(7, 3), score(1007, 1003), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(apply_rope(q, torch.tensor([[5]]))[..., 8:], q[..., 8:])
