"""Code generation: an expression DAG becomes a numba-compiled, allocation-free kernel.

The generated Python source reads the input elements it needs into local variables, computes
every live expression once (in the DAG's creation order, a topological order) and writes the
output elements. Two entry points are compiled for each signature:

* ``kernel_out(inputs..., outputs...)`` writes into preallocated outputs and allocates
  nothing;
* ``kernel(inputs...)`` allocates the outputs and calls ``kernel_out``.

A batched kernel (``sg.jit(sg.vmap(f))``) wraps the same body in one loop over the batch
axis; ``parallel=True`` runs that kernel on chunks of the batch in threads (kernels release
the GIL), so it costs no extra compilation. Kernels are written to a file in the cache
directory named by a hash of their source and compiled with ``numba.njit(cache=True)``, so a
new process that generates the same source loads the compiled machine code from disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._expr import Expr
from ._lower import NotCompilableError

__all__ = ["KernelSpec", "cache_dir", "compile_kernel", "load_kernel_module"]


def cache_dir() -> str:
    """Where generated kernels and numba's compiled code are kept (``SCIGRAD_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/scigrad/jit``, else ``~/.cache/scigrad/jit``)."""
    path = os.environ.get("SCIGRAD_CACHE_DIR")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "scigrad", "jit")
    os.makedirs(path, exist_ok=True)
    return path


def _binary(op: str) -> Callable[[list[str]], str]:
    return lambda a: f"({a[0]} {op} {a[1]})"


def _call(fn: str) -> Callable[[list[str]], str]:
    return lambda a: f"{fn}({', '.join(a)})"


_TEMPLATES: dict[str, Callable[[list[str]], str]] = {
    "add": _binary("+"),
    "subtract": _binary("-"),
    "multiply": _binary("*"),
    "divide": _binary("/"),
    "power": _binary("**"),
    "floor_divide": _binary("//"),
    "remainder": _binary("%"),
    "negative": lambda a: f"(-{a[0]})",
    "positive": lambda a: a[0],
    "square": lambda a: f"({a[0]} * {a[0]})",
    "reciprocal": lambda a: f"(1.0 / {a[0]})",
    "absolute": _call("abs"),
    "sqrt": _call("math.sqrt"),
    "cbrt": lambda a: f"math.copysign(abs({a[0]}) ** (1.0 / 3.0), {a[0]})",
    "exp": _call("math.exp"),
    "exp2": lambda a: f"(2.0 ** {a[0]})",
    "expm1": _call("math.expm1"),
    "log": _call("math.log"),
    "log2": _call("math.log2"),
    "log10": _call("math.log10"),
    "log1p": _call("math.log1p"),
    "sin": _call("math.sin"),
    "cos": _call("math.cos"),
    "tan": _call("math.tan"),
    "arcsin": _call("math.asin"),
    "arccos": _call("math.acos"),
    "arctan": _call("math.atan"),
    "arctan2": _call("math.atan2"),
    "sinh": _call("math.sinh"),
    "cosh": _call("math.cosh"),
    "tanh": _call("math.tanh"),
    "arcsinh": _call("math.asinh"),
    "arccosh": _call("math.acosh"),
    "arctanh": _call("math.atanh"),
    "hypot": _call("math.hypot"),
    "deg2rad": lambda a: f"({a[0]} * {math.pi / 180.0!r})",
    "rad2deg": lambda a: f"({a[0]} * {180.0 / math.pi!r})",
    "floor": _call("np.floor"),
    "ceil": _call("np.ceil"),
    "trunc": _call("np.trunc"),
    "rint": _call("np.rint"),
    "round": lambda a: f"np.round({a[0]}, {a[1]})",
    "fmod": _call("np.fmod"),
    "erf": _call("math.erf"),
    "erfc": _call("math.erfc"),
    "gamma": _call("math.gamma"),
    "gammaln": lambda a: f"math.lgamma({a[0]})",
    "maximum": _call("_s.maximum"),
    "minimum": _call("_s.minimum"),
    "fmax": _call("_s.fmax"),
    "fmin": _call("_s.fmin"),
    "sign": _call("_s.sign"),
    "heaviside": _call("_s.heaviside"),
    "logaddexp": _call("_s.logaddexp"),
    "logaddexp2": _call("_s.logaddexp2"),
    "expit": _call("_s.expit"),
    "log_expit": _call("_s.log_expit"),
    "logit": _call("_s.logit"),
    "xlogy": _call("_s.xlogy"),
    "xlog1py": _call("_s.xlog1py"),
    "entr": _call("_s.entr"),
    "ndtr": _call("_s.ndtr"),
    "where": lambda a: f"({a[1]} if {a[0]} else {a[2]})",
    "less": _binary("<"),
    "less_equal": _binary("<="),
    "greater": _binary(">"),
    "greater_equal": _binary(">="),
    "equal": _binary("=="),
    "not_equal": _binary("!="),
    "logical_and": _binary("and"),
    "logical_or": _binary("or"),
    "logical_xor": lambda a: f"(bool({a[0]}) != bool({a[1]}))",
    "logical_not": lambda a: f"(not {a[0]})",
    "bitwise_and": _binary("&"),
    "bitwise_or": _binary("|"),
    "bitwise_xor": _binary("^"),
    "left_shift": _binary("<<"),
    "right_shift": _binary(">>"),
    "isnan": lambda a: f"({a[0]} != {a[0]})",
    "isinf": _call("math.isinf"),
    "isfinite": _call("math.isfinite"),
    "signbit": lambda a: f"(math.copysign(1.0, {a[0]}) < 0)",
}


def _literal(c: Any) -> str:
    if isinstance(c, bool | np.bool_):
        return repr(bool(c))
    if isinstance(c, int | np.integer):
        return repr(int(c))
    v = float(c)
    if math.isnan(v):
        return "math.nan"
    if math.isinf(v):
        return "math.inf" if v > 0 else "(-math.inf)"
    return repr(v)


def _cast(dtype: np.dtype, arg: str) -> str:
    if dtype.kind == "f":
        return f"np.{dtype.name}({arg})"
    if dtype.kind in "iu":
        return f"np.{dtype.name}({arg})"
    if dtype.kind == "b":
        return f"({arg} != 0)"
    raise NotCompilableError(f"cannot compile a conversion to {dtype}")


@dataclass(frozen=True)
class KernelSpec:
    """What a kernel computes: input avals, the output expressions, and batching."""

    in_shapes: tuple[tuple[int, ...], ...]
    in_dtypes: tuple[np.dtype, ...]
    in_batched: tuple[bool, ...]
    outputs: tuple[np.ndarray, ...]  # object arrays of Expr or numbers
    out_dtypes: tuple[np.dtype, ...]
    batched: bool = False


def live_nodes(outputs: Sequence[np.ndarray]) -> list[Expr]:
    seen: dict[int, Expr] = {}
    stack = [e for o in outputs for e in o.flat if isinstance(e, Expr)]
    while stack:
        e = stack.pop()
        if e.serial in seen:
            continue
        seen[e.serial] = e
        if e.op != "input":
            stack.extend(a for a in e.args if isinstance(a, Expr))
    return [seen[k] for k in sorted(seen)]


def _element(name: str, index: tuple, batched: bool) -> str:
    idx = (("b",) if batched else ()) + tuple(str(i) for i in index)
    if not idx:
        return f"{name}[()]"
    return f"{name}[{', '.join(idx)}]"


def _statement(e: Expr, names: dict[int, str], spec: KernelSpec) -> str:
    """The right-hand side computing node ``e``."""
    if e.op == "input":
        k, *index = e.args
        batched = spec.batched and spec.in_batched[k]
        if not spec.in_shapes[k] and not batched:
            return f"a{k}"  # a scalar argument
        return _element(f"a{k}", tuple(index), batched)
    args = [names[a.serial] if isinstance(a, Expr) else _literal(a) for a in e.args]
    if e.op == "astype":
        return _cast(e.dtype, args[0])
    if e.op == "invert":  # Python's ~ is not NumPy's on booleans
        return f"(not {args[0]})" if e.dtype.kind == "b" else f"(~{args[0]})"
    template = _TEMPLATES.get(e.op)
    if template is None:
        raise NotCompilableError(
            f"primitive '{e.op}' has no compiled scalar form yet; call the function without "
            "sg.jit, or add a template to scigrad/jit/_codegen.py"
        )
    return template(args)


def _body(spec: KernelSpec, indent: str) -> list[str]:
    """Statements in depth-first order from the outputs: each output's dependencies are
    computed just before it is stored, so few values are live at once (the DAG's creation
    order is breadth-first, which makes hundreds of values live and spill registers)."""
    lines: list[str] = []
    names: dict[int, str] = {}

    def emit(root: Expr) -> None:
        stack = [(root, False)]
        while stack:
            e, expanded = stack.pop()
            if e.serial in names:
                continue
            if expanded or e.op == "input":
                lines.append(f"{indent}t{e.serial} = {_statement(e, names, spec)}")
                names[e.serial] = f"t{e.serial}"
                continue
            stack.append((e, True))
            for a in reversed(e.args):
                if isinstance(a, Expr) and a.serial not in names:
                    stack.append((a, False))

    for k, (out, dtype) in enumerate(zip(spec.outputs, spec.out_dtypes, strict=True)):
        fill = _fill_value(out)
        for index in np.ndindex(out.shape):
            v = out[index]
            if isinstance(v, Expr):
                emit(v)
                rhs = names[v.serial]
            elif fill is not None and _literal(v) == fill:
                continue  # written by the fill
            else:
                rhs = _literal(dtype.type(v))
            lines.append(f"{indent}{_element(f'o{k}', index, spec.batched)} = {rhs}")
    return lines


#: Outputs of at most this many entries store every entry once, in order: no fill written
#: over again (a 10x10 Hessian per point is then written as one stream).
FILL_FROM = 128


def _fill_value(out: np.ndarray) -> str | None:
    """The constant most entries of a large output hold (the zeros of a sparse Hessian),
    written with one ``fill``: a store per entry would make numba's compile time grow with
    the square of a Hessian's size."""
    constants = [_literal(v) for v in out.flat if not isinstance(v, Expr)]
    if len(constants) < 2 or out.size <= FILL_FROM:
        return None
    values, counts = np.unique(constants, return_counts=True)
    return str(values[np.argmax(counts)])


def _numba_type(dtype: np.dtype, ndim: int) -> Any:
    from numba import types
    from numba.np.numpy_support import from_dtype

    scalar = from_dtype(dtype)
    return scalar if ndim == 0 else types.Array(scalar, ndim, "C")


def _signatures(spec: KernelSpec) -> tuple[Any, Any]:
    from numba import types

    ins = []
    for shape, dtype, b in zip(spec.in_shapes, spec.in_dtypes, spec.in_batched, strict=True):
        batched = spec.batched and b
        ndim = len(shape) + batched
        ins.append(_numba_type(dtype, ndim))
    outs = [
        types.Array(_numba_type(dt, 0), o.ndim + spec.batched, "C")
        for o, dt in zip(spec.outputs, spec.out_dtypes, strict=True)
    ]
    out_sig = types.void(*ins, *outs)
    results = [
        _numba_type(dt, 0) if o.ndim == 0 and not spec.batched else out_t
        for o, dt, out_t in zip(spec.outputs, spec.out_dtypes, outs, strict=True)
    ]
    ret = results[0] if len(results) == 1 else types.Tuple(results)
    return out_sig, ret(*ins)


def _source(spec: KernelSpec) -> str:
    nin, nout = len(spec.in_shapes), len(spec.outputs)
    ins = ", ".join(f"a{k}" for k in range(nin))
    outs = ", ".join(f"o{k}" for k in range(nout))
    lines = [
        "import math",
        "import numpy as np",
        "import numba",
        "from scigrad.jit import _support as _s",
        "",
        "",
        f"def kernel_out({ins}{', ' if nin else ''}{outs}):",
    ]
    indent = "    "
    # Shape checks: a wrong shape must not read or write out of bounds.
    checks = []
    for k, (shape, b) in enumerate(zip(spec.in_shapes, spec.in_batched, strict=True)):
        if spec.batched and b:
            checks.append(f"a{k}.shape[1:] != {shape!r}")
        elif shape:
            checks.append(f"a{k}.shape != {shape!r}")
    if spec.batched:
        lines.append(f"{indent}n = o0.shape[0]")
        for k, b in enumerate(spec.in_batched):
            if b:
                checks.append(f"a{k}.shape[0] != n")
    for k, o in enumerate(spec.outputs):
        shape = (("n",) if spec.batched else ()) + tuple(str(s) for s in o.shape)
        want = f"({', '.join(shape)}{',' if len(shape) == 1 else ''})"
        checks.append(f"o{k}.shape != {want}")
    if checks:
        lines.append(f"{indent}if {' or '.join(checks)}:")
        lines.append(f"{indent}    raise ValueError('scigrad.jit: argument shapes changed')")
    fills = [(k, _fill_value(o), o.size) for k, o in enumerate(spec.outputs)]
    fills = [f for f in fills if f[1] is not None]
    for k, value, size in fills:
        if spec.batched:  # a flat view per output, filled row by row inside the loop
            lines.append(f"{indent}flat{k} = o{k}.reshape((n, {size}))")
        else:
            lines.append(f"{indent}o{k}.fill({value})")
    if spec.batched:
        lines.append(f"{indent}for b in range(n):")
        indent += "    "
        # Filling each point's row just before writing its other entries keeps it in cache:
        # one pass over the output's memory instead of two.
        for k, value, size in fills:
            lines.append(f"{indent}for j in range({size}):")
            lines.append(f"{indent}    flat{k}[b, j] = {value}")
    lines.extend(_body(spec, indent))
    if len(lines) and lines[-1].endswith(":"):
        lines.append(f"{indent}pass")
    # The allocating entry point.
    lines += ["", "", f"def kernel({ins}):"]
    if spec.batched:
        sizes = [f"a{k}.shape[0]" for k, b in enumerate(spec.in_batched) if b]
        lines.append(f"    n = {sizes[0]}")
    for k, (o, dt) in enumerate(zip(spec.outputs, spec.out_dtypes, strict=True)):
        shape = (("n",) if spec.batched else ()) + tuple(str(s) for s in o.shape)
        dims = ", ".join(shape) + ("," if len(shape) == 1 else "")
        lines.append(f"    o{k} = np.empty(({dims}), np.{dt.name})")
    lines.append(f"    kernel_out({ins}{', ' if nin else ''}{outs})")
    results = [
        f"o{k}[()]" if o.ndim == 0 and not spec.batched else f"o{k}"
        for k, o in enumerate(spec.outputs)
    ]
    lines.append(f"    return {results[0] if nout == 1 else '(' + ', '.join(results) + ',)'}")
    return "\n".join(lines) + "\n"


_loaded: dict[str, Any] = {}


def compile_kernel(spec: KernelSpec) -> tuple[Callable, Callable, str]:
    """Compile ``spec``: returns ``(kernel, kernel_out, source)``."""
    source = _source(spec)
    module = load_kernel_module(source, *_signatures(spec))
    return module.kernel, module.kernel_out, source


def load_kernel_module(source: str, out_sig: Any, sig: Any) -> Any:
    """The module of generated ``source`` defining ``kernel_out`` and ``kernel``, compiled
    with numba for these signatures (loaded from the disk cache when compiled before)."""
    import numba

    digest = hashlib.sha256((source + numba.__version__).encode()).hexdigest()[:20]
    module = _loaded.get(digest)
    if module is None:
        name = f"scigrad_kernel_{digest}"
        path = os.path.join(cache_dir(), name + ".py")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(source)
            os.replace(tmp, path)  # atomic: concurrent processes never see a partial file
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        # nogil: batched kernels run on chunks of the batch in several threads at once
        # (kernels with object-mode blocks, which call NumPy, need the GIL there).
        nogil = "numba.objmode" not in source
        options = {"cache": True, "error_model": "numpy", "boundscheck": False, "nogil": nogil}
        kernel_out = numba.njit(out_sig, **options)(module.kernel_out)
        module.kernel_out = kernel_out  # the allocating kernel calls the compiled one
        module.kernel = numba.njit(sig, **options)(module.kernel)
        _loaded[digest] = module
    return module
