"""Forward mode: each traced value carries its tangent (``None`` is a symbolic zero)."""

from __future__ import annotations

from typing import Any

from .graph import TracedControlFlowError, rule_needs_values
from .primitive import Tracer
from .trace import Trace

__all__ = ["JVPTrace", "JTracer"]


class JTracer(Tracer):
    """A primal value together with its tangent."""

    __slots__ = ("primal", "tangent")

    def __init__(self, trace: JVPTrace, primal: Any, tangent: Any) -> None:
        self._trace = trace
        self.primal = primal
        self.tangent = tangent


class JVPTrace(Trace):
    def _unwrap(self, args: tuple) -> tuple[list, list]:
        own = [a if isinstance(a, JTracer) and a._trace is self else None for a in args]
        primals = [a if o is None else o.primal for a, o in zip(args, own, strict=True)]
        tangents = [None if o is None else o.tangent for o in own]
        return primals, tangents

    def _wrap(self, ans: Any, tangent: Any) -> Any:
        return ans if tangent is None else JTracer(self, ans, tangent)

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        primals, tangents = self._unwrap(args)
        # At level 0 nothing underneath can be traced: evaluate directly.
        ans = prim.impl(*primals, **params) if self.level == 0 else prim.bind(*primals, **params)
        if prim.nondiff:
            return ans
        try:
            if prim.jvp_joint is not None:
                t_out = prim.jvp_joint(tangents, ans, *primals, **params)
            else:
                t_out = None
                for i, t in enumerate(tangents):
                    if t is None:
                        continue
                    c = prim.jvp_rule(i)(t, ans, *primals, **params)
                    if c is not None:
                        t_out = c if t_out is None else t_out + c
        except TracedControlFlowError as exc:  # a rule inspected values in a captured graph
            raise rule_needs_values(exc, prim, "derivative (JVP)") from exc
        if prim.multiple_results:
            if t_out is None:
                return ans
            return tuple(self._wrap(a, t) for a, t in zip(ans, t_out, strict=True))
        return self._wrap(ans, t_out)

    def process_custom_jvp(self, fn: Any, args: tuple) -> Any:
        primals, tangents = self._unwrap(args)
        ans, t_out = fn.jvp_flat(primals, tangents)
        flat_ans, tree = fn.flatten_output(ans)
        flat_t, _ = fn.flatten_output(t_out)
        return tree.unflatten([self._wrap(a, t) for a, t in zip(flat_ans, flat_t, strict=True)])

    def process_custom_vjp(self, fn: Any, args: tuple) -> Any:
        # Forward mode differentiates the undecorated function (scigrad code like any other).
        return fn.fun(*args)
