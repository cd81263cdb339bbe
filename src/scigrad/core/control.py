"""Structured control flow that works in eager mode and in captured graphs (``sg.jit``).

Eagerly these are ordinary Python control flow. When the predicate is only known abstractly
(inside ``sg.jit``), ``cond`` evaluates both branches and selects elementwise with
``where``, so both branches must be safe to evaluate (as with ``numpy.where``: guard a
division or a log in the untaken branch, or its NaN reaches the gradient). Loops have
static trip counts and unroll while a graph is captured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .graph import TracedControlFlowError
from .tree import tree_flatten, tree_unflatten

__all__ = ["cond", "fori_loop", "scan"]


def _concrete_bool(pred: Any) -> bool | None:
    """``bool(pred)`` if the value is known, None while capturing a graph."""
    try:
        return bool(pred)
    except TracedControlFlowError:
        return None


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, as ``jax.lax.cond``.

    Both branches must return the same structure of shapes and dtypes.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.cond(np.float64(2.0) > 1.0, np.sin, np.cos, np.float64(0.0))
    np.float64(0.0)
    """
    if np.ndim(pred) != 0:
        raise ValueError(f"cond: the predicate must be a scalar, got shape {np.shape(pred)}")
    known = _concrete_bool(pred)
    if known is not None:
        return true_fun(*operands) if known else false_fun(*operands)
    from .. import numpy as snp

    a, b = true_fun(*operands), false_fun(*operands)
    leaves_a, tree_a = tree_flatten(a)
    leaves_b, tree_b = tree_flatten(b)
    if tree_a != tree_b:
        raise TypeError(f"cond: the branches return different structures: {tree_a} and {tree_b}")
    for x, y in zip(leaves_a, leaves_b, strict=True):
        if np.shape(x) != np.shape(y):
            raise TypeError(
                f"cond: the branches return shapes {np.shape(x)} and {np.shape(y)}; they must match"
            )
    return tree_unflatten(
        tree_a, [snp.where(pred, x, y) for x, y in zip(leaves_a, leaves_b, strict=True)]
    )


def _static_int(x: Any, name: str) -> int:
    try:
        return int(x)
    except TracedControlFlowError as exc:
        raise TracedControlFlowError(
            f"fori_loop: `{name}` must be a static integer (known when the function is "
            "traced), not a traced value"
        ) from exc


def fori_loop(lower: int, upper: int, body_fun: Callable, init_val: Any) -> Any:
    """``for i in range(lower, upper): val = body_fun(i, val)``, as ``jax.lax.fori_loop``.

    The bounds are static; under ``sg.jit`` the loop unrolls.

    >>> import scigrad as sg
    >>> sg.fori_loop(0, 4, lambda i, x: x * 2.0, 1.0)
    16.0
    """
    val = init_val
    for i in range(_static_int(lower, "lower"), _static_int(upper, "upper")):
        val = body_fun(i, val)
    return val


def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None) -> tuple[Any, Any]:
    """``carry, y = f(carry, x)`` over the leading axis of ``xs``, stacking the ``y``; as
    ``jax.lax.scan``. Returns ``(final carry, stacked ys)``.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.scan(lambda c, x: (c + x, c * x), 0.0, np.arange(1.0, 4.0))
    (np.float64(6.0), array([0., 2., 9.]))
    """
    from .. import numpy as snp

    leaves, tree = tree_flatten(xs)
    lengths = {np.shape(x)[0] for x in leaves}
    if length is not None:
        lengths.add(length)
    if len(lengths) != 1:
        raise ValueError(f"scan: inconsistent lengths {sorted(lengths)} of xs (and length)")
    (n,) = lengths
    carry, ys = init, []
    for i in range(n):
        x = tree_unflatten(tree, [leaf[i] for leaf in leaves]) if leaves else None
        carry, y = f(carry, x)
        ys.append(y)
    if not ys:
        return carry, None
    flat_ys = [tree_flatten(y)[0] for y in ys]
    _, y_tree = tree_flatten(ys[0])
    stacked = [snp.stack([fy[k] for fy in flat_ys]) for k in range(len(flat_ys[0]))]
    return carry, tree_unflatten(y_tree, stacked)
