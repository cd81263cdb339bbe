"""Lowering a captured graph to symbolic scalars, one primitive at a time.

Each array of the graph becomes a NumPy object array of symbolic scalars (or numbers, which
are constants). Most primitives need no lowering rule at all: their NumPy implementation,
applied to object arrays, already indexes, reshapes, broadcasts, sums and multiplies
element by element. Elementwise primitives are applied through one generic rule that calls
the domain with the primitive's name (and folds numbers), and the few primitives whose
implementation would test values (``max``, ``where``, comparisons, ``astype``) have a rule
here. Composite primitives (``logsumexp``, ``softmax``) are lowered part by part through
their expansions (``_expand``). A primitive that cannot be lowered raises
:class:`NotCompilableError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.graph import Eqn, Graph, TracedControlFlowError, Var
from ._expand import expansion_graph
from ._symbolic import Symbolic

_F64 = np.dtype(np.float64)

__all__ = [
    "NotCompilableError",
    "is_elementwise",
    "is_lowerable",
    "lower_graph",
    "register_lowering",
]


class NotCompilableError(NotImplementedError):
    """A primitive of the graph has no lowering to scalar code."""


#: Lowering rules by primitive name: ``rule(eqn, *args) -> object array or tuple of them``.
_RULES: dict[str, Callable[..., Any]] = {}

#: Primitives whose implementation needs concrete values (factorizations, sorting, sparse
#: solves): lowering them element by element is impossible or pointless.
_OPAQUE_PREFIXES = ("sparse_", "expm", "lu_", "cho_", "scipy_", "operator_", "sparse")
_OPAQUE = frozenset(
    {
        "sort",
        "argsort",
        "argmax",
        "argmin",
        "nonzero",
        "eigh",
        "svd",
        "qr",
        "inv",
        "det",
        "slogdet",
        "cholesky",
        "pinv",
        "solve_triangular",
        "adjugate",
        "orth_complement",
        "norm2",
        "scatter_max",
        "scatter_min",
        "split",
        "polygamma",  # its order is an array parameter and numba has no zeta function
    }
)


def register_lowering(name: str) -> Callable:
    """Decorator registering the lowering rule of primitive ``name``."""

    def deco(rule: Callable) -> Callable:
        _RULES[name] = rule
        return rule

    return deco


def is_elementwise(prim: Any) -> bool:
    """True for primitives that apply a scalar function to broadcast operands."""
    from ..numpy._util import elementwise_shape, predicate_shape
    from ..scipy import special

    return prim.shape_rule in (elementwise_shape, predicate_shape, special._float_shape)


def _symbolic_type(values: Sequence[Any]) -> type | None:
    for v in values:
        if isinstance(v, Symbolic):
            return type(v)
    return None


def _map_scalars(prim: Any, args: Sequence[Any], dtype: np.dtype, params: dict) -> Any:
    """Elementwise ``prim`` over broadcast object arrays: numbers are folded with its
    implementation, symbolic scalars go to their domain (static parameters trail the
    operands). All-0-d operands give a lone scalar, as NumPy's object loops do."""
    extra = tuple(params.values())

    def scalar(*xs: Any) -> Any:
        domain = _symbolic_type(xs)
        if domain is None:
            return dtype.type(prim.impl(*xs, **params))
        return domain.apply(prim.name, xs + extra, dtype)

    return np.frompyfunc(scalar, len(args), 1)(*args)


def _elementwise(eqn: Eqn, *args: Any) -> Any:
    return _map_scalars(eqn.prim, args, eqn.outvars[0].aval.dtype, eqn.params)


_RULES["round"] = _elementwise  # elementwise, with its decimals as a trailing argument


@register_lowering("astype")
@register_lowering("astype_nondiff")
def _astype(eqn: Eqn, x: Any) -> Any:
    dtype = eqn.outvars[0].aval.dtype

    def scalar(v: Any) -> Any:
        if isinstance(v, Symbolic):
            return type(v).apply("astype", (v,), dtype)
        return dtype.type(v)

    return np.frompyfunc(scalar, 1, 1)(x)


def _extremum(name: str, x: Any, axis: Any, keepdims: bool, dtype: np.dtype) -> np.ndarray:
    """``maximum``/``minimum`` reduction of an object array over ``axis`` (tuple or None)."""

    def pair(a: Any, b: Any) -> Any:
        domain = _symbolic_type((a, b))
        if domain is None:
            return dtype.type(getattr(np, name)(a, b))
        return domain.apply(name, (a, b), dtype)

    x = np.asarray(x, dtype=object)
    axes = tuple(range(x.ndim)) if axis is None else axis
    axes = tuple(a % x.ndim for a in ((axes,) if isinstance(axes, int) else axes))
    # One reduction over the reduced axes moved last and merged (an object ufunc
    # reduces over at most one axis at a time).
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, kept + list(axes))
    merged = moved.reshape(moved.shape[: len(kept)] + (-1,))
    out = np.asarray(np.frompyfunc(pair, 2, 1).reduce(merged, axis=-1), dtype=object)
    shape = tuple(1 if a in axes else n for a, n in enumerate(x.shape)) if keepdims else out.shape
    return out.reshape(shape)


def _reduce_with(name: str) -> Callable:
    def rule(eqn: Eqn, x: Any) -> Any:
        p = eqn.params
        return _extremum(name, x, p["axis"], p["keepdims"], eqn.outvars[0].aval.dtype)

    return rule


_RULES["max"] = _reduce_with("maximum")
_RULES["min"] = _reduce_with("minimum")


def _apply_rule(eqn: Eqn, args: list) -> Any:
    prim = eqn.prim
    rule = _RULES.get(prim.name)
    if rule is not None:
        return rule(eqn, *args)
    if is_elementwise(prim):
        return _elementwise(eqn, *args)
    if not is_lowerable(prim.name):
        raise NotCompilableError(
            f"primitive '{prim.name}' cannot be compiled to scalar code yet (it needs "
            "concrete values -- a factorization, a sort, a sparse solve -- or has no scalar "
            "form in numba). Call the function "
            "without sg.jit, or register a rule with "
            "`scigrad.jit.register_lowering('" + prim.name + "')`."
        )
    # A lone symbolic scalar becomes a 0-d object array, so implementations that allocate
    # "an array like the input" allocate object arrays.
    lone = [isinstance(a, Symbolic) for a in args]
    args = [np.asarray(a, dtype=object) if s else a for a, s in zip(args, lone, strict=True)]
    try:
        out = prim.impl(*args, **eqn.params)
        # ... but NumPy stores a 0-d array assigned to one element of an object array as
        # the element itself: unwrap those.
        return _unnest(out) if any(lone) else out
    except TracedControlFlowError:
        raise
    except Exception as exc:
        raise NotCompilableError(
            f"primitive '{prim.name}' could not be lowered to scalar code ({exc}); register a "
            f"rule with `scigrad.jit.register_lowering('{prim.name}')`."
        ) from exc


_unwrap_element = np.frompyfunc(lambda e: e[()] if isinstance(e, np.ndarray) else e, 1, 1)


def _unnest(out: Any) -> Any:
    if isinstance(out, tuple):
        return tuple(_unnest(o) for o in out)
    if isinstance(out, np.ndarray) and out.dtype == object:
        return np.asarray(_unwrap_element(out), dtype=object)
    return out


def lower_graph(
    graph: Graph,
    inputs: Sequence[Any],
    override: Callable[[Eqn, list], Any] | None = None,
) -> list[np.ndarray]:
    """Evaluate ``graph`` on object arrays of symbolic scalars; returns one object array
    (of symbolic scalars and numbers) per output, shaped like the output.

    ``override(eqn, args)``, when given, may lower an equation its own way (a scalar domain
    that knows better, e.g. sparsity detection); it returns None to use the usual rule."""
    env: dict[int, Any] = {id(v): x for v, x in zip(graph.invars, inputs, strict=True)}

    def read(x: Any) -> Any:
        return env[id(x)] if isinstance(x, Var) else x

    for eqn in graph.eqns:
        args = [read(a) for a in eqn.inputs]
        out = None if override is None else override(eqn, args)
        if out is None:
            parts = expansion_graph(eqn)  # a composite primitive: lowered part by part
            if parts is not None:
                outs = lower_graph(parts, args, override)
                out = tuple(outs) if eqn.prim.multiple_results else outs[0]
            else:
                out = _apply_rule(eqn, args)
        outs = out if eqn.prim.multiple_results else (out,)
        for v, o in zip(eqn.outvars, outs, strict=True):
            if np.shape(o) != v.aval.shape:
                raise NotCompilableError(
                    f"lowering primitive '{eqn.prim.name}' gave shape {np.shape(o)} instead "
                    f"of {v.aval.shape}"
                )
            env[id(v)] = o
    return [np.asarray(read(o), dtype=object) for o in graph.outputs]


def is_lowerable(name: str) -> bool:
    """False for the primitives that are deliberately left to eager mode (they need
    concrete values: factorizations, sorting, sparse solves)."""
    return name not in _OPAQUE and not name.startswith(_OPAQUE_PREFIXES)
