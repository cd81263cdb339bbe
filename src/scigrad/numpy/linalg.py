"""Linear algebra (``numpy.linalg``): solve, inv, det, slogdet, norm, cholesky, eigh, svd, ...

Every function takes stacks of matrices ``(..., M, N)`` like NumPy (batch dimensions
broadcast where NumPy broadcasts them) and real floating-point values; integer input is
converted to float64, complex input is not supported.

Conventions for the derivatives:

* Functions that read one triangle of their input (``cholesky``, ``eigh``, ``eigvalsh``)
  are differentiated as NumPy evaluates them: entries outside that triangle have zero
  derivative, and a perturbation of the triangle acts as the symmetric perturbation it
  stands for. For symmetric inputs built from parameters (``M @ M.T``, ``(A + A.T) / 2``)
  this gives the usual symmetric-matrix derivatives.
* ``solve`` factorizes ``a`` once (LAPACK ``getrf``) in the forward pass; the derivative
  rules, and the rules of those rules, reuse that factorization for their adjoint solves.
* A singular matrix raises :class:`numpy.linalg.LinAlgError` in ``solve`` and ``inv``
  (as NumPy does) and when differentiating ``slogdet`` there; no NaN or infinite derivative
  is returned silently. ``det`` is differentiable everywhere: its gradient is the transposed
  adjugate, finite for singular matrices too.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from numpy.linalg import LinAlgError
from scipy.linalg import get_lapack_funcs

from ..core.batching import move_axis
from ..core.graph import TracedControlFlowError
from ..core.lowrank import LowRankArray
from ..core.primitive import Primitive, ShapeDtype, Tracer
from ._elementwise import abs as abs_
from ._elementwise import not_equal, power, where
from ._products import matmul
from ._reductions import expand_reduced
from ._reductions import max as max_
from ._reductions import min as min_
from ._reductions import sum as sum_
from ._shape import broadcast_to, expand_dims, reshape, transpose
from ._tracer_methods import astype
from ._util import axes_batch_rule, dtype_of, normalize_axis, shape_of, unbroadcast

__all__ = [
    "LinAlgError",
    "EighResult",
    "SlogdetResult",
    "SVDResult",
    "QRResult",
    "cholesky",
    "det",
    "eigh",
    "eigvalsh",
    "inv",
    "matrix_power",
    "multi_dot",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
    "svdvals",
]


class EighResult(NamedTuple):
    """``(eigenvalues, eigenvectors)`` of :func:`eigh`, as NumPy's ``EighResult``."""

    eigenvalues: Any
    eigenvectors: Any


class SlogdetResult(NamedTuple):
    """``(sign, logabsdet)`` of :func:`slogdet`, as NumPy's ``SlogdetResult``."""

    sign: Any
    logabsdet: Any


class SVDResult(NamedTuple):
    """``(U, S, Vh)`` of :func:`svd`, as NumPy's ``SVDResult``."""

    U: Any
    S: Any
    Vh: Any


class QRResult(NamedTuple):
    """``(Q, R)`` of :func:`qr`, as NumPy's ``QRResult``."""

    Q: Any
    R: Any


# -- helpers -----------------------------------------------------------------------------------
def _float_dtype(dt: Any) -> np.dtype:
    dt = np.dtype(dt)
    if dt.kind == "c":
        raise NotImplementedError("scigrad.numpy.linalg: complex matrices are not supported")
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _as_float(x: Any) -> np.ndarray:
    """``x`` as a NumPy float array (the impls' input conversion)."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(_float_dtype(x.dtype))


def _asarray(x: Any) -> Any:
    """``x`` as an array whose dtype is floating, traced values passing through."""
    if type(x) is np.ndarray and x.dtype.kind == "f":  # the common case, first
        return x
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    dt = _float_dtype(dtype_of(x))
    return x if dtype_of(x) == dt else astype(x, dt)


def _promote(*xs: Any) -> list:
    """The arrays converted to their common floating dtype (differentiably)."""
    dts = [dtype_of(x) for x in xs]
    if all(d == dts[0] for d in dts):
        return list(xs)
    dt = _float_dtype(np.result_type(*dts))
    return [x if dtype_of(x) == dt else astype(x, dt) for x in xs]


def _concrete(x: Any) -> np.ndarray:
    return x.concrete() if isinstance(x, Tracer) else np.asarray(x)


def _value_or_none(x: Any) -> np.ndarray | None:
    """The value of ``x``, or None while a graph is captured (``sg.jit``: no values exist,
    so a rule takes the branch that is right for every input it can check at run time)."""
    try:
        return _concrete(x)
    except TracedControlFlowError:
        return None


def _check_square(shape: tuple[int, ...], name: str) -> int:
    if len(shape) < 2:
        raise LinAlgError(
            f"{name}: {len(shape)}-dimensional array given. Array must be at least two-dimensional"
        )
    if shape[-1] != shape[-2]:
        raise LinAlgError(
            f"{name}: last 2 dimensions of the array must be square, got shape {shape}"
        )
    return shape[-1]


def _check_matrix(shape: tuple[int, ...], name: str) -> None:
    if len(shape) < 2:
        raise LinAlgError(
            f"{name}: {len(shape)}-dimensional array given. Array must be at least two-dimensional"
        )


def _mT(x: Any) -> Any:
    """``x`` with its last two axes swapped (the matrix transpose of a stack)."""
    nd = len(shape_of(x))
    return transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


_FLOAT64 = np.dtype(np.float64)


@functools.lru_cache(maxsize=64)
def _eye(n: int, dtype: np.dtype = _FLOAT64) -> np.ndarray:
    out = np.eye(n, dtype=dtype)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=64)
def _tri_masks(n: int, lower: bool) -> tuple[np.ndarray, np.ndarray]:
    """(triangle with diagonal, strict triangle) as float masks."""
    full = np.tri(n, dtype=np.float64)
    strict = np.tri(n, k=-1, dtype=np.float64)
    if not lower:
        full, strict = full.T.copy(), strict.T.copy()
    for m in (full, strict):
        m.flags.writeable = False
    return full, strict


def _diag_part(x: Any) -> Any:
    """The diagonals of a stack of square matrices: ``(..., n, n) -> (..., n)``."""
    return sum_(x * _eye(shape_of(x)[-1]), axis=-1)


def _diag_matrix(v: Any) -> Any:
    """Diagonal matrices from a stack of vectors: ``(..., n) -> (..., n, n)``."""
    return expand_dims(v, -1) * _eye(shape_of(v)[-1])


def _matrix_scalar(s: Any) -> Any:
    """A stack of scalars ``(...)`` shaped to broadcast against matrices ``(..., 1, 1)``."""
    return reshape(s, shape_of(s) + (1, 1))


def _sym_from_triangle(t: Any, lower: bool) -> Any:
    """The symmetric matrix that the ``lower`` (or upper) triangle of ``t`` stands for."""
    full, strict = _tri_masks(shape_of(t)[-1], lower)
    return t * full + _mT(t * strict)


def _sym_from_triangle_T(g: Any, lower: bool) -> Any:
    """The transpose (adjoint) of :func:`_sym_from_triangle`."""
    full, strict = _tri_masks(shape_of(g)[-1], lower)
    return g * full + _mT(g) * strict


def _stacked_batch(prim: Primitive) -> Any:
    """Batching rule of a function of one stack of matrices: the batch is one more stack
    axis, put first."""

    def rule(vals: list, dims: list, **params: Any) -> tuple[Any, Any]:
        out = prim.bind(move_axis(vals[0], dims[0], 0), **params)
        return out, ((0,) * len(out) if prim.multiple_results else 0)

    return rule


def _leading_batch(prim: Primitive, cores: Any) -> Any:
    """Batching rule of a function of several stacks whose stack axes broadcast (operand
    ``i`` has ``cores(**params)[i]`` matrix/vector axes): each batched operand gets its batch
    axis first and length-1 stack axes up to the longest stack, so the batch axes line up."""

    def rule(vals: list, dims: list, **params: Any) -> tuple[Any, int]:
        core = cores(**params)
        ranks = [
            len(shape_of(v)) - (d is not None) - c
            for v, d, c in zip(vals, dims, core, strict=True)
            if v is not None
        ]
        top = max(ranks)
        args = []
        for v, d, c in zip(vals, dims, core, strict=True):
            if d is not None:
                v = move_axis(v, d, 0)
                s = shape_of(v)
                pad = top - (len(s) - 1 - c)
                if pad:
                    v = reshape(v, s[:1] + (1,) * pad + s[1:])
            args.append(v)
        return prim.bind(*args, **params), 0

    return rule


_LAPACK: dict[tuple[str, str], Any] = {}


def _lapack(name: str, dtype: np.dtype) -> Any:
    key = (name, dtype.char)
    f = _LAPACK.get(key)
    if f is None:
        f = _LAPACK[key] = get_lapack_funcs((name,), dtype=dtype)[0]
    return f


def _singular(name: str, info: int = 0) -> LinAlgError:
    where_ = f" (U[{info - 1}, {info - 1}] is exactly zero in its LU factorization)" if info else ""
    return LinAlgError(
        f"{name}: Singular matrix{where_}; the matrix has no inverse and the linear system "
        "no unique solution"
    )


# -- solve: one LU factorization, reused by every derivative ------------------------------------
def _lu_factor_impl(a: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float(a)
    n = a.shape[-1]
    if n == 0:
        return a.copy(), np.zeros(a.shape[:-1], np.int32)
    getrf = _lapack("getrf", a.dtype)
    if a.ndim == 2:
        lu, piv, info = getrf(a)
        if info > 0:
            raise _singular("solve", info)
        return lu, piv
    lu = np.empty(a.shape, a.dtype)
    piv = np.empty(a.shape[:-1], np.int32)
    for i in np.ndindex(*a.shape[:-2]):
        lu[i], piv[i], info = getrf(a[i])
        if info > 0:
            raise _singular(f"solve (matrix {i} of the stack)", info)
    return lu, piv


# The LU factorization of a matrix (LAPACK getrf: packed L\U and 0-based row pivots). It has
# no derivative rule on purpose: it is a constant that `lu_solve` consults; derivatives
# with respect to the matrix flow through lu_solve's first argument instead.
lu_factor_p = Primitive(
    "lu_factor",
    _lu_factor_impl,
    shape=lambda a: (
        ShapeDtype(a.shape, _float_dtype(a.dtype)),
        ShapeDtype(a.shape[:-1], np.dtype(np.int32)),
    ),
    nondiff=True,
    multiple_results=True,
)
lu_factor_p.defbatch(_stacked_batch(lu_factor_p))


def _batched_solve(a: Any, b: np.ndarray, trans: int, vec: bool) -> np.ndarray:
    """NumPy's vectorized solver, for large stacks of small matrices (no factorization to
    reuse: each call factorizes, but in one C loop over the stack)."""
    a = _as_float(a)
    bm = b[..., None] if vec else b
    try:
        x = np.linalg.solve(np.swapaxes(a, -1, -2) if trans else a, bm)
    except LinAlgError:
        raise _singular("solve (a matrix of the stack)") from None
    return x[..., 0] if vec else x


def _lu_solve_impl(a: Any, lu: Any, piv: Any, b: Any, *, trans: int, vec: bool) -> np.ndarray:
    b = np.asarray(b)
    if lu is None:
        return _batched_solve(a, b, trans, vec)
    dt = np.result_type(lu.dtype, b.dtype)
    if dt != lu.dtype:
        lu = lu.astype(dt)
    n = lu.shape[-1]
    bm = b[..., None] if vec else b
    if n == 0:
        out = np.zeros(np.broadcast_shapes(lu.shape[:-2], bm.shape[:-2]) + bm.shape[-2:], dt)
        return out[..., 0] if vec else out
    getrs = _lapack("getrs", dt)
    if lu.ndim == 2:
        if b.ndim == 1:  # the common case: one matrix, one vector
            return getrs(lu, piv, b, trans=trans)[0]
        if bm.ndim == 2:
            x = getrs(lu, piv, bm, trans=trans)[0]
        else:  # a stack of right-hand sides against one matrix: fold it into columns
            bt = np.moveaxis(bm, -2, 0)
            x = getrs(lu, piv, bt.reshape(n, -1), trans=trans)[0]
            x = np.moveaxis(x.reshape(bt.shape), 0, -2)
    else:
        batch = np.broadcast_shapes(lu.shape[:-2], bm.shape[:-2])
        lus = np.broadcast_to(lu, batch + (n, n))
        pivs = np.broadcast_to(piv, batch + (n,))
        bs = np.broadcast_to(bm, batch + bm.shape[-2:])
        x = np.empty(batch + bm.shape[-2:], dt)
        for i in np.ndindex(*batch):
            x[i] = getrs(lus[i], pivs[i], bs[i], trans=trans)[0]
    return x[..., 0] if vec else x


def _lu_solve_shape(a, lu, piv, b, *, trans: int, vec: bool) -> ShapeDtype:
    dt = _float_dtype(np.result_type(a.dtype, b.dtype))
    if vec:
        return ShapeDtype(np.broadcast_shapes(a.shape[:-2], b.shape[:-1]) + a.shape[-1:], dt)
    return ShapeDtype(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:], dt)


def _apply(m: Any, x: Any, vec: bool) -> Any:
    """``m @ x`` where ``x`` is a stack of matrices, or of vectors when ``vec``."""
    if vec and len(shape_of(x)) > 1:
        out = matmul(m, expand_dims(x, -1))
        return reshape(out, shape_of(out)[:-1])
    return matmul(m, x)


def _outer(u: Any, v: Any, vec: bool) -> Any:
    """``u @ v^T`` for stacks of matrices, or the outer products of stacks of vectors."""
    if vec and type(u) is np.ndarray and type(v) is np.ndarray and u.ndim == 1:
        return LowRankArray.outer(u, v)  # kept factored: see core/lowrank.py
    if vec:
        return expand_dims(u, -1) * expand_dims(v, -2)
    return matmul(u, _mT(v))


def _lu_solve_jvp(tangents, ans, a, lu, piv, b, *, trans: int, vec: bool) -> Any:
    ta, tb = tangents[0], tangents[3]
    rhs = tb
    if ta is not None:
        # A x = b  =>  A dx = db - dA x   (and A^T dx = db - dA^T x for trans=1)
        da_x = _apply(ta if trans == 0 else _mT(ta), ans, vec)
        rhs = -da_x if rhs is None else rhs - da_x
    if rhs is None:
        return None
    return lu_solve_p.bind(a, lu, piv, rhs, trans=trans, vec=vec)


def _lu_solve_vjp(g, ans, needs, a, lu, piv, b, *, trans: int, vec: bool) -> list:
    # One adjoint solve with the same factorization: gb = A^{-T} g (A^{-1} g for trans=1).
    gb = lu_solve_p.bind(a, lu, piv, g, trans=1 - trans, vec=vec)
    ga = None
    if needs[0]:
        ga = _outer(gb, ans, vec) if trans == 0 else _outer(ans, gb, vec)
        ga = unbroadcast(-ga, shape_of(a))
    return [ga, None, None, unbroadcast(gb, shape_of(b)) if needs[3] else None]


# x = A^{-1} b (trans=0) or A^{-T} b (trans=1) given A's LU factorization; `a` is the matrix
# itself, which the impl does not read: it carries the derivative with respect to A. Without a
# factorization (lu = piv = None) the impl calls NumPy's batched solver on `a`.
lu_solve_p = Primitive("lu_solve", _lu_solve_impl, shape=_lu_solve_shape)
lu_solve_p.defjvp_joint(_lu_solve_jvp)
lu_solve_p.defvjp_joint(_lu_solve_vjp)
lu_solve_p.defbatch(_leading_batch(lu_solve_p, lambda trans, vec: (2, 2, 1, 1 if vec else 2)))


def solve(a: Any, b: Any) -> Any:
    """The solution ``x`` of ``a @ x = b`` (as ``numpy.linalg.solve``).

    ``a`` is ``(..., M, M)``; ``b`` is a vector ``(M,)`` or a stack of matrices ``(..., M, K)``
    whose batch dimensions broadcast against those of ``a`` (NumPy 2 semantics).
    Differentiable in both arguments. ``a`` is LU-factorized once; every derivative (of any
    order, forward or reverse) reuses that factorization for its solves with ``a`` or
    ``a.T``. (Long stacks of small matrices, over 4 matrices smaller than 16 x 16, go to
    NumPy's vectorized solver instead, which is faster there even though it factorizes on
    each solve.) A singular ``a`` raises :class:`numpy.linalg.LinAlgError`.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> a = np.array([[3.0, 1.0], [1.0, 2.0]])
    >>> sg.grad(lambda b: np.sum(np.linalg.solve(a, b)))(np.array([1.0, 1.0]))
    array([0.2, 0.4])
    """
    a, b = _asarray(a), _asarray(b)
    sa, sb = shape_of(a), shape_of(b)
    n = _check_square(sa, "solve")
    vec = len(sb) == 1
    if len(sb) == 0:
        raise ValueError("solve: b must be a vector (M,) or a stack of matrices (..., M, K)")
    if sb[-1 if vec else -2] != n:
        raise ValueError(
            f"solve: a of shape {sa} and b of shape {sb} do not match: b must have {n} rows "
            f"({'(M,)' if vec else '(..., M, K)'} with M = {n})"
        )
    if not vec:
        try:
            np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ValueError(
                f"solve: the batch dimensions of a {sa[:-2]} and b {sb[:-2]} do not broadcast"
            ) from None
    a, b = _promote(a, b)
    if _factorize_each(sa):
        lu, piv = lu_factor_p.bind(a)
    else:
        lu = piv = None
    return lu_solve_p.bind(a, lu, piv, b, trans=0, vec=vec)


def _factorize_each(shape: tuple[int, ...]) -> bool:
    """Whether to LU-factorize each matrix of a stack (LAPACK, one call per matrix) rather
    than hand every solve to NumPy's vectorized solver: yes for a single matrix, short stacks
    and matrices large enough for the O(n^3) factorization to dominate the per-call cost."""
    count = int(np.prod(shape[:-2]))
    return count <= 4 or shape[-1] >= 16


# -- triangular solve (used by cholesky's rules) -------------------------------------------------
def _trisolve_impl(a: Any, b: Any, *, lower: bool, trans: int) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    dt = _float_dtype(np.result_type(a.dtype, b.dtype))
    a, b = a.astype(dt, copy=False), b.astype(dt, copy=False)
    if a.ndim == 2 and b.ndim == 2 and a.shape[-1] > 0:
        x, info = _lapack("trtrs", dt)(a, b, lower=int(lower), trans=trans)
        if info > 0:
            raise _singular("triangular solve")
        return x
    full, _ = _tri_masks(a.shape[-1], lower)
    tri = a * full
    return np.linalg.solve(np.swapaxes(tri, -1, -2) if trans else tri, b)


def _trisolve_jvp(tangents, ans, a, b, *, lower: bool, trans: int) -> Any:
    ta, tb = tangents
    rhs = tb
    if ta is not None:
        ta = ta * _tri_masks(shape_of(a)[-1], lower)[0]  # only the triangle is read
        da_x = matmul(ta if trans == 0 else _mT(ta), ans)
        rhs = -da_x if rhs is None else rhs - da_x
    if rhs is None:
        return None
    return trisolve_p.bind(a, rhs, lower=lower, trans=trans)


def _trisolve_vjp(g, ans, needs, a, b, *, lower: bool, trans: int) -> list:
    gb = trisolve_p.bind(a, g, lower=lower, trans=1 - trans)
    ga = None
    if needs[0]:
        ga = matmul(gb, _mT(ans)) if trans == 0 else matmul(ans, _mT(gb))
        ga = unbroadcast(-ga * _tri_masks(shape_of(a)[-1], lower)[0], shape_of(a))
    return [ga, unbroadcast(gb, shape_of(b)) if needs[1] else None]


# x = T^{-1} b or T^{-T} b for the lower (or upper) triangle T of `a`; b is (..., n, k).
trisolve_p = Primitive(
    "solve_triangular",
    _trisolve_impl,
    shape=lambda a, b, *, lower, trans: ShapeDtype(
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:],
        _float_dtype(np.result_type(a.dtype, b.dtype)),
    ),
)
trisolve_p.defjvp_joint(_trisolve_jvp)
trisolve_p.defvjp_joint(_trisolve_vjp)
trisolve_p.defbatch(_leading_batch(trisolve_p, lambda lower, trans: (2, 2)))


# -- inv ------------------------------------------------------------------------------------------
def _inv_impl(a: Any) -> np.ndarray:
    a = _as_float(a)
    if a.ndim == 2 and a.shape[0] > 0:
        lu, piv, info = _lapack("getrf", a.dtype)(a)
        if info > 0:
            raise _singular("inv", info)
        return _lapack("getri", a.dtype)(lu, piv)[0]
    try:
        return np.linalg.inv(a)
    except LinAlgError:
        raise _singular("inv") from None


inv_p = Primitive("inv", _inv_impl, shape=lambda a: ShapeDtype(a.shape, _float_dtype(a.dtype)))
inv_p.defjvp(lambda t, ans, a: -matmul(matmul(ans, t), ans))
inv_p.defvjp(lambda g, ans, a: -matmul(matmul(_mT(ans), g), _mT(ans)))
inv_p.defbatch(_stacked_batch(inv_p))


def inv(a: Any) -> Any:
    """The inverse of each matrix of ``a`` ``(..., M, M)`` (as ``numpy.linalg.inv``).

    A singular matrix raises :class:`numpy.linalg.LinAlgError`. To apply an inverse to a
    vector or matrix, :func:`solve` is cheaper and more accurate.
    """
    a = _asarray(a)
    _check_square(shape_of(a), "inv")
    return inv_p.bind(a)


# -- det, through the adjugate (finite derivatives at singular matrices too) --------------------
def _prod_except(s: np.ndarray) -> np.ndarray:
    """``out[..., i] = prod_{j != i} s[..., j]`` without dividing (zeros allowed)."""
    n = s.shape[-1]
    ones = np.ones(s.shape[:-1] + (1,), s.dtype)
    before = np.cumprod(np.concatenate([ones, s[..., :-1]], axis=-1), axis=-1)
    after = np.cumprod(np.concatenate([ones, s[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return before * after if n else s


def _regular_inverse(a: np.ndarray) -> np.ndarray | None:
    """``inv(a)`` if every matrix of the stack is well conditioned (1-norm condition number
    below 1e6), so that ``det(a) * inv(a)`` is an accurate adjugate; else None."""
    with np.errstate(all="ignore"):
        try:
            ainv = np.linalg.inv(a)
        except LinAlgError:
            return None
        cond = np.max(np.abs(a).sum(axis=-2), axis=-1) * np.max(np.abs(ainv).sum(axis=-2), axis=-1)
    return ainv if np.all(cond < 1e6) else None


def _inverse_for_rule(a: Any) -> Any:
    """The differentiable ``inv(a)`` for the adjugate's rules, or None for the SVD branch.
    A captured graph (``sg.jit``) always takes the inverse: at an exactly singular matrix its
    kernel raises ``LinAlgError`` where eager mode switches to the SVD."""
    value = _value_or_none(a)
    if value is None:
        return inv_p.bind(a)
    ainv = _regular_inverse(value)
    if ainv is None or not isinstance(a, Tracer):
        return ainv
    return inv_p.bind(a)


class _SVDParts(NamedTuple):
    """The adjugate of ``U diag(s) V^T`` is ``c V diag(p) U^T`` (c = det U det V, ``p_i`` the
    product of the other singular values); ``pp[i, j]`` is the product of all but ``s_i, s_j``
    (zero on the diagonal): the derivative of ``adj(diag(s))``."""

    u: np.ndarray
    v: np.ndarray
    c: np.ndarray
    p: np.ndarray
    pp: np.ndarray


def _svd_parts(a: np.ndarray) -> _SVDParts:
    u, s, vt = np.linalg.svd(a)
    c = np.linalg.det(u) * np.linalg.det(vt)
    n = s.shape[-1]
    pp = np.zeros(s.shape + (n,), s.dtype)
    for i in range(n):
        si = s.copy()
        si[..., i] = 1.0
        pp[..., i, :] = _prod_except(si)
        pp[..., i, i] = 0.0
    return _SVDParts(u, np.swapaxes(vt, -1, -2), c[..., None, None], _prod_except(s), pp)


def _adjugate_impl(a: Any) -> np.ndarray:
    a = _as_float(a)
    n = a.shape[-1]
    if n <= 1:
        return np.ones_like(a)
    ainv = _regular_inverse(a)
    if ainv is not None:
        return np.linalg.det(a)[..., None, None] * ainv
    parts = _svd_parts(a)
    return parts.c * ((parts.v * parts.p[..., None, :]) @ np.swapaxes(parts.u, -1, -2))


def _svd_branch_parts(a: Any) -> _SVDParts:
    if isinstance(a, Tracer):
        raise NotImplementedError(
            "derivatives of det of order 3 and higher at a singular (or nearly singular) "
            "matrix are not supported"
        )
    return _svd_parts(np.asarray(a, dtype=float))


def _adj_diag_derivative(e: Any, pp: np.ndarray) -> Any:
    """The derivative of ``adj(diag(s))`` along ``e``: ``-e * pp`` off the diagonal and
    ``pp @ diag(e)`` on it. It is self-adjoint (``pp`` is symmetric)."""
    return _diag_matrix(sum_(pp * expand_dims(_diag_part(e), -2), axis=-1)) - e * pp


def _adjugate_jvp(t: Any, ans: Any, a: Any) -> Any:
    n = shape_of(a)[-1]
    if n <= 1:
        return None
    ainv = _inverse_for_rule(a)
    if ainv is not None:
        # adj = det A^{-1}:  d adj = tr(A^{-1} dA) adj - adj dA A^{-1}
        tr = sum_(_mT(ainv) * t, axis=(-2, -1), keepdims=True)
        return tr * ans - matmul(matmul(ans, t), ainv)
    q = _svd_branch_parts(a)
    e = matmul(matmul(q.u.swapaxes(-1, -2), t), q.v)
    return q.c * matmul(matmul(q.v, _adj_diag_derivative(e, q.pp)), q.u.swapaxes(-1, -2))


def _adjugate_vjp(g: Any, ans: Any, a: Any) -> Any:
    n = shape_of(a)[-1]
    if n <= 1:
        return None
    ainv = _inverse_for_rule(a)
    if ainv is not None:
        ainv_t = _mT(ainv)
        ga = sum_(g * ans, axis=(-2, -1), keepdims=True) * ainv_t
        return ga - matmul(matmul(_mT(ans), g), ainv_t)
    q = _svd_branch_parts(a)
    h = matmul(matmul(q.v.swapaxes(-1, -2), g), q.u)
    return q.c * matmul(matmul(q.u, _adj_diag_derivative(h, q.pp)), q.v.swapaxes(-1, -2))


# The adjugate (classical adjoint) adj(A), with adj(A) A = det(A) I; polynomial in A, so
# smooth everywhere. Computed as det(A) A^{-1} when A is well conditioned, else from the SVD.
adjugate_p = Primitive(
    "adjugate", _adjugate_impl, shape=lambda a: ShapeDtype(a.shape, _float_dtype(a.dtype))
)
adjugate_p.defjvp(_adjugate_jvp)
adjugate_p.defvjp(_adjugate_vjp)
adjugate_p.defbatch(_stacked_batch(adjugate_p))

det_p = Primitive(
    "det",
    lambda a: np.linalg.det(_as_float(a)),
    shape=lambda a: ShapeDtype(a.shape[:-2], _float_dtype(a.dtype)),
)
det_p.defjvp(lambda t, ans, a: sum_(_mT(_adjugate(a)) * t, axis=(-2, -1)))
det_p.defvjp(lambda g, ans, a: _matrix_scalar(g) * _mT(_adjugate(a)))
det_p.defbatch(_stacked_batch(det_p))


def det(a: Any) -> Any:
    """The determinant of each matrix of ``a`` ``(..., M, M)`` (as ``numpy.linalg.det``).

    Its gradient is the transposed adjugate (cofactor matrix): finite everywhere,
    including at singular matrices (where it is computed from the SVD). Second derivatives
    are available everywhere; higher ones only at well-conditioned matrices, except for
    2x2 and 3x3 matrices, whose determinant is computed by cofactors (a polynomial: every
    order is exact everywhere, and ``sg.jit`` compiles it to scalar code).
    """
    a = _asarray(a)
    n = _check_square(shape_of(a), "det")
    if n in (2, 3):
        # Cofactor expansion with primitives: a polynomial, so derivatives of every order
        # are exact everywhere, and sg.jit unrolls it.
        return sum_(a[..., 0, :] * _mT(_small_adjugate(a))[..., 0, :], axis=-1)
    return det_p.bind(a)


def _cofactor_indices(n: int) -> tuple[np.ndarray, ...]:
    """Flat indices (p, q, r, t) with ``adj(a).flat = a.flat[p] a.flat[q] - a.flat[r]
    a.flat[t]`` for a 2x2 (r, t unused: the adjugate is linear) or 3x3 matrix."""
    if n == 2:  # [[d, -b], [-c, a]]
        return np.array([3, 1, 2, 0]), np.array([1.0, -1.0, -1.0, 1.0])
    p, q, r, t = [], [], [], []
    for i in range(3):
        for j in range(3):
            # adj[i, j] is the cofactor (j, i); cyclic rows and columns carry the sign.
            r1, r2, c1, c2 = (j + 1) % 3, (j + 2) % 3, (i + 1) % 3, (i + 2) % 3
            p.append(3 * r1 + c1)
            q.append(3 * r2 + c2)
            r.append(3 * r1 + c2)
            t.append(3 * r2 + c1)
    return tuple(np.array(x) for x in (p, q, r, t))


def _small_adjugate(a: Any) -> Any:
    """The adjugate of 2x2 or 3x3 matrices as a polynomial of their entries."""
    n = shape_of(a)[-1]
    flat = reshape(a, (*shape_of(a)[:-2], n * n))
    if n == 2:
        index, sign = _cofactor_indices(2)
        return reshape(flat[..., index] * sign, shape_of(a))
    p, q, r, t = _cofactor_indices(3)
    adj = flat[..., p] * flat[..., q] - flat[..., r] * flat[..., t]
    return reshape(adj, shape_of(a))


def _adjugate(a: Any) -> Any:
    n = shape_of(a)[-1]
    return _small_adjugate(a) if n in (2, 3) else adjugate_p.bind(a)


def _check_nonsingular_for_log(sign: Any) -> None:
    # A compiled derivative has no value to check here: its inverse raises instead.
    value = _value_or_none(sign)
    if value is not None and not np.all(value != 0):
        raise LinAlgError(
            "slogdet: the derivative of log|det(a)| at a singular matrix is infinite "
            "(log|det| = -inf there)"
        )


def _slogdet_jvp(tangents, ans, a) -> tuple:
    (t,) = tangents
    _check_nonsingular_for_log(ans[0])
    return None, sum_(_mT(inv_p.bind(a)) * t, axis=(-2, -1))


def _slogdet_vjp(g, ans, needs, a) -> list:
    _check_nonsingular_for_log(ans[0])
    return [_matrix_scalar(g[1]) * _mT(inv_p.bind(a))]


slogdet_p = Primitive(
    "slogdet",
    lambda a: tuple(np.linalg.slogdet(_as_float(a))),
    shape=lambda a: (ShapeDtype(a.shape[:-2], _float_dtype(a.dtype)),) * 2,
    multiple_results=True,
)
slogdet_p.defjvp_joint(_slogdet_jvp)
slogdet_p.defvjp_joint(_slogdet_vjp)
slogdet_p.defbatch(_stacked_batch(slogdet_p))


def slogdet(a: Any) -> SlogdetResult:
    """Sign and log of the absolute value of the determinant (as ``numpy.linalg.slogdet``).

    ``sign`` is piecewise constant (no derivative); ``logabsdet`` has gradient
    ``inv(a).T``. Differentiating at a singular matrix raises
    :class:`numpy.linalg.LinAlgError`.
    """
    a = _asarray(a)
    _check_square(shape_of(a), "slogdet")
    return SlogdetResult(*slogdet_p.bind(a))


# -- cholesky -----------------------------------------------------------------------------------
def _phi(x: Any) -> Any:
    """The lower triangle of ``x`` with its diagonal halved."""
    n = shape_of(x)[-1]
    return x * (_tri_masks(n, True)[0] - 0.5 * _eye(n))


def _cholesky_impl(a: Any, *, upper: bool) -> np.ndarray:
    try:
        return np.linalg.cholesky(_as_float(a), upper=upper)
    except LinAlgError:
        raise LinAlgError("cholesky: Matrix is not positive definite") from None


def _cholesky_jvp(t: Any, ans: Any, a: Any, *, upper: bool) -> Any:
    # Murray (2016): dL = L Phi(L^{-1} dA L^{-T}), dA the symmetric perturbation.
    ell = _mT(ans) if upper else ans
    s = _sym_from_triangle(t, not upper)
    tmp = trisolve_p.bind(ell, s, lower=True, trans=0)  # L^{-1} S
    tmp = trisolve_p.bind(ell, _mT(tmp), lower=True, trans=0)  # L^{-1} S L^{-T}
    dl = matmul(ell, _phi(tmp))
    return _mT(dl) if upper else dl


def _cholesky_vjp(g: Any, ans: Any, a: Any, *, upper: bool) -> Any:
    # The transpose of the JVP: S_bar = L^{-T} Phi(L^T L_bar) L^{-1}.
    ell = _mT(ans) if upper else ans
    gl = _mT(g) if upper else g
    p = _phi(matmul(_mT(ell), gl))
    tmp = trisolve_p.bind(ell, p, lower=True, trans=1)  # L^{-T} P
    tmp = trisolve_p.bind(ell, _mT(tmp), lower=True, trans=1)  # (L^{-T} P L^{-1})^T
    return _sym_from_triangle_T(_mT(tmp), not upper)


cholesky_p = Primitive(
    "cholesky",
    _cholesky_impl,
    shape=lambda a, *, upper: ShapeDtype(a.shape, _float_dtype(a.dtype)),
)
cholesky_p.defjvp(_cholesky_jvp)
cholesky_p.defvjp(_cholesky_vjp)
cholesky_p.defbatch(_stacked_batch(cholesky_p))


def cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """The Cholesky factor ``L`` (``a = L L^T``) of each matrix of ``a`` (as
    ``numpy.linalg.cholesky``); ``upper=True`` gives ``L^T``.

    Only the lower (``upper=True``: upper) triangle of ``a`` is read, so only it has a
    derivative; it acts as the symmetric matrix it stands for. A matrix that is not
    positive definite raises :class:`numpy.linalg.LinAlgError`.
    """
    a = _asarray(a)
    _check_square(shape_of(a), "cholesky")
    return cholesky_p.bind(a, upper=bool(upper))


# -- eigh / eigvalsh ------------------------------------------------------------------------------
def _eigh_impl(a: Any, *, UPLO: str) -> tuple[np.ndarray, np.ndarray]:
    w, v = np.linalg.eigh(_as_float(a), UPLO=UPLO)
    return w, v


def _inverse_gaps(w: Any) -> Any:
    """``F[..., i, j] = 1 / (w_j - w_i)``, and 0 where ``i == j`` or the eigenvalues are
    equal to working precision (there the eigenvector derivative is undefined)."""
    wc = _value_or_none(w)
    if wc is None:  # a captured graph: degenerate pairs are found at run time
        n = shape_of(w)[-1]
        diff = expand_dims(w, -2) - expand_dims(w, -1)
        scale = expand_dims(max_(abs_(w), axis=-1, keepdims=True), -1)
        degenerate = abs_(diff) <= 8 * n * np.finfo(dtype_of(w)).eps * scale
        return where(degenerate, 0.0, 1.0 / where(degenerate, 1.0, diff))
    n = wc.shape[-1]
    gaps = wc[..., None, :] - wc[..., :, None]
    scale = np.max(np.abs(wc), axis=-1, initial=0.0)[..., None, None]
    degenerate = np.abs(gaps) <= 8 * n * np.finfo(wc.dtype).eps * scale
    diff = expand_dims(w, -2) - expand_dims(w, -1)
    if not (degenerate & (_eye(n) == 0)).any():
        # Dividing (1 - I) rather than subtracting I keeps the diagonal exactly 0, and its
        # derivative too, when the eigenvalues are large.
        return (1.0 - _eye(n)) / (diff + _eye(n))
    return where(degenerate, 0.0, 1.0 / where(degenerate, 1.0, diff))


def _eigh_jvp(tangents, ans, a, *, UPLO: str) -> tuple:
    (t,) = tangents
    w, v = ans
    q = matmul(matmul(_mT(v), _sym_from_triangle(t, UPLO == "L")), v)
    return _diag_part(q), matmul(v, _inverse_gaps(w) * q)


def _eigh_vjp(g, ans, needs, a, *, UPLO: str) -> list:
    gw, gv = g
    w, v = ans
    inner = _diag_matrix(gw)
    if isinstance(gv, Tracer) or np.any(gv):
        inner = inner + _inverse_gaps(w) * matmul(_mT(v), gv)
    return [_sym_from_triangle_T(matmul(matmul(v, inner), _mT(v)), UPLO == "L")]


eigh_p = Primitive(
    "eigh",
    _eigh_impl,
    shape=lambda a, *, UPLO: (
        ShapeDtype(a.shape[:-1], _float_dtype(a.dtype)),
        ShapeDtype(a.shape, _float_dtype(a.dtype)),
    ),
    multiple_results=True,
)
eigh_p.defjvp_joint(_eigh_jvp)
eigh_p.defvjp_joint(_eigh_vjp)
eigh_p.defbatch(_stacked_batch(eigh_p))


def _check_uplo(UPLO: str) -> str:
    if UPLO not in ("L", "U"):
        raise ValueError(f"UPLO argument must be 'L' or 'U', got {UPLO!r}")
    return UPLO


def eigh(a: Any, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and orthonormal eigenvectors of symmetric matrices ``a``
    ``(..., M, M)`` (as ``numpy.linalg.eigh``); only the ``UPLO`` triangle is read.

    Derivatives: ``dw_i = v_i^T dA v_i`` and ``dV = V (F * (V^T dA V))`` with
    ``F_ij = 1 / (w_j - w_i)``. Where eigenvalues repeat (to working precision) the
    eigenvectors are not unique and their derivative is undefined: the division is guarded
    (the terms coupling equal eigenvalues are set to zero), so first derivatives of
    functions of the eigenvalues alone stay finite and correct, while derivatives through
    the eigenvectors, and second derivatives, are finite but not meaningful there.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.grad(lambda a: np.sum(np.linalg.eigh(a).eigenvalues))(np.eye(2))
    array([[1., 0.],
           [0., 1.]])
    """
    a = _asarray(a)
    _check_square(shape_of(a), "eigh")
    return EighResult(*eigh_p.bind(a, UPLO=_check_uplo(UPLO)))


def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """Eigenvalues (ascending) of symmetric matrices (as ``numpy.linalg.eigvalsh``).

    Where eigenvalues repeat, first derivatives of symmetric functions of them (their sum,
    sum of squares, ...) stay finite and correct; see :func:`eigh`.
    """
    return eigh(a, UPLO).eigenvalues


# -- svd ------------------------------------------------------------------------------------------
def _svd_impl(a: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u, s, vh = np.linalg.svd(_as_float(a), full_matrices=False)
    return u, s, vh


def _svd_shape(a: ShapeDtype) -> tuple:
    m, n = a.shape[-2:]
    k = min(m, n)
    dt = _float_dtype(a.dtype)
    b = a.shape[:-2]
    return ShapeDtype(b + (m, k), dt), ShapeDtype(b + (k,), dt), ShapeDtype(b + (k, n), dt)


def _svd_gaps(s: Any) -> Any:
    """``F[i, j] = 1 / (s_j^2 - s_i^2)`` (0 on the diagonal and for equal values)."""
    return _inverse_gaps(s * s)


def _safe_reciprocal(s: Any) -> Any:
    zero = _concrete(s) == 0
    if not zero.any():
        return 1.0 / s
    return where(zero, 0.0, 1.0 / where(zero, 1.0, s))


def _svd_jvp(tangents, ans, a) -> tuple:
    # Townsend (2016) for the thin SVD A = U S V^T, with the gauge of each singular pair fixed
    # by keeping diag(U^T dU) = 0 (real case).
    (t,) = tangents
    u, s, vh = ans
    v = _mT(vh)
    m, n = shape_of(a)[-2:]
    dp = matmul(matmul(_mT(u), t), v)  # (k, k)
    ds = _diag_part(dp)
    f = _svd_gaps(s)
    s_row = expand_dims(s, -2)
    dp_t = _mT(dp)
    # U^T dU = F * (dP S + S dP^T),  V^T dV = F * (S dP + dP^T S)
    du = matmul(u, f * (dp * s_row + expand_dims(s, -1) * dp_t))
    dv = matmul(v, f * (expand_dims(s, -1) * dp + dp_t * s_row))
    k = shape_of(s)[-1]
    if m > k:  # the part of dA V S^{-1} outside span(U)
        du = du + (matmul(t, v) - matmul(u, dp)) * expand_dims(_safe_reciprocal(s), -2)
    if n > k:  # the part of dA^T U S^{-1} outside span(V)
        dv = dv + (matmul(_mT(t), u) - matmul(v, dp_t)) * expand_dims(_safe_reciprocal(s), -2)
    return du, ds, _mT(dv)


def _svd_vjp(g, ans, needs, a) -> list:
    gu, gs, gvh = g
    u, s, vh = ans
    v = _mT(vh)
    gv = _mT(gvh)
    m, n = shape_of(a)[-2:]
    f = _svd_gaps(s)
    s_col, s_row = expand_dims(s, -1), expand_dims(s, -2)
    ju = f * matmul(_mT(u), gu)  # F * (U^T Ubar)
    jv = f * matmul(_mT(v), gv)  # F * (V^T Vbar)
    # Transpose of dU = U (F*(dP S + S dP^T)) and dV = V (F*(S dP + dP^T S)) in dP.
    inner = _diag_matrix(gs) + (ju + _mT(ju)) * s_row + s_col * (jv + _mT(jv))
    ga = matmul(matmul(u, inner), vh)
    sinv = _safe_reciprocal(s)
    if m > shape_of(s)[-1]:
        proj = gu - matmul(u, matmul(_mT(u), gu))
        ga = ga + matmul(proj * expand_dims(sinv, -2), vh)
    if n > shape_of(s)[-1]:
        proj = gv - matmul(v, matmul(_mT(v), gv))
        ga = ga + matmul(u, _mT(proj * expand_dims(sinv, -2)))
    return [ga]


svd_p = Primitive("svd", _svd_impl, shape=_svd_shape, multiple_results=True)
svd_p.defjvp_joint(_svd_jvp)
svd_p.defvjp_joint(_svd_vjp)
svd_p.defbatch(_stacked_batch(svd_p))


def svd(
    a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False
) -> Any:
    """Singular value decomposition ``a = U diag(S) Vh`` (as ``numpy.linalg.svd``).

    Differentiable for the thin decomposition (``full_matrices=False``, or square ``a``)
    and for the singular values alone (``compute_uv=False``). The derivatives of ``U`` and
    ``Vh`` are undefined for repeated singular values (the coupling terms are set to zero,
    as in :func:`eigh`) and, for non-square ``a``, for zero singular values; functions of the
    singular values alone are differentiable wherever they are distinct or not needed.
    """
    a = _asarray(a)
    sa = shape_of(a)
    _check_matrix(sa, "svd")
    if hermitian:
        raise NotImplementedError("svd: hermitian=True is not supported")
    if full_matrices and compute_uv and sa[-1] != sa[-2]:
        raise NotImplementedError(
            "svd: full_matrices=True is not differentiable for non-square matrices (the "
            "extra singular vectors are arbitrary); pass full_matrices=False"
        )
    u, s, vh = svd_p.bind(a)
    return SVDResult(u, s, vh) if compute_uv else s


def svdvals(x: Any, /) -> Any:
    """The singular values of each matrix of ``x``, descending (as ``numpy.linalg.svdvals``)."""
    return svd(x, full_matrices=False, compute_uv=False)


def _pinv_jvp(t: Any, ans: Any, a: Any, *, rcond: Any) -> Any:
    # Golub & Pereyra (1973), for constant rank:
    # dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P
    p, pt, tt = ans, _mT(ans), _mT(t)
    left = matmul(p, matmul(pt, tt))
    right = matmul(tt, matmul(pt, p))
    return (
        -matmul(matmul(p, t), p)
        + (left - matmul(matmul(left, a), p))
        + (right - matmul(p, matmul(a, right)))
    )


def _pinv_vjp(g: Any, ans: Any, a: Any, *, rcond: Any) -> Any:
    p, pt, gt = ans, _mT(ans), _mT(g)
    left = matmul(gt, matmul(p, pt))  # (I - A P) G^T P P^T
    right = matmul(matmul(pt, p), gt)  # P^T P G^T (I - P A)
    return (
        -matmul(matmul(pt, g), pt)
        + (left - matmul(a, matmul(p, left)))
        + (right - matmul(matmul(right, p), a))
    )


pinv_p = Primitive(
    "pinv",
    lambda a, *, rcond: np.linalg.pinv(_as_float(a), rcond=rcond),
    shape=lambda a, *, rcond: ShapeDtype(
        a.shape[:-2] + (a.shape[-1], a.shape[-2]), _float_dtype(a.dtype)
    ),
)
pinv_p.defjvp(_pinv_jvp)
pinv_p.defvjp(_pinv_vjp)
pinv_p.defbatch(_stacked_batch(pinv_p))


def pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = None) -> Any:
    """The Moore-Penrose pseudo-inverse of each matrix of ``a`` (as ``numpy.linalg.pinv``).

    Singular values at most ``rcond * max(S)`` (default ``max(M, N) * eps``) count as zero.
    The derivative is that of the pseudo-inverse at fixed rank (Golub & Pereyra): exact where
    the rank is locally constant (full-rank matrices, or perturbations that keep the rank),
    finite everywhere.
    """
    a = _asarray(a)
    sa = shape_of(a)
    _check_matrix(sa, "pinv")
    if hermitian:
        raise NotImplementedError("pinv: hermitian=True is not supported")
    if rcond is None:
        rcond = rtol if rtol is not None else max(sa[-2:]) * np.finfo(dtype_of(a)).eps
    return pinv_p.bind(a, rcond=rcond)


# -- qr -------------------------------------------------------------------------------------------
def _qr_impl(a: Any) -> tuple[np.ndarray, np.ndarray]:
    q, r = np.linalg.qr(_as_float(a), mode="reduced")
    return q, r


def _qr_shape(a: ShapeDtype) -> tuple:
    m, n = a.shape[-2:]
    k = min(m, n)
    dt = _float_dtype(a.dtype)
    return ShapeDtype(a.shape[:-2] + (m, k), dt), ShapeDtype(a.shape[:-2] + (k, n), dt)


def _copyltu(x: Any) -> Any:
    """The strictly lower triangle of ``x`` mirrored above the diagonal, with the diagonal
    of ``x``: ``tril(x, -1) + diag(x) + tril(x, -1)^T``."""
    full, strict = _tri_masks(shape_of(x)[-1], True)
    return x * full + _mT(x * strict)


def _qr_jvp(tangents, ans, a) -> tuple:
    # A = Q R with m >= n: dR R^{-1} is upper triangular and Q^T dQ antisymmetric.
    (t,) = tangents
    q, r = ans
    dx_rinv = _mT(trisolve_p.bind(r, _mT(t), lower=False, trans=1))  # dA R^{-1}
    qt_dx_rinv = matmul(_mT(q), dx_rinv)
    strict = _tri_masks(shape_of(r)[-1], True)[1]
    qt_dx_rinv_lower = qt_dx_rinv * strict
    do = qt_dx_rinv_lower - _mT(qt_dx_rinv_lower)  # Q^T dQ, antisymmetric
    dq = matmul(q, do - qt_dx_rinv) + dx_rinv
    dr = matmul(qt_dx_rinv - do, r)
    return dq, dr


def _qr_vjp(g, ans, needs, a) -> list:
    # Walter & Lehmann / Liao et al. (2019), for m >= n.
    gq, gr = g
    q, r = ans
    m_ = matmul(r, _mT(gr)) - matmul(_mT(gq), q)
    b = gq + matmul(q, _copyltu(m_))
    return [_mT(trisolve_p.bind(r, _mT(b), lower=False, trans=0))]


qr_p = Primitive("qr", _qr_impl, shape=_qr_shape, multiple_results=True)
qr_p.defjvp_joint(_qr_jvp)
qr_p.defvjp_joint(_qr_vjp)
qr_p.defbatch(_stacked_batch(qr_p))


def qr(a: Any, mode: str = "reduced") -> Any:
    """QR decomposition ``a = Q R`` (as ``numpy.linalg.qr``) for ``(..., M, N)`` with
    ``M >= N`` (tall or square, full column rank).

    ``mode='reduced'`` returns ``(Q, R)``; ``mode='r'`` returns ``R`` only. The factors are
    NumPy's (signs of ``R``'s diagonal as LAPACK leaves them); derivatives assume ``R`` is
    invertible.
    """
    a = _asarray(a)
    sa = shape_of(a)
    _check_matrix(sa, "qr")
    if mode not in ("reduced", "r"):
        raise NotImplementedError(f"qr: mode={mode!r} is not supported (use 'reduced' or 'r')")
    if sa[-2] < sa[-1]:
        raise NotImplementedError(
            f"qr: derivatives need M >= N, got a matrix of shape {sa[-2:]} (factorize the "
            "transpose instead)"
        )
    q, r = qr_p.bind(a)
    return QRResult(q, r) if mode == "reduced" else r


# -- norm -----------------------------------------------------------------------------------------
def _norm2_impl(x: Any, *, axis: Any, keepdims: bool) -> np.ndarray:
    x = _as_float(x)
    return np.sqrt(np.add.reduce(x * x, axis=axis, keepdims=keepdims))


def _safe_divide_by_norm(v: Any, n: Any) -> Any:
    """``v / n`` taken as 0 where ``n == 0`` (the 2-norm's subgradient 0 at the origin)."""
    zero = _concrete(n) == 0
    if not zero.any():
        return v / n
    return where(zero, 0.0, v / where(zero, 1.0, n))


def _norm2_jvp(t: Any, ans: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    return _safe_divide_by_norm(sum_(x * t, axis=axis, keepdims=keepdims), ans)


def _norm2_vjp(g: Any, ans: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    shape = shape_of(x)
    g, n = expand_reduced(g, shape, axis, keepdims), expand_reduced(ans, shape, axis, keepdims)
    return _safe_divide_by_norm(g * x, n)


def _reduced_aval(x: ShapeDtype, *, axis: Any, keepdims: bool) -> ShapeDtype:
    axes = range(len(x.shape)) if axis is None else axis
    if keepdims:
        shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    else:
        shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    return ShapeDtype(shape, _float_dtype(x.dtype))


# sqrt(sum(x**2)) over `axis`, with derivative x / norm taken as 0 at the zero vector.
norm2_p = Primitive("norm2", _norm2_impl, shape=_reduced_aval)
norm2_p.defjvp(_norm2_jvp)
norm2_p.defvjp(_norm2_vjp)
norm2_p.defbatch(axes_batch_rule(norm2_p, "axis"))


def _vector_norm(x: Any, ord: Any, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    if ord is None or ord == 2:
        return norm2_p.bind(x, axis=axis, keepdims=keepdims)
    if ord == np.inf or ord == -np.inf:
        return (max_ if ord > 0 else min_)(abs_(x), axis=axis, keepdims=keepdims)
    if ord == 0:  # the number of non-zero entries: piecewise constant
        return sum_(astype(not_equal(x, 0.0), dtype_of(x)), axis=axis, keepdims=keepdims)
    if ord == 1:
        return sum_(abs_(x), axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    ord = float(ord)
    s = sum_(power(abs_(x), ord), axis=axis, keepdims=keepdims)
    zero = _concrete(s) == 0
    if ord > 0 and zero.any():
        return where(zero, 0.0, power(where(zero, 1.0, s), 1.0 / ord))
    return power(s, 1.0 / ord)


def _matrix_norm(x: Any, ord: Any, axis: tuple[int, int], keepdims: bool) -> Any:
    row, col = axis
    if ord in (None, "fro", "f"):
        return norm2_p.bind(x, axis=tuple(sorted(axis)), keepdims=keepdims)
    if ord in ("nuc", 2, -2):
        nd = len(shape_of(x))
        rest = tuple(i for i in range(nd) if i not in axis)
        s = svd(transpose(x, rest + (row, col)), compute_uv=False)
        if ord == "nuc":
            out = sum_(s, axis=-1)
        else:
            out = (max_ if ord == 2 else min_)(s, axis=-1)
        if keepdims:
            out = reshape(out, tuple(1 if i in axis else n for i, n in enumerate(shape_of(x))))
        return out
    if ord in (1, -1, np.inf, -np.inf):
        # 1: largest column sum of |x| (sum over rows); inf: largest row sum
        summed, over = (row, col) if ord in (1, -1) else (col, row)
        sums = sum_(abs_(x), axis=summed, keepdims=True)
        out = (max_ if ord > 0 else min_)(sums, axis=over, keepdims=True)
        if not keepdims:
            out = reshape(out, tuple(n for i, n in enumerate(shape_of(x)) if i not in axis))
        return out
    raise ValueError(f"norm: invalid norm order {ord!r} for matrices")


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vector or matrix norm (as ``numpy.linalg.norm``).

    Vector orders: ``None``/2, 1, ``inf``, ``-inf``, 0 (count of non-zeros: no derivative)
    and any other real ``p`` (``sum(|x|**p)**(1/p)``). Matrix orders (2-D ``x``, or a pair
    of axes): ``None``/``'fro'``, ``'nuc'``, 1, -1, ``inf``, ``-inf``, 2, -2 (the last
    three families through the SVD).

    At the zero vector the 2-norm (and Frobenius norm) is not differentiable; its gradient
    there is taken as 0, a valid subgradient, instead of NaN. The derivative of ``|x|`` at
    0 is 0, and ties in ``max``/``min`` share the derivative equally.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.grad(lambda x: np.linalg.norm(x))(np.array([3.0, 4.0]))
    array([0.6, 0.8])
    >>> sg.grad(lambda x: np.linalg.norm(x))(np.zeros(2))
    array([0., 0.])
    """
    x = _asarray(x)
    nd = len(shape_of(x))
    if axis is None:
        if ord is None:
            return norm2_p.bind(x, axis=None, keepdims=keepdims)
        if nd == 1:
            return _vector_norm(x, ord, (0,), keepdims)
        if nd == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise ValueError("Improper number of dimensions to norm.")
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    if len(axes) == 1:
        return _vector_norm(x, ord, normalize_axis(axes, nd), keepdims)
    if len(axes) == 2:
        row, col = (int(i) for i in axes)
        if not (-nd <= row < nd and -nd <= col < nd):
            raise np.exceptions.AxisError(
                f"axis {axes} is out of bounds for array of dimension {nd}"
            )
        row, col = row % nd, col % nd
        if row == col:
            raise ValueError("norm: duplicate axes given")
        return _matrix_norm(x, ord, (row, col), keepdims)
    raise ValueError("Improper number of dimensions to norm.")


# -- composites -----------------------------------------------------------------------------------
def matrix_power(a: Any, n: int) -> Any:
    """``a`` raised to the integer power ``n`` (as ``numpy.linalg.matrix_power``), by
    repeated squaring; negative ``n`` inverts first, ``n = 0`` gives the identity."""
    a = _asarray(a)
    m = _check_square(shape_of(a), "matrix_power")
    if not isinstance(n, int | np.integer):
        raise TypeError("exponent must be an integer")
    n = int(n)
    if n == 0:
        return broadcast_to(_eye(m, dtype_of(a)), shape_of(a))
    if n < 0:
        a, n = inv(a), -n
    result = None
    base = a
    while True:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if not n:
            return result
        base = matmul(base, base)


def multi_dot(arrays: Any, *, out: Any = None) -> Any:
    """The product of two or more arrays in the cheapest order (as
    ``numpy.linalg.multi_dot``); the first may be 1-D (a row vector), the last 1-D (a column
    vector), the others 2-D."""
    if out is not None:
        raise TypeError("multi_dot: out= is not supported (arrays are immutable under scigrad)")
    arrays = [_asarray(a) for a in arrays]
    if len(arrays) < 2:
        raise ValueError("Expecting at least two arrays.")
    first_vec, last_vec = len(shape_of(arrays[0])) == 1, len(shape_of(arrays[-1])) == 1
    if first_vec:
        arrays[0] = reshape(arrays[0], (1, -1))
    if last_vec:
        arrays[-1] = reshape(arrays[-1], (-1, 1))
    for a in arrays:
        if len(shape_of(a)) != 2:
            raise ValueError(f"multi_dot: array of shape {shape_of(a)} is not 2-D")
    for a, b in zip(arrays[:-1], arrays[1:], strict=True):
        if shape_of(a)[1] != shape_of(b)[0]:
            raise ValueError(f"multi_dot: shapes {shape_of(a)} and {shape_of(b)} not aligned")
    dims = [shape_of(a)[0] for a in arrays] + [shape_of(arrays[-1])[1]]
    k = len(arrays)
    # Matrix-chain ordering by dynamic programming on the (static) shapes.
    cost = [[0] * k for _ in range(k)]
    split = [[0] * k for _ in range(k)]
    for length in range(1, k):
        for i in range(k - length):
            j = i + length
            cost[i][j] = -1
            for s in range(i, j):
                c = cost[i][s] + cost[s + 1][j] + dims[i] * dims[s + 1] * dims[j + 1]
                if cost[i][j] < 0 or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, s

    def product(i: int, j: int) -> Any:
        if i == j:
            return arrays[i]
        return matmul(product(i, split[i][j]), product(split[i][j] + 1, j))

    result = product(0, k - 1)
    if first_vec and last_vec:
        return reshape(result, ())
    if first_vec or last_vec:
        return reshape(result, (-1,))
    return result
