"""sg.jit's loop path (scigrad/jit/_loops.py): graphs too large to unroll compile to loops
with the same results as eager mode, for values, VJPs, JVPs and second derivatives."""

from __future__ import annotations

import time

import numpy as onp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scigrad as sg
import scigrad.numpy as np
from scigrad.core.graph import make_graph
from scigrad.jit import NotCompilableError
from scigrad.jit._expand import EXPANSIONS
from scigrad.jit._loops import _RULES, _expand
from scigrad.scipy import special


def with_derivatives(f, args, rng):
    """``f``'s value, VJP and JVP at ``args`` as one function of ``args``."""
    out = f(*args)
    ct = sg.tree_map(lambda o: rng.standard_normal(onp.shape(o)), out)
    tangents = tuple(rng.standard_normal(onp.shape(a)) for a in args)

    def all_three(*a):
        value, pullback = sg.vjp(f, *a)
        return value, pullback(ct), sg.jvp(f, a, tangents)[1]

    return all_three


def assert_loops_match_eager(f, *args, rng):
    g = with_derivatives(f, args, rng)
    jitted = sg.jit(g, unroll=False)
    got, want = jitted(*args), g(*args)
    # float32 arithmetic done in another order (fused loops, NumPy's pairwise sums)
    # differs by float32 rounding, not float64's.
    single = any(onp.asarray(a).dtype == onp.float32 for a in sg.tree_flatten(args)[0])
    tol = 1e-5 if single else 1e-11
    for x, y in zip(sg.tree_flatten(got)[0], sg.tree_flatten(want)[0], strict=True):
        assert onp.shape(x) == onp.shape(y)
        onp.testing.assert_allclose(x, y, rtol=tol, atol=tol)
    return jitted


def structural(x, y):
    """Reductions, indexing, scatters, shapes and contractions."""
    a = np.sum(x, axis=0) * np.max(x, axis=(0, 1), keepdims=True)[0] + np.min(x, axis=2).T[:, :1]
    b = np.prod(y[:4]) + np.trace(x[:, :, 0]) + np.sum(np.cumsum(x, axis=1)[:, ::-1] ** 2)
    c = np.einsum("ijk,k->ij", x, y) @ x[0] + np.concatenate([x[0], x[1, ::2]], axis=0)[:3]
    d = np.reshape(x, (-1,))[[0, 5, 5, 7]] * np.broadcast_to(y[:4], (3, 4))
    e = np.at(np.at(np.at(x)[1, [0, 2]].add(y))[0, 1].multiply(y[1]))[2, 0].set(y[0])
    m = (x > 0.2).astype(np.float64) * np.where(np.any(x > 1.0, axis=0), x[0], -x[1])
    n = np.sum(np.cumsum(y[::-1], axis=0) * np.count_nonzero(x > 0, axis=0)[0, :5])
    return np.sum(a) * b + np.sum(c * d[0, 0]) + np.sum(np.sin(e) * m) + n + np.all(x < 9.0)


def composite(x, w):
    """Matrix products (BLAS and loops), softmax family, elementwise chains."""
    h = np.tanh(x @ w + 0.5) * special.expit(x[:, :1])
    p = special.softmax(h, axis=1) + special.log_softmax(h.T, axis=0).T
    lse = special.logsumexp(h, axis=0) + special.logsumexp(h, b=w[0], axis=1)[:2].sum()
    batched = np.matmul(np.stack([w, w.T]), x.T[None])  # batched matmul: loops
    return np.sum(p**2) + np.sum(lse) + np.sum(np.log1p(batched**2)) + np.dot(x[0], x[1])


@pytest.mark.parametrize("case", ["structural", "composite"])
def test_loop_kernels_match_eager_first_order(case, rng):
    if case == "structural":
        assert_loops_match_eager(
            structural, rng.uniform(0.1, 1.5, (3, 4, 5)), rng.uniform(0.5, 1.5, 5), rng=rng
        )
    else:
        w = rng.standard_normal((4, 4))
        assert_loops_match_eager(composite, rng.standard_normal((3, 4)), w, rng=rng)


def test_every_loop_rule_is_exercised(rng):
    seen = set()
    for f, args in [
        (structural, (onp.ones((3, 4, 5)), onp.ones(5))),
        (composite, (onp.ones((3, 4)), onp.ones((4, 4)))),
    ]:
        g = with_derivatives(f, args, rng)
        seen |= {e.prim.name for e in make_graph(g, *args).eqns}
        seen |= {e.prim.name for e in _expand(make_graph(g, *args))}
    missing = (set(_RULES) | set(EXPANSIONS)) - seen - {"stop_gradient"}
    assert not missing, f"loop rules never tested: {sorted(missing)}"


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_large_hessians_compile_to_loops_in_bounded_time(rng):
    x = rng.uniform(0.5, 1.5, 400)  # 160,000 Hessian entries: far too many to unroll
    hessian = sg.jit(sg.hessian(rosenbrock))
    start = time.perf_counter()
    h = hessian(x)
    assert time.perf_counter() - start < 60.0  # a few seconds: numba compiles ~20 loops
    onp.testing.assert_allclose(h, sg.hessian(rosenbrock)(x), rtol=1e-12, atol=1e-9)
    assert "for " in hessian.lower(x).source  # loops, not unrolled code


def test_second_order_through_dense_products(rng):
    w = rng.standard_normal((30, 30)) / 5.0

    def dense(x):
        return np.sum(np.tanh(x @ w) ** 2) + special.logsumexp(x * x)

    x = rng.standard_normal(30)
    for transform in (sg.hessian, lambda f: sg.jacfwd(sg.grad(f))):
        got = sg.jit(transform(dense), unroll=False)(x)
        onp.testing.assert_allclose(got, transform(dense)(x), rtol=1e-10, atol=1e-12)


def test_batched_functions_compile_to_one_loop_kernel(rng):
    w = rng.standard_normal((40, 40))

    def energy(x):
        return np.sum(np.tanh(x @ w) ** 2)

    xs = rng.standard_normal((5, 40))
    f = sg.jit(sg.vmap(sg.grad(energy)), unroll=False)
    want = onp.stack([sg.grad(energy)(v) for v in xs])
    onp.testing.assert_allclose(f(xs), want, rtol=1e-12)
    compiled = f.lower(xs)
    (out,) = compiled.empty_outputs(len(xs))
    compiled.kernel_out(xs, out)
    onp.testing.assert_allclose(out, want, rtol=1e-12)
    moved = sg.jit(sg.vmap(sg.grad(energy), in_axes=1, out_axes=1), unroll=False)(xs.T)
    onp.testing.assert_allclose(moved, want.T, rtol=1e-12)


def test_outputs_that_are_inputs_constants_or_views(rng):
    c = rng.standard_normal((2, 3))

    def f(x, s):
        return x, c, x.reshape(3, 2), s * 2.0, np.sum(x), x + 1.0, x + 1.0

    x = rng.standard_normal((2, 3))
    got = sg.jit(f, unroll=False)(x, 1.5)
    for g, w in zip(got, f(x, 1.5), strict=True):
        onp.testing.assert_array_equal(g, w)


def test_factorizations_run_their_own_implementation(rng):
    """inv, det, slogdet, cholesky and eigh in loop kernels: eager mode's LAPACK calls,
    results and errors; derivatives of every order that eager mode takes without
    inspecting values."""

    def f(a):
        w, v = np.linalg.eigh(a)
        inv, chol = np.linalg.inv(a), np.linalg.cholesky(a)
        return (
            np.sum(inv * a.T)
            + np.linalg.det(a)
            + np.sum(chol)
            + np.sum(w * v[0] ** 2)
            + (np.linalg.slogdet(a)[1])
        )

    b = rng.standard_normal((4, 4))
    a = b @ b.T + 4.0 * onp.eye(4)
    assert_loops_match_eager(f, a, rng=rng)
    want = sg.hessian(np.linalg.det)(a)  # entries that vanish exactly are ~1e-15 in both
    got = sg.jit(sg.hessian(lambda a: np.linalg.det(a)))(a)
    onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * onp.abs(want).max())
    with pytest.raises(onp.linalg.LinAlgError, match="inv: Singular matrix"):
        sg.jit(lambda a: np.linalg.inv(a), unroll=False)(onp.ones((3, 3)))


def test_operands_without_array_form_are_named(rng):
    import scipy.sparse

    from scigrad.scipy import sparse

    matrix = sparse.csr_array(scipy.sparse.random_array((5, 5), density=0.5, rng=0, format="csr"))

    def f(x):
        return np.sum((matrix @ x) ** 2)

    with pytest.raises(NotCompilableError, match="'sparse_matmul'.*no array form"):
        sg.jit(f)(rng.standard_normal(5))


@settings(max_examples=6)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    data=st.data(),
)
def test_broadcasting_and_axes_on_random_shapes(shape, data):
    """Elementwise broadcasting, reductions over random axes and transposes."""
    shape = tuple(shape)
    ndim = len(shape)
    axis = tuple(sorted(data.draw(st.sets(st.integers(0, ndim - 1), min_size=1))))
    keep = data.draw(st.booleans())
    perm = tuple(data.draw(st.permutations(range(ndim))))
    # A broadcast operand: some axes of size 1, fewer dimensions.
    bshape = tuple(1 if data.draw(st.booleans()) else n for n in shape)[1:]
    rng = onp.random.default_rng(data.draw(st.integers(0, 2**16)))

    def f(x, b):
        y = np.exp(np.sin(x) * b) - x.transpose(perm).transpose(onp.argsort(perm))
        return np.sum(y, axis=axis, keepdims=keep), np.max(y * b, axis=axis)

    assert_loops_match_eager(f, rng.standard_normal(shape), rng.standard_normal(bshape), rng=rng)


def test_simd_functions_on_large_arrays_run_in_numpy(rng):
    def f(x, y):
        return np.sum(np.tanh(x * 2.0 + 1.0) * np.exp(-(x**2)) + np.log1p(y))

    x, y = rng.standard_normal((80, 64)), rng.uniform(size=(80, 64))
    for dtype in (onp.float64, onp.float32):
        args = (x.astype(dtype), y.astype(dtype))
        jitted = assert_loops_match_eager(f, *args, rng=rng)
        assert "numba.objmode" in jitted.lower(*args).source
