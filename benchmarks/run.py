"""Per-call cost of derivatives: scigrad against HIPS autograd, JAX and PyTorch, in one run.

Every library differentiates the same functions at the same float64 inputs; before anything
is timed, each library's derivative is checked against scigrad's (a benchmark of a wrong
result is worthless). Times are per call, the median of several repeats, each repeat
timeit-style (auto-ranged number of calls) with the garbage collector enabled, as users
run. Inputs are converted to each library's own array type once, outside the timed region;
JAX results are waited for with ``block_until_ready``. Libraries that are not installed are
reported as such and skipped.

    python benchmarks/run.py --output BENCHMARKS.md      # full run (a minute or two)
    python benchmarks/run.py --quick --only scigrad      # smoke run, a few seconds

``make bench`` installs the peers (``autograd jax torch==2.13.0``) and runs the full version.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import shlex
import statistics
import sys
import timeit
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hand  # noqa: E402 - the hand-written references beside this file
from _machine import cpu_model, version  # noqa: E402
from _support import NotInstalled  # noqa: E402

# -- the functions being differentiated, written once for any NumPy-like namespace ---------


def make_rosenbrock(xp: Any) -> Callable:
    def rosenbrock(x):
        return xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    return rosenbrock


def make_mlp_loss(xp: Any) -> Callable:
    def mlp_loss(params, inputs, targets):
        h = xp.tanh(inputs @ params["W1"] + params["b1"])
        h = xp.tanh(h @ params["W2"] + params["b2"])
        out = h @ params["W3"] + params["b3"]
        return xp.mean((out - targets) ** 2)

    return mlp_loss


def rosenbrock_args(n: int) -> Callable[[], tuple]:
    def make() -> tuple:
        rng = numpy.random.default_rng(0)
        return (rng.uniform(-1.0, 1.5, n),)

    return make


MLP_SIZES = (8, 32, 32, 1)  # inputs, two tanh hidden layers, one output
MLP_BATCH = 64


def mlp_args() -> tuple:
    rng = numpy.random.default_rng(0)
    params = {}
    for k, (fan_in, fan_out) in enumerate(zip(MLP_SIZES[:-1], MLP_SIZES[1:], strict=True), 1):
        params[f"W{k}"] = rng.standard_normal((fan_in, fan_out)) / numpy.sqrt(fan_in)
        params[f"b{k}"] = 0.1 * rng.standard_normal(fan_out)
    inputs = rng.standard_normal((MLP_BATCH, MLP_SIZES[0]))
    targets = numpy.sin(inputs.sum(axis=1, keepdims=True))
    return params, inputs, targets


@dataclass(frozen=True)
class Problem:
    """A derivative to time: ``kind`` of ``factory(xp)`` w.r.t. the first argument."""

    name: str
    kind: str  # "grad" or "hessian"
    factory: Callable[[Any], Callable]
    make_args: Callable[[], tuple]
    hand: Callable  # the same derivative written by hand in NumPy (the reference)
    target: Callable[[dict[str, Any]], str] | None = None


def _n_params() -> int:
    return sum(a * b + b for a, b in zip(MLP_SIZES[:-1], MLP_SIZES[1:], strict=True))


def _grad_target(times: dict[str, Any]) -> str:
    """grad Rosenbrock n=10: at most 20 µs per call, i.e. at least 10x faster than autograd."""
    sg, ag = times.get("scigrad"), times.get("autograd")
    if not isinstance(sg, float):
        return "≤ 20 µs, ≥ 10× autograd: not measured"
    met = sg <= 20e-6 and (not isinstance(ag, float) or ag / sg >= 10)
    return f"≤ 20 µs, ≥ 10× autograd: **{'met' if met else 'not met'}**"


R_GRAD, R_HESS = hand.rosenbrock_grad, hand.rosenbrock_hessian
PROBLEMS = (
    Problem(
        "grad Rosenbrock n=10", "grad", make_rosenbrock, rosenbrock_args(10), R_GRAD, _grad_target
    ),
    Problem("grad Rosenbrock n=100", "grad", make_rosenbrock, rosenbrock_args(100), R_GRAD),
    Problem("hessian Rosenbrock n=10", "hessian", make_rosenbrock, rosenbrock_args(10), R_HESS),
    Problem("hessian Rosenbrock n=100", "hessian", make_rosenbrock, rosenbrock_args(100), R_HESS),
    Problem(
        f"grad MLP loss ({'-'.join(map(str, MLP_SIZES))} tanh, batch {MLP_BATCH}, "
        f"{_n_params():,} params)",
        "grad",
        make_mlp_loss,
        mlp_args,
        hand.mlp_loss_grad,
    ),
)

# -- one adapter per library: (problem, numpy args) -> (timed thunk, result -> numpy leaves) --


def _import(name: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as e:
        raise NotInstalled(str(e)) from None


def _leaves(tree: Any) -> list[numpy.ndarray]:
    """Numeric leaves in a canonical order (dicts by sorted key) as NumPy arrays."""
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _leaves(tree[k])]
    if isinstance(tree, list | tuple):
        return [x for item in tree for x in _leaves(item)]
    if hasattr(tree, "detach"):  # torch
        tree = tree.detach().cpu().numpy()
    return [numpy.asarray(tree)]


def _map(f: Callable, tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _map(f, v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_map(f, v) for v in tree)
    return f(tree)


def setup_numpy(p: Problem, args: tuple) -> Callable:
    f = p.factory(numpy)
    return lambda: f(*args)


def setup_hand(p: Problem, args: tuple) -> Callable:
    return lambda: p.hand(*args)


def setup_scigrad(p: Problem, args: tuple) -> Callable:
    sg = _import("scigrad")
    f = p.factory(_import("scigrad.numpy"))
    d = sg.grad(f) if p.kind == "grad" else sg.hessian(f)
    return lambda: d(*args)


def setup_autograd(p: Problem, args: tuple) -> Callable:
    ag = _import("autograd")
    f = p.factory(_import("autograd.numpy"))
    d = ag.grad(f) if p.kind == "grad" else ag.hessian(f)
    return lambda: d(*args)


def _setup_jax(p: Problem, args: tuple, jit: bool) -> Callable:
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = _import("jax.numpy")
    f = p.factory(jnp)
    d = jax.grad(f) if p.kind == "grad" else jax.hessian(f)
    if jit:
        d = jax.jit(d)
    jargs = _map(jnp.asarray, args)
    block = jax.block_until_ready
    return lambda: block(d(*jargs))


def setup_jax(p: Problem, args: tuple) -> Callable:
    return _setup_jax(p, args, jit=False)


def setup_jax_jit(p: Problem, args: tuple) -> Callable:
    return _setup_jax(p, args, jit=True)


def setup_torch(p: Problem, args: tuple) -> Callable:
    torch = _import("torch")
    f = p.factory(torch)
    first = _map(lambda a: torch.tensor(a, requires_grad=True), args[0])
    rest = tuple(_map(torch.from_numpy, a) for a in args[1:])
    if p.kind == "hessian":
        hess = torch.autograd.functional.hessian
        return lambda: hess(f, first)
    # torch.autograd.grad returns the gradients in the order of ``wrt``: sorted dict keys
    # match the canonical order of _leaves.
    wrt = first if not isinstance(first, dict) else [first[k] for k in sorted(first)]
    grad = torch.autograd.grad
    return lambda: grad(f(first, *rest), wrt)


@dataclass(frozen=True)
class Library:
    key: str  # name for --only
    title: str  # column header
    dist: tuple[str, ...]  # distributions whose versions go in the header
    setup: Callable[[Problem, tuple], Callable]


REFERENCE = Library("numpy", "NumPy f(x) only", ("numpy",), setup_numpy)
LIBRARIES = (
    Library("hand", "hand-written NumPy", ("numpy",), setup_hand),
    Library("scigrad", "scigrad", ("scigrad",), setup_scigrad),
    Library("autograd", "autograd", ("autograd",), setup_autograd),
    Library("jax", "JAX", ("jax", "jaxlib"), setup_jax),
    Library("jax-jit", "JAX jit", ("jax", "jaxlib"), setup_jax_jit),
    Library("torch", "PyTorch", ("torch",), setup_torch),
)

# -- timing ---------------------------------------------------------------------------------


def per_call_time(thunk: Callable, repeat: int, min_time: float) -> float:
    """Median over ``repeat`` repeats of the time per call, in seconds.

    Each repeat runs the thunk ``number`` times, ``number`` chosen as timeit's autorange
    does (1, 2, 5, 10, 20, ... until a repeat takes at least ``min_time``). The garbage
    collector stays enabled (timeit disables it by default; users do not).
    """
    timer = timeit.Timer(thunk, setup=gc.enable)
    number = 1
    for i in range(30):
        number = (1, 2, 5)[i % 3] * 10 ** (i // 3)
        if timer.timeit(number) >= min_time:
            break
    return statistics.median(timer.repeat(repeat, number)) / number


# -- running and reporting ------------------------------------------------------------------


@dataclass
class Row:
    problem: Problem
    cells: dict[str, Any] = field(default_factory=dict)  # key -> seconds or a status string
    notes: list[str] = field(default_factory=list)


def _close(a: list[numpy.ndarray], b: list[numpy.ndarray]) -> tuple[bool, float]:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        return False, float("nan")
    pairs = list(zip(a, b, strict=True))
    err = max((float(numpy.max(numpy.abs(x - y), initial=0.0)) for x, y in pairs), default=0.0)
    return all(numpy.allclose(x, y) for x, y in pairs), err


def run_problem(p: Problem, libs: Sequence[Library], repeat: int, min_time: float, log) -> Row:
    row = Row(p)
    args = p.make_args()
    reference = None
    for lib in (REFERENCE, *libs):
        try:
            thunk = lib.setup(p, args)
            result = thunk()  # also the warm-up (JAX compiles here)
            thunk()
        except NotInstalled:
            row.cells[lib.key] = "not installed"
            continue
        except Exception as e:
            row.cells[lib.key] = "error"
            msg = traceback.format_exception_only(e)[-1].strip()
            short = msg if len(msg) <= 300 else msg[:300] + "..."
            row.notes.append(f"{lib.title} failed: `{short.replace('`', chr(39))}`")
            log(f"  {lib.title:>16}: error: {msg}")
            continue
        if lib is not REFERENCE:
            leaves = _leaves(result)
            if reference is None:
                reference = (lib, leaves)
            else:
                ok, err = _close(leaves, reference[1])
                if not ok:
                    row.cells[lib.key] = "WRONG"
                    row.notes.append(
                        f"{lib.title} disagrees with {reference[0].title} "
                        f"(max abs difference {err:.3g}); not timed"
                    )
                    log(f"  {lib.title:>16}: result disagrees with {reference[0].title}")
                    continue
        row.cells[lib.key] = t = per_call_time(thunk, repeat, min_time)
        log(f"  {lib.title:>16}: {t * 1e6:12.1f} µs")
    if reference is not None and reference[0].key != "scigrad" and "scigrad" in row.cells:
        row.notes.append(f"results checked against {reference[0].title}")
    if p.target is _grad_target:
        x = args[0]
        floor = per_call_time(lambda: hand.rosenbrock_grad_specialized_tape(x), repeat, min_time)
        row.notes.append(
            f"a reverse-mode tape specialized by hand for this one function (no dispatch, "
            f"rules inlined: `hand.rosenbrock_grad_specialized_tape`) takes {floor * 1e6:.1f} µs "
            "in the same run: a floor for any eager engine written in Python"
        )
    return row


def per_primitive_cost(repeat: int, min_time: float) -> tuple[float, float, float]:
    """Eager cost of one primitive: the slope of grad time over the length of a chain of
    ``sin`` calls on a 10-vector, beside NumPy's own cost per ``sin`` and per ``cos``-times-
    cotangent (what the forward and the backward pass must compute at the least)."""
    sg, snp = _import("scigrad"), _import("scigrad.numpy")
    x = numpy.linspace(0.1, 0.9, 10)

    def chain(k: int) -> Callable:
        def f(v):
            for _ in range(k):
                v = snp.sin(v)
            return snp.sum(v)

        return sg.grad(f)

    short, long = chain(1), chain(41)
    t_short = per_call_time(lambda: short(x), repeat, min_time)
    t_long = per_call_time(lambda: long(x), repeat, min_time)
    t_fwd = per_call_time(lambda: numpy.sin(x), repeat, min_time)
    g = numpy.ones(10)
    t_bwd = per_call_time(lambda: g * numpy.cos(x), repeat, min_time)
    return (t_long - t_short) / 40, t_fwd, t_bwd


def _fmt(cell: Any) -> str:
    if not isinstance(cell, float):
        return str(cell)
    us = cell * 1e6
    return f"{us:.2f}" if us < 10 else f"{us:.1f}" if us < 1000 else f"{us:,.0f}"


def render(rows: list[Row], libs: Sequence[Library], argv: Sequence[str], opts) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    dists = dict.fromkeys(d for lib in (REFERENCE, *libs) for d in lib.dist)
    if "scipy" not in dists:
        dists["scipy"] = None
    versions = ", ".join(f"{d} {version(d)}" for d in dists)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    command = shlex.join(["python", "benchmarks/run.py", *argv])
    runtime = []
    if "torch" in sys.modules:
        runtime.append(f"PyTorch intra-op threads: {sys.modules['torch'].get_num_threads()}")
    if "jax" in sys.modules:
        runtime.append(f"JAX backend: {sys.modules['jax'].default_backend()}")
    lines = [
        "# scigrad benchmarks",
        "",
        f"- Date: {now}",
        f"- Machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs ({usable} usable)",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}"
        + "".join(f"; {r}" for r in runtime),
        f"- Reproduce: `{command}` from the repository root "
        "(`make bench` installs the peers `autograd jax torch==2.13.0` and runs the full set)",
        f"- Method: time per call in µs, median of {opts.repeat} repeats; each repeat calls "
        f"the function N times, N auto-ranged so that a repeat takes ≥ {opts.min_time:g} s; "
        "garbage collector enabled; float64 everywhere; inputs converted to each library's "
        "array type once, outside the timed region. Every result was checked against the "
        "hand-written derivative (`numpy.allclose`) before timing.",
        "- Columns: *NumPy f(x) only* is the plain NumPy forward evaluation (no derivative), "
        "the floor any derivative must pay; *JAX* is `jax.grad`/`jax.hessian` un-jitted, "
        "*JAX jit* the same under `jax.jit` (compiled before timing); *PyTorch* is CPU eager "
        "`torch.autograd.grad` / `torch.autograd.functional.hessian`; *hand-written NumPy* "
        "is the same derivative derived by hand (`benchmarks/hand.py`), the reference; "
        "*scigrad / hand-written* is the price of automatic differentiation; "
        "*autograd / scigrad* is autograd's time divided by scigrad's (> 1: scigrad is faster).",
        "",
    ]
    header = ["benchmark", REFERENCE.title, *(lib.title for lib in libs)]
    header += ["scigrad / hand-written", "autograd / scigrad", "target"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 2) + [":---"]) + "|")
    notes = []
    for row in rows:
        cells = [row.problem.name, _fmt(row.cells.get(REFERENCE.key))]
        cells += [_fmt(row.cells.get(lib.key, "—")) for lib in libs]
        sg, ag, hw = (row.cells.get(k) for k in ("scigrad", "autograd", "hand"))
        cells.append(f"{sg / hw:.1f}×" if isinstance(sg, float) and isinstance(hw, float) else "—")
        cells.append(f"{ag / sg:.1f}×" if isinstance(sg, float) and isinstance(ag, float) else "—")
        cells.append(row.problem.target(row.cells) if row.problem.target else "—")
        lines.append("| " + " | ".join(cells) + " |")
        notes += [f"- {row.problem.name}: {n}" for n in row.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    keys = [lib.key for lib in LIBRARIES]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", help="write the Markdown table to this file")
    ap.add_argument(
        "--only",
        help=f"comma-separated libraries to run, among {','.join(keys)} "
        "(default: all; the NumPy forward and hand-written references always run)",
    )
    ap.add_argument("--quick", action="store_true", help="few short repeats (smoke test)")
    ap.add_argument("--repeat", type=int, help="repeats per measurement (default 7)")
    ap.add_argument("--min-time", type=float, help="seconds per repeat (default 0.2)")
    opts = ap.parse_args(argv)
    selected = keys if opts.only is None else [k.strip() for k in opts.only.split(",") if k]
    unknown = sorted(set(selected) - set(keys))
    if unknown:
        ap.error(f"--only: unknown library {', '.join(unknown)} (choose among {', '.join(keys)})")
    # The hand-written reference always runs: every library's result is checked against it.
    opts.libs = [lib for lib in LIBRARIES if lib.key in selected or lib.key == "hand"]
    if opts.repeat is None:
        opts.repeat = 3 if opts.quick else 7
    if opts.min_time is None:
        opts.min_time = 0.002 if opts.quick else 0.2
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return 1 if any derivative failed or disagreed, else 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows = []
    for p in PROBLEMS:
        log(p.name)
        rows.append(run_problem(p, opts.libs, opts.repeat, opts.min_time, log))
    text = render(rows, opts.libs, argv, opts)
    if any(lib.key == "scigrad" for lib in opts.libs):
        per_op, t_fwd, t_bwd = per_primitive_cost(opts.repeat, opts.min_time)
        log(f"per primitive: {per_op * 1e6:.2f} µs")
        text += (
            "\nPer-primitive cost of eager reverse mode (slope of `grad` time over a chain of "
            f"`sin` calls on a 10-vector): **{per_op * 1e6:.2f} µs** per primitive, forward and "
            f"backward together; NumPy alone needs {t_fwd * 1e6:.2f} µs for the `sin` and "
            f"{t_bwd * 1e6:.2f} µs for `g * cos(x)`, so the interpreter adds "
            f"{(per_op - t_fwd - t_bwd) * 1e6:.2f} µs per primitive.\n"
        )
    print(text)
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {opts.output}")
    failed = any(c in ("error", "WRONG") for row in rows for c in row.cells.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
