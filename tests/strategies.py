"""Hypothesis strategies for random shapes and well-conditioned float values."""

from __future__ import annotations

import numpy as onp
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def shapes(min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def arrays(shape, low: float = -2.0, high: float = 2.0) -> st.SearchStrategy:
    """Float64 arrays with entries in [low, high] (finite, no subnormals)."""
    return hnp.arrays(
        onp.float64,
        shape,
        elements=st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    )


def away_from(x: onp.ndarray, points: tuple[float, ...] = (0.0,), gap: float = 0.05) -> onp.ndarray:
    """Nudge entries of ``x`` away from kinks/singularities so finite differences are valid."""
    x = onp.array(x, dtype=float)
    for p in points:
        near = onp.abs(x - p) < gap
        x[near] = p + gap * onp.where(x[near] >= p, 1.0, -1.0) * 2
    return x
