"""Composite primitives written with the primitives they are made of.

``logsumexp``, ``softmax`` and friends are single primitives in eager mode (one NumPy call,
one derivative rule), but compiled code wants their parts: the unrolled path lowers the
parts to scalars and the loop path fuses them with their neighbours. Both expand an
equation of a composite primitive into this small graph, so each formula lives here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.graph import Eqn, Graph, Var, make_graph
from ..core.primitive import ShapeDtype, primitives

__all__ = ["expansion_graph"]


def _bind(name: str, *args: Any, **params: Any) -> Any:
    return primitives[name].bind(*args, **params)


def _lse_shift(a: Any, axis: Any) -> Any:
    """The maximum over ``axis`` (kept), 0 where it is not finite (as the eager impls)."""
    m = _bind("max", a, axis=axis, keepdims=True)
    return _bind("where", _bind("isfinite", m), m, 0.0)


def _logsumexp(a: Any, *, axis: Any, keepdims: bool) -> Any:
    m = _lse_shift(a, axis)
    s = _bind("sum", _bind("exp", _bind("subtract", a, m)), axis=axis, keepdims=keepdims)
    return _bind("add", _bind("log", s), m if keepdims else _bind("reshape", m, shape=s.shape))


def _logsumexp_b(a: Any, b: Any, *, axis: Any, keepdims: bool) -> Any:
    a = _bind("broadcast_to", a, shape=np.broadcast_shapes(a.shape, np.shape(b)))
    m = _lse_shift(a, axis)
    weighted = _bind("multiply", b, _bind("exp", _bind("subtract", a, m)))
    s = _bind("sum", weighted, axis=axis, keepdims=keepdims)
    shift = m if keepdims else _bind("reshape", m, shape=s.shape)
    return _bind("add", _bind("log", _bind("absolute", s)), shift), _bind("sign", s)


def _softmax(x: Any, *, axis: Any) -> Any:
    e = _bind("exp", _bind("subtract", x, _bind("max", x, axis=axis, keepdims=True)))
    return _bind("divide", e, _bind("sum", e, axis=axis, keepdims=True))


def _log_softmax(x: Any, *, axis: Any) -> Any:
    shifted = _bind("subtract", x, _lse_shift(x, axis))
    total = _bind("sum", _bind("exp", shifted), axis=axis, keepdims=True)
    return _bind("subtract", shifted, _bind("log", total))


EXPANSIONS: dict[str, Callable] = {
    "logsumexp": _logsumexp,
    "logsumexp_b": _logsumexp_b,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
}


def expansion_graph(eqn: Eqn) -> Graph | None:
    """``eqn`` of a composite primitive as a graph of its parts (inputs and outputs in the
    equation's order), or None for other primitives (or when the parts would compute in
    another dtype than the primitive)."""
    expand = EXPANSIONS.get(eqn.prim.name)
    if expand is None:
        return None
    avals = [a.aval if isinstance(a, Var) else ShapeDtype.of(a) for a in eqn.inputs]
    sub = make_graph(lambda *xs: expand(*xs, **eqn.params), *avals)
    outs = [getattr(o, "aval", None) or ShapeDtype.of(o) for o in sub.outputs]
    if [(o.shape, o.dtype) for o in outs] != [(v.aval.shape, v.aval.dtype) for v in eqn.outvars]:
        return None
    return sub
