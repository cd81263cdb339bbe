"""sg.jit: compiled results equal eager ones, transforms compose, errors are clear, kernels
allocate nothing and are cached on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as onp
import pytest

import scigrad as sg
import scigrad.numpy as np
from scigrad.core.graph import TracedControlFlowError
from scigrad.jit import NotCompilableError
from scigrad.scipy import special
from tests._modules import load_script


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mlp(params, x):
    w1, b1, w2 = params["w1"], params["b1"], params["w2"]
    h = np.tanh(x @ w1 + b1)
    return np.mean((h @ w2) ** 2)


def mixed(x):
    """Indexing, reductions over axes, where/maximum, special functions."""
    m = x.reshape(2, 3)
    s = np.sum(m, axis=0) * np.max(m, axis=1)[[0, 1, 0]]
    y = np.where(x > 0.5, np.exp(x), np.log1p(x**2)) + np.maximum(x, 0.3) * special.erf(x)
    return np.sum(y[::-1] * np.concatenate([s, s])) + special.logsumexp(x) + np.prod(x[:3])


FUNCTIONS = [rosenbrock, mixed, lambda x: np.sum(np.sin(x) ** 2 / (1.0 + np.abs(x)))]


@pytest.mark.parametrize("f", FUNCTIONS)
@pytest.mark.parametrize("transform", [lambda f: f, sg.grad, sg.hessian, sg.value_and_grad])
def test_jit_matches_eager(f, transform, rng):
    x = rng.uniform(0.1, 1.0, 6)
    want = transform(f)(x)
    got = sg.jit(transform(f))(x)
    for g, w in zip(sg.tree_flatten(got)[0], sg.tree_flatten(want)[0], strict=True):
        onp.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
        assert onp.shape(g) == onp.shape(w)


def test_pytrees_static_arguments_and_retracing(rng):
    params = {"w1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4)}
    params["w2"] = rng.standard_normal(4)
    x = rng.standard_normal((5, 3))
    g = sg.jit(sg.value_and_grad(mlp))
    (value, grads), (value0, grads0) = g(params, x), sg.value_and_grad(mlp)(params, x)
    onp.testing.assert_allclose(value, value0, rtol=1e-12)
    assert set(grads) == {"w1", "b1", "w2"}
    for k in grads:
        onp.testing.assert_allclose(grads[k], grads0[k], rtol=1e-12, atol=1e-14)

    power = sg.jit(lambda x, n: np.sum(x**n), static_argnums=1)
    assert power(onp.arange(3.0), 2) == 5.0 and power(onp.arange(3.0), 3) == 9.0
    f = sg.jit(sg.grad(rosenbrock))
    for n in (3, 4, 3):
        onp.testing.assert_allclose(f(onp.ones(n) * 0.5), sg.grad(rosenbrock)(onp.ones(n) * 0.5))
    assert len(f._state._cache) == 2  # one kernel per signature, reused


def test_scalar_and_integer_arguments():
    f = sg.jit(lambda x, k: x * k + np.sum(np.arange(3) * k))
    assert f(2.0, 3) == 15.0
    out = sg.jit(sg.grad(lambda x: x**3))(2.0)
    assert out == 12.0 and isinstance(out, onp.float64)


def test_grad_of_jit_runs_compiled_kernels(rng):
    traced = [0]

    def f(x, y, power):
        traced[0] += 1
        return np.sum(np.sin(x) ** power * y) + np.prod(x[:2])

    x, y = rng.uniform(size=5), rng.uniform(size=5)
    jf = sg.jit(f, static_argnums=2)
    grad = sg.grad(jf, argnums=(0, 1))
    for got, want in zip(grad(x, y, 3), sg.grad(f, argnums=(0, 1))(x, y, 3), strict=True):
        onp.testing.assert_allclose(got, want, rtol=1e-13)
    traced[0] = 0
    grad(x, y, 3)
    assert traced[0] == 0  # forward and VJP kernels, nothing run as Python
    onp.testing.assert_allclose(sg.hessian(jf)(x, y, 3), sg.hessian(f)(x, y, 3), rtol=1e-12)
    sg.check_grads(sg.jit(rosenbrock), (x,), order=2)  # reverse compiled, forward eager


def test_structured_control_flow(rng):
    def f(x):
        y = sg.cond(x[0] > 0, lambda v: np.sin(v), lambda v: v**2, x)
        y = sg.fori_loop(0, 3, lambda i, v: v * 0.5 + x[i], y)
        carry, ys = sg.scan(lambda c, xi: (c * xi, c + xi), 1.0, x)
        return np.sum(y) + carry + np.sum(ys)

    for x in (rng.uniform(0.2, 1.0, 3), -rng.uniform(0.2, 1.0, 3)):
        onp.testing.assert_allclose(sg.jit(f)(x), f(x), rtol=1e-13)
        onp.testing.assert_allclose(sg.jit(sg.grad(f))(x), sg.grad(f)(x), rtol=1e-13)


def test_control_flow_on_traced_values_is_a_clear_error():
    with pytest.raises(TracedControlFlowError, match="sg.cond"):
        sg.jit(lambda x: x if x[0] > 0 else -x)(onp.ones(2))
    with pytest.raises(TracedControlFlowError, match="static integer"):
        sg.jit(lambda x, n: sg.fori_loop(0, n, lambda i, v: v + 1.0, x))(1.0, 3)
    with pytest.raises(TracedControlFlowError, match="encloses|closes over"):
        sg.grad(lambda y: sg.jit(lambda x: x * y)(2.0))(1.0)


def test_primitives_without_scalar_form_compile_to_loops(rng):
    """Sorts, factorizations and special functions numba lacks run their own
    implementation inside a loop kernel; unroll=True names them."""
    x, a = rng.uniform(size=3), rng.uniform(size=(2, 2)) + 2.0 * onp.eye(2)
    cases = [
        (lambda x: np.sum(np.sort(x) * x), x),
        (lambda a: np.linalg.inv(a), a),
        (special.i0, x),
    ]
    for f, arg in cases:
        onp.testing.assert_allclose(sg.jit(f)(arg), f(arg), rtol=1e-14)
    for (f, arg), name in zip(cases, ["sort", "inv", "i0"], strict=True):
        with pytest.raises(NotCompilableError, match=f"'{name}'"):
            sg.jit(f, unroll=True)(arg)
    with pytest.raises(TracedControlFlowError, match="rule of primitive 'sort' needs concrete"):
        sg.jit(sg.grad(lambda x: np.sum(np.sort(x) * x)))(x)
    with pytest.raises(TypeError, match="static_argnums"):
        sg.jit(lambda x: x)("text")


def test_kernel_out_allocates_nothing():
    """numba counts its runtime's allocations when NUMBA_NRT_STATS=1 is set at start-up."""
    script = textwrap.dedent(
        """
        import numba, numpy, scigrad as sg, scigrad.numpy as np
        from numba.core.runtime import rtsys

        def rosenbrock(x):
            return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

        x = numpy.random.default_rng(0).uniform(size=10)
        compiled = sg.jit(sg.hessian(rosenbrock)).lower(x)
        (out,) = compiled.empty_outputs()
        kernel_out = compiled.kernel_out

        @numba.njit
        def repeat(x, out, n):
            for _ in range(n):
                kernel_out(x, out)

        def allocations(n):
            before = rtsys.get_allocation_stats().alloc
            repeat(x, out, n)
            return rtsys.get_allocation_stats().alloc - before

        allocations(1)
        # Passing arrays in from Python costs the same whatever n: the kernel adds nothing.
        print(allocations(1000) - allocations(1))
        numpy.testing.assert_allclose(out, sg.hessian(rosenbrock)(x), rtol=1e-13)
        """
    )
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0"]


def test_simplified_derivatives_do_no_extra_work(rng):
    """The Rosenbrock Hessian is tridiagonal: its kernel's work grows linearly with n (the
    reverse-over-reverse graph is quadratic), and no zero or unit factor survives."""

    def operations(n):
        source = sg.jit(sg.hessian(rosenbrock)).lower(rng.uniform(size=n)).source
        body = source.split("def kernel(")[0]
        assert "* 1.0)" not in body and "* 0.0)" not in body and "+ 0.0)" not in body
        return sum(1 for ln in body.splitlines() if ln.lstrip().startswith("t") and "a0[" not in ln)

    small, large = operations(10), operations(40)
    assert large < 4.5 * small
    assert large < 12 * 40


def test_every_scalar_operation_compiles_to_numpy_semantics(rng):
    unary = [
        np.sqrt,
        np.exp,
        np.expm1,
        np.log,
        np.log2,
        np.log10,
        np.log1p,
        np.sin,
        np.cos,
        np.tan,
        np.arcsin,
        np.arccos,
        np.arctan,
        np.sinh,
        np.cosh,
        np.tanh,
        np.arcsinh,
        np.arctanh,
        np.abs,
        np.sign,
        np.square,
        np.reciprocal,
        np.cbrt,
        np.exp2,
        np.floor,
        np.ceil,
        np.trunc,
        np.rint,
        np.deg2rad,
        np.rad2deg,
        special.erf,
        special.erfc,
        special.gammaln,
        special.expit,
        special.logit,
        special.log_expit,
        special.entr,
        special.ndtr,
        np.negative,
    ]
    binary = [
        np.add,
        np.subtract,
        np.multiply,
        np.divide,
        np.power,
        np.maximum,
        np.minimum,
        np.fmax,
        np.fmin,
        np.arctan2,
        np.hypot,
        np.logaddexp,
        np.logaddexp2,
        special.xlogy,
        special.xlog1py,
        np.fmod,
        np.heaviside,
    ]
    predicates = [np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal]

    def f(x, y):
        outs = [u(x) for u in unary] + [b(x, y) for b in binary]
        outs += [np.where(p(x, y), x, y) for p in predicates]
        outs += [np.where(np.isnan(x) | np.isinf(y) | ~np.isfinite(x), 1.0, 0.0)]
        outs += [np.where(np.logical_xor(x > 0.5, y > 0.5) & np.signbit(x - y), 1.0, 0.0)]
        outs += [np.where(np.logical_not(x > 0.5), x, y), np.round(x, 2), x // y, x % y]
        return np.stack(outs)

    x, y = rng.uniform(0.05, 0.95, 7), rng.uniform(0.05, 0.95, 7)
    x[0], y[1] = onp.nan, onp.inf
    y[2] = x[2]
    with onp.errstate(all="ignore"):
        onp.testing.assert_allclose(sg.jit(f)(x, y), f(x, y), rtol=1e-14, atol=1e-15)


def test_compiled_kernels_are_cached_on_disk(tmp_path):
    script = textwrap.dedent(
        """
        import numpy, scigrad as sg, scigrad.numpy as np
        f = sg.jit(sg.grad(lambda x: np.sum(np.cos(x) * x ** 3)))
        compiled = f.lower(numpy.ones(4))
        print(sum(compiled.kernel_out.stats.cache_hits.values()))
        """
    )
    env = dict(os.environ, SCIGRAD_CACHE_DIR=str(tmp_path))
    runs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.strip() == "0" and int(runs[1].stdout) >= 1
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*"))


def test_material_tangent_example_runs(capsys):
    example = load_script("examples/material_tangents.py", "_scigrad_example_material")
    result = example.main(["--points", "3000"])
    assert result["error"] < 1e-12 and result["asymmetry"] < 1e-10
    assert "ns per point" in capsys.readouterr().out


def test_parallel_batched_kernels_match_serial(rng):
    xs = rng.uniform(size=(1001, 6))
    serial = sg.jit(sg.vmap(sg.hessian(rosenbrock)))
    parallel = sg.jit(sg.vmap(sg.hessian(rosenbrock)), parallel=True)
    onp.testing.assert_array_equal(parallel(xs), serial(xs))
    compiled = parallel.lower(xs)
    (out,) = compiled.empty_outputs(len(xs))
    compiled.kernel_out(xs, out)
    onp.testing.assert_array_equal(out, serial(xs))
    onp.testing.assert_array_equal(parallel(xs[:3]), serial(xs[:3]))  # too few to split
