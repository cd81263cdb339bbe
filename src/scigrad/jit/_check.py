"""Checking the compiler's lowering against eager evaluation.

``check_lowering(f, args)`` captures ``f``, its VJP and its JVP, lowers each graph to the
simplified expression DAG that code generation compiles, evaluates the DAG in Python with
the primitives' own implementations, and compares with eager scigrad. It is how the whole
check_grads suite also runs "through jit" (see tests/conftest.py) without paying a numba
compilation per test; the generated code for each scalar operation is checked separately.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.graph import make_graph
from ..core.primitive import primitives
from ..core.transforms import jvp, vjp
from ..core.tree import tree_flatten, tree_map
from ._api import _symbolic_inputs
from ._expr import Expr, ExprBuilder
from ._lower import lower_graph

__all__ = ["check_lowering", "evaluate_exprs"]


def evaluate_exprs(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray]) -> list:
    """Evaluate object arrays of expressions on concrete flat ``inputs``."""
    memo: dict[int, Any] = {}

    def value(e: Any) -> Any:
        if not isinstance(e, Expr):
            return e
        v = memo.get(e.serial)
        if v is not None:
            return v
        # Iterative post-order: derivative DAGs can be deeper than Python's recursion limit.
        stack = [e]
        while stack:
            node = stack[-1]
            pending = [a for a in node.args if isinstance(a, Expr) and a.serial not in memo]
            if node.op != "input" and pending:
                stack.extend(pending)
                continue
            stack.pop()
            memo[node.serial] = _apply(node, inputs, memo)
        return memo[e.serial]

    return [np.array([value(e) for e in o.flat], dtype=float).reshape(o.shape) for o in outputs]


def _apply(node: Expr, inputs: Sequence[np.ndarray], memo: dict) -> Any:
    if node.op == "input":
        k, *index = node.args
        return np.asarray(inputs[k])[tuple(index)]
    args = [memo[a.serial] if isinstance(a, Expr) else a for a in node.args]
    if node.op == "astype":
        return node.dtype.type(args[0])
    with np.errstate(all="ignore"):
        return node.dtype.type(primitives[node.op].impl(*args))


def _compare(fun: Callable, args: tuple, where: str, rtol: float) -> set[str]:
    graph = make_graph(fun, *args)
    flat_in = tree_flatten(args)[0]
    with ExprBuilder():
        lowered = lower_graph(graph, _symbolic_inputs([v.aval for v in graph.invars]))
    got = evaluate_exprs(lowered, [np.asarray(x) for x in flat_in])
    want = [np.asarray(w, dtype=float) for w in tree_flatten(fun(*args))[0]]
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        if not np.allclose(g, w, rtol=rtol, atol=rtol * scale, equal_nan=True):
            raise AssertionError(
                f"check_lowering: {where} output {k} differs from eager evaluation: "
                f"max abs difference {np.max(np.abs(g - w))}"
            )
    return {e.prim.name for e in graph.eqns}


def check_lowering(f: Callable, args: Sequence[Any], *, rtol: float = 1e-9, seed: int = 0) -> set:
    """Compare the lowered value, VJP and JVP of ``f`` at ``args`` with eager evaluation;
    returns the names of the primitives checked. Raises ``NotCompilableError`` (naming the
    primitive) when ``f`` cannot be compiled, and ``AssertionError`` on a mismatch."""
    args = tuple(args)
    rng = np.random.default_rng(seed)
    out = f(*args)
    flat_out, out_tree = tree_flatten(out)
    cts = [rng.standard_normal(np.shape(o)) for o in flat_out]
    tangents = tree_map(lambda x: rng.standard_normal(np.shape(x)), args)
    checked = _compare(f, args, "value", rtol)
    out_ct = out_tree.unflatten(cts)
    checked |= _compare(lambda *a: vjp(f, *a)[1](out_ct), args, "VJP", rtol)
    checked |= _compare(lambda *a: jvp(f, a, tangents)[1], args, "JVP", rtol)
    return checked
