"""The matrix exponential ``expm`` and its Fréchet derivative ``expm_frechet``.

Forward: scaling and squaring with a diagonal Padé approximant (Al-Mohy & Higham 2009, "A
new scaling and squaring algorithm for the matrix exponential"). The degree ``m`` (3, 5, 7,
9 or 13) and the number of squarings ``s`` are picked from 1-norms of powers of ``A``
exactly as ``scipy.linalg.expm`` picks them, so the two agree to rounding.

Derivatives: the JVP of ``expm`` at ``A`` along ``E`` is the Fréchet derivative
``L(A, E)``; the VJP of a cotangent ``G`` is ``L(A^T, G) = L(A, G^T)^T`` (``exp`` is a
primary matrix function with real coefficients: ``exp(A^T) = exp(A)^T``), so one algorithm
serves both, on the forward's own intermediates. ``L`` is computed by Algorithm 6.4 of
Al-Mohy & Higham 2009, "Computing the Fréchet derivative of the matrix exponential": the
derivative of the forward's algorithm, with the same ``m`` and ``s``, reusing what the
forward kept -- the scaled powers ``A^2, A^4, A^6`` (``A^8`` for m = 9), the Padé
polynomials, the factorization of the denominator ``Q = V - U`` (kept as ``Q^{-1}``) and the
squares ``X_0, ..., X_{s-1}``. A derivative costs 14 + 2s matrix products (m = 13) against
the forward's 9 + s products and one inversion; it does not refactorize.

One exception: the forward's ``m`` and ``s`` come from ``||A^p||^(1/p)`` for high powers
``p``, which can be far below ``||A||`` for a strongly non-normal matrix (a nilpotent ``A``
gets m = 3 and no scaling, exact for ``e^A``); the derivative's truncation error involves
the low powers too. When a bound of it computed from the forward's norms exceeds what
Algorithm 6.4 accepts (by over 100: about 1e-14 relative), the derivative uses Algorithm
6.4's own ``m`` and ``s`` (from ``||A||_1``, as ``scipy.linalg.expm_frechet``), at the price
of one more factorization, computed once per forward.

Higher derivatives differentiate ``L(A, E)`` itself through the block identity
``expm([[A, E], [0, A]]) = [[e^A, L(A, E)], [0, e^A]]``: the derivative of ``L(A, E)``
along ``(F, E')`` is the upper-right block of ``L([[A, E], [0, A]], [[F, E'], [0, F]])``,
again a Fréchet derivative, now of a ``2n x 2n`` matrix built with scigrad operations (so
it nests to any order).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from numpy.linalg import LinAlgError

from ...core.lowrank import LowRankArray
from ...core.primitive import Primitive, ShapeDtype, Tracer
from ...numpy._elementwise import exp
from ...numpy._shape import concatenate, reshape, stack, transpose
from ...numpy._tracer_methods import astype
from ...numpy._util import dtype_of, shape_of

__all__ = ["expm", "expm_frechet"]

_F64 = np.dtype(np.float64)

# -- Padé coefficients b_0..b_m of r_m = q_m(-A)^{-1} q_m(A), and the degree selection ----------
_PADE = {
    3: (120.0, 60.0, 12.0, 1.0),
    5: (30240.0, 15120.0, 3360.0, 420.0, 30.0, 1.0),
    7: (17297280.0, 8648640.0, 1995840.0, 277200.0, 25200.0, 1512.0, 56.0, 1.0),
    9: (
        17643225600.0,
        8821612800.0,
        2075673600.0,
        302702400.0,
        30270240.0,
        2162160.0,
        110880.0,
        3960.0,
        90.0,
        1.0,
    ),
    13: (
        64764752532480000.0,
        32382376266240000.0,
        7771770303897600.0,
        1187353796428800.0,
        129060195264000.0,
        10559470521600.0,
        670442572800.0,
        33522128640.0,
        1323241920.0,
        40840800.0,
        960960.0,
        16380.0,
        182.0,
        1.0,
    ),
}
# theta_m: the largest ||2^-s A|| (in the eta sense) for which degree m is accurate to 2^-53
# (scipy.linalg.expm's values, theta_13 = 4.25 included).
_THETA = (1.495585217958292e-2, 2.539398330063230e-1, 9.504178996162932e-1, 2.097847961257068, 4.25)
# |c_{2m+1}| / u-scaled constants of the backward-error test ell(A, m) (Al-Mohy & Higham 2009,
# eq. (5.1)); u = 2^-53.
_ELL = tuple(
    2.0**-53 * c
    for c in (
        100800.0,
        10059033600.0,
        4487938430976000.0,
        5914384781877411840000.0,
        113250775606021113483283660800000000.0,
    )
)
# Above this size 1-norms of A^8 and A^10 are estimated instead of computed (as SciPy does).
_EXACT_NORM_MAX = 400


_absolute = np.absolute
_add_reduce = np.add.reduce
_max_reduce = np.maximum.reduce


def _norm1(x: np.ndarray) -> float:
    """The 1-norm (largest column sum of absolute values)."""
    return float(_max_reduce(_add_reduce(_absolute(x), axis=0)))


def _norm1_power_estimate(a: np.ndarray, p: int) -> float:
    """A lower bound of ``||a^p||_1`` from matrix-vector products only (Hager's method)."""
    n = a.shape[0]
    x = np.full(n, 1.0 / n)
    est = 0.0
    for k in range(5):
        y = x
        for _ in range(p):
            y = a @ y
        new = float(_add_reduce(_absolute(y)))
        if k and new <= est:
            break
        est = new
        z = np.where(y >= 0, 1.0, -1.0)
        for _ in range(p):
            z = a.T @ z
        j = int(np.argmax(_absolute(z)))
        if k and abs(z[j]) <= z @ x:
            break
        x = np.zeros(n)
        x[j] = 1.0
    return est


def _ell(temp: float, norm_a: float, coef: float, p: int) -> int:
    """``max(ceil(log2(temp / norm_a / coef) / p), 0)``: the extra squarings the backward
    error bound asks for. Degenerate ratios (zero, infinite) ask for none, as in SciPy."""
    if not (temp > 0 and norm_a > 0):
        return 0
    x = math.log2(temp / norm_a / coef) / p if math.isfinite(temp) else math.inf
    return max(math.ceil(x), 0) if math.isfinite(x) else 0


#: How many even powers A^2, A^4, ... each degree uses (13: A^2, A^4, A^6 twice over).
_NPOW = {3: 1, 5: 2, 7: 3, 9: 4, 13: 3}


def _pick(a: np.ndarray) -> tuple[int, int, np.ndarray, dict[int, float]]:
    """``(m, s, powers, norms)``: the Padé degree, the number of squarings, the (unscaled)
    even powers ``A^2, A^4, ...`` that degree uses, stacked ``(k, n, n)``, and the exact
    1-norms ``{p: ||A^p||_1}`` computed on the way, following scipy.linalg.expm's
    ``pick_pade_structure`` step by step."""
    n = a.shape[0]
    pw = np.empty((4, n, n))
    a2, a4, a6, a8 = pw
    abs_a = _absolute(a)
    work = abs_a @ np.ones(n)  # |A|^k 1, "spun" one power at a time for the ell tests
    norm_a = float(_max_reduce(work))
    np.matmul(a, a, out=a2)
    np.matmul(a2, a2, out=a4)
    np.matmul(a4, a2, out=a6)
    norms = {
        1: float(_max_reduce(_add_reduce(abs_a, axis=0))),
        2: _norm1(a2),
        4: _norm1(a4),
        6: _norm1(a6),
    }
    d4 = norms[4] ** 0.25
    d6 = norms[6] ** (1.0 / 6.0)
    eta0 = max(d4, d6)

    def spin(k: int) -> float:
        nonlocal work
        for _ in range(k):
            work = abs_a @ work
        return float(_max_reduce(work))

    temp = spin(6)  # |A|^7
    if eta0 < _THETA[0] and _ell(temp, norm_a, _ELL[0], 6) == 0:
        return 3, 0, pw[:1], norms
    temp = spin(4)  # |A|^11
    if eta0 < _THETA[1] and _ell(temp, norm_a, _ELL[1], 10) == 0:
        return 5, 0, pw[:2], norms
    exact = n < _EXACT_NORM_MAX
    if exact:
        np.matmul(a4, a4, out=a8)
        norms[8] = _norm1(a8)
        d8 = norms[8] ** 0.125
    else:
        d8 = _norm1_power_estimate(a, 8) ** 0.125
    eta2 = max(d6, d8)
    temp = spin(4)  # |A|^15
    if eta2 < _THETA[2] and _ell(temp, norm_a, _ELL[2], 14) == 0:
        return 7, 0, pw[:3], norms
    temp = spin(4)  # |A|^19
    if eta2 < _THETA[3] and _ell(temp, norm_a, _ELL[3], 18) == 0:
        if not exact:
            np.matmul(a4, a4, out=a8)
        return 9, 0, pw, norms
    if exact:
        norms[10] = _norm1(a6 @ a4)
        d10 = norms[10] ** 0.1
    else:
        d10 = _norm1_power_estimate(a, 10) ** 0.1
    eta4 = min(eta2, max(d8, d10))
    s = max(math.ceil(math.log2(eta4 / _THETA[4])), 0) if eta4 > 0 else 0
    if s:
        abs_a *= 2.0**-s
        work *= 2.0 ** (-19 * s)
        norm_a *= 2.0**-s
    temp = spin(8)  # |2^-s A|^27
    s += _ell(temp, norm_a, _ELL[4], 26)
    return 13, s, pw[:3], norms


def _powers(a: np.ndarray, k: int) -> np.ndarray:
    """``A^2, A^4, ..., A^2k`` stacked ``(k, n, n)`` (k <= 4)."""
    pw = np.empty((k, *a.shape))
    np.matmul(a, a, out=pw[0])
    if k >= 2:
        np.matmul(pw[0], pw[0], out=pw[1])
    if k >= 3:
        np.matmul(pw[1], pw[0], out=pw[2])
    if k >= 4:
        np.matmul(pw[1], pw[1], out=pw[3])
    return pw


# -- which degree and scaling the Fréchet derivative may use -----------------------------------
# The forward picks m and s from eta = max(||A^p||^(1/p), ...) over high powers p, which can be
# far below ||A|| for a non-normal A (a nilpotent A has eta = 0 and gets m = 3, s = 0, exact
# for e^A). The derivative of r_m truncates sum_k c_k sum_j X^j E X^(k-1-j) at k = 2m, and
# those terms involve the low powers X^j too: with such an m and s it can be far off (0.4 %
# for 40 * a random strictly upper triangular 4 x 4). Al-Mohy & Higham's Fréchet algorithm
# (2009, Algorithm 6.4) picks m and s from ||A||_1 against these thresholds, which bound the
# derivative's backward error by u = 2^-53 (SciPy's ``ell_table_61``).
_ELL_FRECHET = {3: 1.08e-2, 5: 2.00e-1, 7: 7.83e-1, 9: 1.78, 13: 4.74}
# The forward's m and s are kept for the derivative while the bound below stays within 100 u
# (~1e-14): about 5 % of small random matrices exceed u itself, none of them 20 u, while the
# cases this guards against exceed it by 1e20.
_FRECHET_SLACK = 100.0


def _frechet_safe(m: int, norms: dict[int, float]) -> bool:
    """Whether the derivative may reuse the forward's ``m`` and ``s``: its leading truncated
    term, bounded with the exact norms ``{p: ||X^p||_1}`` of the scaled ``X`` that the
    forward computed (``||X^p|| <= ||X^q|| ||X^(p-q)||`` for the others), is within
    ``_FRECHET_SLACK`` of the bound that Algorithm 6.4 accepts (every ``||X^p||`` equal to
    ``ell_m^p``: a backward error of u)."""
    if norms[1] <= _ELL_FRECHET[m]:  # Algorithm 6.4's own test: ||X^p|| <= ||X||^p
        return True
    k = 2 * m
    best = [1.0]
    for p in range(1, k + 1):
        b = norms.get(p, math.inf)
        for q in range(1, p // 2 + 1):
            b = min(b, best[q] * best[p - q])
        best.append(b)
    total = sum(best[j] * best[k - j] for j in range(k + 1))
    return total <= _FRECHET_SLACK * (k + 1) * _ELL_FRECHET[m] ** k


def _frechet_degree(a: np.ndarray) -> tuple[int, int]:
    """Algorithm 6.4's ``(m, s)`` from ``||A||_1``, as ``scipy.linalg.expm_frechet``."""
    norm = _norm1(a)
    for m in (3, 5, 7, 9):
        if norm <= _ELL_FRECHET[m]:
            return m, 0
    return 13, max(0, math.ceil(math.log2(norm / _ELL_FRECHET[13])))


def _coefficients(m: int) -> tuple[np.ndarray, float, float]:
    """The Padé polynomials as linear combinations of the stacked even powers: rows of the
    returned matrix give (m = 13) ``W1, Z1, W2 - b1 I, Z2 - b0 I`` from ``A^2, A^4, A^6``
    with ``U = A (A^6 W1 + W2)``, ``V = A^6 Z1 + Z2``; (m < 13) ``W - b1 I, V - b0 I`` from
    ``A^2, ..., A^{m-1}`` with ``U = A W``. The same rows map the derivatives
    ``M_2k = d(A^2k)`` to the derivatives of those polynomials."""
    b = _PADE[m]
    if m == 13:
        rows = [
            (b[9], b[11], b[13]),
            (b[8], b[10], b[12]),
            (b[3], b[5], b[7]),
            (b[2], b[4], b[6]),
        ]
    else:
        k = _NPOW[m]
        rows = [[b[2 * j + 1] for j in range(1, k + 1)], [b[2 * j] for j in range(1, k + 1)]]
    out = np.array(rows)
    out.flags.writeable = False
    return out, b[1], b[0]


_COEFFICIENTS = {m: _coefficients(m) for m in _PADE}


def _combine(coef: np.ndarray, mats: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``out[i] = sum_j coef[i, j] mats[j]`` for a stack ``mats`` ``(k, n, n)``: one BLAS call."""
    k, n, _ = mats.shape
    if out is None:
        return (coef @ mats.reshape(k, n * n)).reshape(coef.shape[0], n, n)
    np.matmul(coef, mats.reshape(k, n * n), out=out.reshape(coef.shape[0], n * n))
    return out


def _add_diagonal(x: np.ndarray, c: float) -> None:
    """``x += c I`` in place (``x`` C-contiguous)."""
    x.reshape(-1)[:: x.shape[0] + 1] += c


# -- the one factorization of a forward, counted by the tests -----------------------------------
def _factorize(q: np.ndarray) -> np.ndarray:
    """The inverse of the Padé denominator ``Q = q_m(-A) = V - U``, computed once per forward
    (LU factorization with partial pivoting) and applied by matrix products afterwards, in
    the forward and in every derivative. ``Q`` is well conditioned for the degrees chosen
    (Al-Mohy & Higham 2009, sec. 3), so the explicit inverse loses nothing; it keeps the
    whole computation in NumPy's BLAS (SciPy's LAPACK is a second OpenBLAS whose threads
    stall against NumPy's on small machines when the two alternate)."""
    try:
        return np.linalg.inv(q)
    except LinAlgError:  # cannot happen for the degrees chosen
        raise LinAlgError("expm: the Padé denominator is singular") from None


class _Parts:
    """What the forward keeps for the derivatives: ``m``, ``s``, the scaled matrix
    ``a = 2^-s A``, its stacked even powers ``pw`` (scaled), ``w`` with ``U = a @ w`` (and,
    for m = 13, ``w1``, ``z1`` with ``w = A^6 w1 + w2`` and ``V = A^6 z1 + z2``), the
    inverse of ``Q = V - U``, and the squares ``xs = [X_0 = r_m(a), X_1, ..., X_s = e^A]``."""

    __slots__ = ("m", "s", "a", "pw", "w", "w1", "z1", "qinv", "xs", "safe")

    def __init__(self, a: np.ndarray, degree: tuple[int, int] | None = None) -> None:
        if degree is None:  # scipy.linalg.expm's choice
            m, s, pw, norms = _pick(a)
            scaled = {p: v * 2.0 ** (-s * p) for p, v in norms.items()}
            #: whether derivatives may use these m and s (see _frechet_safe)
            self.safe = _frechet_safe(m, scaled)
        else:  # a given choice (Algorithm 6.4's, for derivatives)
            m, s = degree
            pw = _powers(a, _NPOW[m])
            self.safe = True
        if s:  # exact scalings by powers of two: a = 2^-s A, A^2k -> 2^-2ks A^2k
            a = a * 2.0**-s
            pw *= (2.0 ** (-2 * s * np.arange(1, pw.shape[0] + 1)))[:, None, None]
        coef, b1, b0 = _COEFFICIENTS[m]
        comb = _combine(coef, pw)
        if m == 13:
            w1, z1, w, v = comb[0], comb[1], pw[2] @ comb[0], pw[2] @ comb[1]
            w += comb[2]
            v += comb[3]
        else:
            w, v = comb
            w1 = z1 = None
        _add_diagonal(w, b1)
        _add_diagonal(v, b0)
        u = a @ w
        v -= u  # Q = V - U
        self.qinv = _factorize(v)
        # r_m = Q^{-1} (V + U) = I + 2 Q^{-1} U (SciPy's form)
        r = self.qinv @ u
        r *= 2.0
        _add_diagonal(r, 1.0)
        xs = [r]
        for _ in range(s):
            xs.append(xs[-1] @ xs[-1])
        self.m, self.s, self.a, self.pw, self.w, self.w1, self.z1 = m, s, a, pw, w, w1, z1
        self.xs = xs

    def frechet(self, e: np.ndarray) -> np.ndarray:
        """``L(A, e)`` (Al-Mohy & Higham 2009, Algorithm 6.4, with this forward's m and s).

        Every temporary lives in a per-thread workspace reused from call to call: a
        derivative is often evaluated many times per forward (``jacrev``, optimization
        loops), and fresh temporaries cost page faults once the allocator has returned
        freed memory to the system (a quarter of the time at n = 100)."""
        a, pw, m = self.a, self.pw, self.m
        k = pw.shape[0]
        ws = _workspace(a.shape[0], 14)
        es, t1, t2, lw, lv, lu = ws[0], ws[1], ws[2], ws[3], ws[4], ws[5]
        ms, comb = ws[6 : 6 + k], ws[10 : 10 + _COEFFICIENTS[m][0].shape[0]]
        np.multiply(e, 2.0**-self.s, out=es)
        # M_2k = d(A^2k): M2 = a e + e a, M4 = A2 M2 + M2 A2, M6 = A4 M2 + M4 A2,
        # M8 = A4 M4 + M4 A4
        _sum_of_products(a, es, es, a, ms[0], t1)
        if k >= 2:
            _sum_of_products(pw[0], ms[0], ms[0], pw[0], ms[1], t1)
        if k >= 3:
            _sum_of_products(pw[1], ms[0], ms[1], pw[0], ms[2], t1)
        if k >= 4:
            _sum_of_products(pw[1], ms[1], ms[1], pw[1], ms[3], t1)
        _combine(_COEFFICIENTS[m][0], ms, out=comb)
        if m == 13:
            a6, m6 = pw[2], ms[2]
            _sum_of_products(a6, comb[0], m6, self.w1, lw, t1)  # dW = A6 dW1 + M6 W1 + dW2
            lw += comb[2]
            _sum_of_products(a6, comb[1], m6, self.z1, lv, t1)  # dV = A6 dZ1 + M6 Z1 + dZ2
            lv += comb[3]
        else:
            lw, lv = comb[0], comb[1]
        _sum_of_products(a, lw, es, self.w, lu, t1)  # dU = a dW + e W
        # dR = Q^{-1} (dU + dV + (dU - dV) R)
        np.subtract(lu, lv, out=t1)
        np.matmul(t1, self.xs[0], out=t2)
        t2 += lu
        t2 += lv
        out = np.matmul(self.qinv, t2, out=t1)
        for x in self.xs[:-1]:  # d(X^2) = X dX + dX X
            _sum_of_products(x, out, out, x, t2, lw)
            out, t2 = t2, out
        return out.copy()


_WORKSPACE = threading.local()
# Matrices larger than this get fresh temporaries: their products dwarf the allocations.
_WORKSPACE_MAX_N = 512


def _workspace(n: int, k: int) -> np.ndarray:
    """``k`` scratch matrices ``n x n`` for this thread, kept for the next call of the same
    size (one size at a time)."""
    if n > _WORKSPACE_MAX_N:
        return np.empty((k, n, n))
    ws = getattr(_WORKSPACE, "buf", None)
    if ws is None or ws.shape[1] != n or ws.shape[0] < k:
        ws = _WORKSPACE.buf = np.empty((k, n, n))
    return ws


def _sum_of_products(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, out: np.ndarray, tmp: np.ndarray
) -> None:
    """``out = a @ b + c @ d`` without allocating (``tmp`` is scratch; neither may alias
    an operand)."""
    np.matmul(a, b, out=out)
    np.matmul(c, d, out=tmp)
    out += tmp


def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: array must not contain infs or NaNs")


class _ExpmCache:
    """The forward's intermediates for one matrix ``A``: filled by the first impl that runs
    on it (``expm``'s forward, or a Fréchet derivative needing them), then shared by every
    derivative of that application. It travels as a static parameter of the primitives."""

    __slots__ = ("a", "x", "parts", "dparts")

    def __init__(self) -> None:
        self.a: np.ndarray | None = None  # the matrix these intermediates belong to
        self.x: np.ndarray | None = None
        self.parts: _Parts | None = None  # the forward's (SciPy's m and s)
        self.dparts: _Parts | None = None  # the derivatives' (the same unless unsafe)

    def _own(self, a: np.ndarray) -> _ExpmCache:
        """This cache if it is empty or holds ``a``'s intermediates, else a fresh one (not
        kept): one cache applied to several matrices (vmap's per-entry loop) must not mix
        them."""
        if self.a is None:
            self.a = a
            return self
        return self if a is self.a or np.array_equal(a, self.a) else _ExpmCache()

    def value(self, a: Any) -> np.ndarray:
        a = self._prepare(a)
        owner = self._own(a)
        if owner is not self:
            return owner.value(a)
        if self.x is None:
            diag = np.diagonal(a)
            if np.count_nonzero(a) == np.count_nonzero(diag):  # diagonal: exact, as SciPy
                self.x = np.diag(np.exp(diag))
            else:
                self.parts = _Parts(a)
                self.x = self.parts.xs[-1]
        return self.x

    def derivative(self, a: Any) -> _Parts:
        """The intermediates the Fréchet derivative uses: the forward's when its degree and
        scaling are safe for the derivative (nearly always), else (strongly non-normal A)
        those of Algorithm 6.4's choice, computed once."""
        a = self._prepare(a)
        owner = self._own(a)
        if owner is not self:
            return owner.derivative(a)
        if self.dparts is None:
            if self.parts is None:
                self.parts = _Parts(a)
                if self.x is None:
                    self.x = self.parts.xs[-1]
            parts = self.parts
            self.dparts = parts if parts.safe else _Parts(a, _frechet_degree(a))
        return self.dparts

    @staticmethod
    def _prepare(a: Any) -> np.ndarray:
        a = np.asarray(a, dtype=_F64)
        _check_finite(a, "expm")
        return a

    def __repr__(self) -> str:
        return "<expm intermediates>"


# -- primitives ----------------------------------------------------------------------------------
def _float_dtype(*dts: Any) -> np.dtype:
    dt = np.result_type(*dts)
    if dt.kind == "c":
        raise NotImplementedError("scigrad.scipy.linalg.expm: complex matrices are not supported")
    return dt if dt.kind == "f" else _F64


def _cast(x: np.ndarray, dt: np.dtype) -> np.ndarray:
    return x if x.dtype == dt else x.astype(dt)


def _expm_impl(a: Any, *, cache: _ExpmCache) -> np.ndarray:
    a = np.asarray(a)
    return _cast(cache.value(a), _float_dtype(a.dtype))


def _expm_frechet_impl(a: Any, e: Any, *, cache: _ExpmCache) -> np.ndarray:
    a, e = np.asarray(a), np.asarray(e)  # a LowRankArray cotangent is materialized here
    out = cache.derivative(a).frechet(e.astype(_F64, copy=False))
    return _cast(out, _float_dtype(a.dtype, e.dtype))


def _t(x: Any) -> Any:
    """The transpose of a matrix (a free view for plain and low-rank arrays)."""
    return transpose(x, (1, 0)) if isinstance(x, Tracer) else x.T


def _concrete(x: Any) -> np.ndarray:
    if isinstance(x, Tracer):
        x = x.concrete()
    return np.asarray(x, dtype=_F64)


def _value_if_known(x: Any) -> np.ndarray | None:
    """The concrete value of ``x``, or None under abstract evaluation (``eval_shape``)."""
    try:
        return _concrete(x)
    except TypeError:
        return None


def _block_scale(a: Any, e: Any) -> float:
    """A power of two ``c`` making ``||c e||_1`` about ``||a||_1``: ``L(A, E) = L(A, c E) / c``
    exactly, and the block matrix ``[[A, cE], [0, A]]`` is then no harder to exponentiate
    than ``A`` itself (its norm, hence its scaling, is not driven by the size of E)."""
    na, ne = _norm1(_concrete(a)), _norm1(_concrete(e))
    if ne == 0.0 or not math.isfinite(ne):
        return 1.0
    return 2.0 ** round(math.log2((na if na > 0.0 else 1.0) / ne))


def _block(a11: Any, a12: Any, a21: Any, a22: Any) -> Any:
    return concatenate([concatenate([a11, a12], axis=1), concatenate([a21, a22], axis=1)], axis=0)


def _expm_frechet_jvp(tangents, ans, a, e, *, cache):
    ta, te = tangents
    out = None
    if te is not None:  # L is linear in E
        out = expm_frechet_p.bind(a, te, cache=cache)
    if ta is not None:
        # d/dA L(A, E)[F] = upper-right block of L([[A, E], [0, A]], [[F, 0], [0, F]])
        n = shape_of(a)[-1]
        c = _block_scale(a, e)
        zero = np.zeros((n, n), dtype_of(ta))
        big = _block(a, e * c if c != 1.0 else e, zero, a)
        d = _block(ta, zero, zero, ta)
        term = expm_frechet_p.bind(big, d, cache=_ExpmCache())[:n, n:]
        term = term / c if c != 1.0 else term
        out = term if out is None else out + term
    return out


def _expm_frechet_vjp(g, ans, needs, a, e, *, cache):
    if isinstance(g, LowRankArray):
        g = g.toarray()
    gt = _t(g)
    ga = ge = None
    if needs[1]:  # the adjoint of E -> L(A, E) is G -> L(A^T, G) = L(A, G^T)^T
        ge = _t(expm_frechet_p.bind(a, gt, cache=cache))
    if needs[0]:
        # <G, d/dA L(A, E)[F]> = <P, L(B, diag(F, F))> with B = [[A, E], [0, A]] and
        # P = [[0, G], [0, 0]]; the adjoint gives C = L(B, P^T)^T and ga = C11 + C22.
        n = shape_of(a)[-1]
        c = _block_scale(a, e)
        zero = np.zeros((n, n), dtype_of(g))
        big = _block(a, e * c if c != 1.0 else e, zero, a)
        cbig = _t(expm_frechet_p.bind(big, _block(zero, zero, gt, zero), cache=_ExpmCache()))
        ga = cbig[:n, :n] + cbig[n:, n:]
        ga = ga / c if c != 1.0 else ga
    return [ga, ge]


# e^A of one real square matrix (n >= 1); `cache` receives the forward's intermediates.
expm_p = Primitive(
    "expm",
    _expm_impl,
    shape=lambda a, *, cache: ShapeDtype(a.shape, _float_dtype(a.dtype)),
)
expm_p.defjvp(lambda t, ans, a, *, cache: expm_frechet_p.bind(a, t, cache=cache))
expm_p.defvjp(lambda g, ans, a, *, cache: _t(expm_frechet_p.bind(a, _t(g), cache=cache)))

# L(A, E), the Fréchet derivative of expm at A along E, with the intermediates of A's forward
# taken from `cache` (computed there if no forward ran).
expm_frechet_p = Primitive(
    "expm_frechet",
    _expm_frechet_impl,
    shape=lambda a, e, *, cache: ShapeDtype(a.shape, _float_dtype(a.dtype, e.dtype)),
)
expm_frechet_p.defjvp_joint(_expm_frechet_jvp)
expm_frechet_p.defvjp_joint(_expm_frechet_vjp)


# -- public functions ----------------------------------------------------------------------------
def _asarray(x: Any) -> Any:
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    dt = dtype_of(x)
    fdt = _float_dtype(dt)
    return x if dt == fdt else astype(x, fdt)


def _over_matrices(fn: Any, shape: tuple[int, ...], *arrays: Any) -> Any:
    """``fn`` applied to each matrix of stacks ``(..., n, n)``; results stacked back."""
    if len(shape) == 2:
        return fn(*arrays)
    n = shape[-1]
    flat = [reshape(x, (-1, n, n)) for x in arrays]
    outs = [fn(*(x[i] for x in flat)) for i in range(int(np.prod(shape[:-2])))]
    if isinstance(outs[0], tuple):
        return tuple(reshape(stack(list(o)), shape) for o in zip(*outs, strict=True))
    return reshape(stack(outs), shape)


def expm(A: Any) -> Any:
    """The matrix exponential of ``A`` ``(..., n, n)``, as ``scipy.linalg.expm``.

    Scaling and squaring with a Padé approximant of degree 3 to 13 (Al-Mohy & Higham 2009),
    chosen as SciPy chooses it. Differentiable to any order: the first derivatives are
    Fréchet derivatives computed from the forward's own intermediates (its powers of ``A``,
    its factorization of the Padé denominator and its squares: no refactorization), at
    about twice the cost of the forward. Real matrices only.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> from scigrad.scipy.linalg import expm
    >>> expm(np.array([[0.0, 1.0], [0.0, 0.0]]))
    array([[1., 1.],
           [0., 1.]])
    >>> rotation = np.array([[0.0, 1.0], [-1.0, 0.0]])
    >>> float(sg.grad(lambda t: expm(t * rotation)[0, 1])(0.0))  # d/dt sin(t) at 0
    1.0
    """
    a = _asarray(A)
    shape = shape_of(a)
    if len(shape) < 2 and int(np.prod(shape)) == 1:
        return exp(reshape(a, (1, 1)))
    if len(shape) < 2:
        raise LinAlgError("The input array must be at least two-dimensional")
    if shape[-1] != shape[-2]:
        raise LinAlgError("Last 2 dimensions of the array must be square")
    if 0 in shape:
        return np.empty(shape, dtype_of(a))
    if shape[-1] == 1:
        return exp(a)
    return _over_matrices(lambda x: expm_p.bind(x, cache=_ExpmCache()), shape, a)


def expm_frechet(
    A: Any,
    E: Any,
    method: str | None = None,
    compute_expm: bool = True,
    check_finite: bool = True,
) -> Any:
    """The Fréchet derivative ``L(A, E)`` of the matrix exponential at ``A`` along ``E``, as
    ``scipy.linalg.expm_frechet``: returns ``(expm(A), L(A, E))``, or ``L(A, E)`` alone if
    ``compute_expm`` is false. Differentiable in ``A`` and ``E`` (to any order).

    ``method`` is ``"SPS"`` (the default: scaling, Padé and squaring, Al-Mohy & Higham 2009,
    Algorithm 6.4, sharing the work of ``expm(A)``) or ``"blockEnlarge"`` (the blocks of
    ``expm([[A, E], [0, A]])``). Stacks ``(..., n, n)`` of equal shapes are accepted.

    >>> import scigrad.numpy as np
    >>> from scigrad.scipy.linalg import expm_frechet
    >>> expm_frechet(np.zeros((2, 2)), np.eye(2), compute_expm=False)
    array([[1., 0.],
           [0., 1.]])
    """
    a, e = _asarray(A), _asarray(E)
    if check_finite:
        for x in (a, e):
            value = _value_if_known(x)
            if value is not None:
                _check_finite(value, "expm_frechet")
    sa, se = shape_of(a), shape_of(e)
    if len(sa) < 2 or sa[-1] != sa[-2]:
        raise ValueError("expected A to be a square matrix")
    if len(se) < 2 or se[-1] != se[-2]:
        raise ValueError("expected E to be a square matrix")
    if sa != se:
        raise ValueError("expected A and E to be the same shape")
    if method is None:
        method = "SPS"
    if method not in ("SPS", "blockEnlarge"):
        raise ValueError(f"Unknown implementation {method}")
    dt = _float_dtype(dtype_of(a), dtype_of(e))
    a = a if dtype_of(a) == dt else astype(a, dt)
    e = e if dtype_of(e) == dt else astype(e, dt)
    if 0 in sa:
        empty = np.empty(sa, dt)
        return (empty, empty.copy()) if compute_expm else empty

    def sps(x: Any, y: Any) -> Any:
        cache = _ExpmCache()
        ex = expm_p.bind(x, cache=cache) if compute_expm else None
        lx = expm_frechet_p.bind(x, y, cache=cache)
        return (ex, lx) if compute_expm else lx

    def block_enlarge(x: Any, y: Any) -> Any:
        n = shape_of(x)[-1]
        big = expm_p.bind(_block(x, y, np.zeros((n, n), dt), x), cache=_ExpmCache())
        return (big[:n, :n], big[:n, n:]) if compute_expm else big[:n, n:]

    return _over_matrices(sps if method == "SPS" else block_enlarge, sa, a, e)
