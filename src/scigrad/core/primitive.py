"""Primitives: the operations every interpreter understands.

A primitive bundles, in one place, everything scigrad knows about an operation:

* ``impl``   -- evaluation on plain NumPy/SciPy values;
* ``shape``  -- the shape rule: output ``ShapeDtype`` from input ``ShapeDtype``s;
* ``jvps``   -- forward-mode rules, one per positional argument, or one joint ``jvp``;
* ``vjps``   -- reverse-mode rules, one per positional argument, or one joint ``vjp``;
* ``batch``  -- the batching rule used by ``vmap`` (optional: see :mod:`scigrad.core.batching`).

Arrays are positional arguments; static metadata (axes, shapes, indices) are keyword
parameters. Rules are written with scigrad operations, so a rule applied to traced values
is itself traced: that is what makes derivatives nest.

Calling a primitive with no traced argument costs one type check per argument before the
NumPy call; with traced arguments the call is handed to the innermost active trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Primitive", "ShapeDtype", "Tracer", "find_top_trace", "primitives", "zeros_like"]

#: Every primitive by name, for documentation, coverage tests and error messages.
primitives: dict[str, Primitive] = {}


@dataclass(frozen=True, slots=True)
class ShapeDtype:
    """The abstract value of an array: what a shape rule consumes and produces.

    Shape rules receive a ``ShapeDtype`` for every array argument and Python scalars as they
    are (they are "weak" in NumPy's type promotion, so they must not be given a dtype).
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @classmethod
    def of(cls, x: Any) -> ShapeDtype:
        if isinstance(x, Tracer):
            return cls(x.shape, x.dtype)
        x = np.asarray(x)
        return cls(x.shape, x.dtype)


class Tracer:
    """A value being transformed by a trace. Subclasses add the per-trace payload.

    Operators, methods and NumPy's dispatch protocols are attached by
    :mod:`scigrad.numpy` (see ``_tracer_methods``) so that the core does not depend on
    the NumPy namespace.
    """

    __slots__ = ("_trace",)
    # Let NumPy hand mixed ndarray/Tracer expressions to us.
    __array_priority__ = 1000

    @property
    def primal(self) -> Any:
        """The value this tracer stands for, one level down (may itself be traced)."""
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.primal)

    @property
    def dtype(self) -> np.dtype:
        return self.primal.dtype if hasattr(self.primal, "dtype") else np.result_type(self.primal)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def concrete(self) -> Any:
        """The plain NumPy value under every level of tracing (no derivative attached)."""
        v = self.primal
        while isinstance(v, Tracer):
            v = v.primal
        return v

    def __bool__(self) -> bool:
        # Python control flow on concrete values is allowed in eager mode.
        return bool(self.concrete())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.concrete()!r})"

    def __format__(self, spec: str) -> str:
        return format(self.concrete(), spec)


def _raise_concretization(self: Tracer, *args: Any, **kwargs: Any) -> Any:
    raise TypeError(
        "A traced value was converted to a plain NumPy value or Python number "
        "(float(), int(), np.asarray(), or a write into a NumPy array such as "
        "`a[i] = x`). That would silently drop its derivative. Keep the computation "
        "in scigrad operations; build arrays functionally with `x.at[idx].set(v)`, "
        "`scigrad.numpy.stack` or `scigrad.numpy.concatenate`; or use "
        "`scigrad.stop_gradient(x)` if no derivative is wanted."
    )


for _name in ("__float__", "__int__", "__complex__", "__index__", "__array__"):
    setattr(Tracer, _name, _raise_concretization)
# NumPy looks this up before __array__ when converting or assigning slices.
Tracer.__array_interface__ = property(_raise_concretization)  # type: ignore[attr-defined]


def zeros_like(x: Any) -> np.ndarray:
    """Plain zeros with the shape and dtype of ``x`` (traced or not): a constant."""
    shape = x.shape if hasattr(x, "shape") else np.shape(x)
    dtype = x.dtype if isinstance(getattr(x, "dtype", None), np.dtype) else np.result_type(x)
    return np.zeros(shape, dtype)


def find_top_trace(args: Sequence[Any]) -> Any:
    """The innermost (highest-level) trace among ``args``, or None if nothing is traced."""
    top = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if top is None or t.level > top.level:
                top = t
    return top


def _missing_rule(kind: str) -> Callable:
    def rule(*args, prim: Primitive, argnum: int, **params):
        raise NotImplementedError(
            f"scigrad has no {kind} rule for argument {argnum} of primitive '{prim.name}'. "
            f"Add one with `scigrad.core.primitive.primitives['{prim.name}']"
            f".def{kind.lower()}(...)`, or wrap the function in `scigrad.custom_vjp`."
        )

    return rule


class Primitive:
    """An operation with its evaluation, shape rule and derivative rules.

    Example
    -------
    >>> import numpy as onp
    >>> from scigrad.core import Primitive
    >>> cube = Primitive("cube", lambda x: x**3, shape=lambda x: x)
    >>> cube.defjvp(lambda t, ans, x: t * 3 * x**2)
    >>> cube.defvjp(lambda g, ans, x: g * 3 * x**2)
    >>> float(cube.bind(onp.float64(2.0)))
    8.0
    """

    __slots__ = (
        "name",
        "impl",
        "shape_rule",
        "jvps",
        "jvp_joint",
        "vjps",
        "vjp_joint",
        "batch",
        "nondiff",
        "multiple_results",
        "bind",
    )

    def __init__(
        self,
        name: str,
        impl: Callable[..., Any],
        *,
        shape: Callable[..., Any] | None = None,
        nondiff: bool = False,
        multiple_results: bool = False,
    ) -> None:
        self.name = name
        self.impl = impl
        self.shape_rule = shape
        self.jvps: tuple[Callable, ...] = ()
        self.jvp_joint: Callable | None = None
        self.vjps: tuple[Callable, ...] = ()
        self.vjp_joint: Callable | None = None
        #: Batching rule ``rule(vals, dims, **params) -> (out, out_dim)``; None: the generic one.
        self.batch: Callable | None = None
        self.nondiff = nondiff
        self.multiple_results = multiple_results
        #: Apply the primitive: the public function of the operation (``sin = sin_p.bind``).
        self.bind = self._make_caller()
        primitives[name] = self

    def _make_caller(self) -> Callable[..., Any]:
        impl = self.impl
        prim = self

        # The fast path: a type check per argument, then straight to NumPy.
        def call(*args: Any, **params: Any) -> Any:
            for a in args:
                if isinstance(a, Tracer):
                    if len(args) == 1:
                        return a._trace.process(prim, args, params)
                    return find_top_trace(args).process(prim, args, params)
            return impl(*args, **params)

        call.__name__ = self.name
        call.__qualname__ = self.name
        call.primitive = self  # type: ignore[attr-defined]
        return call

    # -- rule registration -------------------------------------------------------------
    def defjvp(self, *rules: Callable | None) -> None:
        """One forward rule per positional argument: ``rule(tangent, ans, *args, **params)``.

        Each returns the tangent of the output (already of the output's shape) that the
        argument's tangent contributes. ``None`` marks an argument with no derivative.
        """
        self.jvps = tuple(self._or_missing(r, "JVP", i) for i, r in enumerate(rules))

    def defjvp_joint(self, rule: Callable) -> None:
        """A joint forward rule ``rule(tangents, ans, *args, **params)``; zero tangents: None."""
        self.jvp_joint = rule

    def defvjp(self, *rules: Callable | None) -> None:
        """One reverse rule per positional argument: ``rule(g, ans, *args, **params)``.

        Each returns the cotangent of that argument (of its shape and dtype), or None for zero.
        """
        self.vjps = tuple(self._or_missing(r, "VJP", i) for i, r in enumerate(rules))

    def defvjp_joint(self, rule: Callable) -> None:
        """A joint reverse rule ``rule(g, ans, needs, *args, **params)`` returning one
        cotangent per argument; ``needs[i]`` says whether argument ``i`` wants one. Use it
        when arguments share work (a factorization, an adjoint solve)."""
        self.vjp_joint = rule

    def defbatch(self, rule: Callable) -> None:
        """The batching rule of ``vmap``: ``rule(vals, dims, **params) -> (out, out_dim)``.

        ``vals`` are the positional arguments, ``dims[i]`` the batch axis of ``vals[i]``
        (None: not batched; at least one is batched); the rule returns the batched result
        and its batch axis (tuples of both for multiple results). Write it with scigrad
        operations, like the other rules. Without one, a primitive whose shape rule is a
        registered broadcasting rule is batched by broadcasting, and any other by a loop
        over the batch (correct, slow): see :mod:`scigrad.core.batching`.
        """
        self.batch = rule

    def _or_missing(self, rule: Callable | None, kind: str, argnum: int) -> Callable:
        if rule is not None:
            return rule
        missing = _missing_rule(kind)
        return lambda *a, **p: missing(*a, prim=self, argnum=argnum, **p)

    def jvp_rule(self, argnum: int) -> Callable:
        if argnum < len(self.jvps):
            return self.jvps[argnum]
        return self._or_missing(None, "JVP", argnum)

    def vjp_rule(self, argnum: int) -> Callable:
        if argnum < len(self.vjps):
            return self.vjps[argnum]
        return self._or_missing(None, "VJP", argnum)

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"
