"""Dense linear algebra with SciPy's names and signatures (``scipy.linalg``).

``solve`` (with ``assume_a``), ``lu_factor``/``lu_solve``, ``cho_factor``/``cho_solve``,
``solve_triangular``, ``inv``, ``det``, ``eigh``/``eigvalsh``, ``svd``/``svdvals``, ``qr``,
``cholesky``, ``lu``, ``norm`` and ``pinv``, differentiable to any order in forward and
reverse mode. The rules are those of :mod:`scigrad.numpy.linalg`, reused; the functions
here add SciPy's conventions (which triangle is read, upper Cholesky factors by default,
full ``U``/``Q`` by default, batches ``(..., M, N)`` as in SciPy 1.15+) and a few
primitives of their own. Real floating-point input only; integers become float64.

Factorizations are computed once and reused by every derivative:

* ``solve(a, b)`` LU-factorizes ``a`` (``assume_a='pos'``: Cholesky) in the forward pass;
  the adjoint ``a^{-T} g`` and every higher derivative solve with that factorization.
* ``lu_factor(a)`` returns an :class:`LUFactor`: the tuple ``(lu, piv)`` SciPy returns,
  which also remembers ``a``. Given it, ``lu_solve`` is differentiated with respect to
  ``a`` and ``b`` directly (``x' = a^{-1}(b' - a' x)``, ``a_bar = -a^{-T} g x^T``) with the
  stored factors, at the cost of triangular solves. ``lu`` itself is differentiable too (the
  derivative of the packed factors: ``dL = L tril(X, -1)``, ``dU = triu(X) U`` with
  ``X = L^{-1} P^T da U^{-1}``), so code that reads it (``log|det|`` from its diagonal)
  differentiates, and ``lu_solve`` on a re-packed tuple ``(lu, piv)`` differentiates through
  the factors (correct, but an ``O(n^3)`` adjoint instead of ``O(n^2)``).
* ``cho_factor(a)`` likewise returns a :class:`ChoFactor` ``(c, lower)`` remembering ``a``;
  ``c`` is differentiable (:func:`cholesky`'s rules) and ``cho_solve`` reuses ``c``.

Functions that read one triangle of ``a`` (``assume_a='sym'/'her'/'pos'`` with ``lower``,
``cho_factor``, ``cholesky``, ``eigh``) have derivatives only in that triangle, which acts
as the symmetric matrix it stands for (as in :mod:`scigrad.numpy.linalg`).

Degenerate spectra. Where eigenvalues (``eigh``) or singular values (``svd``) coincide to
working precision, the eigenvectors (singular vectors) are not unique, and the derivative
formulas divide by zero for each coinciding pair. Policy:

* Defined, exact, silent: first derivatives of functions of the eigenvalues (singular
  values) alone -- ``eigvals_only=True``/``compute_uv=False``/``eigvalsh``/``svdvals`` in
  both modes, and ``eigh()``/``svd()`` in reverse mode when the vectors get no cotangent --
  and derivatives through the vectors of the other, simple eigenvalues (reverse mode).
* Warned (:class:`DegenerateDerivativeWarning`), coupling terms set to zero, finite: any
  derivative that flows through the vectors of a coinciding pair -- reverse mode, a
  cotangent of the vectors that couples the pair; forward mode, a perturbation that
  couples it. The vectors' own derivative is undefined there; for functions that stay
  smooth (a projector onto a whole degenerate eigenspace, ``V diag(w) V^T``) the exact
  value is not recoverable from the factorization alone (zeroing is right for the
  projector, not for ``V diag(w) V^T``). Second derivatives of eigenvalue functions at a
  degeneracy pass through the vectors and warn too. Forward mode through ``eigh()``
  cannot know that the vectors' tangents go unused: pass ``eigvals_only=True``.
* The extra columns of a full ``U``/``Q`` (``full_matrices=True``, ``mode='full'``) are an
  arbitrary basis of a complement: their derivative moves them with the thin factors
  without turning them among themselves (exact for functions of the subspace); a
  cotangent that depends on the basis itself warns.

The checks look at one call: a basis-invariant quantity assembled from two separate calls
(``svd(a)[0] @ svd(a)[0].T``) may warn. Make the warning an error with
``warnings.simplefilter("error", DegenerateDerivativeWarning)``.

Errors follow SciPy: non-square or mismatched shapes raise ``ValueError``, singular and
indefinite matrices :class:`numpy.linalg.LinAlgError`, NaN or inf with ``check_finite=True``
``ValueError``. Unlike SciPy, solving with an exactly singular factorization raises instead
of returning inf. ``overwrite_a``/``overwrite_b`` are accepted and ignored.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.linalg as _sl
from numpy.linalg import LinAlgError
from scipy.linalg import LinAlgWarning

from ...core.custom import stop_gradient
from ...core.primitive import Primitive, ShapeDtype, Tracer
from ...numpy import linalg as _nla
from ...numpy._products import matmul
from ...numpy._reductions import sum as sum_
from ...numpy._shape import concatenate, expand_dims, reshape
from ...numpy._util import shape_of, unbroadcast
from ...numpy.linalg import (
    _apply,
    _as_float,
    _asarray,
    _diag_matrix,
    _diag_part,
    _eye,
    _float_dtype,
    _lapack,
    _mT,
    _outer,
    _promote,
    _sym_from_triangle,
    _sym_from_triangle_T,
    _tri_masks,
    cholesky_p,
    det_p,
    inv_p,
    lu_factor_p,
    lu_solve_p,
    qr_p,
    trisolve_p,
)

__all__ = [
    "ChoFactor",
    "DegenerateDerivativeWarning",
    "LUFactor",
    "LinAlgError",
    "LinAlgWarning",
    "cho_factor",
    "cho_solve",
    "cholesky",
    "det",
    "eigh",
    "eigvalsh",
    "inv",
    "lu",
    "lu_factor",
    "lu_solve",
    "norm",
    "pinv",
    "qr",
    "solve",
    "solve_triangular",
    "svd",
    "svdvals",
]


class DegenerateDerivativeWarning(LinAlgWarning):
    """A derivative flows through eigenvectors or singular vectors where they are not
    unique (coinciding eigenvalues or singular values, or the arbitrary extra columns of a
    full ``U``/``Q``): it is not defined, or not computable from the factorization alone.
    The coupling terms are set to zero (see the module documentation)."""


# -- helpers -----------------------------------------------------------------------------------
def _value(x: Any) -> Any:
    """The plain value of ``x``; a captured graph (``sg.jit``) has none and raises a clear
    error (``TracedControlFlowError``) naming what needs it."""
    return x.concrete() if isinstance(x, Tracer) else x


def _value_if_known(x: Any) -> Any:
    """The plain value of ``x``, or None under abstract evaluation: for optional checks."""
    try:
        return _value(x)
    except TypeError:
        return None


def _check_finite(check: bool, *xs: Any) -> None:
    if not check:
        return
    for x in xs:
        v = _value_if_known(x)
        if v is not None and not np.isfinite(v).all():
            raise ValueError("array must not contain infs or NaNs")


def _check_square(a: Any, name: str) -> int:
    s = shape_of(a)
    if len(s) < 2:
        raise ValueError(f"{name}: expected a matrix (..., M, M), got an array of shape {s}")
    if s[-1] != s[-2]:
        raise ValueError(f"{name}: expected a square matrix (..., M, M), got shape {s}")
    return s[-1]


def _check_matrix(a: Any, name: str) -> tuple[int, int]:
    s = shape_of(a)
    if len(s) < 2:
        raise ValueError(f"{name}: expected a matrix (..., M, N), got an array of shape {s}")
    return s[-2], s[-1]


def _check_rhs(sa: tuple[int, ...], b: Any, name: str) -> bool:
    """Validate ``b`` against ``a`` of shape ``sa``: a vector ``(M,)`` or a stack of matrices
    ``(..., M, K)`` whose batch dimensions broadcast with ``a``'s. Returns ``vec``."""
    sb = shape_of(b)
    n = sa[-1]
    vec = len(sb) == 1
    if not sb or sb[-1 if vec else -2] != n:
        raise ValueError(
            f"{name}: shapes of a {sa} and b {sb} are incompatible: b must be (M,) or "
            f"(..., M, K) with M = {n}"
        )
    if not vec:
        try:
            np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ValueError(
                f"{name}: the batch dimensions of a {sa[:-2]} and b {sb[:-2]} do not broadcast"
            ) from None
    return vec


def _as_matrix(b: Any, vec: bool) -> Any:
    return expand_dims(b, -1) if vec else b


def _from_matrix(x: Any, vec: bool) -> Any:
    return reshape(x, shape_of(x)[:-1]) if vec else x


def _trans(trans: Any) -> int:
    t = {0: 0, 1: 1, 2: 1, "N": 0, "T": 1, "C": 1}.get(trans)  # real: a^H = a^T
    if t is None:
        raise ValueError(f"trans must be 0, 1 or 2 (or 'N', 'T', 'C'), got {trans!r}")
    return t


def _upper_mask(n: int) -> np.ndarray:
    """The upper triangle with the diagonal, as a float mask."""
    return _tri_masks(n, False)[0]


def _unit_lower(lu: Any) -> Any:
    """``L`` from packed ``L\\U`` factors: the strict lower triangle and a unit diagonal."""
    n = shape_of(lu)[-1]
    return lu * _tri_masks(n, True)[1] + _eye(n)


def _singular_factor(name: str) -> LinAlgError:
    return LinAlgError(
        f"{name}: the factorization is singular (a zero on its diagonal): the matrix has no "
        "inverse and the linear system no unique solution"
    )


def _check_factor_diagonal(f: Any, name: str) -> None:
    v = _value_if_known(f)
    if v is not None and v.shape[-1] and not np.diagonal(v, axis1=-2, axis2=-1).all():
        raise _singular_factor(name)


def _permutation(piv: np.ndarray) -> np.ndarray:
    """Row permutations ``perm`` with ``a[perm] = L @ U`` from LAPACK's 0-based row swaps."""
    piv = np.asarray(piv)
    n = piv.shape[-1]
    flat = piv.reshape(-1, n)
    perm = np.tile(np.arange(n), (flat.shape[0], 1))
    rows = np.arange(flat.shape[0])
    for i in range(n):
        j = flat[:, i]
        swap = perm[rows, i].copy()
        perm[rows, i] = perm[rows, j]
        perm[rows, j] = swap
    return perm.reshape(piv.shape)


def _row_permuter(piv: Any) -> np.ndarray:
    """``P^T`` as (stacks of) matrices, ``P^T a = L U``: a constant."""
    perm = _permutation(_value(piv))
    return _eye(perm.shape[-1])[perm]


def _lu_path(a: Any, b: Any, trans: int, vec: bool) -> Any:
    """``a^{-1} b`` (``a^{-T} b``) through one LU factorization of ``a``, reused by every
    derivative (long stacks of small matrices: NumPy's batched solver)."""
    if _nla._factorize_each(shape_of(a)):
        lu_, piv = lu_factor_p.bind(a)
    else:
        lu_ = piv = None
    return lu_solve_p.bind(a, lu_, piv, b, trans=trans, vec=vec)


def _cho_path(a_sym: Any, b: Any, vec: bool, name: str) -> Any:
    """``a_sym^{-1} b`` through one Cholesky factorization of ``a_sym``, reused by every
    derivative."""
    try:
        c = cholesky_p.bind(stop_gradient(a_sym), upper=False)
    except LinAlgError:
        raise LinAlgError(f"{name}: the matrix is not positive definite") from None
    return cho_solve_p.bind(a_sym, c, b, lower=True, vec=vec)


# -- cho_solve: solves with a Cholesky factor, reused by every derivative ------------------------
def _cho_solve_impl(a: Any, c: Any, b: Any, *, lower: bool, vec: bool) -> np.ndarray:
    c, b = np.asarray(c), np.asarray(b)
    dt = _float_dtype(np.result_type(c.dtype, b.dtype))
    c, b = c.astype(dt, copy=False), b.astype(dt, copy=False)
    n = c.shape[-1]
    bm = b[..., None] if vec else b
    batch = np.broadcast_shapes(c.shape[:-2], bm.shape[:-2])
    if n == 0:
        out = np.zeros(batch + bm.shape[-2:], dt)
        return out[..., 0] if vec else out
    potrs = _lapack("potrs", dt)
    if c.ndim == 2 and bm.ndim == 2:
        x = potrs(c, bm, lower=int(lower))[0]
    elif c.ndim == 2:  # a stack of right-hand sides against one matrix: fold it into columns
        bt = np.moveaxis(bm, -2, 0)
        x = potrs(c, bt.reshape(n, -1), lower=int(lower))[0]
        x = np.moveaxis(x.reshape(bt.shape), 0, -2)
    else:
        cs = np.broadcast_to(c, batch + (n, n))
        bs = np.broadcast_to(bm, batch + bm.shape[-2:])
        x = np.empty(batch + bm.shape[-2:], dt)
        for i in np.ndindex(*batch):
            x[i] = potrs(cs[i], bs[i], lower=int(lower))[0]
    return x[..., 0] if vec else x


def _cho_solve_shape(a, c, b, *, lower: bool, vec: bool) -> ShapeDtype:
    dt = _float_dtype(np.result_type(a.dtype, b.dtype))
    if vec:
        return ShapeDtype(np.broadcast_shapes(a.shape[:-2], b.shape[:-1]) + a.shape[-1:], dt)
    return ShapeDtype(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:], dt)


def _cho_solve_jvp(tangents, ans, a, c, b, *, lower: bool, vec: bool) -> Any:
    ta, tb = tangents[0], tangents[2]
    rhs = tb
    if ta is not None:  # A x = b  =>  A dx = db - dA x
        da_x = _apply(ta, ans, vec)
        rhs = -da_x if rhs is None else rhs - da_x
    if rhs is None:
        return None
    return cho_solve_p.bind(a, c, rhs, lower=lower, vec=vec)


def _cho_solve_vjp(g, ans, needs, a, c, b, *, lower: bool, vec: bool) -> list:
    # A is symmetric: the adjoint solve A^{-T} g = A^{-1} g reuses the same factor.
    gb = cho_solve_p.bind(a, c, g, lower=lower, vec=vec)
    ga = unbroadcast(-_outer(gb, ans, vec), shape_of(a)) if needs[0] else None
    return [ga, None, unbroadcast(gb, shape_of(b)) if needs[2] else None]


# x = A^{-1} b given the Cholesky factor `c` of the symmetric positive definite A (its lower
# triangle, or its upper one when not `lower`); `a` is A itself, which the impl does not read:
# it carries the derivative with respect to A, as in numpy.linalg's lu_solve.
cho_solve_p = Primitive("cho_solve", _cho_solve_impl, shape=_cho_solve_shape)
cho_solve_p.defjvp_joint(_cho_solve_jvp)
cho_solve_p.defvjp_joint(_cho_solve_vjp)


# -- solve --------------------------------------------------------------------------------------
_STRUCTURES = {
    None: "gen",
    "gen": "gen",
    "general": "gen",
    "banded": "gen",
    "sym": "sym",
    "symmetric": "sym",
    "her": "sym",
    "hermitian": "sym",
    "pos": "pos",
    "positive definite": "pos",
    "diagonal": "diagonal",
    "tridiagonal": "tridiagonal",
    "upper triangular": "upper",
    "lower triangular": "lower",
}


def _structure(assume_a: Any) -> str:
    s = _STRUCTURES.get(assume_a) if isinstance(assume_a, str | None) else None
    if s is None:
        raise ValueError(f"{assume_a!r} is not a recognized matrix structure")
    return s


def _band(n: int) -> np.ndarray:
    i = np.arange(n)
    return (np.abs(i[:, None] - i[None, :]) <= 1).astype(np.float64)


def _nonzero_diagonal(d: Any, name: str) -> None:
    v = _value_if_known(d)
    if v is not None and not v.all():
        raise LinAlgError(f"{name}: singular matrix (a zero on the diagonal)")


def solve(
    a: Any,
    b: Any,
    lower: bool = False,
    overwrite_a: bool = False,
    overwrite_b: bool = False,
    check_finite: bool = True,
    assume_a: str | None = None,
    transposed: bool = False,
) -> Any:
    """The solution ``x`` of ``a @ x = b`` (``a.T @ x = b`` if ``transposed``), as
    ``scipy.linalg.solve``.

    ``a`` is ``(..., M, M)``; ``b`` a vector ``(M,)`` or a stack ``(..., M, K)``.
    ``assume_a``: ``None``, ``'gen'`` and ``'banded'`` use every entry of ``a`` (one LU
    factorization); ``'sym'``/``'her'`` read the ``lower`` (default: upper) triangle and
    solve by LU; ``'pos'`` reads that triangle and solves by Cholesky; ``'diagonal'``,
    ``'tridiagonal'``, ``'upper triangular'`` and ``'lower triangular'`` read only those
    entries. Derivatives exist for the entries read; every one of them reuses the forward
    factorization. A singular matrix raises :class:`numpy.linalg.LinAlgError`.

    >>> import scigrad as sg, scigrad.scipy.linalg as sla, numpy as np
    >>> a = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> sg.grad(lambda b: sla.solve(a, b, assume_a="pos").sum())(np.ones(2))
    array([0.18181818, 0.27272727])
    """
    a, b = _asarray(a), _asarray(b)
    sa = shape_of(a)
    n = _check_square(a, "solve")
    vec = _check_rhs(sa, b, "solve")
    structure = _structure(assume_a)
    _check_finite(check_finite, a, b)
    a, b = _promote(a, b)
    trans = 1 if transposed else 0
    if structure == "gen":
        return _lu_path(a, b, trans, vec)
    if structure == "tridiagonal":
        return _lu_path(a * _band(n), b, trans, vec)
    if structure == "sym":
        return _lu_path(_sym_from_triangle(a, bool(lower)), b, 0, vec)
    if structure == "pos":
        return _cho_path(_sym_from_triangle(a, bool(lower)), b, vec, "solve")
    if structure == "diagonal":
        d = _diag_part(a)
        _nonzero_diagonal(d, "solve")
        return b / d if vec else b / expand_dims(d, -1)
    tri_lower = structure == "lower"
    x = trisolve_p.bind(a, _as_matrix(b, vec), lower=tri_lower, trans=trans)
    return _from_matrix(x, vec)


def solve_triangular(
    a: Any,
    b: Any,
    trans: Any = 0,
    lower: bool = False,
    unit_diagonal: bool = False,
    overwrite_b: bool = False,
    check_finite: bool = True,
) -> Any:
    """The solution of ``a @ x = b`` (``trans=1``: ``a.T @ x = b``) for triangular ``a``,
    reading only its ``lower`` (default: upper) triangle, as ``scipy.linalg.solve_triangular``.

    With ``unit_diagonal`` the diagonal is taken as ones and not read. Derivatives exist for
    the entries read. A zero on the diagonal raises :class:`numpy.linalg.LinAlgError`.
    """
    a, b = _asarray(a), _asarray(b)
    n = _check_square(a, "solve_triangular")
    vec = _check_rhs(shape_of(a), b, "solve_triangular")
    t = _trans(trans)
    _check_finite(check_finite, a, b)
    a, b = _promote(a, b)
    lower = bool(lower)
    if unit_diagonal:
        a = a * _tri_masks(n, lower)[1] + _eye(n)
    else:
        _nonzero_diagonal(_diag_part(a), "solve_triangular")
    return _from_matrix(trisolve_p.bind(a, _as_matrix(b, vec), lower=lower, trans=t), vec)


# -- lu: the packed LU factorization, differentiable ---------------------------------------------
def _lu_impl(a: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float(a)
    n = a.shape[-1]
    if n == 0:
        return a.copy(), np.zeros(a.shape[:-1], np.int32)
    getrf = _lapack("getrf", a.dtype)
    lu_ = np.empty(a.shape, a.dtype)
    piv = np.empty(a.shape[:-1], np.int32)
    for i in np.ndindex(*a.shape[:-2]):
        lu_[i], piv[i], info = getrf(a[i])
        if info > 0:  # SciPy's behaviour: the factors of a singular matrix, and a warning
            where = f" (matrix {i} of the stack)" if i else ""
            warnings.warn(
                f"Diagonal number {info} is exactly zero. Singular matrix{where}.",
                LinAlgWarning,
                stacklevel=2,
            )
    return lu_, piv


def _lu_shape(a: ShapeDtype) -> tuple:
    return ShapeDtype(a.shape, _float_dtype(a.dtype)), ShapeDtype(a.shape[:-1], np.dtype(np.int32))


def _check_lu_regular(lu_: Any) -> None:
    v = _value_if_known(lu_)
    if v is not None and v.shape[-1] and not np.diagonal(v, axis1=-2, axis2=-1).all():
        raise LinAlgError(
            "lu: the LU factors of a singular matrix (U has a zero on its diagonal) have no "
            "derivative"
        )


def _lu_jvp(tangents, ans, a) -> tuple:
    # P^T A = L U  =>  X = L^{-1} P^T dA U^{-1} = L^{-1} dL + dU U^{-1}: its strict lower
    # triangle is L^{-1} dL, its upper triangle dU U^{-1}.
    (t,) = tangents
    lu_, piv = ans
    _check_lu_regular(lu_)
    n = shape_of(lu_)[-1]
    ell = _unit_lower(lu_)
    y = trisolve_p.bind(ell, matmul(_row_permuter(piv), t), lower=True, trans=0)
    x = _mT(trisolve_p.bind(lu_, _mT(y), lower=False, trans=1))  # Y U^{-1}
    strict = _tri_masks(n, True)[1]
    upper = _upper_mask(n)
    return matmul(ell, x * strict) + matmul(x * upper, lu_ * upper), None


def _lu_vjp(g, ans, needs, a) -> list:
    glu = g[0]
    lu_, piv = ans
    _check_lu_regular(lu_)
    n = shape_of(lu_)[-1]
    ell = _unit_lower(lu_)
    strict = _tri_masks(n, True)[1]
    upper = _upper_mask(n)
    xbar = matmul(_mT(ell), glu) * strict + matmul(glu, _mT(lu_ * upper)) * upper
    z = trisolve_p.bind(ell, xbar, lower=True, trans=1)  # L^{-T} Xbar
    w = _mT(trisolve_p.bind(lu_, _mT(z), lower=False, trans=0))  # L^{-T} Xbar U^{-T}
    return [matmul(_mT(_row_permuter(piv)), w)]


# The LU factorization with partial pivoting of square matrices, as LAPACK getrf packs it:
# (lu, piv) with P^T a = L U, L unit lower triangular in lu's strict lower triangle, U in its
# upper triangle and 0-based row swaps piv (piecewise constant: no derivative).
lu_p = Primitive("scipy_lu", _lu_impl, shape=_lu_shape, multiple_results=True)
lu_p.defjvp_joint(_lu_jvp)
lu_p.defvjp_joint(_lu_vjp)


class LUFactor(tuple):
    """``(lu, piv)`` from :func:`lu_factor`: a tuple, as SciPy returns, that also remembers
    the factorized matrix, so that :func:`lu_solve` differentiates with respect to it with
    the stored factors (pass this object itself, not a re-packed tuple, to keep that)."""

    def __new__(cls, lu: Any, piv: Any, a: Any = None, lu_const: Any = None) -> LUFactor:
        self = super().__new__(cls, (lu, piv))
        self._a = a
        self._lu_const = lu_const
        return self

    def __getnewargs__(self) -> tuple:
        return (self[0], self[1])

    @property
    def lu(self) -> Any:
        return self[0]

    @property
    def piv(self) -> Any:
        return self[1]


def lu_factor(a: Any, overwrite_a: bool = False, check_finite: bool = True) -> LUFactor:
    """The pivoted LU factorization of square ``a`` ``(..., M, M)`` for :func:`lu_solve`, as
    ``scipy.linalg.lu_factor``: ``(lu, piv)`` with ``L`` (unit diagonal) and ``U`` packed in
    ``lu`` and 0-based row swaps ``piv``.

    The result is an :class:`LUFactor`, which unpacks as ``lu, piv = lu_factor(a)`` and also
    remembers ``a``: :func:`lu_solve` given it is differentiable in ``a`` and ``b`` and its
    adjoints reuse the factors. ``lu`` itself is differentiable. An exactly singular ``a``
    gives a :class:`scipy.linalg.LinAlgWarning`, as in SciPy (solving with it raises).

    >>> import scigrad as sg, scigrad.scipy.linalg as sla, numpy as np
    >>> b = np.array([1.0, 2.0])
    >>> g = sg.grad(lambda a: sla.lu_solve(sla.lu_factor(a), b).sum())(np.eye(2))
    >>> np.asarray(g)  # -a^{-T} 1 x^T: rank one, returned factored (a LowRankArray)
    array([[-1., -2.],
           [-1., -2.]])
    """
    a = _asarray(a)
    _check_square(a, "lu_factor")
    _check_finite(check_finite, a)
    lu_, piv = lu_p.bind(a)
    if isinstance(a, Tracer):
        return LUFactor(lu_, piv, a, stop_gradient(lu_))
    return LUFactor(lu_, piv)


def _lu_solve_factors(lu_: Any, piv: Any, b: Any, trans: int, vec: bool) -> Any:
    """Solve with traced packed factors (a re-packed tuple): triangular solves and the row
    permutation, differentiable in ``lu``."""
    pt = _row_permuter(piv)
    ell = _unit_lower(lu_)
    bm = _as_matrix(b, vec)
    if trans == 0:  # A = P L U:  x = U^{-1} L^{-1} P^T b
        y = trisolve_p.bind(ell, matmul(pt, bm), lower=True, trans=0)
        x = trisolve_p.bind(lu_, y, lower=False, trans=0)
    else:  # A^T = U^T L^T P^T:  x = P L^{-T} U^{-T} b
        y = trisolve_p.bind(lu_, bm, lower=False, trans=1)
        x = matmul(_mT(pt), trisolve_p.bind(ell, y, lower=True, trans=1))
    return _from_matrix(x, vec)


def lu_solve(
    lu_and_piv: Any, b: Any, trans: int = 0, overwrite_b: bool = False, check_finite: bool = True
) -> Any:
    """The solution of ``a @ x = b`` (``trans=1`` or ``2``: ``a.T @ x = b``) given
    ``(lu, piv) = lu_factor(a)``, as ``scipy.linalg.lu_solve``.

    Differentiable in ``b`` and, given the :class:`LUFactor` that :func:`lu_factor` returned,
    in ``a`` (one more solve with the stored factors per derivative); given a plain tuple,
    in ``lu``. A singular factorization raises :class:`numpy.linalg.LinAlgError`.
    """
    lu_, piv = lu_and_piv
    lu_, b = _asarray(lu_), _asarray(b)
    _check_square(lu_, "lu_solve")
    vec = _check_rhs(shape_of(lu_), b, "lu_solve")
    if shape_of(piv) != shape_of(lu_)[:-1]:
        raise ValueError(
            f"lu_solve: piv of shape {shape_of(piv)} does not match lu {shape_of(lu_)}"
        )
    t = _trans(trans)
    _check_finite(check_finite, lu_, b)
    if isinstance(piv, Tracer):
        piv = stop_gradient(piv)
    _check_factor_diagonal(lu_, "lu_solve")
    a = getattr(lu_and_piv, "_a", None)
    if a is not None:
        a, b = _promote(a, b)
        return lu_solve_p.bind(a, lu_and_piv._lu_const, piv, b, trans=t, vec=vec)
    lu_, b = _promote(lu_, b)
    if isinstance(lu_, Tracer):
        return _lu_solve_factors(lu_, piv, b, t, vec)
    # lu is a constant: it stands in for `a` (its derivative is not needed).
    return lu_solve_p.bind(lu_, lu_, piv, b, trans=t, vec=vec)


def lu(
    a: Any,
    permute_l: bool = False,
    overwrite_a: bool = False,
    check_finite: bool = True,
    p_indices: bool = False,
) -> tuple:
    """The pivoted LU decomposition ``a = P @ L @ U`` of square ``a``, as ``scipy.linalg.lu``:
    ``(P, L, U)``; ``(P @ L, U)`` with ``permute_l``; ``P`` as row indices (``a = L[P] @ U``)
    with ``p_indices``. ``L`` and ``U`` are differentiable (``P`` is piecewise constant)
    where ``a`` is not singular. Rectangular ``a`` is not supported."""
    a = _asarray(a)
    sa = shape_of(a)
    _check_matrix(a, "lu")
    if sa[-1] != sa[-2]:
        raise NotImplementedError(f"lu: only square matrices are supported, got shape {sa}")
    _check_finite(check_finite, a)
    lu_, piv = lu_p.bind(a)
    n = sa[-1]
    ell = _unit_lower(lu_)
    u = lu_ * _upper_mask(n)
    perm = _permutation(_value(piv))
    p = np.swapaxes(_eye(n, ell.dtype)[perm], -1, -2)
    if permute_l:
        return matmul(p, ell), u
    if p_indices:
        return np.argsort(perm, axis=-1).astype(np.int32), ell, u
    return p, ell, u


# -- Cholesky -------------------------------------------------------------------------------------
def cholesky(
    a: Any, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True
) -> Any:
    """The Cholesky factor of symmetric positive definite ``a``, as ``scipy.linalg.cholesky``:
    upper triangular ``U`` with ``a = U.T @ U`` by default (SciPy's convention), lower ``L``
    with ``a = L @ L.T`` if ``lower``. Reads only that triangle of ``a`` (its derivative acts
    as the symmetric matrix it stands for); not positive definite: ``LinAlgError``."""
    a = _asarray(a)
    _check_square(a, "cholesky")
    _check_finite(check_finite, a)
    return cholesky_p.bind(a, upper=not lower)


class ChoFactor(tuple):
    """``(c, lower)`` from :func:`cho_factor`: a tuple, as SciPy returns, that also
    remembers the factorized matrix, so that :func:`cho_solve` differentiates with respect
    to it with the stored factor (pass this object itself, not a re-packed tuple)."""

    def __new__(cls, c: Any, lower: bool, a: Any = None, c_const: Any = None) -> ChoFactor:
        self = super().__new__(cls, (c, lower))
        self._a = a
        self._c_const = c_const
        return self

    def __getnewargs__(self) -> tuple:
        return (self[0], self[1])

    @property
    def c(self) -> Any:
        return self[0]

    @property
    def lower(self) -> bool:
        return self[1]


def cho_factor(
    a: Any, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True
) -> ChoFactor:
    """The Cholesky factorization of symmetric positive definite ``a`` for :func:`cho_solve`,
    as ``scipy.linalg.cho_factor``: ``(c, lower)``, ``c`` the upper (``lower``: lower)
    factor. Only that triangle of ``a`` is read. Unlike SciPy, the other triangle of ``c``
    holds zeros rather than arbitrary values.

    The result is a :class:`ChoFactor`: it unpacks as ``c, lower = cho_factor(a)`` and
    remembers ``a``, so that :func:`cho_solve` given it is differentiable in ``a`` and its
    adjoints reuse ``c``; ``c`` itself is differentiable (``2 * sum(log(diag(c)))`` is a
    differentiable ``log det a``). Not positive definite: ``LinAlgError``.
    """
    a = _asarray(a)
    _check_square(a, "cho_factor")
    _check_finite(check_finite, a)
    lower = bool(lower)
    try:
        c = cholesky_p.bind(a, upper=not lower)
    except LinAlgError:
        raise LinAlgError("cho_factor: the matrix is not positive definite") from None
    if isinstance(a, Tracer):
        return ChoFactor(c, lower, _sym_from_triangle(a, lower), stop_gradient(c))
    return ChoFactor(c, lower)


def _cho_solve_factor(c: Any, lower: bool, b: Any, vec: bool) -> Any:
    """Solve with a traced factor (a re-packed tuple): two triangular solves."""
    bm = _as_matrix(b, vec)
    if lower:  # A = L L^T
        x = trisolve_p.bind(c, trisolve_p.bind(c, bm, lower=True, trans=0), lower=True, trans=1)
    else:  # A = U^T U
        x = trisolve_p.bind(c, trisolve_p.bind(c, bm, lower=False, trans=1), lower=False, trans=0)
    return _from_matrix(x, vec)


def cho_solve(
    c_and_lower: Any, b: Any, overwrite_b: bool = False, check_finite: bool = True
) -> Any:
    """The solution of ``a @ x = b`` given ``(c, lower) = cho_factor(a)``, as
    ``scipy.linalg.cho_solve``.

    Differentiable in ``b`` and, given the :class:`ChoFactor` that :func:`cho_factor`
    returned, in ``a`` (one more solve with ``c`` per derivative); given a plain tuple, in
    ``c``. A factor with a zero on its diagonal raises :class:`numpy.linalg.LinAlgError`.
    """
    c, lower = c_and_lower
    lower = bool(np.all(lower))  # SciPy returns an array of flags for stacks
    c, b = _asarray(c), _asarray(b)
    _check_square(c, "cho_solve")
    vec = _check_rhs(shape_of(c), b, "cho_solve")
    _check_finite(check_finite, c, b)
    _check_factor_diagonal(c, "cho_solve")
    a = getattr(c_and_lower, "_a", None)
    if a is not None:
        a, b = _promote(a, b)
        return cho_solve_p.bind(a, c_and_lower._c_const, b, lower=lower, vec=vec)
    c, b = _promote(c, b)
    if isinstance(c, Tracer):
        return _cho_solve_factor(c, lower, b, vec)
    # c is a constant: it stands in for `a` (its derivative is not needed).
    return cho_solve_p.bind(c, c, b, lower=lower, vec=vec)


# -- inv, det, norm, pinv -------------------------------------------------------------------------
def inv(
    a: Any,
    overwrite_a: bool = False,
    check_finite: bool = True,
    *,
    assume_a: str | None = None,
    lower: bool = False,
) -> Any:
    """The inverse of square ``a`` ``(..., M, M)``, as ``scipy.linalg.inv``; ``assume_a``
    and ``lower`` select the entries read as in :func:`solve` (``'pos'``: Cholesky).
    A singular matrix raises :class:`numpy.linalg.LinAlgError`."""
    a = _asarray(a)
    n = _check_square(a, "inv")
    structure = _structure(assume_a)
    _check_finite(check_finite, a)
    if structure in ("gen", "tridiagonal", "sym"):
        if structure == "tridiagonal":
            a = a * _band(n)
        elif structure == "sym":
            a = _sym_from_triangle(a, bool(lower))
        return inv_p.bind(a)
    if structure == "pos":
        return _cho_path(_sym_from_triangle(a, bool(lower)), _eye(n, a.dtype), False, "inv")
    if structure == "diagonal":
        d = _diag_part(a)
        _nonzero_diagonal(d, "inv")
        return _diag_matrix(1.0 / d)
    _nonzero_diagonal(_diag_part(a), "inv")
    return trisolve_p.bind(a, _eye(n, a.dtype), lower=structure == "lower", trans=0)


def det(a: Any, overwrite_a: bool = False, check_finite: bool = True) -> Any:
    """The determinant of square ``a`` ``(..., M, M)``, as ``scipy.linalg.det``; its
    gradient is the transposed adjugate, finite at singular matrices too."""
    a = _asarray(a)
    _check_square(a, "det")
    _check_finite(check_finite, a)
    return det_p.bind(a)


def norm(
    a: Any, ord: Any = None, axis: Any = None, keepdims: bool = False, check_finite: bool = True
) -> Any:
    """Matrix or vector norm, as ``scipy.linalg.norm`` (see
    :func:`scigrad.numpy.linalg.norm` for the orders and their derivatives)."""
    a = _asarray(a)
    _check_finite(check_finite, a)
    return _nla.norm(a, ord=ord, axis=axis, keepdims=keepdims)


def pinv(
    a: Any,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    return_rank: bool = False,
    check_finite: bool = True,
) -> Any:
    """The Moore-Penrose pseudo-inverse, as ``scipy.linalg.pinv``: singular values at most
    ``atol + rtol * max(S)`` (defaults 0 and ``max(M, N) * eps``) count as zero. The
    derivative is that at fixed rank (see :func:`scigrad.numpy.linalg.pinv`)."""
    a = _asarray(a)
    m, n = _check_matrix(a, "pinv")
    _check_finite(check_finite, a)
    atol = 0.0 if atol is None else atol
    rtol = max(m, n) * np.finfo(a.dtype).eps if rtol is None else rtol
    if atol < 0 or rtol < 0:
        raise ValueError("atol and rtol values must be positive.")
    if atol == 0 and not return_rank:
        return _nla.pinv_p.bind(a, rcond=rtol)
    s = np.linalg.svd(_value(a), compute_uv=False)
    smax = np.max(s, axis=-1, initial=0.0)
    val = atol + smax * rtol
    rcond = np.where(smax > 0, val / np.where(smax > 0, smax, 1.0), 1.0)
    out = _nla.pinv_p.bind(a, rcond=rcond)
    if return_rank:
        rank = np.sum(s > np.expand_dims(val, -1), axis=-1)
        return out, rank if np.ndim(rank) else int(rank)
    return out


# -- degenerate spectra: where vector derivatives are not defined ---------------------------------
_UNDEFINED_TOL = 1e-8


def _coinciding(w: np.ndarray) -> np.ndarray | None:
    """Distinct index pairs ``[..., i, j]`` of ``w`` that are equal to working precision (the
    criterion of numpy.linalg's guarded ``1 / (w_j - w_i)``), or None if there are none."""
    n = w.shape[-1]
    if n < 2:
        return None
    gaps = np.abs(w[..., None, :] - w[..., :, None])
    scale = np.max(np.abs(w), axis=-1, initial=0.0)[..., None, None]
    mask = (gaps <= 8 * n * np.finfo(w.dtype).eps * scale) & ~np.eye(n, dtype=bool)
    return mask if mask.any() else None


def _amax(x: Any) -> float:
    return float(np.max(np.abs(np.asarray(x)), initial=0.0))


def _significant(x: np.ndarray, mask: np.ndarray, scale: float) -> bool:
    """Whether ``x`` is not negligible somewhere in ``mask``, relative to ``scale`` (the
    magnitude of the tangent or cotangent it was computed from)."""
    return bool(np.max(np.abs(x) * mask, initial=0.0) > _UNDEFINED_TOL * scale)


def _warn_undefined(message: str) -> None:
    warnings.warn(
        message + " That derivative is not defined (or, for functions smooth there, not "
        "computable from this factorization alone): the coupling terms are set to zero. "
        "First derivatives of functions of the eigenvalues / singular values alone are exact.",
        DegenerateDerivativeWarning,
        stacklevel=4,
    )


def _sT(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)


def _check_eigh_tangent(w: Any, v: Any, t: Any, lower: bool) -> None:
    wc = _value(w)
    mask = None if wc is None else _coinciding(wc)
    if mask is None:
        return
    vc, tc = _value(v), _value(t)
    if vc is None or tc is None:
        return
    q = _sT(vc) @ np.asarray(_sym_from_triangle(np.asarray(tc), lower)) @ vc
    if _significant(q, mask, _amax(tc)):
        _warn_undefined(
            "eigh: eigenvalues coincide and the perturbation couples their eigenvectors: the "
            "eigenvectors' forward-mode derivative (and individual eigenvalues' second "
            "derivatives) depend on the arbitrary basis of the eigenspace."
        )


def _check_eigh_cotangent(w: Any, v: Any, gv: Any) -> None:
    wc = _value(w)
    mask = None if wc is None else _coinciding(wc)
    if mask is None:
        return
    vc, gc = _value(v), _value(gv)
    if vc is None or gc is None or not np.any(gc):
        return
    # The terms F_ij (V^T gV)_ij of coinciding eigenvalues, whose factor F_ij = 1/(w_j - w_i)
    # is guarded to zero, must vanish for the result to be certain.
    j = _sT(vc) @ np.asarray(gc)
    if _significant(j, mask, _amax(gc)):
        _warn_undefined(
            "eigh: eigenvalues coincide and the cotangent flowing through the eigenvectors "
            "couples them (it depends on the arbitrary basis of their eigenspace)."
        )


def _check_complement(perp: Any, g: Any, what: str) -> None:
    """Cotangents of the extra columns ``perp`` (an arbitrary orthonormal basis of a
    complement) must not depend on that basis: ``P^T G`` symmetric."""
    pc, gc = _value(perp), _value(g)
    if pc is None or gc is None or not np.any(gc):
        return
    j = _sT(pc) @ np.asarray(gc)
    if _significant(j - _sT(j), np.ones(j.shape[-2:], bool), _amax(gc)):
        _warn_undefined(
            f"{what}: the function depends on the particular basis of the extra columns (an "
            "arbitrary orthonormal basis of the complement), not only on the subspace."
        )


def _complement_tangent(u: Any, du: Any, perp: Any) -> Any:
    """The tangent of a complement basis ``perp`` of ``span(u)`` that moves with ``u``
    without turning within itself (``perp^T dperp = 0``): ``-u du^T perp``."""
    return -matmul(u, matmul(_mT(du), perp))


def _complement_cotangent(u: Any, perp: Any, g: Any) -> Any:
    """The transpose of :func:`_complement_tangent`: the cotangent ``-perp g^T u`` of ``u``."""
    return -matmul(perp, matmul(_mT(g), u))


# -- eigh ----------------------------------------------------------------------------------------
def _eigh_impl(a: Any, *, lower: bool, driver: str | None) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float(a)
    if a.shape[-1] == 0:
        return np.zeros(a.shape[:-1], a.dtype), np.zeros(a.shape, a.dtype)
    w, v = _sl.eigh(a, lower=lower, driver=driver, check_finite=False)
    return w, v


def _eigh_shape(a: ShapeDtype, *, lower: bool, driver: str | None) -> tuple:
    dt = _float_dtype(a.dtype)
    return ShapeDtype(a.shape[:-1], dt), ShapeDtype(a.shape, dt)


def _eigh_jvp(tangents, ans, a, *, lower: bool, driver: str | None) -> tuple:
    _check_eigh_tangent(ans[0], ans[1], tangents[0], lower)
    return _nla._eigh_jvp(tangents, ans, a, UPLO="L" if lower else "U")


def _eigh_vjp(g, ans, needs, a, *, lower: bool, driver: str | None) -> list:
    _check_eigh_cotangent(ans[0], ans[1], g[1])
    return _nla._eigh_vjp(g, ans, needs, a, UPLO="L" if lower else "U")


# Eigenvalues (ascending) and eigenvectors of symmetric matrices from SciPy's eigh (its
# drivers, its eigenvector signs); numpy.linalg's rules, with the degeneracy checks.
eigh_p = Primitive("scipy_eigh", _eigh_impl, shape=_eigh_shape, multiple_results=True)
eigh_p.defjvp_joint(_eigh_jvp)
eigh_p.defvjp_joint(_eigh_vjp)


def _eigenvectors(a: Any, v: Any, lower: bool, driver: str | None) -> Any:
    """First-order rules reuse the forward pass's eigenvectors ``v``; when ``a`` is traced
    (a derivative of a derivative) they are recomputed, differentiably."""
    return eigh_p.bind(a, lower=lower, driver=driver)[1] if isinstance(a, Tracer) else v


def _eigvalsh_jvp(t, ans, a, w, v, *, lower: bool, driver: str | None) -> Any:
    v = _eigenvectors(a, v, lower, driver)
    return sum_(v * matmul(_sym_from_triangle(t, lower), v), axis=-2)  # diag(V^T dA V)


def _eigvalsh_vjp(g, ans, a, w, v, *, lower: bool, driver: str | None) -> Any:
    v = _eigenvectors(a, v, lower, driver)
    return _sym_from_triangle_T(matmul(v * expand_dims(g, -2), _mT(v)), lower)


# The eigenvalues of symmetric `a` given its eigendecomposition (w, v) from the forward pass
# (constants): no eigenvector derivative is formed, so degenerate eigenvalues are harmless.
eigvalsh_p = Primitive(
    "scipy_eigvalsh",
    lambda a, w, v, *, lower, driver: w,
    shape=lambda a, w, v, *, lower, driver: w,
)
eigvalsh_p.defjvp(_eigvalsh_jvp, None, None)
eigvalsh_p.defvjp(_eigvalsh_vjp, None, None)

_STANDARD_DRIVERS = (None, "ev", "evd", "evr", "evx")
_GENERALIZED_DRIVERS = (None, "gv", "gvd", "gvx")


def _eigh_standard(a: Any, lower: bool, eigvals_only: bool, driver: str | None) -> Any:
    if not eigvals_only:
        return eigh_p.bind(a, lower=lower, driver=driver)
    if not isinstance(a, Tracer):
        if shape_of(a)[-1] == 0:
            return np.zeros(shape_of(a)[:-1], a.dtype)
        return _sl.eigh(a, lower=lower, eigvals_only=True, driver=driver, check_finite=False)
    w, v = eigh_p.bind(stop_gradient(a), lower=lower, driver=driver)
    return eigvalsh_p.bind(a, w, v, lower=lower, driver=driver)


def _select(w: Any, v: Any, subset_by_index: Any, subset_by_value: Any) -> tuple[Any, Any]:
    n = shape_of(w)[-1]
    if subset_by_index is not None:
        lo, hi = (int(i) for i in subset_by_index)
        if not 0 <= lo <= hi < n:
            raise ValueError(f"eigh: subset_by_index {subset_by_index} must be 0 <= lo <= hi < {n}")
    else:
        lo_v, hi_v = (float(x) for x in subset_by_value)
        if lo_v >= hi_v:
            raise ValueError("eigh: subset_by_value must be an increasing pair (lo, hi)")
        if len(shape_of(w)) > 1:
            raise NotImplementedError("eigh: subset_by_value is not supported for stacks")
        idx = np.flatnonzero((_value(w) > lo_v) & (_value(w) <= hi_v))
        lo, hi = (int(idx[0]), int(idx[-1])) if idx.size else (0, -1)
    w = w[..., lo : hi + 1]
    return w, (None if v is None else v[..., :, lo : hi + 1])


def eigh(
    a: Any,
    b: Any = None,
    *,
    lower: bool = True,
    eigvals_only: bool = False,
    overwrite_a: bool = False,
    overwrite_b: bool = False,
    type: int = 1,
    check_finite: bool = True,
    subset_by_index: Any = None,
    subset_by_value: Any = None,
    driver: str | None = None,
) -> Any:
    """Eigenvalues (ascending) and eigenvectors of symmetric ``a`` (reading its ``lower``,
    by default, or upper triangle), as ``scipy.linalg.eigh``: ``(w, v)``, or ``w`` with
    ``eigvals_only``.

    With ``b`` (symmetric positive definite, same triangle read) the generalized problem
    ``a v = w b v`` (``type=1`` only) is solved by reduction with the Cholesky factor of
    ``b``, differentiable in both; eigenvectors are ``b``-orthonormal. ``subset_by_index``
    and ``subset_by_value`` select from the full decomposition.

    Repeated eigenvalues: first derivatives of functions of the eigenvalues are finite and
    exact (in forward mode use ``eigvals_only=True``); derivatives that flow through the
    eigenvectors of repeated eigenvalues are not defined: they warn
    (:class:`DegenerateDerivativeWarning`) and the coupling terms are set to zero.

    >>> import scigrad as sg, scigrad.scipy.linalg as sla, numpy as np
    >>> sg.grad(lambda a: sla.eigh(a, eigvals_only=True).sum())(np.eye(2))
    array([[1., 0.],
           [0., 1.]])
    """
    a = _asarray(a)
    _check_square(a, "eigh")
    if subset_by_index is not None and subset_by_value is not None:
        raise ValueError("Either index or value subset can be requested.")
    lower = bool(lower)
    if b is None:
        if driver not in _STANDARD_DRIVERS:
            raise ValueError(f"eigh: driver must be one of {_STANDARD_DRIVERS}, got {driver!r}")
        _check_finite(check_finite, a)
        out = _eigh_standard(a, lower, eigvals_only, driver)
    else:
        if type != 1:
            raise NotImplementedError("eigh: only type=1 (a v = w b v) is supported")
        if driver not in _GENERALIZED_DRIVERS:
            raise ValueError(f"eigh: driver must be one of {_GENERALIZED_DRIVERS}, got {driver!r}")
        b = _asarray(b)
        _check_square(b, "eigh")
        if shape_of(b)[-2:] != shape_of(a)[-2:]:
            raise ValueError(f"eigh: a {shape_of(a)} and b {shape_of(b)} must have the same shape")
        _check_finite(check_finite, a, b)
        a, b = _promote(a, b)
        try:
            ell = cholesky_p.bind(b, upper=not lower)
        except LinAlgError:
            raise LinAlgError("eigh: b is not positive definite") from None
        if not lower:
            ell = _mT(ell)
        # a v = w b v with b = L L^T  <=>  (L^{-1} a L^{-T}) y = w y,  v = L^{-T} y
        a_sym = _sym_from_triangle(a, lower)
        c = trisolve_p.bind(
            ell, _mT(trisolve_p.bind(ell, a_sym, lower=True, trans=0)), lower=True, trans=0
        )
        out = _eigh_standard(c, True, eigvals_only, None)
        if not eigvals_only:
            out = (out[0], trisolve_p.bind(ell, out[1], lower=True, trans=1))
    if subset_by_index is None and subset_by_value is None:
        return out if eigvals_only else tuple(out)
    w, v = _select(
        out if eigvals_only else out[0],
        None if eigvals_only else out[1],
        subset_by_index,
        subset_by_value,
    )
    return w if eigvals_only else (w, v)


def eigvalsh(
    a: Any,
    b: Any = None,
    *,
    lower: bool = True,
    overwrite_a: bool = False,
    overwrite_b: bool = False,
    type: int = 1,
    check_finite: bool = True,
    subset_by_index: Any = None,
    subset_by_value: Any = None,
    driver: str | None = None,
) -> Any:
    """The eigenvalues of symmetric ``a`` (generalized with ``b``), as
    ``scipy.linalg.eigvalsh``: :func:`eigh` with ``eigvals_only=True``."""
    return eigh(
        a,
        b,
        lower=lower,
        eigvals_only=True,
        type=type,
        check_finite=check_finite,
        subset_by_index=subset_by_index,
        subset_by_value=subset_by_value,
        driver=driver,
    )


# -- svd -----------------------------------------------------------------------------------------
def _svd_impl(a: Any, *, full_matrices: bool, lapack_driver: str) -> tuple:
    a = _as_float(a)
    m, n = a.shape[-2:]
    if min(m, n) == 0:
        k = min(m, n)
        b = a.shape[:-2]
        um, vn = (m, n) if full_matrices else (k, k)
        u = np.broadcast_to(np.eye(m, um, dtype=a.dtype), b + (m, um)).copy()
        vh = np.broadcast_to(np.eye(vn, n, dtype=a.dtype), b + (vn, n)).copy()
        return u, np.zeros(b + (k,), a.dtype), vh
    u, s, vh = _sl.svd(
        a, full_matrices=full_matrices, lapack_driver=lapack_driver, check_finite=False
    )
    return u, s, vh


def _svd_shape(a: ShapeDtype, *, full_matrices: bool, lapack_driver: str) -> tuple:
    m, n = a.shape[-2:]
    k = min(m, n)
    dt = _float_dtype(a.dtype)
    b = a.shape[:-2]
    um, vn = (m, n) if full_matrices else (k, k)
    return ShapeDtype(b + (m, um), dt), ShapeDtype(b + (k,), dt), ShapeDtype(b + (vn, n), dt)


def _svd_parts(ans: tuple, m: int, n: int) -> tuple:
    """The thin factors and the extra columns of full ones (None where there are none)."""
    u, s, vh = ans
    k = min(m, n)
    up = u[..., :, k:] if shape_of(u)[-1] > k else None
    vhp = vh[..., k:, :] if shape_of(vh)[-2] > k else None
    if up is not None:
        u = u[..., :, :k]
    if vhp is not None:
        vh = vh[..., :k, :]
    return u, s, vh, up, vhp


def _check_svd_tangent(u: Any, s: Any, vh: Any, t: Any, m: int, n: int) -> None:
    sc = _value(s)
    if sc is None:
        return
    k = sc.shape[-1]
    s2 = sc * sc
    mask = _coinciding(s2)
    zero = sc == 0
    complement = (m > k or n > k) and zero.any()
    if mask is None and not complement:
        return
    uc, vc, tc = _value(u), _value(vh), _value(t)
    if uc is None or vc is None or tc is None:
        return
    vc, tc = _sT(vc), np.asarray(tc)
    dp = _sT(uc) @ tc @ vc
    if mask is not None:
        # Coinciding s_i = s_j > 0: the coupling is dP_ij + dP_ji; both zero: any dP_ij.
        tiny = s2 <= 8 * k * np.finfo(sc.dtype).eps * np.max(s2, axis=-1, keepdims=True)
        both_tiny = tiny[..., :, None] & tiny[..., None, :]
        crit = np.where(both_tiny, np.abs(dp), np.abs(dp + _sT(dp)))
        if _significant(crit, mask, _amax(tc)):
            _warn_undefined(
                "svd: singular values coincide and the perturbation couples their singular "
                "vectors: their forward-mode derivative depends on the arbitrary basis."
            )
            return
    if complement:
        scale = np.max(np.abs(tc), initial=0.0)
        cols = zero[..., None, :]
        if m > k and _significant(tc @ vc - uc @ dp, cols, scale):
            _warn_undefined("svd: a singular value is zero and the perturbation moves U off it.")
        elif n > k and _significant(_sT(tc) @ uc - vc @ _sT(dp), cols, scale):
            _warn_undefined("svd: a singular value is zero and the perturbation moves V off it.")


def _check_svd_cotangent(u: Any, s: Any, vh: Any, gu: Any, gvh: Any, m: int, n: int) -> None:
    sc = _value(s)
    if sc is None:
        return
    k = sc.shape[-1]
    s2 = sc * sc
    mask = _coinciding(s2)
    zero = sc == 0
    complement = (m > k or n > k) and zero.any()
    if mask is None and not complement:
        return
    guc, gvc = _value(gu), _value(gvh)
    if guc is None or gvc is None or not (np.any(guc) or np.any(gvc)):
        return
    uc, vc = _value(u), _sT(_value(vh))
    guc, gvc = np.asarray(guc), _sT(np.asarray(gvc))
    ju, jv = _sT(uc) @ guc, _sT(vc) @ gvc
    if mask is not None:
        # The terms F_ij (U^T gU)_ij and F_ij (V^T gV)_ij of coinciding singular values,
        # whose factor F_ij = 1/(s_j^2 - s_i^2) is guarded to zero, must vanish.
        scale = max(_amax(guc), _amax(gvc))
        if _significant(np.abs(ju) + np.abs(jv), mask, scale):
            _warn_undefined(
                "svd: singular values coincide and the cotangent flowing through the "
                "singular vectors couples them (it depends on their arbitrary basis)."
            )
            return
    if complement:
        cols = zero[..., None, :]
        if m > k and _significant(guc - uc @ ju, cols, np.max(np.abs(guc), initial=0.0)):
            _warn_undefined("svd: a singular value is zero and the function depends on its U.")
        elif n > k and _significant(gvc - vc @ jv, cols, np.max(np.abs(gvc), initial=0.0)):
            _warn_undefined("svd: a singular value is zero and the function depends on its V.")


def _svd_jvp(tangents, ans, a, *, full_matrices: bool, lapack_driver: str) -> tuple:
    m, n = shape_of(a)[-2:]
    u, s, vh, up, vhp = _svd_parts(ans, m, n)
    _check_svd_tangent(u, s, vh, tangents[0], m, n)
    du, ds, dvh = _nla._svd_jvp(tangents, (u, s, vh), a)
    if up is not None:
        du = concatenate([du, _complement_tangent(u, du, up)], axis=-1)
    if vhp is not None:
        dvhp = _mT(_complement_tangent(_mT(vh), _mT(dvh), _mT(vhp)))
        dvh = concatenate([dvh, dvhp], axis=-2)
    return du, ds, dvh


def _svd_vjp(g, ans, needs, a, *, full_matrices: bool, lapack_driver: str) -> list:
    m, n = shape_of(a)[-2:]
    u, s, vh, up, vhp = _svd_parts(ans, m, n)
    gu, gs, gvh = g
    k = min(m, n)
    if up is not None:
        gup, gu = gu[..., :, k:], gu[..., :, :k]
        _check_complement(up, gup, "svd")
        gu = gu + _complement_cotangent(u, up, gup)
    if vhp is not None:
        gvhp, gvh = gvh[..., k:, :], gvh[..., :k, :]
        _check_complement(_mT(vhp), _mT(gvhp), "svd")
        gvh = gvh + _mT(_complement_cotangent(_mT(vh), _mT(vhp), _mT(gvhp)))
    _check_svd_cotangent(u, s, vh, gu, gvh, m, n)
    return _nla._svd_vjp((gu, gs, gvh), (u, s, vh), needs, a)


# SciPy's SVD (its drivers; thin, or full with the extra columns of U or V^T, whose
# derivative moves them with the thin factors without turning them among themselves); the
# thin factors have numpy.linalg's rules, with the degeneracy checks.
svd_p = Primitive("scipy_svd", _svd_impl, shape=_svd_shape, multiple_results=True)
svd_p.defjvp_joint(_svd_jvp)
svd_p.defvjp_joint(_svd_vjp)


def _singular_vectors(a: Any, u: Any, vh: Any, driver: str) -> tuple[Any, Any]:
    """The forward pass's ``u, vh`` at first order; recomputed differentiably when ``a`` is
    traced (a derivative of a derivative)."""
    if isinstance(a, Tracer):
        u, _, vh = svd_p.bind(a, full_matrices=False, lapack_driver=driver)
    return u, vh


def _svdvals_jvp(t, ans, a, u, s, vh, *, lapack_driver: str) -> Any:
    u, vh = _singular_vectors(a, u, vh, lapack_driver)
    return sum_(u * matmul(t, _mT(vh)), axis=-2)  # diag(U^T dA V)


def _svdvals_vjp(g, ans, a, u, s, vh, *, lapack_driver: str) -> Any:
    u, vh = _singular_vectors(a, u, vh, lapack_driver)
    return matmul(u * expand_dims(g, -2), vh)


# The singular values of `a` given its thin SVD (u, s, vh) from the forward pass (constants):
# no singular vector derivative is formed, so coinciding values are harmless.
svdvals_p = Primitive(
    "scipy_svdvals",
    lambda a, u, s, vh, *, lapack_driver: s,
    shape=lambda a, u, s, vh, *, lapack_driver: s,
)
svdvals_p.defjvp(_svdvals_jvp, None, None, None)
svdvals_p.defvjp(_svdvals_vjp, None, None, None)

_DRIVERS = ("gesdd", "gesvd")


def svd(
    a: Any,
    full_matrices: bool = True,
    compute_uv: bool = True,
    overwrite_a: bool = False,
    check_finite: bool = True,
    lapack_driver: str = "gesdd",
) -> Any:
    """Singular value decomposition ``a = U @ diag(s) @ Vh``, as ``scipy.linalg.svd``:
    ``(U, s, Vh)``, or ``s`` alone without ``compute_uv``.

    ``full_matrices=True`` (SciPy's default) completes ``U`` (or ``Vh``) of a non-square
    ``a`` with an orthonormal basis of the complement of its columns. That basis is
    arbitrary: its derivative is taken to move with the thin factors without turning
    within the complement, which is correct for anything that depends on the complement
    as a subspace (projectors); cotangents that depend on the basis itself warn.

    Coinciding singular values: first derivatives of functions of ``s`` alone are finite and
    exact (in forward mode use ``compute_uv=False``); derivatives that flow through their
    singular vectors are not defined: they warn (:class:`DegenerateDerivativeWarning`) and
    the coupling terms are set to zero.
    """
    a = _asarray(a)
    m, n = _check_matrix(a, "svd")
    if lapack_driver not in _DRIVERS:
        raise ValueError(f'lapack_driver must be "gesdd" or "gesvd", not "{lapack_driver}"')
    _check_finite(check_finite, a)
    if not compute_uv:
        return _svdvals(a, lapack_driver)
    full = bool(full_matrices) and m != n
    return svd_p.bind(a, full_matrices=full, lapack_driver=lapack_driver)


def _svdvals(a: Any, driver: str) -> Any:
    if not isinstance(a, Tracer):
        if min(shape_of(a)[-2:]) == 0:
            return svd_p.impl(a, full_matrices=False, lapack_driver=driver)[1]
        return _sl.svd(a, compute_uv=False, lapack_driver=driver, check_finite=False)
    u, s, vh = svd_p.bind(stop_gradient(a), full_matrices=False, lapack_driver=driver)
    return svdvals_p.bind(a, u, s, vh, lapack_driver=driver)


def svdvals(a: Any, overwrite_a: bool = False, check_finite: bool = True) -> Any:
    """The singular values of ``a``, descending, as ``scipy.linalg.svdvals``; differentiable
    where they coincide too (first order)."""
    return svd(a, compute_uv=False, check_finite=check_finite)


# -- qr ------------------------------------------------------------------------------------------
def _orth_complement_jvp(t: Any, ans: Any, q: Any, perp: Any) -> Any:
    return _complement_tangent(q, t, ans)


def _orth_complement_vjp(g: Any, ans: Any, q: Any, perp: Any) -> Any:
    _check_complement(ans, g, "qr")
    return _complement_cotangent(q, ans, g)


# The extra columns `perp` of a full Q: an orthonormal basis of the complement of span(q),
# given as a constant, which moves with q without turning within the complement.
orth_complement_p = Primitive("orth_complement", lambda q, perp: perp, shape=lambda q, perp: perp)
orth_complement_p.defjvp(_orth_complement_jvp, None)
orth_complement_p.defvjp(_orth_complement_vjp, None)


def _pivots(a: Any) -> np.ndarray:
    """The column order of QR with column pivoting (LAPACK geqp3), per matrix."""
    ac = _as_float(_value(a))
    return _sl.qr(ac, mode="r", pivoting=True, check_finite=False)[1]


def _take_columns(a: Any, perm: np.ndarray) -> Any:
    if perm.ndim == 1:
        return a[..., :, perm]
    n = perm.shape[-1]
    pmat = np.swapaxes(_eye(n)[perm], -1, -2)  # a @ pmat = a[..., :, perm]
    return matmul(a, pmat)


def qr(
    a: Any,
    overwrite_a: bool = False,
    lwork: Any = None,
    mode: str = "full",
    pivoting: bool = False,
    check_finite: bool = True,
) -> tuple:
    """QR decomposition ``a = Q @ R`` (``a[:, P] = Q @ R`` with ``pivoting``), as
    ``scipy.linalg.qr``: ``(Q, R)``; ``(R,)`` for ``mode='r'`` (``R`` as in ``'full'``);
    ``P`` appended with ``pivoting`` (piecewise constant).

    ``mode='full'`` (SciPy's default) gives an ``M x M`` ``Q`` for tall ``a``: its extra
    columns (an arbitrary orthonormal basis of the complement) move with the thin ``Q``
    without turning among themselves; cotangents that depend on that basis warn.
    ``mode='economic'`` gives the thin factors. Derivatives need the leading
    ``min(M, N)`` columns of ``a`` (after pivoting) to be linearly independent.
    """
    a = _asarray(a)
    m, n = _check_matrix(a, "qr")
    if mode not in ("full", "r", "economic"):
        if mode == "raw":
            raise NotImplementedError("qr: mode='raw' is not supported")
        raise ValueError("Mode argument should be one of ['full', 'r', 'economic', 'raw']")
    _check_finite(check_finite, a)
    perm = None
    if pivoting:
        perm = _pivots(a)
        a = _take_columns(a, perm)
    if m >= n:
        q, r = qr_p.bind(a)
    else:  # wide: the QR of the leading square block, then R's other columns Q^T a
        q, r = qr_p.bind(a[..., :, :m])
        r = concatenate([r, matmul(_mT(q), a[..., :, m:])], axis=-1)
    if mode != "economic" and m > n:  # full R (also for mode='r', as SciPy)
        r = concatenate([r, np.zeros(shape_of(r)[:-2] + (m - n, n), r.dtype)], axis=-2)
    if mode == "full" and m > n:
        perp = np.linalg.qr(_as_float(_value(a)), mode="complete")[0][..., :, n:]
        q = concatenate([q, orth_complement_p.bind(q, perp)], axis=-1)
    out: tuple = (r,) if mode == "r" else (q, r)
    return out + (perm,) if pivoting else out
