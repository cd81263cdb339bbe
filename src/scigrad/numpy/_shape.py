"""Shape operations: reshape, transpose, broadcast_to, concatenate, stack, ..."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import Primitive, ShapeDtype
from ._util import dtype_of, shape_of, unbroadcast


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


def broadcast_to(array: Any, shape: Any) -> Any:
    """``array`` broadcast to ``shape`` (a new array, not a read-only view)."""
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    np.broadcast_shapes(shape_of(array), shape)  # raises NumPy's error on mismatch
    if len(shape_of(array)) > len(shape):
        raise ValueError(f"cannot broadcast an array of shape {shape_of(array)} to {shape}")
    return broadcast_to_p.bind(array, shape=shape)


reshape_p = Primitive(
    "reshape",
    lambda x, *, shape: np.reshape(x, shape),
    shape=lambda x, *, shape: ShapeDtype(shape, x.dtype),
)
reshape_p.defjvp(lambda t, ans, x, *, shape: reshape_p.bind(t, shape=shape))
reshape_p.defvjp(lambda g, ans, x, *, shape: reshape_p.bind(g, shape=shape_of(x)))


def reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None) -> Any:
    """``a`` with a new shape (C order); one dimension may be -1."""
    if order != "C":
        raise NotImplementedError("reshape: only order='C' is supported")
    shape = newshape if shape is None else shape
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    size = int(np.prod(shape_of(a)))
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        shape = tuple(size // known if s == -1 and known else s for s in shape)
    if int(np.prod(shape)) != size:
        raise ValueError(f"cannot reshape an array of shape {shape_of(a)} into shape {shape}")
    if shape == shape_of(a):
        return a
    return reshape_p.bind(a, shape=shape)


transpose_p = Primitive(
    "transpose",
    lambda x, *, axes: np.transpose(x, axes),
    shape=lambda x, *, axes: ShapeDtype(tuple(x.shape[i] for i in axes), x.dtype),
)
transpose_p.defjvp(lambda t, ans, x, *, axes: transpose_p.bind(t, axes=axes))
transpose_p.defvjp(
    lambda g, ans, x, *, axes: transpose_p.bind(g, axes=tuple(int(i) for i in np.argsort(axes)))
)


def transpose(a: Any, axes: Any = None) -> Any:
    """``a`` with its axes permuted (reversed by default)."""
    ndim = len(shape_of(a))
    axes = tuple(reversed(range(ndim))) if axes is None else tuple(int(i) % ndim for i in axes)
    if sorted(axes) != list(range(ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {ndim} axes")
    if axes == tuple(range(ndim)):
        return a
    return transpose_p.bind(a, axes=axes)


def _concat_shape(*xs: ShapeDtype, axis: int) -> ShapeDtype:
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return ShapeDtype(tuple(shape), np.result_type(*(x.dtype for x in xs)))


def _split_points(xs: tuple, axis: int) -> list[int]:
    return list(np.cumsum([shape_of(x)[axis] for x in xs])[:-1])


def _concat_vjp(g: Any, ans: Any, needs: list, *xs: Any, axis: int) -> list:
    from ._indexing import getitem

    out, start = [], 0
    for x, need in zip(xs, needs, strict=True):
        stop = start + shape_of(x)[axis]
        if need:
            sl = (slice(None),) * axis + (slice(start, stop),)
            out.append(getitem(g, sl))
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


def concatenate(arrays: Any, axis: int | None = 0) -> Any:
    """Join arrays along an existing axis (``axis=None`` flattens them first)."""
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    if axis is None:
        arrays = tuple(reshape(a, (-1,)) for a in arrays)
        axis = 0
    ndim = len(shape_of(arrays[0]))
    if ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    axis = int(axis) % ndim
    shapes = [shape_of(a) for a in arrays]
    for s in shapes:
        if len(s) != ndim or s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :]:
            raise ValueError(f"concatenate: shapes {shapes} do not match except along axis {axis}")
    if len(arrays) == 1:
        return arrays[0]
    return concatenate_p.bind(*arrays, axis=axis)


def expand_dims(a: Any, axis: Any) -> Any:
    """``a`` with new axes of length 1 inserted at ``axis``."""
    shape = shape_of(a)
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    ndim = len(shape) + len(axes)
    axes = sorted(int(ax) % ndim for ax in axes)
    new = list(shape)
    for ax in axes:
        new.insert(ax, 1)
    return reshape(a, tuple(new))


def stack(arrays: Any, axis: int = 0) -> Any:
    """Join arrays of the same shape along a new axis."""
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all input arrays must have the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


__all__ = ["broadcast_to", "concatenate", "expand_dims", "reshape", "stack", "transpose"]
