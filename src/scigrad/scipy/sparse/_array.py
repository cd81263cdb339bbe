"""Sparse arrays whose stored values are differentiable, on a static pattern.

``SparseArray(data, pattern)``: ``data`` is a 1-D array (plain or traced) of the stored
values, in the order of ``pattern``. Operations are written as primitives on ``data`` with
the pattern as a static parameter, so every cotangent of a sparse matrix is again a vector
of ``nnz`` values on the same pattern: no rule ever forms a dense ``n x n`` array unless the
user asks for one (``toarray``, or an operation whose result SciPy makes dense, such as
``A + dense``).

Structural work (matching two patterns, selecting rows, the pattern of a product) is a
:class:`~._pattern.Plan` computed once per pattern (or pair of patterns) and cached;
applying it is one ``sparse_scatter_entries`` primitive, O(nnz).

A ``SparseArray`` is a pytree with one leaf, ``data``: ``sg.grad`` of a function of a
sparse matrix returns a sparse matrix of cotangents on the same pattern.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sps

from ... import numpy as snp
from ...core.primitive import Primitive, ShapeDtype, Tracer
from ...core.tree import register_pytree_node
from ...numpy._indexing import getitem_p
from ...numpy._reductions import sum as sum_
from ...numpy._util import dtype_of, shape_of
from ._pattern import Pattern, Plan, coo_pattern, intersection, product, union

__all__ = ["SparseArray", "coo_array", "csc_array", "csr_array", "issparse"]


# -- primitives ---------------------------------------------------------------------------------
def _scatter_impl(data: Any, *, plan: Plan) -> np.ndarray:
    source, target = plan.source, plan.target
    if target is None:  # a gather
        return data[source]
    if source is not None:
        data = data[source]
    if plan.is_permutation:
        out = np.empty(plan.size, dtype=dtype_of(data))
        out[target] = data
        return out
    return np.bincount(target, weights=data, minlength=plan.size).astype(dtype_of(data), copy=False)


def _scatter_shape(data: ShapeDtype, *, plan: Plan) -> ShapeDtype:
    if data.shape != (plan.in_size,):
        raise ValueError(
            f"sparse plan expects {plan.in_size} stored values, got an array of shape {data.shape}"
        )
    return ShapeDtype((plan.size,), data.dtype)


# ``out[plan.target[k]] += data[plan.source[k]]``: conversions, duplicate sums, selections,
# unions, intersections, reductions. Linear; its transpose is the transposed plan.
scatter_entries_p = Primitive("sparse_scatter_entries", _scatter_impl, shape=_scatter_shape)
scatter_entries_p.defjvp(lambda t, ans, data, *, plan: scatter_entries_p.bind(t, plan=plan))
# Each input entry takes the cotangent of the slot it went to (summed over its copies).
scatter_entries_p.defvjp(lambda g, ans, data, *, plan: scatter_entries_p.bind(g, plan=plan.T))


def _apply(plan: Plan | None, data: Any) -> Any:
    """``data`` moved by ``plan`` (None or an identity plan: unchanged)."""
    if plan is None or plan.is_identity:
        return data
    return scatter_entries_p.bind(data, plan=plan)


def _matmul_impl(data: Any, x: Any, *, pattern: Pattern) -> np.ndarray:
    return pattern.to_scipy(data) @ x


def _matmul_vjp_data(g: Any, ans: Any, data: Any, x: Any, *, pattern: Pattern) -> Any:
    # dL/dA_ij = g_i x_j, needed only on the stored entries: O(nnz), never m x n.
    picked = getitem_p.bind(g, idx=(pattern.rows,)) * getitem_p.bind(x, idx=(pattern.cols,))
    return picked if len(shape_of(x)) == 1 else sum_(picked, axis=1)


sparse_matmul_p = Primitive(
    "sparse_matmul",
    _matmul_impl,
    shape=lambda data, x, *, pattern: ShapeDtype(
        (pattern.shape[0], *x.shape[1:]), np.result_type(data.dtype, x.dtype)
    ),
)
sparse_matmul_p.defjvp(
    lambda t, ans, data, x, *, pattern: sparse_matmul_p.bind(t, x, pattern=pattern),
    lambda t, ans, data, x, *, pattern: sparse_matmul_p.bind(data, t, pattern=pattern),
)
sparse_matmul_p.defvjp(
    _matmul_vjp_data,
    lambda g, ans, data, x, *, pattern: sparse_matmul_p.bind(data, g, pattern=pattern.T),
)

todense_p = Primitive(
    "sparse_todense",
    lambda data, *, pattern: pattern.to_scipy(data).toarray(),
    shape=lambda data, *, pattern: ShapeDtype(pattern.shape, data.dtype),
)
todense_p.defjvp(lambda t, ans, data, *, pattern: todense_p.bind(t, pattern=pattern))
todense_p.defvjp(
    lambda g, ans, data, *, pattern: getitem_p.bind(g, idx=(pattern.rows, pattern.cols))
)


# -- the array type ---------------------------------------------------------------------------
def _concrete(x: Any) -> Any:
    return x.concrete() if isinstance(x, Tracer) else x


def _is_scalar(x: Any) -> bool:
    return len(shape_of(x)) == 0 if isinstance(x, Tracer | np.ndarray) else np.ndim(x) == 0


def _as_dense(x: Any) -> Any:
    return x if isinstance(x, Tracer | np.ndarray) else np.asarray(x)


def _check_same_shape(a: SparseArray, b: SparseArray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"inconsistent shapes: {a.shape} and {b.shape}")


_UNARY = (
    "sin", "tan", "arcsin", "arctan", "sinh", "tanh", "arcsinh", "arctanh", "sqrt",
    "expm1", "log1p", "rint", "sign", "floor", "ceil", "trunc", "deg2rad", "rad2deg",
)  # fmt: skip


class SparseArray:
    """A 2-D sparse array (COO, CSR or CSC) whose stored values may be differentiated.

    Build one with :func:`coo_array`, :func:`csr_array` or :func:`csc_array` (SciPy's
    signatures). Products (``A @ x``, ``x @ A``, ``A @ B``), ``A.T``, arithmetic on the
    values (scalars, ``A.multiply``, ``A + B``, ``A.power``, ``abs``), ``diagonal``,
    ``sum``, row and column selection, ``toarray()`` and format conversions are
    differentiable in ``A.data`` and in the dense operands. Results follow SciPy's
    ``sparray`` semantics (``*`` is elementwise), except that the pattern of a result is
    structural: it never depends on the values, so entries that happen to be zero are kept.

    >>> import numpy, scigrad as sg, scigrad.scipy.sparse as sp
    >>> row, col = numpy.array([0, 0, 1, 1]), numpy.array([0, 1, 0, 1])
    >>> def f(v):
    ...     A = sp.coo_array((v, (row, col)), shape=(2, 2)).tocsr()
    ...     return (A @ numpy.ones(2)).sum()
    >>> sg.grad(f)(numpy.array([6.0, 1.0, 1.0, 3.0]))
    array([1., 1., 1., 1.])
    """

    __slots__ = ("data", "pattern")
    # NumPy defers binary operators with a SparseArray to its reflected methods.
    __array_ufunc__ = None

    def __init__(self, data: Any, pattern: Pattern) -> None:
        if shape_of(data) != (pattern.nnz,):
            raise ValueError(
                f"sparse data must be a 1-D array of {pattern.nnz} stored values, got shape "
                f"{shape_of(data)}"
            )
        if dtype_of(data).kind == "c":
            raise NotImplementedError("complex sparse values are not supported yet")
        self.data = data
        self.pattern = pattern

    # -- attributes ------------------------------------------------------------------------------
    @property
    def format(self) -> str:
        return self.pattern.format

    @property
    def shape(self) -> tuple[int, int]:
        return self.pattern.shape

    ndim = 2

    @property
    def nnz(self) -> int:
        """The number of stored entries (duplicates and explicit zeros included)."""
        return self.pattern.nnz

    @property
    def size(self) -> int:
        return self.pattern.nnz

    @property
    def dtype(self) -> np.dtype:
        return dtype_of(self.data)

    @property
    def indices(self) -> np.ndarray:
        """CSR: column of each entry; CSC: row of each entry (read-only)."""
        self._need("csr", "csc", attribute="indices")
        return self.pattern.indices

    @property
    def indptr(self) -> np.ndarray:
        self._need("csr", "csc", attribute="indptr")
        return self.pattern.indptr

    @property
    def row(self) -> np.ndarray:
        self._need("coo", attribute="row")
        return self.pattern.coo_row

    @property
    def col(self) -> np.ndarray:
        self._need("coo", attribute="col")
        return self.pattern.coo_col

    @property
    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        self._need("coo", attribute="coords")
        return self.pattern.coo_row, self.pattern.coo_col

    @property
    def has_canonical_format(self) -> bool:
        return self.pattern.has_canonical_format

    has_sorted_indices = has_canonical_format

    def _need(self, *formats: str, attribute: str) -> None:
        if self.format not in formats:
            raise AttributeError(f"a {self.format.upper()} sparse array has no {attribute!r}")

    def __repr__(self) -> str:
        traced = " (traced)" if isinstance(self.data, Tracer) else ""
        return (
            f"<{self.shape[0]}x{self.shape[1]} scigrad sparse array of dtype {self.dtype}, "
            f"{self.nnz} stored elements in {self.format.upper()} format{traced}>"
        )

    # -- conversions -----------------------------------------------------------------------------
    def asformat(self, fmt: str | None) -> SparseArray:
        if fmt is None or fmt == self.format and fmt != "coo":
            return self
        if fmt not in ("coo", "csr", "csc"):
            raise ValueError(f"unsupported sparse format {fmt!r} (use 'coo', 'csr' or 'csc')")
        pattern, plan = self.pattern.converted(fmt)
        return SparseArray(_apply(plan, self.data), pattern)

    def tocsr(self) -> SparseArray:
        """CSR with duplicates summed (each duplicate's derivative is its sum's)."""
        return self.asformat("csr")

    def tocsc(self) -> SparseArray:
        """CSC with duplicates summed (each duplicate's derivative is its sum's)."""
        return self.asformat("csc")

    def tocoo(self) -> SparseArray:
        return self if self.format == "coo" else self.asformat("coo")

    def toarray(self) -> Any:
        """The dense array (an explicit request: the only operation that densifies)."""
        return todense_p.bind(self.data, pattern=self.pattern)

    todense = toarray

    def to_scipy(self) -> sps.sparray:
        """A SciPy sparse array with the current values (no derivative attached)."""
        return self.pattern.to_scipy(np.asarray(_concrete(self.data)))

    def _canonical(self) -> SparseArray:
        """CSR/CSC (sorted, duplicates summed): ``self`` unless it is COO."""
        return self.tocsr() if self.format == "coo" else self

    def copy(self) -> SparseArray:
        """A copy (the pattern is immutable and shared)."""
        data = self.data.copy() if isinstance(self.data, np.ndarray) else self.data
        return SparseArray(data, self.pattern)

    def astype(self, dtype: Any, copy: bool = True) -> SparseArray:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"scigrad sparse arrays hold real floating values, not {dtype}")
        return self._with_data(snp.astype(self.data, dtype))

    def _deduped(self) -> SparseArray:
        """``self`` with duplicates summed (a canonical COO array if it is COO): what
        nonlinear operations on the values must see."""
        if self.format != "coo" or self.pattern.has_canonical_format:
            return self
        csr, plan = self.pattern.converted("csr")
        return SparseArray(_apply(plan, self.data), csr.converted("coo")[0])

    def sum_duplicates(self) -> None:
        """Sum duplicate entries and sort them, in place (as SciPy). Only a COO array can
        have duplicates; the derivative of each duplicate is that of its sum."""
        deduped = self._deduped()
        self.data, self.pattern = deduped.data, deduped.pattern

    def eliminate_zeros(self) -> None:
        """Remove stored zeros, in place (as SciPy) — but only from untraced arrays.

        The pattern of a traced array is never changed: a stored value that is zero now
        still has a derivative (it moves if the parameters move), and a pattern that
        depended on values would change between iterations and defeat every cached plan.
        On traced values this is therefore a no-op (the values are unaffected either way).
        """
        if isinstance(self.data, Tracer):
            return
        keep = np.flatnonzero(np.asarray(self.data) != 0)
        if keep.shape[0] == self.nnz:
            return
        self.data = np.asarray(self.data)[keep]
        self.pattern = self.pattern.subset(keep)[0]

    def count_nonzero(self) -> int:
        """The number of nonzero values (duplicates summed first; no derivative)."""
        values = np.asarray(_concrete(self.data))
        if self.format == "coo" and not self.pattern.has_canonical_format:
            values = _scatter_impl(values, plan=self.pattern.converted("csr")[1])
        return int(np.count_nonzero(values))

    # -- structure-preserving arithmetic ---------------------------------------------------------
    def _with_data(self, data: Any) -> SparseArray:
        return SparseArray(data, self.pattern)

    @property
    def T(self) -> SparseArray:
        """The transpose: the same stored values on the transposed pattern (no work)."""
        return SparseArray(self.data, self.pattern.T)

    def transpose(self, axes: Any = None) -> SparseArray:
        if axes is not None and tuple(axes) != (1, 0):
            raise ValueError("sparse arrays transpose with axes=None or (1, 0) only")
        return self.T

    def conj(self) -> SparseArray:
        return self

    conjugate = conj

    @property
    def real(self) -> SparseArray:
        return self

    def __neg__(self) -> SparseArray:
        return self._with_data(-self.data)

    def __pos__(self) -> SparseArray:
        return self

    def __abs__(self) -> SparseArray:
        a = self._deduped()
        return a._with_data(snp.abs(a.data))

    def power(self, n: Any, dtype: Any = None) -> SparseArray:
        """The stored values raised to the scalar power ``n`` (``n == 0`` is refused, as in
        SciPy: it would densify)."""
        if not _is_scalar(n):
            raise ValueError("sparse power: the exponent must be a scalar")
        if not isinstance(n, Tracer) and n == 0:
            raise NotImplementedError(
                "zero power is not supported as it would densify the matrix. Use "
                "`np.ones(A.shape, dtype=A.dtype)` for this case."
            )
        a = self._deduped()
        out = a._with_data(snp.power(a.data, n))
        return out if dtype is None else out.astype(dtype)

    def __pow__(self, n: Any) -> SparseArray:
        return self.power(n)

    def _dense_entries(self, d: Any) -> Any:
        """The entries of the dense ``d`` (broadcast against this array) at the stored
        positions: ``d[row, col]`` for every stored entry (a scalar stays a scalar)."""
        d = _as_dense(d)
        shape = shape_of(d)
        if not shape:
            return d
        try:
            ok = len(shape) <= 2 and np.broadcast_shapes(shape, self.shape) == self.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"inconsistent shapes: sparse array {self.shape} and dense operand {shape}"
            )
        p = self.pattern
        if len(shape) == 1:
            shape = (1, shape[0])
            d = snp.reshape(d, shape)
        # A broadcast axis (length 1) is read at index 0 for every entry.
        rows = p.rows if shape[0] != 1 else np.zeros(p.nnz, dtype=np.int64)
        cols = p.cols if shape[1] != 1 else np.zeros(p.nnz, dtype=np.int64)
        return getitem_p.bind(d, idx=(rows, cols))

    def multiply(self, other: Any) -> SparseArray:
        """Elementwise product. With a sparse array: on the intersection of the two patterns
        (canonical form, duplicates summed); with a dense array (broadcast as NumPy) or a
        scalar: on this array's pattern."""
        b = _sparse_operand(other)
        if b is None:
            if _is_scalar(other):
                return self._with_data(self.data * other)
            return self._with_data(self.data * self._dense_entries(other))
        _check_same_shape(self, b)
        if b.pattern is self.pattern:
            return self._with_data(self.data * b.data)
        a = self._canonical()
        b = b.asformat(a.format)
        pattern, pa, pb = a.pattern.paired(
            "multiply", b.pattern, lambda: intersection(a.pattern, b.pattern)
        )
        return SparseArray(_apply(pa, a.data) * _apply(pb, b.data), pattern)

    def __mul__(self, other: Any) -> Any:
        if type(other) is float or type(other) is int:  # the common case first
            return self._with_data(self.data * other)
        return self.multiply(other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Any:
        if _is_scalar(other) and not isinstance(other, SparseArray):
            return self._with_data(self.data / other)
        if _sparse_operand(other) is not None:
            raise NotImplementedError(
                "dividing by a sparse array is not supported (0/0 off the pattern); use "
                "A.multiply(B.power(-1)) to divide on the common pattern"
            )
        # As SciPy: the result stays on this array's pattern.
        return self._with_data(self.data / self._dense_entries(other))

    def _add(self, other: Any, sign: float) -> Any:
        b = _sparse_operand(other)
        if b is not None:
            _check_same_shape(self, b)
            if b.pattern is self.pattern:
                pattern, x, y = self.pattern, self.data, b.data
            else:
                fmt = self.pattern.canonical_format
                pattern, pa, pb = self.pattern.paired(
                    "add", b.pattern, lambda: union(self.pattern, b.pattern, fmt)
                )
                x, y = _apply(pa, self.data), _apply(pb, b.data)
            return SparseArray(x + y if sign > 0 else x - y, pattern)
        if _is_scalar(other):
            if not isinstance(other, Tracer) and other == 0:
                return self.copy()
            raise NotImplementedError(
                "adding a nonzero scalar to a sparse array is not supported (it would make "
                "every entry nonzero); add it to the stored values instead"
            )
        d = _as_dense(other)
        try:
            ok = np.broadcast_shapes(shape_of(d), self.shape) == self.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"inconsistent shapes: sparse array {self.shape} and dense operand {shape_of(d)}"
            )
        # The result is dense (as SciPy's): densifying is what was asked for.
        return self.toarray() + d if sign > 0 else self.toarray() - d

    def __add__(self, other: Any) -> Any:
        """``A + B`` (sparse: on the union of the patterns), ``A + dense`` (dense)."""
        return self._add(other, 1.0)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        return self._add(other, -1.0)

    def __rsub__(self, other: Any) -> Any:
        return (-self)._add(other, 1.0)

    # -- reductions and selections ---------------------------------------------------------------
    def sum(self, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
        """Sum of the stored values: a scalar, or a dense 1-D array of column (``axis=0``)
        or row (``axis=1``) sums. O(nnz)."""
        if out is not None:
            raise TypeError("sparse sum: out= is not supported")
        if axis is None:
            res = sum_(self.data)
        else:
            res = _apply(self.pattern.sum_plan(_axis(axis)), self.data)
        return res if dtype is None else snp.astype(res, dtype)

    def mean(self, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
        """Mean over all entries (zeros included) or along an axis, as SciPy."""
        m, n = self.shape
        count = m * n if axis is None else (m if _axis(axis) == 0 else n)
        return self.sum(axis, dtype, out) / count

    def diagonal(self, k: int = 0) -> Any:
        """The ``k``-th diagonal as a dense 1-D array (unstored entries are zero). O(nnz)."""
        return _apply(self.pattern.diagonal_plan(int(k)), self.data)

    def trace(self, offset: int = 0) -> Any:
        return sum_(self.diagonal(offset))

    def __getitem__(self, key: Any) -> Any:
        """Row/column selection as SciPy: ``A[rows]``, ``A[:, cols]``, ``A[rows][:, cols]``,
        ``A[np.ix_(rows, cols)]``, slices and masks give a sparse array; ``A[i, j]`` a
        scalar. The plan (which entries survive, in which order) is cached per index."""
        key = _concrete_index(key)
        a = self._canonical()
        pattern, plan = a.pattern.selection(key)
        if pattern is None:  # a single element; ``plan`` is its entry (None: not stored)
            if plan is None:
                return np.zeros((), a.dtype)[()]
            return getitem_p.bind(a.data, idx=(plan,))
        if pattern is a.pattern:
            return a
        return SparseArray(_apply(plan, a.data), pattern)

    def __iter__(self) -> Any:
        raise TypeError("scigrad sparse arrays are not iterable: select rows with A[[i]] or A[i:j]")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError(
            "scigrad sparse arrays are immutable (their pattern is static): build the "
            "modified matrix instead, e.g. select rows/columns with A[idx][:, idx], add "
            "sp.diags(...) or another sparse array, or assemble from triplets"
        )

    # -- products ----------------------------------------------------------------------------------
    def __matmul__(self, other: Any) -> Any:
        b = _sparse_operand(other)
        if b is not None:
            return _sparse_product(self, b)
        other = _as_dense(other)
        ndim = len(shape_of(other))
        if ndim not in (1, 2) or shape_of(other)[0] != self.shape[1]:
            raise ValueError(
                f"matmul: sparse array of shape {self.shape} times operand of shape "
                f"{shape_of(other)} (dimension mismatch)"
            )
        return sparse_matmul_p.bind(self.data, other, pattern=self.pattern)

    def __rmatmul__(self, other: Any) -> Any:
        b = _sparse_operand(other)
        if b is not None:
            return _sparse_product(b, self)
        other = _as_dense(other)
        ndim = len(shape_of(other))
        if ndim not in (1, 2) or shape_of(other)[-1] != self.shape[0]:
            raise ValueError(
                f"matmul: operand of shape {shape_of(other)} times sparse array of shape "
                f"{self.shape} (dimension mismatch)"
            )
        # x @ A = (A.T @ x.T).T
        if ndim == 1:
            return self.T @ other
        return (self.T @ other.T).T

    def dot(self, other: Any) -> Any:
        return self @ other


def _unary_method(name: str) -> Any:
    def method(self: SparseArray) -> SparseArray:
        a = self._deduped()
        return a._with_data(getattr(snp, name)(a.data))

    method.__name__ = name
    method.__doc__ = f"``{name}`` of the stored values (``{name}(0) == 0``: same pattern)."
    return method


for _name in _UNARY:
    setattr(SparseArray, _name, _unary_method(_name))


register_pytree_node(
    SparseArray, lambda a: ((a.data,), a.pattern), lambda p, c: SparseArray(c[0], p)
)


def issparse(x: Any) -> bool:
    """True for scigrad and SciPy sparse arrays and matrices."""
    return isinstance(x, SparseArray) or sps.issparse(x)


def _axis(axis: Any) -> int:
    a = int(axis)
    if a not in (-2, -1, 0, 1):
        raise np.exceptions.AxisError(a, 2)
    return a % 2


def _concrete_index(key: Any) -> Any:
    """Index components made concrete (indices carry no derivative); lists made arrays."""
    parts = key if isinstance(key, tuple) else (key,)
    out = []
    for k in parts:
        if isinstance(k, Tracer):
            k = k.concrete()
        if isinstance(k, list):
            k = np.asarray(k) if k else np.zeros(0, np.int64)
        if isinstance(k, float | np.floating) or (
            isinstance(k, np.ndarray) and k.dtype.kind not in "iub"
        ):
            raise IndexError(
                "sparse indices must be integers, slices, or integer or boolean arrays"
            )
        out.append(k)
    return tuple(out) if isinstance(key, tuple) else out[0]


def _sparse_product(a: SparseArray, b: SparseArray) -> SparseArray:
    """``A @ B`` for two sparse arrays: CSR, on the structural product pattern."""
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"matmul: sparse arrays of shapes {a.shape} and {b.shape} (dimension mismatch)"
        )
    pattern, ga, gb, plan = a.pattern.paired(
        "matmul", b.pattern, lambda: product(a.pattern, b.pattern)
    )
    pairs = scatter_entries_p.bind(a.data, plan=ga) * scatter_entries_p.bind(b.data, plan=gb)
    return SparseArray(_apply(plan, pairs), pattern)


def _sparse_operand(x: Any) -> SparseArray | None:
    """``x`` as a SparseArray if it is sparse (scigrad or SciPy), else None."""
    if isinstance(x, SparseArray):
        return x
    if sps.issparse(x):
        fmt = x.format if x.format in ("coo", "csr", "csc") else "csr"
        return _from_scipy(x, fmt)
    return None


# -- constructors -------------------------------------------------------------------------------
# Canonical SciPy CSR/CSC inputs get a cached pattern (keyed by the identity of their index
# arrays), so a constant SciPy matrix used every iteration pairs with cached plans.
_SCIPY_CACHE: dict[tuple, tuple[Any, Any, Pattern]] = {}
_SCIPY_CACHE_SIZE = 64


def _scipy_values(a: Any) -> np.ndarray:
    data = np.asarray(a.data)
    return data.astype(float) if data.dtype.kind in "iub" else data


def _from_scipy(a: Any, fmt: str) -> SparseArray:
    if fmt != "coo" and a.format == fmt and a.has_canonical_format:
        key = (id(a.indices), id(a.indptr), a.shape, fmt)
        hit = _SCIPY_CACHE.get(key)
        if hit is not None and hit[0] is a.indices and hit[1] is a.indptr:
            return SparseArray(_scipy_values(a), hit[2])
        pattern = Pattern(fmt, a.shape, a.indptr.astype(np.int64), a.indices.astype(np.int64))
        if len(_SCIPY_CACHE) >= _SCIPY_CACHE_SIZE:
            _SCIPY_CACHE.pop(next(iter(_SCIPY_CACHE)))
        _SCIPY_CACHE[key] = (a.indices, a.indptr, pattern)
        return SparseArray(_scipy_values(a), pattern)
    a = a.asformat(fmt)
    if fmt == "coo":
        return SparseArray(_scipy_values(a), coo_pattern(a.coords[0], a.coords[1], a.shape))
    a = a.copy()
    a.sum_duplicates()
    a.sort_indices()
    pattern = Pattern(fmt, a.shape, a.indptr.astype(np.int64), a.indices.astype(np.int64))
    return SparseArray(_scipy_values(a), pattern)


def _from_dense(x: Any, fmt: str) -> SparseArray:
    values = np.asarray(_concrete(x))
    if values.ndim != 2:
        raise ValueError(f"a sparse array must be 2-D, got shape {values.shape}")
    row, col = np.nonzero(values)
    pattern = coo_pattern(row, col, values.shape)
    # The derivative flows through the stored (nonzero) entries only: structural zeros stay
    # zero, as in SciPy.
    data = (
        getitem_p.bind(x, idx=(pattern.rows, pattern.cols))
        if isinstance(x, Tracer)
        else (values[row, col].astype(float))
    )
    return SparseArray(data, pattern).asformat(fmt) if fmt != "coo" else SparseArray(data, pattern)


def _construct(arg: Any, shape: Any, fmt: str) -> SparseArray:
    if isinstance(arg, SparseArray):
        return arg.asformat(fmt) if fmt != "coo" else arg.tocoo()
    if sps.issparse(arg):
        return _from_scipy(arg, fmt)
    if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[1], tuple | list):
        data, (row, col) = arg[0], arg[1]
        pattern = coo_pattern(row, col, shape)
        coo = SparseArray(_as_values(data, pattern.nnz), pattern)
        return coo if fmt == "coo" else coo.asformat(fmt)
    if isinstance(arg, tuple) and len(arg) == 3 and fmt in ("csr", "csc"):
        data, indices, indptr = arg
        if shape is None:
            raise ValueError(f"{fmt}_array((data, indices, indptr)) needs shape=")
        ref = (sps.csr_array if fmt == "csr" else sps.csc_array)(
            (np.arange(1, len(indices) + 1, dtype=float), indices, indptr), shape=shape
        )
        ref.check_format(full_check=True)
        # Canonicalize (sort, sum duplicates) through a plan on entry positions.
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        row, col = (major, np.asarray(indices)) if fmt == "csr" else (np.asarray(indices), major)
        return _construct((data, (row, col)), shape, fmt)
    if isinstance(arg, tuple) and len(arg) == 2 and all(isinstance(s, int) for s in arg):
        empty = np.zeros(0, dtype=np.int64)
        return _construct((np.zeros(0), (empty, empty)), arg, fmt)
    return _from_dense(arg, fmt)


def _as_values(data: Any, nnz: int) -> Any:
    if not isinstance(data, Tracer):
        data = np.asarray(data)
        if data.dtype.kind in "iub":
            data = data.astype(float)
    if shape_of(data) != (nnz,):
        raise ValueError(f"got {shape_of(data)} values for {nnz} (row, col) index pairs")
    return data


def coo_array(arg: Any, shape: tuple[int, int] | None = None) -> SparseArray:
    """A COO sparse array, as ``scipy.sparse.coo_array``: ``coo_array((data, (row, col)),
    shape)``, from a SciPy sparse array, or from a dense 2-D array. Duplicate entries are kept
    (summed by ``tocsr``/``tocsc`` and by products), and ``data`` may be traced."""
    return _construct(arg, shape, "coo")


def csr_array(arg: Any, shape: tuple[int, int] | None = None) -> SparseArray:
    """A CSR sparse array, as ``scipy.sparse.csr_array``: from ``(data, (row, col))``
    (duplicates summed), ``(data, indices, indptr)``, a SciPy sparse array, or a dense array."""
    return _construct(arg, shape, "csr")


def csc_array(arg: Any, shape: tuple[int, int] | None = None) -> SparseArray:
    """A CSC sparse array, as ``scipy.sparse.csc_array`` (same forms as :func:`csr_array`)."""
    return _construct(arg, shape, "csc")
