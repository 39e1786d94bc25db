"""The RG-LRU recurrence: one public signature over interchangeable backends.

`rglru(x, gate_a, gate_x, a_param, h0=None, resets=None) -> (y, h_last)` dispatches to the CUDA kernel, the
C++/OpenMP CPU kernel or the PyTorch reference (`reference.py`, the definition and test oracle); see
`build.py` for how the backend is chosen. `rglru_step` is the single-step (decoding) form. `RGLRU` is the
layer (block-diagonal gates, Λ initialisation) built on them. The layer code never knows which backend ran.
"""

from workbench.ops.layer import RGLRU
from workbench.ops.rglru import rglru, rglru_step

__all__ = ["rglru", "rglru_step", "RGLRU"]
