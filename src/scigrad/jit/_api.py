"""``sg.jit``: capture, lower, compile and call, with one compiled kernel per signature."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import optree

from ..core.batching import vmap
from ..core.custom import custom_vjp
from ..core.graph import Graph, make_graph
from ..core.primitive import ShapeDtype, Tracer, find_top_trace
from ..core.reverse import ReverseTrace
from ..core.transforms import vjp
from ..core.tree import NAMESPACE, tree_flatten, tree_unflatten
from ._codegen import KernelSpec, compile_kernel, live_nodes
from ._expr import ExprBuilder, TooManyNodes
from ._loops import compile_loops
from ._lower import NotCompilableError, lower_graph
from ._simplify import simplify_graph

__all__ = ["Compiled", "jit", "scalar_work"]


def _leaf_array(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(
            f"sg.jit: arguments must be real, integer or boolean arrays, got dtype {a.dtype}; "
            "pass other values with static_argnums"
        )
    return a


def _symbolic_inputs(avals: Sequence[ShapeDtype]) -> list[np.ndarray]:
    b = ExprBuilder.active
    arrays = []
    for k, aval in enumerate(avals):
        arr = np.empty(aval.shape, dtype=object)
        for index in np.ndindex(aval.shape):
            arr[index] = b.input(k, index, aval.dtype)
        arrays.append(arr)
    return arrays


@dataclass
class Compiled:
    """A function compiled for one signature of flat inputs.

    ``kernel(*leaves)`` allocates and returns the outputs; ``kernel_out(*leaves, *outs)``
    writes into preallocated output arrays and allocates nothing.
    """

    graph: Graph
    kernel: Callable
    kernel_out: Callable
    source: str
    out_avals: list[ShapeDtype]
    batched: bool
    trace_time: float
    compile_time: float

    def empty_outputs(self, batch: int | None = None) -> list[np.ndarray]:
        """Freshly allocated output arrays for ``kernel_out``."""
        lead = (batch,) if self.batched else ()
        return [np.empty(lead + a.shape, a.dtype) for a in self.out_avals]


#: Limits on unrolling, beyond which jit compiles the graph to loops instead: the scalar
#: operations lowering may create (Python time), and the operations left after
#: simplification (the generated code's length: numba's compile time grows faster than it,
#: about 4 s for 1,400 lines on a 2-core Xeon).
UNROLL_LIMIT = int(os.environ.get("SCIGRAD_JIT_UNROLL_LIMIT", "500000"))
CODE_LIMIT = int(os.environ.get("SCIGRAD_JIT_CODE_LIMIT", "3000"))


def scalar_work(graph: Graph) -> int:
    """An upper estimate of the scalar operations ``graph`` unrolls to."""
    work = 0
    for e in graph.eqns:
        out = sum(int(np.prod(v.aval.shape)) for v in e.outvars)
        ins = [int(np.prod(getattr(a, "aval", ShapeDtype.of(a)).shape)) for a in e.inputs]
        if e.prim.name == "matmul":
            a = e.inputs[0]
            k = getattr(a, "aval", ShapeDtype.of(a)).shape[-1:] or (1,)
            work += out * k[0]
        elif e.prim.name in ("einsum", "tensordot"):
            work += out * max(ins, default=1)
        else:
            work += max([out, *ins])
    return work


class _TooLarge(Exception):
    pass


def _compile(
    graph: Graph,
    in_batched: Sequence[bool],
    batched: bool,
    parallel: bool,
    unroll: bool | None,
    batched_graph: Callable[[], Graph],
) -> Compiled:
    """Unrolled scalar code when the function is small enough (or ``unroll=True``), loops
    otherwise (or ``unroll=False``)."""
    if unroll is not False:
        try:
            return _compile_unrolled(graph, in_batched, batched, parallel, unroll is True)
        except _TooLarge:
            pass
        except NotCompilableError:
            # A primitive with no scalar form (a factorization, a sort): the loop path runs
            # its own implementation.
            if unroll is True:
                raise
    t0 = time.perf_counter()
    # A batched function is compiled from its vmapped graph: the batch is one more axis of
    # every loop.
    whole = batched_graph() if batched else graph
    out_avals = [getattr(o, "aval", None) or ShapeDtype.of(o) for o in graph.outputs]
    t1 = time.perf_counter()
    loops = compile_loops(whole)
    t2 = time.perf_counter()
    kernel = loops.kernel
    if batched:
        kernel = _allocating(loops.kernel_out, out_avals, list(in_batched).index(True))
    return Compiled(
        whole, kernel, loops.kernel_out, loops.source, out_avals, batched, t1 - t0, t2 - t1
    )


def _compile_unrolled(
    graph: Graph, in_batched: Sequence[bool], batched: bool, parallel: bool, unlimited: bool
) -> Compiled:
    t0 = time.perf_counter()
    work = scalar_work(graph)
    if work > UNROLL_LIMIT and not unlimited:
        raise _TooLarge
    avals = [v.aval for v in graph.invars]
    # Lowering stops early when it builds far more nodes than could stay live: dense
    # products do not simplify, and lowering them element by element costs seconds.
    try:
        with ExprBuilder(limit=None if unlimited else 10 * CODE_LIMIT):
            outputs = lower_graph(graph, _symbolic_inputs(avals))
    except TooManyNodes:
        raise _TooLarge from None
    live = len(live_nodes(outputs))
    if live > CODE_LIMIT and not unlimited:
        raise _TooLarge
    out_avals = []
    for o in graph.outputs:
        aval = getattr(o, "aval", None)
        out_avals.append(aval if aval is not None else ShapeDtype.of(o))
    spec = KernelSpec(
        in_shapes=tuple(a.shape for a in avals),
        in_dtypes=tuple(a.dtype for a in avals),
        in_batched=tuple(in_batched),
        outputs=tuple(outputs),
        out_dtypes=tuple(a.dtype for a in out_avals),
        batched=batched,
    )
    t1 = time.perf_counter()
    kernel, kernel_out, source = compile_kernel(spec)
    t2 = time.perf_counter()
    if batched and parallel:
        kernel_out = _threaded(kernel_out, tuple(in_batched))
    if batched:
        kernel = _allocating(kernel_out, out_avals, list(in_batched).index(True))
    return Compiled(graph, kernel, kernel_out, source, out_avals, batched, t1 - t0, t2 - t1)


def _allocating(kernel_out: Callable, out_avals: list, first_batched: int) -> Callable:
    """A batched kernel whose outputs NumPy allocates: NumPy asks for transparent huge pages
    on large arrays and numba's allocator does not, which halves the page-fault cost of a
    million-point output."""

    def kernel(*flat: Any) -> Any:
        n = np.shape(flat[first_batched])[0]
        outs = [np.empty((n, *a.shape), a.dtype) for a in out_avals]
        kernel_out(*flat, *outs)
        return outs[0] if len(outs) == 1 else tuple(outs)

    return kernel


_POOL: list = []  # one thread pool for every parallel kernel, created on first use


def _threaded(kernel_out: Callable, in_batched: tuple[bool, ...]) -> Callable:
    """``kernel_out`` over contiguous chunks of the batch, one per core, in threads (the
    compiled kernel releases the GIL). Chunks of C-ordered arrays along the batch axis are
    C-ordered views: nothing is copied or allocated per point."""
    workers = os.cpu_count() or 1
    nin = len(in_batched)

    def run(*flat_and_outs: Any) -> None:
        flat, outs = flat_and_outs[:nin], flat_and_outs[nin:]
        n = outs[0].shape[0] if outs and np.ndim(outs[0]) else 0
        if workers == 1 or n < 2 * workers:
            return kernel_out(*flat_and_outs)
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(workers, thread_name_prefix="scigrad-jit"))
        bounds = np.linspace(0, n, workers + 1).astype(int)

        def chunk(lo: int, hi: int) -> None:
            ins = [x[lo:hi] if b else x for x, b in zip(flat, in_batched, strict=True)]
            kernel_out(*ins, *[o[lo:hi] for o in outs])

        pairs = zip(bounds[:-1], bounds[1:], strict=True)
        for f in [_POOL[0].submit(chunk, lo, hi) for lo, hi in pairs]:
            f.result()
        return None

    return run


class _JitState:
    """The compiled kernels of one jitted function, by signature; see :func:`jit`."""

    def __init__(
        self, fun: Callable, static_argnums: Sequence[int], parallel: bool, unroll: bool | None
    ) -> None:
        self.fun = fun
        self.static_argnums = tuple(static_argnums)
        self.parallel = parallel
        self.unroll = unroll
        vmapped = getattr(fun, "in_axes", None) is not None and hasattr(fun, "__wrapped__")
        self._vmap = (fun.__wrapped__, fun.in_axes, fun.out_axes) if vmapped else None
        self._cache: dict[Any, tuple[Compiled, Any, Any]] = {}
        #: The last kernel, callable directly when the arguments need no preparation.
        self._fast: Callable | None = None
        self._custom: custom_vjp | None = None
        self.jitted: Callable | None = None  # the function jit returned (set by jit)

    # -- the general path ----------------------------------------------------------------
    def _split(self, args: tuple) -> tuple[tuple, tuple]:
        n = len(args)
        static = tuple(sorted(k % n for k in self.static_argnums)) if n else ()
        for k in self.static_argnums:
            if not -n <= k < n:
                raise ValueError(f"sg.jit: static_argnums={self.static_argnums} but got {n} args")
        dyn = tuple(a for k, a in enumerate(args) if k not in static)
        statics = tuple((k, args[k]) for k in static)
        return dyn, statics

    def _call(self, args: tuple, kwargs: dict) -> Any:
        dyn, statics = self._split(args)
        leaves, in_tree = tree_flatten((dyn, kwargs))
        if any(isinstance(x, Tracer) for x in leaves):
            if not kwargs and isinstance(find_top_trace(leaves), ReverseTrace):
                return self._reverse_differentiable()(*args)
            # Under other transformations the function runs as ordinary scigrad code, so
            # they see (and transform) every primitive.
            return self.fun(*args, **kwargs)
        arrays = [_leaf_array(x) for x in leaves]
        compiled, out_tree, prepare = self._entry(arrays, in_tree, statics, args)
        out = compiled.kernel(*prepare(arrays))
        flat_out = list(out) if isinstance(out, tuple) else [out]
        if self._vmap is not None:
            flat_out = self._move_out_axes(flat_out, out_tree)
        flat_out = [np.float64(o) if isinstance(o, float) else o for o in flat_out]
        self._set_fast(compiled, in_tree, out_tree, statics, arrays)
        return tree_unflatten(out_tree, flat_out)

    def _entry(self, arrays: list, in_tree: Any, statics: tuple, args: tuple) -> tuple:
        """``(compiled, out_tree, prepare)`` for this signature, built on first use."""
        try:
            key = (in_tree, tuple((a.shape, a.dtype) for a in arrays), statics)
            hash(key)
        except TypeError as exc:
            raise TypeError(
                "sg.jit: static arguments must be hashable (they key the compiled kernels)"
            ) from exc
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = self._build(arrays, in_tree, statics, args)
        return entry

    def _set_fast(self, compiled, in_tree, out_tree, statics, arrays) -> None:
        """Remember the kernel for direct calls when nothing needs restructuring."""
        simple_in = (
            not statics
            and in_tree == tree_flatten((tuple(range(len(arrays))), {}))[1]
            and all(a.ndim > 0 for a in arrays)
        )
        n_out = out_tree.num_leaves
        single = out_tree == tree_flatten(0)[1]
        flat_tuple = out_tree == tree_flatten(tuple(range(n_out)))[1]
        if self._vmap is not None:
            _, in_axes, out_axes = self._vmap
            simple_in = simple_in and _all_zero_or_none(in_axes) and out_axes == 0
        if not (simple_in and (single or flat_tuple)):
            self._fast = None
            return
        kernel = compiled.kernel
        scalar_out = [not a.shape and not compiled.batched for a in compiled.out_avals]
        if single and not scalar_out[0]:
            self._fast = kernel
        elif single:
            self._fast = lambda *a: np.float64(kernel(*a))
        elif not any(scalar_out):
            self._fast = kernel
        else:

            def fast(*a: Any) -> tuple:
                return tuple(
                    np.float64(o) if s else o for o, s in zip(kernel(*a), scalar_out, strict=True)
                )

            self._fast = fast

    def _build(self, arrays: list, in_tree: Any, statics: tuple, args: tuple) -> tuple:
        static_pos = dict(statics)
        # A vmapped function is compiled from the function it maps, one point per iteration.
        fun = self.fun if self._vmap is None else self._vmap[0]

        def flat_fun(*leaves: Any) -> Any:
            dyn, kwargs = tree_unflatten(in_tree, list(leaves))
            it = iter(dyn)
            full = [static_pos[k] if k in static_pos else next(it) for k in range(len(args))]
            return fun(*full, **kwargs)

        if self._vmap is None:
            graph = make_graph(flat_fun, *[ShapeDtype(a.shape, a.dtype) for a in arrays])
            graph = simplify_graph(graph)
            batched = [False] * len(arrays)
            prepare = _prepare_plain
        else:
            axes = _leaf_axes(self._vmap[1], in_tree, args, static_pos)
            avals = [
                ShapeDtype(a.shape if ax is None else a.shape[:ax] + a.shape[ax + 1 :], a.dtype)
                for a, ax in zip(arrays, axes, strict=True)
            ]
            graph = simplify_graph(make_graph(flat_fun, *avals))
            batched = [ax is not None for ax in axes]
            prepare = _prepare_batched(axes)

        def batched_graph() -> Graph:
            # The prepared arguments: batch axes first.
            in_axes = [0 if b else None for b in batched]
            batched_avals = [
                ShapeDtype(a.shape if ax is None else (a.shape[ax], *aval.shape), a.dtype)
                for a, ax, aval in zip(arrays, axes, avals, strict=True)
            ]
            return simplify_graph(make_graph(vmap(flat_fun, in_axes=in_axes), *batched_avals))

        compiled = _compile(
            graph, batched, self._vmap is not None, self.parallel, self.unroll, batched_graph
        )
        return compiled, graph.out_tree, prepare

    def _reverse_differentiable(self) -> custom_vjp:
        """The jitted function with a compiled reverse-mode rule: the forward pass runs the
        compiled kernel and keeps the arguments; the backward pass runs ``jit`` of the VJP
        (which recomputes the forward values inside its kernel, as JAX's rematerialization
        does). Nested reverse differentiation compiles the VJP of the VJP, and so on."""
        if self._custom is not None:
            return self._custom
        fun, static, jitted = self.fun, self.static_argnums, self.jitted

        def pullback(*args_and_cotangent: Any) -> tuple:
            *args, ct = args_and_cotangent
            n = len(args)
            fixed = {k % n: args[k % n] for k in static}
            diff = [k for k in range(n) if k not in fixed]

            def of_diff(*d: Any) -> Any:
                full = dict(fixed)
                full.update(zip(diff, d, strict=True))
                return fun(*(full[k] for k in range(n)))

            return vjp(of_diff, *(args[k] for k in diff))[1](ct)

        compiled_pullback = jit(
            pullback, static_argnums=static, parallel=self.parallel, unroll=self.unroll
        )
        custom = custom_vjp(fun, nondiff_argnums=static)

        def fwd(*args: Any) -> tuple[Any, Any]:
            return jitted(*args), args

        def bwd(*nondiff_residuals_ct: Any) -> tuple:
            residuals, ct = nondiff_residuals_ct[-2:]
            return tuple(compiled_pullback(*residuals, ct))

        custom.defvjp(fwd, bwd)
        self._custom = custom
        return custom

    def _move_out_axes(self, flat_out: list, out_tree: Any) -> list:
        out_axes = self._vmap[2]
        axes = _axis_leaves(out_axes) if not isinstance(out_axes, int) else None
        moved = []
        for k, o in enumerate(flat_out):
            ax = out_axes if axes is None else axes[k]
            moved.append(o if ax in (0, None) else np.moveaxis(o, 0, ax))
        return moved

    def lower(self, *args: Any) -> Compiled:
        """The :class:`Compiled` kernel for these arguments (compiling it if needed): its
        graph, generated source, trace and compile times, and the allocation-free
        ``kernel_out``."""
        dyn, statics = self._split(args)
        leaves, in_tree = tree_flatten((dyn, {}))
        return self._entry([_leaf_array(x) for x in leaves], in_tree, statics, args)[0]


def _axis_leaves(spec: Any) -> list:
    """The axes of an ``in_axes``/``out_axes`` tree, ``None`` entries included."""
    return optree.tree_leaves(spec, none_is_leaf=True, namespace=NAMESPACE)


def _all_zero_or_none(in_axes: Any) -> bool:
    return all(a in (0, None) for a in _axis_leaves(in_axes))


def _leaf_axes(in_axes: Any, in_tree: Any, args: tuple, static_pos: dict) -> list:
    """The batch axis of every flat dynamic leaf (``in_axes`` is a prefix of the args)."""
    nargs = len(args)
    per_arg = [in_axes] * nargs if isinstance(in_axes, int) or in_axes is None else list(in_axes)
    if len(per_arg) != nargs:
        raise ValueError(f"vmap: in_axes has {len(per_arg)} entries for {nargs} arguments")
    axes = []
    for k, a in enumerate(args):
        if k in static_pos:
            continue
        leaves = tree_flatten(a)[0]
        sub = per_arg[k]
        if isinstance(sub, int) or sub is None:
            leaf_axes = [sub] * len(leaves)
        else:
            leaf_axes = _axis_leaves(sub)
        for x, ax in zip(leaves, leaf_axes, strict=True):
            axes.append(None if ax is None else ax % np.ndim(x))
    return axes


def _prepare_plain(arrays: list) -> list:
    return [a[()] if a.ndim == 0 else np.ascontiguousarray(a) for a in arrays]


def _prepare_batched(axes: list) -> Callable[[list], list]:
    def prepare(arrays: list) -> list:
        out = []
        for a, ax in zip(arrays, axes, strict=True):
            if ax is None:
                out.append(a[()] if a.ndim == 0 else np.ascontiguousarray(a))
            else:
                out.append(np.ascontiguousarray(np.moveaxis(a, ax, 0)))
        return out

    return prepare


def jit(
    fun: Callable,
    static_argnums: int | Sequence[int] = (),
    *,
    parallel: bool = False,
    unroll: bool | None = None,
) -> Callable:
    """Compile ``fun`` for the shapes and dtypes of its arguments.

    The function is traced once per signature into a graph of scigrad primitives (the same
    ones eager mode uses) and compiled with numba. A small function (a few thousand scalar
    operations once simplified) is unrolled element by element into straight-line code that
    allocates nothing but its outputs; a larger one becomes loops, one fused loop nest per
    run of elementwise operations, so its compile time grows with the graph's length, not
    its arrays' sizes. ``unroll=True`` or ``False`` forces one or the other. Transforms
    compose: ``jit(grad(f))``, ``jit(hessian(f))``, ``jit(vmap(grad(f)))`` (one batched loop,
    ``parallel=True`` to spread it over the cores); ``grad(jit(f))`` runs the compiled
    kernel forward and a compiled VJP backward (forward mode and ``vmap`` of a jitted
    function run it as ordinary scigrad code). Python control flow on traced values raises
    an error: use
    ``scigrad.numpy.where`` or ``sg.cond``, or mark arguments static.

    The returned function has a ``lower(*args)`` method giving the :class:`Compiled` kernel
    for those arguments: its generated source, trace and compile times, and
    ``kernel_out`` that writes into preallocated outputs.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> f = sg.jit(sg.grad(lambda x: np.sum(x ** 3)))
    >>> f(np.array([1.0, 2.0]))
    array([ 3., 12.])
    """
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    state = _JitState(fun, static, parallel, unroll)

    # A plain function, not an object with __call__: calling it costs less, and the call
    # overhead is what a jitted gradient of a small function is made of.
    def jitted(*args: Any, **kwargs: Any) -> Any:
        fast = state._fast
        if fast is not None and not kwargs:
            try:
                return fast(*args)
            except (TypeError, ValueError, IndexError):
                pass  # another signature, a pytree or a Python scalar: the general path
        return state._call(args, kwargs)

    state.jitted = jitted
    jitted.__wrapped__ = fun  # type: ignore[attr-defined]
    jitted.__name__ = getattr(fun, "__name__", "jitted")
    jitted.__doc__ = getattr(fun, "__doc__", None)
    jitted.lower = state.lower  # type: ignore[attr-defined]
    jitted._state = state  # type: ignore[attr-defined]
    return jitted
