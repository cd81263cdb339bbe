"""Indexing: ``x[idx]``, the functional updates ``x.at[idx].set/add/multiply/...`` of JAX,
and ``take``, ``take_along_axis``, ``compress``, ``extract`` (all written with ``getitem``).

Every NumPy index works: ints, slices, None, Ellipsis, integer arrays, boolean masks (made
integer arrays of their ``nonzero()``), ``np.ix_`` tuples and mixes of these. The VJP of
``x[idx]`` scatter-adds the cotangent into zeros, so entries selected several times
(repeated integer indices) receive the sum of their cotangents. In-place writes into traced
arrays are impossible by design; ``x.at[idx]`` returns a new array instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.batching import batch_size, broadcast_batched, move_axis
from ..core.primitive import Primitive, ShapeDtype, Tracer
from ._util import broadcast_like, dtype_of, shape_of, unbroadcast

_FLOATS = (float, np.floating)


def normalize_index(idx: Any, shape: tuple[int, ...] | None = None) -> tuple:
    """``idx`` as a tuple of ints, slices, None, Ellipsis and integer arrays.

    Boolean masks become the integer arrays of their ``nonzero()`` (so every later rule
    sees one kind of advanced index); indices computed by scigrad are made concrete. Given
    the ``shape`` of the indexed array, masks are checked against it (NumPy's IndexError).
    """
    if not isinstance(idx, tuple):
        idx = (idx,)
    out: list[Any] = []
    masks = False
    for i in idx:
        if isinstance(i, Tracer):
            i = i.concrete()
        if isinstance(i, list):
            i = np.asarray(i) if i else np.zeros(0, np.intp)
        if isinstance(i, np.ndarray):
            if i.dtype == bool:
                if i.ndim == 0:  # a 0-d mask adds an axis of length 1 or 0, as NumPy's
                    out.append(np.bool_(i))
                    continue
                masks = True
                out.extend(np.nonzero(i))
                continue
            if i.dtype.kind not in "iu":
                raise IndexError(
                    f"arrays used as indices must be integer or boolean, got {i.dtype}"
                )
        elif isinstance(i, _FLOATS):
            raise IndexError(
                "only integers, slices, None, Ellipsis and integer or boolean arrays "
                "are valid indices"
            )
        out.append(i)
    if masks and shape is not None:
        # A mask of the wrong shape could otherwise select a valid-looking subset.
        _probe(shape)[tuple(i.concrete() if isinstance(i, Tracer) else i for i in idx)]
    return tuple(out)


def _probe(shape: tuple[int, ...]) -> np.ndarray:
    """A read-only array of ``shape`` that occupies no memory, to index for shapes only."""
    return np.broadcast_to(np.empty((), np.bool_), shape)


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


_BASIC = (int, np.integer, slice, type(None), type(Ellipsis))


def is_basic(idx: tuple) -> bool:
    """True if ``idx`` selects each element at most once without copying (no arrays)."""
    for i in idx:
        if not isinstance(i, _BASIC):
            return False
    return True


def _indexed_shape(x: ShapeDtype, *, idx) -> ShapeDtype:
    return ShapeDtype(_probe(x.shape)[idx].shape, x.dtype)


_ADVANCED = (np.ndarray, np.bool_)
_INTEGERS = (int, np.integer)


def batched_index(idx: tuple) -> tuple[tuple, int]:
    """``idx`` for a batch with its batch axis first, and where the batch axis lands in the
    result: first, unless advanced indices separated by a basic one move to the front
    (NumPy's rule), then right after them."""
    arrays = False
    advanced = []
    for k, i in enumerate(idx):
        if isinstance(i, _ADVANCED):
            arrays = True
            advanced.append(k)
        elif isinstance(i, _INTEGERS):
            advanced.append(k)
    new = (slice(None), *idx)
    if not arrays or advanced[-1] - advanced[0] == len(advanced) - 1:
        return new, 0
    return new, len(np.broadcast_shapes(*(np.shape(idx[k]) for k in advanced)))


def _getitem_batch(vals: list, dims: list, *, idx: tuple) -> tuple[Any, int]:
    new, out_dim = batched_index(idx)
    return getitem_p.bind(move_axis(vals[0], dims[0], 0), idx=new), out_dim


getitem_p = Primitive("getitem", lambda x, *, idx: x[idx], shape=_indexed_shape)
getitem_p.defjvp(lambda t, ans, x, *, idx: getitem_p.bind(t, idx=idx))
getitem_p.defvjp(lambda g, ans, x, *, idx: unindex_p.bind(g, idx=idx, shape=shape_of(x)))
getitem_p.defbatch(_getitem_batch)


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


def _unindex_batch(vals: list, dims: list, *, idx: tuple, shape: tuple) -> tuple[Any, int]:
    # g is batched like the getitem it transposes: its batch axis where getitem puts it.
    new, at = batched_index(idx)
    g = move_axis(vals[0], dims[0], at)
    return unindex_p.bind(g, idx=new, shape=(shape_of(g)[at], *shape)), 0


unindex_p.defbatch(_unindex_batch)


def _scatter_batch(prim: Primitive):
    """Batching rule of ``scatter_*(operand, updates, idx)``: the operand batched first, the
    updates shaped to broadcast against the batched selection ``operand[(:, *idx)]``."""

    def rule(vals: list, dims: list, *, idx: tuple) -> tuple[Any, int]:
        (op, up), (d_op, d_up) = vals, dims
        size = batch_size(vals, dims)
        op = broadcast_batched(op, size) if d_op is None else move_axis(op, d_op, 0)
        new, at = batched_index(idx)
        sel = _probe(shape_of(op)[1:])[idx].ndim
        us = shape_of(up)
        if d_up is not None:
            up = move_axis(up, d_up, 0)
            us = us[:d_up] + us[d_up + 1 :]
        while len(us) > sel and us[0] == 1:  # leading length-1 axes broadcast away
            us = us[1:]
        if len(us) > sel:
            raise ValueError(f"{prim.name}: updates of shape {us} do not fit the selection")
        # Unbatched updates that only meet the axes after the batch axis broadcast as they are.
        if d_up is not None or len(us) > sel - at:
            full = (1,) * (sel - len(us)) + us
            up = _reshape(up, (size if d_up is not None else 1, *full))
            up = move_axis(up, 0, at)
        return prim.bind(op, up, idx=new), 0

    return rule


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
scatter_add_p.defbatch(_scatter_batch(scatter_add_p))


def _scatter_set_impl(operand: Any, updates: Any, *, idx: tuple) -> np.ndarray:
    out = np.array(operand, dtype=np.result_type(operand, updates), copy=True)
    out[idx] = updates
    return out


def _written(shape: tuple[int, ...], idx: tuple) -> np.ndarray | None:
    """Mask over ``x[idx]`` of the entries whose write survives (the last of repeated
    indices, as NumPy assigns); None when every write survives."""
    if is_basic(idx):
        return None
    selected = _probe(shape)[idx].shape
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
scatter_set_p.defbatch(_scatter_batch(scatter_set_p))


# -- multiplicative and min/max scatters --------------------------------------------------
def _concrete(x: Any) -> Any:
    return x.concrete() if isinstance(x, Tracer) else np.asarray(x)


def _reshape(x: Any, shape: tuple[int, ...]) -> Any:
    from ._shape import reshape

    return reshape(x, shape)


def _positions(shape: tuple[int, ...], idx: tuple) -> np.ndarray:
    """The flat positions, in an array of ``shape``, of the entries of ``x[idx]``."""
    return np.arange(_prod(shape)).reshape(shape)[idx]


def has_repeats(shape: tuple[int, ...], idx: tuple) -> bool:
    """True if ``x[idx]`` selects some entry of an array of ``shape`` more than once."""
    if is_basic(idx):
        return False
    pos = _positions(shape, idx).ravel()
    return np.unique(pos).size < pos.size


def _others(shape: tuple[int, ...], idx: tuple) -> np.ndarray | None:
    """For each of the ``K`` entries of ``x[idx]`` (flattened), the flat numbers of the
    *other* entries that select the same position, as a ``(K, m - 1)`` array padded with
    ``K`` (``m``: the largest repeat count); None when no position is selected twice."""
    if is_basic(idx):
        return None
    pos = _positions(shape, idx).ravel()
    k = pos.size
    order = np.argsort(pos, kind="stable")
    _, start, counts = np.unique(pos[order], return_index=True, return_counts=True)
    m = int(counts.max(initial=1))
    if m <= 1:
        return None
    group_start = np.repeat(start, counts)  # per sorted entry
    rank = np.arange(k) - group_start
    size = np.repeat(counts, counts)
    others = np.full((k, m - 1), k, dtype=np.intp)
    for c in range(m - 1):
        r = np.where(c < rank, c, c + 1)  # the c-th rank of the group, skipping one's own
        ok = r < size
        others[order[ok], c] = order[(group_start + r)[ok]]
    return others


def _others_product(updates: Any, shape_sel: tuple[int, ...], others: np.ndarray) -> Any:
    """For each entry of ``updates`` broadcast to ``shape_sel``, the product of the other
    updates written to the same position (1 where there is none). No division, so zeros
    are handled exactly."""
    from ._shape import concatenate, reshape

    k = _prod(shape_sel)
    u = reshape(broadcast_like(updates, shape_sel), (k,))
    flat = concatenate([u, np.ones(1, dtype_of(updates))])
    acc = getitem_p.bind(flat, idx=(others[:, 0],))
    for c in range(1, others.shape[1]):
        acc = acc * getitem_p.bind(flat, idx=(others[:, c],))
    return reshape(acc, shape_sel)


def _scatter_mul_impl(operand: Any, updates: Any, *, idx: tuple) -> np.ndarray:
    out = np.array(operand, dtype=np.result_type(operand, updates), copy=True)
    if is_basic(idx):
        out[idx] *= updates
    else:
        np.multiply.at(out, idx, updates)
    return out


def _scatter_mul_vjp_operand(g: Any, ans: Any, operand: Any, updates: Any, *, idx: tuple):
    # d ans[p] / d operand[p] = the product of the updates written to p.
    ones = np.ones(shape_of(operand), dtype_of(ans))
    return g * scatter_mul_p.bind(ones, updates, idx=idx)


def _scatter_mul_updates_factor(operand: Any, updates: Any, idx: tuple) -> Any:
    """d ans[p] / d updates_k on the selection ``x[idx]``: ``operand[p]`` times the other
    updates written to ``p``."""
    sel = getitem_p.bind(operand, idx=idx)
    others = _others(shape_of(operand), idx)
    if others is None:
        return sel
    return sel * _others_product(updates, shape_of(sel), others)


def _scatter_mul_vjp_updates(g: Any, ans: Any, operand: Any, updates: Any, *, idx: tuple):
    picked = getitem_p.bind(g, idx=idx) * _scatter_mul_updates_factor(operand, updates, idx)
    return unbroadcast(picked, shape_of(updates))


def _scatter_mul_jvp_updates(t: Any, ans: Any, operand: Any, updates: Any, *, idx: tuple):
    factor = _scatter_mul_updates_factor(operand, updates, idx)
    return unindex_p.bind(
        broadcast_like(factor * t, shape_of(factor)), idx=idx, shape=shape_of(ans)
    )


scatter_mul_p = Primitive(
    "scatter_mul", _scatter_mul_impl, shape=lambda operand, updates, *, idx: operand
)
scatter_mul_p.defjvp(
    lambda t, ans, operand, updates, *, idx: scatter_mul_p.bind(t, updates, idx=idx),
    _scatter_mul_jvp_updates,
)
scatter_mul_p.defvjp(_scatter_mul_vjp_operand, _scatter_mul_vjp_updates)
scatter_mul_p.defbatch(_scatter_batch(scatter_mul_p))


def _chooser_weights(ans: Any, operand: Any, updates: Any, idx: tuple) -> tuple:
    """How the derivative of ``ans`` at each position is shared between ``operand`` and the
    updates written there: equally among those equal to the result (ties split, as for
    ``maximum``). Locally constant, so computed on concrete values."""
    a, op, u = _concrete(ans), _concrete(operand), _concrete(updates)
    a_sel = a[idx]
    hit_op = (op == a).astype(a.dtype)
    hit_u = (np.broadcast_to(u, a_sel.shape) == a_sel).astype(a.dtype)
    count = hit_op.copy()
    if is_basic(idx):
        count[idx] += hit_u
    else:
        np.add.at(count, idx, hit_u)
    count = np.maximum(count, 1.0)  # NaN results: no derivative
    return hit_op / count, hit_u / count[idx]


def _scatter_chooser(name: str, ufunc: np.ufunc) -> Primitive:
    def impl(operand: Any, updates: Any, *, idx: tuple) -> np.ndarray:
        out = np.array(operand, dtype=np.result_type(operand, updates), copy=True)
        ufunc.at(out, idx, updates)
        return out

    def jvp_operand(t: Any, ans: Any, operand: Any, updates: Any, *, idx: tuple) -> Any:
        return t * _chooser_weights(ans, operand, updates, idx)[0]

    def jvp_updates(t: Any, ans: Any, operand: Any, updates: Any, *, idx: tuple) -> Any:
        w = _chooser_weights(ans, operand, updates, idx)[1]
        return unindex_p.bind(broadcast_like(t * w, w.shape), idx=idx, shape=shape_of(ans))

    def vjp_operand(g: Any, ans: Any, operand: Any, updates: Any, *, idx: tuple) -> Any:
        return g * _chooser_weights(ans, operand, updates, idx)[0]

    def vjp_updates(g: Any, ans: Any, operand: Any, updates: Any, *, idx: tuple) -> Any:
        w = _chooser_weights(ans, operand, updates, idx)[1]
        return unbroadcast(getitem_p.bind(g, idx=idx) * w, shape_of(updates))

    p = Primitive(name, impl, shape=lambda operand, updates, *, idx: operand)
    p.defjvp(jvp_operand, jvp_updates)
    p.defvjp(vjp_operand, vjp_updates)
    p.defbatch(_scatter_batch(p))
    return p


scatter_min_p = _scatter_chooser("scatter_min", np.minimum)
scatter_max_p = _scatter_chooser("scatter_max", np.maximum)


def getitem(x: Any, idx: Any) -> Any:
    """``x[idx]`` for traced or plain arrays."""
    return getitem_p.bind(x, idx=normalize_index(idx, shape_of(x)))


class _IndexedRef:
    """``x.at[idx]``: functional updates of the entries ``x[idx]``.

    Each method returns an updated copy of ``x``. With repeated indices ``set`` keeps the
    last value, and the other updates apply one after the other (as NumPy's ``ufunc.at``):
    ``add`` accumulates, ``multiply`` multiplies all factors in, ``min``/``max`` keep the
    extreme. Derivatives are exact for repeated indices too, zeros included; at ties of
    ``min``/``max`` the derivative is shared equally among the tied values.
    """

    __slots__ = ("array", "idx")

    def __init__(self, array: Any, idx: Any) -> None:
        self.array = array
        self.idx = normalize_index(idx, shape_of(array))

    def get(self) -> Any:
        """``x[idx]``."""
        return getitem_p.bind(self.array, idx=self.idx)

    def set(self, values: Any) -> Any:
        """A copy of ``x`` with ``x[idx] = values``; with repeated indices the last wins."""
        return scatter_set_p.bind(self.array, values, idx=self.idx)

    def add(self, values: Any) -> Any:
        """A copy of ``x`` with ``values`` added at ``idx``; repeated indices accumulate."""
        return scatter_add_p.bind(self.array, values, idx=self.idx)

    def multiply(self, values: Any) -> Any:
        """A copy of ``x`` with the entries at ``idx`` multiplied by ``values``; repeated
        indices multiply every factor in (``numpy.multiply.at``)."""
        return scatter_mul_p.bind(self.array, values, idx=self.idx)

    def divide(self, values: Any) -> Any:
        """A copy of ``x`` with the entries at ``idx`` divided by ``values``; repeated
        indices divide by every divisor (``numpy.divide.at``)."""
        from ._elementwise import divide

        if has_repeats(shape_of(self.array), self.idx):
            return self.multiply(divide(1.0, values))
        return self.set(divide(self.get(), values))

    def power(self, values: Any) -> Any:
        """A copy of ``x`` with the entries at ``idx`` raised to ``values`` (indices must
        not repeat: the result of repeated powers depends on the order they apply in)."""
        from ._elementwise import power

        if has_repeats(shape_of(self.array), self.idx):
            raise NotImplementedError(
                "x.at[idx].power(v) with repeated indices is not supported; combine the "
                "exponents first, e.g. x.at[unique_idx].power(product_of_exponents)"
            )
        return self.set(power(self.get(), values))

    def min(self, values: Any) -> Any:
        """A copy of ``x`` with ``x[idx] = minimum(x[idx], values)``, over every repeat."""
        return scatter_min_p.bind(self.array, values, idx=self.idx)

    def max(self, values: Any) -> Any:
        """A copy of ``x`` with ``x[idx] = maximum(x[idx], values)``, over every repeat."""
        return scatter_max_p.bind(self.array, values, idx=self.idx)


class IndexUpdateHelper:
    """The ``.at`` property: ``x.at[idx].set(v)``, ``.add``, ``.multiply``, ``.divide``,
    ``.power``, ``.min``, ``.max``, ``.get()`` (as in JAX)."""

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


# -- take and friends ---------------------------------------------------------------------
def _check_axis(axis: Any, ndim: int) -> int:
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def take(a: Any, indices: Any, axis: int | None = None, out: None = None, mode: str = "raise"):
    """Entries of ``a`` at ``indices`` along ``axis`` (of the flattened ``a`` by default),
    as ``numpy.take``; ``mode`` is ``'raise'``, ``'wrap'`` or ``'clip'``.

    >>> import scigrad.numpy as np
    >>> np.take(np.array([[1.0, 2.0], [3.0, 4.0]]), [1, 1, 0], axis=1)
    array([[2., 2., 1.],
           [4., 4., 3.]])
    """
    from ._shape import reshape

    if out is not None:
        raise TypeError("take: the out= argument is not supported (scigrad is functional)")
    if axis is None:
        a = reshape(a, (-1,))
        axis = 0
    shape = shape_of(a)
    axis = _check_axis(axis, len(shape))
    ind = _concrete(indices)
    if ind.dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers, got {ind.dtype}")
    n = shape[axis]
    if mode == "wrap":
        ind = ind % n
    elif mode == "clip":
        ind = np.clip(ind, 0, n - 1)
    elif mode != "raise":
        raise ValueError(f"take: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    key = int(ind) if ind.ndim == 0 else ind
    return getitem_p.bind(a, idx=(slice(None),) * axis + (key,))


def take_along_axis(arr: Any, indices: Any, axis: int | None = -1) -> Any:
    """Entries of ``arr`` at ``indices`` along ``axis``, matching them position by position
    on the other axes (as ``numpy.take_along_axis``; the inverse of ``argsort``-like
    indices).

    >>> import scigrad.numpy as np
    >>> a = np.array([[3.0, 1.0, 2.0]])
    >>> np.take_along_axis(a, np.argsort(a, axis=1), axis=1)
    array([[1., 2., 3.]])
    """
    from ._shape import reshape

    ind = _concrete(indices)
    if ind.dtype.kind not in "iu":
        raise IndexError(f"take_along_axis: indices must be integers, got {ind.dtype}")
    if axis is None:
        if ind.ndim != 1:
            raise ValueError("when axis=None, `indices` must have a single dimension.")
        arr = reshape(arr, (-1,))
        axis = 0
    shape = shape_of(arr)
    if ind.ndim != len(shape):
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    axis = _check_axis(axis, len(shape))
    key = []
    for d, n in enumerate(shape):
        if d == axis:
            key.append(ind)
        else:
            key.append(np.arange(n).reshape((1,) * d + (n,) + (1,) * (len(shape) - d - 1)))
    np.broadcast_shapes(*(k.shape for k in key))  # NumPy's error for mismatched shapes
    return getitem_p.bind(arr, idx=tuple(key))


def compress(condition: Any, a: Any, axis: int | None = None, out: None = None) -> Any:
    """The slices of ``a`` along ``axis`` where ``condition`` is true (as
    ``numpy.compress``; ``condition`` may be shorter than the axis)."""
    if out is not None:
        raise TypeError("compress: the out= argument is not supported (scigrad is functional)")
    cond = _concrete(condition)
    if cond.ndim != 1:
        raise ValueError("condition must be a 1-d array")
    return take(a, np.nonzero(cond)[0], axis=axis)


def extract(condition: Any, arr: Any) -> Any:
    """The entries of the flattened ``arr`` where the flattened ``condition`` is nonzero."""
    return take(arr, np.nonzero(_concrete(condition).ravel())[0])


__all__ = ["at", "compress", "extract", "getitem", "take", "take_along_axis"]
