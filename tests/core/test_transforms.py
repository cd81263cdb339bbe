"""The transformations: values, structure and nesting behave as in JAX."""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import numpy as onp
import pytest
from hypothesis import given

import scigrad as sg
import scigrad.numpy as np
from tests.strategies import arrays, shapes


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_grad(x):  # hand-derived, the reference
    g = onp.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


@given(arrays(shapes(1, 1, 8)))
def test_grad_matches_hand_derived_rosenbrock(x):
    if x.size < 2:
        x = onp.concatenate([x, [0.5]])
    onp.testing.assert_allclose(sg.grad(rosenbrock)(x), rosenbrock_grad(x), rtol=1e-12, atol=1e-12)


def test_value_and_grad_returns_plain_numpy(rng):
    x = rng.standard_normal(5)
    value, g = sg.value_and_grad(rosenbrock)(x)
    assert type(g) is onp.ndarray and onp.ndim(value) == 0
    assert value == pytest.approx(rosenbrock(x))


def test_argnums_and_has_aux(rng):
    x, y = rng.standard_normal(3), rng.standard_normal(3)

    def f(x, y, scale):
        return np.sum(np.sin(x) * y) * scale, {"y": y}

    (v, aux), (gx, gy) = sg.value_and_grad(f, argnums=(0, 1), has_aux=True)(x, y, 2.0)
    onp.testing.assert_allclose(gx, 2.0 * onp.cos(x) * y)
    onp.testing.assert_allclose(gy, 2.0 * onp.sin(x))
    assert type(aux["y"]) is onp.ndarray  # aux comes back untraced
    g1 = sg.grad(lambda a, b: np.sum(a * b), argnums=1)(x, y)
    onp.testing.assert_allclose(g1, x)
    g_neg = sg.grad(lambda a, b: np.sum(a * b), argnums=-1)(x, y)
    onp.testing.assert_allclose(g_neg, x)


def test_vjp_pullback_is_reusable(rng):
    x = rng.standard_normal(4)
    y, pullback = sg.vjp(lambda x: np.sin(x) * 2.0, x)
    onp.testing.assert_allclose(y, 2 * onp.sin(x))
    for ct in onp.eye(4):
        (g,) = pullback(ct)
        onp.testing.assert_allclose(g, 2 * onp.cos(x) * ct)


def test_jvp(rng):
    x, v = rng.standard_normal(3), rng.standard_normal(3)
    y, t = sg.jvp(lambda x: np.exp(x) * x, (x,), (v,))
    onp.testing.assert_allclose(t, (onp.exp(x) * x + onp.exp(x)) * v)


def test_jacobians_agree_and_have_jax_layout(rng):
    x = rng.standard_normal((2, 3))
    f = lambda x: np.sin(x).reshape(3, 2).T * np.sum(x)  # noqa: E731
    jf, jr = sg.jacfwd(f)(x), sg.jacrev(f)(x)
    assert jf.shape == jr.shape == (2, 3, 2, 3)
    onp.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-12)


def test_hessian_forms_agree(rng):
    x = rng.standard_normal(5)
    h = sg.hessian(rosenbrock)(x)
    onp.testing.assert_allclose(h, h.T, rtol=1e-12)
    for other in (sg.jacrev(sg.jacrev(rosenbrock)), sg.jacfwd(sg.jacfwd(rosenbrock))):
        onp.testing.assert_allclose(other(x), h, rtol=1e-10)
    v = rng.standard_normal(5)
    (hv,) = sg.hvp(rosenbrock, (x,), (v,))
    onp.testing.assert_allclose(hv, h @ v, rtol=1e-10)
    sg.check_grads(sg.grad(rosenbrock), (x,), order=1)


def test_higher_order_scalar_derivatives():
    d = sg.grad
    assert d(d(d(np.sin)))(0.7) == pytest.approx(-onp.cos(0.7))
    assert d(d(lambda x: x**4))(2.0) == pytest.approx(48.0)


def test_no_perturbation_confusion():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1 (Siskind & Pearlmutter's example).
    assert sg.grad(lambda x: x * sg.grad(lambda y: x + y)(1.0))(2.0) == pytest.approx(1.0)
    # Forward nested in reverse and vice versa.
    f = lambda x: x * sg.jvp(lambda y: x * y, (1.0,), (1.0,))[1]  # noqa: E731
    assert sg.grad(f)(3.0) == pytest.approx(6.0)


def test_python_control_flow():
    def f(x):
        total = 0.0
        for i in range(x.shape[0]):
            total = total + (x[i] ** 2 if x[i] > 0 else -x[i])
        while total < 10.0:
            total = total * 2.0
        return total

    x = onp.array([1.5, -0.5, 0.25])
    sg.check_grads(f, (x,), order=2)


Point = namedtuple("Point", ["x", "y"])


@dataclasses.dataclass
class Params:
    w: onp.ndarray
    b: float
    name: str = dataclasses.field(default="layer")


sg.register_dataclass(Params, data_fields=["w", "b"], meta_fields=["name"])


def test_pytrees_in_and_out(rng):
    p = {"a": rng.standard_normal(2), "b": [Point(1.0, rng.standard_normal(3)), None]}

    def f(p):
        pt = p["b"][0]
        return np.sum(p["a"] ** 2) * pt.x + np.sum(np.sin(pt.y))

    g = sg.grad(f)(p)
    assert set(g) == {"a", "b"} and g["b"][1] is None and isinstance(g["b"][0], Point)
    onp.testing.assert_allclose(g["a"], 2 * p["a"] * 1.0)
    assert g["b"][0].x == pytest.approx(onp.sum(p["a"] ** 2))
    onp.testing.assert_allclose(g["b"][0].y, onp.cos(p["b"][0].y))

    params = Params(w=rng.standard_normal(3), b=0.5, name="dense")
    gp = sg.grad(lambda q: np.sum(q.w * q.b))(params)
    assert isinstance(gp, Params) and gp.name == "dense"
    onp.testing.assert_allclose(gp.w, onp.full(3, 0.5))
    out, t = sg.jvp(lambda q: {"s": q.w * q.b}, (params,), (Params(onp.ones(3), 0.0, "dense"),))
    onp.testing.assert_allclose(t["s"], onp.full(3, 0.5))


def test_jacrev_pytree_layout(rng):
    x, y = rng.standard_normal(2), rng.standard_normal(3)
    jac = sg.jacrev(lambda x, y: {"p": x * 2.0, "q": np.sum(y) * x}, argnums=(0, 1))(x, y)
    assert jac["p"][0].shape == (2, 2) and jac["p"][1].shape == (2, 3)
    onp.testing.assert_allclose(jac["q"][1], onp.outer(x, onp.ones(3)))
    jf = sg.jacfwd(lambda x, y: {"p": x * 2.0, "q": np.sum(y) * x}, argnums=(0, 1))(x, y)
    onp.testing.assert_allclose(jf["q"][0], jac["q"][0])


def test_float32_stays_float32():
    x = onp.ones(3, dtype=onp.float32)
    g = sg.grad(lambda x: np.sum(x * 2.0))(x)
    assert g.dtype == onp.float32


def test_unused_input_gets_zero_gradient():
    g = sg.grad(lambda x, y: np.sum(x), argnums=(0, 1))(onp.ones(2), onp.ones(3))
    onp.testing.assert_array_equal(g[1], onp.zeros(3))


def test_eval_shape_runs_shape_rules_only():
    out = sg.eval_shape(lambda a, b: (np.sum(a * b, axis=0), a > 0), onp.ones((3, 4)), onp.ones(4))
    assert out[0].shape == (4,) and out[1].dtype == onp.dtype(bool)
    g = sg.eval_shape(sg.grad(lambda a: np.sum(np.sin(a) ** 2)), onp.ones((2, 5)))
    assert g.shape == (2, 5)


def test_jacrev_batched_backward_pass_matches_forward_mode(rng):
    """jacrev maps one backward pass over the output entries with vmap: pytrees, several
    outputs, linear algebra, indexing and data-dependent selections must give jacfwd's."""
    a = rng.standard_normal((3, 3)) + 3 * onp.eye(3)

    def f(p):
        x, y = p["x"], p["y"]
        z = np.linalg.solve(a * y[0], x) + np.where(x > 0, np.sin(x), x**2)
        return {"z": z[[0, 2, 2]] * y[1], "s": np.sum(np.tanh(np.outer(x, y)))}

    p = {"x": rng.standard_normal(3), "y": rng.uniform(1, 2, 2)}
    jr, jf = sg.jacrev(f)(p), sg.jacfwd(f)(p)
    for k in ("z", "s"):
        for v in ("x", "y"):
            onp.testing.assert_allclose(jr[k][v], jf[k][v], rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(
        sg.hessian(lambda x: f({"x": x, "y": p["y"]})["s"])(p["x"]),
        sg.jacfwd(sg.jacfwd(lambda x: f({"x": x, "y": p["y"]})["s"]))(p["x"]),
        rtol=1e-10,
        atol=1e-12,
    )
