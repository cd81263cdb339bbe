"""User-defined derivative rules (``custom_vjp``, ``custom_jvp``) and ``stop_gradient``.

A custom rule is a primitive defined at run time: the traces receive a small call object
that knows how to evaluate the function, run the user's rule, and move between the user's
pytrees and the flat lists of leaves the traces work with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .primitive import Primitive, find_top_trace, zeros_like
from .tree import tree_flatten, tree_map, tree_unflatten

__all__ = ["custom_vjp", "custom_jvp", "stop_gradient"]


class _Call:
    """One call of a custom function: the differentiable arguments as flat leaves."""

    def __init__(self, owner: Any, args: tuple) -> None:
        self.owner = owner
        nondiff = owner.nondiff_argnums
        self.static = {k: args[k] for k in nondiff}
        self.nondiff_args = tuple(args[k] for k in nondiff)
        self.diff_positions = [k for k in range(len(args)) if k not in nondiff]
        self.leaves, self.in_tree = tree_flatten(tuple(args[k] for k in self.diff_positions))

    def args(self, leaves: Sequence[Any]) -> tuple:
        diff = tree_unflatten(self.in_tree, leaves)
        full = dict(self.static)
        full.update(zip(self.diff_positions, diff, strict=True))
        return tuple(full[k] for k in range(len(full)))

    def diff_args(self, leaves: Sequence[Any]) -> tuple:
        return tree_unflatten(self.in_tree, leaves)

    @staticmethod
    def flatten_output(out: Any) -> tuple[list, Any]:
        return tree_flatten(out)

    def fun(self, *leaves: Any) -> Any:
        return self.owner.fun(*self.args(leaves))

    def __call__(self, *leaves: Any) -> Any:
        return self.owner(*self.args(leaves))

    def flat_cotangents(self, cts: Any, like: Sequence[Any]) -> list:
        """User cotangents (one pytree per differentiable argument, None for zero) as leaves."""
        cts = tuple(cts)
        if len(cts) != len(self.diff_positions):
            raise ValueError(
                f"custom rule of {self.owner.__name__} returned {len(cts)} cotangents for "
                f"{len(self.diff_positions)} differentiable arguments"
            )
        flat = []
        for arg, ct in zip(self.diff_args(like), cts, strict=True):
            leaves, spec = tree_flatten(arg)
            # Up to the primal's structure, so a None (zero) inside the cotangent keeps its
            # place instead of vanishing and shifting the leaves after it.
            flat.extend([None] * len(leaves) if ct is None else spec.flatten_up_to(ct))
        return flat


class _VJPCall(_Call):
    def fwd(self, *leaves: Any) -> tuple[Any, Any]:
        out = self.owner.fwd(*self.args(leaves))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(
                f"the fwd rule of {self.owner.__name__} must return (output, residuals)"
            )
        return out

    def bwd_flat(self, residuals: Any, out_tree: Any, cts: Sequence[Any], n: int) -> list:
        g = tree_unflatten(out_tree, cts)
        user = self.owner.bwd(*self.nondiff_args, residuals, g)
        if not isinstance(user, tuple):
            raise TypeError(f"the bwd rule of {self.owner.__name__} must return a tuple")
        return self.flat_cotangents(user, self.leaves)


class _JVPCall(_Call):
    def _rule(self, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
        return self.owner.jvp(*self.nondiff_args, self.diff_args(primals), self.diff_args(tangents))

    def jvp_flat(self, primals: list, tangents: list) -> tuple[Any, Any]:
        tangents = [
            zeros_like(p) if t is None else t for p, t in zip(primals, tangents, strict=True)
        ]
        return self._rule(primals, tangents)

    def transpose_jvp(self, vals: list, out_tree: Any, cts: Sequence[Any]) -> list:
        # The JVP rule is linear in the tangents, so its transpose is its VJP in them.
        from .transforms import vjp

        zeros = [zeros_like(v) for v in vals]
        _, pullback = vjp(lambda *t: self._rule(vals, t)[1], *zeros)
        return list(pullback(tree_unflatten(out_tree, cts)))


class custom_vjp:
    """A function with a user-defined reverse-mode rule (JAX's ``custom_vjp``).

    ``fwd(*args) -> (out, residuals)`` and ``bwd(*nondiff_args, residuals, g) -> tuple`` of
    cotangents, one per differentiable argument (None for zero). Forward mode
    differentiates the undecorated function. The rule is used at every nesting level; write
    ``bwd`` with scigrad operations for it to be differentiable in turn.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> @sg.custom_vjp
    ... def clipped_sqrt(x):
    ...     return np.sqrt(x)
    >>> clipped_sqrt.defvjp(lambda x: (np.sqrt(x), x),
    ...                     lambda x, g: (g * 0.5 / np.sqrt(np.maximum(x, 1e-12)),))
    >>> float(sg.grad(clipped_sqrt)(4.0))
    0.25
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()) -> None:
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None
        self.__name__ = getattr(fun, "__name__", "custom_vjp")
        self.__doc__ = fun.__doc__

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any) -> Any:
        if self.fwd is None:
            raise TypeError(f"{self.__name__}: call defvjp(fwd, bwd) before using it")
        call = _VJPCall(self, args)
        top = find_top_trace(call.leaves)
        if top is None:
            return self.fun(*args)
        return top.process_custom_vjp(call, tuple(call.leaves))


class custom_jvp:
    """A function with a user-defined forward-mode rule (JAX's ``custom_jvp``).

    ``jvp(*nondiff_args, primals, tangents) -> (out, tangent_out)``, linear in the tangents.
    Reverse mode transposes this rule (by reverse-differentiating it in the tangents), so
    one rule serves both modes.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> @sg.custom_jvp
    ... def softplus(x):
    ...     return np.log1p(np.exp(x))
    >>> @softplus.defjvp
    ... def _(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return softplus(x), t / (1 + np.exp(-x))
    >>> float(sg.grad(softplus)(0.0))
    0.5
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()) -> None:
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.jvp: Callable | None = None
        self.__name__ = getattr(fun, "__name__", "custom_jvp")
        self.__doc__ = fun.__doc__

    def defjvp(self, jvp: Callable) -> Callable:
        self.jvp = jvp
        return jvp

    def __call__(self, *args: Any) -> Any:
        if self.jvp is None:
            raise TypeError(f"{self.__name__}: call defjvp(rule) before using it")
        call = _JVPCall(self, args)
        top = find_top_trace(call.leaves)
        if top is None:
            return self.fun(*args)
        return top.process_custom_jvp(call, tuple(call.leaves))


stop_gradient_p = Primitive("stop_gradient", lambda x: x, shape=lambda x: x, nondiff=True)


def stop_gradient(x: Any) -> Any:
    """The value of ``x`` (a pytree) treated as a constant by every transformation.

    >>> import scigrad as sg
    >>> float(sg.grad(lambda x: x * sg.stop_gradient(x))(3.0))
    3.0
    """
    return tree_map(stop_gradient_p.bind, x)
