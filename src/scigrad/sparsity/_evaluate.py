"""``sparse_jacobian`` and ``sparse_hessian``: detect, color, evaluate compressed, recover."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from ..core.primitive import ShapeDtype
from ..core.shape import eval_shape
from ..core.transforms import hvp, jvp, vjp
from ._coloring import _csr, column_coloring, row_coloring, star_coloring
from ._detect import hessian_sparsity, jacobian_sparsity
from ._recover import recover_hessian, recover_jacobian, seed_matrix

__all__ = ["sparse_hessian", "sparse_jacobian"]


def _vector(x: Any, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{where}: x must be a 1-D array, got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{where}: x must be a real array, got dtype {x.dtype}")
    return x.astype(np.float64, copy=False)


def _pattern(sparsity: Any, shape: tuple[int, int], where: str) -> sp.csr_array:
    try:
        p = _csr(sparsity)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: sparsity= must be a 2-D array or sparse array") from exc
    if p.shape != shape:
        raise ValueError(f"{where}: sparsity= has shape {p.shape}, expected {shape}")
    return p


def sparse_jacobian(
    fun: Callable,
    x: Any,
    *,
    mode: Literal["fwd", "rev"] = "fwd",
    sparsity: Any = None,
    product: Callable | None = None,
) -> sp.csr_array:
    """The Jacobian of ``fun`` at the 1-D array ``x`` as a ``scipy.sparse.csr_array`` of
    shape ``(fun(x).size, x.size)`` (outputs flattened in C order), by compressed
    evaluation: the sparsity pattern (:func:`~scigrad.sparsity.jacobian_sparsity`, or
    ``sparsity=`` to skip detection) is colored so that each color costs one JVP
    (``mode="fwd"``: columns sharing a row differ in color) or one VJP (``mode="rev"``:
    rows sharing a column differ; one forward pass in all). Choose the mode with fewer
    colors: ``fwd`` for many outputs per input, ``rev`` for dense rows of few outputs.

    ``product(x, v)`` replaces the default product, e.g. by a compiled one: it must return
    ``J @ v`` (flat, ``mode="fwd"``) or ``J.T @ v`` (``mode="rev"``, ``v`` flat over the
    outputs). The result stores every entry of the pattern, including those that happen to
    be zero at ``x``.

    >>> import scigrad.numpy as np
    >>> from scigrad.sparsity import sparse_jacobian
    >>> J = sparse_jacobian(lambda x: x[1:] ** 2 - x[:-1], np.arange(4.0))
    >>> J.toarray()
    array([[-1.,  2.,  0.,  0.],
           [ 0., -1.,  4.,  0.],
           [ 0.,  0., -1.,  6.]])
    """
    where = "sparse_jacobian"
    if mode not in ("fwd", "rev"):
        raise ValueError(f"{where}: mode must be 'fwd' or 'rev', got {mode!r}")
    x = _vector(x, where)
    out = eval_shape(fun, x)
    if not isinstance(out, ShapeDtype):
        raise ValueError(f"{where}: fun must return one array, got {type(out).__name__}")
    out_shape = tuple(out.shape)
    m = int(np.prod(out_shape, dtype=np.int64))
    if sparsity is None:
        pattern = jacobian_sparsity(fun, x)
    else:
        pattern = _pattern(sparsity, (m, x.size), where)
    if mode == "fwd":
        colors = column_coloring(pattern)
        seeds = seed_matrix(colors)
        compressed = np.empty((m, seeds.shape[1]))
        for c in range(seeds.shape[1]):
            if product is None:
                t = jvp(fun, (x,), (seeds[:, c],))[1]
            else:
                t = product(x, seeds[:, c])
            compressed[:, c] = np.reshape(t, -1)
    else:
        colors = row_coloring(pattern)
        seeds = seed_matrix(colors)
        compressed = np.empty((seeds.shape[1], x.size))
        pullback = vjp(fun, x)[1] if product is None and seeds.shape[1] else None
        for c in range(seeds.shape[1]):
            if product is None:
                g = pullback(np.reshape(seeds[:, c], out_shape))[0]
            else:
                g = product(x, seeds[:, c])
            compressed[c] = np.reshape(g, -1)
    return recover_jacobian(pattern, colors, compressed, mode)


def sparse_hessian(
    fun: Callable, x: Any, *, sparsity: Any = None, product: Callable | None = None
) -> sp.csr_array:
    """The Hessian of a scalar function ``fun`` at the 1-D array ``x`` as a symmetric
    ``scipy.sparse.csr_array`` of shape ``(x.size, x.size)``, by compressed evaluation: the
    pattern (:func:`~scigrad.sparsity.hessian_sparsity`, or ``sparsity=`` to skip
    detection; it is symmetrized) is star-colored and each color costs one Hessian-vector
    product (``sg.hvp``, forward over reverse), from which every entry is read directly.

    ``product(x, v)`` replaces ``sg.hvp``: it must return ``H @ v``. To compile it (for small
    ``x``; ``sg.jit`` unrolls to scalar code), pass
    ``product=sg.jit(lambda x, v: sg.hvp(fun, (x,), (v,))[0])``. The result stores every
    entry of the pattern, including those that happen to be zero at ``x``.

    >>> import scigrad.numpy as np
    >>> from scigrad.sparsity import sparse_hessian
    >>> f = lambda x: np.sum((x[1:] - x[:-1]) ** 2) + np.sum(x**3)
    >>> sparse_hessian(f, np.arange(3.0)).toarray()
    array([[ 2., -2.,  0.],
           [-2., 10., -2.],
           [ 0., -2., 14.]])
    """
    where = "sparse_hessian"
    x = _vector(x, where)
    out = eval_shape(fun, x)
    if not isinstance(out, ShapeDtype) or out.shape != ():
        got = f"shape {out.shape}" if isinstance(out, ShapeDtype) else type(out).__name__
        raise ValueError(f"{where} needs a scalar-valued function; fun returned {got}")
    n = x.size
    if sparsity is None:
        pattern = hessian_sparsity(fun, x)
    else:
        pattern = _pattern(sparsity, (n, n), where)
    colors = star_coloring(pattern)
    seeds = seed_matrix(colors)
    compressed = np.empty((n, seeds.shape[1]))
    for c in range(seeds.shape[1]):
        if product is None:
            hv = hvp(fun, (x,), (seeds[:, c],))[0]
        else:
            hv = product(x, seeds[:, c])
        compressed[:, c] = np.reshape(hv, -1)
    return recover_hessian(pattern, colors, compressed)
