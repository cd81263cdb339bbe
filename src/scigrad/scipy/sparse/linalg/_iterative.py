"""Iterative sparse solvers ``cg``, ``gmres``, ``bicgstab``, ``minres``, differentiated implicitly.

The solve ``x = A^{-1} b`` is a primitive whose ``impl`` runs SciPy's solver on concrete
values. Its derivatives never go back through the iterations (the iterates are an
approximation process, not the function being differentiated):

* forward mode: ``A x' = b' - A' x``, one more solve with the same method and preconditioner;
* reverse mode: ``A^T lam = g``, one solve with the transposed operator and the transposed
  preconditioner; then ``b_bar = lam`` and ``A_bar = -lam x^T`` on the stored entries only
  (``-lam[rows] * x[cols]``, O(nnz)); for a matrix-free operator ``A(p)``,
  ``p_bar = -d/dp <lam, A(p) x>`` (one reverse pass through the matvec).

The rules call the same primitive again, so second derivatives are solves too. A
derivative is only as accurate as the solves that produce it: ask for a tight ``rtol``
when the gradient matters.

What is differentiable: the stored values of a scigrad ``SparseArray`` ``A`` (the adjoint
solve uses the same values on ``pattern.T``), a dense traced ``A``, the ``params`` of a
scigrad :class:`LinearOperator`, and ``b``. SciPy sparse arrays, NumPy arrays and SciPy
``LinearOperator``\\ s given as ``A`` are constants. The preconditioner ``M`` (sparse or dense
matrix, SciPy or scigrad ``LinearOperator``) is always a constant: the converged ``x`` does
not depend on it. cg and minres assume symmetric ``A`` and ``M`` (SciPy's contract) and reuse
``M`` (and a matrix-free ``A``) for the adjoint solve; gmres and bicgstab use ``M.T`` (for a
SciPy ``LinearOperator``: its ``rmatvec``, required in reverse mode) and ``A``'s ``rmatvec``
(derived by reverse differentiation of ``matvec`` when not given).

Deviation from SciPy: a solve that does not converge (SciPy's ``info != 0``) raises
:class:`ConvergenceError` instead of returning an inaccurate ``x``; the same holds for the
tangent and adjoint solves. On success ``info`` is always ``0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as _spla

from ....core.primitive import Primitive, ShapeDtype, Tracer
from ....core.transforms import jvp, vjp
from ....core.tree import register_pytree_node, tree_flatten
from ....numpy._indexing import getitem_p
from ....numpy._shape import reshape
from ....numpy._util import dtype_of, shape_of
from .._array import SparseArray, sparse_matmul_p

__all__ = ["ConvergenceError", "LinearOperator", "bicgstab", "cg", "gmres", "minres"]

#: Methods that assume a symmetric ``A`` (and a symmetric preconditioner ``M``).
_SYMMETRIC = ("cg", "minres")
#: Solver options that concern the caller's own solve only (not tangent or adjoint solves).
_PRIMAL_ONLY = ("callback", "callback_type", "show", "check")


class ConvergenceError(RuntimeError):
    """An iterative solve (forward, tangent or adjoint) did not reach its tolerance.

    Attributes: ``method``, ``iterations``, ``residual`` (relative residual
    ``||b - A x|| / ||b||`` reached), ``info`` (SciPy's code) and ``stage`` (``"forward
    solve"``, ``"tangent solve (forward mode)"`` or ``"adjoint solve (reverse mode)"``).
    """

    def __init__(
        self,
        method: str,
        iterations: int,
        residual: float,
        info: int,
        *,
        maxiter: int | None,
        rtol: float,
        atol: float | None,
        stage: str = "forward solve",
    ) -> None:
        self.method, self.iterations, self.residual, self.info = method, iterations, residual, info
        self.maxiter, self.rtol, self.atol, self.stage = maxiter, rtol, atol, stage
        what = "did not converge" if info > 0 else f"broke down (SciPy info={info})"
        tol = f"rtol={rtol:g}" + ("" if atol is None else f", atol={atol:g}")
        super().__init__(
            f"{method} {what} in the {stage} after {iterations} iteration(s) (maxiter={maxiter}): "
            f"relative residual ||b - A x|| / ||b|| = {residual:.3e} for {tol}. Increase "
            "maxiter, loosen the tolerances, or give a better preconditioner M."
        )

    def in_stage(self, stage: str) -> ConvergenceError:
        return ConvergenceError(
            self.method,
            self.iterations,
            self.residual,
            self.info,
            maxiter=self.maxiter,
            rtol=self.rtol,
            atol=self.atol,
            stage=stage,
        )


# -- running SciPy ------------------------------------------------------------------------------
def _plain(v: Any, what: str) -> np.ndarray:
    if isinstance(v, Tracer):
        raise TypeError(
            f"the {what} of a LinearOperator returned a traced value for a constant input: it "
            "uses a traced value it closes over. Pass such values through "
            "`LinearOperator(..., params=p)` and take them as the second argument of matvec."
        )
    return np.asarray(v)


def _run(
    method: str,
    A: Any,
    b: np.ndarray,
    M: Any,
    rtol: float,
    atol: float | None,
    maxiter: int | None,
    x0: np.ndarray | None,
    options: tuple,
) -> np.ndarray:
    """One SciPy solve; raises ConvergenceError (stage: forward) unless ``info == 0``."""
    b = np.asarray(b)
    if not np.isfinite(b).all():
        raise ValueError(f"{method}: the right-hand side b contains NaN or inf")
    opts = dict(options)
    user_callback = opts.pop("callback", None)
    count = [0]

    def counting(arg: Any) -> None:
        count[0] += 1
        if user_callback is not None:
            user_callback(arg)

    kwargs: dict[str, Any] = {"rtol": rtol, "maxiter": maxiter, "callback": counting, **opts}
    if method != "minres":
        kwargs["atol"] = atol
    if method == "gmres" and kwargs.get("callback_type") is None:
        kwargs["callback_type"] = "pr_norm" if user_callback is None else "legacy"
    solver = getattr(_spla, method)  # looked up per call: tests count solves through it
    try:
        x, info = solver(A, b, x0, M=None if M is None else M.op, **kwargs)
    except NotImplementedError as e:
        raise NotImplementedError(
            f"{method}: applying the operator or the preconditioner failed ({e}). The reverse "
            "pass of gmres and bicgstab solves with the transposes of A and M: give "
            "LinearOperators an rmatvec, or pass M as a matrix."
        ) from e
    if info != 0 or not np.isfinite(x).all():
        r = b - A @ x
        if opts.get("shift", 0.0):
            r = r + opts["shift"] * x
        bnorm = float(np.linalg.norm(b))
        residual = float(np.linalg.norm(r)) / (bnorm if bnorm > 0 else 1.0)
        raise ConvergenceError(
            method,
            count[0],
            residual,
            int(info) if info else 1,
            maxiter=maxiter,
            rtol=rtol,
            atol=atol,
        )
    return x


def _derivative_options(options: tuple) -> tuple:
    return tuple((k, v) for k, v in options if k not in _PRIMAL_ONLY)


def _staged(stage: str, fn: Callable, *args: Any, **params: Any) -> Any:
    """Call ``fn`` and name ``stage`` in a ConvergenceError raised by its innermost solve."""
    try:
        return fn(*args, **params)
    except ConvergenceError as e:
        if e.stage != "forward solve":
            raise
        raise e.in_stage(stage) from None


# -- preconditioners ----------------------------------------------------------------------------
class _Preconditioner:
    """A constant preconditioner in a form SciPy accepts (``op``), with its transpose made on
    demand (for the adjoint solve of gmres and bicgstab). Identity-hashed static parameter."""

    __slots__ = ("op", "_make_T", "_T")

    def __init__(self, op: Any, make_T: Callable[[], Any]) -> None:
        self.op = op
        self._make_T = make_T
        self._T: _Preconditioner | None = None

    @property
    def T(self) -> _Preconditioner:
        if self._T is None:
            t = _Preconditioner(self._make_T(), lambda: self.op)
            t._T = self
            self._T = t
        return self._T


def _as_preconditioner(M: Any, n: int, method: str) -> _Preconditioner | None:
    if M is None:
        return None
    if isinstance(M, SparseArray):
        op = M.to_scipy()
    elif sps.issparse(M) or isinstance(M, _spla.LinearOperator):
        op = M
    elif isinstance(M, LinearOperator):
        if M.shape != (n, n):
            raise ValueError(f"{method}: M has shape {M.shape}, expected {(n, n)}")
        # A constant: at convergence x does not depend on M, so M carries no derivative.
        static, leaves = M._split()
        leaves = [x.concrete() if isinstance(x, Tracer) else x for x in leaves]
        return _Preconditioner(
            static.scipy(leaves, np.float64), lambda: static.T.scipy(leaves, np.float64)
        )
    elif isinstance(M, (Tracer, np.ndarray)):
        op = np.asarray(M.concrete() if isinstance(M, Tracer) else M)
    else:
        raise TypeError(
            f"{method}: M must be a sparse array, a dense 2-D array or a LinearOperator, got "
            f"{type(M).__name__}"
        )
    if tuple(op.shape) != (n, n):
        raise ValueError(f"{method}: M has shape {tuple(op.shape)}, expected {(n, n)}")
    return _Preconditioner(op, lambda: op.T)


def _adjoint_preconditioner(M: _Preconditioner | None, method: str) -> _Preconditioner | None:
    # cg and minres require a symmetric M already (SciPy's contract): it serves both solves.
    return M if M is None or method in _SYMMETRIC else M.T


# -- sparse A: the solve as a primitive of (data, b) ---------------------------------------------
def _sparse_solve_impl(
    data: Any,
    b: Any,
    *,
    pattern: Any,
    method: str,
    M: Any,
    rtol: float,
    atol: Any,
    maxiter: Any,
    x0: Any,
    options: tuple,
) -> np.ndarray:
    if not np.isfinite(data).all():
        raise ValueError(f"{method}: the sparse matrix A contains NaN or inf")
    return _run(method, pattern.to_scipy(data), b, M, rtol, atol, maxiter, x0, options)


def _solve_shape(data: Any, b: Any, **params: Any) -> ShapeDtype:
    return ShapeDtype(b.shape, np.result_type(data.dtype, b.dtype))


def _sparse_solve_jvp(tangents: list, ans: Any, data: Any, b: Any, **params: Any) -> Any:
    # A x' = b' - A' x, with the method, preconditioner and tolerances of the primal solve.
    t_data, rhs = tangents
    if t_data is not None:
        ax = sparse_matmul_p.bind(t_data, ans, pattern=params["pattern"])
        rhs = -ax if rhs is None else rhs - ax
    if rhs is None:
        return None
    params.update(x0=None, options=_derivative_options(params["options"]))
    return _staged(
        "tangent solve (forward mode)", sparse_iterative_solve_p.bind, data, rhs, **params
    )


def _sparse_solve_vjp(g: Any, ans: Any, needs: list, data: Any, b: Any, **params: Any) -> list:
    # A^T lam = g: the same stored values on the transposed pattern (exact for any A, so
    # second derivatives are right also along directions that break A's symmetry).
    pattern = params["pattern"]
    params.update(
        pattern=pattern.T,
        M=_adjoint_preconditioner(params["M"], params["method"]),
        x0=None,
        options=_derivative_options(params["options"]),
    )
    lam = _staged("adjoint solve (reverse mode)", sparse_iterative_solve_p.bind, data, g, **params)
    data_ct = None
    if needs[0]:
        # A_bar = -lam x^T, on the stored entries only: O(nnz).
        data_ct = -(
            getitem_p.bind(lam, idx=(pattern.rows,)) * getitem_p.bind(ans, idx=(pattern.cols,))
        )
    return [data_ct, lam if needs[1] else None]


sparse_iterative_solve_p = Primitive(
    "sparse_iterative_solve", _sparse_solve_impl, shape=_solve_shape
)
sparse_iterative_solve_p.defjvp_joint(_sparse_solve_jvp)
sparse_iterative_solve_p.defvjp_joint(_sparse_solve_vjp)


# -- matrix-free A: the solve as a primitive of (b, *parameter leaves) ---------------------------
class _Operator:
    """The static half of a linear operator: how to apply it to ``v`` given the parameter
    leaves, and its transpose. Three kinds: a user ``matvec`` (differentiable in the
    parameters), a constant SciPy operand (``native``), or the transpose of a user operator
    that has no ``rmatvec`` (``adjoint_of``: applied by reverse-differentiating its matvec)."""

    __slots__ = (
        "shape",
        "matvec",
        "rmatvec",
        "treedef",
        "has_params",
        "native",
        "adjoint_of",
        "_T",
    )

    def __init__(
        self,
        shape: tuple[int, int],
        matvec: Callable | None = None,
        rmatvec: Callable | None = None,
        treedef: Any = None,
        has_params: bool = False,
        native: Any = None,
        adjoint_of: _Operator | None = None,
    ) -> None:
        self.shape = shape
        self.matvec, self.rmatvec = matvec, rmatvec
        self.treedef, self.has_params = treedef, has_params
        self.native, self.adjoint_of = native, adjoint_of
        self._T: _Operator | None = None

    def apply(self, v: Any, leaves: Any) -> Any:
        """``A(p) v`` written with scigrad operations (differentiable in ``v`` and ``p``)."""
        if self.adjoint_of is not None:
            fwd = self.adjoint_of
            _, pullback = vjp(lambda u: fwd.apply(u, leaves), np.zeros(fwd.shape[1]))
            return pullback(v)[0]
        if self.native is not None:
            return self.native @ v
        if self.has_params:
            return self.matvec(v, self.treedef.unflatten(leaves))
        return self.matvec(v)

    def scipy(self, leaves: Any, dtype: Any) -> Any:
        """A SciPy operand for concrete parameter leaves."""
        if self.native is not None:
            return self.native
        if self.adjoint_of is not None:
            # One recording of the forward matvec, replayed backwards once per iteration.
            fwd = self.adjoint_of
            _, pullback = vjp(lambda u: fwd.apply(u, leaves), np.zeros(fwd.shape[1], dtype))

            def mv(v: np.ndarray) -> np.ndarray:
                return _plain(pullback(v.reshape(-1))[0], "derived rmatvec")

        else:

            def mv(v: np.ndarray) -> np.ndarray:
                return _plain(self.apply(v.reshape(-1), leaves), "matvec")

        return _spla.LinearOperator(self.shape, matvec=mv, dtype=dtype)

    @property
    def T(self) -> _Operator:
        if self._T is None:
            m, n = self.shape
            if self.native is not None:
                t = _Operator((n, m), native=self.native.T)
            elif self.adjoint_of is not None:
                t = self.adjoint_of
            elif self.rmatvec is not None:
                t = _Operator((n, m), self.rmatvec, self.matvec, self.treedef, self.has_params)
            else:
                t = _Operator((n, m), adjoint_of=self)
            t._T = self
            self._T = t
        return self._T


def _operator_solve_impl(
    b: Any,
    *leaves: Any,
    op: _Operator,
    method: str,
    M: Any,
    rtol: float,
    atol: Any,
    maxiter: Any,
    x0: Any,
    options: tuple,
) -> np.ndarray:
    A = op.scipy(leaves, np.result_type(b, np.float64))
    return _run(method, A, b, M, rtol, atol, maxiter, x0, options)


def _operator_solve_shape(b: Any, *leaves: Any, **params: Any) -> ShapeDtype:
    return ShapeDtype(b.shape, np.result_type(b.dtype, np.float64))


def _with(leaves: tuple, positions: list, values: tuple) -> list:
    full = list(leaves)
    for i, v in zip(positions, values, strict=True):
        full[i] = v
    return full


def _operator_solve_jvp(tangents: list, ans: Any, b: Any, *leaves: Any, **params: Any) -> Any:
    # A x' = b' - (dA/dp . p') x, the last term one forward pass through the matvec.
    rhs, t_leaves = tangents[0], tangents[1:]
    moved = [i for i, t in enumerate(t_leaves) if t is not None]
    if moved:
        op = params["op"]
        _, ax = jvp(
            lambda *sub: op.apply(ans, _with(leaves, moved, sub)),
            tuple(leaves[i] for i in moved),
            tuple(t_leaves[i] for i in moved),
        )
        rhs = -ax if rhs is None else rhs - ax
    if rhs is None:
        return None
    params.update(x0=None, options=_derivative_options(params["options"]))
    return _staged(
        "tangent solve (forward mode)", operator_iterative_solve_p.bind, rhs, *leaves, **params
    )


def _operator_solve_vjp(g: Any, ans: Any, needs: list, b: Any, *leaves: Any, **params: Any):
    op, method = params["op"], params["method"]
    params.update(
        op=op if method in _SYMMETRIC else op.T,
        M=_adjoint_preconditioner(params["M"], method),
        x0=None,
        options=_derivative_options(params["options"]),
    )
    lam = _staged(
        "adjoint solve (reverse mode)", operator_iterative_solve_p.bind, g, *leaves, **params
    )
    out: list = [lam if needs[0] else None] + [None] * len(leaves)
    wanted = [i for i, need in enumerate(needs[1:]) if need]
    if wanted:
        # p_bar = -d/dp <lam, A(p) x>: one reverse pass through the matvec at x.
        _, pullback = vjp(
            lambda *sub: op.apply(ans, _with(leaves, wanted, sub)),
            *(leaves[i] for i in wanted),
        )
        for i, c in zip(wanted, pullback(lam), strict=True):
            out[1 + i] = -c
    return out


operator_iterative_solve_p = Primitive(
    "operator_iterative_solve", _operator_solve_impl, shape=_operator_solve_shape
)
operator_iterative_solve_p.defjvp_joint(_operator_solve_jvp)
operator_iterative_solve_p.defvjp_joint(_operator_solve_vjp)


# -- the matrix-free operator type --------------------------------------------------------------
class LinearOperator:
    """A matrix-free linear operator for the iterative solvers, differentiable in ``params``.

    ``matvec(v)`` (or ``matvec(v, params)`` when ``params`` is given) returns ``A v``; write it
    with scigrad operations so that the solve is differentiable in the pytree ``params``.
    ``rmatvec`` (same convention) returns ``A^T v``; when omitted it is obtained by reverse
    differentiation of ``matvec`` in ``v`` (needed only by the reverse pass of gmres and
    bicgstab). A value the matvec depends on must come through ``params``, not a closure.

    >>> import numpy, scigrad as sg, scigrad.numpy as np
    >>> from scigrad.scipy.sparse.linalg import LinearOperator, cg
    >>> def loss(d):
    ...     A = LinearOperator((3, 3), matvec=lambda v, d: d * v + 0.1 * np.roll(v, 1)
    ...                        + 0.1 * np.roll(v, -1), params=d)
    ...     return np.sum(cg(A, numpy.ones(3), rtol=1e-12)[0])
    >>> sg.grad(loss)(numpy.array([2.0, 3.0, 4.0])).round(4)
    array([-0.2237, -0.096 , -0.0531])
    """

    __slots__ = ("shape", "_matvec", "_rmatvec", "params", "dtype")

    def __init__(
        self,
        shape: tuple[int, int],
        matvec: Callable[..., Any],
        rmatvec: Callable[..., Any] | None = None,
        *,
        params: Any = None,
        dtype: Any = None,
    ) -> None:
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2:
            raise ValueError(f"LinearOperator: shape must be (m, n), got {shape}")
        if not callable(matvec) or (rmatvec is not None and not callable(rmatvec)):
            raise TypeError("LinearOperator: matvec (and rmatvec, if given) must be callable")
        self.shape = shape
        self._matvec, self._rmatvec = matvec, rmatvec
        self.params = params
        self.dtype = np.dtype(np.float64 if dtype is None else dtype)

    ndim = 2

    def _split(self) -> tuple[_Operator, list]:
        """The static operator and the parameter leaves (the differentiable inputs)."""
        has = self.params is not None
        leaves, treedef = tree_flatten(self.params) if has else ([], None)
        return _Operator(self.shape, self._matvec, self._rmatvec, treedef, has), leaves

    def matvec(self, v: Any) -> Any:
        return self._matvec(v, self.params) if self.params is not None else self._matvec(v)

    def rmatvec(self, v: Any) -> Any:
        static, leaves = self._split()
        return static.T.apply(v, leaves)

    def __matmul__(self, v: Any) -> Any:
        return self.matvec(v)

    def __repr__(self) -> str:
        return f"<{self.shape[0]}x{self.shape[1]} scigrad LinearOperator>"


register_pytree_node(
    LinearOperator,
    lambda a: ((a.params,), (a.shape, a._matvec, a._rmatvec, a.dtype, a.params is None)),
    lambda aux, c: LinearOperator(
        aux[0], aux[1], aux[2], params=None if aux[4] else c[0], dtype=aux[3]
    ),
)


def _dense_matvec(v: Any, A: Any) -> Any:
    return A @ v


def _dense_rmatvec(v: Any, A: Any) -> Any:
    return v @ A


# -- the public solvers -------------------------------------------------------------------------
def _vector(x: Any, n: int, name: str, method: str) -> Any:
    shape = shape_of(x)
    if shape not in ((n,), (n, 1)):
        raise ValueError(f"{method}: {name} has shape {shape}, expected ({n},) or ({n}, 1)")
    return x if len(shape) == 1 else reshape(x, (n,))


def _solve(
    method: str,
    A: Any,
    b: Any,
    x0: Any,
    rtol: Any,
    atol: Any,
    maxiter: Any,
    M: Any,
    options: tuple,
) -> tuple[Any, int]:
    shape = tuple(A.shape) if hasattr(A, "shape") else np.shape(A)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{method}: A must be a square 2-D operator, got shape {shape}")
    n = shape[0]
    if not isinstance(b, Tracer):
        b = np.asarray(b)
        if b.dtype.kind in "iub":
            b = b.astype(np.float64)
    if dtype_of(b).kind == "c":
        raise NotImplementedError(f"{method}: complex right-hand sides are not supported yet")
    b = _vector(b, n, "b", method)
    if x0 is not None:
        x0 = np.asarray(x0.concrete() if isinstance(x0, Tracer) else x0, dtype=np.float64)
        x0 = _vector(x0, n, "x0", method)
    if maxiter is not None:
        maxiter = int(maxiter)
        if maxiter < 1:
            raise ValueError(f"{method}: maxiter must be a positive integer, got {maxiter}")
    rtol = float(rtol.concrete() if isinstance(rtol, Tracer) else rtol)
    if atol is not None:
        atol = float(atol.concrete() if isinstance(atol, Tracer) else atol)
    params = dict(
        method=method,
        M=_as_preconditioner(M, n, method),
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        x0=x0,
        options=options,
    )
    if isinstance(A, SparseArray):
        x = sparse_iterative_solve_p.bind(A.data, b, pattern=A.pattern, **params)
        return x, 0
    if isinstance(A, LinearOperator):
        static, leaves = A._split()
    elif sps.issparse(A) or isinstance(A, _spla.LinearOperator | np.ndarray):
        static, leaves = _Operator(shape, native=A), []  # a constant
    elif isinstance(A, Tracer):
        static, leaves = LinearOperator(shape, _dense_matvec, _dense_rmatvec, params=A)._split()
    else:
        raise TypeError(
            f"{method}: A must be a scigrad or SciPy sparse array, a LinearOperator or a dense "
            f"2-D array, got {type(A).__name__}"
        )
    return operator_iterative_solve_p.bind(b, *leaves, op=static, **params), 0


def cg(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable | None = None,
) -> tuple[Any, int]:
    """Conjugate gradients for symmetric positive definite ``A``, as ``scipy.sparse.linalg.cg``.

    Differentiable in ``A``'s stored values (a scigrad ``SparseArray``; SciPy sparse arrays are
    constants), in ``b``, and in the ``params`` of a :class:`LinearOperator`, implicitly: each
    derivative is one more cg solve (the adjoint uses ``A^T`` and ``M``; ``M`` must be
    symmetric, as SciPy requires). ``callback`` sees the caller's solve only. Raises
    :class:`ConvergenceError` where SciPy would return ``info != 0``; returns ``(x, 0)``.

    >>> import numpy, scigrad as sg, scigrad.numpy as np, scigrad.scipy.sparse as sp
    >>> from scigrad.scipy.sparse.linalg import cg
    >>> row, col = numpy.array([0, 0, 1, 1]), numpy.array([0, 1, 0, 1])
    >>> def loss(v):
    ...     A = sp.csr_array((v, (row, col)), shape=(2, 2))
    ...     return np.sum(cg(A, numpy.ones(2), rtol=1e-12)[0])
    >>> sg.grad(loss)(numpy.array([6.0, 1.0, 1.0, 3.0])).round(4)  # -lam[row] * x[col]
    array([-0.0138, -0.0346, -0.0346, -0.0865])
    """
    return _solve(
        method="cg",
        A=A,
        b=b,
        x0=x0,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        M=M,
        options=(("callback", callback),),
    )


def bicgstab(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable | None = None,
) -> tuple[Any, int]:
    """BiCGSTAB for general ``A``, as ``scipy.sparse.linalg.bicgstab``; differentiable as
    :func:`cg` is, the adjoint solve using ``A^T`` and ``M^T``. Raises
    :class:`ConvergenceError` (non-convergence or breakdown) instead of returning
    ``info != 0``; returns ``(x, 0)``."""
    return _solve(
        method="bicgstab",
        A=A,
        b=b,
        x0=x0,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        M=M,
        options=(("callback", callback),),
    )


def gmres(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    restart: int | None = None,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable | None = None,
    callback_type: str | None = None,
) -> tuple[Any, int]:
    """Restarted GMRES for general ``A``, as ``scipy.sparse.linalg.gmres``; differentiable as
    :func:`cg` is, the adjoint solve using ``A^T`` and ``M^T`` with the same ``restart``.
    Raises :class:`ConvergenceError` instead of returning ``info != 0``; returns ``(x, 0)``."""
    options = (("restart", restart), ("callback", callback), ("callback_type", callback_type))
    return _solve(
        method="gmres", A=A, b=b, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter, M=M, options=options
    )


def minres(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    rtol: float = 1e-5,
    shift: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable | None = None,
    show: bool = False,
    check: bool = False,
) -> tuple[Any, int]:
    """MINRES for symmetric (possibly indefinite) ``A``, solving ``(A - shift I) x = b``, as
    ``scipy.sparse.linalg.minres``; differentiable as :func:`cg` is (``shift`` is a
    constant). Raises :class:`ConvergenceError` when the iteration limit is reached instead
    of returning ``info != 0``; returns ``(x, 0)``."""
    if isinstance(shift, Tracer):
        raise TypeError("minres: shift is a constant; it cannot be differentiated")
    options = (("shift", float(shift)), ("callback", callback), ("show", show), ("check", check))
    return _solve(
        method="minres",
        A=A,
        b=b,
        x0=x0,
        rtol=rtol,
        atol=None,
        maxiter=maxiter,
        M=M,
        options=options,
    )
