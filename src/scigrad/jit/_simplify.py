"""Array-level simplification of captured graphs: constant folding, common subexpressions
and dead code.

Derivative graphs repeat themselves: a Hessian by reverse-over-reverse replays the same
backward pass once per row, recomputing the same products of the forward values each time,
and a value whose derivative is wanted is often computed but never used. Removing that
before lowering shrinks the scalar code to compile, and the graphs that run interpreted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.graph import Eqn, Graph, Var

__all__ = ["simplify_graph"]

#: Constant arrays up to this size are compared by value when looking for repeated work.
_VALUE_KEY_LIMIT = 4096


def _key(x: Any) -> Any:
    """A hashable key standing for ``x`` (an input or a parameter); equal keys mean equal
    values. Arrays are keyed by their bytes when small, else by identity."""
    if isinstance(x, Var):
        return ("var", id(x))
    if isinstance(x, np.ndarray | np.generic):
        if x.size <= _VALUE_KEY_LIMIT and x.dtype != object:
            return ("array", x.shape, x.dtype.str, x.tobytes())
        return ("id", id(x))
    if isinstance(x, tuple | list):
        return (type(x).__name__, *(_key(v) for v in x))
    if isinstance(x, dict):
        return ("dict", *sorted((k, _key(v)) for k, v in x.items()))
    if isinstance(x, slice):
        return ("slice", x.start, x.stop, x.step)
    if isinstance(x, float):
        return ("float", x.hex())  # -0.0 and 0.0 differ; nan equals itself
    try:
        hash(x)
    except TypeError:
        return ("id", id(x))
    return (type(x).__name__, x)


def simplify_graph(graph: Graph) -> Graph:
    """An equivalent graph without repeated equations (same primitive, inputs and
    parameters), with equations on constants evaluated, and without equations the outputs
    do not need."""
    replace: dict[int, Any] = {}  # id(var) -> the var or constant standing for it

    def read(x: Any) -> Any:
        return replace.get(id(x), x) if isinstance(x, Var) else x

    seen: dict[Any, list[Var]] = {}
    eqns: list[Eqn] = []
    for e in graph.eqns:
        inputs = [read(a) for a in e.inputs]
        if not any(isinstance(a, Var) for a in inputs):
            out = e.prim.impl(*inputs, **e.params)  # constant folding
            outs = out if e.prim.multiple_results else (out,)
            for v, o in zip(e.outvars, outs, strict=True):
                replace[id(v)] = o
            continue
        key = (e.prim.name, _key(inputs), _key(e.params))
        earlier = seen.get(key)
        if earlier is not None:
            for v, w in zip(e.outvars, earlier, strict=True):
                replace[id(v)] = w
            continue
        seen[key] = e.outvars
        eqns.append(Eqn(e.prim, inputs, e.params, e.outvars))
    outputs = [read(o) for o in graph.outputs]

    # Dead code: keep the equations whose outputs are needed, walking backwards.
    needed = {id(o) for o in outputs if isinstance(o, Var)}
    live: list[Eqn] = []
    for e in reversed(eqns):
        if any(id(v) in needed for v in e.outvars):
            live.append(e)
            needed.update(id(a) for a in e.inputs if isinstance(a, Var))
    live.reverse()
    return Graph(graph.invars, live, outputs, graph.in_tree, graph.out_tree)
