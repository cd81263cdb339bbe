"""Matrix-function benchmarks: the matrix exponential and its gradient, in one run.

(1) ``expm`` of a 100×100 matrix: the forward ``scigrad.scipy.linalg.expm`` beside
    ``scipy.linalg.expm``, and the gradient of ``sum(expm(A) * W)`` (``sg.value_and_grad``:
    the forward, then one Fréchet-derivative adjoint ``L(A^T, W)`` from the forward's
    intermediates), whose ratio to the forward is the price of the gradient (target ≤ 4).
    Beside them: the same gradient from ``scipy.linalg.expm_frechet(A.T, W)`` and JAX
    (``jax.jit(jax.value_and_grad(...))`` of ``jax.scipy.linalg.expm``, float64).
(2) The seed's model (a linear ODE fitted to data): 100 states, rates ``p`` (100×100,
    10^4 parameters), ``A(p) = p - diag(p.sum(1))`` so that ``du_i/dt = sum_j p_ij (u_j -
    u_i)``, data at t = 1, 2, 3, 4 from ``u0``, loss ``sum_t ||expm(A t) u0 - data_t||^2``;
    the gradient with respect to all 10^4 rates, by scigrad, by hand with SciPy
    (``expm_frechet`` per time) and by JAX. A second variant computes ``expm(A)`` once and
    ``u_t = expm(A)^t u0`` by matrix-vector products (the same function for integer t).

(3) The seed's model through diffrax (JAX): the ODE ``du/dt = A(p) u`` solved by ``Tsit5``
    with a ``PIDController`` (rtol = atol = 1e-8, and 1e-12), ``SaveAt(ts=[1, 2, 3, 4])``, the
    same loss, ``jax.jit(jax.value_and_grad(...))`` with diffrax's default adjoint
    (``RecursiveCheckpointAdjoint``: backpropagation through the solver's steps) and with
    ``BacksolveAdjoint`` (the continuous adjoint: the state is re-integrated backwards). Their
    accuracy is measured against the exact (expm) answer and their times against (2).
(4) The same kind of model with 10^5 sparse states (``examples/linear_ode_fit.py``: 4
    exchange rates per state on a ring with links +-1 and +-sqrt(n), 4 * 10^5 parameters),
    through ``scigrad.scipy.sparse.linalg.expm_multiply(A, u0, start=0, stop=4, num=5)``:
    the forward, ``sg.value_and_grad`` (target ≤ 10× the forward) and the peak memory of the
    gradient (tracemalloc) beside nnz × stored time points × 8 bytes.

Every gradient is checked against an independent one before it is timed. Times are the
median of calls timed in alternating rounds after a first call (the warm-up: JAX compiles).

    OPENBLAS_NUM_THREADS=1 python benchmarks/matfun.py --output BENCHMARKS_MATFUN.md  # ~1 min
    python benchmarks/matfun.py --quick --no-jax                # smoke run, about a second

(One BLAS thread: at n = 100 threads gain nothing, and NumPy's and SciPy's two OpenBLAS
copies stall each other on machines with few CPUs; the report records the setting.)
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy
import scipy.linalg
import scipy.sparse.linalg

import scigrad as sg
import scigrad.numpy as snp
from scigrad.scipy.linalg import expm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_model, version  # noqa: E402 - beside this file
from _support import NotInstalled, load_example, load_jax, peak_bytes, rel_diff  # noqa: E402

TOLERANCE = 1e-8  # largest relative difference accepted between two gradients
TIMES = (1.0, 2.0, 3.0, 4.0)
#: An ODE solver's gradient is timed if it agrees with the exact one to this (relative).
SOLVER_TOLERANCE = 1e-3


def interleaved(
    thunks: dict[str, Callable[[], Any]], repeat: int, min_time: float
) -> tuple[dict[str, float], dict[str, float]]:
    """(median seconds per call, first-call seconds) of each thunk. After one call of each
    (the warm-up), the thunks are called in rounds, each once in turn, so that ratios compare
    calls made under the same conditions: at least ``repeat`` rounds and enough to spend
    ``min_time`` seconds (at most 200)."""
    first = {}
    for key, thunk in thunks.items():
        gc.collect()
        t0 = time.perf_counter()
        thunk()
        first[key] = time.perf_counter() - t0
    per_round = sum(first.values()) or 1e-6
    rounds = max(repeat, min(200, math.ceil(min_time / per_round)))
    samples: dict[str, list[float]] = {k: [] for k in thunks}
    for _ in range(rounds):
        for key, thunk in thunks.items():
            t0 = time.perf_counter()
            thunk()
            samples[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}, first


@dataclass
class Section:
    """One benchmark: timed computations (seconds), checks (relative differences), notes."""

    title: str
    kind: str  # "expm", "seed", "diffrax" or "sparse": how the section is rendered
    params: int = 0
    cells: dict[str, Any] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    #: checks with their own tolerance (finite differences): (relative difference, bound)
    bounded: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: measured, not required (another library's accuracy): relative differences
    accuracy: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        bad = [e for e in self.errors.values() if not e <= TOLERANCE]
        bad += [e for e, bound in self.bounded.values() if not e <= bound]
        return not bad and not any(
            isinstance(c, str) and c.startswith("error") for c in self.cells.values()
        )


def _expm_structure(a: numpy.ndarray) -> str:
    """The forward's Padé degree and squarings, and whether the derivative reuses them."""
    from scigrad.scipy.linalg._expm import _Parts

    parts = _Parts(numpy.asarray(a, dtype=float))
    reuse = "reused by the derivative" if parts.safe else "not reused by the derivative"
    return f"Padé degree {parts.m}, {parts.s} squarings ({reuse})"


# -- (1) expm of one matrix and the gradient of a scalar of it --------------------------------
def seed_matrix(n: int, rng: numpy.random.Generator) -> numpy.ndarray:
    p = rng.random((n, n))
    return p - numpy.diag(p.sum(axis=1))


def run_expm(n: int, opts: argparse.Namespace, log: Callable[[str], None]) -> Section:
    rng = numpy.random.default_rng(0)
    a = seed_matrix(n, rng)
    w = rng.standard_normal((n, n))
    sec = Section(f"expm of a {n}×{n} matrix", "expm")
    sec.notes.append(
        f"A = p - diag(p.sum(1)) with p uniform in [0, 1) (the seed's matrix at t = 1; "
        f"1-norm {numpy.abs(a).sum(axis=0).max():.0f}): {_expm_structure(a)} for SciPy and "
        "scigrad alike."
    )

    def f(x):
        return snp.sum(expm(x) * w)

    vg = sg.value_and_grad(f)
    reference = scipy.linalg.expm_frechet(a.T, w, compute_expm=False)
    val, g = vg(a)
    sec.errors["scigrad gradient vs SciPy expm_frechet(A.T, W)"] = rel_diff(g, reference)
    sec.errors["scigrad expm vs scipy.linalg.expm"] = rel_diff(expm(a), scipy.linalg.expm(a))
    thunks: dict[str, Callable[[], Any]] = {
        "scipy_forward": lambda: scipy.linalg.expm(a),
        "forward": lambda: expm(a),
        "scigrad": lambda: vg(a),
        "scipy_frechet": lambda: scipy.linalg.expm_frechet(a.T, w),
    }
    log(f"(1) expm {n}x{n}: timing SciPy and scigrad")
    times, first = interleaved(thunks, opts.repeat, opts.min_time)
    sec.cells.update(times)
    sec.first.update(first)
    if not opts.no_jax:
        try:
            jax = load_jax()
            import jax.numpy as jnp
            from jax.scipy.linalg import expm as jexpm

            aj, wj = jnp.asarray(a), jnp.asarray(w)
            jf = jax.jit(jexpm)
            jvg = jax.jit(jax.value_and_grad(lambda x: jnp.sum(jexpm(x) * wj)))
            sec.errors["JAX gradient vs SciPy expm_frechet(A.T, W)"] = rel_diff(
                jvg(aj)[1], reference
            )
            log(f"(1) expm {n}x{n}: timing JAX")
            jt, jfirst = interleaved(
                {
                    "jax_forward": lambda: jf(aj).block_until_ready(),
                    "jax": lambda: jvg(aj)[1].block_until_ready(),
                },
                opts.repeat,
                opts.min_time,
            )
            sec.cells.update(jt)
            sec.first.update(jfirst)
        except NotInstalled as exc:
            sec.cells["jax"] = sec.cells["jax_forward"] = f"({exc})"
        except Exception as exc:  # noqa: BLE001 - reported in the table
            sec.cells["jax"] = sec.cells["jax_forward"] = f"error: {type(exc).__name__}: {exc}"
    return sec


# -- (2) the seed's linear model ------------------------------------------------------------
def seed_problem(n: int) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """(p, u0, data): random rates, initial state and data at t = 1..4, as in the seed."""
    rng = numpy.random.default_rng(1)
    data = rng.random((n, len(TIMES)))
    return rng.random((n, n)), rng.random(n), data


def make_losses(xp: Any, expm_fn: Callable, u0: Any, data: Any) -> dict[str, Callable]:
    """The two forms of the loss for a NumPy-like namespace ``xp``."""

    def matrix(p):
        return p - xp.diag(xp.sum(p, axis=1))

    def per_time(p):
        a = matrix(p)
        total = 0.0
        for k, t in enumerate(TIMES):
            r = expm_fn(a * t) @ u0 - data[:, k]
            total = total + xp.sum(r * r)
        return total

    def once(p):
        x = expm_fn(matrix(p))
        u = u0
        total = 0.0
        for k in range(len(TIMES)):  # t = 1, 2, 3, 4: expm(A t) = expm(A)^t
            u = x @ u
            r = u - data[:, k]
            total = total + xp.sum(r * r)
        return total

    return {"per_time": per_time, "once": once}


def hand_gradient(p: numpy.ndarray, u0: numpy.ndarray, data: numpy.ndarray) -> tuple:
    """The loss ``sum_t ||expm(A t) u0 - d_t||^2`` and its gradient by hand with SciPy:
    dloss/dA = sum_t t L(t A^T, 2 r_t u0^T); A_ij = p_ij - delta_ij sum_k p_ik, so
    dloss/dp_ik = G_ik - G_ii."""
    a = p - numpy.diag(p.sum(axis=1))
    total = 0.0
    g = numpy.zeros_like(a)
    for k, t in enumerate(TIMES):
        r = scipy.linalg.expm(a * t) @ u0 - data[:, k]
        total += float(r @ r)
        g += t * scipy.linalg.expm_frechet(
            t * a.T, numpy.outer(2.0 * r, u0), compute_expm=False, check_finite=False
        )
    return total, g - numpy.diag(g)[:, None]


def run_seed(n: int, opts: argparse.Namespace, log: Callable[[str], None]) -> Section:
    p, u0, data = seed_problem(n)
    sec = Section(f"The seed's model: {n} states, {n * n:,} rates", "seed", params=n * n)
    a = p - numpy.diag(p.sum(axis=1))
    structures = ", ".join(f"t = {t:g}: {_expm_structure(a * t)}" for t in TIMES)
    sec.notes.append(f"expm(A t) structure: {structures}.")
    losses = make_losses(snp, expm, u0, data)
    plain = make_losses(numpy, scipy.linalg.expm, u0, data)
    ref_val, ref_grad = hand_gradient(p, u0, data)
    thunks: dict[str, Callable[[], Any]] = {"hand": lambda: hand_gradient(p, u0, data)}
    for key in ("per_time", "once"):
        vg = sg.value_and_grad(losses[key])
        val, g = vg(p)
        sec.errors[f"scigrad ({key}) gradient vs SciPy by hand"] = rel_diff(g, ref_grad)
        sec.errors[f"scigrad ({key}) loss vs SciPy by hand"] = rel_diff(val, ref_val)
        thunks[f"scipy_forward_{key}"] = lambda f=plain[key]: f(p)
        thunks[f"forward_{key}"] = lambda f=losses[key]: f(p)
        thunks[f"scigrad_{key}"] = lambda vg=vg: vg(p)
    log(f"(2) seed model {n} states: timing SciPy and scigrad")
    times, first = interleaved(thunks, opts.repeat, opts.min_time)
    sec.cells.update(times)
    sec.first.update(first)
    if not opts.no_jax:
        try:
            jax = load_jax()
            import jax.numpy as jnp
            from jax.scipy.linalg import expm as jexpm

            pj = jnp.asarray(p)
            jl = make_losses(jnp, jexpm, jnp.asarray(u0), jnp.asarray(data))
            jthunks = {}
            for key in ("per_time", "once"):
                jvg = jax.jit(jax.value_and_grad(jl[key]))
                sec.errors[f"JAX ({key}) gradient vs SciPy by hand"] = rel_diff(
                    jvg(pj)[1], ref_grad
                )
                jthunks[f"jax_{key}"] = lambda jvg=jvg: jvg(pj)[1].block_until_ready()
            log(f"(2) seed model {n} states: timing JAX")
            jt, jfirst = interleaved(jthunks, opts.repeat, opts.min_time)
            sec.cells.update(jt)
            sec.first.update(jfirst)
        except NotInstalled as exc:
            for key in ("per_time", "once"):
                sec.cells[f"jax_{key}"] = f"({exc})"
        except Exception as exc:  # noqa: BLE001 - reported in the table
            for key in ("per_time", "once"):
                sec.cells[f"jax_{key}"] = f"error: {type(exc).__name__}: {exc}"
    return sec


# -- (3) the seed's model through diffrax ---------------------------------------------------
#: (key, title, adjoint class name, rtol = atol)
DIFFRAX_RUNS = (
    ("dfx_recursive_8", "Tsit5, rtol = atol = 1e-8, RecursiveCheckpointAdjoint (default)",
     "RecursiveCheckpointAdjoint", 1e-8),
    ("dfx_recursive_12", "Tsit5, rtol = atol = 1e-12, RecursiveCheckpointAdjoint (default)",
     "RecursiveCheckpointAdjoint", 1e-12),
    ("dfx_backsolve_8", "Tsit5, rtol = atol = 1e-8, BacksolveAdjoint",
     "BacksolveAdjoint", 1e-8),
)  # fmt: skip


def load_diffrax() -> Any:
    jax = load_jax()
    try:
        import diffrax
    except ImportError as exc:
        raise NotInstalled("diffrax is not installed") from exc
    return jax, diffrax


def diffrax_loss(jnp: Any, diffrax: Any, u0: Any, data: Any, adjoint: Any, tol: float):
    """The loss of (2) with ``u(t)`` from diffrax (aux: the number of accepted steps)."""
    ts, y0, d = jnp.asarray(TIMES), jnp.asarray(u0), jnp.asarray(data).T
    term = diffrax.ODETerm(lambda t, u, a: a @ u)
    controller = diffrax.PIDController(rtol=tol, atol=tol)

    def loss(p):
        a = p - jnp.diag(jnp.sum(p, axis=1))
        sol = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            t0=0.0,
            t1=TIMES[-1],
            dt0=None,
            y0=y0,
            args=a,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=controller,
            adjoint=adjoint,
        )
        r = sol.ys - d
        return jnp.sum(r * r), sol.stats["num_steps"]

    return loss


def run_diffrax(
    n: int, opts: argparse.Namespace, log: Callable[[str], None], seed: Section
) -> Section:
    """diffrax's gradients of the seed's loss: accuracy against the exact gradient, times
    against scigrad's in (2) (the same problem; JAX timed in its own rounds, as in (2))."""
    p, u0, data = seed_problem(n)
    sec = Section(f"The seed's model through diffrax: {n} states, {n * n:,} rates", "diffrax")
    sec.params = n * n
    for key in ("per_time", "once"):
        sec.cells[f"scigrad_{key}"] = seed.cells.get(f"scigrad_{key}")
        for what in ("loss", "gradient"):
            err = seed.errors.get(f"scigrad ({key}) {what} vs SciPy by hand")
            if err is not None:
                sec.accuracy[f"scigrad_{key} {what}"] = err
    try:
        jax, diffrax = load_diffrax()
    except NotInstalled as exc:
        sec.notes.append(f"Not run: {exc}.")
        return sec
    import jax.numpy as jnp

    ref_val, ref_grad = hand_gradient(p, u0, data)
    pj = jnp.asarray(p)
    thunks = {}
    for key, _, adjoint_name, tol in DIFFRAX_RUNS:
        log(f"(3) diffrax {key}: compiling and checking")
        try:
            adjoint = getattr(diffrax, adjoint_name)()
            loss = diffrax_loss(jnp, diffrax, u0, data, adjoint, tol)
            vg = jax.jit(jax.value_and_grad(loss, has_aux=True))
            t0 = time.perf_counter()
            (val, steps), g = vg(pj)
            g.block_until_ready()
            sec.first[key] = time.perf_counter() - t0
            t0 = time.perf_counter()
            (val, steps), g = vg(pj)
            g.block_until_ready()
            one_call = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - reported in the table
            sec.cells[key] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            continue
        sec.cells[f"{key}_steps"] = int(steps)
        sec.accuracy[f"{key} loss"] = rel_diff(val, ref_val)
        sec.accuracy[f"{key} gradient"] = err = rel_diff(g, ref_grad)
        if err <= SOLVER_TOLERANCE:
            thunks[key] = lambda vg=vg: vg(pj)[1].block_until_ready()
        else:
            sec.cells[key] = f"wrong gradient (one call: {_fmt_s(one_call)})"
    if thunks:
        log("(3) diffrax: timing")
        times, _ = interleaved(thunks, opts.repeat, opts.min_time)
        sec.cells.update(times)
    return sec


# -- (4) the sparse model: 10^5 states through expm_multiply -------------------------------
def run_sparse(n: int, opts: argparse.Namespace, log: Callable[[str], None]) -> Section:
    example = load_example("linear_ode_fit.py")
    problem, graph = example.sparse_problem(n)
    theta = problem.theta_true  # log-normal rates around 1/4
    loss = problem.loss
    num = len(TIMES) + 1  # the grid 0, 1, ..., 4
    nnz = graph.a_rows.size
    sec = Section(f"The sparse model: {n:,} states, {graph.edges:,} rates, expm_multiply", "sparse")
    sec.params = graph.edges
    sec.cells.update(nnz=nnz, num=num, n=n)
    a_plain = graph.matrix(theta).to_scipy()
    u0 = problem.u0
    norm = float(abs(a_plain).sum(axis=0).max())
    sec.notes.append(
        f"A: {n:,} × {n:,}, {nnz:,} stored values (the {graph.edges:,} rates and the "
        f"diagonal), 1-norm {norm:.2f}; u(t) at t = 0, 1, ..., 4 from "
        "`expm_multiply(A, u0, start=0, stop=4, num=5, endpoint=True)`. The loss assembles "
        "`A` from `theta` (`p = exp(theta)`, `csr_array` from triplets) and is the example's "
        "code (`examples/linear_ode_fit.py`)."
    )

    def scipy_forward():
        return scipy.sparse.linalg.expm_multiply(
            a_plain, u0, start=0.0, stop=TIMES[-1], num=num, endpoint=True
        )

    vg = sg.value_and_grad(loss)
    log(f"(4) sparse model {n} states: checking")
    val, g = vg(theta)
    g = numpy.asarray(g)
    traj = numpy.asarray(example.sparse_trajectory(graph, theta, u0))
    sec.errors["scigrad expm_multiply vs SciPy's"] = rel_diff(traj, scipy_forward()[1:])
    v = numpy.random.default_rng(2).standard_normal(theta.shape)
    _, tangent = sg.jvp(loss, (theta,), (v,))  # forward mode: the 2n x 2n block system
    gv = float(g @ v)
    sec.errors["gradient · v vs the JVP (block expm_multiply, forward mode)"] = rel_diff(
        gv, float(tangent)
    )
    fd, exact, rel = example.directional_check(loss, theta, g)
    sec.bounded["gradient · v vs a central finite difference"] = (rel, example.FD_TOLERANCE)
    if not sec.ok():
        sec.cells["scigrad"] = "error: the gradient failed its check (not timed)"
        return sec
    log(f"(4) sparse model {n} states: timing")
    times, first = interleaved(
        {
            "scipy_forward": scipy_forward,
            "forward": lambda: loss(theta),
            "scigrad": lambda: vg(theta),
        },
        opts.repeat,
        opts.min_time,
    )
    sec.cells.update(times)
    sec.first.update(first)
    log(f"(4) sparse model {n} states: memory")
    sec.cells["mem_scipy_forward"] = peak_bytes(scipy_forward)
    sec.cells["mem_forward"] = peak_bytes(lambda: loss(theta))
    sec.cells["mem_scigrad"] = peak_bytes(lambda: vg(theta))
    return sec


# -- report ---------------------------------------------------------------------------------
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def _env_prefix() -> str:
    """The thread settings of this run, as a shell prefix of the command line."""
    parts = [f"{k}={os.environ[k]}" for k in _THREAD_VARS if k in os.environ]
    return " ".join(parts) + " " if parts else ""


def _fmt_s(cell: Any) -> str:
    if not isinstance(cell, float):
        return str(cell)
    if cell >= 1:
        return f"{cell:.2f} s"
    if cell >= 1e-3:
        return f"{cell * 1e3:.2f} ms"
    return f"{cell * 1e6:.0f} µs"


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}×" if isinstance(a, float) and isinstance(b, float) else "—"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render_expm(sec: Section) -> list[str]:
    c = sec.cells
    rows = [
        ("scipy.linalg.expm (forward, C implementation)", "scipy_forward"),
        ("scigrad expm (forward)", "forward"),
        ("scigrad value_and_grad of sum(expm(A) * W)", "scigrad"),
        ("scipy.linalg.expm_frechet(A.T, W) (same gradient, with expm)", "scipy_frechet"),
        ("JAX jit expm (forward)", "jax_forward"),
        ("JAX jit value_and_grad of sum(expm(A) * W)", "jax"),
    ]
    lines = [
        f"## (1) {sec.title}",
        "",
        "| computation | time | × scigrad forward |",
        "|:---|---:|---:|",
    ]
    for title, key in rows:
        if key in c:
            lines.append(f"| {title} | {_fmt_s(c[key])} | {_ratio(c[key], c.get('forward'))} |")
    ratio = c.get("scigrad", math.nan) / c.get("forward", math.nan)
    lines += ["", f"- Gradient / forward: {ratio:.2f}× (target ≤ 4: {_met(ratio <= 4)})."]
    if isinstance(c.get("jax"), float):
        lines.append(
            f"- scigrad's gradient takes {c['scigrad'] / c['jax']:.2f}× JAX's "
            f"({'faster' if c['scigrad'] < c['jax'] else 'slower'} than JAX)."
        )
    return lines


def render_seed(sec: Section) -> list[str]:
    c = sec.cells
    lines = [
        f"## (2) {sec.title}",
        "",
        "| loss form | SciPy forward | scigrad forward | scigrad value_and_grad | "
        "grad / forward | JAX jit value_and_grad | scigrad / JAX |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    titles = {
        "per_time": "`expm(A t) @ u0` for t = 1..4 (4 expm)",
        "once": "`expm(A)` once, `u_t = expm(A) @ u_{t-1}` (1 expm)",
    }
    for key, title in titles.items():
        sgt, fwd, jx = c.get(f"scigrad_{key}"), c.get(f"forward_{key}"), c.get(f"jax_{key}")
        cells = [
            title,
            _fmt_s(c.get(f"scipy_forward_{key}", "—")),
            _fmt_s(fwd if fwd is not None else "—"),
            _fmt_s(sgt if sgt is not None else "—"),
            _ratio(sgt, fwd),
            _fmt_s(jx if jx is not None else "—"),
            _ratio(sgt, jx),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    hand = c.get("hand")
    lines += [
        "",
        f"- SciPy by hand (the 4 forwards, then `expm_frechet(t A^T, 2 r_t u0^T)` per time): "
        f"{_fmt_s(hand)}.",
    ]
    best = min(
        (v for k, v in c.items() if k.startswith("scigrad_") and isinstance(v, float)),
        default=math.nan,
    )
    lines.append(
        f"- Whole gradient ({sec.params:,} parameters), fastest form: {_fmt_s(best)} (the "
        f"guide's aim ≤ 1 ms: {_met(best <= 1e-3)})."
    )
    for key in ("per_time", "once"):
        sgt, jx = c.get(f"scigrad_{key}"), c.get(f"jax_{key}")
        if isinstance(sgt, float) and isinstance(jx, float):
            lines.append(
                f"- {key}: scigrad {'faster' if sgt < jx else 'slower'} than JAX "
                f"({jx / sgt:.2f}× JAX's time over scigrad's)."
            )
    return lines


def _fmt_mib(nbytes: Any) -> str:
    return f"{nbytes / 2**20:.1f} MiB" if isinstance(nbytes, int | float) else "—"


def render_diffrax(sec: Section) -> list[str]:
    c, acc = sec.cells, sec.accuracy
    once, per_time = c.get("scigrad_once"), c.get("scigrad_per_time")
    lines = [
        f"## (3) {sec.title}",
        "",
        "The loss of (2) (same `p`, `u0`, data) with `u(t)` from `diffrax.diffeqsolve`; "
        "`jax.jit(jax.value_and_grad(loss))`, float64. Errors are relative to the exact "
        "loss and gradient (expm, SciPy by hand: max |difference| / max |exact|).",
        "",
        "| method | value_and_grad | steps | loss error | gradient error | "
        "÷ scigrad (1 expm) | ÷ scigrad (4 expm) |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, title, _, _ in DIFFRAX_RUNS:
        if key not in c and f"{key} gradient" not in acc:
            continue
        t = c.get(key, "—")
        cells = [
            f"diffrax {title}",
            _fmt_s(t),
            str(c.get(f"{key}_steps", "—")),
            f"{acc[f'{key} loss']:.1e}" if f"{key} loss" in acc else "—",
            f"{acc[f'{key} gradient']:.1e}" if f"{key} gradient" in acc else "—",
            _ratio(t, once),
            _ratio(t, per_time),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for key, title in (("scigrad_once", "`expm(A)` once"), ("scigrad_per_time", "4 `expm`")):
        t = c.get(key)
        if isinstance(t, float):
            errs = [acc.get(f"{key} {what}") for what in ("loss", "gradient")]
            errs_s = " | ".join("—" if e is None else f"{e:.1e}" for e in errs)
            lines.append(
                f"| scigrad value_and_grad, {title} (from (2)) | {_fmt_s(t)} | — | {errs_s} | "
                f"{_ratio(t, once)} | {_ratio(t, per_time)} |"
            )
    timed = [k for k, *_ in DIFFRAX_RUNS if isinstance(c.get(k), float)]
    if timed and isinstance(once, float):
        fastest = min(timed, key=lambda k: c[k])
        lines += [
            "",
            f"- Fastest diffrax gradient: {_fmt_s(c[fastest])}, {c[fastest] / once:.1f}× "
            f"scigrad's (1 expm) and {c[fastest] / per_time:.1f}× scigrad's with 4 expm, "
            f"at a gradient error of {acc[f'{fastest} gradient']:.0e} against scigrad's "
            f"{acc.get('scigrad_once gradient', math.nan):.0e} (exact up to rounding: the "
            "matrix exponential takes no time steps).",
        ]
    if "dfx_backsolve_8 gradient" in acc and not isinstance(c.get("dfx_backsolve_8"), float):
        lines.append(
            "- `BacksolveAdjoint` re-integrates the state backwards from t = 4: the ODE is "
            "dissipative (one eigenvalue of A is 0, the others are near -50), so backwards "
            "it grows like e^{50 t} "
            "and the gradient is lost (not timed; the time shown is one call). "
            "`RecursiveCheckpointAdjoint` stores the forward steps instead."
        )
    return lines


def render_sparse(sec: Section) -> list[str]:
    c = sec.cells
    nnz, num = c["nnz"], c["num"]
    fwd, vg = c.get("forward"), c.get("scigrad")
    lines = [
        f"## (4) {sec.title}",
        "",
        "| computation | time | × scigrad forward | peak memory (tracemalloc) |",
        "|:---|---:|---:|---:|",
    ]
    rows = [
        ("scipy.sparse.linalg.expm_multiply (forward only, A prebuilt)", "scipy_forward"),
        ("scigrad loss (assembles A, expm_multiply, residuals)", "forward"),
        ("scigrad value_and_grad (all rates)", "scigrad"),
    ]
    for title, key in rows:
        if key in c:
            lines.append(
                f"| {title} | {_fmt_s(c[key])} | {_ratio(c[key], fwd)} | "
                f"{_fmt_mib(c.get('mem_' + key))} |"
            )
    budget = nnz * num * 8
    if isinstance(vg, float) and isinstance(fwd, float):
        ratio = vg / fwd
        mem = c.get("mem_scigrad", math.nan)
        lines += [
            "",
            f"- Gradient / forward: {ratio:.2f}× (target ≤ 10: {_met(ratio <= 10)}).",
            f"- Peak memory of the gradient: {_fmt_mib(mem)} = {mem / budget:.1f}× nnz × "
            f"stored time points × 8 bytes ({nnz:,} × {num} × 8 = {_fmt_mib(budget)}), "
            f"{mem / c.get('mem_forward', math.nan):.1f}× the loss's own peak. Beyond the "
            "tape's stored time points and the nnz values of A's cotangent, the adjoint's "
            "working set is a fixed number of n-vectors whatever the time span: at most "
            "(m + 1) + Q + 4 for a panel (Taylor terms of degree m ≤ 55, Q ≤ 21 quadrature "
            f"nodes) and 16 checkpoints, 97 × n × 8 bytes = {_fmt_mib(97 * c['n'] * 8)}. "
            f"A dense n × n cotangent would take {c['n'] ** 2 * 8 / 2**30:.3g} GiB.",
        ]
    return lines


RENDERERS = {
    "expm": render_expm,
    "seed": render_seed,
    "diffrax": render_diffrax,
    "sparse": render_sparse,
}


def render(sections: list[Section], argv: Sequence[str], opts: argparse.Namespace, secs: float):
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    dists = ["scigrad", "numpy", "scipy", "jax", "jaxlib", "diffrax", "equinox"]
    lines = [
        "# scigrad matrix-function benchmarks",
        "",
        f"- Date: {now}",
        f"- Machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs ({usable} usable)",
        f"- Python {platform.python_version()}; " + ", ".join(f"{d} {version(d)}" for d in dists),
        f"- Reproduce: `{_env_prefix()}{shlex.join(['python', 'benchmarks/matfun.py', *argv])}` "
        f"from the repository root; this run took {secs:.0f} s.",
        "- BLAS threads: "
        + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in _THREAD_VARS)
        + " (unset: OpenBLAS uses every CPU). NumPy and SciPy each bundle an OpenBLAS; on a "
        "machine with few CPUs their thread pools, when both are active, can stall each other "
        "for a scheduler tick (milliseconds) — one thread each avoids that, and costs nothing "
        "at these sizes.",
        "- Method: float64; garbage collector enabled. Each time is the median per call over "
        f"alternating rounds (at least {opts.repeat}, and enough to spend {opts.min_time:g} s) "
        "after a first, untimed call (JAX compiles there); JAX is timed in its own rounds. "
        f"Every gradient was checked (max relative difference ≤ {TOLERANCE:g}) before it was "
        "timed.",
        "- scigrad's `expm` picks the Padé degree and the scaling as `scipy.linalg.expm` does "
        "(Al-Mohy & Higham 2009) and keeps its intermediates; the gradient is one Fréchet "
        "derivative L(A^T, G) = L(A, G^T)^T (Al-Mohy & Higham 2009, Algorithm 6.4) computed "
        "from them, with no refactorization.",
        "",
    ]
    for sec in sections:
        lines += RENDERERS[sec.kind](sec)
        lines += [f"- {n}" for n in sec.notes]
        checks = [f"{k}: {v:.1e}" for k, v in sec.errors.items()]
        checks += [f"{k}: {v:.1e} (≤ {b:g})" for k, (v, b) in sec.bounded.items()]
        if checks:
            lines.append("- Checks: " + "; ".join(checks) + ".")
        firsts = ", ".join(
            f"{k} {_fmt_s(v)}" for k, v in sec.first.items() if "jax" in k or "dfx" in k
        )
        if firsts:
            lines.append(f"- JAX's first calls (compilation): {firsts}.")
        lines.append("")
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", help="write the Markdown report to this file")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--no-jax", action="store_true", help="do not run JAX (nor diffrax)")
    ap.add_argument("--n", type=int, help="matrix size / number of states (default 100)")
    ap.add_argument(
        "--sparse-states",
        type=int,
        help="states of the sparse model in (4) (default 100000, 2000 with --quick; 0 skips)",
    )
    ap.add_argument("--repeat", type=int, default=5, help="least timed rounds (default 5)")
    ap.add_argument("--min-time", type=float, help="seconds per measurement (default 5)")
    opts = ap.parse_args(argv)
    if opts.n is None:
        opts.n = 12 if opts.quick else 100
    if opts.n < 2:
        ap.error("--n: at least 2")
    if opts.sparse_states is None:
        opts.sparse_states = 2000 if opts.quick else 100_000
    if opts.sparse_states < 0 or 0 < opts.sparse_states < 5:
        ap.error("--sparse-states: at least 5 (or 0 to skip (4))")
    if opts.min_time is None:
        opts.min_time = 0.05 if opts.quick else 5.0
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return 1 if a gradient disagreed or a computation failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    sections = [run_expm(opts.n, opts, log), run_seed(opts.n, opts, log)]
    if not opts.no_jax:
        sections.append(run_diffrax(opts.n, opts, log, sections[1]))
    if opts.sparse_states:
        sections.append(run_sparse(opts.sparse_states, opts, log))
    text = render(sections, argv, opts, time.perf_counter() - start)
    print(text)
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {opts.output}")
    return 0 if all(s.ok() for s in sections) else 1


if __name__ == "__main__":
    sys.exit(main())
