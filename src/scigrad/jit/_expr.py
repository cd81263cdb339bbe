"""The expression domain: symbolic scalars that record a simplified expression DAG.

Expressions are hash-consed inside an :class:`ExprBuilder`: building the same operation on
the same operands twice returns the same node, which is common-subexpression elimination for
free. ``Expr.apply`` also applies the algebraic identities that derivative graphs are full of
(``x * 1``, ``x + 0``, ``x * 0``, ``--x``, ``where`` with a known condition), so the zero and
one cotangents of a generated gradient or Hessian vanish before any code is written.
Operations on numbers only are folded by the caller (see ``_lower``), never built.

``x * 0`` is simplified to ``0`` (as JAX's symbolic zeros do): a compiled derivative does
not propagate an ``inf`` or ``nan`` through a structurally zero term, where eager mode may.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._symbolic import Symbolic

__all__ = ["Expr", "ExprBuilder", "TooManyNodes"]

_COMMUTATIVE = frozenset({"add", "multiply", "maximum", "minimum", "equal", "not_equal"})


def _const_key(c: Any) -> tuple:
    if isinstance(c, bool | np.bool_):
        return ("b", bool(c))
    if isinstance(c, int | np.integer):
        return ("i", int(c))
    v = float(c)
    return ("f", v.hex())  # distinguishes 0.0 from -0.0, and keeps nan equal to itself


def _is_const(x: Any, value: float) -> bool:
    return not isinstance(x, Expr) and not isinstance(x, str) and x == value


class TooManyNodes(Exception):
    """A lowering built more expression nodes than its builder's limit."""


class ExprBuilder:
    """The hash-consing table of one lowering; ``with ExprBuilder():`` activates it.
    ``limit`` caps the number of distinct nodes (:class:`TooManyNodes` beyond it)."""

    active: ExprBuilder | None = None

    def __init__(self, limit: int | None = None) -> None:
        self.table: dict[tuple, Expr] = {}
        self.nodes: list[Expr] = []
        self.limit = limit

    def __enter__(self) -> ExprBuilder:
        self._outer = ExprBuilder.active
        ExprBuilder.active = self
        return self

    def __exit__(self, *exc: Any) -> None:
        ExprBuilder.active = self._outer

    def node(self, op: str, args: tuple, dtype: np.dtype) -> Expr:
        key = (op, tuple(a.serial if isinstance(a, Expr) else _const_key(a) for a in args), dtype)
        e = self.table.get(key)
        if e is None:
            if self.limit is not None and len(self.nodes) >= self.limit:
                raise TooManyNodes
            e = Expr(op, args, dtype, len(self.nodes))
            self.table[key] = e
            self.nodes.append(e)
        return e

    def input(self, argnum: int, index: tuple, dtype: np.dtype) -> Expr:
        """The symbolic element ``index`` of flat input ``argnum``."""
        return self.node("input", (argnum, *index), dtype)


class Expr(Symbolic):
    """A node of the expression DAG: ``op(*args)`` with NumPy dtype ``dtype``."""

    __slots__ = ("op", "args", "_dtype", "serial")

    def __init__(self, op: str, args: tuple, dtype: np.dtype, serial: int) -> None:
        self.op = op
        self.args = args
        self._dtype = dtype
        self.serial = serial

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def __repr__(self) -> str:
        return f"Expr#{self.serial}({self.op})"

    @classmethod
    def apply(cls, name: str, args: tuple, dtype: np.dtype) -> Any:
        simpler = _simplify(name, args, dtype)
        if simpler is not None:
            return simpler
        if name in _COMMUTATIVE and len(args) == 2:
            a, b = args
            if not isinstance(a, Expr) or (isinstance(b, Expr) and b.serial < a.serial):
                args = (b, a)
        return ExprBuilder.active.node(name, args, dtype)


def _is_number(x: Any) -> bool:
    return isinstance(x, float | np.floating) and np.isfinite(x)


def _exact_product(a: float, b: float) -> bool:
    return any(np.frexp(c)[0] in (0.5, -0.5) for c in (a, b))


def _negated(x: Any, dtype: np.dtype) -> bool:
    """``x`` is ``-u`` with ``u`` of ``dtype``."""
    return isinstance(x, Expr) and x.op == "negative" and _same_dtype(x.args[0], dtype)


def _same_dtype(x: Any, dtype: np.dtype) -> bool:
    return isinstance(x, Expr) and x.dtype == dtype


def _simplify(name: str, args: tuple, dtype: np.dtype) -> Any:
    """An equivalent existing operand or constant, or None to build the node."""
    if name == "add":
        a, b = args
        if _is_const(b, 0) and _same_dtype(a, dtype):
            return a
        if _is_const(a, 0) and _same_dtype(b, dtype):
            return b
        # Negations are absorbed: a + (-b) = a - b (exact in floating point).
        if _negated(b, dtype):
            return Expr.apply("subtract", (a, b.args[0]), dtype)
        if _negated(a, dtype):
            return Expr.apply("subtract", (b, a.args[0]), dtype)
    elif name == "subtract":
        a, b = args
        if _is_const(b, 0) and _same_dtype(a, dtype):
            return a
        if _is_const(a, 0) and _same_dtype(b, dtype):
            return Expr.apply("negative", (b,), dtype)
        if _negated(b, dtype):
            return Expr.apply("add", (a, b.args[0]), dtype)
    elif name == "multiply":
        a, b = args
        for x, y in ((a, b), (b, a)):
            if _is_const(y, 1) and _same_dtype(x, dtype):
                return x
            if _is_const(y, 0) and dtype.kind in "fiub":
                return dtype.type(0)
            if _is_const(y, -1) and _same_dtype(x, dtype):
                return Expr.apply("negative", (x,), dtype)
            if _is_number(y) and _same_dtype(x, dtype) and dtype.kind == "f":
                # Constant factors are kept positive with the sign as a negation outside,
                # so u * c and u * (-c) share one product, and the negation is absorbed by
                # the sum it feeds; (u * c1) * c2 = u * (c1 c2) when that product is exact
                # (one factor a power of two). All exact in floating point.
                if y < 0:
                    return Expr.apply("negative", (Expr.apply("multiply", (x, -y), dtype),), dtype)
                if _negated(x, dtype):
                    return Expr.apply(
                        "negative", (Expr.apply("multiply", (x.args[0], y), dtype),), dtype
                    )
                if x.op == "multiply" and _is_number(x.args[1]) and _exact_product(x.args[1], y):
                    return Expr.apply("multiply", (x.args[0], x.args[1] * y), dtype)
    elif name == "divide":
        if _is_const(args[1], 1) and _same_dtype(args[0], dtype):
            return args[0]
    elif name == "positive":
        if _same_dtype(args[0], dtype):
            return args[0]
    elif name == "negative":
        (a,) = args
        if isinstance(a, Expr) and a.op == "negative" and _same_dtype(a.args[0], dtype):
            return a.args[0]
    elif name == "power":
        a, b = args
        if _is_const(b, 1) and _same_dtype(a, dtype):
            return a
        if _is_const(b, 0):
            return dtype.type(1)
        if _is_const(b, 2):
            return Expr.apply("square", (a,), dtype)
    elif name == "where":
        c, a, b = args
        if not isinstance(c, Expr):
            return _cast(a if c else b, dtype)
        if a is b and _same_dtype(a, dtype):
            return a
    elif name == "astype":
        if _same_dtype(args[0], dtype):
            return args[0]
    return None


def _cast(x: Any, dtype: np.dtype) -> Any:
    if isinstance(x, Expr):
        return x if x.dtype == dtype else Expr.apply("astype", (x,), dtype)
    return dtype.type(x)
