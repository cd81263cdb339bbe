"""Indexing: ``x[idx]`` and the functional updates ``x.at[idx].set/add/...`` of JAX.

The VJP of ``x[idx]`` scatter-adds the cotangent into zeros, so entries selected several
times (repeated integer indices) receive the sum of their cotangents. In-place writes into
traced arrays are impossible by design; ``x.at[idx]`` returns a new array instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import Primitive, ShapeDtype, Tracer
from ._util import broadcast_like, dtype_of, shape_of, unbroadcast


def normalize_index(idx: Any) -> tuple:
    """``idx`` as a tuple of ints, slices, None, Ellipsis and integer arrays.

    Boolean masks become the integer arrays of their ``nonzero()`` (so every later rule
    sees one kind of advanced index); indices computed by scigrad are made concrete.
    """
    if not isinstance(idx, tuple):
        idx = (idx,)
    out: list[Any] = []
    for i in idx:
        if isinstance(i, Tracer):
            i = i.concrete()
        if isinstance(i, list):
            i = np.asarray(i)
        if isinstance(i, np.ndarray):
            if i.dtype == bool:
                out.extend(np.nonzero(i))
                continue
            if i.dtype.kind not in "iu":
                raise IndexError(
                    f"arrays used as indices must be integer or boolean, got {i.dtype}"
                )
        elif isinstance(i, float | np.floating):
            raise IndexError(
                "only integers, slices, None, Ellipsis and integer or boolean arrays "
                "are valid indices"
            )
        out.append(i)
    return tuple(out)


def is_basic(idx: tuple) -> bool:
    """True if ``idx`` selects each element at most once without copying (no arrays)."""
    return all(i is None or i is Ellipsis or isinstance(i, int | np.integer | slice) for i in idx)


def _indexed_shape(x: ShapeDtype, *, idx) -> ShapeDtype:
    return ShapeDtype(np.empty(x.shape, dtype=np.bool_)[idx].shape, x.dtype)


getitem_p = Primitive("getitem", lambda x, *, idx: x[idx], shape=_indexed_shape)
getitem_p.defjvp(lambda t, ans, x, *, idx: getitem_p.bind(t, idx=idx))
getitem_p.defvjp(lambda g, ans, x, *, idx: unindex_p.bind(g, idx=idx, shape=shape_of(x)))


def _unindex_impl(g: Any, *, idx: tuple, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype_of(g))
    if is_basic(idx):
        out[idx] = g
    else:
        np.add.at(out, idx, g)
    return out


# The transpose of getitem: scatter-add ``g`` into zeros of ``shape``. Linear in ``g``.
unindex_p = Primitive(
    "unindex", _unindex_impl, shape=lambda g, *, idx, shape: ShapeDtype(shape, g.dtype)
)
unindex_p.defjvp(lambda t, ans, g, *, idx, shape: unindex_p.bind(t, idx=idx, shape=shape))
unindex_p.defvjp(lambda ct, ans, g, *, idx, shape: getitem_p.bind(ct, idx=idx))


def _scatter_add_impl(operand: Any, updates: Any, *, idx: tuple) -> np.ndarray:
    out = np.array(operand, dtype=np.result_type(operand, updates), copy=True)
    if is_basic(idx):
        out[idx] += updates
    else:
        np.add.at(out, idx, updates)
    return out


scatter_add_p = Primitive(
    "scatter_add",
    _scatter_add_impl,
    shape=lambda operand, updates, *, idx: operand,
)
scatter_add_p.defjvp(
    lambda t, ans, operand, updates, *, idx: t,
    lambda t, ans, operand, updates, *, idx: unindex_p.bind(
        broadcast_like(t, shape_of(getitem_p.bind(ans, idx=idx))), idx=idx, shape=shape_of(ans)
    ),
)
scatter_add_p.defvjp(
    lambda g, ans, operand, updates, *, idx: g,
    lambda g, ans, operand, updates, *, idx: unbroadcast(
        getitem_p.bind(g, idx=idx), shape_of(updates)
    ),
)


def _scatter_set_impl(operand: Any, updates: Any, *, idx: tuple) -> np.ndarray:
    out = np.array(operand, dtype=np.result_type(operand, updates), copy=True)
    out[idx] = updates
    return out


def _written(shape: tuple[int, ...], idx: tuple) -> np.ndarray | None:
    """Mask over ``x[idx]`` of the entries whose write survives (the last of repeated
    indices, as NumPy assigns); None when every write survives."""
    if is_basic(idx):
        return None
    selected = np.empty(shape, dtype=np.bool_)[idx].shape
    order = np.arange(int(np.prod(selected))).reshape(selected)
    owner = np.full(shape, -1, dtype=np.intp)
    owner[idx] = order
    mask = owner[idx] == order
    return None if mask.all() else mask


def _scatter_set_vjp_updates(g: Any, ans: Any, operand: Any, updates: Any, *, idx: tuple) -> Any:
    from ._elementwise import where

    picked = getitem_p.bind(g, idx=idx)
    mask = _written(shape_of(operand), idx)
    if mask is not None:
        picked = where(mask, picked, 0.0)
    return unbroadcast(picked, shape_of(updates))


scatter_set_p = Primitive(
    "scatter_set", _scatter_set_impl, shape=lambda operand, updates, *, idx: operand
)
scatter_set_p.defjvp_joint(
    lambda tangents, ans, operand, updates, *, idx: scatter_set_p.bind(
        np.zeros(shape_of(ans), dtype_of(ans)) if tangents[0] is None else tangents[0],
        0.0 if tangents[1] is None else tangents[1],
        idx=idx,
    )
)
scatter_set_p.defvjp(
    lambda g, ans, operand, updates, *, idx: scatter_set_p.bind(g, 0.0, idx=idx),
    _scatter_set_vjp_updates,
)


def getitem(x: Any, idx: Any) -> Any:
    """``x[idx]`` for traced or plain arrays."""
    return getitem_p.bind(x, idx=normalize_index(idx))


class _IndexedRef:
    """``x.at[idx]``: functional updates of the entries ``x[idx]``."""

    __slots__ = ("array", "idx")

    def __init__(self, array: Any, idx: Any) -> None:
        self.array = array
        self.idx = normalize_index(idx)

    def get(self) -> Any:
        """``x[idx]``."""
        return getitem_p.bind(self.array, idx=self.idx)

    def set(self, values: Any) -> Any:
        """A copy of ``x`` with ``x[idx] = values``; with repeated indices the last wins."""
        return scatter_set_p.bind(self.array, values, idx=self.idx)

    def add(self, values: Any) -> Any:
        """A copy of ``x`` with ``values`` added at ``idx``; repeated indices accumulate."""
        return scatter_add_p.bind(self.array, values, idx=self.idx)


class IndexUpdateHelper:
    """The ``.at`` property: ``x.at[idx].set(v)``, ``.add(v)``, ``.get()`` (as in JAX)."""

    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        self.array = array

    def __getitem__(self, idx: Any) -> _IndexedRef:
        return _IndexedRef(self.array, idx)


def at(x: Any) -> IndexUpdateHelper:
    """``x.at`` for plain NumPy arrays too: ``scigrad.numpy.at(x)[idx].set(v)``.

    >>> import scigrad.numpy as np
    >>> np.at(np.zeros(3))[[0, 0, 2]].add(1.0)
    array([2., 0., 1.])
    """
    return IndexUpdateHelper(x)


__all__ = ["at", "getitem"]
