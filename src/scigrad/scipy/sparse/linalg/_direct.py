"""Direct sparse solvers: ``spsolve``, ``splu``, ``factorized`` (SciPy's names and signatures).

A sparse matrix is factorized once, from the plain values of its stored entries, and every
derivative reuses that factorization:

* forward mode: ``A x = b``  =>  ``A x' = b' - A' x``: one more solve with the same factor;
* reverse mode: ``lambda = A^{-T} g`` (one solve with the same factor, transposed), then
  ``b_bar = lambda`` and ``A_bar = -lambda x^T``, formed only on the stored entries of ``A``
  (``-lambda[row] * x[col]``: O(nnz), never ``n x n``; summed over the columns of several
  right-hand sides).

Both rules are written with scigrad operations and the solve primitive itself, so second
derivatives (Hessians, Hessian-vector products) again reuse the one factorization.

Backends (``solver=``): ``"superlu"`` (SciPy's SuperLU, always available) and ``"cholmod"``
(a sparse Cholesky factorization for symmetric positive definite matrices, from the optional
wheels ``sksparse-minimal`` or ``cholespy``). With ``solver=None`` (the default) CHOLMOD is
used when it is installed and ``A`` is exactly symmetric with a positive diagonal, falling
back to SuperLU if the Cholesky factorization finds ``A`` not positive definite.

Bad input raises: a non-square ``A`` or a ``b`` of the wrong length (``ValueError``), NaN or
inf in ``A`` or ``b`` (``ValueError``), a singular or structurally singular ``A``
(:class:`numpy.linalg.LinAlgError`); a solve whose result is not finite raises rather than
return NaN values or NaN gradients. All computations are in float64.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla
from numpy.linalg import LinAlgError

from ....core.primitive import Primitive, ShapeDtype, Tracer
from ....numpy._indexing import getitem_p
from ....numpy._reductions import sum as sum_
from ....numpy._shape import reshape
from ....numpy._util import dtype_of, shape_of
from .._array import SparseArray, csc_array, sparse_matmul_p
from .._pattern import Pattern

__all__ = ["SparseLU", "factorized", "splu", "spsolve"]

_SOLVERS = ("superlu", "cholmod")
_FLIP = {"N": "T", "T": "N"}


def _concrete(x: Any) -> Any:
    return x.concrete() if isinstance(x, Tracer) else x


# -- factorizations (plain values in, plain solves out) ---------------------------------------
class _SuperLUFactor:
    """SciPy's SuperLU factorization; solves with ``A`` or ``A^T``."""

    __slots__ = ("lu",)
    name = "superlu"

    def __init__(self, lu: Any) -> None:
        self.lu = lu

    def solve(self, b: np.ndarray, trans: str) -> np.ndarray:
        return self.lu.solve(b, trans)

    def __repr__(self) -> str:
        return f"<SuperLU factorization of a {self.lu.shape[0]}x{self.lu.shape[1]} matrix>"


class _CholmodFactor:
    """A CHOLMOD Cholesky factorization of a symmetric matrix (``A^T = A``: trans ignored)."""

    __slots__ = ("solve_a", "n")
    name = "cholmod"

    def __init__(self, solve_a: Callable[[np.ndarray], np.ndarray], n: int) -> None:
        self.solve_a = solve_a
        self.n = n

    def solve(self, b: np.ndarray, trans: str) -> np.ndarray:
        return self.solve_a(np.ascontiguousarray(b))

    def __repr__(self) -> str:
        return f"<CHOLMOD factorization of a {self.n}x{self.n} matrix>"


def _superlu(pattern: Pattern, values: np.ndarray, where: str, options: dict) -> _SuperLUFactor:
    # ``spla.splu`` is looked up at call time (tests count factorizations by patching it).
    matrix = pattern.to_scipy(values)
    try:
        lu = spla.splu(matrix, **options)
    except RuntimeError as e:
        if "singular" not in str(e).lower():
            raise
        raise LinAlgError(
            f"{where}: the {pattern.shape[0]}x{pattern.shape[1]} matrix is singular (SuperLU: "
            f"{e}); the linear system has no unique solution. Check for zero or structurally "
            "empty rows and columns (an unconstrained degree of freedom, a missing boundary "
            "condition)."
        ) from None
    return _SuperLUFactor(lu)


_CHOLMOD: list[Any] = []  # [backend or None], resolved on first use


def _cholmod_backend() -> Any:
    """``(package name, factorize(csc_matrix) -> solve)`` for an installed CHOLMOD wheel, or
    None. ``sksparse-minimal`` is tried first, then ``cholespy``."""
    if _CHOLMOD:
        return _CHOLMOD[0]
    backend = None
    try:
        from sksparse_minimal import SparseCholesky

        def factorize(m: Any) -> Callable:
            chol = SparseCholesky(sps.csc_matrix(m))
            # Small matrices get an LDL^T factorization, which also succeeds (without
            # pivoting, so possibly inaccurately) on symmetric indefinite ones: demand D > 0.
            d_inv = chol.solve_D(np.ones(m.shape[0]))
            if not (np.isfinite(d_inv).all() and np.all(d_inv > 0)):
                raise ValueError("the matrix is not positive definite")
            return chol.solve_A

        backend = ("sksparse-minimal", factorize)
    except ImportError:
        try:
            import cholespy

            def factorize(m: Any) -> Callable:
                m = sps.csc_matrix(m)
                solver = cholespy.CholeskySolverD(
                    m.shape[0],
                    m.indptr.astype(np.int32),
                    m.indices.astype(np.int32),
                    np.ascontiguousarray(m.data, dtype=np.float64),
                    cholespy.MatrixType.CSC,
                )

                def solve_a(b: np.ndarray) -> np.ndarray:
                    x = np.zeros(b.shape, np.float64)
                    solver.solve(np.ascontiguousarray(b, dtype=np.float64), x)
                    return x

                return solve_a

            backend = ("cholespy", factorize)
        except ImportError:
            backend = None
    _CHOLMOD.append(backend)
    return backend


def _cholmod_factorize(pattern: Pattern, values: np.ndarray, where: str) -> _CholmodFactor:
    _, factorize = _cholmod_backend()
    try:
        solve_a = factorize(pattern.to_scipy(values))
    except (ValueError, RuntimeError) as e:
        raise LinAlgError(
            f"{where}: CHOLMOD could not factorize the matrix ({e}); solver='cholmod' needs a "
            "symmetric positive definite matrix (use solver='superlu' otherwise)"
        ) from None
    return _CholmodFactor(solve_a, pattern.shape[0])


def _symmetry(pattern: Pattern) -> tuple[np.ndarray | None, np.ndarray | None]:
    """For a canonical CSC pattern: the permutation taking each entry ``(i, j)`` to the entry
    ``(j, i)`` (None if the pattern is not structurally symmetric), and the positions of the
    diagonal entries (None unless all ``n`` are stored). Computed once per pattern."""
    hit = pattern.cache.get("symmetry")
    if hit is None:
        n = pattern.shape[0]
        rows, cols = pattern.rows, pattern.cols
        keys = cols * n + rows  # ascending: CSC entries are sorted by (column, row)
        tkeys = rows * n + cols
        pos = np.minimum(np.searchsorted(keys, tkeys), max(len(keys) - 1, 0))
        perm = pos if len(keys) and np.array_equal(keys[pos], tkeys) else None
        diag = np.flatnonzero(rows == cols)
        hit = pattern.cache["symmetry"] = (perm, diag if len(diag) == n else None)
    return hit


def _spd_candidate(pattern: Pattern, values: np.ndarray) -> bool:
    """``A`` exactly symmetric with a positive diagonal (necessary for SPD; O(nnz))."""
    perm, diag = _symmetry(pattern)
    return (
        perm is not None
        and diag is not None
        and bool(np.all(values[diag] > 0))
        and np.array_equal(values, values[perm])
    )


def _factorize(A: SparseArray, where: str, solver: str | None, options: dict) -> Any:
    """Factorize the CSC matrix ``A`` (its plain values) with the requested backend."""
    if solver is not None and solver not in _SOLVERS:
        raise ValueError(f"{where}: solver must be one of {_SOLVERS} or None, got {solver!r}")
    values = np.asarray(_concrete(A.data), dtype=np.float64)
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ValueError(
            f"{where}: the matrix contains NaN or inf values ({bad} of its {A.nnz} stored entries)"
        )
    if solver == "superlu" or (solver is None and (options or _cholmod_backend() is None)):
        return _superlu(A.pattern, values, where, options)
    if solver == "cholmod":
        if _cholmod_backend() is None:
            raise ImportError(
                f"{where}: solver='cholmod' needs the optional package 'sksparse-minimal' "
                "(pip install sksparse-minimal) or 'cholespy'; neither is installed"
            )
        if not _spd_candidate(A.pattern, values):
            raise ValueError(
                f"{where}: solver='cholmod' needs a symmetric positive definite matrix; this "
                "one is not exactly symmetric or has a non-positive diagonal entry "
                "(use solver='superlu')"
            )
        return _cholmod_factorize(A.pattern, values, where)
    # Automatic choice: CHOLMOD for symmetric matrices with a positive diagonal.
    if _spd_candidate(A.pattern, values):
        try:
            return _cholmod_factorize(A.pattern, values, where)
        except LinAlgError:
            pass  # symmetric but not positive definite: LU handles it
    return _superlu(A.pattern, values, where, options)


# -- the solve primitive ----------------------------------------------------------------------
def _nonfinite(b: np.ndarray, where: str) -> Exception:
    if not np.isfinite(b).all():
        return ValueError(
            f"{where}: the right-hand side contains NaN or inf values (in a derivative pass: the "
            "tangent or cotangent reaching the solve is not finite)"
        )
    return LinAlgError(
        f"{where}: the solution is not finite: the matrix is singular or too ill-conditioned "
        "to solve in floating point"
    )


def _solve_impl(data: Any, b: Any, *, pattern: Pattern, factor: Any, trans: str) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    if b.size == 0:
        return np.zeros(b.shape)
    x = factor.solve(b, trans)
    if not np.isfinite(x).all():
        raise _nonfinite(b, "sparse solve")
    return x


def _solve_jvp(tangents, ans, data, b, *, pattern: Pattern, factor: Any, trans: str) -> Any:
    t_data, t_b = tangents
    rhs = t_b
    if t_data is not None:
        # A x = b  =>  A dx = db - dA x   (A^T dx = db - dA^T x for trans="T")
        da_x = sparse_matmul_p.bind(t_data, ans, pattern=pattern if trans == "N" else pattern.T)
        rhs = -da_x if rhs is None else rhs - da_x
    if rhs is None:
        return None
    return sparse_lu_solve_p.bind(data, rhs, pattern=pattern, factor=factor, trans=trans)


def _solve_vjp(g, ans, needs, data, b, *, pattern: Pattern, factor: Any, trans: str) -> list:
    # One adjoint solve with the same factorization, transposed: lam = A^{-T} g.
    lam = sparse_lu_solve_p.bind(data, g, pattern=pattern, factor=factor, trans=_FLIP[trans])
    g_data = None
    if needs[0]:
        # dL/dA = -lam x^T (trans="N") or -x lam^T (trans="T"), on the stored entries only.
        r, c = (pattern.rows, pattern.cols) if trans == "N" else (pattern.cols, pattern.rows)
        g_data = -(getitem_p.bind(lam, idx=(r,)) * getitem_p.bind(ans, idx=(c,)))
        if len(shape_of(ans)) == 2:
            g_data = sum_(g_data, axis=1)
    return [g_data, lam if needs[1] else None]


# x = A^{-1} b (trans="N") or A^{-T} b (trans="T") for the CSC matrix A = (data, pattern),
# given its factorization ``factor`` (computed once from data's plain values). ``data`` is
# not read by the impl: it carries the derivative with respect to A's stored values.
sparse_lu_solve_p = Primitive(
    "sparse_lu_solve",
    _solve_impl,
    shape=lambda data, b, *, pattern, factor, trans: ShapeDtype(b.shape, np.dtype(np.float64)),
)
sparse_lu_solve_p.defjvp_joint(_solve_jvp)
sparse_lu_solve_p.defvjp_joint(_solve_vjp)


# -- argument checks --------------------------------------------------------------------------
def _as_csc(A: Any, where: str) -> SparseArray:
    """``A`` as a square scigrad CSC array (differentiable conversion from any format)."""
    if isinstance(A, SparseArray):
        A = A.tocsc()
    elif sps.issparse(A):
        A = csc_array(A)
    else:
        if len(shape_of(A)) != 2:
            raise ValueError(f"{where}: A must be a 2-D sparse matrix, got shape {shape_of(A)}")
        warnings.warn(
            f"{where} requires a sparse A (a dense one is converted, keeping its nonzeros)",
            sps.SparseEfficiencyWarning,
            stacklevel=3,
        )
        A = csc_array(A)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"{where}: matrix must be square (has shape {A.shape})")
    return A


def _check_rhs(b: Any, n: int, where: str) -> Any:
    if sps.issparse(b) or isinstance(b, SparseArray):
        raise TypeError(
            f"{where}: b must be a dense vector or matrix; a sparse right-hand side would be "
            "densified by the solve: pass b.toarray() explicitly"
        )
    if not isinstance(b, Tracer):
        b = np.asarray(b)
        if b.dtype.kind not in "biuf":
            raise TypeError(f"{where}: b must be a real array, got dtype {b.dtype}")
    sb = shape_of(b)
    if len(sb) not in (1, 2):
        raise ValueError(f"{where}: b must be a vector (n,) or a matrix (n, k), got shape {sb}")
    if sb[0] != n:
        raise ValueError(
            f"{where}: matrix - rhs dimension mismatch: A is {n}x{n} but b has shape {sb} "
            f"(b must have {n} rows)"
        )
    if dtype_of(b).kind == "c":
        raise TypeError(f"{where}: complex right-hand sides are not supported")
    if not np.isfinite(np.asarray(_concrete(b), dtype=np.float64)).all():
        raise ValueError(f"{where}: b contains NaN or inf values")
    return b


def _check_trans(trans: str) -> str:
    if trans not in ("N", "T", "H"):
        raise ValueError(f"trans must be 'N', 'T' or 'H', got {trans!r}")
    return "T" if trans == "H" else trans  # real matrices: A^H = A^T


def _solve(A: SparseArray, factor: Any, b: Any, trans: str, where: str) -> Any:
    b = _check_rhs(b, A.shape[0], where)
    return sparse_lu_solve_p.bind(A.data, b, pattern=A.pattern, factor=factor, trans=trans)


# -- public API -------------------------------------------------------------------------------
class SparseLU:
    """A factorization of a sparse matrix whose solves are differentiable (``splu``'s result).

    Like SciPy's ``SuperLU``: ``solve(rhs, trans='N')`` solves ``A x = rhs`` (``'T'``/``'H'``:
    ``A^T x = rhs``) for a vector or a matrix of right-hand sides; ``shape``, ``nnz``, ``L``,
    ``U``, ``perm_r`` and ``perm_c`` describe the factors (constants). Solves are
    differentiable in ``rhs`` and in the stored values of the factorized matrix, and every
    derivative reuses this factorization.
    """

    __slots__ = ("_A", "_factor")

    def __init__(self, A: SparseArray, factor: Any) -> None:
        self._A = A
        self._factor = factor

    @property
    def shape(self) -> tuple[int, int]:
        return self._A.shape

    @property
    def nnz(self) -> int:
        """Number of stored entries in the factors L and U."""
        return int(self._factor.lu.nnz)

    @property
    def L(self) -> sps.csc_array:
        return self._factor.lu.L

    @property
    def U(self) -> sps.csc_array:
        return self._factor.lu.U

    @property
    def perm_r(self) -> np.ndarray:
        return self._factor.lu.perm_r

    @property
    def perm_c(self) -> np.ndarray:
        return self._factor.lu.perm_c

    def solve(self, rhs: Any, trans: str = "N") -> Any:
        """The solution ``x`` of ``A x = rhs`` (``trans='N'``) or ``A^T x = rhs`` (``'T'``,
        ``'H'``); ``rhs`` is ``(n,)`` or ``(n, k)``."""
        return _solve(self._A, self._factor, rhs, _check_trans(trans), "SparseLU.solve")

    def __repr__(self) -> str:
        n = self.shape[0]
        return f"<SparseLU factorization of a {n}x{n} sparse matrix, {self._A.nnz} stored entries>"


def splu(
    A: Any,
    permc_spec: str | None = None,
    diag_pivot_thresh: float | None = None,
    relax: int | None = None,
    panel_size: int | None = None,
    options: dict | None = None,
) -> SparseLU:
    """The LU factorization of a sparse square matrix (as ``scipy.sparse.linalg.splu``).

    ``A`` (a scigrad or SciPy sparse array, any format; CSR and COO are converted to CSC) is
    factorized once by SuperLU; the returned :class:`SparseLU` solves with it, and its
    solves are differentiable in ``A``'s stored values and in the right-hand side.

    >>> import numpy, scigrad as sg, scigrad.scipy.sparse as sp
    >>> from scigrad.scipy.sparse.linalg import splu
    >>> row, col = numpy.array([0, 0, 1, 1]), numpy.array([0, 1, 0, 1])
    >>> def f(p):
    ...     lu = splu(sp.csc_array((p, (row, col)), shape=(2, 2)))
    ...     return lu.solve(numpy.ones(2)).sum()
    >>> sg.grad(f)(numpy.array([2.0, 0.0, 0.0, 4.0]))
    array([-0.25  , -0.125 , -0.125 , -0.0625])
    """
    A = _as_csc(A, "splu")
    opts = {
        k: v
        for k, v in (
            ("permc_spec", permc_spec),
            ("diag_pivot_thresh", diag_pivot_thresh),
            ("relax", relax),
            ("panel_size", panel_size),
            ("options", options),
        )
        if v is not None
    }
    return SparseLU(A, _factorize(A, "splu", "superlu", opts))


def factorized(A: Any, *, solver: str | None = None) -> Callable[[Any], Any]:
    """A function solving ``A x = b`` with one factorization of ``A`` (as
    ``scipy.sparse.linalg.factorized``); its solves are differentiable in ``A``'s stored
    values and in ``b``. ``solver``: ``"superlu"``, ``"cholmod"`` or None (automatic).

    >>> import numpy, scigrad.scipy.sparse as sp
    >>> from scigrad.scipy.sparse.linalg import factorized
    >>> solve = factorized(sp.csc_array(numpy.array([[2.0, 0.0], [0.0, 4.0]])))
    >>> solve(numpy.array([1.0, 1.0]))
    array([0.5 , 0.25])
    """
    A = _as_csc(A, "factorized")
    factor = _factorize(A, "factorized", solver, {})

    def solve(b: Any) -> Any:
        return _solve(A, factor, b, "N", "factorized solve")

    return solve


def spsolve(
    A: Any,
    b: Any,
    permc_spec: str | None = None,
    use_umfpack: bool = True,
    *,
    solver: str | None = None,
) -> Any:
    """The solution ``x`` of the sparse linear system ``A x = b`` (as
    ``scipy.sparse.linalg.spsolve``), differentiable in ``A``'s stored values and in ``b``.

    ``A`` is a square scigrad or SciPy sparse array in any format (CSR and COO, duplicates
    included, are converted to CSC; a SciPy array is a constant). ``b`` is ``(n,)`` or
    ``(n, k)`` (several right-hand sides); as in SciPy, a ``b`` of shape ``(n, 1)`` gives
    ``x`` of shape ``(n,)``. ``A`` is factorized once; the derivatives reuse the factorization
    (the reverse pass is one transposed solve, and ``A``'s cotangent lives on its pattern).
    ``solver``: ``"superlu"``, ``"cholmod"`` (symmetric positive definite ``A``; needs the
    optional ``sksparse-minimal`` or ``cholespy``) or None (CHOLMOD when installed and ``A``
    is symmetric, SuperLU otherwise). ``use_umfpack`` is accepted and ignored.

    >>> import numpy, scigrad as sg, scigrad.scipy.sparse as sp
    >>> from scigrad.scipy.sparse.linalg import spsolve
    >>> row, col = numpy.array([0, 0, 1, 1]), numpy.array([0, 1, 0, 1])
    >>> def f(p):
    ...     return spsolve(sp.coo_array((p, (row, col)), shape=(2, 2)), numpy.ones(2)).sum()
    >>> sg.grad(f)(numpy.array([2.0, 0.0, 0.0, 4.0]))
    array([-0.25  , -0.125 , -0.125 , -0.0625])
    """
    A = _as_csc(A, "spsolve")
    b = _check_rhs(b, A.shape[0], "spsolve")
    opts = {} if permc_spec is None else {"permc_spec": permc_spec}
    factor = _factorize(A, "spsolve", solver, opts)
    x = sparse_lu_solve_p.bind(A.data, b, pattern=A.pattern, factor=factor, trans="N")
    sb = shape_of(b)
    if len(sb) == 2 and sb[1] == 1:
        x = reshape(x, (sb[0],))
    return x
