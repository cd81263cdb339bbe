"""Abstract evaluation: run a function on shapes and dtypes only, through the shape rules.

``eval_shape`` is the smallest complete interpreter over the primitives (no values, no
derivatives) and is what a graph-capturing ``jit`` builds on: it needs every primitive's
shape rule and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .primitive import ShapeDtype, Tracer
from .trace import Trace, close_trace, open_trace
from .tree import tree_flatten, tree_unflatten

__all__ = ["eval_shape", "ShapeTrace", "ShapeTracer"]


class ShapeTracer(Tracer):
    """A value known only by its shape and dtype."""

    __slots__ = ("aval",)

    def __init__(self, trace: ShapeTrace, aval: ShapeDtype) -> None:
        self._trace = trace
        self.aval = aval

    @property
    def primal(self) -> Any:
        raise TypeError(
            "eval_shape: the function needs a concrete value here (Python control flow or "
            "conversion on an array value), which abstract evaluation does not have."
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    def concrete(self) -> Any:
        return self.primal

    def __repr__(self) -> str:
        return f"ShapeTracer(shape={self.aval.shape}, dtype={self.aval.dtype})"


def _aval(x: Any, trace: ShapeTrace) -> Any:
    if isinstance(x, ShapeTracer) and x._trace is trace:
        return x.aval
    if isinstance(x, Tracer):
        return ShapeDtype(x.shape, x.dtype)
    if isinstance(x, np.ndarray | np.generic):
        return ShapeDtype.of(x)
    return x  # Python scalars stay as they are: they are weakly typed in NumPy 2


class ShapeTrace(Trace):
    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        if prim.shape_rule is None:
            raise NotImplementedError(
                f"primitive '{prim.name}' has no shape rule; give it one with "
                f"Primitive(..., shape=rule) so abstract interpreters can run it"
            )
        out = prim.shape_rule(*(_aval(a, self) for a in args), **params)
        if prim.multiple_results:
            return tuple(ShapeTracer(self, o) for o in out)
        return ShapeTracer(self, out)

    def process_custom_vjp(self, fn: Any, args: tuple) -> Any:
        return fn.fun(*args)

    def process_custom_jvp(self, fn: Any, args: tuple) -> Any:
        return fn.fun(*args)


def eval_shape(fun: Callable, *args: Any) -> Any:
    """The shapes and dtypes of ``fun(*args)`` as a pytree of :class:`ShapeDtype`, computed
    from the primitives' shape rules without evaluating anything. Arguments may be arrays or
    ``ShapeDtype`` placeholders.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.eval_shape(lambda a, b: np.sum(a * b, axis=0), np.ones((3, 4)), np.ones(4))
    ShapeDtype(shape=(4,), dtype=dtype('float64'))
    """
    flat, tree = tree_flatten(args)
    trace = open_trace(ShapeTrace)
    try:
        avals = [x if isinstance(x, ShapeDtype) else ShapeDtype.of(x) for x in flat]
        out = fun(*tree_unflatten(tree, [ShapeTracer(trace, a) for a in avals]))
    finally:
        close_trace(trace)
    flat_out, out_tree = tree_flatten(out)
    return tree_unflatten(out_tree, [_aval(o, trace) for o in flat_out])
