"""Two symbolic scalar domains that record which inputs each value depends on.

Sparsity detection lowers a captured graph (as ``sg.jit`` does) to NumPy object arrays of
symbolic scalars, here :class:`DepNode` subclasses. A node does not hold its dependency set:
it records the *operation class* of the scalar operation that made it and its operands, and
the sets are computed afterwards in one pass over the recorded nodes (``_closure``), where
the number of references to each node is known. That keeps a reduction such as ``sum`` over
``n`` entries -- a chain of ``n`` additions whose partial sums depend on ever more inputs --
linear in ``n`` instead of quadratic.

Operation classes (what a node contributes):

* ``LEAF``: input entry ``index``;
* ``LIN``: union of its operands' dependencies (linear or piecewise-linear operations:
  ``add``, ``subtract``, ``where``'s branches, ``maximum``, ``absolute`` ...);
* ``MUL``: ``a * b``: union, and second-order pairs ``deps(a) x deps(b)``;
* ``DIV``: ``a / b``: union, and pairs ``deps(a) x deps(b)`` and ``deps(b) x deps(b)``;
* ``NONLIN``: any other differentiable operation: union, and all pairs of the union;
* ``EMPTY``: no dependency (comparisons, ``sign``, ``floor``, ``x * 0``, integer casts,
  ``stop_gradient``): a value unknown at detection time but with zero derivative.

:class:`JacobianDeps` records first-order dependencies only (every differentiable operation
is a union, so single-operand operations return their operand unchanged); :class:`HessianDeps`
records the classes above.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import primitives
from ..jit._symbolic import Symbolic

__all__ = [
    "DIV",
    "EMPTY",
    "LEAF",
    "LIN",
    "MUL",
    "NONLIN",
    "DepNode",
    "HessianDeps",
    "JacobianDeps",
    "recording",
]

LEAF, LIN, MUL, DIV, NONLIN, EMPTY = range(6)

# Classes of scalar operations, by primitive (or operator) name.
# (The first three are plain unions in the Jacobian domain.)
_LINEAR, _NONLINEAR, _POWER, _MULTIPLY, _DIVIDE, _WHERE, _CAST, _ZERO = range(8)
_DONE = -1  # ``_prologue``: the result is already known

#: Linear or piecewise-linear operations: their second derivatives vanish (almost everywhere).
_LINEAR_NAMES = frozenset(
    {
        "add",
        "subtract",
        "negative",
        "positive",
        "absolute",
        "maximum",
        "minimum",
        "fmax",
        "fmin",
        "remainder",
        "fmod",
        "deg2rad",
        "rad2deg",
        "real",
        "conj",
        "conjugate",
        "copy",
    }
)
_SPECIAL = {
    "multiply": _MULTIPLY,
    "divide": _DIVIDE,
    "true_divide": _DIVIDE,
    "power": _POWER,
    "where": _WHERE,
    "astype": _CAST,
}
_CLASS_CACHE: dict[str, int] = {}


def _op_class(name: str) -> int:
    cls = _CLASS_CACHE.get(name)
    if cls is None:
        if name in _SPECIAL:
            cls = _SPECIAL[name]
        elif name in _LINEAR_NAMES:
            cls = _LINEAR
        else:
            prim = primitives.get(name)
            cls = _ZERO if prim is not None and prim.nondiff else _NONLINEAR
        _CLASS_CACHE[name] = cls
    return cls


class _Recorder:
    """The nodes recorded by one detection, in creation order (operands before results)."""

    active: list | None = None


class recording:
    """``with recording() as nodes:`` collects the nodes created by the domains."""

    def __enter__(self) -> list:
        self._outer = _Recorder.active
        self.nodes: list = []
        _Recorder.active = self.nodes
        return self.nodes

    def __exit__(self, *exc: Any) -> None:
        _Recorder.active = self._outer


class DepNode(Symbolic):
    """A symbolic scalar of a sparsity domain: an operation class and its operands."""

    __slots__ = ("kind", "kids", "index", "_dtype", "refs", "deps", "paired")

    def __init__(self, kind: int, kids: tuple, dtype: np.dtype, index: int = -1) -> None:
        self.kind = kind
        self.kids = kids
        self.index = index
        self._dtype = dtype
        self.refs = 0  # references from reachable nodes and outputs (set by ``_closure``)
        self.deps: Any = None  # the dependency set, while ``_closure`` needs it
        self.paired = False  # all pairs of ``deps`` already emitted (``_closure``)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def __repr__(self) -> str:
        names = ("leaf", "lin", "mul", "div", "nonlin", "empty")
        return f"{type(self).__name__}({names[self.kind]}, {len(self.kids)} operands)"

    @classmethod
    def leaf(cls, index: int, dtype: np.dtype) -> DepNode:
        node = cls(LEAF, (), dtype, index)
        _Recorder.active.append(node)
        return node

    @classmethod
    def empty(cls, dtype: np.dtype) -> DepNode:
        """A value without dependencies (not recorded: it has no operands)."""
        return cls(EMPTY, (), dtype)

    @classmethod
    def _node(cls, kind: int, kids: tuple, dtype: np.dtype) -> DepNode:
        node = cls(kind, kids, dtype)
        _Recorder.active.append(node)
        return node

    @classmethod
    def _union(cls, args: tuple, dtype: np.dtype, kind: int = LIN) -> Any:
        """The node depending on the dependent operands of ``args`` (a union)."""
        kids = [a for a in args if isinstance(a, DepNode) and a.kind != EMPTY]
        if not kids:
            return cls.empty(dtype)
        if len(kids) == 1:
            return kids[0] if kind == LIN else cls._node(kind, (kids[0],), dtype)
        if len(kids) == 2:
            if kids[0] is kids[1]:
                return kids[0] if kind == LIN else cls._node(kind, (kids[0],), dtype)
            return cls._node(kind, tuple(kids), dtype)
        return cls._node(kind, tuple(dict.fromkeys(kids)), dtype)

    @classmethod
    def _prologue(cls, name: str, args: tuple, dtype: np.dtype) -> tuple[int, Any]:
        """``(operation class, operands)``, or ``(_DONE, result)`` when the result is known
        without the domain's own rules (shared by both domains)."""
        op = _CLASS_CACHE.get(name)
        if op is None:
            op = _op_class(name)
        if op == _ZERO:
            return _DONE, cls.empty(dtype)
        if op == _CAST:
            if dtype.kind not in "fc":
                return _DONE, cls.empty(dtype)
            return _LINEAR, args[:1]
        if op == _WHERE:
            c, a, b = args[:3]
            if not isinstance(c, DepNode):  # a known condition selects one branch
                pick = a if c else b
                return _DONE, pick if isinstance(pick, DepNode) else dtype.type(pick)
            return _LINEAR, (a, b)
        if op == _MULTIPLY:
            a, b = args[:2]
            if _is_zero(a) or _is_zero(b):
                return _DONE, cls.empty(dtype)
        elif op == _DIVIDE and _is_zero(args[0]):
            return _DONE, cls.empty(dtype)
        return op, args


def _is_zero(x: Any) -> bool:
    return not isinstance(x, Symbolic) and not isinstance(x, str) and x == 0


def _dependent(x: Any) -> bool:
    return isinstance(x, DepNode) and x.kind != EMPTY


class JacobianDeps(DepNode):
    """First-order dependencies: the Jacobian's sparsity pattern."""

    __slots__ = ()

    @classmethod
    def apply(cls, name: str, args: tuple, dtype: np.dtype) -> Any:
        op = _CLASS_CACHE.get(name)
        if op is None:
            op = _op_class(name)
        if op <= _POWER:  # the common case, inlined: a union
            kids = [a for a in args if a.__class__ is cls and a.kind != EMPTY]
            if len(kids) == 1:
                return kids[0]
            if len(kids) == 2 and kids[0] is not kids[1]:
                node = cls(LIN, (kids[0], kids[1]), dtype)
                _Recorder.active.append(node)
                return node
            return cls._union(kids, dtype)
        op, rest = cls._prologue(name, args, dtype)
        if op == _DONE:
            return rest
        return cls._union(rest, dtype)


class HessianDeps(DepNode):
    """First-order dependencies and second-order interactions: the Hessian's pattern."""

    __slots__ = ()

    @classmethod
    def apply(cls, name: str, args: tuple, dtype: np.dtype) -> Any:
        op, rest = cls._prologue(name, args, dtype)
        if op == _DONE:
            return rest
        if op == _LINEAR:
            kids = [a for a in rest if a.__class__ is cls and a.kind != EMPTY]
            if len(kids) == 2 and kids[0] is not kids[1]:  # the common case, inlined
                node = cls(LIN, (kids[0], kids[1]), dtype)
                _Recorder.active.append(node)
                return node
            return cls._union(kids, dtype)
        if op == _MULTIPLY or op == _DIVIDE or op == _POWER:
            a, b = rest[:2]
            da, db = _dependent(a), _dependent(b)
            if not db:
                if op == _POWER and not isinstance(b, Symbolic):
                    if b == 1:
                        return a
                    if b == 0:
                        return cls.empty(dtype)
                    return cls._union((a,), dtype, NONLIN)
                if op == _POWER:  # a ** (value without dependencies)
                    return cls._union((a,), dtype, NONLIN)
                return cls._union((a,), dtype)  # scaling by a constant: linear
            if not da:  # c * b is linear; c / b and c ** b are not
                return cls._union((b,), dtype, LIN if op == _MULTIPLY else NONLIN)
            if a is b or op == _POWER:
                return cls._union((a, b), dtype, NONLIN)
            return cls._node(MUL if op == _MULTIPLY else DIV, (a, b), dtype)
        return cls._union(rest, dtype, NONLIN)
