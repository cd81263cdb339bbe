"""Batching: ``vmap``, the interpreter whose tracers carry a batch axis.

A :class:`BatchTracer` holds ``val``, an array (or a tracer of a lower level) with one
extra axis, the batch axis ``bdim``; the function being mapped sees only the per-example
value (``shape`` and ``dtype`` leave the batch axis out). Values without a batch axis are
not wrapped at all, so constants cost nothing.

``BatchTrace.process`` unwraps its own tracers and calls the primitive's batching rule
``rule(vals, dims, **params) -> (out, out_dim)`` (``dims[i]`` is the batch axis of
``vals[i]``, None for an unbatched value). The rule is found in this order:

1. ``prim.batch``, set with ``prim.defbatch(rule)`` next to the primitive's other rules;
2. the **broadcasting rule**, for primitives whose shape rule is registered in
   :data:`BROADCASTING_SHAPE_RULES` (NumPy's elementwise functions, comparisons, the
   ``scipy.special`` functions): batch axes are moved to the front and ranks aligned, so
   NumPy's broadcasting does the rest;
3. the **loop fallback**: the primitive is applied to each batch entry and the results are
   stacked. It is correct for every primitive (its derivatives included) but costs one
   call per batch entry, so the common primitives have rules of their own.

Rules are written with scigrad operations, so a batching rule applied to traced values is
recorded by the lower traces, and ``grad(vmap(f))``, ``vmap(grad(f))``, ``vmap(vmap(f))``
... compose in any order.

When the mapped function (or a derivative rule it runs) needs a *per-example concrete
value* -- Python control flow on a batched value, ``float(x)``/``np.asarray(x)``, or a rule
that inspects values such as the eigenvalue gaps of ``eigh``'s derivative -- a batched value
cannot give one. ``vmap`` then evaluates the function once per batch entry and stacks the
results instead: the same answer, at the cost of a Python loop.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optree

from .custom import stop_gradient_p
from .graph import TracedControlFlowError
from .primitive import Primitive, ShapeDtype, Tracer, find_top_trace, zeros_like
from .trace import Trace, close_trace, open_trace
from .tree import NAMESPACE, tree_flatten, tree_map

__all__ = [
    "BROADCASTING_SHAPE_RULES",
    "BatchTrace",
    "BatchTracer",
    "BatchedValueError",
    "align_batched",
    "batch_size",
    "broadcast_batched",
    "broadcasting_rule",
    "loop_rule",
    "move_axis",
    "vmap",
]


class BatchedValueError(TracedControlFlowError):
    """A batched value was needed as one concrete value (Python control flow, ``bool()``,
    or a rule that inspects values). ``vmap`` catches it and maps the function by a loop.

    It is a :class:`~scigrad.core.graph.TracedControlFlowError`: code that can do without
    the value when it is unknown (``sg.cond`` selects with ``where``; rules that take a
    guarded general path) does the same under ``vmap`` as under ``jit``."""

    def __init__(self, trace: Any) -> None:
        super().__init__(
            "a value batched by vmap was used where one concrete value is needed (Python "
            "control flow on it, bool(), or a rule that inspects values); vmap evaluates "
            "such functions once per batch entry"
        )
        self.trace = trace


class BatchTracer(Tracer):
    """A batch of values: ``val`` holds them stacked along axis ``bdim``."""

    __slots__ = ("val", "bdim")

    def __init__(self, trace: BatchTrace, val: Any, bdim: int) -> None:
        self._trace = trace
        self.val = val
        self.bdim = bdim

    @property
    def primal(self) -> Any:
        raise BatchedValueError(self._trace)

    @property
    def shape(self) -> tuple[int, ...]:
        s = self.val.shape
        d = self.bdim
        return s[:d] + s[d + 1 :]

    @property
    def dtype(self) -> np.dtype:
        return self.val.dtype

    def concrete(self) -> Any:
        raise BatchedValueError(self._trace)

    def __repr__(self) -> str:
        return f"BatchTracer(shape={self.shape}, dtype={self.dtype}, batch axis {self.bdim})"

    def __format__(self, spec: str) -> str:
        return repr(self)


def _needs_one_value(self: BatchTracer, *args: Any, **kwargs: Any) -> Any:
    raise BatchedValueError(self._trace)


# Conversions to NumPy values or Python numbers need one entry: vmap then loops over the
# batch (where a value traced by a lower transformation still refuses to be converted).
for _name in ("__float__", "__int__", "__complex__", "__index__", "__array__"):
    setattr(BatchTracer, _name, _needs_one_value)
BatchTracer.__array_interface__ = property(_needs_one_value)  # type: ignore[attr-defined]


# -- helpers for batching rules ---------------------------------------------------------------
_SHAPED = (np.ndarray, np.generic, Tracer)
_ARRAYLIKE = (np.ndarray, np.generic, Tracer, numbers.Number)
_PLAIN = (np.generic, float, int)
_INTS = (int, np.integer)


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, _SHAPED) else np.shape(x)


_numpy_layer: list = []


def _snp() -> Any:
    """The NumPy layer (imported lazily: it is built on the core)."""
    if not _numpy_layer:
        from .. import numpy as snp
        from ..numpy import _indexing, _shape

        _numpy_layer.extend([snp, _shape, _indexing])
    return _numpy_layer[0]


def _prims() -> Any:
    _snp()
    return _numpy_layer[1]


def batch_size(vals: Sequence[Any], dims: Sequence[int | None]) -> int:
    """The length of the batch axis (from the first batched value)."""
    for v, d in zip(vals, dims, strict=True):
        if d is not None:
            return _shape(v)[d]
    raise ValueError("batch_size: no batched value")


def move_axis(x: Any, src: int, dst: int) -> Any:
    """``x`` with axis ``src`` moved to position ``dst`` (a transpose; no-op if equal)."""
    if src == dst:
        return x
    nd = len(_shape(x))
    perm = [i for i in range(nd) if i != src]
    perm.insert(dst, src)
    return _prims().transpose_p.bind(x, axes=tuple(perm))


def broadcast_batched(x: Any, size: int, axis: int = 0) -> Any:
    """An unbatched ``x`` repeated ``size`` times along a new axis ``axis`` (materialized)."""
    sh = _prims()
    shape = _shape(x)
    x = x if isinstance(x, _SHAPED) else np.asarray(x)
    if axis == 0:
        return sh.broadcast_to_p.bind(x, shape=(size, *shape))
    x = sh.reshape_p.bind(x, shape=shape[:axis] + (1,) + shape[axis:])
    return sh.broadcast_to_p.bind(x, shape=shape[:axis] + (size,) + shape[axis:])


def _take(x: Any, d: int, i: int) -> Any:
    """Entry ``i`` of the batch axis ``d`` of ``x``."""
    idx = (slice(None),) * d + (i,)
    if type(x) is np.ndarray:
        return x[idx]
    _snp()
    return _numpy_layer[2].getitem_p.bind(x, idx=idx)


def _stack(xs: list, what: str) -> Any:
    """Stack per-entry results along a new axis 0."""
    shapes = {_shape(x) for x in xs}
    if len(shapes) > 1:
        raise ValueError(
            f"vmap: {what} gives results of different shapes {sorted(shapes)} for different "
            "batch entries (its output shape depends on the values), so it cannot be batched"
        )
    if all(type(x) is np.ndarray or isinstance(x, _PLAIN) for x in xs):
        return np.stack(xs)
    return _snp().stack([x if isinstance(x, _SHAPED) else np.asarray(x) for x in xs])


# -- generic rules ------------------------------------------------------------------------------
#: Shape rules of broadcasting elementwise primitives: a primitive with one of these shape
#: rules and no batching rule of its own is batched by :func:`broadcasting_rule`.
BROADCASTING_SHAPE_RULES: set[Callable] = set()


def broadcasting_rule(prim: Primitive) -> Callable:
    """The batching rule of a broadcasting elementwise primitive: batch axes to the front
    and ranks aligned (length-1 axes after the batch axis), then NumPy broadcasts."""
    bind = prim.bind

    def rule(vals: list, dims: list, **params: Any) -> tuple[Any, int]:
        # Fast path: every batched value has the batch axis at the same place and the same
        # rank, and the unbatched ones only broadcast against the axes after it.
        d0 = full = None
        ok = True
        for v, d in zip(vals, dims, strict=True):
            if d is not None:
                nd = len(_shape(v))
                if d0 is None:
                    d0, full = d, nd
                elif d != d0 or nd != full:
                    ok = False
                    break
        if ok:
            for v, d in zip(vals, dims, strict=True):
                if d is None and len(_shape(v)) > full - 1 - d0:
                    ok = False
                    break
        if ok:
            return bind(*vals, **params), d0
        return bind(*align_batched(vals, dims), **params), 0

    return rule


def align_batched(vals: Sequence[Any], dims: Sequence[int | None]) -> list:
    """The operands of a broadcasting operation with every batch axis first and length-1
    axes after it up to the largest rank of an entry, so that unbatched operands broadcast
    against the entries and the batch axes line up. The result's batch axis is 0."""
    ranks = [len(_shape(v)) - (d is not None) for v, d in zip(vals, dims, strict=True)]
    out_nd = max(ranks)
    args = []
    for v, d, r in zip(vals, dims, ranks, strict=True):
        if d is not None:
            v = move_axis(v, d, 0)
            if r < out_nd:
                s = _shape(v)
                v = _prims().reshape_p.bind(v, shape=s[:1] + (1,) * (out_nd - r) + s[1:])
        args.append(v)
    return args


def loop_rule(prim: Primitive) -> Callable:
    """The fallback batching rule: apply ``prim`` to each batch entry and stack the results.
    Correct for every primitive and its derivatives; one primitive call per entry."""

    def rule(vals: list, dims: list, **params: Any) -> tuple[Any, Any]:
        size = batch_size(vals, dims)
        if size == 0:
            return _empty_batch(prim, vals, dims, params)
        outs = [
            prim.bind(
                *[v if d is None else _take(v, d, i) for v, d in zip(vals, dims, strict=True)],
                **params,
            )
            for i in range(size)
        ]
        what = f"primitive '{prim.name}'"
        if prim.multiple_results:
            n = len(outs[0])
            return tuple(_stack([o[k] for o in outs], what) for k in range(n)), (0,) * n
        return _stack(outs, what), 0

    return rule


def _empty_batch(prim: Primitive, vals: list, dims: list, params: dict) -> tuple[Any, Any]:
    """A batch of no entries: zeros of the shape the shape rule gives."""
    avals = [
        ShapeDtype(_shape(v)[:d] + _shape(v)[d + 1 :], np.dtype(v.dtype))
        if d is not None
        else (ShapeDtype.of(v) if isinstance(v, _SHAPED) else v)
        for v, d in zip(vals, dims, strict=True)
    ]
    out = prim.shape_rule(*avals, **params)
    if prim.multiple_results:
        return tuple(np.zeros((0, *o.shape), o.dtype) for o in out), (0,) * len(out)
    return np.zeros((0, *out.shape), out.dtype), 0


stop_gradient_p.defbatch(broadcasting_rule(stop_gradient_p))

_default_rules: dict[Primitive, Callable] = {}


def _rule(prim: Primitive) -> Callable:
    rule = prim.batch
    if rule is not None:
        return rule
    rule = _default_rules.get(prim)
    if rule is None:
        generic = prim.shape_rule in BROADCASTING_SHAPE_RULES
        rule = broadcasting_rule(prim) if generic else loop_rule(prim)
        _default_rules[prim] = rule
    return rule


# -- the trace ----------------------------------------------------------------------------------
class BatchTrace(Trace):
    """Applies each primitive to whole batches through its batching rule."""

    def __init__(self, level: int, axis_size: int) -> None:
        super().__init__(level)
        self.axis_size = axis_size

    def _unwrap(self, args: tuple) -> tuple[list, list]:
        vals, dims = [], []
        for a in args:
            if type(a) is BatchTracer and a._trace is self:
                vals.append(a.val)
                dims.append(a.bdim)
            else:
                vals.append(a)
                dims.append(None)
        return vals, dims

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        vals, dims = self._unwrap(args)
        rule = prim.batch or _rule(prim)
        out, out_dim = rule(vals, dims, **params)
        if prim.multiple_results:
            return tuple(
                o if d is None else BatchTracer(self, o, d)
                for o, d in zip(out, out_dim, strict=True)
            )
        return out if out_dim is None else BatchTracer(self, out, out_dim)

    def _custom(self, fn: Any, args: tuple, kind: str) -> Any:
        vals, dims = self._unwrap(args)
        top = find_top_trace(vals)
        if top is None:  # nothing below needs a derivative: evaluate the function itself
            return fn.fun(*args)
        batched = _BatchedCall(fn, dims, self.axis_size)
        if kind == "vjp":
            out = top.process_custom_vjp(batched, tuple(vals))
        else:
            out = top.process_custom_jvp(batched, tuple(vals))
        return tree_map(lambda o: BatchTracer(self, o, 0), out)

    def process_custom_vjp(self, fn: Any, args: tuple) -> Any:
        # The lower trace receives the batched function *with* its batched rule, so a
        # derivative taken outside vmap still uses the user's rule.
        return self._custom(fn, args, "vjp")

    def process_custom_jvp(self, fn: Any, args: tuple) -> Any:
        return self._custom(fn, args, "jvp")


# -- running a function on batches ---------------------------------------------------------------
class _Zero:
    """Marks a symbolic zero (None) in a flat list of cotangents while it is batched."""

    def __repr__(self) -> str:
        return "<zero>"


_ZERO = _Zero()


def batch_call(fun: Callable, vals: Sequence[Any], dims: Sequence[int | None], size: int):
    """Run ``fun(*args)`` where ``args[i]`` is ``vals[i]`` batched along ``dims[i]``.

    Returns ``(flat_out, out_dims, out_tree)``: the output leaves (lower-level values), the
    batch axis of each (None: not batched) and the output structure. A function that needs
    concrete per-example values is evaluated once per entry instead (see the module doc).
    """
    trace = open_trace(BatchTrace, size)
    failed = False
    try:
        args = [
            v if d is None else BatchTracer(trace, v, d) for v, d in zip(vals, dims, strict=True)
        ]
        flat, tree = tree_flatten(fun(*args))
        outs, out_dims = [], []
        for o in flat:
            if type(o) is BatchTracer and o._trace is trace:
                outs.append(o.val)
                out_dims.append(o.bdim)
            else:
                outs.append(o)
                out_dims.append(None)
    except Exception as e:
        if not _raised_by(e, trace):
            raise
        failed = True
    finally:
        close_trace(trace)
    if failed:
        return _loop_call(fun, vals, dims, size)
    return outs, out_dims, tree


def _raised_by(e: BaseException | None, trace: BatchTrace) -> bool:
    """Whether ``e`` is, or was raised while handling, a batched value of ``trace``
    being made concrete."""
    seen = 0
    while e is not None and seen < 32:
        if isinstance(e, BatchedValueError) and e.trace is trace:
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def _loop_call(fun: Callable, vals: Sequence[Any], dims: Sequence[int | None], size: int):
    """:func:`batch_call` by a Python loop over the batch entries."""
    if size == 0:
        raise ValueError(
            "vmap: the function needs concrete per-example values (Python control flow on "
            "a mapped value, or a rule that inspects values), which a batch of size 0 lacks"
        )
    results = []
    tree = None
    for i in range(size):
        args = [v if d is None else _take(v, d, i) for v, d in zip(vals, dims, strict=True)]
        flat, t = tree_flatten(fun(*args))
        if tree is None:
            tree = t
        elif t != tree:
            raise ValueError(
                f"vmap: the function returns different structures for different batch "
                f"entries ({tree} and {t})"
            )
        results.append(flat)
    outs, out_dims = [], []
    for k in range(tree.num_leaves):
        col = [r[k] for r in results]
        first = col[0]
        # Arrays are stacked; Python numbers too unless equal; other objects are static.
        if isinstance(first, _SHAPED) or (
            isinstance(first, numbers.Number) and any(c != first for c in col)
        ):
            outs.append(_stack(col, "the mapped function"))
            out_dims.append(0)
        else:
            outs.append(first)
            out_dims.append(None)
    return outs, out_dims, tree


def _at(x: Any, d: int | None, size: int, axis: int = 0) -> Any:
    """``x`` (batch axis ``d``, None: unbatched) with its batch axis at ``axis``."""
    if d is None:
        return broadcast_batched(x, size, axis)
    return move_axis(x, d, axis)


class _BatchedCall:
    """A custom_vjp/custom_jvp call batched along ``dims``, for the trace below ``vmap``:
    the same interface as the call objects of :mod:`scigrad.core.custom`, each method the
    original one run on batches. Outputs have their batch axis first; the cotangents of
    unbatched arguments are summed over the batch."""

    def __init__(self, call: Any, dims: list, size: int) -> None:
        self.call = call
        self.dims = dims
        self.size = size

    def flatten_output(self, out: Any) -> tuple[list, Any]:
        return self.call.flatten_output(out)

    def _front(self, fun: Callable, vals: Sequence[Any], dims: Sequence[int | None]) -> Any:
        flat, out_dims, tree = batch_call(fun, vals, dims, self.size)
        return tree.unflatten([_at(o, d, self.size) for o, d in zip(flat, out_dims, strict=True)])

    def fun(self, *vals: Any) -> Any:
        return self._front(self.call.fun, vals, self.dims)

    def __call__(self, *vals: Any) -> Any:
        return self._front(self.call, vals, self.dims)

    def _cotangents(self, flat: list, out_dims: list) -> list:
        out = []
        for c, od, d in zip(flat, out_dims, self.dims, strict=True):
            if c is _ZERO:
                out.append(None)
            elif d is None:  # an unbatched argument: every batch entry contributes
                sn = _snp()
                out.append(c * self.size if od is None else sn.sum(c, axis=od))
            else:
                out.append(_at(c, od, self.size, d))
        return out

    # custom_vjp
    def fwd(self, *vals: Any) -> tuple[Any, Any]:
        flat, out_dims, tree = batch_call(self.call.fwd, vals, self.dims, self.size)
        out_spec, res_spec = tree.children()
        n = out_spec.num_leaves
        out = out_spec.unflatten(
            [_at(o, d, self.size) for o, d in zip(flat[:n], out_dims[:n], strict=True)]
        )
        return out, (flat[n:], out_dims[n:], res_spec)

    def bwd_flat(self, residuals: Any, out_tree: Any, cts: Sequence[Any], n: int) -> list:
        res, res_dims, res_spec = residuals
        k = len(res)

        def bwd(*v: Any) -> list:
            c = self.call.bwd_flat(res_spec.unflatten(v[:k]), out_tree, list(v[k:]), n)
            return [_ZERO if x is None else x for x in c]

        flat, out_dims, _ = batch_call(bwd, [*res, *cts], [*res_dims, *([0] * len(cts))], self.size)
        return self._cotangents(flat, out_dims)

    # custom_jvp
    def jvp_flat(self, primals: list, tangents: list) -> tuple[Any, Any]:
        n = len(primals)
        tangents = [
            zeros_like(p) if t is None else t for p, t in zip(primals, tangents, strict=True)
        ]

        def jvp(*v: Any) -> Any:
            return self.call.jvp_flat(list(v[:n]), list(v[n:]))

        flat, out_dims, tree = batch_call(jvp, [*primals, *tangents], self.dims * 2, self.size)
        ans_spec, t_spec = tree.children()
        m = ans_spec.num_leaves
        moved = [_at(o, d, self.size) for o, d in zip(flat, out_dims, strict=True)]
        return ans_spec.unflatten(moved[:m]), t_spec.unflatten(moved[m:])

    def transpose_jvp(self, vals: list, out_tree: Any, cts: Sequence[Any]) -> list:
        n = len(vals)

        def transpose(*v: Any) -> list:
            c = self.call.transpose_jvp(list(v[:n]), out_tree, list(v[n:]))
            return [_ZERO if x is None else x for x in c]

        flat, out_dims, _ = batch_call(
            transpose, [*vals, *cts], [*self.dims, *([0] * len(cts))], self.size
        )
        return self._cotangents(flat, out_dims)


# -- vmap -----------------------------------------------------------------------------------------
def _is_axis(x: Any) -> bool:
    return x is None or (isinstance(x, _INTS) and not isinstance(x, bool))


def _path_str(path: tuple) -> str:
    return "".join(f"[{k!r}]" for k in path)


def _arg_names(fun: Callable, nargs: int) -> list[str]:
    """Names for the positional arguments in error messages (best effort)."""
    names = [f"argument {i}" for i in range(nargs)]
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return names
    for i, p in enumerate(params[:nargs]):
        if p.kind == p.VAR_POSITIONAL:
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names[i] = f"argument '{p.name}'"
    return names


def _broadcast_prefix(spec: Any, tree: Any, what: str) -> list:
    """The leaves of the prefix ``spec`` repeated over the leaves of ``tree`` beneath them."""
    if _is_axis(spec):
        return [spec] * len(tree_flatten(tree)[0])
    prefix = optree.tree_structure(spec, none_is_leaf=True, namespace=NAMESPACE)
    for leaf in optree.tree_leaves(spec, none_is_leaf=True, namespace=NAMESPACE):
        if not _is_axis(leaf):
            raise TypeError(f"vmap: {what} entries must be ints or None, got {leaf!r}")
    try:
        subtrees = prefix.flatten_up_to(tree)
    except (ValueError, TypeError) as e:
        structure = optree.tree_structure(tree, namespace=NAMESPACE)
        raise ValueError(
            f"vmap: {what} must be a tree prefix of the corresponding value: got the "
            f"specification {spec!r} for a value of structure {structure} ({e})"
        ) from None
    axes = optree.tree_leaves(spec, none_is_leaf=True, namespace=NAMESPACE)
    out = []
    for ax, sub in zip(axes, subtrees, strict=True):
        out.extend([ax] * len(tree_flatten(sub)[0]))
    return out


def _check_in_axes(in_axes: Any) -> Any:
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if not (_is_axis(in_axes) or isinstance(in_axes, tuple)):
        raise TypeError(
            "vmap: in_axes must be an int, None, or a tuple with one entry per positional "
            f"argument, got {in_axes!r}"
        )
    return in_axes


def vmap(
    fun: Callable, in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None
) -> Callable:
    """Vectorize ``fun`` over an axis of its arguments (JAX's ``vmap``).

    ``in_axes`` says which axis of each argument is mapped: an int, None (not mapped), or a
    tuple with one entry per positional argument, each an int, None, or a pytree prefix of
    that argument; negative axes count from the end. Keyword arguments are mapped over
    axis 0. ``out_axes`` places the mapped axis in the outputs likewise (None: an output
    that does not depend on the mapped inputs, returned once). ``axis_size`` gives the
    batch size when no argument is mapped. Composes with every transformation, in any order.

    Each primitive is applied to the whole batch at once through its batching rule (a loop
    over the batch for primitives without one). A function that needs a concrete value per
    example (Python ``if`` on a mapped value, or a derivative rule that inspects values) is
    evaluated once per batch entry instead, with the same result.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> from scigrad.core.batching import vmap
    >>> vmap(lambda x, y: np.dot(x, y), in_axes=(0, None))(np.ones((3, 2)), np.arange(2.0))
    array([1., 1., 1.])
    >>> vmap(sg.grad(lambda x: np.sum(x**3)))(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[ 3., 12.],
           [27., 48.]])
    """
    in_axes = _check_in_axes(in_axes)
    if axis_size is not None and (not isinstance(axis_size, _INTS) or axis_size < 0):
        raise ValueError(f"vmap: axis_size must be a non-negative int, got {axis_size!r}")

    def vmapped(*args: Any, **kwargs: Any) -> Any:
        if isinstance(in_axes, tuple):
            if len(in_axes) != len(args):
                raise ValueError(
                    f"vmap: in_axes has {len(in_axes)} entries but the function was called "
                    f"with {len(args)} positional argument{'s' * (len(args) != 1)}; give one "
                    "entry per positional argument (or one int / None for all)"
                )
            per_arg = in_axes
        else:
            per_arg = (in_axes,) * len(args)
        if (
            not kwargs
            and all(isinstance(a, _ARRAYLIKE) for a in args)
            and all(map(_is_axis, per_arg))
        ):  # the common case: one array per argument
            leaves, axes, flat_fun = list(args), list(per_arg), fun
        else:
            leaves, in_tree = tree_flatten((args, kwargs))
            axes = []
            names = _arg_names(fun, len(args))
            for arg, spec, name in zip(args, per_arg, names, strict=True):
                axes.extend(_broadcast_prefix(spec, arg, f"in_axes for {name}"))
            axes.extend([0] * (len(leaves) - len(axes)))  # keyword arguments: axis 0

            def flat_fun(*flat: Any) -> Any:
                a, kw = in_tree.unflatten(flat)
                return fun(*a, **kw)

        dims, size = _input_dims(leaves, axes, axis_size, lambda: _input_labels(fun, args, kwargs))
        flat_out, out_dims, out_tree = batch_call(flat_fun, leaves, dims, size)
        return _place_outputs(flat_out, out_dims, out_tree, out_axes, size)

    try:
        functools.update_wrapper(vmapped, fun)
    except (AttributeError, TypeError):
        pass
    vmapped.__wrapped__ = fun  # type: ignore[attr-defined]
    vmapped.in_axes = in_axes  # type: ignore[attr-defined]
    vmapped.out_axes = out_axes  # type: ignore[attr-defined]
    vmapped.axis_size = axis_size  # type: ignore[attr-defined]
    return vmapped


def _input_labels(fun: Callable, args: tuple, kwargs: dict) -> list[str]:
    """A name for each input leaf, for error messages: ``argument 'x'['a'][0]``."""
    labels = []
    for arg, name in zip(args, _arg_names(fun, len(args)), strict=True):
        paths = optree.tree_flatten_with_path(arg, namespace=NAMESPACE)[0]
        labels.extend(name + _path_str(p) for p in paths)
    paths = optree.tree_flatten_with_path(kwargs, namespace=NAMESPACE)[0]
    labels.extend(f"keyword argument '{p[0]}'" + _path_str(p[1:]) for p in paths)
    return labels


def _input_dims(
    leaves: list, axes: list, axis_size: int | None, labels: Callable[[], list]
) -> tuple[list, int]:
    """The batch axis of each input leaf (normalized; None: not mapped) and the batch size,
    checked: mapped leaves must be arrays with that axis, all of one size."""
    dims, sizes = [], []
    for k, (x, ax) in enumerate(zip(leaves, axes, strict=True)):
        if ax is None:
            dims.append(None)
            continue
        if not isinstance(x, _ARRAYLIKE) or isinstance(x, bool):
            raise TypeError(
                f"vmap: {labels()[k]} is mapped (in_axes {ax}) but is not an array "
                f"({type(x).__name__}); give it in_axes None"
            )
        shape = _shape(x)
        if not -len(shape) <= ax < len(shape):
            raise ValueError(
                f"vmap: {labels()[k]} is mapped along axis {ax}, which needs at least "
                f"{ax + 1 if ax >= 0 else -ax} dimensions, but it has shape {shape}"
            )
        d = int(ax) % len(shape)
        dims.append(d)
        sizes.append((shape[d], k, d))
    if not sizes:
        if axis_size is None:
            raise ValueError(
                "vmap: no argument is mapped (every in_axes entry is None, or there are no "
                "arguments); give at least one non-None in_axes, or axis_size"
            )
        return dims, int(axis_size)
    found = {s for s, _, _ in sizes}
    if axis_size is not None:
        found.add(int(axis_size))
    if len(found) > 1:
        names = labels()
        lines = [f"  {names[k]}: axis {d} has size {s}" for s, k, d in sizes]
        if axis_size is not None:
            lines.append(f"  axis_size={axis_size}")
        raise ValueError("vmap got inconsistent sizes for the mapped axes:\n" + "\n".join(lines))
    return dims, found.pop()


def _place_outputs(flat: list, dims: list, tree: Any, out_axes: Any, size: int) -> Any:
    """The outputs with their batch axes at ``out_axes`` (unbatched ones broadcast)."""
    if isinstance(out_axes, list):
        out_axes = tuple(out_axes)
    if _is_axis(out_axes):
        axes = [out_axes] * len(flat)
    else:
        axes = _broadcast_prefix(out_axes, tree.unflatten(list(range(len(flat)))), "out_axes")

    def label(k: int) -> str:
        index_tree = tree.unflatten(list(range(len(flat))))
        return "the output" + _path_str(
            optree.tree_flatten_with_path(index_tree, namespace=NAMESPACE)[0][k]
        )

    out = []
    for k, (x, d, ax) in enumerate(zip(flat, dims, axes, strict=True)):
        if ax is None:
            if d is not None:
                raise ValueError(
                    f"vmap: out_axes is None for {label(k)}, but it depends on the mapped "
                    "inputs (it has a batch axis); give it an int out_axes"
                )
            out.append(x)
            continue
        if d is None and (not isinstance(x, _ARRAYLIKE) or isinstance(x, bool)):
            raise TypeError(
                f"vmap: {label(k)} is not an array ({type(x).__name__}); give it out_axes None"
            )
        nd = len(_shape(x)) + (d is None)
        if not -nd <= ax < nd:
            raise ValueError(
                f"vmap: out_axes {ax} is out of range for {label(k)}, which has {nd} "
                "dimensions with the mapped axis"
            )
        out.append(_at(x, d, size, int(ax) % nd))
    return tree.unflatten(out)
