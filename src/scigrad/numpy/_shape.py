"""Shape operations: reshape, transpose, broadcast_to, concatenate, stack, split, ...

Four primitives carry the derivatives of almost everything here -- ``reshape``,
``transpose``, ``broadcast_to`` and ``concatenate`` -- together with ``getitem``/``unindex``
of the indexing module; ``split`` is a primitive with several results so that its
reverse rule is one concatenation. The other functions are composites of these: each has
the derivative of its parts and no rule of its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.batching import batch_size, broadcast_batched, move_axis
from ..core.primitive import Primitive, ShapeDtype, Tracer
from ._util import dtype_of, shape_of, unbroadcast

_ARRAY = (np.ndarray, Tracer)
_INT = (int, np.integer)


def _arr(a: Any) -> Any:
    """``a`` as an array: traced values and ndarrays pass through."""
    return a if isinstance(a, _ARRAY) else np.asarray(a)


def _axis(axis: Any, ndim: int) -> int:
    """One axis as a non-negative int (NumPy's AxisError when out of range)."""
    if not isinstance(axis, _INT):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _axis_tuple(axis: Any, ndim: int, what: str = "axis") -> tuple[int, ...]:
    """Axes in the caller's order, non-negative and distinct."""
    axes = (axis,) if isinstance(axis, _INT) else tuple(axis)
    out = tuple(_axis(a, ndim) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in `{what}` argument: {axis}")
    return out


def _getitem(x: Any, idx: tuple) -> Any:
    from ._indexing import getitem_p

    return getitem_p.bind(x, idx=idx)


# -- broadcast_to ------------------------------------------------------------------------------
def _broadcast_impl(x: Any, *, shape: tuple[int, ...]) -> np.ndarray:
    # A materialized, writeable result: np.broadcast_to costs ~2.5 µs and returns a
    # read-only view, both unwelcome on the gradient hot path.
    out = np.empty(shape, dtype_of(x))
    out[...] = x
    return out


broadcast_to_p = Primitive(
    "broadcast_to",
    _broadcast_impl,
    shape=lambda x, *, shape: ShapeDtype(np.broadcast_shapes(x.shape, shape), x.dtype),
)
broadcast_to_p.defjvp(lambda t, ans, x, *, shape: broadcast_to_p.bind(t, shape=shape))
broadcast_to_p.defvjp(lambda g, ans, x, *, shape: unbroadcast(g, shape_of(x)))


def _broadcast_to_batch(vals: list, dims: list, *, shape: tuple[int, ...]) -> tuple[Any, int]:
    x = move_axis(vals[0], dims[0], 0)
    s = shape_of(x)
    pad = len(shape) - (len(s) - 1)
    if pad:
        x = reshape_p.bind(x, shape=s[:1] + (1,) * pad + s[1:])
    return broadcast_to_p.bind(x, shape=(s[0], *shape)), 0


broadcast_to_p.defbatch(_broadcast_to_batch)


def broadcast_to(array: Any, shape: Any) -> Any:
    """``array`` broadcast to ``shape`` (a new array, not a read-only view)."""
    shape = _as_shape(shape)
    src = shape_of(array)
    try:
        ok = len(src) <= len(shape) and np.broadcast_shapes(src, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"cannot broadcast an array of shape {src} to shape {shape}")
    return broadcast_to_p.bind(array, shape=shape)


def broadcast_arrays(*args: Any) -> tuple:
    """The arrays broadcast against each other (new arrays, not views)."""
    shape = np.broadcast_shapes(*(shape_of(a) for a in args))
    return tuple(a if shape_of(a) == shape else broadcast_to(a, shape) for a in map(_arr, args))


# -- reshape and friends -----------------------------------------------------------------------
reshape_p = Primitive(
    "reshape",
    lambda x, *, shape: np.reshape(x, shape),
    shape=lambda x, *, shape: ShapeDtype(shape, x.dtype),
)
reshape_p.defjvp(lambda t, ans, x, *, shape: reshape_p.bind(t, shape=shape))
reshape_p.defvjp(lambda g, ans, x, *, shape: reshape_p.bind(g, shape=shape_of(x)))


def _reshape_batch(vals: list, dims: list, *, shape: tuple[int, ...]) -> tuple[Any, int]:
    x = move_axis(vals[0], dims[0], 0)
    return reshape_p.bind(x, shape=(shape_of(x)[0], *shape)), 0


reshape_p.defbatch(_reshape_batch)


def _as_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, _INT):
        return (int(shape),)
    if isinstance(shape, tuple) and all(type(s) is int for s in shape):
        return shape
    if np.ndim(shape) == 0:
        return (int(shape),)
    return tuple(int(s) for s in shape)


def reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None) -> Any:
    """``a`` with a new shape (C order); one dimension may be -1."""
    if order != "C":
        raise NotImplementedError("reshape: only order='C' is supported")
    shape = newshape if shape is None else shape
    if shape is None:
        raise TypeError("reshape: a shape is required")
    shape = _as_shape(shape)
    old = shape_of(a)
    if shape == old:
        return _arr(a)
    size = math.prod(old)
    if -1 in shape:
        if shape.count(-1) > 1:
            raise ValueError("can only specify one unknown dimension")
        known = -math.prod(shape)
        if known <= 0 or size % known:
            raise ValueError(f"cannot reshape an array of shape {old} into shape {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif math.prod(shape) != size or min(shape, default=0) < 0:
        raise ValueError(f"cannot reshape an array of shape {old} into shape {shape}")
    if shape == old:
        return _arr(a)
    return reshape_p.bind(a, shape=shape)


def ravel(a: Any, order: str = "C") -> Any:
    """The flattened array (C order)."""
    return reshape(a, (-1,), order)


def expand_dims(a: Any, axis: Any) -> Any:
    """``a`` with new axes of length 1 inserted at ``axis``."""
    shape = shape_of(a)
    axes = (axis,) if isinstance(axis, _INT) else tuple(axis)
    axes = sorted(_axis_tuple(axes, len(shape) + len(axes)))
    new = list(shape)
    for ax in axes:
        new.insert(ax, 1)
    return reshape(a, tuple(new))


def squeeze(a: Any, axis: Any = None) -> Any:
    """``a`` without its axes of length 1 (only those in ``axis`` when given)."""
    shape = shape_of(a)
    if axis is None:
        axes: tuple[int, ...] = tuple(i for i, s in enumerate(shape) if s == 1)
    else:
        axes = _axis_tuple(axis, len(shape))
        for ax in axes:
            if shape[ax] != 1:
                raise ValueError(
                    "cannot select an axis to squeeze out which has size not equal to one "
                    f"(axis {ax} of shape {shape})"
                )
    return reshape(a, tuple(s for i, s in enumerate(shape) if i not in axes))


def _atleast(a: Any, ndim: int) -> Any:
    a = _arr(a)
    shape = shape_of(a)
    if len(shape) >= ndim:
        return a
    if ndim == 3 and len(shape) == 1:
        return reshape(a, (1,) + shape + (1,))
    if ndim == 3 and len(shape) == 2:
        return reshape(a, shape + (1,))
    return reshape(a, (1,) * (ndim - len(shape)) + shape)


def atleast_1d(*arys: Any) -> Any:
    """Each input with at least one dimension (a tuple when several are given)."""
    res = tuple(_atleast(a, 1) for a in arys)
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys: Any) -> Any:
    """Each input with at least two dimensions: ``(n,)`` becomes ``(1, n)``."""
    res = tuple(_atleast(a, 2) for a in arys)
    return res[0] if len(res) == 1 else res


def atleast_3d(*arys: Any) -> Any:
    """Each input with at least three dimensions: ``(n,)`` -> ``(1, n, 1)``,
    ``(m, n)`` -> ``(m, n, 1)``."""
    res = tuple(_atleast(a, 3) for a in arys)
    return res[0] if len(res) == 1 else res


# -- transpose and friends ---------------------------------------------------------------------
transpose_p = Primitive(
    "transpose",
    lambda x, *, axes: np.transpose(x, axes),
    shape=lambda x, *, axes: ShapeDtype(tuple(x.shape[i] for i in axes), x.dtype),
)
transpose_p.defjvp(lambda t, ans, x, *, axes: transpose_p.bind(t, axes=axes))
transpose_p.defvjp(
    lambda g, ans, x, *, axes: transpose_p.bind(g, axes=tuple(int(i) for i in np.argsort(axes)))
)
# The batch axis d goes first; axis a of an entry is axis a + (a >= d) of the batch.
transpose_p.defbatch(
    lambda vals, dims, *, axes: (
        transpose_p.bind(vals[0], axes=(dims[0], *(a + (a >= dims[0]) for a in axes))),
        0,
    )
)


def transpose(a: Any, axes: Any = None) -> Any:
    """``a`` with its axes permuted (reversed by default)."""
    ndim = len(shape_of(a))
    if axes is None:
        axes = tuple(reversed(range(ndim)))
    else:
        axes = tuple(axes)
        if len(axes) != ndim:
            raise ValueError(f"transpose: axes {axes} don't match an array of {ndim} dimensions")
        axes = _axis_tuple(axes, ndim, "axes")
    if axes == tuple(range(ndim)):
        return _arr(a)
    return transpose_p.bind(a, axes=axes)


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """``a`` with two axes interchanged."""
    ndim = len(shape_of(a))
    i, j = _axis(axis1, ndim), _axis(axis2, ndim)
    perm = list(range(ndim))
    perm[i], perm[j] = j, i
    return transpose(a, perm)


def moveaxis(a: Any, source: Any, destination: Any) -> Any:
    """``a`` with the axes ``source`` moved to positions ``destination``.

    >>> import scigrad.numpy as np
    >>> np.moveaxis(np.zeros((2, 3, 4)), 0, -1).shape
    (3, 4, 2)
    """
    ndim = len(shape_of(a))
    src = _axis_tuple(source, ndim, "source")
    dst = _axis_tuple(destination, ndim, "destination")
    if len(src) != len(dst):
        raise ValueError(
            "`source` and `destination` arguments must have the same number of elements"
        )
    order = [i for i in range(ndim) if i not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return transpose(a, order)


# -- concatenate, stack and split -------------------------------------------------------------
def _concat_shape(*xs: ShapeDtype, axis: int) -> ShapeDtype:
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return ShapeDtype(tuple(shape), np.result_type(*(x.dtype for x in xs)))


def _concat_vjp(g: Any, ans: Any, needs: list, *xs: Any, axis: int) -> list:
    out, start = [], 0
    for x, need in zip(xs, needs, strict=True):
        stop = start + shape_of(x)[axis]
        if need:
            out.append(_getitem(g, (slice(None),) * axis + (slice(start, stop),)))
        else:
            out.append(None)
        start = stop
    return out


def _concat_jvp(tangents: list, ans: Any, *xs: Any, axis: int) -> Any:
    ts = [
        np.zeros(shape_of(x), dtype_of(x)) if t is None else t
        for x, t in zip(xs, tangents, strict=True)
    ]
    return concatenate_p.bind(*ts, axis=axis)


concatenate_p = Primitive(
    "concatenate", lambda *xs, axis: np.concatenate(xs, axis=axis), shape=_concat_shape
)
concatenate_p.defjvp_joint(_concat_jvp)
concatenate_p.defvjp_joint(_concat_vjp)


def _concat_batch(vals: list, dims: list, *, axis: int) -> tuple[Any, int]:
    size = batch_size(vals, dims)
    xs = [
        broadcast_batched(x, size) if d is None else move_axis(x, d, 0)
        for x, d in zip(vals, dims, strict=True)
    ]
    return concatenate_p.bind(*xs, axis=axis + 1), 0


concatenate_p.defbatch(_concat_batch)


def concatenate(arrays: Any, axis: int | None = 0, out: Any = None, *, dtype: Any = None) -> Any:
    """Join arrays along an existing axis (``axis=None`` flattens them first)."""
    if out is not None:
        raise TypeError("concatenate: out= is not supported; use the returned array")
    arrays = tuple(_arr(a) for a in arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    if dtype is not None:
        arrays = tuple(a.astype(dtype) for a in arrays)
    if axis is None:
        arrays = tuple(reshape(a, (-1,)) for a in arrays)
        axis = 0
    ndim = len(shape_of(arrays[0]))
    if ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    axis = _axis(axis, ndim)
    shapes = [shape_of(a) for a in arrays]
    for s in shapes:
        if len(s) != ndim or s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :]:
            raise ValueError(f"concatenate: shapes {shapes} do not match except along axis {axis}")
    if len(arrays) == 1:
        return arrays[0]
    return concatenate_p.bind(*arrays, axis=axis)


def stack(arrays: Any, axis: int = 0, out: Any = None, *, dtype: Any = None) -> Any:
    """Join arrays of the same shape along a new axis."""
    if out is not None:
        raise TypeError("stack: out= is not supported; use the returned array")
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all input arrays must have the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis, dtype=dtype)


def hstack(tup: Any, *, dtype: Any = None) -> Any:
    """Join arrays column-wise (along axis 1; axis 0 for 1-D arrays)."""
    arrs = [atleast_1d(a) for a in tup]
    if not arrs:
        raise ValueError("need at least one array to concatenate")
    return concatenate(arrs, 0 if len(shape_of(arrs[0])) == 1 else 1, dtype=dtype)


def vstack(tup: Any, *, dtype: Any = None) -> Any:
    """Join arrays row-wise (1-D arrays become rows)."""
    return concatenate([atleast_2d(a) for a in tup], 0, dtype=dtype)


def dstack(tup: Any) -> Any:
    """Join arrays along the third axis (after :func:`atleast_3d`)."""
    return concatenate([atleast_3d(a) for a in tup], 2)


def column_stack(tup: Any) -> Any:
    """Join 1-D arrays as columns (2-D arrays are joined along axis 1)."""
    cols = []
    for a in tup:
        a = _arr(a)
        cols.append(transpose(atleast_2d(a)) if len(shape_of(a)) < 2 else a)
    return concatenate(cols, 1)


def _split_impl(x: Any, *, axis: int, bounds: tuple) -> tuple:
    pre = (slice(None),) * axis
    return tuple(x[pre + (slice(start, stop),)] for start, stop in bounds)


def _split_shape(x: ShapeDtype, *, axis: int, bounds: tuple) -> tuple:
    s = x.shape
    return tuple(ShapeDtype(s[:axis] + (b - a,) + s[axis + 1 :], x.dtype) for a, b in bounds)


def _split_jvp(tangents: list, ans: Any, x: Any, *, axis: int, bounds: tuple) -> Any:
    t = tangents[0]
    return None if t is None else split_p.bind(t, axis=axis, bounds=bounds)


def _split_vjp(g: tuple, ans: Any, needs: list, x: Any, *, axis: int, bounds: tuple) -> list:
    if not needs[0]:
        return [None]
    shape = shape_of(x)
    contiguous = bounds[0][0] == 0 and bounds[-1][1] == shape[axis]
    contiguous = contiguous and all(b[1] == c[0] for b, c in zip(bounds, bounds[1:], strict=False))
    if contiguous:  # the pieces tile the axis: the cotangent is their concatenation
        return [g[0] if len(g) == 1 else concatenate_p.bind(*g, axis=axis)]
    from ._indexing import unindex_p

    pre = (slice(None),) * axis
    total = None
    for gi, (a, b) in zip(g, bounds, strict=True):
        c = unindex_p.bind(gi, idx=pre + (slice(a, b),), shape=shape)
        total = c if total is None else total + c
    return [total]


# Pieces ``x[..., start:stop, ...]`` along ``axis`` for ``(start, stop)`` in ``bounds``.
split_p = Primitive("split", _split_impl, shape=_split_shape, multiple_results=True)
split_p.defjvp_joint(_split_jvp)
split_p.defvjp_joint(_split_vjp)
split_p.defbatch(
    lambda vals, dims, *, axis, bounds: (
        split_p.bind(move_axis(vals[0], dims[0], 0), axis=axis + 1, bounds=bounds),
        (0,) * len(bounds),
    )
)


def _split(ary: Any, indices_or_sections: Any, axis: int, equal: bool) -> list:
    ary = _arr(ary)
    shape = shape_of(ary)
    axis = _axis(axis, len(shape))
    n = shape[axis]
    if np.ndim(indices_or_sections) == 0:
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError("number sections must be larger than 0.")
        if equal and n % sections:
            raise ValueError(
                f"array split does not result in an equal division: {n} into {sections}"
            )
        each, extra = divmod(n, sections)
        points = np.cumsum([0] + [each + 1] * extra + [each] * (sections - extra)).tolist()
    else:
        points = [0] + [int(i) for i in indices_or_sections] + [n]
    bounds = []
    for start, stop in zip(points[:-1], points[1:], strict=True):
        a, b, _ = slice(start, stop).indices(n)  # Python's slicing rules, as NumPy's
        bounds.append((a, max(a, b)))
    return list(split_p.bind(ary, axis=axis, bounds=tuple(bounds)))


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """Split into equal sections (an int) or at the given indices, along ``axis``."""
    return _split(ary, indices_or_sections, axis, equal=True)


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """Like :func:`split`, but the sections may differ in length by one."""
    return _split(ary, indices_or_sections, axis, equal=False)


def hsplit(ary: Any, indices_or_sections: Any) -> list:
    """Split along axis 1 (axis 0 for 1-D arrays)."""
    ndim = len(shape_of(ary))
    if ndim == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, 1 if ndim > 1 else 0)


def vsplit(ary: Any, indices_or_sections: Any) -> list:
    """Split along axis 0 (arrays of at least 2 dimensions)."""
    if len(shape_of(ary)) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, 0)


def dsplit(ary: Any, indices_or_sections: Any) -> list:
    """Split along axis 2 (arrays of at least 3 dimensions)."""
    if len(shape_of(ary)) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(ary, indices_or_sections, 2)


# -- repetition -------------------------------------------------------------------------------
def tile(A: Any, reps: Any) -> Any:
    """``A`` repeated ``reps`` times along each axis.

    >>> import scigrad.numpy as np
    >>> np.tile(np.array([1.0, 2.0]), (2, 2))
    array([[1., 2., 1., 2.],
           [1., 2., 1., 2.]])
    """
    A = _arr(A)
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: negative repetitions {reps}")
    shape = shape_of(A)
    reps = (1,) * (len(shape) - len(reps)) + reps
    shape = (1,) * (len(reps) - len(shape)) + shape
    inter = tuple(v for s in shape for v in (1, s))
    target = tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s))
    x = broadcast_to_p.bind(reshape(A, inter), shape=target)
    return reshape(x, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def repeat(a: Any, repeats: Any, axis: int | None = None) -> Any:
    """Each element repeated ``repeats`` times (an int, or one count per element)."""
    a = _arr(a)
    if axis is None:
        a = reshape(a, (-1,))
        axis = 0
    shape = shape_of(a)
    axis = _axis(axis, len(shape))
    reps = np.asarray(repeats.concrete() if isinstance(repeats, Tracer) else repeats)
    if reps.dtype.kind not in "iu":
        raise TypeError(f"repeat: repeats must be integers, got {reps.dtype}")
    if np.any(reps < 0):
        raise ValueError("repeats may not contain negative values")
    n = shape[axis]
    if reps.size == 1:
        r = int(reps.reshape(()))
        x = reshape(a, shape[: axis + 1] + (1,) + shape[axis + 1 :])
        x = broadcast_to_p.bind(x, shape=shape[: axis + 1] + (r,) + shape[axis + 1 :])
        return reshape(x, shape[:axis] + (n * r,) + shape[axis + 1 :])
    if reps.ndim != 1 or reps.size != n:
        raise ValueError(
            f"repeat: {reps.size} repeat counts given for an axis of length {n} "
            "(give one count, or one per element)"
        )
    return _getitem(a, (slice(None),) * axis + (np.repeat(np.arange(n), reps),))


# -- flips and rolls --------------------------------------------------------------------------
def flip(m: Any, axis: Any = None) -> Any:
    """``m`` with the order of elements reversed along ``axis`` (all axes by default)."""
    m = _arr(m)
    ndim = len(shape_of(m))
    axes = range(ndim) if axis is None else _axis_tuple(axis, ndim)
    if not axes:
        return m
    rev = slice(None, None, -1)
    return _getitem(m, tuple(rev if i in axes else slice(None) for i in range(ndim)))


def fliplr(m: Any) -> Any:
    """``m`` reversed along axis 1 (left/right)."""
    if len(shape_of(m)) < 2:
        raise ValueError("Input must be >= 2-d.")
    return flip(m, 1)


def flipud(m: Any) -> Any:
    """``m`` reversed along axis 0 (up/down)."""
    if len(shape_of(m)) < 1:
        raise ValueError("Input must be >= 1-d.")
    return flip(m, 0)


def rot90(m: Any, k: int = 1, axes: Any = (0, 1)) -> Any:
    """``m`` rotated by 90 degrees ``k`` times in the plane of ``axes``."""
    m = _arr(m)
    ndim = len(shape_of(m))
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError("len(axes) must be 2.")
    a0, a1 = _axis(axes[0], ndim), _axis(axes[1], ndim)
    if a0 == a1:
        raise ValueError("Axes must be different.")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(ndim))
    perm[a0], perm[a1] = a1, a0
    if k == 1:
        return transpose(flip(m, a1), perm)
    return flip(transpose(m, perm), a1)


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """Elements shifted cyclically by ``shift`` along ``axis`` (the flattened array when
    ``axis`` is None); ``shift`` and ``axis`` may be matching sequences."""
    a = _arr(a)
    shape = shape_of(a)
    if axis is None:
        return reshape(roll(reshape(a, (-1,)), shift, 0), shape)
    pairs = np.broadcast(np.asarray(shift), np.asarray(axis))
    if pairs.ndim > 1:
        raise ValueError("'shift' and 'axis' should be scalars or 1D sequences")
    total = [0] * len(shape)
    for s, ax in pairs:
        total[_axis(ax, len(shape))] += int(s)
    for ax, s in enumerate(total):
        n = shape[ax]
        if n == 0 or s % n == 0:
            continue
        s %= n
        pre = (slice(None),) * ax
        a = concatenate_p.bind(
            _getitem(a, pre + (slice(n - s, n),)), _getitem(a, pre + (slice(0, n - s),)), axis=ax
        )
    return a


# -- diagonals and triangles -------------------------------------------------------------------
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The diagonal ``offset`` of the 2-D sub-arrays in the plane ``(axis1, axis2)``, as the
    last axis of the result (a copy, not a view)."""
    a = _arr(a)
    shape = shape_of(a)
    if len(shape) < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    i1, i2 = _axis(axis1, len(shape)), _axis(axis2, len(shape))
    if i1 == i2:
        raise ValueError("axis1 and axis2 cannot be the same")
    offset = int(offset)
    n1, n2 = shape[i1], shape[i2]
    length = max(0, min(n1 + min(offset, 0), n2 - max(offset, 0)))
    x = transpose(a, [d for d in range(len(shape)) if d not in (i1, i2)] + [i1, i2])
    x = reshape(x, tuple(shape[d] for d in range(len(shape)) if d not in (i1, i2)) + (n1 * n2,))
    # Entry (i, i + offset) of each matrix sits at i * (n2 + 1) + start of its flattening: a
    # strided slice, whose derivatives are slices too (no scatter-add).
    start = offset if offset >= 0 else -offset * n2
    if length == 0:
        return _getitem(x, (Ellipsis, slice(0, 0)))
    return _getitem(x, (Ellipsis, slice(start, start + (length - 1) * (n2 + 1) + 1, n2 + 1)))


def diag(v: Any, k: int = 0) -> Any:
    """The ``k``-th diagonal of a 2-D array, or a 2-D array with 1-D ``v`` on it."""
    v = _arr(v)
    shape = shape_of(v)
    if len(shape) == 2:
        return diagonal(v, k)
    if len(shape) != 1:
        raise ValueError("Input must be 1- or 2-d.")
    from ._indexing import unindex_p

    k = int(k)
    size = shape[0] + abs(k)
    start = k if k >= 0 else -k * size
    flat = unindex_p.bind(
        v, idx=(slice(start, start + (shape[0] - 1) * (size + 1) + 1, size + 1),), shape=(size**2,)
    )
    return reshape(flat, (size, size))


def diagflat(v: Any, k: int = 0) -> Any:
    """A 2-D array with the flattened ``v`` on its ``k``-th diagonal."""
    return diag(reshape(v, (-1,)), k)


def _triangle(m: Any, k: int, lower: bool, name: str) -> Any:
    from ._elementwise import where

    m = _arr(m)
    shape = shape_of(m)
    if len(shape) == 0:
        raise ValueError(f"{name}: input must be at least 1-d")
    zero = np.zeros(1, dtype_of(m))
    if lower:
        return where(np.tri(*shape[-2:], k=int(k), dtype=bool), m, zero)
    return where(np.tri(*shape[-2:], k=int(k) - 1, dtype=bool), zero, m)


def tril(m: Any, k: int = 0) -> Any:
    """``m`` with the entries above the ``k``-th diagonal zeroed (last two axes)."""
    return _triangle(m, k, True, "tril")


def triu(m: Any, k: int = 0) -> Any:
    """``m`` with the entries below the ``k``-th diagonal zeroed (last two axes)."""
    return _triangle(m, k, False, "triu")


# -- padding -----------------------------------------------------------------------------------
_INDEX_MODES = ("edge", "reflect", "symmetric", "wrap")


def pad(array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    """``array`` padded on each side (as ``numpy.pad``) for the modes 'constant' (static
    ``constant_values``), 'empty' (zeros), 'edge', 'reflect', 'symmetric' and 'wrap'.

    >>> import scigrad.numpy as np
    >>> np.pad(np.array([1.0, 2.0]), (1, 2), mode="edge")
    array([1., 1., 2., 2., 2.])
    """
    a = _arr(array)
    shape = shape_of(a)
    ndim = len(shape)
    width = np.asarray(pad_width)
    if width.dtype.kind not in "iu":
        raise TypeError("`pad_width` must be of integral type.")
    try:
        width = np.broadcast_to(width, (ndim, 2))
    except ValueError:
        raise ValueError(
            f"pad: pad_width {pad_width!r} does not fit an array of {ndim} dimensions"
        ) from None
    if np.any(width < 0):
        raise ValueError("index can't contain negative values")
    width = [(int(b), int(e)) for b, e in width]
    new = tuple(b + s + e for (b, e), s in zip(width, shape, strict=True))
    if mode in ("constant", "empty"):
        values = kwargs.pop("constant_values", 0) if mode == "constant" else 0
        if kwargs:
            raise TypeError(
                f"pad: unsupported keyword arguments {sorted(kwargs)} for mode {mode!r}"
            )
        if isinstance(values, Tracer):
            raise NotImplementedError("pad: traced constant_values are not supported")
        from ._indexing import unindex_p

        inner = tuple(slice(b, b + s) for (b, _), s in zip(width, shape, strict=True))
        out = unindex_p.bind(a, idx=inner, shape=new)
        if np.any(np.asarray(values) != 0):
            out = out + np.pad(np.zeros(shape, dtype_of(a)), width, constant_values=values)
        return out
    if mode in _INDEX_MODES:
        # Pad the positions, then gather: the derivative is that of a gather.
        index = np.pad(np.arange(int(np.prod(shape))).reshape(shape), width, mode=mode, **kwargs)
        return _getitem(reshape(a, (-1,)), (index,))
    raise NotImplementedError(
        f"pad: mode {mode!r} is not supported (use one of 'constant', 'empty', "
        + ", ".join(repr(m) for m in _INDEX_MODES)
        + ")"
    )


__all__ = [
    "array_split",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "broadcast_arrays",
    "broadcast_to",
    "column_stack",
    "concatenate",
    "diag",
    "diagflat",
    "diagonal",
    "dsplit",
    "dstack",
    "expand_dims",
    "flip",
    "fliplr",
    "flipud",
    "hsplit",
    "hstack",
    "moveaxis",
    "pad",
    "ravel",
    "repeat",
    "reshape",
    "roll",
    "rot90",
    "split",
    "squeeze",
    "stack",
    "swapaxes",
    "tile",
    "transpose",
    "tril",
    "triu",
    "vsplit",
    "vstack",
]
