"""Graph capture: run a function on abstract values and record the primitives it applies.

A :class:`Graph` is a straight-line program over the same primitives eager mode uses
(the counterpart of a JAX jaxpr): input variables, equations ``outs = prim(inputs; params)``
in evaluation order, and outputs. ``make_graph`` records one by tracing with
:class:`GraphTrace`, whose tracers know only their shape and dtype, so Python control flow
on a traced value cannot be recorded and raises a clear error. Derivatives are captured by
tracing the transformed function (``make_graph(grad(f), ...)``): the reverse and forward
traces run on top of the graph trace and their rules, written with primitives, are recorded
like any other code.

``eval_graph`` interprets a graph by applying its primitives, so a graph runs on NumPy
values or under any outer transformation; compilers (``scigrad.jit``) lower it instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .primitive import Primitive, ShapeDtype, Tracer
from .trace import Trace, close_trace, open_trace
from .tree import tree_flatten, tree_unflatten

__all__ = [
    "Eqn",
    "Graph",
    "GraphTrace",
    "GraphTracer",
    "TracedControlFlowError",
    "Var",
    "rule_needs_values",
    "eval_graph",
    "make_graph",
]


class TracedControlFlowError(TypeError):
    """A traced value was needed as a concrete Python value while capturing a graph."""


def rule_needs_values(exc: TracedControlFlowError, prim: Any, kind: str) -> TracedControlFlowError:
    """``exc`` restated for a derivative rule of ``prim`` that inspects values."""
    if getattr(exc, "in_rule", False):
        return exc
    err = TracedControlFlowError(
        f"the {kind} rule of primitive '{getattr(prim, 'name', prim)}' needs concrete values "
        "(it chooses a formula by inspecting them), which a captured graph (sg.jit, "
        "sparsity detection) does not have: take this derivative without sg.jit."
    )
    err.in_rule = True  # type: ignore[attr-defined]
    return err


class Var:
    """A variable of a graph: an array known by its shape and dtype. Compared by identity."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapeDtype) -> None:
        self.aval = aval

    def __repr__(self) -> str:
        return f"Var({self.aval.shape}, {self.aval.dtype})"


@dataclass(slots=True)
class Eqn:
    """``outvars = prim(*inputs, **params)``; an input is a :class:`Var` or a constant."""

    prim: Primitive
    inputs: list
    params: dict
    outvars: list[Var]


@dataclass
class Graph:
    """A captured function of flat array inputs; ``outputs`` holds Vars or constants."""

    invars: list[Var]
    eqns: list[Eqn]
    outputs: list
    in_tree: Any = None
    out_tree: Any = None

    def __iter__(self) -> Iterator[Eqn]:
        return iter(self.eqns)

    def pretty(self) -> str:
        """A readable listing, one equation per line (for debugging and the docs)."""
        names: dict[int, str] = {}

        def name(x: Any) -> str:
            if isinstance(x, Var):
                return names.setdefault(id(x), f"v{len(names)}")
            return repr(x) if np.ndim(x) == 0 else f"const{np.shape(x)}"

        lines = [f"in  {', '.join(name(v) for v in self.invars)}"]
        for e in self.eqns:
            params = ", ".join(f"{k}={v!r}" for k, v in e.params.items())
            args = ", ".join(name(a) for a in e.inputs)
            outs = ", ".join(f"{name(v)}:{v.aval.dtype}{list(v.aval.shape)}" for v in e.outvars)
            lines.append(f"{outs} = {e.prim.name}({args}{'; ' + params if params else ''})")
        lines.append(f"out {', '.join(name(v) for v in self.outputs)}")
        return "\n".join(lines)


_CONTROL_FLOW_MESSAGE = (
    "A traced value was used where a concrete value is needed (Python `if`/`while` on an "
    "array value, bool(), float(), int(), np.asarray(), or a rule that inspects values) "
    "while scigrad was capturing a graph (sg.jit, sparsity detection). The graph is built "
    "for all input values, so it cannot follow one branch. Use `scigrad.numpy.where` or "
    "`sg.cond` for data-dependent choices, `sg.fori_loop` for loops, or mark the argument "
    "static with `static_argnums`."
)


class GraphTracer(Tracer):
    """A value being captured: a graph variable, known by its shape and dtype only."""

    __slots__ = ("var",)

    def __init__(self, trace: GraphTrace, var: Var) -> None:
        self._trace = trace
        self.var = var

    @property
    def primal(self) -> Any:
        raise TracedControlFlowError(_CONTROL_FLOW_MESSAGE)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.var.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.var.aval.dtype

    def concrete(self) -> Any:
        return self.primal

    def __repr__(self) -> str:
        return f"GraphTracer(shape={self.shape}, dtype={self.dtype})"


def _needs_value(self: GraphTracer, *args: Any, **kwargs: Any) -> Any:
    raise TracedControlFlowError(_CONTROL_FLOW_MESSAGE)


# Conversions to Python numbers or NumPy arrays need a value a captured graph does not have.
for _name in ("__float__", "__int__", "__complex__", "__index__", "__array__"):
    setattr(GraphTracer, _name, _needs_value)
GraphTracer.__array_interface__ = property(_needs_value)  # type: ignore[attr-defined]


class GraphTrace(Trace):
    """Records every primitive applied to its tracers as an :class:`Eqn`."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.eqns: list[Eqn] = []

    def _input(self, x: Any) -> Any:
        if isinstance(x, GraphTracer) and x._trace is self:
            return x.var
        if isinstance(x, Tracer):
            raise TracedControlFlowError(
                "The captured function uses a value traced by an enclosing transformation "
                "(it closes over it) -- pass that value as an argument instead."
            )
        return x

    def process(self, prim: Primitive, args: tuple, params: dict) -> Any:
        if prim.shape_rule is None:
            raise NotImplementedError(
                f"primitive '{prim.name}' has no shape rule, so it cannot be captured in a "
                "graph; give it one with Primitive(..., shape=rule)"
            )
        inputs = [self._input(a) for a in args]
        avals = [
            a.aval
            if isinstance(a, Var)
            else ShapeDtype.of(a)
            if isinstance(a, np.ndarray | np.generic)
            else a
            for a in inputs
        ]
        out = prim.shape_rule(*avals, **params)
        outs = list(out) if prim.multiple_results else [out]
        outvars = [Var(ShapeDtype(tuple(o.shape), np.dtype(o.dtype))) for o in outs]
        self.eqns.append(Eqn(prim, inputs, dict(params), outvars))
        tracers = [GraphTracer(self, v) for v in outvars]
        return tuple(tracers) if prim.multiple_results else tracers[0]

    # Custom rules are an eager-mode device: the graph records the function they wrap.
    def process_custom_vjp(self, fn: Any, args: tuple) -> Any:
        return fn.fun(*args)

    def process_custom_jvp(self, fn: Any, args: tuple) -> Any:
        return fn.fun(*args)


def make_graph(fun: Callable, *args: Any) -> Graph:
    """Capture ``fun(*args)`` as a :class:`Graph`. Arguments are pytrees whose leaves are
    arrays or :class:`ShapeDtype` placeholders; only their shapes and dtypes are used.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> from scigrad.core.graph import make_graph
    >>> print(make_graph(lambda x: np.sum(np.sin(x)), np.zeros(3)).pretty())
    in  v0
    v1:float64[3] = sin(v0)
    v2:float64[] = sum(v1; axis=None, keepdims=False)
    out v2
    """
    flat, in_tree = tree_flatten(args)
    avals = [x if isinstance(x, ShapeDtype) else ShapeDtype.of(x) for x in flat]
    trace = open_trace(GraphTrace)
    try:
        invars = [Var(a) for a in avals]
        out = fun(*tree_unflatten(in_tree, [GraphTracer(trace, v) for v in invars]))
    finally:
        close_trace(trace)
    flat_out, out_tree = tree_flatten(out)
    outputs = [trace._input(o) for o in flat_out]
    return Graph(invars, trace.eqns, outputs, in_tree, out_tree)


def eval_graph(graph: Graph, flat_args: Sequence[Any]) -> list:
    """Evaluate ``graph`` on flat arguments by applying its primitives (``prim.bind``), so
    the arguments may be NumPy values or tracers of an outer transformation."""
    env: dict[int, Any] = {id(v): x for v, x in zip(graph.invars, flat_args, strict=True)}

    def read(x: Any) -> Any:
        return env[id(x)] if isinstance(x, Var) else x

    for e in graph.eqns:
        out = e.prim.bind(*[read(a) for a in e.inputs], **e.params)
        if e.prim.multiple_results:
            for v, o in zip(e.outvars, out, strict=True):
                env[id(v)] = o
        else:
            env[id(e.outvars[0])] = out
    return [read(o) for o in graph.outputs]
