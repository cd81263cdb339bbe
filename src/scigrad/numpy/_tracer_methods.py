"""Make traced values look like NumPy arrays: operators, methods, and NumPy's dispatch
protocols (``__array_ufunc__``, ``__array_function__``), so that code calling plain
``numpy`` functions on traced values is routed to scigrad's rules or fails with a clear
message naming the function.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.batching import broadcasting_rule
from ..core.primitive import Primitive, ShapeDtype, Tracer
from . import _elementwise as ew
from ._indexing import IndexUpdateHelper, getitem, getitem_p
from ._products import matmul
from ._reductions import sum as sum_
from ._shape import reshape, transpose
from ._util import dtype_of, shape_of


def unsupported(name: str) -> NotImplementedError:
    return NotImplementedError(
        f"{name} is not supported on traced values: scigrad has no differentiation rule "
        "for it. Express the computation with supported scigrad.numpy functions, wrap it in "
        "scigrad.custom_vjp with your own derivative, or add a rule for it (a Primitive with "
        "JVP and VJP rules: see docs/design.md, 'Adding a primitive')."
    )


def _inplace_error(*args: Any, **kwargs: Any) -> Any:
    raise TypeError(
        "In-place writes into a traced array are not supported (the derivative would be "
        "lost). Use the functional form instead: `x = x.at[idx].set(value)` (or .add, "
        ".multiply, ...), which returns an updated copy."
    )


def _snp() -> types.ModuleType:
    from .. import numpy as snp

    return snp


# -- dtype conversion ------------------------------------------------------------------------
astype_p = Primitive(
    "astype",
    lambda x, *, dtype: np.asarray(x).astype(dtype),
    shape=lambda x, *, dtype: ShapeDtype(x.shape, np.dtype(dtype)),
)
astype_p.defjvp(lambda t, ans, x, *, dtype: astype_p.bind(t, dtype=dtype))
astype_p.defvjp(lambda g, ans, x, *, dtype: astype_p.bind(g, dtype=dtype_of(x)))
_astype_nondiff = Primitive(
    "astype_nondiff",
    lambda x, *, dtype: np.asarray(x).astype(dtype),
    shape=lambda x, *, dtype: ShapeDtype(x.shape, np.dtype(dtype)),
    nondiff=True,
)
astype_p.defbatch(broadcasting_rule(astype_p))
_astype_nondiff.defbatch(broadcasting_rule(_astype_nondiff))


def astype(x: Any, dtype: Any) -> Any:
    """``x`` converted to ``dtype``; conversion to a non-float type has no derivative."""
    dtype = np.dtype(dtype)
    if dtype == dtype_of(x):
        return x
    if dtype.kind == "c":
        raise NotImplementedError("complex values are not supported by scigrad yet")
    prim = astype_p if dtype.kind == "f" else _astype_nondiff
    return prim.bind(x, dtype=dtype)


# -- operators -------------------------------------------------------------------------------
_NO_PARAMS: dict = {}
_PLAIN = frozenset({float, int, bool, np.ndarray, np.float64, np.float32, np.int64})


def _operator(f: Callable, swapped: bool = False) -> Callable:
    """``Tracer.__op__`` for the primitive behind ``f``: dispatches straight to the innermost
    trace of the two operands, skipping the generic argument scan (operators are the hot path)."""
    prim = getattr(f, "primitive", None)
    if prim is None:  # a composite, not a primitive
        return (lambda self, other: f(other, self)) if swapped else f

    def op(self: Tracer, other: Any) -> Any:
        trace = self._trace
        if isinstance(other, Tracer):
            if other._trace.level > trace.level:
                trace = other._trace
        elif type(other) not in _PLAIN and getattr(type(other), "__array_ufunc__", 0) is None:
            return NotImplemented  # NumPy's convention: the other operand handles it
        args = (other, self) if swapped else (self, other)
        return trace.process(prim, args, _NO_PARAMS)

    return op


def _swap(f: Callable) -> Callable:
    return _operator(f, swapped=True)


def _pow(self: Any, other: Any) -> Any:
    if type(other) is int and other == 2:
        return ew.square(self)
    return ew.power(self, other)


def _method(name: str) -> Callable:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(_snp(), name)(self, *args, **kwargs)

    method.__name__ = name
    return method


def _getitem(self: Tracer, idx: Any) -> Any:
    # A lone slice or int is already a normalized index: skip the general normalization.
    if type(idx) is slice or type(idx) is int:
        return self._trace.process(getitem_p, (self,), {"idx": (idx,)})
    return getitem(self, idx)


def _reshape_method(self: Any, *shape: Any, order: str = "C") -> Any:
    return reshape(self, shape[0] if len(shape) == 1 else shape, order)


def _transpose_method(self: Any, *axes: Any) -> Any:
    return transpose(self, axes[0] if len(axes) == 1 else (axes or None))


def _sum_method(self: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
    return sum_(self, axis=axis, dtype=dtype, keepdims=keepdims)


def _item(self: Any, *args: Any) -> Any:
    raise TypeError(
        "x.item() / x.tolist() on a traced value would drop its derivative; keep working "
        "with the array, or call scigrad.stop_gradient first."
    )


# -- NumPy's dispatch protocols ------------------------------------------------------------
_UFUNC_REDUCTIONS = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min"}


def _array_ufunc(self: Any, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    if kwargs.get("out") is not None:
        _inplace_error()
    snp = _snp()
    name = ufunc.__name__
    if method == "__call__":
        f = getattr(snp, name, None) if name in snp.__all__ else _scipy_special(ufunc)
        if f is None:
            raise unsupported(f"numpy.{name}")
        return f(*inputs, **kwargs)
    if method == "reduce" and name in _UFUNC_REDUCTIONS:
        return getattr(snp, _UFUNC_REDUCTIONS[name])(*inputs, **kwargs)
    if method == "accumulate" and name in ("add", "multiply"):
        cumulative = snp.cumsum if name == "add" else snp.cumprod
        axis = kwargs.pop("axis", 0)  # the ufunc method's default, unlike cumsum's None
        return cumulative(*inputs, axis=axis, **kwargs)
    raise unsupported(f"numpy.{name}.{method}")


def _scipy_special(ufunc: np.ufunc) -> Callable | None:
    """scigrad's version of a ``scipy.special`` ufunc (e.g. ``scipy.special.expit``)."""
    import scipy.special

    from ..scipy import special

    name = ufunc.__name__
    if getattr(scipy.special, name, None) is ufunc and name in special.__all__:
        return getattr(special, name)
    return None


def _array_function(self: Any, func: Callable, types: Any, args: tuple, kwargs: dict) -> Any:
    snp = _snp()
    module = {"numpy": snp, "numpy.linalg": getattr(snp, "linalg", None)}.get(func.__module__)
    name = func.__name__
    if module is not None and name in getattr(module, "__all__", ()):
        return getattr(module, name)(*args, **kwargs)
    raise unsupported(f"{func.__module__}.{name}")


def install() -> None:
    """Attach the array interface to :class:`~scigrad.core.Tracer`."""
    T = Tracer
    binary = {
        "add": ew.add,
        "sub": ew.subtract,
        "mul": ew.multiply,
        "truediv": ew.divide,
        "floordiv": ew.floor_divide,
        "mod": ew.remainder,
        "matmul": matmul,
        "and": ew.bitwise_and,
        "or": ew.bitwise_or,
        "xor": ew.bitwise_xor,
    }
    for name, f in binary.items():
        setattr(T, f"__{name}__", _operator(f))
        setattr(T, f"__r{name}__", _swap(f))
    T.__pow__ = _pow
    T.__rpow__ = _swap(ew.power)
    T.__neg__ = ew.negative
    T.__pos__ = ew.positive
    T.__abs__ = ew.absolute
    T.__invert__ = ew.invert
    for name, f in {
        "lt": ew.less,
        "le": ew.less_equal,
        "gt": ew.greater,
        "ge": ew.greater_equal,
        "eq": ew.equal,
        "ne": ew.not_equal,
    }.items():
        setattr(T, f"__{name}__", f)
    T.__hash__ = object.__hash__  # identity, as the tapes key cotangents by tracer
    T.__getitem__ = _getitem
    T.__setitem__ = _inplace_error
    # No __iadd__ & co.: Python then rewrites `x += y` as `x = x + y`, which is functional.
    T.at = property(IndexUpdateHelper)
    T.T = property(lambda self: transpose(self))
    T.mT = property(lambda self: _snp().swapaxes(self, -1, -2))
    T.reshape = _reshape_method
    T.transpose = _transpose_method
    T.sum = _sum_method
    T.astype = lambda self, dtype, copy=True: astype(self, dtype)
    T.copy = lambda self: ew.positive(self)
    T.ravel = T.flatten = lambda self: reshape(self, (-1,))
    T.item = T.tolist = _item
    T.__array_ufunc__ = _array_ufunc
    T.__array_function__ = _array_function
    for name in (
        "mean", "prod", "max", "min", "var", "std", "cumsum", "cumprod", "dot", "squeeze",
        "swapaxes", "clip", "diagonal", "trace", "round", "argmax", "argmin", "argsort",
        "all", "any", "nonzero", "repeat", "conj",
    ):  # fmt: skip
        setattr(T, name, _method(name))
    _ = shape_of  # shape/dtype/ndim come from the core Tracer


__all__ = ["astype", "install", "unsupported"]
