"""Special functions (``scipy.special``): logsumexp, softmax, expit, erf, gammaln, ...

Each function evaluates with SciPy and differentiates to any order: the derivative rules
are written with scigrad operations (``gammaln' = digamma``, ``digamma' = polygamma(1, .)``,
``polygamma(n, .)' = polygamma(n + 1, .)``, ...). Integer input gives float64 output, as
in SciPy. Only real arguments are supported.

Where a function has a removable singularity in its derivative the limit is used (``i1``
and ``i1e`` at 0, ``xlogy`` and ``xlog1py`` in ``y`` where ``x == 0``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special as sc

from ..core.batching import BROADCASTING_SHAPE_RULES, align_batched, loop_rule
from ..core.custom import stop_gradient
from ..core.graph import TracedControlFlowError
from ..core.primitive import Primitive, ShapeDtype, Tracer
from ..numpy._elementwise import (
    equal,
    exp,
    greater,
    isfinite,
    less,
    log,
    log1p,
    logical_not,
    sign,
    where,
)
from ..numpy._reductions import expand_reduced
from ..numpy._reductions import sum as sum_
from ..numpy._tracer_methods import astype
from ..numpy._util import (
    axes_batch_rule,
    broadcast_like,
    dtype_of,
    normalize_axis,
    shape_of,
    unbroadcast,
)

__all__ = [
    "beta",
    "betaln",
    "digamma",
    "entr",
    "erf",
    "erfc",
    "erfcinv",
    "erfinv",
    "expit",
    "gamma",
    "gammaln",
    "i0",
    "i0e",
    "i1",
    "i1e",
    "log_expit",
    "log_ndtr",
    "log_softmax",
    "logit",
    "logsumexp",
    "ndtr",
    "ndtri",
    "polygamma",
    "psi",
    "softmax",
    "xlog1py",
    "xlogy",
]

_SQRT_PI = float(np.sqrt(np.pi))
_SQRT_2PI = float(np.sqrt(2 * np.pi))
_HALF_LOG_2PI = float(0.5 * np.log(2 * np.pi))


def _float(dt: Any) -> np.dtype:
    dt = np.dtype(dt)
    if dt.kind == "c":
        raise NotImplementedError("scigrad.scipy.special: complex arguments are not supported")
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _float_shape(*avals: Any) -> ShapeDtype:
    """Shape rule of a broadcasting special function: integer input gives float64."""
    shapes = [a.shape if isinstance(a, ShapeDtype) else np.shape(a) for a in avals]
    dtypes = [a.dtype if isinstance(a, ShapeDtype) else a for a in avals]
    return ShapeDtype(np.broadcast_shapes(*shapes), _float(np.result_type(*dtypes)))


BROADCASTING_SHAPE_RULES.add(_float_shape)  # batched by broadcasting under vmap


def _unary(name: str, impl: Callable, deriv: Callable[[Any, Any], Any], doc: str) -> Callable:
    """A smooth function given by its derivative ``deriv(ans, x)``."""
    p = Primitive(name, impl, shape=_float_shape)
    p.defjvp(lambda t, ans, x: t * deriv(ans, x))
    p.defvjp(lambda g, ans, x: g * deriv(ans, x))
    f = p.bind
    f.__doc__ = doc
    return f


def _binary(name: str, impl: Callable, dx: Callable, dy: Callable, doc: str) -> Callable:
    """``dx(ans, x, y)``, ``dy(ans, x, y)``: the partial derivatives (broadcast shape)."""
    p = Primitive(name, impl, shape=_float_shape)
    p.defjvp(
        lambda t, ans, x, y: broadcast_like(t * dx(ans, x, y), shape_of(ans)),
        lambda t, ans, x, y: broadcast_like(t * dy(ans, x, y), shape_of(ans)),
    )
    p.defvjp(
        lambda g, ans, x, y: unbroadcast(g * dx(ans, x, y), shape_of(x)),
        lambda g, ans, x, y: unbroadcast(g * dy(ans, x, y), shape_of(y)),
    )
    f = p.bind
    f.__doc__ = doc
    return f


def _where_zero(x: Any, at_zero: float, f: Callable[[Any], Any]) -> Any:
    """``f(x)`` with the value ``at_zero`` where ``x == 0`` (a removable singularity),
    guarded so that neither the value nor any derivative sees the division by zero."""
    zero = equal(x, 0.0)
    if not _may_hold(zero):
        return f(x)
    return where(zero, at_zero, f(where(zero, 1.0, x)))


def _ratio_zero_where_x_zero(x: Any, d: Any) -> Any:
    """``x / d``, exactly 0 where ``x == 0`` whatever ``d`` is (even 0)."""
    zero = equal(x, 0.0)
    if not _may_hold(zero):
        return x / d
    return where(zero, 0.0, x / where(zero, 1.0, d))


# -- gamma family ------------------------------------------------------------------------------
def _polygamma_impl(x: Any, *, n: Any) -> np.ndarray:
    if isinstance(n, int):
        if n == 0:
            return sc.psi(x)
        # polygamma(n, x) = (-1)^(n+1) n! zeta(n+1, x)
        return (-1.0) ** (n + 1) * sc.factorial(n) * sc.zeta(n + 1.0, x)
    return sc.polygamma(n, x)


polygamma_p = Primitive(
    "polygamma",
    _polygamma_impl,
    shape=lambda x, *, n: _float_shape(x, np.zeros(np.shape(n), dtype=bool)),
)
polygamma_p.defjvp(
    lambda t, ans, x, *, n: broadcast_like(t * polygamma_p.bind(x, n=n + 1), shape_of(ans))
)
polygamma_p.defvjp(
    lambda g, ans, x, *, n: unbroadcast(g * polygamma_p.bind(x, n=n + 1), shape_of(x))
)
# An array of orders broadcasts against x: entry by entry then (rare); else elementwise.
polygamma_p.defbatch(
    lambda vals, dims, *, n: (
        loop_rule(polygamma_p)(vals, dims, n=n)
        if np.ndim(n)
        else (polygamma_p.bind(vals[0], n=n), dims[0])
    )
)


def polygamma(n: Any, x: Any) -> Any:
    """The ``n``-th derivative of the digamma function (as ``scipy.special.polygamma``).

    ``n`` is a static non-negative integer (or integer array); ``x`` is differentiable,
    with derivative ``polygamma(n + 1, x)``.
    """
    if isinstance(n, Tracer):
        raise TypeError("polygamma: the order n must be a concrete integer, not a traced value")
    n_arr = np.asarray(n)
    if n_arr.dtype.kind not in "iu" and not (
        n_arr.dtype.kind == "f" and np.all(n_arr == np.floor(n_arr))
    ):
        raise TypeError(f"polygamma: the order n must be an integer, got {n!r}")
    if np.any(n_arr < 0):
        raise ValueError(f"polygamma: the order n must be non-negative, got {n!r}")
    n = int(n_arr) if n_arr.ndim == 0 else n_arr.astype(np.int64)
    return polygamma_p.bind(x, n=n)


digamma = _unary(
    "digamma",
    sc.psi,
    lambda ans, x: polygamma_p.bind(x, n=1),
    "The digamma function ``psi(x) = d/dx log(gamma(x))`` (as ``scipy.special.digamma``).",
)
psi = digamma
gammaln = _unary(
    "gammaln",
    sc.gammaln,
    lambda ans, x: digamma(x),
    "``log(|gamma(x)|)`` (as ``scipy.special.gammaln``); derivative ``digamma(x)``.",
)
gamma = _unary(
    "gamma",
    sc.gamma,
    lambda ans, x: ans * digamma(x),
    "The gamma function (as ``scipy.special.gamma``); derivative ``gamma(x) digamma(x)``.",
)
betaln = _binary(
    "betaln",
    sc.betaln,
    lambda ans, a, b: digamma(a) - digamma(a + b),
    lambda ans, a, b: digamma(b) - digamma(a + b),
    "``log(|beta(a, b)|)`` (as ``scipy.special.betaln``).",
)
beta = _binary(
    "beta",
    sc.beta,
    lambda ans, a, b: ans * (digamma(a) - digamma(a + b)),
    lambda ans, a, b: ans * (digamma(b) - digamma(a + b)),
    "The beta function ``gamma(a) gamma(b) / gamma(a + b)`` (as ``scipy.special.beta``).",
)

# -- error function and normal distribution ---------------------------------------------------
erf = _unary(
    "erf",
    sc.erf,
    lambda ans, x: (2.0 / _SQRT_PI) * exp(-(x * x)),
    "The error function (as ``scipy.special.erf``).",
)
erfc = _unary(
    "erfc",
    sc.erfc,
    lambda ans, x: (-2.0 / _SQRT_PI) * exp(-(x * x)),
    "The complementary error function ``1 - erf(x)`` (as ``scipy.special.erfc``).",
)
erfinv = _unary(
    "erfinv",
    sc.erfinv,
    lambda ans, x: (_SQRT_PI / 2.0) * exp(ans * ans),
    "The inverse of ``erf`` on (-1, 1) (as ``scipy.special.erfinv``).",
)
erfcinv = _unary(
    "erfcinv",
    sc.erfcinv,
    lambda ans, x: (-_SQRT_PI / 2.0) * exp(ans * ans),
    "The inverse of ``erfc`` on (0, 2) (as ``scipy.special.erfcinv``).",
)
ndtr = _unary(
    "ndtr",
    sc.ndtr,
    lambda ans, x: exp(-0.5 * (x * x)) / _SQRT_2PI,
    "The standard normal CDF (as ``scipy.special.ndtr``).",
)
log_ndtr = _unary(
    "log_ndtr",
    sc.log_ndtr,
    # pdf / cdf computed in log space: accurate far into the lower tail
    lambda ans, x: exp(-0.5 * (x * x) - _HALF_LOG_2PI - ans),
    "The log of the standard normal CDF (as ``scipy.special.log_ndtr``), with a derivative "
    "accurate far into the lower tail.",
)
ndtri = _unary(
    "ndtri",
    sc.ndtri,
    lambda ans, x: _SQRT_2PI * exp(0.5 * (ans * ans)),
    "The inverse of ``ndtr`` on (0, 1) (as ``scipy.special.ndtri``).",
)

# -- logistic ---------------------------------------------------------------------------------
expit = _unary(
    "expit",
    sc.expit,
    lambda ans, x: ans * (1.0 - ans),
    "The logistic sigmoid ``1 / (1 + exp(-x))`` (as ``scipy.special.expit``).",
)
logit = _unary(
    "logit",
    sc.logit,
    lambda ans, x: 1.0 / (x * (1.0 - x)),
    "``log(p / (1 - p))``, the inverse of ``expit`` (as ``scipy.special.logit``).",
)
log_expit = _unary(
    "log_expit",
    sc.log_expit,
    lambda ans, x: expit(-x),
    "``log(expit(x))`` computed stably (as ``scipy.special.log_expit``).",
)

# -- information theory ------------------------------------------------------------------------
xlogy = _binary(
    "xlogy",
    sc.xlogy,
    lambda ans, x, y: log(y),
    lambda ans, x, y: _ratio_zero_where_x_zero(x, y),
    "``x * log(y)``, 0 where ``x == 0`` (as ``scipy.special.xlogy``); the derivative in "
    "``y`` is 0 where ``x == 0``.",
)
xlog1py = _binary(
    "xlog1py",
    sc.xlog1py,
    lambda ans, x, y: log1p(y),
    lambda ans, x, y: _ratio_zero_where_x_zero(x, 1.0 + y),
    "``x * log1p(y)``, 0 where ``x == 0`` (as ``scipy.special.xlog1py``).",
)
entr = _unary(
    "entr",
    sc.entr,
    lambda ans, x: -(log(x) + 1.0),
    "``-x log(x)`` for ``x > 0``, 0 at 0, ``-inf`` below (as ``scipy.special.entr``); "
    "the derivative ``-(log(x) + 1)`` is infinite at 0.",
)

# -- modified Bessel functions ------------------------------------------------------------------
i0 = _unary(
    "i0", sc.i0, lambda ans, x: i1(x), "Modified Bessel function I0 (``scipy.special.i0``)."
)
i0e = _unary(
    "i0e",
    sc.i0e,
    lambda ans, x: i1e(x) - sign(x) * ans,
    "Exponentially scaled I0: ``exp(-|x|) i0(x)`` (as ``scipy.special.i0e``).",
)
i1 = _unary(
    "i1",
    sc.i1,
    lambda ans, x: i0(x) - _where_zero(x, 0.5, lambda x: i1(x) / x),
    "Modified Bessel function I1 (as ``scipy.special.i1``).",
)
i1e = _unary(
    "i1e",
    sc.i1e,
    lambda ans, x: i0e(x) - sign(x) * ans - _where_zero(x, 0.5, lambda x: i1e(x) / x),
    "Exponentially scaled I1: ``exp(-|x|) i1(x)`` (as ``scipy.special.i1e``).",
)


# -- logsumexp, softmax, log_softmax ------------------------------------------------------------
def _max_shift(a: np.ndarray, axis: Any) -> np.ndarray:
    """The maximum over ``axis`` (kept), 0 where it is not finite."""
    m = np.maximum.reduce(a, axis=axis, keepdims=True)
    if not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0.0)
    return m


def _lse_impl(a: Any, *, axis: Any, keepdims: bool) -> np.ndarray:
    a = np.asarray(a, dtype=_float(np.asarray(a).dtype))
    m = _max_shift(a, axis)
    s = np.add.reduce(np.exp(a - m), axis=axis, keepdims=keepdims)
    with np.errstate(divide="ignore"):
        return np.log(s) + (m if keepdims else m.reshape(np.shape(s)))


def _lse_weights(ans: Any, a: Any, axis: Any, keepdims: bool) -> Any:
    """``exp(a - logsumexp(a))``, broadcast against ``a`` (the softmax of ``a``)."""
    full = expand_reduced(ans, shape_of(a), axis, keepdims)
    finite = isfinite(full)
    if _may_hold(logical_not(finite)):  # all-(-inf) slices: weights 0, not NaN
        full = where(finite, full, 0.0)
    return exp(a - full)


def _reduced_aval(x: ShapeDtype, axis: Any, keepdims: bool) -> ShapeDtype:
    axes = range(len(x.shape)) if axis is None else axis
    if keepdims:
        shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    else:
        shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    return ShapeDtype(shape, _float(x.dtype))


logsumexp_p = Primitive(
    "logsumexp",
    _lse_impl,
    shape=lambda a, *, axis, keepdims: _reduced_aval(a, axis, keepdims),
)
logsumexp_p.defjvp(
    lambda t, ans, a, *, axis, keepdims: sum_(
        t * _lse_weights(ans, a, axis, keepdims), axis=axis, keepdims=keepdims
    )
)
logsumexp_p.defvjp(
    lambda g, ans, a, *, axis, keepdims: (
        expand_reduced(g, shape_of(a), axis, keepdims) * _lse_weights(ans, a, axis, keepdims)
    )
)
logsumexp_p.defbatch(axes_batch_rule(logsumexp_p, "axis"))


def _lse_b_impl(a: Any, b: Any, *, axis: Any, keepdims: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    dt = _float(np.result_type(a.dtype, b.dtype))
    a, b = np.broadcast_arrays(a.astype(dt, copy=False), b.astype(dt, copy=False))
    m = _max_shift(a, axis)
    s = np.add.reduce(b * np.exp(a - m), axis=axis, keepdims=keepdims)
    with np.errstate(divide="ignore"):
        out = np.log(np.abs(s)) + (m if keepdims else m.reshape(np.shape(s)))
    return out, np.sign(s)


def _lse_b_weights(ans: tuple, a: Any, b: Any, axis: Any, keepdims: bool) -> Any:
    """``sign * exp(a - ans)``: the derivative of ``log|sum(b exp(a))|`` in ``b``."""
    lse, sgn = ans
    shape = np.broadcast_shapes(shape_of(a), shape_of(b))
    full = expand_reduced(lse, shape, axis, keepdims)
    sgn = expand_reduced(stop_gradient(sgn), shape, axis, keepdims)
    finite = isfinite(full)
    if _may_hold(logical_not(finite)):
        full = where(finite, full, 0.0)
    return exp(a - full) * sgn


def _lse_b_jvp(tangents, ans, a, b, *, axis, keepdims) -> tuple:
    ta, tb = tangents
    w = _lse_b_weights(ans, a, b, axis, keepdims)
    if ta is not None:
        tb = ta * b if tb is None else ta * b + tb
    return sum_(broadcast_like(tb * w, shape_of(w)), axis=axis, keepdims=keepdims), None


def _lse_b_vjp(g, ans, needs, a, b, *, axis, keepdims) -> list:
    w = _lse_b_weights(ans, a, b, axis, keepdims)
    gw = expand_reduced(g[0], shape_of(w), axis, keepdims) * w
    return [
        unbroadcast(gw * b, shape_of(a)) if needs[0] else None,
        unbroadcast(gw, shape_of(b)) if needs[1] else None,
    ]


def _lse_b_shape(a, b, *, axis, keepdims) -> tuple:
    out = _reduced_aval(_float_shape(a, b), axis, keepdims)
    return out, out


# log|sum(b * exp(a))| and its sign (the sign has no derivative).
logsumexp_b_p = Primitive("logsumexp_b", _lse_b_impl, shape=_lse_b_shape, multiple_results=True)
logsumexp_b_p.defjvp_joint(_lse_b_jvp)
logsumexp_b_p.defvjp_joint(_lse_b_vjp)


def _lse_b_batch(vals: list, dims: list, *, axis: Any, keepdims: bool) -> tuple:
    a, b = align_batched(vals, dims)  # batch axis first in the broadcast shape
    nd = max(len(shape_of(a)), len(shape_of(b)))
    axis = tuple(range(1, nd)) if axis is None else tuple(i + 1 for i in axis)
    return logsumexp_b_p.bind(a, b, axis=axis, keepdims=keepdims), (0, 0)


logsumexp_b_p.defbatch(_lse_b_batch)


def _may_hold(mask: Any) -> bool:
    """Whether some entry of ``mask`` is true: its value when known, and True while a graph
    is captured (``sg.jit``), so that the guarded general path is recorded."""
    try:
        return bool(np.any(mask.concrete() if isinstance(mask, Tracer) else mask))
    except TracedControlFlowError:
        return True


def _arr(x: Any) -> Any:
    return x if isinstance(x, Tracer | np.ndarray) else np.asarray(x)


def logsumexp(
    a: Any, axis: Any = None, b: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    """``log(sum(b * exp(a)))`` over ``axis``, computed stably (as
    ``scipy.special.logsumexp``).

    The gradient in ``a`` is the softmax ``b * exp(a - logsumexp(a))``. With weights ``b``
    the sum may be negative: ``return_sign=True`` returns ``(log|sum|, sign)`` (the sign
    has no derivative); without it a negative sum gives NaN, as in SciPy.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> from scigrad.scipy.special import logsumexp
    >>> sg.grad(logsumexp)(np.log(np.array([1.0, 3.0])))
    array([0.25, 0.75])
    """
    a = _arr(a)
    if b is None:
        out = logsumexp_p.bind(
            a, axis=normalize_axis(axis, len(shape_of(a))), keepdims=bool(keepdims)
        )
        if not return_sign:
            return out
        return out, astype(greater(out, -np.inf), dtype_of(out))
    b = _arr(b)
    shape = np.broadcast_shapes(shape_of(a), shape_of(b))
    out, sgn = logsumexp_b_p.bind(
        a, b, axis=normalize_axis(axis, len(shape)), keepdims=bool(keepdims)
    )
    if return_sign:
        return out, sgn
    return where(less(sgn, 0.0), np.nan, out)


def _softmax_impl(x: Any, *, axis: Any) -> np.ndarray:
    x = np.asarray(x, dtype=_float(np.asarray(x).dtype))
    e = np.exp(x - np.maximum.reduce(x, axis=axis, keepdims=True))
    return e / np.add.reduce(e, axis=axis, keepdims=True)


softmax_p = Primitive(
    "softmax", _softmax_impl, shape=lambda x, *, axis: ShapeDtype(x.shape, _float(x.dtype))
)
softmax_p.defjvp(lambda t, ans, x, *, axis: ans * (t - sum_(ans * t, axis=axis, keepdims=True)))
softmax_p.defvjp(lambda g, ans, x, *, axis: ans * (g - sum_(ans * g, axis=axis, keepdims=True)))
softmax_p.defbatch(axes_batch_rule(softmax_p, "axis"))


def softmax(x: Any, axis: Any = None) -> Any:
    """``exp(x) / sum(exp(x))`` over ``axis`` (all axes by default), as
    ``scipy.special.softmax``."""
    x = _arr(x)
    return softmax_p.bind(x, axis=normalize_axis(axis, len(shape_of(x))))


def _log_softmax_impl(x: Any, *, axis: Any) -> np.ndarray:
    x = np.asarray(x, dtype=_float(np.asarray(x).dtype))
    shifted = x - _max_shift(x, axis)
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))


log_softmax_p = Primitive(
    "log_softmax",
    _log_softmax_impl,
    shape=lambda x, *, axis: ShapeDtype(x.shape, _float(x.dtype)),
)
log_softmax_p.defjvp(lambda t, ans, x, *, axis: t - sum_(exp(ans) * t, axis=axis, keepdims=True))
log_softmax_p.defvjp(lambda g, ans, x, *, axis: g - exp(ans) * sum_(g, axis=axis, keepdims=True))
log_softmax_p.defbatch(axes_batch_rule(log_softmax_p, "axis"))


def log_softmax(x: Any, axis: Any = None) -> Any:
    """``x - logsumexp(x)`` over ``axis`` (all axes by default), computed stably, as
    ``scipy.special.log_softmax``."""
    x = _arr(x)
    return log_softmax_p.bind(x, axis=normalize_axis(axis, len(shape_of(x))))
