"""User-defined rules: custom_vjp, custom_jvp, stop_gradient."""

from __future__ import annotations

import numpy as onp
import pytest

import scigrad as sg
import scigrad.numpy as np


def make_scaled_sin(scale_bwd: float):
    """sin(x) whose reverse rule is deliberately scaled, so we can see it is used."""

    @sg.custom_vjp
    def f(x):
        return np.sin(x)

    f.defvjp(lambda x: (np.sin(x), x), lambda x, g: (scale_bwd * g * np.cos(x),))
    return f


def test_custom_vjp_rule_is_used():
    f = make_scaled_sin(3.0)
    assert sg.grad(f)(0.4) == pytest.approx(3.0 * onp.cos(0.4))
    assert f(0.4) == pytest.approx(onp.sin(0.4))  # plain call: the function itself


def test_custom_vjp_second_order_through_bwd():
    f = make_scaled_sin(1.0)
    sg.check_grads(f, (onp.array([0.3, -1.1]),), order=2, modes=("rev",))
    assert sg.grad(sg.grad(f))(0.4) == pytest.approx(-onp.sin(0.4))


def test_custom_vjp_forward_mode_differentiates_the_function():
    f = make_scaled_sin(3.0)
    _, t = sg.jvp(f, (0.4,), (1.0,))
    assert t == pytest.approx(onp.cos(0.4))  # the undecorated function's derivative
    assert sg.hessian(make_scaled_sin(1.0))(0.4) == pytest.approx(-onp.sin(0.4))


def test_custom_vjp_pytrees_and_nondiff_argnums(rng):
    @sg.custom_vjp
    def weighted(params, power):
        return np.sum(params["w"] ** power * params["v"])

    def fwd(params, power):
        return weighted(params, power), params

    def bwd(power, params, g):
        w, v = params["w"], params["v"]
        return ({"w": g * power * w ** (power - 1) * v, "v": None},)

    weighted = sg.custom_vjp(weighted.fun, nondiff_argnums=(1,))
    weighted.defvjp(fwd, bwd)
    p = {"w": rng.uniform(0.5, 1.5, 3), "v": rng.standard_normal(3)}
    g = sg.grad(weighted)(p, 3)
    onp.testing.assert_allclose(g["w"], 3 * p["w"] ** 2 * p["v"])
    onp.testing.assert_array_equal(g["v"], onp.zeros(3))


def test_custom_jvp_used_in_both_modes():
    @sg.custom_jvp
    def f(x):
        return np.exp(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), 2.0 * np.exp(x) * t  # deliberately twice the true derivative

    x = onp.array([0.1, 0.7])
    _, t = sg.jvp(f, (x,), (onp.ones(2),))
    onp.testing.assert_allclose(t, 2 * onp.exp(x))
    onp.testing.assert_allclose(sg.grad(lambda x: np.sum(f(x)))(x), 2 * onp.exp(x))


def test_custom_jvp_correct_rule_passes_check_grads():
    @sg.custom_jvp
    def softplus(x):
        return np.log1p(np.exp(x))

    @softplus.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t / (1 + np.exp(-x))

    sg.check_grads(softplus, (onp.array([-1.0, 0.3, 2.0]),), order=2)


def test_stop_gradient():
    assert sg.grad(lambda x: x * sg.stop_gradient(x))(3.0) == pytest.approx(3.0)
    tree = sg.stop_gradient({"a": onp.ones(2)})
    onp.testing.assert_array_equal(tree["a"], onp.ones(2))
    _, t = sg.jvp(lambda x: sg.stop_gradient(x) * x, (2.0,), (1.0,))
    assert t == pytest.approx(2.0)


def test_custom_rule_errors():
    @sg.custom_vjp
    def f(x):
        return x

    with pytest.raises(TypeError, match="defvjp"):
        f(1.0)
    f.defvjp(lambda x: (x, None), lambda res, g: g)  # bwd must return a tuple
    with pytest.raises(TypeError, match="tuple"):
        sg.grad(f)(1.0)
