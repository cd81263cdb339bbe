"""Hand-written numba derivatives: the reference of the ``sg.jit`` benchmarks (benchmarks/jit.py).

Each derivative is derived by hand and written as the loops a user would write, compiled
with ``@numba.njit(cache=True)``. Single-point kernels allocate their result, as a user's
function would; batched kernels loop over the points of a 2-D array of inputs, one point
per row, and come in two forms: allocating the result (``*_batch``) and writing into a
preallocated one (``*_batch_out``), the counterparts of ``sg.jit(...)(X)`` and of the
compiled kernel's ``kernel_out``.

Functions (the same as in benchmarks/jit.py):

* Rosenbrock ``f(x) = sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2``, with
  ``d_i = x[i+1] - x[i]^2``:
  ``df/dx[i] += -400 x[i] d_i - 2 (1 - x[i])``, ``df/dx[i+1] += 200 d_i``; the Hessian is
  tridiagonal: ``H[i,i] += 1200 x[i]^2 - 400 x[i+1] + 2``, ``H[i+1,i+1] += 200``,
  ``H[i,i+1] = H[i+1,i] = -400 x[i]``.
* The seed's ``foo(dX, A) = (dX[[0, 1]] @ b) * (a + A[0]) + dX[2] * -(c + A[1])`` with
  ``a = 3e3``, ``b = (10, 0)``, ``c = -1e4``: gradient with respect to ``dX`` and ``A``.
* The seed's ``bar(A, B) = dot(A[[0, 1]], A[[1, 2]]) = A[0] A[1] + A[1] A[2]``: gradient with
  respect to ``A``.
"""

from __future__ import annotations

import numba
import numpy as np

#: The seed's constants: ``MyType(3e3, SVector(10., 0), -1e4, SVector(1, 2))`` (1-based d).
FOO_A = 3e3
FOO_B = (10.0, 0.0)
FOO_C = -1e4
FOO_D = (0, 1)

_B0, _B1 = FOO_B


# -- Rosenbrock -----------------------------------------------------------------------------
@numba.njit(cache=True)
def rosenbrock(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        d = x[i + 1] - x[i] * x[i]
        s += 100.0 * d * d + (1.0 - x[i]) * (1.0 - x[i])
    return s


@numba.njit(cache=True)
def rosenbrock_grad(x):
    n = x.shape[0]
    g = np.empty(n)
    prev = 0.0  # 200 d_{i-1}: the term of the previous pair
    for i in range(n - 1):
        xi = x[i]
        d = x[i + 1] - xi * xi
        g[i] = prev - 400.0 * xi * d - 2.0 * (1.0 - xi)
        prev = 200.0 * d
    g[n - 1] = prev
    return g


@numba.njit(cache=True)
def rosenbrock_hessian(x):
    n = x.shape[0]
    h = np.zeros((n, n))
    for i in range(n - 1):
        xi = x[i]
        h[i, i] += 1200.0 * xi * xi - 400.0 * x[i + 1] + 2.0
        h[i + 1, i + 1] = 200.0
        h[i, i + 1] = h[i + 1, i] = -400.0 * xi
    return h


# The batched kernels write every output element once and never read the output: reading
# freshly allocated memory before writing it would cost a second page fault per page.
@numba.njit(cache=True)
def rosenbrock_grad_batch_out(xs, gs):
    npts, n = xs.shape
    for p in range(npts):
        prev = 0.0
        for i in range(n - 1):
            xi = xs[p, i]
            d = xs[p, i + 1] - xi * xi
            gs[p, i] = prev - 400.0 * xi * d - 2.0 * (1.0 - xi)
            prev = 200.0 * d
        gs[p, n - 1] = prev


@numba.njit(cache=True)
def rosenbrock_grad_batch(xs):
    gs = np.empty(xs.shape)
    rosenbrock_grad_batch_out(xs, gs)
    return gs


@numba.njit(cache=True)
def rosenbrock_hessian_batch_out(xs, hs):
    npts, n = xs.shape
    for p in range(npts):
        for i in range(n):
            xi = xs[p, i]
            diag = 200.0 if i > 0 else 0.0
            if i < n - 1:
                diag += 1200.0 * xi * xi - 400.0 * xs[p, i + 1] + 2.0
            for j in range(n):
                hs[p, i, j] = 0.0
            hs[p, i, i] = diag
            if i > 0:
                hs[p, i, i - 1] = -400.0 * xs[p, i - 1]
            if i < n - 1:
                hs[p, i, i + 1] = -400.0 * xi


@numba.njit(cache=True)
def rosenbrock_hessian_batch(xs):
    npts, n = xs.shape
    hs = np.empty((npts, n, n))
    rosenbrock_hessian_batch_out(xs, hs)
    return hs


# -- the seed's foo and bar -----------------------------------------------------------------
@numba.njit(cache=True)
def foo_grad(dx, a):
    """(d foo / d dX, d foo / d A)."""
    gdx = np.empty(3)
    ga = np.empty(2)
    s = FOO_A + a[0]
    gdx[0] = _B0 * s
    gdx[1] = _B1 * s
    gdx[2] = -(FOO_C + a[1])
    ga[0] = dx[0] * _B0 + dx[1] * _B1
    ga[1] = -dx[2]
    return gdx, ga


@numba.njit(cache=True)
def foo_grad_batch_out(dxs, as_, gdxs, gas):
    for p in range(dxs.shape[0]):
        s = FOO_A + as_[p, 0]
        gdxs[p, 0] = _B0 * s
        gdxs[p, 1] = _B1 * s
        gdxs[p, 2] = -(FOO_C + as_[p, 1])
        gas[p, 0] = dxs[p, 0] * _B0 + dxs[p, 1] * _B1
        gas[p, 1] = -dxs[p, 2]


@numba.njit(cache=True)
def foo_grad_batch(dxs, as_):
    npts = dxs.shape[0]
    gdxs = np.empty((npts, 3))
    gas = np.empty((npts, 2))
    foo_grad_batch_out(dxs, as_, gdxs, gas)
    return gdxs, gas


@numba.njit(cache=True)
def bar_grad(a, b):
    """d bar / d A (B does not enter bar)."""
    g = np.empty(3)
    g[0] = a[1]
    g[1] = a[0] + a[2]
    g[2] = a[1]
    return g


@numba.njit(cache=True)
def bar_grad_batch_out(as_, b, gs):
    for p in range(as_.shape[0]):
        gs[p, 0] = as_[p, 1]
        gs[p, 1] = as_[p, 0] + as_[p, 2]
        gs[p, 2] = as_[p, 1]


@numba.njit(cache=True)
def bar_grad_batch(as_, b):
    gs = np.empty((as_.shape[0], 3))
    bar_grad_batch_out(as_, b, gs)
    return gs
