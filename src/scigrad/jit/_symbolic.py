"""Symbolic scalars: what a captured graph is lowered to, one array element at a time.

Lowering evaluates a graph on NumPy *object* arrays whose elements are symbolic scalars, so
NumPy itself does the indexing, reshaping, broadcasting, summing and matrix products, and
every arithmetic operation lands on a scalar. A scalar *domain* is a subclass of
:class:`Symbolic` that says what applying an operation means:

* :class:`~scigrad.jit._expr.Expr` records an expression DAG (hash-consed, simplified) that
  becomes compiled code;
* the sparsity domains record which inputs each scalar depends on.

Every operation reaches the domain through one method, ``Symbolic.apply(name, args,
dtype)``, where ``name`` is the primitive's name (``"add"``, ``"sin"``, ``"where"``, ...),
``args`` mixes symbolic scalars and plain numbers, and ``dtype`` is the result's NumPy dtype.
Operations on plain numbers only never reach a domain: they are folded to numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.graph import TracedControlFlowError

__all__ = ["Symbolic", "is_symbolic"]

_F64 = np.dtype(np.float64)
_BOOL = np.dtype(bool)


class Symbolic:
    """Base class of symbolic scalar domains: Python operators route to ``apply``."""

    __slots__ = ()

    @classmethod
    def apply(cls, name: str, args: tuple, dtype: np.dtype) -> Any:
        raise NotImplementedError

    # NumPy's object loops (sum, matmul, add.at, cumsum, ...) use the Python operators.
    def _op(self, name: str, a: Any, b: Any) -> Any:
        return type(self).apply(name, (a, b), _result_dtype(a, b))

    def __add__(self, o: Any) -> Any:
        return self._op("add", self, o)

    def __radd__(self, o: Any) -> Any:
        return self._op("add", o, self)

    def __sub__(self, o: Any) -> Any:
        return self._op("subtract", self, o)

    def __rsub__(self, o: Any) -> Any:
        return self._op("subtract", o, self)

    def __mul__(self, o: Any) -> Any:
        return self._op("multiply", self, o)

    def __rmul__(self, o: Any) -> Any:
        return self._op("multiply", o, self)

    def __truediv__(self, o: Any) -> Any:
        return type(self).apply("divide", (self, o), _F64)

    def __rtruediv__(self, o: Any) -> Any:
        return type(self).apply("divide", (o, self), _F64)

    def __pow__(self, o: Any) -> Any:
        return self._op("power", self, o)

    def __rpow__(self, o: Any) -> Any:
        return self._op("power", o, self)

    def __neg__(self) -> Any:
        return type(self).apply("negative", (self,), self.dtype)

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return type(self).apply("absolute", (self,), self.dtype)

    def __lt__(self, o: Any) -> Any:
        return type(self).apply("less", (self, o), _BOOL)

    def __le__(self, o: Any) -> Any:
        return type(self).apply("less_equal", (self, o), _BOOL)

    def __gt__(self, o: Any) -> Any:
        return type(self).apply("greater", (self, o), _BOOL)

    def __ge__(self, o: Any) -> Any:
        return type(self).apply("greater_equal", (self, o), _BOOL)

    def __bool__(self) -> bool:
        raise TracedControlFlowError(
            "A compiled function branched on a traced value. Use `scigrad.numpy.where` or "
            "`sg.cond` for data-dependent choices."
        )

    # Identity-based hashing keeps NumPy's object loops and hash-consing tables simple.
    __hash__ = object.__hash__

    @property
    def dtype(self) -> np.dtype:
        raise NotImplementedError


def is_symbolic(x: Any) -> bool:
    return isinstance(x, Symbolic)


def _result_dtype(a: Any, b: Any) -> np.dtype:
    da = a.dtype if isinstance(a, Symbolic | np.generic) else None
    db = b.dtype if isinstance(b, Symbolic | np.generic) else None
    if da is None:
        return db if db is not None else np.result_type(a, b)
    if db is None:
        # A Python number is weakly typed: it does not widen the array's dtype (NumPy 2).
        if da.kind in "biu" and isinstance(b, float):
            return _F64
        return da
    return np.result_type(da, db)
