"""``Points``: a batch of checked metric points as columns.

The service checks a batch (``services/metric_points.py``) and hands it to the
store in this form, which stores it without making a tuple per point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Points:
    """Checked points of one batch as columns: one item per point in each."""

    key: Sequence[str]
    value: np.ndarray  # float64
    step: np.ndarray  # int64
    timestamp: np.ndarray  # int64, milliseconds since the epoch

    def __len__(self) -> int:
        return len(self.key)
