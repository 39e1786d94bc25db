"""The RG-LRU recurrence: one public signature over interchangeable backends.

`rglru(x, gate_a, gate_x, a_param, h0=None, resets=None) -> (y, h_last)`; see `reference.py` for the
definition. The layer code never knows which backend ran.
"""

from workbench.ops.reference import rglru_reference as rglru
from workbench.ops.reference import rglru_step_reference as rglru_step
from workbench.ops.layer import RGLRU

__all__ = ["rglru", "rglru_step", "RGLRU"]
