"""The action of the matrix exponential, ``expm_multiply`` (SciPy's name and signature),
differentiable with respect to ``A`` (dense, or sparse with its cotangent on the pattern of
``A``), ``B`` and the time grid (``start``, ``stop``).

Forward
-------
Values are SciPy's ``scipy.sparse.linalg.expm_multiply`` (Al-Mohy & Higham 2011, truncated
Taylor series with scaling) on the plain values. A grid that does not start at 0, or runs
backwards (``stop < start``), is computed as ``Y0 = e^{start A} B`` followed by the grid
``0 .. stop - start`` from ``Y0``: SciPy's interval algorithm chooses its Taylor degree and
number of steps from ``stop - start`` alone, which loses all accuracy when
``|start| >> |stop - start|`` and gives wrong values for a descending grid.

Reverse mode (the adjoint)
--------------------------
For ``y_k = e^{t_k A} B`` and output cotangents ``G_k``, with ``nu(s) = e^{sA} B`` and the
adjoint ``lam(s) = sum_{t_k >= s} e^{(t_k - s) A^T} G_k`` (one backward sweep, jumping by
``G_k`` at each time point)::

    B_bar = lam(0),    A_bar = P[ int_0^{t_max} lam(s) nu(s)^T ds ],
    t_bar_k = <G_k, A y_k>   (start_bar, stop_bar by the chain rule through the grid),

where ``P`` keeps the stored entries of a sparse ``A`` (``A_bar[e] = int lam[row_e]
nu[col_e] ds``, O(nnz) values, never ``n x n``). Negative times use ``-A`` and ``|t|``.

The integral is computed exactly up to rounding, panel by panel, with the machinery of the
forward algorithm. ``A`` is shifted by ``mu = trace(A)/n`` (the factor ``e^{mu h}`` is applied
per panel, as SciPy does), and ``[0, t_max]`` is cut at the time points into panels of length
``h`` with ``h ||A - mu I|| <= theta_m`` (``||.||`` the larger of the 1- and inf-norms,
``theta_m`` from Al-Mohy & Higham's table for unit roundoff, ``m <= 55``). On a panel
``[s, s + h]``:

* ``nu(s + xh) = sum_j x^j N_j`` and ``lam(s + xh) = sum_i (1 - x)^i L_i`` with the Taylor
  terms ``N_j = (hA)^j nu(s) / j!`` and ``L_i = (hA^T)^i lam(s + h) / i!`` (``m`` products
  each, stopped early as SciPy does when the terms are below unit roundoff): the truncation
  error is the forward algorithm's backward error bound, unit roundoff relative to ``||hA||``;
* the integral ``h int_0^1 lam nu^T dx`` is evaluated with ``Q``-point Gauss-Legendre
  quadrature in ``x`` (node values from the Taylor terms by one small matrix product). The
  integrand is entire and bounded by ``exp(theta (1 + (rho + 1/rho)/2))`` on the Bernstein
  ellipse ``E_rho``, so the quadrature error is at most
  ``(32/15) exp(theta (1 + (rho + 1/rho)/2)) rho^{-2Q} / (rho^2 - 1)`` relative to
  ``h ||lam(s + h)|| ||nu(s)||`` (Trefethen 2008, Thm 4.5); ``Q`` is the smallest number of
  nodes for which the best ``rho`` brings this below unit roundoff (``Q = 21`` for a full
  panel, ``theta = 9.9``; 9 at ``theta = 2``);
* ``lam(s) = e^{mu h} sum_i L_i`` carries the sweep on to the previous panel.

``nu`` at the panel starts comes from a forward march with the same Taylor steps. Those
vectors are stored, at most 16 at a time: a longer sweep keeps 16 checkpoints and recomputes
the starts of each block of panels from its checkpoint (recursively), at the cost of one more
march per level. Memory, for ``B`` of ``k`` columns: the O(nnz) cotangent, plus a working set
of at most ``(m + 1) + Q + 4`` vectors of ``n k`` values for one panel (its Taylor terms and
quadrature nodes) and ``16`` per checkpoint level, whatever the time span: with the tape's
``y`` and ``G``, O(nnz x stored time points). The cost is about three Taylor sweeps (march,
``N`` terms, ``L`` terms) per panel plus ``2 Q k`` gathers of ``nnz`` values (``Q k``
rank-one updates of ``n x n`` for a dense ``A``): about 3x SciPy's forward on a
10^5-state sparse chain. Trade-off: long panels (large ``m``) need fewer products and fewer
nodes per unit of ``||tA||`` but a larger working set; ``m = 55`` (SciPy's largest) was
25-35% faster than ``m = 30`` for a 15% larger working set, about SciPy's own (its interval
algorithm also keeps ``m + 1`` Taylor vectors).

Forward mode (JVP)
------------------
Exact, through the block matrix identity ``e^{t[[A, E], [0, A]]} [[X], [Y]] =
[[e^{tA} X + int_0^t e^{(t-s)A} E e^{sA} Y ds], [e^{tA} Y]]`` : one ``expm_multiply`` on the
``2n x 2n`` block matrix (sparse: on the block pattern, built and cached once per pattern)
gives the tangent with respect to ``A`` and ``B`` at every time point; the off-diagonal block
is scaled so that its norm matches ``||A||``. Time tangents add ``t_dot_k A y_k``.

Higher derivatives
------------------
The rules are written with the primitives themselves, so derivatives nest: the JVP of the
adjoint is the adjoint of the block system (its diagonal blocks carry the tangent), the VJP of
the adjoint is, by symmetry of the Hessian, the JVP of the adjoint together with the forward
JVP. Hessians and Hessian-vector products in any mode therefore cost a few
``expm_multiply`` calls and adjoint sweeps of size ``2n``.

Only real ``A`` and ``B`` are supported; ``traceA`` is passed to SciPy as a preconditioning
hint (it carries no derivative).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla

from .... import numpy as snp
from ....core.primitive import Primitive, ShapeDtype, Tracer
from ....numpy._util import dtype_of, shape_of
from .._array import SparseArray, csr_array, scatter_entries_p, sparse_matmul_p
from .._pattern import Pattern, compressed_pattern

__all__ = ["expm_multiply"]

_TOL = 2.0**-53
#: Al-Mohy & Higham's theta_m (double precision): ||hA||_1 <= theta_m gives a degree-m
#: truncated Taylor series with backward error below unit roundoff (SciPy's table).
_THETA = {
    1: 2.29e-16, 2: 2.58e-8, 3: 1.39e-5, 4: 3.40e-4, 5: 2.40e-3, 6: 9.07e-3, 7: 2.38e-2,
    8: 5.00e-2, 9: 8.96e-2, 10: 1.44e-1, 11: 2.14e-1, 12: 3.00e-1, 13: 4.00e-1, 14: 5.14e-1,
    15: 6.41e-1, 16: 7.81e-1, 17: 9.31e-1, 18: 1.09, 19: 1.26, 20: 1.44, 21: 1.62, 22: 1.82,
    23: 2.01, 24: 2.22, 25: 2.43, 26: 2.64, 27: 2.86, 28: 3.08, 29: 3.31, 30: 3.54, 35: 4.7,
    40: 6.0, 45: 7.2, 50: 8.5, 55: 9.9,
}  # fmt: skip
#: Taylor degree of a full panel of the adjoint sweep.
_PANEL_DEGREE = 55
#: Node values of the adjoint are formed this many nodes at a time.
_NODE_CHUNK = 4
#: At most this many panel starts are stored at a time (recursive checkpointing beyond).
_STORED_STARTS = 16


def _concrete(x: Any) -> Any:
    return x.concrete() if isinstance(x, Tracer) else x


# -- time grids -------------------------------------------------------------------------------
def _times(start: Any, stop: Any, num: int | None, endpoint: bool) -> np.ndarray:
    """The time points: ``[1.0]`` for a single action (``num=None``), else the linspace."""
    if num is None:
        return np.ones(1)
    return np.linspace(float(start), float(stop), num, endpoint=endpoint)


@functools.lru_cache(maxsize=64)
def _grid_coefficients(num: int, endpoint: bool) -> tuple[np.ndarray, np.ndarray]:
    """``dt_k/dstart`` and ``dt_k/dstop`` for ``t_k = start + k (stop - start) / den``."""
    den = num - 1 if endpoint else num
    c_stop = np.arange(num, dtype=np.float64) / den
    c_stop.flags.writeable = False
    c_start = 1.0 - c_stop
    c_start.flags.writeable = False
    return c_start, c_stop


# -- plain-value helpers ----------------------------------------------------------------------
def _operator(a: Any, pattern: Pattern | None) -> Any:
    """The concrete matrix: a float64 ndarray, or a SciPy CSR/CSC array on ``pattern``."""
    values = np.asarray(a, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("expm_multiply: A contains NaN or inf values")
    return values if pattern is None else pattern.to_scipy(values)


def _as_columns(b: Any, n: int) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    if not np.isfinite(b).all():
        raise ValueError("expm_multiply: B contains NaN or inf values")
    return b.reshape(n, -1)


def _norm1(values: np.ndarray, pattern: Pattern | None) -> float:
    """The 1-norm (largest absolute column sum) of a dense or sparse matrix."""
    if pattern is None:
        return float(np.abs(values).sum(axis=0).max(initial=0.0))
    sums = np.bincount(pattern.cols, weights=np.abs(values), minlength=pattern.shape[1])
    return float(sums.max(initial=0.0))


# -- forward ----------------------------------------------------------------------------------
def _forward_impl(a, b, start, stop, *, pattern, num, endpoint, traceA) -> np.ndarray:
    op = _operator(a, pattern)
    b = np.asarray(b, dtype=np.float64)
    if not np.isfinite(b).all():
        raise ValueError("expm_multiply: B contains NaN or inf values")
    if num is None:
        return spla.expm_multiply(op, b, traceA=traceA)
    t0, t1 = float(start), float(stop)
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"expm_multiply: start and stop must be finite, got {t0} and {t1}")
    if t0 == 0.0 and t1 > 0.0:
        return spla.expm_multiply(
            op, b, start=0.0, stop=t1, num=num, endpoint=endpoint, traceA=traceA
        )
    # SciPy's interval algorithm sizes its steps by stop - start only: start from e^{t0 A} B.
    y0 = b if t0 == 0.0 else spla.expm_multiply(t0 * op, b, traceA=_scaled(traceA, t0))
    if t1 == t0:
        return np.broadcast_to(y0, (num, *y0.shape)).copy()
    sign = 1.0 if t1 > t0 else -1.0
    return spla.expm_multiply(
        sign * op,
        y0,
        start=0.0,
        stop=sign * (t1 - t0),
        num=num,
        endpoint=endpoint,
        traceA=_scaled(traceA, sign),
    )


def _scaled(trace: Any, factor: float) -> Any:
    return None if trace is None else factor * trace


def _forward_shape(a, b, start, stop, *, pattern, num, endpoint, traceA) -> ShapeDtype:
    shape = b.shape if num is None else (num, *b.shape)
    return ShapeDtype(shape, np.dtype(np.float64))


# -- the adjoint sweep (plain values) ---------------------------------------------------------
@functools.lru_cache(maxsize=128)
def _gauss(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(q)
    return (x + 1.0) / 2.0, w / 2.0


_RHO = np.geomspace(1.05, 1e4, 600)


@functools.lru_cache(maxsize=512)
def _num_nodes(theta: float) -> int:
    """Gauss-Legendre nodes for a panel of norm ``theta`` (see the module docstring)."""
    log_rho = np.log(_RHO)
    log_growth = theta * (1.0 + (_RHO + 1.0 / _RHO) / 2.0) - np.log(_RHO**2 - 1.0)
    log_tol = math.log(_TOL / (32.0 / 15.0))
    for q in range(1, 200):
        if np.min(log_growth - 2 * q * log_rho) <= log_tol:
            return q
    raise ValueError(f"expm_multiply: panel norm {theta} too large")  # pragma: no cover


def _degree(theta: float) -> int:
    """The smallest Taylor degree whose theta_m covers a panel of norm ``theta``."""
    for m, th in _THETA.items():
        if th >= theta:
            return m
    raise AssertionError("panel longer than the largest theta_m")  # pragma: no cover


def _inf(x: np.ndarray) -> float:
    """The largest absolute value (two reductions, no temporary array)."""
    if x.size == 0:
        return 0.0
    return max(float(x.max()), -float(x.min()))


def _taylor(apply: Any, v: np.ndarray, h: float, m: int, buf: np.ndarray) -> tuple[int, Any]:
    """Terms ``(hA)^j v / j!`` into ``buf[:count]`` (stopped as SciPy stops), and their sum."""
    buf[0] = v
    total = v.copy()
    c1 = _inf(v)
    count = 1
    for j in range(1, m + 1):
        np.multiply(apply(buf[j - 1]), h / j, out=buf[j])
        count += 1
        c2 = _inf(buf[j])
        total += buf[j]
        if c1 + c2 <= _TOL * _inf(total):
            break
        c1 = c2
    return count, total


def _node_values(terms: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``sum_j x_q^j terms[j]`` for each node: shape ``(Q, n, k)``."""
    count = terms.shape[0]
    vander = x[None, :] ** np.arange(count)[:, None]  # (count, Q)
    flat = terms.reshape(count, -1)
    return (vander.T @ flat).reshape((len(x), *terms.shape[1:]))


class _Sweep:
    """One backward sweep over positive times for the operator ``sign (A - mu I)``."""

    def __init__(self, op, op_t, mu, norm, n, k, rows, cols, a_bar) -> None:
        self.op, self.op_t, self.mu, self.norm = op, op_t, mu, norm
        self.rows, self.cols, self.a_bar = rows, cols, a_bar
        self.n, self.k = n, k

    def run(self, times: np.ndarray, cts: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Accumulate ``A_bar`` for ``y_k = e^{t_k op} b`` (``t_k > 0``); return ``lam(0)``."""
        uniq, inverse = np.unique(times, return_inverse=True)
        g = np.zeros((len(uniq), *b.shape))
        np.add.at(g, inverse, cts)
        theta_max = _THETA[_PANEL_DEGREE]
        hs: list[float] = []
        inject: list[int] = []
        prev = 0.0
        for j, t in enumerate(uniq):
            d = float(t) - prev
            p = max(1, math.ceil(self.norm * d / theta_max * (1.0 + 1e-12)))
            hs.extend([d / p] * p)
            inject.extend([-1] * (p - 1) + [j])
            prev = float(t)
        self.hs, self.inject, self.g = hs, inject, g
        degree = max(_degree(h * self.norm) for h in set(hs))
        self.buf = np.empty((degree + 1, self.n, self.k))  # the Taylor terms of a panel
        self.lam = np.zeros_like(b)
        self._backward(0, len(hs), b)
        return self.lam

    def _step(self, i: int, nu: np.ndarray) -> np.ndarray:
        h = self.hs[i]
        _, total = _taylor(self.op, nu, h, _degree(h * self.norm), self.buf)
        return total * math.exp(self.mu * h)

    def _backward(self, lo: int, hi: int, nu_lo: np.ndarray) -> None:
        """Process panels ``hi-1 .. lo`` given ``nu`` at the start of panel ``lo``."""
        if hi - lo <= _STORED_STARTS:
            starts = [nu_lo]
            for i in range(lo, hi - 1):
                starts.append(self._step(i, starts[-1]))
            for i in range(hi - 1, lo - 1, -1):
                self._panel(i, starts.pop())
            return
        size = -(-(hi - lo) // _STORED_STARTS)
        bounds = list(range(lo, hi, size)) + [hi]
        checkpoints = [nu_lo]
        for c in range(1, len(bounds) - 1):
            nu = checkpoints[-1]
            for i in range(bounds[c - 1], bounds[c]):
                nu = self._step(i, nu)
            checkpoints.append(nu)
        for c in range(len(bounds) - 2, -1, -1):
            self._backward(bounds[c], bounds[c + 1], checkpoints.pop())

    def _panel(self, i: int, nu: np.ndarray) -> None:
        if self.inject[i] >= 0:
            self.lam = self.lam + self.g[self.inject[i]]
        h = self.hs[i]
        theta = h * self.norm
        x, w = _gauss(_num_nodes(round(theta, 6)))
        scale = math.exp(self.mu * h)
        count, _ = _taylor(self.op, nu, h, _degree(theta), self.buf)
        nu_nodes = _node_values(self.buf[:count], x)  # (Q, n, k)
        nu_nodes *= (h * scale * w)[:, None, None]
        count, lam_start = _taylor(self.op_t, self.lam, h, _degree(theta), self.buf)
        for q in range(0, len(x), _NODE_CHUNK):
            part = slice(q, q + _NODE_CHUNK)
            self._accumulate(_node_values(self.buf[:count], 1.0 - x[part]), nu_nodes[part])
        self.lam = lam_start * scale

    def _accumulate(self, lam_nodes: np.ndarray, nu_nodes: np.ndarray) -> None:
        q, n, k = lam_nodes.shape
        if self.rows is None:  # dense: A_bar += sum_q lam_q nu_q^T
            lam2 = lam_nodes.transpose(1, 0, 2).reshape(n, q * k)
            nu2 = nu_nodes.transpose(1, 0, 2).reshape(n, q * k)
            self.a_bar += lam2 @ nu2.T
            return
        # sparse: A_bar[e] += sum_q lam_q[row_e] nu_q[col_e], one gather pair per node/column
        lam_t = np.ascontiguousarray(lam_nodes.transpose(0, 2, 1)).reshape(q * k, n)
        nu_t = np.ascontiguousarray(nu_nodes.transpose(0, 2, 1)).reshape(q * k, n)
        acc = self.a_bar
        for j in range(q * k):
            acc += lam_t[j].take(self.rows) * nu_t[j].take(self.cols)


def _shifted(op: Any, mu: float, n: int) -> Any:
    if sps.issparse(op):
        return (op - mu * sps.eye_array(n, format=op.format)).asformat(op.format)
    return op - mu * np.eye(n)


def _adjoint_impl(a, b, start, stop, g, *, pattern, num, endpoint) -> tuple:
    op = _operator(a, pattern)
    n = op.shape[0]
    b2 = _as_columns(b, n)
    k = b2.shape[1]
    times = _times(start, stop, num, endpoint)
    cts = np.asarray(g, dtype=np.float64).reshape(len(times), n, k)
    a_bar = np.zeros(pattern.nnz) if pattern is not None else np.zeros((n, n))
    b_bar = cts[times == 0.0].sum(axis=0)
    rows = None if pattern is None else pattern.rows
    cols = None if pattern is None else pattern.cols
    mu = float(op.trace()) / n if n else 0.0
    shifted = _shifted(op, mu, n)
    # Panels are sized by the larger of ||A - mu I||_1 and ||(A - mu I)^T||_1.
    absolute = abs(shifted)
    norm = max(
        float(np.max(absolute.sum(axis=0), initial=0.0)),
        float(np.max(absolute.sum(axis=1), initial=0.0)),
    )
    for sign in (1.0, -1.0):
        sel = times * sign > 0.0
        if not sel.any():
            continue
        m_op = shifted if sign > 0 else -shifted
        m_op_t = m_op.T
        acc = np.zeros_like(a_bar)
        sweep = _Sweep(m_op.__matmul__, m_op_t.__matmul__, sign * mu, norm, n, k, rows, cols, acc)
        b_bar += sweep.run(np.abs(times[sel]), cts[sel], b2)
        a_bar += sign * acc
    return a_bar, b_bar.reshape(np.shape(b))


def _adjoint_shape(a, b, start, stop, g, *, pattern, num, endpoint) -> tuple:
    f64 = np.dtype(np.float64)
    return ShapeDtype(a.shape, f64), ShapeDtype(b.shape, f64)


# -- helpers for the rules (scigrad operations) -----------------------------------------------
def _as3(x: Any, num: int | None, vec: bool) -> Any:
    """An output-shaped array as ``(time points, n, columns)``."""
    s = shape_of(x)
    if num is None:
        return snp.reshape(x, (1, s[0], 1 if vec else s[1]))
    return snp.reshape(x, (s[0], s[1], 1)) if vec else x


def _from3(x3: Any, num: int | None, vec: bool) -> Any:
    K, n, k = shape_of(x3)
    if num is None:
        return snp.reshape(x3, (n,) if vec else (n, k))
    return snp.reshape(x3, (K, n)) if vec else x3


def _apply3(a: Any, x3: Any, pattern: Pattern | None, transpose: bool = False) -> Any:
    """``A x`` (or ``A^T x``) for every time slice of ``x3`` (shape ``(K, n, k)``)."""
    if pattern is None:
        return snp.matmul(snp.transpose(a) if transpose else a, x3)
    K, n, k = shape_of(x3)
    x2 = snp.reshape(snp.transpose(x3, (1, 0, 2)), (n, K * k))
    y2 = sparse_matmul_p.bind(a, x2, pattern=pattern.T if transpose else pattern)
    return snp.transpose(snp.reshape(y2, (n, K, k)), (1, 0, 2))


def _time_tangent(t_start: Any, t_stop: Any, num: int, endpoint: bool) -> Any:
    """``dt_k`` for every grid point, shape ``(K, 1, 1)`` (None if both are zero)."""
    c_start, c_stop = _grid_coefficients(num, endpoint)
    out = None
    if t_start is not None:
        out = t_start * c_start
    if t_stop is not None:
        out = t_stop * c_stop if out is None else out + t_stop * c_stop
    return None if out is None else snp.reshape(out, (num, 1, 1))


def _grid_cotangents(t_bar: Any, needs_start: bool, needs_stop: bool, num, endpoint) -> list:
    c_start, c_stop = _grid_coefficients(num, endpoint)
    return [
        snp.sum(t_bar * c_start) if needs_start else None,
        snp.sum(t_bar * c_stop) if needs_stop else None,
    ]


def _block_scale(a: Any, t: Any, pattern: Pattern | None) -> float:
    """The factor for the off-diagonal block: its 1-norm becomes that of ``A``."""
    if t is None:
        return 1.0
    t_norm = _norm1(np.asarray(_concrete(t), dtype=np.float64), pattern)
    if t_norm == 0.0:
        return 1.0
    a_norm = _norm1(np.asarray(_concrete(a), dtype=np.float64), pattern)
    return (a_norm if a_norm > 0.0 else 1.0) / t_norm


def _block_structure(pattern: Pattern) -> tuple[Pattern, Any]:
    """The CSR pattern of ``[[A, E], [0, A]]`` (``E`` on the pattern of ``A``) and the
    permutation taking ``concatenate([a, e, a])`` into its order (cached on the pattern)."""
    hit = pattern.cache.get("expm_multiply_block")
    if hit is None:
        n = pattern.shape[0]
        rows = np.concatenate([pattern.rows, pattern.rows, pattern.rows + n])
        cols = np.concatenate([pattern.cols, pattern.cols + n, pattern.cols + n])
        hit = pattern.cache["expm_multiply_block"] = compressed_pattern(
            "csr", (2 * n, 2 * n), rows, cols
        )
    return hit


def _block(a: Any, e: Any, pattern: Pattern | None) -> tuple[Any, Pattern | None]:
    """The block matrix ``[[A, E], [0, A]]``: dense, or its stored values and pattern."""
    if pattern is None:
        n = shape_of(a)[0]
        zeros = np.zeros((n, n))
        return snp.concatenate(
            [snp.concatenate([a, e], axis=1), snp.concatenate([zeros, a], axis=1)], axis=0
        ), None
    block_pattern, plan = _block_structure(pattern)
    return scatter_entries_p.bind(snp.concatenate([a, e, a]), plan=plan), block_pattern


def _block_diagonal_sum(a_bar: Any, n: int, pattern: Pattern | None) -> Any:
    """The sum of the two diagonal blocks of a block cotangent, on the pattern of ``A``."""
    if pattern is None:
        return a_bar[:n, :n] + a_bar[n:, n:]
    _, plan = _block_structure(pattern)
    parts = scatter_entries_p.bind(a_bar, plan=plan.T)
    nnz = pattern.nnz
    return parts[:nnz] + parts[2 * nnz :]


def _on_pattern(x3: Any, y3: Any, pattern: Pattern | None) -> Any:
    """``P[sum_k x_k y_k^T]`` for ``(K, n, k)`` arrays: dense, or on the stored entries."""
    if pattern is None:
        return snp.einsum("tic,tjc->ij", x3, y3)
    xr = x3[:, pattern.rows, :]
    yc = y3[:, pattern.cols, :]
    return snp.sum(xr * yc, axis=(0, 2))


def _zeros_like(x: Any) -> np.ndarray:
    return np.zeros(shape_of(x), dtype=np.float64)


# -- the forward primitive and its rules ------------------------------------------------------
def _forward_jvp(tangents, ans, a, b, start, stop, *, pattern, num, endpoint, traceA) -> Any:
    t_a, t_b, t_start, t_stop = tangents
    out = None
    if t_a is not None:
        # e^{t [[A, eps dA], [0, A]]} [[dB], [B / eps]] = [[dy], [y / eps]]
        eps = _block_scale(a, t_a, pattern)
        block, block_pattern = _block(a, t_a * eps, pattern)
        top = _zeros_like(b) if t_b is None else t_b
        yb = expm_multiply_p.bind(
            block,
            snp.concatenate([top, b / eps], axis=0),
            start,
            stop,
            pattern=block_pattern,
            num=num,
            endpoint=endpoint,
            traceA=None,
        )
        n = shape_of(b)[0]
        out = yb[:n] if num is None else yb[:, :n]
    elif t_b is not None:
        out = expm_multiply_p.bind(
            a, t_b, start, stop, pattern=pattern, num=num, endpoint=endpoint, traceA=traceA
        )
    if num is not None and (t_start is not None or t_stop is not None):
        vec = len(shape_of(b)) == 1
        if ans is None:
            ans = expm_multiply_p.bind(
                a, b, start, stop, pattern=pattern, num=num, endpoint=endpoint, traceA=traceA
            )
        dt = _time_tangent(t_start, t_stop, num, endpoint)
        term = _from3(dt * _apply3(a, _as3(ans, num, vec), pattern), num, vec)
        out = term if out is None else out + term
    return out


def _forward_vjp(g, ans, needs, a, b, start, stop, *, pattern, num, endpoint, traceA) -> list:
    out: list = [None, None, None, None]
    if needs[0] or needs[1]:
        a_bar, b_bar = expm_multiply_adjoint_p.bind(
            a, b, start, stop, g, pattern=pattern, num=num, endpoint=endpoint
        )
        out[0] = a_bar if needs[0] else None
        out[1] = b_bar if needs[1] else None
    if num is not None and (needs[2] or needs[3]):
        # dy_k/dt_k = A y_k
        vec = len(shape_of(b)) == 1
        ay = _apply3(a, _as3(ans, num, vec), pattern)
        t_bar = snp.sum(_as3(g, num, vec) * ay, axis=(1, 2))
        out[2:] = _grid_cotangents(t_bar, needs[2], needs[3], num, endpoint)
    return out


# y = e^{t_k A} B at the time points (num=None: e^A B). ``a`` is the dense matrix (pattern
# None) or the stored values of a CSR/CSC matrix on ``pattern``; start/stop are 0-d.
expm_multiply_p = Primitive("expm_multiply", _forward_impl, shape=_forward_shape)
expm_multiply_p.defjvp_joint(_forward_jvp)
expm_multiply_p.defvjp_joint(_forward_vjp)


# -- the adjoint primitive and its rules ------------------------------------------------------
def _adjoint_jvp(tangents, ans, a, b, start, stop, g, *, pattern, num, endpoint) -> tuple:
    t_a, t_b, t_start, t_stop, t_g = tangents
    vec = len(shape_of(b)) == 1
    n = shape_of(b)[0]
    dt = None if num is None else _time_tangent(t_start, t_stop, num, endpoint)
    if dt is not None:
        # d/dt_k of the adjoint: G_k -> A^T G_k, plus the boundary term G_k y_k^T.
        atg = _from3(dt * _apply3(a, _as3(g, num, vec), pattern, transpose=True), num, vec)
        t_g = atg if t_g is None else t_g + atg
    # The adjoint of the block system [[A, eps dA], [0, A]] from [[dB], [B/eps]] with
    # cotangents [[G/eps], [dG]]: its diagonal blocks sum to d(A_bar)/eps, and the lower
    # half of its B_bar is d(B_bar).
    eps = _block_scale(a, t_a, pattern)
    block, block_pattern = _block(a, _zeros_like(a) if t_a is None else t_a * eps, pattern)
    top = _zeros_like(b) if t_b is None else t_b
    low = _zeros_like(g) if t_g is None else t_g
    axis = 0 if num is None else 1
    a_blk, b_blk = expm_multiply_adjoint_p.bind(
        block,
        snp.concatenate([top, b / eps], axis=0),
        start,
        stop,
        snp.concatenate([g / eps, low], axis=axis),
        pattern=block_pattern,
        num=num,
        endpoint=endpoint,
    )
    d_a = _block_diagonal_sum(a_blk, n, pattern) * eps
    d_b = b_blk[n:]
    if dt is not None:
        y = expm_multiply_p.bind(
            a, b, start, stop, pattern=pattern, num=num, endpoint=endpoint, traceA=None
        )
        d_a = d_a + _on_pattern(dt * _as3(g, num, vec), _as3(y, num, vec), pattern)
    return d_a, d_b


def _adjoint_vjp(ct, ans, needs, a, b, start, stop, g, *, pattern, num, endpoint) -> list:
    # The adjoint is the gradient of phi = <G, y(A, B, t)>: its Jacobian in (A, B) is the
    # (symmetric) Hessian of phi, so the VJP in (A, B) is the JVP in the direction of the
    # cotangents; in G it is the forward JVP, in t_k it is d/dt_k <G_k, dy_k>.
    c_a, c_b = ct
    out: list = [None] * 5
    if needs[0] or needs[1]:
        d_a, d_b = _adjoint_jvp(
            (c_a, c_b, None, None, None), None, a, b, start, stop, g,
            pattern=pattern, num=num, endpoint=endpoint,
        )  # fmt: skip
        out[0] = d_a if needs[0] else None
        out[1] = d_b if needs[1] else None
    needs_t = num is not None and (needs[2] or needs[3])
    if needs[4] or needs_t:
        dy = _forward_jvp(
            (c_a, c_b, None, None), None, a, b, start, stop,
            pattern=pattern, num=num, endpoint=endpoint, traceA=None,
        )  # fmt: skip
        out[4] = dy if needs[4] else None
        if needs_t:
            vec = len(shape_of(b)) == 1
            y = expm_multiply_p.bind(
                a, b, start, stop, pattern=pattern, num=num, endpoint=endpoint, traceA=None
            )
            # d/dt_k dy_k = dA y_k + A dy_k
            rate = _apply3(c_a, _as3(y, num, vec), pattern) + _apply3(
                a, _as3(dy, num, vec), pattern
            )
            t_bar = snp.sum(_as3(g, num, vec) * rate, axis=(1, 2))
            out[2:4] = _grid_cotangents(t_bar, needs[2], needs[3], num, endpoint)
    return out


# (A_bar, B_bar) of y = expm_multiply(A, B, grid) for the output cotangent g: see the module
# docstring (a backward sweep with Taylor panels and Gauss-Legendre quadrature).
expm_multiply_adjoint_p = Primitive(
    "expm_multiply_adjoint", _adjoint_impl, shape=_adjoint_shape, multiple_results=True
)
expm_multiply_adjoint_p.defjvp_joint(_adjoint_jvp)
expm_multiply_adjoint_p.defvjp_joint(_adjoint_vjp)


# -- public API -------------------------------------------------------------------------------
def _check_scalar_time(x: Any, name: str) -> Any:
    if isinstance(x, Tracer):
        if shape_of(x) != ():
            raise ValueError(f"expm_multiply: {name} must be a scalar, got shape {shape_of(x)}")
        if dtype_of(x).kind == "c":
            raise TypeError(f"expm_multiply: {name} must be real")
        return x
    v = np.asarray(x)
    if v.ndim != 0:
        raise ValueError(f"expm_multiply: {name} must be a scalar, got shape {v.shape}")
    if v.dtype.kind not in "biuf":
        raise TypeError(f"expm_multiply: {name} must be a real scalar, got dtype {v.dtype}")
    return v.astype(np.float64)


def _as_matrix(A: Any) -> tuple[Any, Pattern | None]:
    """``A`` as (dense matrix, None) or (stored values, canonical CSR/CSC pattern)."""
    if sps.issparse(A):
        A = csr_array(A)
    if isinstance(A, SparseArray):
        if A.format not in ("csr", "csc"):
            A = A.tocsr()
        if A.shape[0] != A.shape[1]:
            raise ValueError(
                f"expm_multiply: expected A to be a square matrix, got shape {A.shape}"
            )
        return A.data, A.pattern
    if isinstance(A, spla.LinearOperator):
        raise TypeError(
            "expm_multiply: A must be a dense array or a sparse matrix (LinearOperator is not "
            "supported: its entries are what the derivative is taken with respect to)"
        )
    if not isinstance(A, Tracer):
        A = np.asarray(A)
        if A.dtype.kind not in "biuf":
            raise TypeError(f"expm_multiply: A must be a real matrix, got dtype {A.dtype}")
        A = A.astype(np.float64, copy=False)
    elif dtype_of(A).kind == "c":
        raise TypeError("expm_multiply: complex matrices are not supported")
    s = shape_of(A)
    if len(s) != 2 or s[0] != s[1]:
        raise ValueError(f"expm_multiply: expected A to be a square matrix, got shape {s}")
    return A, None


def expm_multiply(
    A: Any,
    B: Any,
    start: Any = None,
    stop: Any = None,
    num: int | None = None,
    endpoint: bool | None = None,
    traceA: Any = None,
) -> Any:
    """The action of the matrix exponential, ``e^{t A} B``, as SciPy's ``expm_multiply``.

    With no time arguments: ``e^A B`` (shape of ``B``). With ``start``, ``stop`` (and
    optionally ``num`` = 50, ``endpoint`` = True, as ``numpy.linspace``): ``e^{t_k A} B`` at
    the ``num >= 2`` time points, shape ``(num, *B.shape)``. Differentiable with respect to
    ``A`` (dense, or a sparse array whose cotangent stays on its pattern: O(nnz)), ``B``
    (a vector or a matrix) and ``start``/``stop``; every mode and order. The reverse mode
    costs a few forward sweeps and O(nnz) memory beyond the stored time points (see the
    module docstring for the method).

    >>> import numpy, scigrad as sg, scigrad.scipy.sparse as sp
    >>> from scigrad.scipy.sparse.linalg import expm_multiply
    >>> A = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(4, 4)).tocsr()
    >>> def loss(v):
    ...     return expm_multiply(A.multiply(v), numpy.ones(4), start=0.0, stop=1.0, num=3).sum()
    >>> sg.grad(loss)(2.0).round(6)
    np.float64(-1.191135)
    """
    a, pattern = _as_matrix(A)
    n = shape_of(a)[0] if pattern is None else pattern.shape[0]
    if sps.issparse(B) or isinstance(B, SparseArray):
        raise TypeError("expm_multiply: B must be a dense vector or matrix (pass B.toarray())")
    if not isinstance(B, Tracer):
        B = np.asarray(B)
        if B.dtype.kind not in "biuf":
            raise TypeError(f"expm_multiply: B must be real, got dtype {B.dtype}")
        B = B.astype(np.float64, copy=False)
    elif dtype_of(B).kind == "c":
        raise TypeError("expm_multiply: complex B is not supported")
    sb = shape_of(B)
    if len(sb) not in (1, 2):
        raise ValueError(f"expm_multiply: expected B to be a vector or a matrix, got shape {sb}")
    if sb[0] != n:
        raise ValueError(
            f"expm_multiply: shapes of matrices A {(n, n)} and B {sb} are incompatible"
        )
    if traceA is not None:
        traceA = float(_concrete(traceA))
    if all(x is None for x in (start, stop, num, endpoint)):
        return expm_multiply_p.bind(
            a, B, 1.0, 1.0, pattern=pattern, num=None, endpoint=True, traceA=traceA
        )
    if start is None or stop is None:
        raise ValueError("expm_multiply: a time grid needs both start and stop")
    num = 50 if num is None else num
    if isinstance(num, bool) or not isinstance(num, int | np.integer):
        raise TypeError(f"expm_multiply: num must be an integer, got {num!r}")
    num = int(num)
    if num < 2:
        raise ValueError("expm_multiply: at least two time points are required")
    endpoint = True if endpoint is None else bool(endpoint)
    start = _check_scalar_time(start, "start")
    stop = _check_scalar_time(stop, "stop")
    return expm_multiply_p.bind(
        a, B, start, stop, pattern=pattern, num=num, endpoint=endpoint, traceA=traceA
    )
