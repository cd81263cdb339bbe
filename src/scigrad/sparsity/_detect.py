"""Sparsity patterns of Jacobians and Hessians, detected from the captured graph.

The function is captured once (``scigrad.core.graph.make_graph``) and its graph lowered to
the dependency domains of ``_domains``, with the same per-primitive lowering that ``sg.jit``
uses. The patterns are *global*: they hold for every input value, because no value is ever
looked at -- data-dependent choices (``where``, ``maximum``) keep the dependencies of both
sides. They are exact up to cancellation (``x - x`` depends on ``x``) and may therefore be
larger than the nonzeros of the derivative at one point, never smaller.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.graph import Graph, make_graph
from ..jit._lower import NotCompilableError, lower_graph
from ._closure import _Pairs, dependency_sets, rows_to_csr
from ._domains import DepNode, HessianDeps, JacobianDeps, recording

__all__ = ["hessian_sparsity", "jacobian_sparsity"]


def jacobian_sparsity(fun: Callable, *args: Any) -> sp.csr_array:
    """The sparsity pattern of the Jacobian of ``fun`` at ``args``, valid for every value.

    Returns a boolean ``scipy.sparse.csr_array`` of shape ``(m, n)``: ``n`` is the total
    size of the array arguments (the leaves of ``args``, flattened in C order and
    concatenated in pytree order), ``m`` the total size of the outputs, flattened the same
    way. Entry ``(i, j)`` is True when output entry ``i`` may depend on input entry ``j``.
    Integer and boolean inputs have no derivatives: their columns are empty.

    The function is captured as a graph (as ``sg.jit`` does), so Python control flow on
    traced values raises :class:`~scigrad.core.graph.TracedControlFlowError` (use
    ``np.where``), and a primitive that cannot be lowered to scalar code (factorizations,
    sorting, sparse solves) raises :class:`~scigrad.jit.NotCompilableError` naming it.

    >>> import scigrad.numpy as np
    >>> from scigrad.sparsity import jacobian_sparsity
    >>> jacobian_sparsity(lambda x: x[1:] * x[:-1], np.ones(4)).toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    with _gc_paused():
        nodes, outputs, n = _lower(fun, args, JacobianDeps)
        entries = [e for out in outputs for e in out.reshape(-1)]
        return rows_to_csr(dependency_sets(nodes, entries), n)


def hessian_sparsity(fun: Callable, *args: Any) -> sp.csr_array:
    """The sparsity pattern of the Hessian of a scalar function ``fun`` at ``args``, valid
    for every value: a symmetric boolean ``scipy.sparse.csr_array`` of shape ``(n, n)``
    over the flattened inputs (the layout of :func:`jacobian_sparsity`'s columns).

    Entry ``(i, j)`` is True when the second derivative in inputs ``i`` and ``j`` may be
    nonzero: products create the pairs of their factors' dependencies, nonlinear functions
    all pairs of their argument's, linear and piecewise-linear operations (``+``, ``where``,
    ``maximum``, ``abs``) none. Raises ``ValueError`` when ``fun`` is not scalar-valued, and
    the errors of :func:`jacobian_sparsity` for what cannot be captured or lowered.

    >>> import scigrad.numpy as np
    >>> from scigrad.sparsity import hessian_sparsity
    >>> f = lambda x: np.sum(x[1:] * x[:-1]) + np.sum(np.exp(x[:2]))
    >>> hessian_sparsity(f, np.ones(4)).toarray().astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 1, 0],
           [0, 1, 0, 1],
           [0, 0, 1, 0]])
    """
    with _gc_paused():
        nodes, outputs, n = _lower(fun, args, HessianDeps)
        if len(outputs) != 1 or outputs[0].shape != ():
            shapes = ", ".join(str(o.shape) for o in outputs) or "nothing"
            raise ValueError(
                f"hessian_sparsity needs a scalar-valued function; it returned shape(s) {shapes}"
            )
        pairs = _Pairs()
        dependency_sets(nodes, [outputs[0][()]], pairs)
        return pairs.pattern(n)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Detection creates millions of small acyclic objects: the cyclic garbage collector's
    passes over them would cost a third of the time and free nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _lower(fun: Callable, args: tuple, domain: type[DepNode]) -> tuple[list, list, int]:
    """Capture ``fun(*args)``, lower it to ``domain``: (recorded nodes, outputs, n)."""
    graph = make_graph(fun, *args)
    with recording() as nodes:
        inputs = []
        offset = 0
        for v in graph.invars:
            shape, dtype = v.aval.shape, v.aval.dtype
            size = int(np.prod(shape, dtype=np.int64))
            arr = np.empty(size, dtype=object)
            if dtype.kind in "fc":
                leaf = domain.leaf
                arr[:] = [leaf(offset + k, dtype) for k in range(size)]
            else:
                arr[:] = [domain.empty(dtype)] * size
            inputs.append(arr.reshape(shape))
            offset += size
        try:
            outputs = _lower_graph(graph, inputs, domain)
        except NotCompilableError as exc:
            raise NotCompilableError(
                f"sparsity detection cannot see through this function: {exc} With "
                "sparse_jacobian / sparse_hessian, pass a known pattern with sparsity=."
            ) from exc
    return nodes, outputs, offset


def _detection_rule(eqn: Any, args: list, domain: type[DepNode]) -> Any:
    """Lowering overrides for detection: primitives without derivatives (comparisons,
    ``sign``, ``argmax``, ``stop_gradient``, integer casts) give values without
    dependencies (their implementation never looks at values), and ``sum`` is one n-ary
    union per output entry."""
    if eqn.prim.nondiff and any(_has_symbols(a) for a in args):
        outs = tuple(_no_deps(v.aval, domain) for v in eqn.outvars)
        return outs if eqn.prim.multiple_results else outs[0]
    if eqn.prim.name == "sum":
        return _sum(eqn, args[0], domain)
    return None


def _lower_graph(graph: Graph, inputs: Sequence[np.ndarray], domain: type) -> list:
    return lower_graph(graph, inputs, override=functools.partial(_detection_rule, domain=domain))


def _sum(eqn: Any, x: Any, domain: type[DepNode]) -> np.ndarray:
    """``sum`` as one union per output entry, rather than NumPy's chain of additions."""
    x = np.asarray(x, dtype=object)
    axis = eqn.params["axis"]
    axes = tuple(range(x.ndim)) if axis is None else axis
    axes = tuple(a % x.ndim for a in ((axes,) if isinstance(axes, int) else axes))
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, kept + list(axes))
    n_rows = int(np.prod([x.shape[a] for a in kept], dtype=np.int64))
    rows = moved.reshape(n_rows, int(np.prod([x.shape[a] for a in axes], dtype=np.int64)))
    aval = eqn.outvars[0].aval
    out = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows.tolist()):
        if any(isinstance(e, DepNode) for e in row):
            out[i] = domain._union(tuple(row), aval.dtype)
        else:
            out[i] = aval.dtype.type(np.add.reduce(np.array(row, dtype=aval.dtype)))
    return out.reshape(aval.shape)


def _has_symbols(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype == object and x.size > 0
    return isinstance(x, DepNode)


def _no_deps(aval: Any, domain: type) -> np.ndarray:
    out = np.empty(aval.shape, dtype=object)
    out.fill(domain.empty(aval.dtype))
    return out
