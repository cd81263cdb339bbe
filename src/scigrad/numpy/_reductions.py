"""Reductions: sum, mean, prod, var, std, max/min, average, median, nan-reductions,
cumsum, cumprod, diff, sort, arg-reductions, all/any, count_nonzero.

Derivatives:

* ``prod`` and ``cumprod`` are zero-safe to every order: their rules multiply the *other*
  entries (exclusive products computed by a prefix scan), never ``ans / x``;
* ``max``/``min`` split the derivative equally among tied extrema, as JAX does;
* ``sort`` is differentiable: a gather by the sorting permutation;
* ``argmax``/``argmin``/``argsort``, ``all``/``any`` and ``count_nonzero`` have no derivative.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..core.batching import move_axis
from ..core.primitive import Primitive, ShapeDtype, Tracer
from . import _elementwise as _ew
from . import _indexing as _ix
from . import _shape as _sh
from ._util import axes_batch_rule, dtype_of, normalize_axis, shape_of

_ARRAY = (np.ndarray, Tracer)


def _arr(a: Any) -> Any:
    """``a`` as an array: traced values and ndarrays pass through."""
    return a if isinstance(a, _ARRAY) else np.asarray(a)


def _concrete(x: Any) -> Any:
    return x.concrete() if isinstance(x, Tracer) else x


def _float_dtype(x: Any) -> np.dtype:
    dt = dtype_of(x)
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _axes(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """``axis`` as a sorted tuple of distinct non-negative axes, or None."""
    axes = normalize_axis(axis, ndim)
    if axes is not None and len(axes) > 1 and len(set(axes)) != len(axes):
        raise ValueError(f"duplicate value in 'axis': {axis}")
    return axes


def _one_axis(axis: Any, ndim: int) -> int:
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    n = 1
    for i in range(len(shape)) if axes is None else axes:
        n *= shape[i]
    return n


def _store(result: Any, out: Any) -> Any:
    """NumPy's ``out=``: only for plain results (a write into an array drops derivatives)."""
    if out is None:
        return result
    if isinstance(result, Tracer):
        raise TypeError(
            "out= cannot receive a traced value (the write would drop its derivative); "
            "use the returned array instead"
        )
    out[...] = result
    return out


def _reduced_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None, keepdims: bool):
    axes = range(len(shape)) if axis is None else axis
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _reduction_shape(x: ShapeDtype, *, axis, keepdims) -> ShapeDtype:
    return ShapeDtype(_reduced_shape(x.shape, axis, keepdims), x.dtype)


def expand_reduced(g: Any, shape: tuple[int, ...], axis: tuple[int, ...] | None, keepdims: bool):
    """Reshape the cotangent of a reduction so that it broadcasts against the input."""
    if keepdims:
        return g
    return _shape.reshape(g, _reduced_shape(shape, axis, True))


# -- sum, mean -------------------------------------------------------------------------------
def _sum_vjp(g: Any, ans: Any, x: Any, *, axis, keepdims) -> Any:
    shape = shape_of(x)
    if axis is not None:
        g = expand_reduced(g, shape, axis, keepdims)
    return _shape.broadcast_to_p.bind(g, shape=shape)


sum_p = Primitive(
    "sum",
    lambda x, *, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims),
    shape=_reduction_shape,
)
sum_p.defjvp(lambda t, ans, x, *, axis, keepdims: sum_p.bind(t, axis=axis, keepdims=keepdims))
sum_p.defvjp(_sum_vjp)
sum_p.defbatch(axes_batch_rule(sum_p, "axis"))


def sum(a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum of array elements over the given axes (as ``numpy.sum``)."""
    axis = _axes(axis, len(shape_of(a)))
    out = sum_p.bind(a, axis=axis, keepdims=keepdims)
    return out if dtype is None else out.astype(dtype)


def mean(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False
) -> Any:
    """Arithmetic mean over the given axes (as ``numpy.mean``)."""
    shape = shape_of(a)
    axes = _axes(axis, len(shape))
    res = sum(a, axes, dtype, keepdims) / _count(shape, axes)
    return _store(res if dtype is None else res.astype(dtype), out)


# -- prod (zero-safe) --------------------------------------------------------------------------
def _scan_product(x: Any, axis: int, reverse: bool) -> Any:
    """Inclusive prefix (or suffix, ``reverse``) products along ``axis`` (non-negative):
    a Hillis-Steele scan of ``log2 n`` multiplications, so every derivative of it is a
    product of entries too (no division: exact at zeros)."""
    n = shape_of(x)[axis]
    pre = (slice(None),) * axis
    shift = 1
    while shift < n:
        head = x[pre + (slice(0, n - shift),)]
        tail = x[pre + (slice(shift, n),)]
        if reverse:
            parts = [head * tail, x[pre + (slice(n - shift, n),)]]
        else:
            parts = [x[pre + (slice(0, shift),)], tail * head]
        x = _sh.concatenate_p.bind(*parts, axis=axis)
        shift *= 2
    return x


def _exclusive_products(y: Any) -> Any:
    """Entry ``i`` of the last axis: the product of all the others (``n >= 2``)."""
    shape = shape_of(y)
    dt = _float_dtype(y)
    if not isinstance(y, Tracer):
        left = np.ones(shape, dt)
        np.multiply.accumulate(y[..., :-1], axis=-1, out=left[..., 1:])
        right = np.ones(shape, dt)
        right[..., :-1] = np.multiply.accumulate(y[..., :0:-1], axis=-1)[..., ::-1]
        return left * right
    last = len(shape) - 1
    ones = np.ones(shape[:-1] + (1,), dt)
    left = _scan_product(y[..., :-1], last, reverse=False)
    right = _scan_product(y[..., 1:], last, reverse=True)
    return _sh.concatenate_p.bind(ones, left, axis=last) * _sh.concatenate_p.bind(
        right, ones, axis=last
    )


def _others_product(x: Any, axis: tuple[int, ...] | None) -> Any:
    """For each entry of ``x``, the product of the other entries of its reduction group."""
    shape = shape_of(x)
    ndim = len(shape)
    axes = tuple(range(ndim)) if axis is None else axis
    n = _count(shape, axes)
    if n <= 1:
        return np.ones(shape, _float_dtype(x))
    keep = [i for i in range(ndim) if i not in axes]
    perm = tuple(keep + list(axes))
    inverse = tuple(int(i) for i in np.argsort(perm))
    moved_shape = tuple(shape[i] for i in perm)
    flat_shape = moved_shape[: len(keep)] + (n,)
    if not isinstance(x, Tracer):  # plain values: straight NumPy
        others = _exclusive_products(np.transpose(x, perm).reshape(flat_shape))
        return others.reshape(moved_shape).transpose(inverse)
    flat = _sh.reshape(_sh.transpose(x, perm), flat_shape)
    return _sh.transpose(_sh.reshape(_exclusive_products(flat), moved_shape), inverse)


def _full_cotangent(g: Any, x: Any, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    """The cotangent of a reduction, broadcastable against its input ``x``."""
    if axis is None and not keepdims:
        return g  # a scalar already broadcasts
    return expand_reduced(g, shape_of(x), axis, keepdims)


prod_p = Primitive(
    "prod",
    lambda x, *, axis, keepdims: np.multiply.reduce(x, axis=axis, keepdims=keepdims),
    shape=_reduction_shape,
)
prod_p.defjvp(
    lambda t, ans, x, *, axis, keepdims: sum_p.bind(
        t * _others_product(x, axis), axis=axis, keepdims=keepdims
    )
)
prod_p.defvjp(
    lambda g, ans, x, *, axis, keepdims: (
        _full_cotangent(g, x, axis, keepdims) * _others_product(x, axis)
    )
)
prod_p.defbatch(axes_batch_rule(prod_p, "axis"))


def prod(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False
) -> Any:
    """Product of array elements over the given axes; the derivative is exact at zeros."""
    a = _arr(a)
    if dtype is not None:
        a = a.astype(dtype)
    axes = _axes(axis, len(shape_of(a)))
    return _store(prod_p.bind(a, axis=axes, keepdims=keepdims), out)


# -- max, min ----------------------------------------------------------------------------------
def _tie_weights(ans: Any, x: Any, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    """Weights over ``x``: ``1/k`` where the extremum is attained ``k`` times, else 0. Built
    from comparisons (no derivative), so it is recorded in captured graphs too."""
    from ._elementwise import equal, isnan, logical_and, logical_or

    full = ans if keepdims else _sh.reshape(ans, _reduced_shape(shape_of(x), axis, True))
    hit = equal(x, full)
    if dtype_of(x).kind == "f":
        hit = logical_or(hit, logical_and(isnan(x), isnan(full)))
    hit = hit.astype(_float_dtype(x))
    return hit / sum_p.bind(hit, axis=axis, keepdims=True)


def _extremum(name: str, ufunc: np.ufunc) -> Primitive:
    p = Primitive(
        name,
        lambda x, *, axis, keepdims: ufunc.reduce(x, axis=axis, keepdims=keepdims),
        shape=_reduction_shape,
    )
    p.defjvp(
        lambda t, ans, x, *, axis, keepdims: sum_p.bind(
            t * _tie_weights(ans, x, axis, keepdims), axis=axis, keepdims=keepdims
        )
    )
    p.defvjp(
        lambda g, ans, x, *, axis, keepdims: (
            _full_cotangent(g, x, axis, keepdims) * _tie_weights(ans, x, axis, keepdims)
        )
    )
    p.defbatch(axes_batch_rule(p, "axis"))
    return p


max_p = _extremum("max", np.maximum)
min_p = _extremum("min", np.minimum)


def max(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Maximum over the given axes; the derivative is shared equally among tied maxima."""
    a = _arr(a)
    return _store(max_p.bind(a, axis=_axes(axis, len(shape_of(a))), keepdims=keepdims), out)


def min(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Minimum over the given axes; the derivative is shared equally among tied minima."""
    a = _arr(a)
    return _store(min_p.bind(a, axis=_axes(axis, len(shape_of(a))), keepdims=keepdims), out)


amax = max
amin = min


def ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """Range (maximum minus minimum) over the given axes."""
    return _store(max(a, axis, None, keepdims) - min(a, axis, None, keepdims), out)


# -- var, std, average -----------------------------------------------------------------------
def var(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: float = 0,
    keepdims: bool = False,
    *,
    correction: float | None = None,
) -> Any:
    """Variance over the given axes, divided by ``N - ddof`` (as ``numpy.var``)."""
    if correction is not None:
        if ddof != 0:
            raise ValueError("ddof and correction can't be provided simultaneously.")
        ddof = correction
    a = _arr(a)
    if dtype is not None:
        a = a.astype(dtype)
    shape = shape_of(a)
    axes = _axes(axis, len(shape))
    if not isinstance(a, Tracer):
        return _store(np.var(a, axis=axes, ddof=ddof, keepdims=keepdims), out)
    d = a - mean(a, axes, keepdims=True)
    res = sum(d * d, axes, keepdims=keepdims) / builtins.max(_count(shape, axes) - ddof, 0)
    return _store(res, out)


def std(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: float = 0,
    keepdims: bool = False,
    *,
    correction: float | None = None,
) -> Any:
    """Standard deviation over the given axes (as ``numpy.std``); not differentiable where
    the variance is zero."""
    return _store(_ew.sqrt(var(a, axis, dtype, None, ddof, keepdims, correction=correction)), out)


def average(
    a: Any,
    axis: Any = None,
    weights: Any = None,
    returned: bool = False,
    *,
    keepdims: bool = False,
) -> Any:
    """Weighted average over the given axes (as ``numpy.average``); differentiable in both
    ``a`` and ``weights``.

    >>> import scigrad.numpy as np
    >>> float(np.average(np.array([1.0, 2.0, 4.0]), weights=np.array([1.0, 1.0, 2.0])))
    2.75
    """
    a = _arr(a)
    shape = shape_of(a)
    axes = _axes(axis, len(shape))
    if weights is None:
        avg = mean(a, axes, keepdims=keepdims)
        scl = np.float64(_count(shape, axes))
    else:
        w = _arr(weights)
        wshape = shape_of(w)
        if wshape != shape:
            if axes is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            given = [int(i) % len(shape) for i in np.atleast_1d(axis)]  # the caller's order
            if wshape != tuple(shape[i] for i in given):
                raise ValueError(
                    "Shape of weights must be consistent with shape of a along specified axis: "
                    f"weights {wshape}, a {shape}, axis {axis}"
                )
            # Put the weights' axes where they are in ``a`` and broadcast against it.
            w = _sh.transpose(w, tuple(int(i) for i in np.argsort(given)))
            w = _sh.reshape(w, tuple(s if i in axes else 1 for i, s in enumerate(shape)))
        scl = sum(w, axes, None, True)
        try:
            zero = bool(np.any(_concrete(scl) == 0))
        except TypeError:  # abstract evaluation: no values to look at
            zero = False
        if zero:
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = sum(a * w, axes, None, True) / scl
        if not keepdims:
            avg = _sh.reshape(avg, _reduced_shape(shape, axes, False))
            scl = _sh.reshape(scl, _reduced_shape(shape_of(scl), axes, False))
    if returned:
        if shape_of(scl) != shape_of(avg):
            scl = _sh.broadcast_to(scl, shape_of(avg))
        return avg, scl
    return avg


# -- NaN-ignoring reductions -----------------------------------------------------------------
def nansum(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False
) -> Any:
    """Sum treating NaNs as zero; NaN entries get zero derivative."""
    a = _arr(a)
    return _store(sum(_ew.where(_ew.isnan(a), 0.0, a), axis, dtype, keepdims), out)


def nanprod(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False
) -> Any:
    """Product treating NaNs as one; NaN entries get zero derivative."""
    a = _arr(a)
    return _store(prod(_ew.where(_ew.isnan(a), 1.0, a), axis, dtype, None, keepdims), out)


def nanmean(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False
) -> Any:
    """Mean of the non-NaN entries (NaN for an all-NaN slice)."""
    a = _arr(a)
    axes = _axes(axis, len(shape_of(a)))
    nan = _concrete(_ew.isnan(a))
    count = np.add.reduce(~nan, axis=axes, keepdims=keepdims)
    total = sum(_ew.where(nan, 0.0, a), axes, dtype, keepdims)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _store(total / count, out)


def _nan_extremum(a: Any, axis: Any, keepdims: bool, fill: float, reduce: Any) -> Any:
    a = _arr(a)
    axes = _axes(axis, len(shape_of(a)))
    nan = _concrete(_ew.isnan(a))
    res = reduce(_ew.where(nan, fill, a), axes, None, keepdims)
    empty = np.logical_and.reduce(nan, axis=axes, keepdims=keepdims)
    return _ew.where(empty, np.nan, res) if np.any(empty) else res


def nanmax(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """Maximum ignoring NaNs (NaN for an all-NaN slice)."""
    return _store(_nan_extremum(a, axis, keepdims, -np.inf, max), out)


def nanmin(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """Minimum ignoring NaNs (NaN for an all-NaN slice)."""
    return _store(_nan_extremum(a, axis, keepdims, np.inf, min), out)


# -- cumulative sums and products ------------------------------------------------------------
def _cumsum_impl(x: Any, *, axis: int, reverse: bool) -> np.ndarray:
    if reverse:
        idx = (slice(None),) * axis + (slice(None, None, -1),)
        return np.add.accumulate(x[idx], axis=axis)[idx]
    return np.add.accumulate(x, axis=axis)


# ``reverse=True``: sums from the end (the transpose of the forward cumulative sum).
cumsum_p = Primitive(
    "cumsum",
    _cumsum_impl,
    shape=lambda x, *, axis, reverse: ShapeDtype(x.shape, x.dtype),
)
cumsum_p.defjvp(lambda t, ans, x, *, axis, reverse: cumsum_p.bind(t, axis=axis, reverse=reverse))
cumsum_p.defvjp(
    lambda g, ans, x, *, axis, reverse: cumsum_p.bind(g, axis=axis, reverse=not reverse)
)
cumsum_p.defbatch(axes_batch_rule(cumsum_p, "axis"))


def _accumulation_input(a: Any, axis: Any, dtype: Any) -> tuple[Any, int]:
    """Flatten for ``axis=None`` and apply NumPy's accumulator dtype (small ints -> int_)."""
    a = _arr(a)
    if axis is None:
        a = _sh.reshape(a, (-1,))
        axis = 0
    else:
        axis = _one_axis(axis, len(shape_of(a)))
    dt = dtype_of(a)
    if dtype is None and dt.kind in "biu" and dt.itemsize < np.dtype(np.int_).itemsize:
        dtype = np.uint if dt.kind == "u" else np.int_
    if dtype is not None and np.dtype(dtype) != dt:
        a = a.astype(dtype)
    return a, axis


def cumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """Cumulative sum along ``axis`` (the flattened array for ``axis=None``)."""
    a, axis = _accumulation_input(a, axis, dtype)
    return _store(cumsum_p.bind(a, axis=axis, reverse=False), out)


def cumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """Cumulative product along ``axis`` (the flattened array for ``axis=None``).

    Traced values go through a prefix scan of ``log2 n`` multiplications, so the derivatives
    of every order are exact also where entries are zero.
    """
    a, axis = _accumulation_input(a, axis, dtype)
    if isinstance(a, Tracer):
        return _store(_scan_product(a, axis, reverse=False), out)
    return _store(np.multiply.accumulate(a, axis=axis), out)


# -- sorting and arg-reductions (indices have no derivative) ----------------------------------
def _along_axis(idx: np.ndarray, axis: int) -> tuple:
    """The index tuple that gathers ``x`` by ``idx`` along ``axis`` (take_along_axis)."""
    nd = idx.ndim
    out: list[Any] = []
    for d in range(nd):
        if d == axis:
            out.append(idx)
        else:
            sh = [1] * nd
            sh[d] = idx.shape[d]
            out.append(np.arange(idx.shape[d]).reshape(sh))
    return tuple(out)


def _sort_order(x: Any, axis: int) -> np.ndarray:
    return np.argsort(_concrete(x), axis=axis, kind="stable")


def _sort_jvp(t: Any, ans: Any, x: Any, *, axis: int, kind: Any) -> Any:
    return _ix.getitem_p.bind(t, idx=_along_axis(_sort_order(x, axis), axis))


def _sort_vjp(g: Any, ans: Any, x: Any, *, axis: int, kind: Any) -> Any:
    # sorted[k] = x[order[k]], so x_bar[j] = g[inverse[j]]: a gather by the inverse order.
    inverse = np.argsort(_sort_order(x, axis), axis=axis)
    return _ix.getitem_p.bind(g, idx=_along_axis(inverse, axis))


sort_p = Primitive(
    "sort",
    lambda x, *, axis, kind: np.sort(x, axis=axis, kind=kind),
    shape=lambda x, *, axis, kind: ShapeDtype(x.shape, x.dtype),
)
sort_p.defjvp(_sort_jvp)
sort_p.defvjp(_sort_vjp)
sort_p.defbatch(axes_batch_rule(sort_p, "axis"))


def _sort_input(a: Any, axis: Any) -> tuple[Any, int]:
    a = _arr(a)
    if axis is None:
        return _sh.reshape(a, (-1,)), 0
    return a, _one_axis(axis, len(shape_of(a)))


def sort(
    a: Any, axis: Any = -1, kind: str | None = None, order: Any = None, *, stable: Any = None
) -> Any:
    """Sorted copy of ``a`` along ``axis``; differentiable (each entry carries its own
    derivative to its sorted position)."""
    if order is not None:
        raise NotImplementedError("sort: order= (structured arrays) is not supported")
    a, axis = _sort_input(a, axis)
    return sort_p.bind(a, axis=axis, kind="stable" if stable else kind)


argsort_p = Primitive(
    "argsort",
    lambda x, *, axis, kind: np.argsort(x, axis=axis, kind=kind),
    shape=lambda x, *, axis, kind: ShapeDtype(x.shape, np.dtype(np.intp)),
    nondiff=True,
)
argsort_p.defbatch(axes_batch_rule(argsort_p, "axis"))


def argsort(
    a: Any, axis: Any = -1, kind: str | None = None, order: Any = None, *, stable: Any = None
) -> Any:
    """Indices that sort ``a`` along ``axis`` (no derivative)."""
    if order is not None:
        raise NotImplementedError("argsort: order= (structured arrays) is not supported")
    a, axis = _sort_input(a, axis)
    return argsort_p.bind(a, axis=axis, kind="stable" if stable else kind)


def _arg_extremum(name: str, f: Any) -> Primitive:
    p = Primitive(
        name,
        lambda x, *, axis, keepdims: f(x, axis=axis, keepdims=keepdims),
        shape=lambda x, *, axis, keepdims: ShapeDtype(
            _reduced_shape(x.shape, None if axis is None else (axis,), keepdims),
            np.dtype(np.intp),
        ),
        nondiff=True,
    )

    def batch(vals: list, dims: list, *, axis: int | None, keepdims: bool) -> tuple[Any, int]:
        x = move_axis(vals[0], dims[0], 0)
        if axis is not None:
            return p.bind(x, axis=axis + 1, keepdims=keepdims), 0
        s = shape_of(x)  # the index into each flattened entry
        out = p.bind(_shape.reshape(x, (s[0], -1)), axis=1, keepdims=False)
        return (_shape.reshape(out, s[:1] + (1,) * (len(s) - 1)) if keepdims else out), 0

    p.defbatch(batch)
    return p


argmax_p = _arg_extremum("argmax", np.argmax)
argmin_p = _arg_extremum("argmin", np.argmin)


def argmax(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
    """Index of the (first) maximum along ``axis``, or of the flattened array."""
    a = _arr(a)
    axis = None if axis is None else _one_axis(axis, len(shape_of(a)))
    return _store(argmax_p.bind(a, axis=axis, keepdims=keepdims), out)


def argmin(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
    """Index of the (first) minimum along ``axis``, or of the flattened array."""
    a = _arr(a)
    axis = None if axis is None else _one_axis(axis, len(shape_of(a)))
    return _store(argmin_p.bind(a, axis=axis, keepdims=keepdims), out)


# -- logical reductions and counts (no derivative) -------------------------------------------
def _bool_reduction_shape(x: ShapeDtype, *, axis, keepdims) -> ShapeDtype:
    return ShapeDtype(_reduced_shape(x.shape, axis, keepdims), np.dtype(bool))


all_p = Primitive(
    "all",
    lambda x, *, axis, keepdims: np.logical_and.reduce(x, axis=axis, keepdims=keepdims),
    shape=_bool_reduction_shape,
    nondiff=True,
)
all_p.defbatch(axes_batch_rule(all_p, "axis"))
any_p = Primitive(
    "any",
    lambda x, *, axis, keepdims: np.logical_or.reduce(x, axis=axis, keepdims=keepdims),
    shape=_bool_reduction_shape,
    nondiff=True,
)
any_p.defbatch(axes_batch_rule(any_p, "axis"))


def all(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Whether all elements along the given axes are true."""
    a = _arr(a)
    return _store(all_p.bind(a, axis=_axes(axis, len(shape_of(a))), keepdims=keepdims), out)


def any(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Whether any element along the given axes is true."""
    a = _arr(a)
    return _store(any_p.bind(a, axis=_axes(axis, len(shape_of(a))), keepdims=keepdims), out)


count_nonzero_p = Primitive(
    "count_nonzero",
    lambda x, *, axis, keepdims: np.count_nonzero(x, axis=axis, keepdims=keepdims),
    shape=lambda x, *, axis, keepdims: ShapeDtype(
        _reduced_shape(x.shape, axis, keepdims), np.dtype(np.intp)
    ),
    nondiff=True,
)
count_nonzero_p.defbatch(axes_batch_rule(count_nonzero_p, "axis"))


def count_nonzero(a: Any, axis: Any = None, *, keepdims: bool = False) -> Any:
    """Number of non-zero entries along the given axes."""
    a = _arr(a)
    return count_nonzero_p.bind(a, axis=_axes(axis, len(shape_of(a))), keepdims=keepdims)


def median(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Any:
    """Median along ``axis`` (the flattened array by default); the derivative goes to the
    middle entry, or half to each of the two middle entries."""
    a = _arr(a)
    shape = shape_of(a)
    if axis is None:
        x, ax = _sh.reshape(a, (-1,)), 0
    else:
        x, ax = a, _one_axis(axis, len(shape))
    n = shape_of(x)[ax]
    if n == 0:
        raise ValueError("median of an empty slice")
    s = sort(x, axis=ax)
    pre = (slice(None),) * ax
    lo = _ix.getitem_p.bind(s, idx=pre + ((n - 1) // 2,))
    res = lo if n % 2 else 0.5 * (lo + _ix.getitem_p.bind(s, idx=pre + (n // 2,)))
    # NaNs sort last: a slice holding one has median NaN, as in NumPy.
    nan = _concrete(_ew.isnan(_ix.getitem_p.bind(s, idx=pre + (n - 1,))))
    if np.any(nan):
        res = _ew.where(nan, np.nan, res)
    if keepdims:
        res = _sh.reshape(res, _reduced_shape(shape, None if axis is None else (ax,), True))
    return _store(res, out)


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Any:
    """``n``-th discrete difference along ``axis`` (as ``numpy.diff``).

    >>> import scigrad.numpy as np
    >>> np.diff(np.array([1.0, 4.0, 9.0, 16.0]), n=2)
    array([2., 2.])
    """
    a = _arr(a)
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n!r}")
    if n == 0:
        return a
    shape = shape_of(a)
    if not shape:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = _one_axis(axis, len(shape))
    parts = []
    for extra in (prepend, a, append):
        if extra is None:
            continue
        extra = _arr(extra)
        if extra is not a and not shape_of(extra):
            extra = _sh.broadcast_to(extra, shape[:axis] + (1,) + shape[axis + 1 :])
        parts.append(extra)
    x = _sh.concatenate(parts, axis=axis)
    pre = (slice(None),) * axis
    for _ in range(n):
        m = shape_of(x)[axis]
        if m == 0:
            break
        x = _ix.getitem_p.bind(x, idx=pre + (slice(1, m),)) - _ix.getitem_p.bind(
            x, idx=pre + (slice(0, m - 1),)
        )
    return x


__all__ = [
    "all",
    "amax",
    "amin",
    "any",
    "argmax",
    "argmin",
    "argsort",
    "average",
    "count_nonzero",
    "cumprod",
    "cumsum",
    "diff",
    "max",
    "mean",
    "median",
    "min",
    "nanmax",
    "nanmean",
    "nanmin",
    "nanprod",
    "nansum",
    "prod",
    "ptp",
    "sort",
    "std",
    "sum",
    "var",
]


# Bound last: _shape imports this module (hot rules must not re-import per call).
from . import _shape  # noqa: E402
