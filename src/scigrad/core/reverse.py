"""Eager reverse mode: a tape of primitive applications, replayed backwards.

Forward: every primitive applied to this trace's tracers is evaluated at once and appended
to ``tape`` as ``(primitive, parent ids, args, params, output id(s), ans)``. Each tracer is a
numbered variable of the tape; the tape refers to variables by number only, so it holds no
reference back to the tracers (no reference cycles, nothing for the garbage collector).
Python control flow just runs.

Backward: the tape is walked in reverse (creation order is a topological order), cotangents
accumulate per variable, and each primitive's VJP rules map output cotangents to input
cotangents. Rules are scigrad operations, so if the cotangents or the saved inputs are
traced by an enclosing transformation, the backward pass is itself differentiated.

A tape can be replayed many times with different output cotangents (``vjp`` returns a
reusable pullback; ``jacrev`` uses one forward pass for all rows).
"""

from __future__ import annotations

from typing import Any

from .graph import TracedControlFlowError, rule_needs_values
from .primitive import Tracer, zeros_like
from .trace import Trace

__all__ = ["ReverseTrace", "RTracer", "backward_pass"]


class RTracer(Tracer):
    """A value recorded on a reverse-mode tape: variable number ``id`` of its trace."""

    __slots__ = ("primal", "id")

    def __init__(self, trace: ReverseTrace, primal: Any, id: int) -> None:
        self._trace = trace
        self.primal = primal
        self.id = id


class _Closure:
    """Tape entry 'primitive' for custom rules: the VJP is a closure saved with the entry."""

    name = "custom_vjp_call"
    multiple_results = True


_closure = _Closure()


class ReverseTrace(Trace):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.tape: list[tuple] = []
        self.nvars = 0

    def new_var(self, x: Any) -> RTracer:
        t = RTracer(self, x, self.nvars)
        self.nvars += 1
        return t

    def _unwrap(self, args: tuple) -> tuple[list, list]:
        # Explicit loops: on Python 3.11 a comprehension costs a function call, and this is
        # the innermost loop of eager differentiation.
        vals, parents = [], []
        for a in args:
            if type(a) is RTracer and a._trace is self:
                vals.append(a.primal)
                parents.append(a.id)
            else:
                vals.append(a)
                parents.append(None)
        return vals, parents

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        # The innermost loop of eager differentiation: unwrapping is inlined and written as
        # an explicit loop (a comprehension costs a function call on Python 3.11).
        vals, parents = [], []
        for a in args:
            if type(a) is RTracer and a._trace is self:
                vals.append(a.primal)
                parents.append(a.id)
            else:
                vals.append(a)
                parents.append(None)
        # At level 0 nothing underneath can be traced: evaluate directly.
        ans = prim.impl(*vals, **params) if self.level == 0 else prim.bind(*vals, **params)
        if prim.nondiff:
            return ans
        n = self.nvars
        if prim.multiple_results:
            out: Any = tuple(RTracer(self, a, n + i) for i, a in enumerate(ans))
            self.nvars = n + len(ans)
            out_id: Any = tuple(range(n, n + len(ans)))
        else:
            out = RTracer(self, ans, n)
            self.nvars = n + 1
            out_id = n
        self.tape.append((prim, parents, vals, params, out_id, ans))
        return out

    def _record_closure(self, parents: list, vals: list, flat_ans: list, tree: Any, pullback):
        out = [self.new_var(a) for a in flat_ans]
        out_id = tuple(o.id for o in out)
        self.tape.append((_closure, parents, vals, {"pullback": pullback}, out_id, flat_ans))
        return tree.unflatten(out)

    def process_custom_vjp(self, fn: Any, args: tuple) -> Any:
        vals, parents = self._unwrap(args)
        ans, residuals = fn.fwd(*vals)
        flat_ans, tree = fn.flatten_output(ans)

        def pullback(cts: tuple, needs: list) -> list:
            return fn.bwd_flat(residuals, tree, cts, len(vals))

        return self._record_closure(parents, vals, flat_ans, tree, pullback)

    def process_custom_jvp(self, fn: Any, args: tuple) -> Any:
        vals, parents = self._unwrap(args)
        flat_ans, tree = fn.flatten_output(fn(*vals))

        def pullback(cts: tuple, needs: list) -> list:
            return fn.transpose_jvp(vals, tree, cts)

        return self._record_closure(parents, vals, flat_ans, tree, pullback)


def backward_pass(tape: list[tuple], cts: list) -> list:
    """Propagate the cotangents ``cts`` (a list indexed by variable id, None for zero) from
    the outputs back through ``tape``; on return ``cts`` holds the cotangents of the inputs.
    """
    for prim, parents, vals, params, out, ans in reversed(tape):
        try:
            if prim.multiple_results:
                g = [cts[o] for o in out]
                if all(c is None for c in g):
                    continue
                g = tuple(zeros_like(a) if c is None else c for c, a in zip(g, ans, strict=True))
            else:
                g = cts[out]
                if g is None:
                    continue
                cts[out] = None  # free intermediate cotangents as soon as they are used
            if prim is _closure:
                contributions = params["pullback"](g, [p is not None for p in parents])
            elif prim.vjp_joint is not None:
                needs = [p is not None for p in parents]
                contributions = prim.vjp_joint(g, ans, needs, *vals, **params)
            else:
                vjps = prim.vjps
                for i, p in enumerate(parents):
                    if p is None:
                        continue
                    rule = vjps[i] if i < len(vjps) else prim.vjp_rule(i)
                    c = rule(g, ans, *vals, **params)
                    if c is not None:
                        prev = cts[p]
                        cts[p] = c if prev is None else prev + c
                continue
            for p, c in zip(parents, contributions, strict=False):
                if p is None or c is None:
                    continue
                prev = cts[p]
                cts[p] = c if prev is None else prev + c
        except TracedControlFlowError as exc:  # a rule inspected values in a captured graph
            raise rule_needs_values(exc, prim, "derivative (VJP)") from exc
    return cts
