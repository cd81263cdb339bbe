"""Scalar helpers called by generated kernels (numba inlines them).

They reproduce NumPy's semantics where Python's differ: NaN propagation in ``maximum`` and
``minimum``, the sign of ``sign(nan)``, and SciPy's special functions at their edges.
"""

from __future__ import annotations

import math

import numba

__all__ = [
    "fmax",
    "fmin",
    "heaviside",
    "log_expit",
    "logaddexp",
    "logaddexp2",
    "maximum",
    "minimum",
    "ndtr",
    "sign",
    "xlog1py",
    "xlogy",
    "expit",
    "logit",
    "entr",
]

_jit = numba.njit(inline="always", cache=True, error_model="numpy")


@_jit
def maximum(a, b):
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@_jit
def minimum(a, b):
    if a != a:
        return a
    if b != b:
        return b
    return a if a <= b else b


@_jit
def fmax(a, b):
    if b != b or a >= b:
        return a
    return b


@_jit
def fmin(a, b):
    if b != b or a <= b:
        return a
    return b


@_jit
def sign(a):
    if a > 0:
        return 1.0
    if a < 0:
        return -1.0
    return a * 0.0 if a == a else a


@_jit
def heaviside(a, h0):
    if a != a:
        return a
    if a == 0:
        return h0
    return 1.0 if a > 0 else 0.0


@_jit
def logaddexp(a, b):
    m = max(a, b)
    if m == -math.inf:
        return m
    return m + math.log1p(math.exp(-abs(a - b)))


@_jit
def logaddexp2(a, b):
    m = max(a, b)
    if m == -math.inf:
        return m
    return m + math.log2(1.0 + 2.0 ** (-abs(a - b)))


@_jit
def expit(a):
    if a >= 0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


@_jit
def log_expit(a):
    if a >= 0:
        return -math.log1p(math.exp(-a))
    return a - math.log1p(math.exp(a))


@_jit
def logit(a):
    return math.log(a / (1.0 - a))


@_jit
def xlogy(x, y):
    if x == 0 and y == y:
        return 0.0
    return x * math.log(y)


@_jit
def xlog1py(x, y):
    if x == 0 and y == y:
        return 0.0
    return x * math.log1p(y)


@_jit
def entr(x):
    if x > 0:
        return -x * math.log(x)
    if x == 0:
        return 0.0
    return -math.inf if x == x else x


@_jit
def ndtr(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))
