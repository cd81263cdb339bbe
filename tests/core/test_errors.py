"""Bad input gets a clear error, never a silent NaN or a wrong gradient."""

from __future__ import annotations

import numpy
import pytest

import scigrad as sg
import scigrad.numpy as np


def test_unsupported_numpy_function_is_named():
    with pytest.raises(NotImplementedError, match=r"numpy\.interp.*add a rule"):
        sg.grad(lambda x: numpy.sum(numpy.interp(x, [0.0, 1.0], [0.0, 2.0])))(numpy.ones(2))
    with pytest.raises(NotImplementedError, match=r"scigrad\.numpy\.interp.*custom_vjp"):
        sg.grad(lambda x: np.sum(np.interp(x, [0.0, 1.0], [0.0, 2.0])))(numpy.ones(2))
    # The same function on plain arrays just runs NumPy.
    numpy.testing.assert_allclose(np.interp(0.5, [0.0, 1.0], [0.0, 2.0]), 1.0)


def test_plain_numpy_ufuncs_are_routed_to_rules():
    g = sg.grad(lambda x: numpy.sum(numpy.sin(x) * numpy.ones(2)))(numpy.array([0.1, 0.2]))
    numpy.testing.assert_allclose(g, numpy.cos([0.1, 0.2]))


def test_inplace_write_into_traced_array():
    def f(x):
        x[0] = 1.0
        return np.sum(x)

    with pytest.raises(TypeError, match=r"\.at\[idx\]\.set"):
        sg.grad(f)(numpy.ones(3))


def test_storing_traced_value_into_numpy_array():
    def store_slice(x):
        buf = numpy.zeros(3)
        buf[:2] = x[1:]
        return np.sum(x)

    with pytest.raises(TypeError, match="drop its derivative"):
        sg.grad(store_slice)(numpy.ones(3))

    def store_scalar(x):
        buf = numpy.zeros(3)
        buf[0] = x[1]
        return np.sum(x)

    # NumPy reports a scalar slot as "setting an array element with a sequence" and chains
    # scigrad's explanation as the cause, which the traceback prints first.
    with pytest.raises(ValueError) as info:
        sg.grad(store_scalar)(numpy.ones(3))
    assert "drop its derivative" in str(info.value.__cause__)


def test_inplace_ufunc_out_into_numpy_array():
    def f(x):
        buf = numpy.zeros(3)
        numpy.add(buf, x, out=buf)
        return np.sum(buf)

    with pytest.raises(TypeError, match="In-place"):
        sg.grad(f)(numpy.ones(3))


def test_float_of_traced_value():
    with pytest.raises(TypeError, match="drop its derivative"):
        sg.grad(lambda x: float(x) * x)(2.0)


@pytest.mark.parametrize("bad", [3, numpy.arange(3), True, numpy.array([1, 2], dtype=numpy.int32)])
def test_integer_input_to_grad(bad):
    with pytest.raises(TypeError, match="floating-point"):
        sg.grad(lambda x: np.sum(x * 2.0))(bad)


def test_complex_input_is_deferred_clearly():
    with pytest.raises(NotImplementedError, match="complex"):
        sg.grad(lambda x: np.sum(x))(numpy.ones(2, dtype=complex))


def test_non_scalar_output_to_grad():
    with pytest.raises(TypeError, match="scalar output.*jacrev"):
        sg.grad(lambda x: x * 2.0)(numpy.ones(3))


def test_shape_mismatches():
    with pytest.raises(ValueError, match="broadcast"):
        sg.grad(lambda x: np.sum(x + numpy.ones(4)))(numpy.ones(3))
    with pytest.raises(ValueError, match="tangent 0 has shape"):
        sg.jvp(np.sin, (numpy.ones(3),), (numpy.ones(2),))
    _, pullback = sg.vjp(np.sin, numpy.ones(3))
    with pytest.raises(ValueError, match="cotangent of shape"):
        pullback(numpy.ones(2))
    with pytest.raises(ValueError, match="cannot reshape"):
        sg.grad(lambda x: np.sum(x.reshape(4, 2)))(numpy.ones(6))
    with pytest.raises(ValueError, match="argnums"):
        sg.grad(lambda x: np.sum(x), argnums=2)(numpy.ones(2))


def test_escaped_tracer():
    leaked = []

    def f(x):
        leaked.append(x)
        return np.sum(x)

    sg.grad(f)(numpy.ones(2))
    with pytest.raises(RuntimeError, match="escaped"):
        sg.grad(lambda y: np.sum(y * leaked[0]))(numpy.ones(2))


def test_missing_rule_names_primitive():
    from scigrad.core import Primitive

    cube = Primitive("cube_without_rules", lambda x: x**3, shape=lambda x: x)
    with pytest.raises(NotImplementedError, match=r"VJP rule.*'cube_without_rules'"):
        sg.grad(lambda x: cube.bind(x))(2.0)
    with pytest.raises(NotImplementedError, match=r"JVP rule.*'cube_without_rules'"):
        sg.jvp(cube.bind, (2.0,), (1.0,))
