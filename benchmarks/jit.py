"""``sg.jit`` benchmarks: compiled gradients and Hessians against hand-written numba, in one run.

The reference is a derivative written by hand with numba (``benchmarks/hand_numba.py``:
loops, ``@numba.njit(cache=True)``, allocating its result as a user's function would).
Beside it: ``sg.jit`` of scigrad's derivative, JAX (``jax.jit``, float64) and eager scigrad.

(1) Single calls from Python: the gradient and Hessian of Rosenbrock at n = 10 and 100
    (``sg.jit(sg.grad(f))(x)``, ``sg.jit(sg.hessian(f))(x)``), and the gradients of the
    seed's ``foo`` and ``bar`` (indexing into small arrays).
(2) Batched: the same derivatives at many points (10^6; 10^4 for the 100 × 100 Hessian),
    ``sg.jit(sg.vmap(d))(X)`` (one compiled loop; also ``parallel=True``) against a
    hand-written numba loop and ``jax.jit(jax.vmap(d))``, per point.
(3) Compile times: each ``sg.jit`` kernel's first call (capture + lowering + numba) in a
    fresh process with an empty cache, and its first call in a second fresh process that
    finds the compiled code in the disk cache. The kernels are compiled in subprocesses with
    a time limit per kernel (``--compile-timeout``), so one that takes too long is reported,
    not waited for.
(4) The issue's targets, met or not.

Every result is checked against the hand-written one (and the hand-written one against
eager scigrad) before it is timed. Single calls are timed timeit-style in blocks of calls
(garbage collector enabled), batched calls one call per block; the libraries are timed in
alternating rounds, and each time is the median over the rounds.

    OPENBLAS_NUM_THREADS=1 python benchmarks/jit.py --output BENCHMARKS_JIT.md   # ~3 min
    python benchmarks/jit.py --quick --no-jax                                    # smoke run

Compile times are cold by default (a fresh temporary kernel cache); ``--cache-dir DIR``
keeps the kernels in DIR instead (then "cold" is cold only the first time).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _machine import cpu_model, version  # noqa: E402 - beside this file
from _support import NotInstalled, load_jax  # noqa: E402

INTERPRETED = "sg.jit ran the graph interpreted (too large to unroll): no compiled kernel"
TOLERANCE = 1e-10  # largest relative difference accepted between two results
WORKER_POINTS = 8  # batch size of the batched kernels' first calls in the compile workers

# -- the functions, written once for any NumPy-like namespace -------------------------------


def make_rosenbrock(xp: Any) -> Callable:
    def rosenbrock(x):
        return xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    return rosenbrock


def make_foo(xp: Any) -> Callable:
    """The seed's ``foo``: ``(dX[d] @ b) * (a + A[0]) + dX[2] * -(c + A[1])``."""
    import hand_numba as hn

    d = numpy.array(hn.FOO_D)
    b = xp.asarray(numpy.array(hn.FOO_B))

    def foo(dx, a):
        return (dx[d] @ b) * (hn.FOO_A + a[0]) + dx[2] * -(hn.FOO_C + a[1])

    return foo


def make_bar(xp: Any) -> Callable:
    """The seed's ``bar``: ``dot(A[[0, 1]], A[[1, 2]])`` (B does not enter)."""
    i01, i12 = numpy.array([0, 1]), numpy.array([1, 2])

    def bar(a, b):
        return xp.dot(a[i01], a[i12])

    return bar


@dataclass(frozen=True)
class Problem:
    """A derivative of one of the functions: ``kind`` ("grad" or "hessian") of ``func``."""

    key: str
    title: str
    func: str  # "rosenbrock", "foo" or "bar"
    kind: str
    n: int = 0  # Rosenbrock's size
    #: points of the batched benchmark: "points" (--points) or "points_h100" (--points-h100)
    points: str = "points"
    #: the issue's target for this row (single: × hand numba; batched: × hand or seconds)
    single_target: float | None = None
    batch_target: tuple[str, float] | None = None  # ("ratio", 1.2) or ("per_point", 50e-9)

    @property
    def argnums(self) -> Any:
        return (0, 1) if self.func == "foo" else 0

    @property
    def in_axes(self) -> Any:
        return (0, None) if self.func == "bar" else 0


PROBLEMS = (
    Problem("grad10", "gradient, Rosenbrock n = 10", "rosenbrock", "grad", 10,
            single_target=1.5, batch_target=("ratio", 1.2)),
    Problem("grad100", "gradient, Rosenbrock n = 100", "rosenbrock", "grad", 100,
            single_target=1.5, batch_target=("ratio", 1.2)),
    Problem("hess10", "Hessian, Rosenbrock n = 10", "rosenbrock", "hessian", 10,
            batch_target=("per_point", 50e-9)),
    Problem("hess100", "Hessian, Rosenbrock n = 100", "rosenbrock", "hessian", 100,
            points="points_h100", batch_target=("per_point", 5e-6)),
    Problem("foo", "gradient of the seed's `foo` (w.r.t. dX and A)", "foo", "grad",
            single_target=1.5, batch_target=("ratio", 1.2)),
    Problem("bar", "gradient of the seed's `bar` (w.r.t. A)", "bar", "grad",
            single_target=1.5, batch_target=("ratio", 1.2)),
)  # fmt: skip
BY_KEY = {p.key: p for p in PROBLEMS}


def make_fun(p: Problem, xp: Any) -> Callable:
    return {"rosenbrock": make_rosenbrock, "foo": make_foo, "bar": make_bar}[p.func](xp)


def single_args(p: Problem) -> tuple[numpy.ndarray, ...]:
    rng = numpy.random.default_rng(0)
    if p.func == "rosenbrock":
        return (rng.uniform(-1.0, 1.5, p.n),)
    if p.func == "foo":  # the seed's dX = (1, 1, 1), A = (0, 0), perturbed
        return numpy.ones(3) + 0.1 * rng.standard_normal(3), 0.1 * rng.standard_normal(2)
    return numpy.array([1.0, 2.0, 3.0]) + 0.1 * rng.standard_normal(3), numpy.full(3, 2.0)


def batch_args(p: Problem, npts: int) -> tuple[numpy.ndarray, ...]:
    rng = numpy.random.default_rng(1)
    if p.func == "rosenbrock":
        return (rng.uniform(-1.0, 1.5, (npts, p.n)),)
    if p.func == "foo":
        return 1.0 + 0.1 * rng.standard_normal((npts, 3)), 0.1 * rng.standard_normal((npts, 2))
    return 1.0 + rng.standard_normal((npts, 3)), numpy.full(3, 2.0)


# -- the implementations --------------------------------------------------------------------
def hand_single(p: Problem) -> Callable:
    import hand_numba as hn

    if p.func == "rosenbrock":
        return hn.rosenbrock_grad if p.kind == "grad" else hn.rosenbrock_hessian
    return hn.foo_grad if p.func == "foo" else hn.bar_grad


def hand_batch(p: Problem) -> tuple[Callable, Callable]:
    """(allocating, writing into preallocated outputs)."""
    import hand_numba as hn

    if p.func == "rosenbrock" and p.kind == "grad":
        return hn.rosenbrock_grad_batch, hn.rosenbrock_grad_batch_out
    if p.func == "rosenbrock":
        return hn.rosenbrock_hessian_batch, hn.rosenbrock_hessian_batch_out
    if p.func == "foo":
        return hn.foo_grad_batch, hn.foo_grad_batch_out
    return hn.bar_grad_batch, hn.bar_grad_batch_out


def sg_derivative(p: Problem) -> Callable:
    import scigrad as sg
    import scigrad.numpy as snp

    f = make_fun(p, snp)
    return sg.grad(f, argnums=p.argnums) if p.kind == "grad" else sg.hessian(f)


def sg_jitted(p: Problem, variant: str) -> Callable:
    """``variant``: "single", "vmap" or "vmap_par"."""
    import scigrad as sg

    d = sg_derivative(p)
    if variant == "single":
        return sg.jit(d)
    return sg.jit(sg.vmap(d, in_axes=p.in_axes), parallel=variant == "vmap_par")


def jax_derivative(p: Problem, batched: bool) -> Callable:
    jax = load_jax()
    import jax.numpy as jnp

    f = make_fun(p, jnp)
    d = jax.grad(f, argnums=p.argnums) if p.kind == "grad" else jax.hessian(f)
    return jax.jit(jax.vmap(d, in_axes=p.in_axes) if batched else d)


def casadi_derivative(p: Problem, npts: int | None = None) -> Callable:
    """The derivative as a CasADi ``Function`` of SX expressions (CasADi's virtual machine,
    no C code generation), called with NumPy arrays and returning NumPy arrays as a user
    would (``.full()``). With ``npts``: ``Function.map(npts)`` over points given one per row
    (transposed to CasADi's columns and back)."""
    try:
        import casadi as ca
    except ImportError as exc:
        raise NotInstalled("casadi is not installed") from exc
    import hand_numba as hn

    if p.func == "rosenbrock":
        x = ca.SX.sym("x", p.n)
        f = ca.sum1(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
        ins, wrt = [x], [x]
    elif p.func == "foo":
        dx, a = ca.SX.sym("dx", 3), ca.SX.sym("a", 2)
        b0, b1 = hn.FOO_B
        f = (dx[0] * b0 + dx[1] * b1) * (hn.FOO_A + a[0]) + dx[2] * -(hn.FOO_C + a[1])
        ins, wrt = [dx, a], [dx, a]
    else:
        a, b = ca.SX.sym("a", 3), ca.SX.sym("b", 3)
        f = ca.dot(a[[0, 1]], a[[1, 2]])
        ins, wrt = [a, b], [a]
    if p.kind == "grad":
        outs = [ca.gradient(f, w) for w in wrt]
    else:
        outs = [ca.densify(ca.hessian(f, wrt[0])[0])]
    fn = ca.Function("d", ins, outs)
    hess = p.kind == "hessian"
    if npts is None:
        if len(outs) == 1:
            return (lambda x: fn(x).full()) if hess else (lambda *a: fn(*a).full().ravel())
        return lambda *a: tuple(o.full().ravel() for o in fn(*a))
    fm = fn.map(npts)
    batched = [True, p.func != "bar"]

    def call(*args: Any) -> Any:
        cargs = [x.T if bt else x for x, bt in zip(args, batched, strict=False)]
        res = fm(*cargs)
        res = res if isinstance(res, tuple) else (res,)
        if hess:  # n × (n npts), the Hessians side by side
            n = p.n
            return res[0].full().reshape(n, npts, n).transpose(1, 0, 2)
        out = tuple(r.full().T for r in res)
        return out if len(out) > 1 else out[0]

    return call


# -- checks and timing ----------------------------------------------------------------------
def leaves(x: Any) -> list[numpy.ndarray]:
    if isinstance(x, tuple | list):
        return [numpy.asarray(v) for v in x]
    return [numpy.asarray(x)]


def rel_diff(a: Any, b: Any, chunk: int = 1 << 16) -> float:
    """max |a - b| / max |b| over the leaves, computed in chunks of the leading axis."""
    worst = 0.0
    for x, y in zip(leaves(a), leaves(b), strict=True):
        if x.shape != y.shape:
            return float("inf")
        x2 = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)
        y2 = y.reshape(y.shape[0], -1) if y.ndim > 1 else y.reshape(1, -1)
        scale, err = 0.0, 0.0
        for s in range(0, x2.shape[0], chunk):
            xs, ys = x2[s : s + chunk], y2[s : s + chunk]
            scale = max(scale, float(numpy.max(numpy.abs(ys), initial=0.0)))
            err = max(err, float(numpy.max(numpy.abs(xs - ys), initial=0.0)))
        worst = max(worst, err / (scale or 1.0))
    return worst


@dataclass
class Timed:
    """One thing to time: ``stmt`` run with ``env`` as its globals."""

    stmt: str
    env: dict[str, Any]


def interleaved(items: dict[str, Timed], rounds: int, block: float) -> dict[str, float]:
    """Median seconds per call of each item. Each item's block size (calls per timed block)
    is auto-ranged so that a block takes at least ``block`` seconds; then the items are
    timed in ``rounds`` alternating rounds, one block each, with the garbage collector on."""
    timers, numbers = {}, {}
    for key, item in items.items():
        env = dict(item.env, gc=gc)
        timer = timeit.Timer(item.stmt, setup="gc.enable()", globals=env)
        timer.timeit(1)  # warm-up
        number = 1
        for i in range(30):
            number = (1, 2, 5)[i % 3] * 10 ** (i // 3)
            if timer.timeit(number) >= block:
                break
        timers[key], numbers[key] = timer, number
    samples: dict[str, list[float]] = {k: [] for k in items}
    for _ in range(rounds):
        for key, timer in timers.items():
            samples[key].append(timer.timeit(numbers[key]) / numbers[key])
    return {k: statistics.median(v) for k, v in samples.items()}


#: Timed in their own rounds: their worker threads (XLA's, OpenMP's) may still be spinning
#: after a call and would slow down whatever is timed next.
SEPARATE = ("vmap_par", "jax", "casadi")


def timed(items: dict[str, Timed], rounds: int, block: float) -> dict[str, float]:
    """:func:`interleaved` for the single-threaded items, then each of ``SEPARATE`` alone."""
    out = interleaved({k: v for k, v in items.items() if k not in SEPARATE}, rounds, block)
    for key in SEPARATE:
        if key in items:
            out.update(interleaved({key: items[key]}, rounds, block))
    return out


@dataclass
class Row:
    problem: Problem
    points: int = 0
    cells: dict[str, Any] = field(default_factory=dict)  # seconds (per call or point) or text
    checks: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return all(v <= TOLERANCE for v in self.checks.values()) and not any(
            isinstance(c, str) and c.startswith(("error", "WRONG")) for c in self.cells.values()
        )


def _short(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")
    return msg if len(msg) <= 200 else msg[:200] + "..."


def _checked(row: Row, key: str, label: str, result: Any, reference: Any) -> bool:
    err = rel_diff(result, reference)
    row.checks[f"{label} vs hand numba"] = err
    if not err <= TOLERANCE:
        row.cells[key] = f"WRONG ({err:.1e})"
        return False
    return True


# -- (1) single calls -----------------------------------------------------------------------
def run_single(
    p: Problem, opts: argparse.Namespace, compiled: dict, log: Callable[[str], None]
) -> Row:
    import hand_numba as hn

    import scigrad as sg  # noqa: F401 - installs the array interface

    row = Row(p)
    args = single_args(p)
    names = [f"a{k}" for k in range(len(args))]
    call = f"({', '.join(names)})"
    env = dict(zip(names, args, strict=True))
    hand = hand_single(p)
    reference = hand(*args)
    eager = sg_derivative(p)
    row.checks["hand numba vs eager scigrad (independent derivations)"] = rel_diff(
        reference, eager(*args)
    )
    items: dict[str, Timed] = {"hand": Timed("f" + call, dict(env, f=hand))}
    if p.func == "rosenbrock":
        items["value"] = Timed("f" + call, dict(env, f=hn.rosenbrock))
    status = compiled.get(p.key)
    if isinstance(status, str):
        row.cells["jit"] = row.cells["kernel"] = status
    else:
        try:
            jf = sg_jitted(p, "single")
            if _checked(row, "jit", "sg.jit", jf(*args), reference):
                items["jit"] = Timed("f" + call, dict(env, f=jf))
                c = jf.lower(*args)
                if not c.source:
                    row.notes.append(INTERPRETED)
                kernel = c.kernel
                if _checked(row, "kernel", "sg.jit kernel", kernel(*args), reference):
                    items["kernel"] = Timed("f" + call, dict(env, f=kernel))
        except Exception as exc:  # noqa: BLE001 - reported in the table
            row.cells["jit"] = f"error: {_short(exc)}"
    if _checked(row, "eager", "eager scigrad", eager(*args), reference):
        items["eager"] = Timed("f" + call, dict(env, f=eager))
    if not opts.no_jax:
        try:
            jax = load_jax()
            jd = jax_derivative(p, batched=False)
            jargs = tuple(jax.numpy.asarray(a) for a in args)
            jenv = dict(zip(names, jargs, strict=True))
            if _checked(row, "jax", "JAX", jd(*jargs), reference):
                items["jax"] = Timed(
                    f"block(f{call})", dict(jenv, f=jd, block=jax.block_until_ready)
                )
        except NotInstalled as exc:
            row.cells["jax"] = f"({exc})"
        except Exception as exc:  # noqa: BLE001
            row.cells["jax"] = f"error: {_short(exc)}"
    if not opts.no_casadi:
        try:
            cd = casadi_derivative(p)
            if _checked(row, "casadi", "CasADi", cd(*args), reference):
                items["casadi"] = Timed("f" + call, dict(env, f=cd))
        except NotInstalled as exc:
            row.cells["casadi"] = f"({exc})"
        except Exception as exc:  # noqa: BLE001
            row.cells["casadi"] = f"error: {_short(exc)}"
    log(f"(1) {p.title}: timing {', '.join(items)}")
    row.cells.update(timed(items, opts.repeat, opts.block))
    return row


# -- (2) batched ----------------------------------------------------------------------------
def run_batched(
    p: Problem, opts: argparse.Namespace, compiled: dict, log: Callable[[str], None]
) -> Row:
    npts = getattr(opts, p.points)
    row = Row(p, points=npts)
    args = batch_args(p, npts)
    names = [f"a{k}" for k in range(len(args))]
    call = f"({', '.join(names)})"
    env = dict(zip(names, args, strict=True))
    alloc, into = hand_batch(p)
    reference = alloc(*args)
    hand_single_fn = hand_single(p)
    one = [a[0] if a.shape[0] == npts and a.ndim > 1 else a for a in args]
    first = tuple(r[0] for r in leaves(reference))
    row.checks["hand numba batched vs single point"] = rel_diff(first, leaves(hand_single_fn(*one)))
    outs = [numpy.empty_like(r) for r in leaves(reference)]
    onames = [f"o{k}" for k in range(len(outs))]
    call_out = f"({', '.join(names + onames)})"
    env_out = dict(env, **dict(zip(onames, outs, strict=True)))
    items: dict[str, Timed] = {
        "hand": Timed("f" + call, dict(env, f=alloc)),
        "hand_out": Timed("f" + call_out, dict(env_out, f=into)),
    }
    del reference
    gc.collect()
    variants = ["vmap", "vmap_par"] if opts.parallel else ["vmap"]
    for variant in variants:
        key = f"{p.key}_{variant}"
        status = compiled.get(key)
        if isinstance(status, str):
            row.cells[variant] = status
            continue
        try:
            jf = sg_jitted(p, variant)
            label = "sg.jit(vmap)" + (", parallel" if variant == "vmap_par" else "")
            ref = alloc(*args)
            if _checked(row, variant, label, jf(*args), ref):
                items[variant] = Timed("f" + call, dict(env, f=jf))
                if variant == "vmap":
                    c = jf.lower(*args)
                    if not c.source:
                        row.notes.append(INTERPRETED)
                    souts = c.empty_outputs(npts)
                    snames = [f"s{k}" for k in range(len(souts))]
                    c.kernel_out(*args, *souts)
                    if _checked(row, "kernel_out", "sg.jit kernel_out", tuple(souts), ref):
                        items["kernel_out"] = Timed(
                            f"f({', '.join(names + snames)})",
                            dict(env, f=c.kernel_out, **dict(zip(snames, souts, strict=True))),
                        )
            del ref
        except Exception as exc:  # noqa: BLE001 - reported in the table
            row.cells[variant] = f"error: {_short(exc)}"
    if not opts.no_jax:
        try:
            jax = load_jax()
            jd = jax_derivative(p, batched=True)
            jargs = tuple(jax.device_put(a) for a in args)
            jenv = dict(zip(names, jargs, strict=True))
            ref = alloc(*args)
            if _checked(row, "jax", "JAX", jd(*jargs), ref):
                items["jax"] = Timed(
                    f"block(f{call})", dict(jenv, f=jd, block=jax.block_until_ready)
                )
            del ref
        except NotInstalled as exc:
            row.cells["jax"] = f"({exc})"
        except Exception as exc:  # noqa: BLE001
            row.cells["jax"] = f"error: {_short(exc)}"
    items["floor"] = Timed(
        "; ".join(f"{o}.fill(0.0)" for o in onames), dict(zip(onames, outs, strict=True))
    )
    gc.collect()
    log(f"(2) {p.title}, {npts:,} points: timing {', '.join(items)}")
    times = timed(items, opts.batch_repeat, opts.block)
    row.cells.update({k: t / npts for k, t in times.items()})
    if not opts.no_casadi:
        # CasADi's virtual machine is slow: it is timed on fewer points, in its own rounds.
        cpts = max(1, min(npts // 100, opts.points_casadi))
        row.cells["casadi_points"] = cpts
        try:
            cd = casadi_derivative(p, cpts)
            cargs = batch_args(p, cpts)
            if _checked(row, "casadi", "CasADi", cd(*cargs), alloc(*cargs)):
                cnames = dict(zip(names, cargs, strict=True))
                log(f"(2) {p.title}, {cpts:,} points: timing casadi")
                t = interleaved({"c": Timed("f" + call, dict(cnames, f=cd))}, 3, opts.block)["c"]
                row.cells["casadi"] = t / cpts
        except NotInstalled as exc:
            row.cells["casadi"] = f"({exc})"
        except Exception as exc:  # noqa: BLE001
            row.cells["casadi"] = f"error: {_short(exc)}"
    return row


# -- (3) compile times, in worker processes -------------------------------------------------
def kernel_keys(opts: argparse.Namespace) -> list[str]:
    keys = []
    for p in PROBLEMS:
        if p.key in opts.skip:
            continue
        keys.append(p.key)
        keys.append(f"{p.key}_vmap")
        if opts.parallel:
            keys.append(f"{p.key}_vmap_par")
    return keys


def worker(keys: list[str]) -> int:
    """Compile and call the kernels ``keys`` one after the other; one JSON line each."""

    def emit(msg: dict) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    t0 = time.perf_counter()
    import scigrad  # noqa: F401

    t1 = time.perf_counter()
    import numba

    numba.njit(lambda v: v + 1.0)(1.0)  # numba's one-time set-up, not any kernel's
    t2 = time.perf_counter()
    emit({"kind": "start", "import": t1 - t0, "numba_init": t2 - t1})
    for key in keys:
        p = BY_KEY[key.split("_", 1)[0]]
        variant = key.split("_", 1)[1] if "_" in key else "single"
        args = single_args(p) if variant == "single" else batch_args(p, WORKER_POINTS)
        try:
            jf = sg_jitted(p, variant)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t = time.perf_counter()
                jf(*args)
                first = time.perf_counter() - t
            c = jf.lower(*args)
            emit(
                {
                    "kind": "kernel",
                    "key": key,
                    "first": first,
                    "trace": c.trace_time,
                    "compile": c.compile_time,
                    "lines": c.source.count("\n"),
                    "warnings": [str(w.message) for w in caught],
                }
            )
        except Exception as exc:  # noqa: BLE001 - reported by the parent
            emit({"kind": "kernel", "key": key, "error": _short(exc)})
    return 0


def run_workers(
    keys: list[str], cache: str, timeout: float, log: Callable[[str], None]
) -> tuple[list[dict], dict[str, Any]]:
    """Compile ``keys`` in fresh processes sharing the kernel cache ``cache``: (the start
    messages of the processes, per key its message or a string saying why it has none). A
    kernel that takes longer than ``timeout`` is killed with its process and the next
    process goes on with the remaining keys."""
    env = dict(os.environ, SCIGRAD_CACHE_DIR=cache)
    starts: list[dict] = []
    results: dict[str, Any] = {}
    pending = list(keys)
    while pending:
        with tempfile.TemporaryFile() as err:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", ",".join(pending)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
            assert proc.stdout is not None
            fd, buf = proc.stdout.fileno(), b""
            deadline = time.monotonic() + max(timeout, 120.0)  # imports: JAX-free, but slow
            started = time.monotonic()
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    proc.kill()
                    proc.wait()
                    key = pending.pop(0)
                    results[key] = f"not finished after {timeout:g} s (killed)"
                    log(f"    {key}: not finished after {timeout:g} s (killed)")
                    break
                ready, _, _ = select.select([fd], [], [], remaining)
                if not ready:
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:  # the process died
                    proc.wait()
                    err.seek(0)
                    tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
                    results[pending.pop(0)] = f"error: worker exited ({' '.join(tail)})"
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    if msg["kind"] == "start":
                        starts.append(msg)
                    else:
                        key = msg["key"]
                        pending.remove(key)
                        results[key] = f"error: {msg['error']}" if "error" in msg else msg
                        took = time.monotonic() - started
                        log(f"    {key}: {msg.get('first', float('nan')):.2f} s ({took:.0f} s)")
                    started = time.monotonic()
                    deadline = started + timeout
            if proc.poll() is None:
                proc.wait()
    return starts, results


# -- report ---------------------------------------------------------------------------------
def _fmt(t: Any, unit: str) -> str:
    if not isinstance(t, float):
        return "—" if t is None else str(t)
    if unit == "ns":
        ns = t * 1e9
        if ns < 100:
            return f"{ns:.1f} ns"
        return f"{ns:,.0f} ns" if ns < 10_000 else f"{t * 1e6:,.1f} µs"
    if unit == "us":
        us = t * 1e6
        return f"{us:.3f}" if us < 1 else f"{us:.2f}" if us < 10 else f"{us:,.1f}"
    return f"{t:.2f} s" if t >= 0.1 else f"{t * 1e3:.0f} ms"


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}×" if isinstance(a, float) and isinstance(b, float) else "—"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


@dataclass
class Results:
    single: list[Row]
    batched: list[Row]
    cold: dict[str, Any]
    warm: dict[str, Any]
    cold_starts: list[dict]
    warm_starts: list[dict]
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        bad = [r for r in self.single + self.batched if not r.ok()]
        bad_kernels = [k for k, v in self.cold.items() if isinstance(v, str) and "error" in v]
        return not bad and not bad_kernels


def _single_ok(r: Row) -> bool:
    c, p = r.cells, r.problem
    return isinstance(c.get("jit"), float) and c["jit"] <= p.single_target * c["hand"]


def _batch_status(r: Row) -> list[tuple[str, str, bool]]:
    """(form, measured, met) of the batched target, for the allocating call and for the
    allocation-free kernel (and, for a time per point, the parallel call)."""
    c, p = r.cells, r.problem
    what, bound = p.batch_target
    out = []
    for form, key, ref in (("allocating", "vmap", "hand"), ("out=", "kernel_out", "hand_out")):
        t = c.get(key)
        if not isinstance(t, float):
            out.append((form, _fmt(t, "ns"), False))
        elif what == "ratio":
            out.append(
                (
                    form,
                    f"{_ratio(t, c.get(ref))} ({_fmt(t, 'ns')} vs {_fmt(c.get(ref), 'ns')})",
                    t <= bound * c[ref],
                )
            )
        else:
            out.append((form, _fmt(t, "ns"), t <= bound))
    t = c.get("vmap_par")
    if what != "ratio" and isinstance(t, float):
        out.append(("parallel (allocating)", _fmt(t, "ns"), t <= bound))
    return out


def render_single(rows: list[Row]) -> list[str]:
    lines = [
        "## (1) Single calls from Python (µs per call)",
        "",
        "| derivative | numba f(x) only | hand numba | sg.jit | sg.jit / hand | target | "
        "sg.jit kernel, no wrapper | JAX jit | CasADi | eager scigrad |",
        "|:---|---:|---:|---:|---:|:---|---:|---:|---:|---:|",
    ]
    for r in rows:
        c, p = r.cells, r.problem
        target = "—"
        if p.single_target is not None:
            target = f"≤ {p.single_target:g}×: {_met(_single_ok(r))}"
        cells = [
            p.title,
            _fmt(c.get("value"), "us"),
            _fmt(c.get("hand"), "us"),
            _fmt(c.get("jit"), "us"),
            _ratio(c.get("jit"), c.get("hand")),
            target,
            _fmt(c.get("kernel"), "us"),
            _fmt(c.get("jax"), "us"),
            _fmt(c.get("casadi"), "us"),
            _fmt(c.get("eager"), "us"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "- *numba f(x) only*: Rosenbrock's value by a numba function (the floor of one call "
        "from Python); *hand numba*: the derivative by hand with numba, allocating its result "
        "(`benchmarks/hand_numba.py`); *sg.jit*: `sg.jit(sg.grad(f))(x)` / "
        "`sg.jit(sg.hessian(f))(x)`; *sg.jit kernel, no wrapper*: the compiled allocating "
        "kernel called directly (`sg.jit(d).lower(x).kernel(x)`), the cost of the numba "
        "dispatcher alone; *JAX jit*: `jax.jit(jax.grad(f))` / `jax.jit(jax.hessian(f))` "
        "with `block_until_ready`; *CasADi*: a `casadi.Function` of SX expressions "
        "(`gradient` / `hessian`, CasADi's virtual machine, no generated C) called with NumPy "
        "arrays, results converted with `.full()`; *eager scigrad*: `sg.grad(f)(x)` / "
        "`sg.hessian(f)(x)`.",
        "- A numba function that returns a new array pays for allocating it and handing it to "
        "Python: compare *numba f(x) only* (a float) with *hand numba*.",
    ]
    return lines


def render_batched(rows: list[Row], parallel: bool, threads: int) -> list[str]:
    lines = [
        "## (2) Batched over many points (time per point)",
        "",
        "| derivative | points | write floor | hand numba | sg.jit(vmap) | sg.jit / hand | "
        "hand numba, out= | sg kernel_out | kernel_out / out= | sg.jit(vmap, parallel) | "
        "JAX jit(vmap) | CasADi map (points) |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c, p = r.cells, r.problem
        cas = _fmt(c.get("casadi"), "ns")
        if isinstance(c.get("casadi"), float):
            cas += f" ({c['casadi_points']:,})"
        cells = [
            p.title,
            f"{r.points:,}",
            _fmt(c.get("floor"), "ns"),
            _fmt(c.get("hand"), "ns"),
            _fmt(c.get("vmap"), "ns"),
            _ratio(c.get("vmap"), c.get("hand")),
            _fmt(c.get("hand_out"), "ns"),
            _fmt(c.get("kernel_out"), "ns"),
            _ratio(c.get("kernel_out"), c.get("hand_out")),
            _fmt(c.get("vmap_par"), "ns") if parallel else "(not run)",
            _fmt(c.get("jax"), "ns"),
            cas,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "- Inputs are one point per row (C order), outputs likewise. *write floor*: "
        "`out.fill(0.0)` on the preallocated outputs (writing the results once, nothing "
        "computed: the memory bandwidth); *hand numba*: a numba loop over the points that "
        "allocates its result (`*_batch` in `benchmarks/hand_numba.py`); *sg.jit(vmap)*: "
        "`sg.jit(sg.vmap(d))(X)`, one compiled loop that allocates its result; *out=*: the "
        "hand-written loop writing into a preallocated result; *sg kernel_out*: the compiled "
        "kernel's allocation-free entry point (`sg.jit(sg.vmap(d)).lower(X).kernel_out`) "
        "writing into preallocated outputs; *parallel*: `sg.jit(sg.vmap(d), parallel=True)` "
        f"(numba `prange`, {threads} threads); *JAX jit(vmap)*: `jax.jit(jax.vmap(d))`; "
        "*CasADi map*: `casadi.Function.map(points)` of the function of (1) on fewer points "
        "(points as columns: the transposes are part of the call).",
        "- The allocating forms pay for fresh memory on every call: outputs this large are "
        "mapped anew by the allocator each time and every page faults on its first write "
        "(expensive on this virtual machine). NumPy asks the kernel for transparent huge pages "
        "for large arrays (`madvise`), numba's allocator does not (transparent huge pages "
        f"here: `{_thp()}`). The *out=* and *kernel_out* columns show the computation alone.",
    ]
    return lines


def _thp() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            return fh.read().strip()
    except OSError:
        return "unknown"


def _kernel_title(key: str) -> str:
    p = BY_KEY[key.split("_", 1)[0]]
    variant = key.split("_", 1)[1] if "_" in key else "single"
    how = {"single": "single point", "vmap": "vmap", "vmap_par": "vmap, parallel"}[variant]
    return f"{p.title} ({how})"


def render_compile(res: Results, timeout: float) -> list[str]:
    lines = [
        "## (3) Compile times of the sg.jit kernels",
        "",
        "| kernel | capture + lowering | numba compile | first call, empty cache | "
        "first call, new process with the disk cache | source lines |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for key, cold in res.cold.items():
        warm = res.warm.get(key)
        if isinstance(cold, dict):
            cells = [
                _fmt(cold["trace"], "s"),
                _fmt(cold["compile"], "s"),
                _fmt(cold["first"], "s"),
                _fmt(warm["first"], "s") if isinstance(warm, dict) else _fmt(warm, "s"),
                str(cold["lines"]) if cold["lines"] else "none: interpreted",
            ]
            notes += [f"{_kernel_title(key)}: warning: {w}" for w in cold.get("warnings", [])]
        else:
            cells = ["—", "—", cold, "—", "—"]
        lines.append(f"| {_kernel_title(key)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {n}" for n in notes]
    for name, starts in (("empty cache", res.cold_starts), ("disk cache", res.warm_starts)):
        if starts:
            s = starts[0]
            lines.append(
                f"- Fresh process ({name}): `import scigrad` {_fmt(s['import'], 's')}, numba's "
                f"one-time set-up (first `njit` compilation in the process) "
                f"{_fmt(s['numba_init'], 's')}; neither is counted in the kernels' times."
            )
    lines += [
        "- Each kernel is compiled in a worker process (`benchmarks/jit.py --worker`), "
        f"killed if one kernel takes longer than {timeout:g} s. The batched kernels' first "
        f"calls are made on {WORKER_POINTS} points. *capture + lowering*: `Compiled."
        "trace_time` (the graph and the simplified expression DAG); *numba compile*: "
        "`Compiled.compile_time` (code generation and numba, both entry points).",
    ]
    return lines


def render_targets(res: Results) -> list[str]:
    lines = ["## (4) The issue's targets", "", "| target | measured | status |", "|:---|:---|:---|"]
    for r in res.single:
        p, c = r.problem, r.cells
        if p.single_target is None:
            continue
        ratio = _ratio(c.get("jit"), c.get("hand"))
        lines.append(
            f"| single-call {p.title}: ≤ {p.single_target:g}× hand numba (JAX jit here: "
            f"{_fmt(c.get('jax'), 'us')} µs) | {ratio} ({_fmt(c.get('jit'), 'us')} µs vs "
            f"{_fmt(c.get('hand'), 'us')} µs) | {_met(_single_ok(r))} |"
        )
    for r in res.batched:
        p, c = r.problem, r.cells
        if p.batch_target is None:
            continue
        what, bound = p.batch_target
        if what == "ratio":
            target = f"batched {p.title}: ≤ {bound:g}× hand numba"
        else:
            target = (
                f"batched {p.title}: ≤ {_fmt(bound, 'ns')} per point (JAX here: "
                f"{_fmt(c.get('jax'), 'ns')}; write floor here: {_fmt(c.get('floor'), 'ns')}"
                f"; hand numba, out=: {_fmt(c.get('hand_out'), 'ns')})"
            )
        status = _batch_status(r)
        measured = "; ".join(f"{form}: {m}" for form, m, _ in status)
        met = ", ".join(f"{form} {_met(ok)}" for form, _, ok in status)
        lines.append(f"| {target} | {measured} | {met} |")
    h = res.cold.get("hess100")
    if h is not None:
        measured = _fmt(h["first"], "s") if isinstance(h, dict) else h
        ok = isinstance(h, dict) and h["first"] <= 5.0
        lines.append(
            "| compile time of the Hessian of a 100-input function (Rosenbrock n = 100, "
            f"first call with an empty cache): ≤ 5 s | {measured} | {_met(ok)} |"
        )
    return lines


def render(res: Results, argv: Sequence[str], opts: argparse.Namespace, secs: float) -> str:
    import numba

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    dists = ["scigrad", "numpy", "numba", "llvmlite", "jax", "jaxlib", "casadi"]
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS",) if k in os.environ)
    command = shlex.join(["python", "benchmarks/jit.py", *argv])
    lines = [
        "# sg.jit benchmarks",
        "",
        f"- Date: {now}",
        f"- Machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs ({usable} usable)",
        f"- Python {platform.python_version()}; " + ", ".join(f"{d} {version(d)}" for d in dists),
        f"- Reproduce: `{(env + ' ') if env else ''}{command}` from the repository root; this "
        f"run took {secs:.0f} s.",
        "- Method: float64. Every result was checked against the hand-written numba derivative "
        f"(max relative difference ≤ {TOLERANCE:g}) before it was timed. Single calls: "
        f"median over {opts.repeat} alternating rounds of the time per call in a block of "
        f"calls (auto-ranged to ≥ {opts.block * 1e3:g} ms), garbage collector enabled. "
        f"Batched: likewise over {opts.batch_repeat} rounds (one call per block once a call "
        f"takes ≥ {opts.block * 1e3:g} ms), divided by the number of points. JAX, CasADi and the "
        "parallel kernels are timed in rounds of their own (their worker threads may go on "
        "spinning after a call). Compile times: see (3).",
        f"- The machine's other load was not controlled: {usable} usable CPUs shared with "
        "other work; parallel timings in particular vary.",
        "",
    ]
    lines += render_single(res.single)
    for r in res.single:
        lines += [f"- {r.problem.title}: {n}" for n in r.notes]
    lines.append("")
    if res.batched:
        lines += render_batched(res.batched, opts.parallel, numba.config.NUMBA_NUM_THREADS)
        for r in res.batched:
            lines += [f"- {r.problem.title}: {n}" for n in r.notes]
        lines.append("")
    lines += render_compile(res, opts.compile_timeout) + [""]
    lines += render_targets(res) + [""]
    lines += [f"- {n}" for n in res.notes]
    checks = []
    for r in res.single + res.batched:
        where = f"{r.problem.key}{' batched' if r.points else ''}"
        checks += [f"{where}: {k} {v:.1e}" for k, v in r.checks.items()]
    lines += ["", "Checks (max relative difference): " + "; ".join(checks) + "."]
    return "\n".join(lines) + "\n"


# -- command line ---------------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", help="write the Markdown report to this file")
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds (smoke test)")
    ap.add_argument("--no-jax", action="store_true", help="do not run JAX")
    ap.add_argument("--no-casadi", action="store_true", help="do not run CasADi")
    ap.add_argument("--points", type=int, help="points of the batched runs (default 10^6)")
    ap.add_argument(
        "--points-h100", type=int, help="points of the batched n = 100 Hessian (default 10^4)"
    )
    ap.add_argument(
        "--points-casadi",
        type=int,
        help="most points of CasADi's batched runs (default 10^4; at most 1%% of the others)",
    )
    ap.add_argument("--repeat", type=int, help="rounds of single-call timing (default 7)")
    ap.add_argument("--batch-repeat", type=int, help="rounds of batched timing (default 7)")
    ap.add_argument("--block", type=float, help="seconds per block of single calls (0.02)")
    ap.add_argument(
        "--compile-timeout", type=float, help="seconds allowed per kernel compilation (30)"
    )
    ap.add_argument("--no-parallel", action="store_true", help="skip the parallel=True kernels")
    ap.add_argument("--skip", default="", help="comma-separated problems to skip, e.g. hess100")
    ap.add_argument("--cache-dir", help="kernel cache directory (default: a fresh temporary one)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    opts.parallel = not opts.no_parallel and not opts.quick
    opts.skip = {s.strip() for s in opts.skip.split(",") if s.strip()}
    if opts.quick:
        opts.skip.add("hess100")  # its compilation is not a smoke test
    unknown = opts.skip - set(BY_KEY)
    if unknown:
        ap.error(f"--skip: unknown problem {', '.join(sorted(unknown))} ({', '.join(BY_KEY)})")
    defaults = {
        "points": (10_000, 1_000_000),
        "points_h100": (100, 10_000),
        "points_casadi": (100, 10_000),
        "repeat": (3, 7),
        "batch_repeat": (3, 7),
        "block": (0.002, 0.02),
        "compile_timeout": (30.0, 30.0),
    }
    for name, (quick, full) in defaults.items():
        if getattr(opts, name) is None:
            setattr(opts, name, quick if opts.quick else full)
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return 1 if a result disagreed or a computation failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    if opts.worker is not None:
        return worker(opts.worker.split(","))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    tmp = None
    cache = opts.cache_dir
    if cache is None:
        cache = tmp = tempfile.mkdtemp(prefix="scigrad-jit-bench-")
    os.environ["SCIGRAD_CACHE_DIR"] = cache  # this process reads the same cache
    try:
        import scigrad  # noqa: F401

        notes = []
        keys = kernel_keys(opts)
        # Single-point kernels first; a batched kernel is not tried when the single-point
        # kernel of the same derivative (the same loop body) failed or took too long.
        singles = [k for k in keys if "_" not in k]
        log(f"(3) compiling {len(keys)} kernels with an empty cache ({cache})")
        cold_starts, cold = run_workers(singles, cache, opts.compile_timeout, log)
        rest = []
        for k in keys:
            if "_" in k:
                base = cold.get(k.split("_", 1)[0])
                if isinstance(base, str):
                    cold[k] = "not tried (single-point kernel failed)"
                else:
                    rest.append(k)
        more_starts, more = run_workers(rest, cache, opts.compile_timeout, log)
        cold_starts += more_starts
        cold = {k: cold.get(k, more.get(k)) for k in keys}
        ok_keys = [k for k in keys if isinstance(cold.get(k), dict)]
        log(f"(3) the same {len(ok_keys)} kernels in a new process, from the disk cache")
        warm_starts, warm = run_workers(ok_keys, cache, opts.compile_timeout, log)
        # Kernels that could not be compiled are not compiled again here.
        failed = {k: v for k, v in cold.items() if not isinstance(v, dict)}
        single = [run_single(p, opts, failed, log) for p in PROBLEMS if p.key not in opts.skip]
        batched = []
        for p in PROBLEMS:
            if p.key not in opts.skip:
                batched.append(run_batched(p, opts, failed, log))
                gc.collect()
        res = Results(single, batched, cold, warm, cold_starts, warm_starts, notes)
        text = render(res, argv, opts, time.perf_counter() - start)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {opts.output}")
    return 0 if res.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
