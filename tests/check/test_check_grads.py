"""The gradient checker itself: it passes correct rules and pinpoints wrong ones."""

from __future__ import annotations

import numpy as onp
import pytest

import scigrad as sg
import scigrad.numpy as np
from scigrad.check import GradientCheckError
from scigrad.core import Primitive


def _sin_with(vjp_rule, jvp_rule):
    p = Primitive("test_sin_" + str(id(vjp_rule)), onp.sin, shape=lambda x: x)
    p.defvjp(vjp_rule)
    p.defjvp(jvp_rule)
    return p.bind


good_sin = _sin_with(lambda g, ans, x: g * np.cos(x), lambda t, ans, x: t * np.cos(x))


def test_passes_correct_rules_to_third_order():
    sg.check_grads(lambda x, y: good_sin(x) * y, (onp.array([0.3, 1.2]), 2.0), order=3)


def test_wrong_reverse_rule_is_pinpointed():
    bad = _sin_with(lambda g, ans, x: g * np.cos(x) * (x > 1.0), lambda t, ans, x: t * np.cos(x))
    x = onp.array([0.3, 1.2, 2.0])
    sg.check_grads(bad, (x,), order=1, modes=("fwd",))  # forward rule is right
    with pytest.raises(GradientCheckError, match=r"reverse-mode.*input leaf 0 at entry \(0,\)"):
        sg.check_grads(bad, (x,), order=1, modes=("rev",))


def test_wrong_forward_rule_is_pinpointed():
    bad = _sin_with(lambda g, ans, x: g * np.cos(x), lambda t, ans, x: t * np.cos(x) * 1.001)
    with pytest.raises(GradientCheckError, match=r"forward-mode.*order 1"):
        sg.check_grads(bad, (onp.array([0.5]),), modes=("fwd",))


def test_wrong_second_order_is_caught():
    # First derivative right, but the rule is not differentiable in scigrad terms: its
    # derivative treats cos(x) as a constant (stop_gradient), so the Hessian is wrong.
    bad = _sin_with(
        lambda g, ans, x: g * sg.stop_gradient(np.cos(x)),
        lambda t, ans, x: t * sg.stop_gradient(np.cos(x)),
    )
    sg.check_grads(bad, (onp.array([0.5, 0.9]),), order=1)
    with pytest.raises(GradientCheckError, match="order 2"):
        sg.check_grads(bad, (onp.array([0.5, 0.9]),), order=2)


def test_pytree_arguments_and_second_argument_reported():
    def f(p):
        return {"out": p["a"] * 2.0 + bad(p["b"])}

    bad = _sin_with(lambda g, ans, x: 2.0 * g * np.cos(x), lambda t, ans, x: t * np.cos(x))
    p = {"a": onp.array([1.0, 2.0]), "b": onp.array([0.1, 0.2])}
    with pytest.raises(GradientCheckError, match="input leaf 1"):
        sg.check_grads(f, (p,), order=1, modes=("rev",))


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode"):
        sg.check_grads(np.sin, (1.0,), modes=("backward",))
