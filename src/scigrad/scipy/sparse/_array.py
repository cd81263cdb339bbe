"""Sparse arrays whose stored values are differentiable, on a static pattern.

``SparseArray(data, pattern)``: ``data`` is a 1-D array (plain or traced) of the stored
values, in the order of ``pattern``. Operations are written as primitives on ``data`` with
the pattern as a static parameter, so every cotangent of a sparse matrix is again a vector
of ``nnz`` values on the same pattern: no rule ever forms a dense ``n x n`` array unless the
user asks for one (``toarray``).

A ``SparseArray`` is a pytree with one leaf, ``data``: ``sg.grad`` of a function of a
sparse matrix returns a sparse matrix of cotangents on the same pattern.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sps

from ...core.primitive import Primitive, ShapeDtype, Tracer
from ...core.tree import register_pytree_node
from ...numpy._indexing import getitem_p
from ...numpy._reductions import sum as sum_
from ...numpy._util import dtype_of, shape_of
from ._pattern import Pattern, Plan, coo_pattern

__all__ = ["SparseArray", "coo_array", "csc_array", "csr_array", "issparse"]


# -- primitives ---------------------------------------------------------------------------------
def _scatter_impl(data: Any, *, plan: Plan) -> np.ndarray:
    if plan.is_permutation:
        out = np.empty(plan.size, dtype=dtype_of(data))
        out[plan.target] = data
        return out
    return np.bincount(plan.target, weights=data, minlength=plan.size).astype(
        dtype_of(data), copy=False
    )


# ``out[plan.target[k]] += data[k]``: conversions, duplicate sums, selections, reductions.
scatter_entries_p = Primitive(
    "sparse_scatter_entries",
    _scatter_impl,
    shape=lambda data, *, plan: ShapeDtype((plan.size,), data.dtype),
)
scatter_entries_p.defjvp(lambda t, ans, data, *, plan: scatter_entries_p.bind(t, plan=plan))
# Transpose of a scatter-add: each input entry takes the cotangent of the slot it went to.
scatter_entries_p.defvjp(lambda g, ans, data, *, plan: getitem_p.bind(g, idx=(plan.target,)))


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


class SparseArray:
    """A 2-D sparse array (COO, CSR or CSC) whose stored values may be differentiated.

    Build one with :func:`coo_array`, :func:`csr_array` or :func:`csc_array` (SciPy's
    signatures). ``A @ x``, ``x @ A``, ``A.T``, scalar arithmetic, ``toarray()`` and format
    conversions are differentiable in ``A.data`` and in the dense operands.

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
        return self.pattern.nnz

    @property
    def dtype(self) -> np.dtype:
        return dtype_of(self.data)

    def __repr__(self) -> str:
        traced = " (traced)" if isinstance(self.data, Tracer) else ""
        return (
            f"<{self.shape[0]}x{self.shape[1]} scigrad sparse array of dtype {self.dtype}, "
            f"{self.nnz} stored elements in {self.format.upper()} format{traced}>"
        )

    # -- conversions -----------------------------------------------------------------------------
    def asformat(self, fmt: str) -> SparseArray:
        if fmt == self.format and fmt != "coo":
            return self
        pattern, plan = self.pattern.converted(fmt)
        return SparseArray(scatter_entries_p.bind(self.data, plan=plan), pattern)

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

    # -- structure-preserving arithmetic ---------------------------------------------------------
    def _with_data(self, data: Any) -> SparseArray:
        return SparseArray(data, self.pattern)

    @property
    def T(self) -> SparseArray:
        """The transpose: the same stored values on the transposed pattern (no work)."""
        return SparseArray(self.data, self.pattern.T)

    def transpose(self) -> SparseArray:
        return self.T

    def __neg__(self) -> SparseArray:
        return self._with_data(-self.data)

    def __pos__(self) -> SparseArray:
        return self

    def __mul__(self, other: Any) -> Any:
        if np.ndim(_concrete(other)) == 0 and not isinstance(other, SparseArray):
            return self._with_data(self.data * other)
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Any:
        if np.ndim(_concrete(other)) == 0 and not isinstance(other, SparseArray):
            return self._with_data(self.data / other)
        return NotImplemented

    # -- products ----------------------------------------------------------------------------------
    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, SparseArray):
            return NotImplemented
        ndim = len(shape_of(other))
        if ndim not in (1, 2) or shape_of(other)[0] != self.shape[1]:
            raise ValueError(
                f"matmul: sparse array of shape {self.shape} times operand of shape "
                f"{shape_of(other)} (dimension mismatch)"
            )
        return sparse_matmul_p.bind(self.data, other, pattern=self.pattern)

    def __rmatmul__(self, other: Any) -> Any:
        # x @ A = (A.T @ x.T).T
        other_t = other if len(shape_of(other)) == 1 else other.T
        out = self.T @ other_t
        return out if len(shape_of(other)) == 1 else out.T

    def dot(self, other: Any) -> Any:
        return self @ other


register_pytree_node(
    SparseArray, lambda a: ((a.data,), a.pattern), lambda p, c: SparseArray(c[0], p)
)


def issparse(x: Any) -> bool:
    """True for scigrad and SciPy sparse arrays and matrices."""
    return isinstance(x, SparseArray) or sps.issparse(x)


# -- constructors -------------------------------------------------------------------------------
def _from_scipy(a: Any, fmt: str) -> SparseArray:
    a = a.asformat(fmt)
    if fmt == "coo":
        return SparseArray(np.asarray(a.data), coo_pattern(a.coords[0], a.coords[1], a.shape))
    a = a.copy()
    a.sum_duplicates()
    a.sort_indices()
    pattern = Pattern(fmt, a.shape, a.indptr.astype(np.int64), a.indices.astype(np.int64))
    return SparseArray(np.asarray(a.data), pattern)


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
        else (values[row, col])
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
