"""Array-level code generation: a captured graph becomes numba loops, one loop nest per
operation, so the generated code grows with the graph's length and not with the sizes of
its arrays.

This is what ``sg.jit`` compiles when unrolling a function to scalar code would be too
large (a gradient over thousands of inputs, a Hessian of hundreds, matrix products):

* consecutive elementwise operations of one shape are **fused** into a single loop nest that
  keeps intermediate values in registers and stores only the values used later (the scalar
  forms of the operations are those of the unrolled path, ``_codegen._TEMPLATES``), and
  reductions over that shape accumulate inside the same loop;
* reductions, cumulative sums, traces, einsum and batched matrix products are loops over
  their operands; a 2-D float matrix product calls BLAS (``np.dot``);
* basic indexing (slices, integers) and its transpose are strided loops; other indices
  (``getitem``, ``unindex``, ``scatter_*`` with arrays) gather or scatter through an index
  map computed once at compile time by applying the primitive to integer arrays, so every
  index NumPy accepts compiles the same way;
* constant slices of the identity (the basis of a batched backward pass) are computed from
  the loop indices rather than read from memory;
* reshapes are views, transposes copies; outputs are written in place when the operation
  producing them allocates.

Composite primitives (``logsumexp``, ``softmax``, ...) are expanded into the primitives they
are made of. Primitives with no loop form (factorizations, sorts, special functions numba
lacks) and NumPy's SIMD functions on large arrays run the primitive's own implementation
in an object-mode block. Constant arrays of the graph are passed to the kernel as extra
arguments. Intermediates are allocated per call (the unrolled path is the allocation-free
one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.graph import Eqn, Graph, Var
from ..core.primitive import ShapeDtype, primitives
from ._codegen import _TEMPLATES, _cast, _literal, _numba_type, load_kernel_module
from ._expand import expansion_graph
from ._lower import NotCompilableError, is_elementwise

__all__ = ["LoopKernel", "compile_loops"]


@dataclass
class LoopKernel:
    """A compiled loop kernel with its constants bound: ``kernel(*inputs)`` allocates and
    returns the outputs, ``kernel_out(*inputs, *outputs)`` writes into given ones."""

    kernel: Callable
    kernel_out: Callable
    source: str


def _size(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def _tuple(items: Sequence[Any]) -> str:
    items = [str(i) for i in items]
    return f"({', '.join(items)}{',' if len(items) == 1 else ''})"


def _aval(x: Any) -> ShapeDtype:
    return x.aval if isinstance(x, Var) else ShapeDtype.of(x)


class _Program:
    """The source of one kernel being written: names of graph values, constants, lines."""

    def __init__(self, graph: Graph) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.consts: list[np.ndarray] = []
        self._const_ids: dict[int, str] = {}
        self._counter = 0
        self.indent = "    "
        # Graph outputs are written in place by the operation producing them, when it
        # allocates (each output variable once).
        self.out_slot: dict[int, int] = {}
        for k, o in enumerate(graph.outputs):
            if isinstance(o, Var) and o.aval.shape and id(o) not in self.out_slot:
                self.out_slot[id(o)] = k
        for k, v in enumerate(graph.invars):
            self.names[id(v)] = f"a{k}"
        self.in_place: dict[int, int] = {}  # id(var) -> the output it is written into

    # -- names ---------------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def emit(self, line: str) -> None:
        self.lines.append(self.indent + line)

    def ref(self, x: Any) -> str:
        """The name of a graph value, or the literal or constant argument standing for it."""
        if isinstance(x, Var):
            return self.names[id(x)]
        a = np.asarray(x)
        if a.ndim == 0:
            return _literal(a[()])
        name = self._const_ids.get(id(x))
        if name is None:
            name = f"c{len(self.consts)}"
            self.consts.append(np.array(a, order="C", copy=True))
            self._const_ids[id(x)] = name
        return name

    def const(self, array: np.ndarray) -> str:
        """A constant array computed by a rule (an index map)."""
        name = f"c{len(self.consts)}"
        self.consts.append(np.ascontiguousarray(array))
        return name

    def bind(self, var: Var, name: str) -> None:
        self.names[id(var)] = name

    def alloc(self, var: Var, fill: Any = None) -> str:
        """A fresh array for ``var`` (its output argument when it is an output)."""
        name = self.fresh("v")
        slot = self.out_slot.pop(id(var), None)
        aval = var.aval
        if slot is not None:
            self.in_place[id(var)] = slot
            self.emit(f"{name} = o{slot}")
            if fill is not None:
                self.emit(f"{name}.fill({_literal(aval.dtype.type(fill))})")
        elif fill is None:
            self.emit(f"{name} = np.empty({_tuple(aval.shape)}, np.{aval.dtype.name})")
        else:
            value = _literal(aval.dtype.type(fill))
            self.emit(f"{name} = np.full({_tuple(aval.shape)}, {value}, np.{aval.dtype.name})")
        self.bind(var, name)
        return name

    def flat(self, x: Any) -> str:
        """A flat (1-D) view of a graph array, bound to a local name (not re-made in loops)."""
        view = self.fresh("f")
        self.emit(f"{view} = {self.ref(x)}.reshape(({_size(_aval(x).shape)},))")
        return view

    # -- loops ---------------------------------------------------------------------------
    def open_loops(self, shape: Sequence[int]) -> list[str]:
        idx = []
        for n in shape:
            i = self.fresh("i")
            self.emit(f"for {i} in range({n}):")
            self.indent += "    "
            idx.append(i)
        return idx

    def close_loops(self, count: int) -> None:
        self.indent = self.indent[: len(self.indent) - 4 * count]


def element(prog: _Program, x: Any, idx: Sequence[str], shape: Sequence[int]) -> str:
    """The element of ``x`` (broadcast against ``shape``) at loop indices ``idx``."""
    xs = _aval(x).shape
    if _is_splat(x):
        return _literal(np.asarray(x).flat[0])  # no memory read
    lead = len(shape) - len(xs)
    terms = ["0" if n == 1 and shape[lead + k] != 1 else idx[lead + k] for k, n in enumerate(xs)]
    diagonal = _scaled_identity(x)
    if diagonal is not None:  # the one-hot basis of a Jacobian: computed, not read
        k, c = diagonal
        zero = _literal(np.asarray(x).dtype.type(0))
        return f"({_literal(c)} if {terms[1]} - {terms[0]} == {k} else {zero})"
    name = prog.ref(x)
    if not xs:
        return name
    return f"{name}[{', '.join(terms)}]"


def _scaled_identity(x: Any) -> tuple[int, Any] | None:
    """``(k, c)`` when the constant ``x`` is ``c * np.eye(m, n, k)`` (a slice of the identity,
    as the batched backward pass of a Jacobian or Hessian holds), else None."""
    if isinstance(x, Var) or np.ndim(x) != 2 or np.size(x) < 2:
        return None
    a = np.asarray(x)
    nonzero = np.flatnonzero(a[0] != 0) if a.shape[0] else []
    if len(nonzero) == 1:
        k = int(nonzero[0])
        c = a[0, k]
    elif len(nonzero) == 0 and a.shape[0] > 1 and np.any(a[:, 0] != 0):
        k = -int(np.flatnonzero(a[:, 0] != 0)[0])
        c = a[-k, 0]
    else:
        return None
    return (k, c) if np.array_equal(a, c * np.eye(*a.shape, k, dtype=a.dtype)) else None


# -- elementwise, fused ----------------------------------------------------------------------
def _scalar_form(eqn: Eqn, args: list[str]) -> str:
    name = eqn.prim.name
    dtype = eqn.outvars[0].aval.dtype
    if name in ("astype", "astype_nondiff", "broadcast_to"):
        return _cast(dtype, args[0]) if dtype != _aval(eqn.inputs[0]).dtype else args[0]
    if name == "invert":
        return f"(not {args[0]})" if dtype.kind == "b" else f"(~{args[0]})"
    extra = [_literal(v) for v in eqn.params.values()] if name == "round" else []
    return _TEMPLATES[name](args + extra)  # _fusable: every fused primitive has a template


_FUSABLE_EXTRA = frozenset({"astype", "astype_nondiff", "broadcast_to"})


def _fusable(eqn: Eqn) -> bool:
    name = eqn.prim.name
    return (
        (name in _TEMPLATES or name in _FUSABLE_EXTRA or name == "invert")
        and (is_elementwise(eqn.prim) or name in _FUSABLE_EXTRA)
        and len(eqn.outvars) == 1
    )


def _is_splat(x: Any) -> bool:
    """A constant array holding one value everywhere (read as a literal)."""
    return (
        not isinstance(x, Var)
        and np.ndim(x) > 0
        and bool(np.all(np.asarray(x) == np.asarray(x).flat[0]))
    )


def _emit_fused(prog: _Program, group: list[Eqn], used_later: set[int]) -> None:
    """One loop nest computing every equation of ``group`` (same output shape). When no
    operand broadcasts, the nest is one flat loop over contiguous views: less code for
    numba to compile and no index arithmetic."""
    shape = group[0].outvars[0].aval.shape
    sinks = [e for e in group if _is_sink(e)]
    group = [e for e in group if not _is_sink(e)]
    members = {id(e.outvars[0]) for e in group}
    if not shape:  # scalars: straight-line code
        for e in group:
            args = [element(prog, a, [], shape) for a in e.inputs]
            name = prog.fresh("s")
            prog.emit(f"{name} = {_scalar_form(e, args)}")
            prog.bind(e.outvars[0], name)
        for e in sinks:
            _reduction(prog, e)
        return
    outside = [
        a for e in group + sinks for a in e.inputs if not (isinstance(a, Var) and id(a) in members)
    ]
    # Flat loops lose the multi-index a partial reduction accumulates by.
    flat = (
        len(shape) > 1
        and all(not e.outvars[0].aval.shape for e in sinks)
        and all(
            (_aval(a).shape in ((), shape) and _scaled_identity(a) is None) or _is_splat(a)
            for a in outside
        )
    )
    arrays = {
        id(e.outvars[0]): prog.alloc(e.outvars[0]) for e in group if id(e.outvars[0]) in used_later
    }
    accumulators = [_Accumulator(prog, e) for e in sinks]
    if flat:
        views = {id(a): prog.flat(a) for a in outside if _aval(a).shape and not _is_splat(a)}
        stores = {
            key: prog.flat(v)
            for key, v in ((id(e.outvars[0]), e.outvars[0]) for e in group)
            if key in arrays
        }
        (j,) = prog.open_loops((_size(shape),))

        def read(a: Any) -> str:
            view = views.get(id(a))
            return f"{view}[{j}]" if view is not None else element(prog, a, [], ())

        def store(key: int) -> str:
            return f"{stores[key]}[{j}]"
    else:
        idx = prog.open_loops(shape)

        def read(a: Any) -> str:
            return element(prog, a, idx, shape)

        def store(key: int) -> str:
            return f"{arrays[key]}[{', '.join(idx)}]"

    local: dict[int, str] = {}

    def value(a: Any) -> str:
        return local[id(a)] if isinstance(a, Var) and id(a) in local else read(a)

    for e in group:
        name = prog.fresh("t")
        prog.emit(f"{name} = {_scalar_form(e, [value(a) for a in e.inputs])}")
        local[id(e.outvars[0])] = name
        if id(e.outvars[0]) in arrays:
            prog.emit(f"{store(id(e.outvars[0]))} = {name}")
    for e, acc in zip(sinks, accumulators, strict=True):
        acc.update([] if flat else idx, value(e.inputs[0]))
    prog.close_loops(1 if flat else len(shape))
    for acc in accumulators:
        acc.finish()


# -- equations run by their own implementation (NumPy, LAPACK) ----------------------------
#: Functions NumPy evaluates with SIMD loops and numba with scalar libm calls (about ten times
#: slower for tanh here): on large arrays they are handed to NumPy, their neighbours stay
#: fused.
_SIMD_IN_NUMPY = frozenset(
    {
        "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan",
        "tanh", "sinh", "cosh", "arcsin", "arccos", "arctan", "arcsinh", "arccosh",
        "arctanh", "arctan2", "power", "cbrt",
    }
)  # fmt: skip
#: Elements from which such a function runs in NumPy (an object-mode block costs a few
#: microseconds).
HOST_MIN_SIZE = 4096


def _param_source(value: Any) -> str | None:
    """Python source for a parameter value, or None when it has no simple literal."""
    if isinstance(value, np.dtype):
        return f"np.dtype({value.str!r})"
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return repr(value)
    return None


def _on_host(e: Eqn) -> bool:
    """An elementwise equation NumPy evaluates faster than a compiled scalar loop."""
    return (
        e.prim.name in _SIMD_IN_NUMPY
        and _size(e.outvars[0].aval.shape) >= HOST_MIN_SIZE
        and all(_param_source(v) is not None for v in e.params.values())
    )


def _host_call_source(eqn: Eqn, prog: _Program) -> str | None:
    """``_prims[name].impl(args..., params...)`` as source, or None when a parameter has no
    literal form or an operand is not an array (a sparse matrix, an operator)."""
    params = [(k, _param_source(v)) for k, v in eqn.params.items()]
    if any(src is None for _, src in params):
        return None
    if not all(
        isinstance(a, Var | np.ndarray | np.generic | int | float | bool) for a in eqn.inputs
    ):
        return None
    args = [prog.ref(a) for a in eqn.inputs] + [f"{k}={src}" for k, src in params]
    return f"_prims[{eqn.prim.name!r}].impl({', '.join(args)})"


def _emit_host(prog: _Program, eqn: Eqn) -> None:
    """``eqn`` by its own implementation (NumPy, LAPACK, SciPy: eager mode's code and
    errors) in an object-mode block, writing into arrays the kernel allocates."""
    call = _host_call_source(eqn, prog)
    if call is None:
        raise NotCompilableError(
            f"primitive '{eqn.prim.name}' cannot be compiled: it takes a parameter or operand "
            "that has no array form (call the function without sg.jit)"
        )
    outs = eqn.outvars
    scalars = [not v.aval.shape for v in outs]
    dsts = [
        prog.fresh("s") if scalar else prog.alloc(v)
        for v, scalar in zip(outs, scalars, strict=True)
    ]
    # Scalar results leave the block as one-element arrays (objmode needs types for values).
    boxes = {d: prog.fresh("b") for d, scalar in zip(dsts, scalars, strict=True) if scalar}
    for d, v in zip(dsts, outs, strict=True):
        if d in boxes:
            prog.emit(f"{boxes[d]} = np.empty(1, np.{v.aval.dtype.name})")
    prog.emit("with numba.objmode():")
    single_ufunc = len(outs) == 1 and not scalars[0] and isinstance(eqn.prim.impl, np.ufunc)
    if single_ufunc and outs[0].aval.dtype == np.float64:
        prog.emit(f"    {call[:-1]}, out={dsts[0]})")  # the ufunc writes in place
    else:
        result = prog.fresh("r")
        prog.emit(f"    {result} = {call}")
        for k, d in enumerate(dsts):
            value = f"{result}[{k}]" if eqn.prim.multiple_results else result
            prog.emit(f"    {boxes[d]}[0] = {value}" if d in boxes else f"    {d}[...] = {value}")
    for d, v in zip(dsts, outs, strict=True):
        if d in boxes:
            prog.emit(f"{d} = {boxes[d]}[0]")
            prog.bind(v, d)


# -- the other rules, by primitive name --------------------------------------------------------
_RULES: dict[str, Callable[[_Program, Eqn], None]] = {}


def _rule(*names: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        for n in names:
            _RULES[n] = fn
        return fn

    return deco


_REDUCERS = {
    "sum": (0, "{acc} + {x}"),
    "prod": (1, "{acc} * {x}"),
    "max": (-math.inf, "_s.maximum({acc}, {x})"),
    "min": (math.inf, "_s.minimum({acc}, {x})"),
    "any": (False, "({acc} or ({x} != 0))"),
    "all": (True, "({acc} and ({x} != 0))"),
    "count_nonzero": (0, "({acc} + (1 if {x} != 0 else 0))"),
}


def _identity(name: str, dtype: np.dtype) -> Any:
    value = _REDUCERS[name][0]
    if dtype.kind in "iu" and math.isinf(value):
        info = np.iinfo(dtype)
        return info.min if value < 0 else info.max
    return value


class _Accumulator:
    """The accumulator of a reduction equation: started before the loops over its input,
    updated once per input element (``update(idx, value)`` emits the line), finished
    after them. A full reduction accumulates in a scalar, others in a kept-dims array."""

    def __init__(self, prog: _Program, eqn: Eqn) -> None:
        self.prog, self.eqn = prog, eqn
        xs = _aval(eqn.inputs[0]).shape
        self.axes = tuple(range(len(xs))) if eqn.params["axis"] is None else eqn.params["axis"]
        out = eqn.outvars[0]
        dtype = out.aval.dtype
        identity = _identity(eqn.prim.name, dtype)
        self.combine = _REDUCERS[eqn.prim.name][1]
        self.full = not out.aval.shape
        if self.full:
            self.acc = prog.fresh("s")
            prog.emit(f"{self.acc} = {_literal(dtype.type(identity))}")
        else:
            kept = tuple(1 if a in self.axes else n for a, n in enumerate(xs))
            keep = eqn.params["keepdims"]
            self.acc = prog.alloc(out if keep else Var(ShapeDtype(kept, dtype)), fill=identity)

    def update(self, idx: Sequence[str], value: str) -> None:
        target = self.acc
        if not self.full:
            terms = ("0" if a in self.axes else i for a, i in enumerate(idx))
            target = f"{self.acc}[{', '.join(terms)}]"
        self.prog.emit(f"{target} = {self.combine.format(acc=target, x=value)}")

    def finish(self) -> None:
        out = self.eqn.outvars[0]
        if self.full:
            self.prog.bind(out, self.acc)
        elif not self.eqn.params["keepdims"]:
            self.prog.bind(out, f"{self.acc}.reshape({_tuple(out.aval.shape)})")


@_rule(*_REDUCERS)
def _reduction(prog: _Program, eqn: Eqn) -> None:
    (x,) = eqn.inputs
    xs = _aval(x).shape
    acc = _Accumulator(prog, eqn)
    idx = prog.open_loops(xs)
    acc.update(idx, element(prog, x, idx, xs))
    prog.close_loops(len(xs))
    acc.finish()


@_rule("cumsum")
def _cumsum(prog: _Program, eqn: Eqn) -> None:
    (x,) = eqn.inputs
    out = eqn.outvars[0]
    xs = _aval(x).shape
    axis, reverse = eqn.params["axis"], eqn.params["reverse"]
    if axis is None or not xs:
        xs, axis = (_size(xs),), 0
    pre, n, post = _size(xs[:axis]), xs[axis], _size(xs[axis + 1 :])
    src = prog.fresh("x")
    prog.emit(f"{src} = {prog.ref(x)}.reshape(({pre}, {n}, {post}))")
    dst = prog.alloc(out)
    view = prog.fresh("y")
    prog.emit(f"{view} = {dst}.reshape(({pre}, {n}, {post}))")
    p, q = prog.open_loops((pre, post))
    acc = prog.fresh("s")
    prog.emit(f"{acc} = {_literal(out.aval.dtype.type(0))}")
    order = f"range({n} - 1, -1, -1)" if reverse else f"range({n})"
    prog.emit(f"for j in {order}:")
    prog.emit(f"    {acc} = {acc} + {src}[{p}, j, {q}]")
    prog.emit(f"    {view}[{p}, j, {q}] = {acc}")
    prog.close_loops(2)


@_rule("reshape")
def _reshape(prog: _Program, eqn: Eqn) -> None:
    (x,) = eqn.inputs
    out = eqn.outvars[0]
    shape = out.aval.shape
    if not _aval(x).shape:
        name = prog.alloc(out)
        prog.emit(f"{name}.fill({prog.ref(x)})")
    elif not shape:
        prog.bind(out, prog.fresh("s"))
        prog.emit(f"{prog.names[id(out)]} = {prog.flat(x)}[0]")
    else:
        prog.bind(out, f"{prog.ref(x)}.reshape({_tuple(shape)})")


@_rule("stop_gradient")
def _alias(prog: _Program, eqn: Eqn) -> None:
    prog.bind(eqn.outvars[0], prog.ref(eqn.inputs[0]))


@_rule("transpose")
def _transpose(prog: _Program, eqn: Eqn) -> None:
    (x,) = eqn.inputs
    out = eqn.outvars[0]
    axes = eqn.params["axes"]
    name = prog.alloc(out)
    idx = prog.open_loops(out.aval.shape)
    src = [""] * len(axes)
    for k, a in enumerate(axes):
        src[a] = idx[k]
    prog.emit(f"{name}[{', '.join(idx)}] = {prog.ref(x)}[{', '.join(src)}]")
    prog.close_loops(len(idx))


def _probe(x: Any) -> np.ndarray:
    """The flat positions of an array shaped like ``x``: what indexing rules index."""
    shape = _aval(x).shape
    return np.arange(_size(shape), dtype=np.int64).reshape(shape)


def _gather(prog: _Program, out: Var, source: str, index_map: np.ndarray) -> None:
    """``out.flat[j] = source[index_map.flat[j]]``."""
    if not out.aval.shape:
        prog.bind(out, prog.fresh("s"))
        prog.emit(f"{prog.names[id(out)]} = {source}[{int(index_map)}]")
        return
    name = prog.alloc(out)
    m = prog.const(index_map.ravel())
    size = index_map.size
    prog.emit(f"{name}f = {name}.reshape(({size},))")
    prog.emit(f"for j in range({size}):")
    prog.emit(f"    {name}f[j] = {source}[{m}[j]]")


def _source_flat(prog: _Program, x: Any) -> str:
    if not _aval(x).shape:
        name = prog.fresh("x")
        prog.emit(f"{name} = np.full(1, {prog.ref(x)})")
        return name
    return prog.flat(x)


def _basic_index(idx: tuple, shape: tuple[int, ...]) -> list | None:
    """For an index of slices and integers (with at most one Ellipsis): one entry per axis
    of the indexed array, ``(start, step)`` for a sliced axis or an int for a fixed one.
    None for other indices (arrays, new axes: they go through an index map)."""
    consumed = sum(1 for i in idx if i is not Ellipsis)
    axes: list = []
    for i in idx:
        if i is Ellipsis:
            axes.extend([slice(None)] * (len(shape) - consumed))
        elif isinstance(i, slice | int | np.integer) and not isinstance(i, bool | np.bool_):
            axes.append(i)
        else:
            return None
    axes.extend([slice(None)] * (len(shape) - len(axes)))
    out = []
    for i, n in zip(axes, shape, strict=True):
        if isinstance(i, slice):
            start, _, step = i.indices(n)
            out.append((start, step))
        else:
            out.append(int(i) % n)
    return out


def _strided(axes: list, idx: Sequence[str]) -> str:
    """The source index of output element ``idx`` under a basic index (see above)."""
    terms, k = [], 0
    for a in axes:
        if isinstance(a, tuple):
            start, step = a
            terms.append(f"{start} + {step} * {idx[k]}" if (start, step) != (0, 1) else idx[k])
            k += 1
        else:
            terms.append(str(a))
    return ", ".join(terms)


@_rule("getitem")
def _getitem(prog: _Program, eqn: Eqn) -> None:
    (x,) = eqn.inputs
    out = eqn.outvars[0]
    basic = _basic_index(eqn.params["idx"], _aval(x).shape) if _aval(x).shape else None
    if basic is not None:  # a strided copy, no index map
        name = prog.alloc(out) if out.aval.shape else None
        idx = prog.open_loops(out.aval.shape)
        value = f"{prog.ref(x)}[{_strided(basic, idx)}]"
        if name is None:
            prog.bind(out, prog.fresh("s"))
            prog.emit(f"{prog.names[id(out)]} = {value}")
        else:
            prog.emit(f"{name}[{', '.join(idx)}] = {value}")
        prog.close_loops(len(idx))
        return
    index_map = _probe(x)[eqn.params["idx"]]
    _gather(prog, out, _source_flat(prog, x), np.asarray(index_map))


@_rule("concatenate")
def _concatenate(prog: _Program, eqn: Eqn) -> None:
    # One gather from the inputs laid end to end; each input is copied once into it.
    total = sum(_size(_aval(a).shape) for a in eqn.inputs)
    joined = prog.fresh("x")
    dtype = eqn.outvars[0].aval.dtype
    prog.emit(f"{joined} = np.empty({total}, np.{dtype.name})")
    probes, offset = [], 0
    for a in eqn.inputs:
        n = _size(_aval(a).shape)
        prog.emit(f"{joined}[{offset}:{offset + n}] = {_source_flat(prog, a)}")
        probes.append(_probe(a) + offset)
        offset += n
    index_map = primitives["concatenate"].impl(*probes, **eqn.params)
    _gather(prog, eqn.outvars[0], joined, index_map)


def _scatter(prog: _Program, out: Var, index_map: np.ndarray, updates: Any, op: str) -> None:
    """``out.flat[index_map[j]] op= updates[j]`` (updates broadcast to the map's shape)."""
    size = index_map.size
    if size == 0:
        return
    m = prog.const(index_map.ravel())
    flat_out = prog.fresh("f")
    prog.emit(f"{flat_out} = {prog.names[id(out)]}.reshape(({_size(out.aval.shape)},))")
    ushape = _aval(updates).shape
    if not ushape or (not isinstance(updates, Var) and np.ndim(updates) == 0):
        value = prog.ref(updates)
        read = lambda: value  # noqa: E731
    elif ushape == index_map.shape:
        src = prog.flat(updates)
        read = lambda: f"{src}[j]"  # noqa: E731
    else:
        upd = np.broadcast_to(_probe(updates), index_map.shape)
        um = prog.const(upd.ravel())
        src = prog.flat(updates)
        read = lambda: f"{src}[{um}[j]]"  # noqa: E731
    prog.emit(f"for j in range({size}):")
    target = f"{flat_out}[{m}[j]]"
    value = read()
    if op == "=":
        prog.emit(f"    {target} = {value}")
    else:
        prog.emit(f"    {target} = {target} {op} {value}")


@_rule("unindex")
def _unindex(prog: _Program, eqn: Eqn) -> None:
    (g,) = eqn.inputs
    out = eqn.outvars[0]
    name = prog.alloc(out, fill=0)
    basic = _basic_index(eqn.params["idx"], out.aval.shape)
    if basic is not None and _aval(g).shape:  # basic indices do not repeat: a strided copy
        idx = prog.open_loops(_aval(g).shape)
        prog.emit(f"{name}[{_strided(basic, idx)}] = {prog.ref(g)}[{', '.join(idx)}]")
        prog.close_loops(len(idx))
        return
    index_map = np.asarray(_probe(out)[eqn.params["idx"]])
    _scatter(prog, out, index_map, g, "+")


_SCATTER_OPS = {"scatter_add": "+", "scatter_mul": "*", "scatter_set": "="}


@_rule(*_SCATTER_OPS)
def _scatter_rule(prog: _Program, eqn: Eqn) -> None:
    operand, updates = eqn.inputs
    out = eqn.outvars[0]
    name = prog.alloc(out)
    if _aval(operand).shape:
        prog.emit(f"{name}.reshape(({_size(out.aval.shape)},))[:] = {prog.flat(operand)}")
    else:
        prog.emit(f"{name}.fill({prog.ref(operand)})")
    index_map = np.asarray(_probe(out)[eqn.params["idx"]])
    _scatter(prog, out, index_map, updates, _SCATTER_OPS[eqn.prim.name])


@_rule("trace")
def _trace(prog: _Program, eqn: Eqn) -> None:
    (x,) = eqn.inputs
    p = eqn.params
    diag = np.diagonal(_probe(x), p["offset"], p["axis1"], p["axis2"])  # (..., d)
    rows = diag.reshape(-1, diag.shape[-1])
    m = prog.const(rows)
    src = prog.flat(x)
    out = eqn.outvars[0]
    zero = _literal(out.aval.dtype.type(0))
    if not out.aval.shape:
        acc = prog.fresh("s")
        prog.emit(f"{acc} = {zero}")
        prog.emit(f"for d in range({rows.shape[1]}):")
        prog.emit(f"    {acc} += {src}[{m}[0, d]]")
        prog.bind(out, acc)
        return
    name = prog.alloc(out, fill=0)
    prog.emit(f"{name}f = {name}.reshape(({rows.shape[0]},))")
    prog.emit(f"for r in range({rows.shape[0]}):")
    prog.emit(f"    for d in range({rows.shape[1]}):")
    prog.emit(f"        {name}f[r] += {src}[{m}[r, d]]")


def _contraction(prog: _Program, out: Var, operands: list, letters: list[str], result: str):
    """``out[result] = sum over the other letters of prod(operand[letters])``, as loops
    (operands of size 1 along a letter broadcast)."""
    sizes: dict[str, int] = {}
    for x, lets in zip(operands, letters, strict=True):
        for c, n in zip(lets, _aval(x).shape, strict=True):
            if sizes.get(c, 1) not in (1, n) and n != 1:
                raise NotCompilableError(f"einsum: inconsistent sizes for index '{c}'")
            sizes[c] = max(sizes.get(c, 1), n)
    order = list(result) + [c for c in sizes if c not in result]
    if result:
        name = prog.alloc(out, fill=0)
        target = f"{name}[{', '.join(c + '_' for c in result)}]"
    else:
        name = target = prog.fresh("s")
        prog.emit(f"{name} = {_literal(out.aval.dtype.type(0))}")
    for c in order:
        prog.emit(f"for {c}_ in range({sizes[c]}):")
        prog.indent += "    "
    reads = []
    for x, lets in zip(operands, letters, strict=True):
        shape = _aval(x).shape
        terms = [
            "0" if n == 1 and sizes[c] != 1 else c + "_" for c, n in zip(lets, shape, strict=True)
        ]
        reads.append(f"{prog.ref(x)}[{', '.join(terms)}]" if lets else prog.ref(x))
    prog.emit(f"{target} += {' * '.join(reads)}")
    prog.close_loops(len(order))
    if not result:
        prog.bind(out, name)


@_rule("einsum")
def _einsum(prog: _Program, eqn: Eqn) -> None:
    subscripts = eqn.params["subscripts"].replace(" ", "")
    if "..." in subscripts:
        raise NotCompilableError("einsum with '...' has no loop form yet")
    if "->" in subscripts:
        lhs, result = subscripts.split("->")
    else:
        lhs = subscripts
        counts = {c: lhs.count(c) for c in lhs if c.isalpha()}
        result = "".join(sorted(c for c, k in counts.items() if k == 1))
    letters = lhs.split(",")
    _contraction(prog, eqn.outvars[0], list(eqn.inputs), letters, result)


@_rule("matmul")
def _matmul(prog: _Program, eqn: Eqn) -> None:
    a, b = eqn.inputs
    out = eqn.outvars[0]
    sa, sb = _aval(a).shape, _aval(b).shape
    if all(_aval(x).dtype == np.float64 for x in (a, b)) and len(sa) <= 2 and len(sb) <= 2:
        if out.aval.shape:  # BLAS
            prog.emit(f"np.dot({prog.ref(a)}, {prog.ref(b)}, {prog.alloc(out)})")
        else:
            prog.bind(out, prog.fresh("s"))
            prog.emit(f"{prog.names[id(out)]} = np.dot({prog.ref(a)}, {prog.ref(b)})")
        return
    # The general case as a contraction: batch letters broadcast, then m k, k n.
    nb = max(len(sa), len(sb), 2) - 2
    batch = "".join(chr(ord("p") + k) for k in range(nb))
    la = (batch[nb - (len(sa) - 2) :] if len(sa) > 2 else "") + ("mk" if len(sa) > 1 else "k")
    lb = (batch[nb - (len(sb) - 2) :] if len(sb) > 2 else "") + ("kn" if len(sb) > 1 else "k")
    result = batch + ("m" if len(sa) > 1 else "") + ("n" if len(sb) > 1 else "")
    _contraction(prog, out, [a, b], [la, lb], result)


def _expand(graph: Graph) -> list[Eqn]:
    """The graph's equations with composite primitives replaced by their expansions."""
    eqns: list[Eqn] = []
    for e in graph.eqns:
        sub = expansion_graph(e)
        if sub is None:
            eqns.append(e)
            continue
        rename = {id(v): a for v, a in zip(sub.invars, e.inputs, strict=True)}
        for v, o in zip(e.outvars, sub.outputs, strict=True):
            rename[id(o)] = v  # the expansion's results are the original outputs
        for se in _expand(sub):
            inputs = [rename.get(id(a), a) if isinstance(a, Var) else a for a in se.inputs]
            outvars = [rename.get(id(v), v) for v in se.outvars]
            eqns.append(Eqn(se.prim, inputs, se.params, outvars))
    return eqns


# -- the kernel ------------------------------------------------------------------------------
def _is_sink(e: Eqn) -> bool:
    """A reduction: it can close a fused loop over its input's shape."""
    return e.prim.name in _REDUCERS


def _fusion_key(e: Eqn) -> tuple | None:
    """The loop shape ``e`` can share: its output's (elementwise) or its input's (a
    reduction accumulating inside the loop that computes its input)."""
    if _is_sink(e):
        return _aval(e.inputs[0]).shape
    return e.outvars[0].aval.shape if _fusable(e) and not _on_host(e) else None


def _schedule(eqns: list[Eqn]) -> list[Eqn]:
    """A dependency order that keeps elementwise equations of one shape together, so they
    fuse into one loop nest: among the equations whose inputs are ready, one that joins
    the current group goes first, else the earliest. (Derivative graphs interleave their
    forward and backward values; numba's compile time grows with the number of loops.)"""
    produced_by: dict[int, int] = {}
    for k, e in enumerate(eqns):
        for v in e.outvars:
            produced_by[id(v)] = k
    waiting = [0] * len(eqns)
    users: list[list[int]] = [[] for _ in eqns]
    for k, e in enumerate(eqns):
        deps = {produced_by[id(a)] for a in e.inputs if isinstance(a, Var) and id(a) in produced_by}
        waiting[k] = len(deps)
        for d in deps:
            users[d].append(k)
    ready = [k for k in range(len(eqns)) if not waiting[k]]
    order: list[Eqn] = []
    current = None
    while ready:
        pick = next(
            (k for k in ready if current is not None and _fusion_key(eqns[k]) == current), None
        )
        if pick is None:
            pick = min(ready)
        ready.remove(pick)
        order.append(eqns[pick])
        current = _fusion_key(eqns[pick])
        for u in users[pick]:
            waiting[u] -= 1
            if not waiting[u]:
                ready.append(u)
    return order


def _groups(eqns: list[Eqn]) -> list[list[Eqn]]:
    """Consecutive fusable equations of one shape form a group, with the reductions over
    that shape that follow them (a reduction's result is complete only after the loop, so
    nothing in the group may read it); other equations are alone."""
    groups: list[list[Eqn]] = []
    sunk: set[int] = set()  # outputs of the last group's reductions
    for e in eqns:
        key = _fusion_key(e)
        last = groups[-1] if groups else None
        joins = (
            key is not None
            and last is not None
            and not _is_sink(last[0])
            and _fusion_key(last[0]) == key
            and not any(isinstance(a, Var) and id(a) in sunk for a in e.inputs)
        )
        if joins:
            last.append(e)
        else:
            groups.append([e])
            sunk = set()
        if _is_sink(e):
            sunk.add(id(e.outvars[0]))
    return groups


def _program(graph: Graph) -> _Program:
    prog = _Program(graph)
    eqns = _schedule(_expand(graph))
    # Which group reads each variable (outputs count as a reader of their own).
    groups = _groups(eqns)
    readers: dict[int, set[int]] = {}
    for g, group in enumerate(groups):
        for e in group:
            for x in e.inputs:
                if isinstance(x, Var):
                    readers.setdefault(id(x), set()).add(g)
    for o in graph.outputs:
        readers.setdefault(id(o), set()).add(-1)
    for g, group in enumerate(groups):
        if _on_host(group[0]):
            _emit_host(prog, group[0])
            continue
        if _fusable(group[0]):
            stored = {id(e.outvars[0]) for e in group if readers.get(id(e.outvars[0]), set()) - {g}}
            _emit_fused(prog, group, stored)
            continue
        (e,) = group
        # Primitives without a loop form (factorizations, sorts, special functions numba
        # lacks) run their own implementation.
        _RULES.get(e.prim.name, _emit_host)(prog, e)
    return prog


def compile_loops(graph: Graph) -> LoopKernel:
    """Compile ``graph`` to a loop kernel (raises ``NotCompilableError`` naming a primitive
    without a loop form)."""
    prog = _program(graph)
    for k, o in enumerate(graph.outputs):
        shape = _aval(o).shape
        if not shape:
            prog.emit(f"o{k}[()] = {prog.ref(o)}")
        elif prog.in_place.get(id(o)) != k:  # not written by the operation producing it
            prog.emit(f"o{k}.reshape(({_size(shape)},))[:] = {prog.flat(o)}")
    return _assemble(graph, prog)


def _assemble(graph: Graph, prog: _Program) -> LoopKernel:
    nin, nconst, nout = len(graph.invars), len(prog.consts), len(graph.outputs)
    ins = [f"a{k}" for k in range(nin)] + [f"c{k}" for k in range(nconst)]
    outs = [f"o{k}" for k in range(nout)]
    out_avals = [_aval(o) for o in graph.outputs]
    lines = [
        "import math",
        "import numba",
        "import numpy as np",
        "from scigrad.core.primitive import primitives as _prims",
        "from scigrad.jit import _support as _s",
        "",
        "",
        f"def kernel_out({', '.join(ins + outs)}):",
    ]
    checks = [f"a{k}.shape != {v.aval.shape!r}" for k, v in enumerate(graph.invars) if v.aval.shape]
    checks += [f"o{k}.shape != {a.shape!r}" for k, a in enumerate(out_avals)]
    if checks:
        lines.append(f"    if {' or '.join(checks)}:")
        lines.append("        raise ValueError('scigrad.jit: argument shapes changed')")
    lines += prog.lines or ["    pass"]
    lines += ["", "", f"def kernel({', '.join(ins)}):"]
    for k, a in enumerate(out_avals):
        lines.append(f"    o{k} = np.empty({_tuple(a.shape)}, np.{a.dtype.name})")
    lines.append(f"    kernel_out({', '.join(ins + outs)})")
    results = [f"o{k}[()]" if not a.shape else f"o{k}" for k, a in enumerate(out_avals)]
    lines.append(f"    return {results[0] if nout == 1 else '(' + ', '.join(results) + ',)'}")
    source = "\n".join(lines) + "\n"

    from numba import types

    in_types = [_numba_type(v.aval.dtype, v.aval.ndim) for v in graph.invars]
    in_types += [_numba_type(c.dtype, c.ndim) for c in prog.consts]
    out_types = [types.Array(_numba_type(a.dtype, 0), len(a.shape), "C") for a in out_avals]
    results_t = [
        _numba_type(a.dtype, 0) if not a.shape else t
        for a, t in zip(out_avals, out_types, strict=True)
    ]
    ret = results_t[0] if nout == 1 else types.Tuple(results_t)
    # The constants are arguments: the source, and the compiled code cached by it, do not
    # depend on their values.
    module = load_kernel_module(source, types.void(*in_types, *out_types), ret(*in_types))
    consts = tuple(prog.consts)
    kernel_c, kernel_out_c = module.kernel, module.kernel_out

    def kernel(*inputs: Any) -> Any:
        return kernel_c(*inputs, *consts)

    def kernel_out(*args: Any) -> None:
        kernel_out_c(*args[:nin], *consts, *args[nin:])

    return LoopKernel(kernel, kernel_out, source)
