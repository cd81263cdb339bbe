"""Elementwise operations (NumPy's ufuncs): arithmetic, exp/log, trig, comparisons, where.

Smooth unary functions are registered by their derivative alone: ``f'(x)`` written in terms
of the input ``x`` and the output ``ans`` gives both the JVP (``t * f'``) and the VJP
(``g * f'``). Binary functions undo broadcasting in their VJPs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.batching import broadcasting_rule
from ..core.primitive import Primitive
from ._util import (
    broadcast_like,
    elementwise_shape,
    predicate_shape,
    shape_of,
    unbroadcast_like,
)

_LOG2 = np.log(2.0)
_LOG10 = np.log(10.0)


def _unary(name: str, impl: Callable, deriv: Callable[[Any, Any], Any]) -> Callable:
    p = Primitive(name, impl, shape=elementwise_shape)
    p.defjvp(lambda t, ans, x: t * deriv(ans, x))
    p.defvjp(lambda g, ans, x: g * deriv(ans, x))
    return p.bind


def _binary(name: str, impl: Callable, dx: Callable, dy: Callable) -> Callable:
    """``dx(ans, x, y)`` and ``dy(ans, x, y)``: the partial derivatives, broadcast shape."""
    p = Primitive(name, impl, shape=elementwise_shape)
    p.defjvp(
        lambda t, ans, x, y: broadcast_like(t * dx(ans, x, y), shape_of(ans)),
        lambda t, ans, x, y: broadcast_like(t * dy(ans, x, y), shape_of(ans)),
    )
    p.defvjp(
        lambda g, ans, x, y: unbroadcast_like(g * dx(ans, x, y), x),
        lambda g, ans, x, y: unbroadcast_like(g * dy(ans, x, y), y),
    )
    return p.bind


def _nondiff(name: str, impl: Callable, shape: Callable = elementwise_shape) -> Callable:
    return Primitive(name, impl, shape=shape, nondiff=True).bind


# -- linear arithmetic --------------------------------------------------------------------
add_p = Primitive("add", np.add, shape=elementwise_shape)
add_p.defjvp(
    lambda t, ans, x, y: broadcast_like(t, shape_of(ans)),
    lambda t, ans, x, y: broadcast_like(t, shape_of(ans)),
)
add_p.defvjp(
    lambda g, ans, x, y: unbroadcast_like(g, x),
    lambda g, ans, x, y: unbroadcast_like(g, y),
)
add = add_p.bind

subtract_p = Primitive("subtract", np.subtract, shape=elementwise_shape)
subtract_p.defjvp(
    lambda t, ans, x, y: broadcast_like(t, shape_of(ans)),
    lambda t, ans, x, y: broadcast_like(-t, shape_of(ans)),
)
subtract_p.defvjp(
    lambda g, ans, x, y: unbroadcast_like(g, x),
    lambda g, ans, x, y: unbroadcast_like(-g, y),
)
subtract = subtract_p.bind

negative_p = Primitive("negative", np.negative, shape=elementwise_shape)
negative_p.defjvp(lambda t, ans, x: -t)
negative_p.defvjp(lambda g, ans, x: -g)
negative = negative_p.bind

positive_p = Primitive("positive", np.positive, shape=elementwise_shape)
positive_p.defjvp(lambda t, ans, x: t)
positive_p.defvjp(lambda g, ans, x: g)
positive = positive_p.bind

multiply_p = Primitive("multiply", np.multiply, shape=elementwise_shape)
multiply_p.defjvp(lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t)
multiply_p.defvjp(
    lambda g, ans, x, y: unbroadcast_like(g * y, x),
    lambda g, ans, x, y: unbroadcast_like(x * g, y),
)
multiply = multiply_p.bind

divide_p = Primitive("divide", np.divide, shape=elementwise_shape)
divide_p.defjvp(
    lambda t, ans, x, y: broadcast_like(t / y, shape_of(ans)),
    lambda t, ans, x, y: broadcast_like(-t * ans / y, shape_of(ans)),
)
divide_p.defvjp(
    lambda g, ans, x, y: unbroadcast_like(g / y, x),
    lambda g, ans, x, y: unbroadcast_like(-g * ans / y, y),
)
divide = divide_p.bind
true_divide = divide


# -- powers --------------------------------------------------------------------------------
def _dpow_dx(ans: Any, x: Any, y: Any) -> Any:
    if isinstance(y, int | float) and not isinstance(y, bool):
        if y == 2:
            return 2.0 * x
        if y == 1:
            return np.ones(shape_of(x))
    return y * power(x, y - 1)


def _dpow_dy(ans: Any, x: Any, y: Any) -> Any:
    # d(x**y)/dy = log(x) x**y, taken as 0 where x == 0 (the limit for y > 0).
    safe = where(equal(x, 0), 1.0, x)
    return where(equal(x, 0), 0.0, log(safe) * ans)


power = _binary("power", np.power, _dpow_dx, _dpow_dy)
square = _unary("square", np.square, lambda ans, x: 2.0 * x)
sqrt = _unary("sqrt", np.sqrt, lambda ans, x: 0.5 / ans)
cbrt = _unary("cbrt", np.cbrt, lambda ans, x: 1.0 / (3.0 * ans * ans))
reciprocal = _unary("reciprocal", np.reciprocal, lambda ans, x: -(ans * ans))

# -- exponentials and logarithms -----------------------------------------------------------
exp = _unary("exp", np.exp, lambda ans, x: ans)
exp2 = _unary("exp2", np.exp2, lambda ans, x: ans * _LOG2)
expm1 = _unary("expm1", np.expm1, lambda ans, x: ans + 1.0)
log = _unary("log", np.log, lambda ans, x: 1.0 / x)
log2 = _unary("log2", np.log2, lambda ans, x: 1.0 / (x * _LOG2))
log10 = _unary("log10", np.log10, lambda ans, x: 1.0 / (x * _LOG10))
log1p = _unary("log1p", np.log1p, lambda ans, x: 1.0 / (1.0 + x))
logaddexp = _binary(
    "logaddexp", np.logaddexp, lambda ans, x, y: exp(x - ans), lambda ans, x, y: exp(y - ans)
)
logaddexp2 = _binary(
    "logaddexp2",
    np.logaddexp2,
    lambda ans, x, y: exp2(x - ans),
    lambda ans, x, y: exp2(y - ans),
)

# -- trigonometric and hyperbolic ------------------------------------------------------------
sin = _unary("sin", np.sin, lambda ans, x: cos(x))
cos = _unary("cos", np.cos, lambda ans, x: -sin(x))
tan = _unary("tan", np.tan, lambda ans, x: 1.0 + ans * ans)
arcsin = _unary("arcsin", np.arcsin, lambda ans, x: 1.0 / sqrt(1.0 - x * x))
arccos = _unary("arccos", np.arccos, lambda ans, x: -1.0 / sqrt(1.0 - x * x))
arctan = _unary("arctan", np.arctan, lambda ans, x: 1.0 / (1.0 + x * x))
sinh = _unary("sinh", np.sinh, lambda ans, x: cosh(x))
cosh = _unary("cosh", np.cosh, lambda ans, x: sinh(x))
tanh = _unary("tanh", np.tanh, lambda ans, x: 1.0 - ans * ans)
arcsinh = _unary("arcsinh", np.arcsinh, lambda ans, x: 1.0 / sqrt(x * x + 1.0))
arccosh = _unary("arccosh", np.arccosh, lambda ans, x: 1.0 / sqrt(x * x - 1.0))
arctanh = _unary("arctanh", np.arctanh, lambda ans, x: 1.0 / (1.0 - x * x))
deg2rad = _unary("deg2rad", np.deg2rad, lambda ans, x: np.pi / 180.0)
rad2deg = _unary("rad2deg", np.rad2deg, lambda ans, x: 180.0 / np.pi)
arctan2 = _binary(
    "arctan2",
    np.arctan2,
    lambda ans, y, x: x / (x * x + y * y),
    lambda ans, y, x: -y / (x * x + y * y),
)
hypot = _binary("hypot", np.hypot, lambda ans, x, y: x / ans, lambda ans, x, y: y / ans)

asin, acos, atan = arcsin, arccos, arctan
asinh, acosh, atanh, atan2 = arcsinh, arccosh, arctanh, arctan2
radians, degrees, pow = deg2rad, rad2deg, power  # noqa: A001 - NumPy's names

# -- non-differentiable: comparisons, logic, rounding, tests ---------------------------------
equal = _nondiff("equal", np.equal, predicate_shape)
not_equal = _nondiff("not_equal", np.not_equal, predicate_shape)
less = _nondiff("less", np.less, predicate_shape)
less_equal = _nondiff("less_equal", np.less_equal, predicate_shape)
greater = _nondiff("greater", np.greater, predicate_shape)
greater_equal = _nondiff("greater_equal", np.greater_equal, predicate_shape)
logical_and = _nondiff("logical_and", np.logical_and, predicate_shape)
logical_or = _nondiff("logical_or", np.logical_or, predicate_shape)
logical_xor = _nondiff("logical_xor", np.logical_xor, predicate_shape)
logical_not = _nondiff("logical_not", np.logical_not, predicate_shape)
isnan = _nondiff("isnan", np.isnan, predicate_shape)
isinf = _nondiff("isinf", np.isinf, predicate_shape)
isfinite = _nondiff("isfinite", np.isfinite, predicate_shape)
signbit = _nondiff("signbit", np.signbit, predicate_shape)
sign = _nondiff("sign", np.sign)
floor = _nondiff("floor", np.floor)
ceil = _nondiff("ceil", np.ceil)
rint = _nondiff("rint", np.rint)
trunc = _nondiff("trunc", np.trunc)
floor_divide = _nondiff("floor_divide", np.floor_divide)
heaviside = _nondiff("heaviside", np.heaviside)
bitwise_and = _nondiff("bitwise_and", np.bitwise_and)
bitwise_or = _nondiff("bitwise_or", np.bitwise_or)
bitwise_xor = _nondiff("bitwise_xor", np.bitwise_xor)
invert = _nondiff("invert", np.invert)
left_shift = _nondiff("left_shift", np.left_shift)
right_shift = _nondiff("right_shift", np.right_shift)
fix = trunc

# -- piecewise: derivative defined almost everywhere ------------------------------------------
absolute = _unary("absolute", np.absolute, lambda ans, x: sign(x))
abs = fabs = absolute  # noqa: A001 - NumPy's names


def _tie_split(ans: Any, x: Any, y: Any, pick: Callable) -> Any:
    # Where both arguments are equal each gets half the derivative, as in JAX.
    return where(pick(x, y), 1.0, where(equal(x, y), 0.5, 0.0))


def _extremum(name: str, impl: Callable, pick: Callable) -> Callable:
    return _binary(
        name,
        impl,
        lambda ans, x, y: _tie_split(ans, x, y, pick),
        lambda ans, x, y: _tie_split(ans, y, x, pick),
    )


maximum = _extremum("maximum", np.maximum, greater)
minimum = _extremum("minimum", np.minimum, less)
fmax = _extremum("fmax", np.fmax, greater)
fmin = _extremum("fmin", np.fmin, less)
remainder = _binary(
    "remainder", np.remainder, lambda ans, x, y: 1.0, lambda ans, x, y: -floor_divide(x, y)
)
mod = remainder
fmod = _binary("fmod", np.fmod, lambda ans, x, y: 1.0, lambda ans, x, y: -trunc(x / y))

# -- where ------------------------------------------------------------------------------------
where_p = Primitive("where", np.where, shape=elementwise_shape)
where_p.defjvp(
    lambda t, ans, c, x, y: None,
    lambda t, ans, c, x, y: broadcast_like(where(c, t, 0.0), shape_of(ans)),
    lambda t, ans, c, x, y: broadcast_like(where(c, 0.0, t), shape_of(ans)),
)
where_p.defvjp(
    lambda g, ans, c, x, y: None,
    lambda g, ans, c, x, y: unbroadcast_like(where(c, g, 0.0), x),
    lambda g, ans, c, x, y: unbroadcast_like(where(c, 0.0, g), y),
)


def where(condition: Any, x: Any = None, y: Any = None) -> Any:
    """``x`` where ``condition`` holds, else ``y`` (differentiable in ``x`` and ``y``).
    With only ``condition``, the indices where it holds (as ``numpy.where``)."""
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError("where: give both x and y, or neither")
    return where_p.bind(condition, x, y)


def clip(a: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """``a`` limited to ``[a_min, a_max]``; derivative 1 inside, 0 outside (½ at a bound)."""
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return a


nonzero_p = Primitive(
    "nonzero",
    np.nonzero,
    nondiff=True,
    shape=lambda x: _value_dependent("nonzero"),
)


def _nonzero_batch(vals: list, dims: list) -> Any:
    raise ValueError(
        "nonzero (and where(condition) with one argument) cannot be batched by vmap: the "
        "number of indices differs between batch entries. Use where(condition, x, y) or "
        "a mask instead."
    )


nonzero_p.defbatch(_nonzero_batch)
nonzero = nonzero_p.bind


def _value_dependent(name: str) -> Any:
    raise TypeError(f"the output shape of {name} depends on the values of its input")


def round(a: Any, decimals: int = 0) -> Any:  # noqa: A001 - NumPy's name
    """Rounded values (no derivative: zero almost everywhere)."""
    return round_p.bind(a, decimals=decimals)


round_p = Primitive(
    "round",
    lambda a, decimals=0: np.round(a, decimals),
    nondiff=True,
    shape=lambda a, decimals=0: elementwise_shape(a),
)
round_p.defbatch(broadcasting_rule(round_p))
around = round


__all__ = [
    "abs",
    "absolute",
    "acos",
    "acosh",
    "add",
    "arccos",
    "arccosh",
    "arcsin",
    "arcsinh",
    "arctan",
    "arctan2",
    "arctanh",
    "around",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "cbrt",
    "ceil",
    "clip",
    "cos",
    "cosh",
    "deg2rad",
    "degrees",
    "divide",
    "equal",
    "exp",
    "exp2",
    "expm1",
    "fix",
    "floor",
    "floor_divide",
    "fmax",
    "fmin",
    "fmod",
    "greater",
    "greater_equal",
    "heaviside",
    "hypot",
    "invert",
    "isfinite",
    "isinf",
    "isnan",
    "left_shift",
    "less",
    "less_equal",
    "log",
    "log10",
    "log1p",
    "log2",
    "logaddexp",
    "logaddexp2",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "maximum",
    "minimum",
    "mod",
    "multiply",
    "negative",
    "nonzero",
    "not_equal",
    "positive",
    "pow",
    "power",
    "rad2deg",
    "radians",
    "reciprocal",
    "remainder",
    "right_shift",
    "rint",
    "round",
    "sign",
    "signbit",
    "sin",
    "sinh",
    "sqrt",
    "square",
    "subtract",
    "tan",
    "tanh",
    "true_divide",
    "trunc",
    "where",
]
