"""Sparse benchmarks: gradients through sparse assembly and sparse solves, in one run.

(a) The topology-optimization gradient of ``examples/topopt.py`` (a cantilever of Q4
    elements, density filter, SIMP, assembly from triplets and ``spsolve``) at about 40k and
    160k degrees of freedom, for the compliance and for a loss that is not self-adjoint (the
    sum of squared vertical displacements of the loaded edge): ``sg.value_and_grad`` over the
    forward evaluation alone, beside a hand-written SciPy adjoint (one factorization, the
    solve and the adjoint solve with the same factors) and JAX (``jax.experimental.sparse``
    BCOO assembly and ``jax.experimental.sparse.linalg.spsolve``, float64, jitted).
(b) The gradient of ``x^T A(p) y`` with 10^6 stored entries: time and peak memory
    (tracemalloc) against the forward evaluation.
(c) Conjugate gradients with the implicit gradient against the direct solve: agreement and
    time.

Every gradient is checked against the hand-written one before anything is timed. Times are
the median of several calls after a first call (the warm-up: scigrad computes its assembly
plans, JAX compiles), as in an optimization loop that calls the same gradient repeatedly.

    python benchmarks/sparse.py --output BENCHMARKS_SPARSE.md   # full run (~3 minutes)
    python benchmarks/sparse.py --quick --no-jax                # smoke run, a few seconds
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
import scipy.sparse as sps
import scipy.sparse.linalg as spla

import scigrad as sg
import scigrad.numpy as snp
import scigrad.scipy.sparse as sp
from scigrad.scipy.sparse.linalg import cg, spsolve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_model, version  # noqa: E402 - beside this file
from _support import NotInstalled, load_example, peak_bytes, rel_diff  # noqa: E402

topopt = load_example("topopt.py")


@dataclass
class Timing:
    result: Any
    seconds: float  # median per call after the first
    first: float  # the first call (warm-up)


def measure(thunk: Callable[[], Any], repeat: int, min_time: float) -> Timing:
    """Call once (warm-up, result kept), then at least ``repeat`` times and until
    ``min_time`` seconds are spent (at most 50 calls); the median of those."""
    gc.collect()
    t0 = time.perf_counter()
    result = thunk()
    first = time.perf_counter() - t0
    calls = max(repeat, min(50, math.ceil(min_time / max(first, 1e-6))))
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        thunk()
        times.append(time.perf_counter() - t0)
    return Timing(result, statistics.median(times), first)


def first_calls(thunks: dict[str, Callable[[], Any]]) -> tuple[dict, dict]:
    """Call each thunk once: (results, seconds)."""
    results, seconds = {}, {}
    for key, thunk in thunks.items():
        gc.collect()
        t0 = time.perf_counter()
        results[key] = thunk()
        seconds[key] = time.perf_counter() - t0
    return results, seconds


def interleaved(
    thunks: dict[str, Callable[[], Any]],
    first: dict[str, float],
    warm: set[str],
    repeat: int,
    min_time: float,
) -> dict[str, float]:
    """Median seconds per call of each thunk, timed in rounds that call every thunk once in
    turn (so that the ratios compare calls made under the same conditions): at least
    ``repeat`` rounds, and enough to spend ``min_time`` (at most 50). The first call of a
    thunk not in ``warm`` (a plain SciPy computation: nothing to warm up) is a sample too."""
    samples = {k: ([] if k in warm else [first[k]]) for k in thunks}
    per_round = sum(first[k] for k in thunks) or 1e-6
    rounds = max(repeat, min(50, math.ceil(min_time / per_round)))
    for _ in range(rounds):
        for key, thunk in thunks.items():
            if len(samples[key]) >= rounds:
                continue
            t0 = time.perf_counter()
            thunk()
            samples[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


TOLERANCE = 1e-6  # largest relative difference accepted between two gradients


# -- the factorization a hand-written code would use: the one scigrad's spsolve picks -------
def cholmod_factorize() -> tuple[str, Callable[[Any], Callable]] | None:
    """(package, factorize(csc) -> solve(b, trans)) for an installed CHOLMOD wheel, else None (the
    optional backends scigrad's ``spsolve`` uses for symmetric positive definite matrices)."""
    try:
        from sksparse_minimal import SparseCholesky
    except ImportError:
        pass
    else:

        def factorize_sksparse(m: Any) -> Callable:
            solve_a = SparseCholesky(sps.csc_matrix(m)).solve_A
            return lambda b, trans="N": solve_a(b)  # symmetric: A^T = A

        return "sksparse-minimal", factorize_sksparse
    try:
        import cholespy
    except ImportError:
        return None

    def factorize(m: Any) -> Callable:
        m = sps.csc_matrix(m)
        chol = cholespy.CholeskySolverD(
            m.shape[0],
            m.indptr.astype(numpy.int32),
            m.indices.astype(numpy.int32),
            numpy.ascontiguousarray(m.data, dtype=numpy.float64),
            cholespy.MatrixType.CSC,
        )

        def solve(b: numpy.ndarray, trans: str = "N") -> numpy.ndarray:
            x = numpy.zeros_like(b)
            chol.solve(numpy.ascontiguousarray(b), x)
            return x

        return solve

    return "cholespy", factorize


def superlu_factorize(m: Any) -> Callable:
    lu = spla.splu(sps.csc_matrix(m))
    return lambda b, trans="N": lu.solve(b, trans)


# -- (a) topology optimization ----------------------------------------------------------------
@dataclass
class TopoCase:
    """One problem size: the demo's Cantilever, a design, and the dofs of the second loss."""

    nel: int
    problem: Any
    x: numpy.ndarray
    sel: numpy.ndarray  # free-dof numbers of the vertical displacements of the right edge

    @classmethod
    def make(cls, nel: int) -> TopoCase:
        p = topopt.Cantilever(nel, nel, volfrac=0.4, rmin=1.5)
        x = numpy.random.default_rng(0).uniform(0.2, 1.0, p.nelem)
        number = numpy.full(p.ndof, -1)
        number[p.free] = numpy.arange(p.nfree)
        right = (nel + 1) * nel + numpy.arange(nel + 1)
        return cls(nel, p, x, number[2 * right + 1])


def scigrad_losses(case: TopoCase, solver: str | None = None) -> dict[str, Callable]:
    """The two losses as a user writes them: the demo's code, differentiated by scigrad."""
    p, sel = case.problem, case.sel

    def displacements(x):
        return spsolve(p.stiffness(p.densities(x)), p.force, solver=solver)

    def compliance(x):
        return snp.dot(p.force, displacements(x))

    def squared_displacements(x):
        u = displacements(x)
        return snp.sum(u[sel] ** 2)

    if solver is None:
        compliance = p.compliance  # noqa: F811 - the demo's own objective, unchanged
    return {"compliance": compliance, "squared displacements": squared_displacements}


class HandAdjoint:
    """The same losses and gradients written by hand with NumPy/SciPy: assemble K, factorize
    once, solve, adjoint-solve with the same factorization, and chain through SIMP and the
    filter. ``factorize(K) -> solve(b, trans)``."""

    def __init__(self, case: TopoCase, factorize: Callable[[Any], Callable]) -> None:
        p = case.problem
        self.p, self.sel, self.factorize = p, case.sel, factorize
        self.H = p.H.to_scipy().tocsr()
        self.HT = self.H.T.tocsr()
        self.Hs = numpy.asarray(p.Hs)

    def _assemble(self, x: numpy.ndarray) -> tuple[numpy.ndarray, Any]:
        p = self.p
        xp = (self.H @ x) / self.Hs
        young = topopt.EMIN + xp**p.penal * (topopt.E0 - topopt.EMIN)
        sK = (young[:, None] * p.ke_flat[None, :]).reshape(-1)[p.kept]
        K = sps.coo_array((sK, (p.iK, p.jK)), shape=(p.nfree, p.nfree)).tocsc()
        return xp, K

    def _value(self, u: numpy.ndarray, loss: str) -> tuple[float, numpy.ndarray]:
        if loss == "compliance":
            return float(self.p.force @ u), self.p.force
        g = numpy.zeros_like(u)
        g[self.sel] = 2 * u[self.sel]
        return float(numpy.sum(u[self.sel] ** 2)), g

    def forward(self, x: numpy.ndarray, loss: str) -> float:
        _, K = self._assemble(x)
        return self._value(self.factorize(K)(self.p.force), loss)[0]

    def value_and_grad(self, x: numpy.ndarray, loss: str) -> tuple[float, numpy.ndarray]:
        p = self.p
        xp, K = self._assemble(x)
        solve = self.factorize(K)
        u = solve(p.force)
        value, du = self._value(u, loss)
        lam = solve(du, "T")  # K^T lam = dL/du, with the same factors
        d_entries = numpy.zeros(p.nelem * 64)
        d_entries[p.kept] = -lam[p.iK] * u[p.jK]  # dL/dK_ij = -lam_i u_j on the triplets
        d_young = d_entries.reshape(p.nelem, 64) @ p.ke_flat
        d_xp = d_young * p.penal * xp ** (p.penal - 1) * (topopt.E0 - topopt.EMIN)
        return value, self.HT @ (d_xp / self.Hs)


def jax_losses(case: TopoCase) -> dict[str, Callable]:
    """The losses in JAX: BCOO assembly from the same triplets (duplicates summed by
    ``sum_duplicates``), BCSR, and ``jax.experimental.sparse.linalg.spsolve``; jitted
    ``value_and_grad``, with the constant arrays passed as arguments (not closed over, so
    that XLA does not spend minutes constant-folding them)."""
    try:
        import jax
        import jax.numpy as jnp
        from jax.experimental import sparse as jsparse
        from jax.experimental.sparse.linalg import spsolve as jspsolve
    except ImportError as e:
        raise NotInstalled(str(e)) from None
    jax.config.update("jax_enable_x64", True)
    p = case.problem
    n = p.nfree
    nse = sps.coo_array((numpy.ones(p.iK.size), (p.iK, p.jK)), shape=(n, n)).tocsr().nnz
    consts = {
        "H": jsparse.BCOO.from_scipy_sparse(p.H.to_scipy()),
        "Hs": jnp.asarray(p.Hs),
        "ke": jnp.asarray(p.ke_flat),
        "kept": jnp.asarray(p.kept),
        "ij": jnp.asarray(numpy.stack([p.iK, p.jK], axis=1)),
        "f": jnp.asarray(p.force),
        "sel": jnp.asarray(case.sel),
    }

    def displacements(x, c):
        xp = (c["H"] @ x) / c["Hs"]
        young = topopt.EMIN + xp**p.penal * (topopt.E0 - topopt.EMIN)
        sK = (young[:, None] * c["ke"][None, :]).reshape(-1)[c["kept"]]
        K = jsparse.BCOO((sK, c["ij"]), shape=(n, n)).sum_duplicates(nse=nse)
        K = jsparse.BCSR.from_bcoo(K)
        return jspsolve(K.data, K.indices, K.indptr, c["f"])

    def compliance(x, c):
        return c["f"] @ displacements(x, c)

    def squared_displacements(x, c):
        return jnp.sum(displacements(x, c)[c["sel"]] ** 2)

    out = {}
    for name, f in (("compliance", compliance), ("squared displacements", squared_displacements)):
        vg = jax.jit(jax.value_and_grad(f))
        out[name] = lambda x, vg=vg: jax.block_until_ready(vg(x, consts))
    out["_x"] = jnp.asarray  # converts the design once, outside the timed region
    return out


@dataclass
class TopoRow:
    nel: int
    dofs: int
    nnz: int
    loss: str
    cells: dict[str, Any] = field(default_factory=dict)  # key -> seconds or status


def run_topopt(nel: int, opts: argparse.Namespace, log: Callable[[str], None]) -> list[TopoRow]:
    case = TopoCase.make(nel)
    p, x = case.problem, case.x
    chol = cholmod_factorize()
    hand = HandAdjoint(case, chol[1] if chol else superlu_factorize)
    ours = scigrad_losses(case)
    nnz = p.stiffness(p.densities(x)).nnz
    try:
        theirs = None if opts.no_jax else jax_losses(case)
    except NotInstalled:
        theirs = "not installed"
    rows = []
    variants = [(loss, ours[loss], hand) for loss in ours]
    if opts.superlu:
        # The same compliance with SciPy's SuperLU on both sides: JAX's solver on CPU.
        variants.append(
            (
                "compliance, SuperLU",
                scigrad_losses(case, "superlu")["compliance"],
                HandAdjoint(case, superlu_factorize),
            )
        )
    for loss, f, h in variants:
        base = loss.split(",")[0]
        row = TopoRow(nel, p.nfree, nnz, loss)
        rows.append(row)
        log(f"topology optimization {nel}x{nel} ({p.nfree:,} dofs): {loss}")
        vg = sg.value_and_grad(f)
        thunks = {
            "hand": lambda h=h, base=base: h.value_and_grad(x, base),
            "scipy_forward": lambda h=h, base=base: h.forward(x, base),
            "forward": lambda f=f: f(x),
            "scigrad": lambda vg=vg: vg(x),
        }
        results, first = first_calls(thunks)
        ref_value, ref_grad = results["hand"]
        got_value, got_grad = results["scigrad"]
        row.cells["err"] = err = max(rel_diff(got_value, ref_value), rel_diff(got_grad, ref_grad))
        row.cells["scigrad_first"] = first["scigrad"]
        wrong = {
            "scipy_forward": rel_diff(results["scipy_forward"], ref_value) > TOLERANCE,
            "forward": rel_diff(results["forward"], ref_value) > TOLERANCE,
            "scigrad": err > TOLERANCE,
        }
        row.cells.update({k: "WRONG" for k, bad in wrong.items() if bad})
        timed = {k: t for k, t in thunks.items() if not wrong.get(k)}
        warm = {"forward", "scigrad"}  # scigrad's first call computes the assembly plans
        row.cells.update(interleaved(timed, first, warm, opts.repeat, opts.min_time))
        if loss in ("compliance", "squared displacements") and isinstance(theirs, dict):
            xj = theirs["_x"](x)
            # Far slower: one timed call after the compiling one is enough at large sizes.
            try:
                j = measure(lambda fj=theirs[loss], xj=xj: fj(xj), 1, opts.min_time)
            except Exception as e:  # report, do not crash the whole run
                row.cells["jax"] = f"error: {type(e).__name__}"
            else:
                jerr = max(rel_diff(j.result[0], ref_value), rel_diff(j.result[1], ref_grad))
                row.cells["jax"] = j.seconds if jerr <= TOLERANCE else "WRONG"
                row.cells["jax_first"] = j.first
        elif loss in ("compliance", "squared displacements"):
            row.cells["jax"] = theirs or "not run"
        log("  " + ", ".join(f"{k} {_fmt_s(v)}" for k, v in row.cells.items() if k != "err"))
    return rows


# -- (b) x^T A(p) y ---------------------------------------------------------------------------
@dataclass
class BilinearResult:
    n: int
    nnz: int
    stored: int
    cells: dict[str, tuple[Any, int]] = field(default_factory=dict)  # key -> (seconds, bytes)
    err: float = 0.0


def run_bilinear(nnz: int, opts: argparse.Namespace, log) -> BilinearResult:
    """f(p) = x^T A(p) y, A assembled from COO triplets (duplicates summed) with values
    ``w * p`` on an ``n x n`` pattern of ``nnz`` random entries, ``n = nnz / 5``."""
    n = max(nnz // 5, 2)
    rng = numpy.random.default_rng(1)
    row = rng.integers(0, n, nnz)
    col = rng.integers(0, n, nnz)
    w = rng.uniform(0.5, 1.5, nnz)
    x, y, p = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(nnz)

    def f(p):
        A = sp.coo_array((w * p, (row, col)), shape=(n, n)).tocsr()
        return snp.dot(x, A @ y)

    def scipy_forward(p):
        A = sps.coo_array((w * p, (row, col)), shape=(n, n)).tocsr()
        return x @ (A @ y)

    def hand_grad(p):
        return w * x[row] * y[col]

    vg = sg.value_and_grad(f)
    value, grad = vg(p)
    res = BilinearResult(n, nnz, sps.coo_array((w, (row, col)), shape=(n, n)).tocsr().nnz)
    res.err = max(rel_diff(grad, hand_grad(p)), rel_diff(value, scipy_forward(p)))
    wrong = res.err > TOLERANCE
    log(f"x^T A(p) y: {nnz:,} entries, n = {n:,}")
    for key, thunk in (
        ("scipy", lambda: scipy_forward(p)),
        ("forward", lambda: f(p)),
        ("scigrad", lambda: vg(p)),
        ("hand", lambda: hand_grad(p)),
    ):
        t = measure(thunk, opts.repeat, opts.min_time)
        peak = peak_bytes(thunk)
        res.cells[key] = ("WRONG" if wrong and key == "scigrad" else t.seconds, peak)
        log(f"  {key}: {_fmt_s(t.seconds)}, peak {peak / 2**20:.1f} MiB")
    return res


@dataclass
class CGResult:
    nel: int
    dofs: int
    rtol: float
    rows: list[tuple[str, float, float, Any, Any, Any]] = field(default_factory=list)


def run_cg(nel: int, opts: argparse.Namespace, log) -> CGResult:
    """The demo's two losses with ``cg`` (Jacobi preconditioner, a constant computed from
    the current design, as an optimization loop would) in place of ``spsolve``."""
    case = TopoCase.make(nel)
    p, x, sel = case.problem, case.x, case.sel
    rtol = 1e-10
    K0 = p.stiffness(p.densities(x)).to_scipy()
    M = sps.diags_array(1.0 / K0.diagonal())

    def displacements(x):
        K = p.stiffness(p.densities(x))
        u, _ = cg(K, p.force, rtol=rtol, M=M, maxiter=50 * p.nfree)
        return u

    def compliance(x):
        return snp.dot(p.force, displacements(x))

    def squared_displacements(x):
        return snp.sum(displacements(x)[sel] ** 2)

    direct = scigrad_losses(case)
    res = CGResult(nel, p.nfree, rtol)
    log(f"cg against spsolve, {nel}x{nel} ({p.nfree:,} dofs)")
    for name, f in (("compliance", compliance), ("squared displacements", squared_displacements)):
        d = measure(lambda g=direct[name]: sg.value_and_grad(g)(x), opts.repeat, opts.min_time)
        c = measure(lambda f=f: sg.value_and_grad(f)(x), opts.repeat, opts.min_time)
        fwd = measure(lambda f=f: f(x), opts.repeat, opts.min_time)
        value_err = rel_diff(c.result[0], d.result[0])
        grad_err = rel_diff(c.result[1], d.result[1])
        res.rows.append((name, value_err, grad_err, fwd.seconds, c.seconds, d.seconds))
        log(f"  {name}: gradient max rel diff {grad_err:.2e}, cg {_fmt_s(c.seconds)}")
    return res


# -- report ---------------------------------------------------------------------------------
def _fmt_s(cell: Any) -> str:
    if not isinstance(cell, float):
        return str(cell)
    if cell >= 1:
        return f"{cell:.2f} s"
    if cell >= 1e-3:
        return f"{cell * 1e3:.1f} ms"
    return f"{cell * 1e6:.0f} µs"


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:.0f} bytes"


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}×" if isinstance(a, float) and isinstance(b, float) else "—"


#: The targets are set for about 40k and 160k dofs; smaller runs (--quick) do not judge them.
TARGET_DOFS = 30_000


def _targets(row: TopoRow, largest: bool) -> str:
    c = row.cells
    out = []
    if row.dofs < TARGET_DOFS:
        return "—"
    sgt, fwd = c.get("scigrad"), c.get("forward")
    if isinstance(sgt, float) and isinstance(fwd, float):
        out.append(f"≤ 1.3× forward: **{'met' if sgt / fwd <= 1.3 else 'not met'}**")
    jx = c.get("jax")
    if largest and isinstance(jx, float) and isinstance(sgt, float):
        out.append(f"≥ 3× JAX: **{'met' if jx / sgt >= 3 else 'not met'}**")
    return "; ".join(out) or "—"


def render(
    topo: list[TopoRow],
    bil: BilinearResult | None,
    cgr: CGResult | None,
    argv: Sequence[str],
    opts: argparse.Namespace,
    seconds: float,
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    chol = cholmod_factorize()
    backend = f"CHOLMOD (`{chol[0]}`)" if chol else "SciPy's SuperLU"
    dists = ["scigrad", "numpy", "scipy", "jax", "jaxlib"] + ([chol[0]] if chol else [])
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    lines = [
        "# scigrad sparse benchmarks",
        "",
        f"- Date: {now}",
        f"- Machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs ({usable} usable)",
        f"- Python {platform.python_version()}; " + ", ".join(f"{d} {version(d)}" for d in dists),
        f"- Reproduce: `{shlex.join(['python', 'benchmarks/sparse.py', *argv])}` from the "
        f"repository root; this run took {seconds:.0f} s.",
        "- Method: float64; garbage collector enabled. Each time is a median per call. "
        "scigrad's first call is a warm-up, not timed (it computes and caches the assembly "
        "plans, as the first iteration of an optimization loop does), and so is JAX's (it "
        "compiles); plain SciPy code has nothing to warm up. In (a) the computations of a "
        f"row are timed in alternating rounds (at least {opts.repeat}, and enough to spend "
        f"{opts.min_time:g} s), so that ratios compare calls made under the same conditions; "
        "JAX, far slower, is timed alone, once after compiling at the full sizes. "
        "Every gradient was checked "
        f"against the hand-written one (max relative difference ≤ {TOLERANCE:g}) before it "
        "was timed; *WRONG* marks one that was not.",
        "",
    ]
    if topo:
        lines += [
            "## (a) Topology-optimization gradient",
            "",
            "The demo's code (`examples/topopt.py`: cantilever, Q4 elements, density filter "
            "as a sparse `H @ x`, SIMP, `coo_array((sK, (iK, jK))).tocsc()`, `spsolve`) at "
            "a random design, n x n elements. *scigrad forward* is the loss alone, "
            "*scigrad value_and_grad* the loss and its gradient; their ratio is the price of "
            "the gradient (target ≤ 1.3). scigrad's `spsolve` factorizes with "
            f"{backend} here (the default for a symmetric matrix when the optional wheel is "
            "installed), once per `value_and_grad`: the adjoint solve reuses the factors. "
            "*Hand-written adjoint* is the same gradient written by hand with NumPy/SciPy and "
            f"the same factorization ({backend}): factorize once, solve, adjoint-solve, chain "
            "through SIMP and the filter; *SciPy forward* is its forward half. *JAX* is "
            "`jax.jit(jax.value_and_grad(loss))` with `BCOO(...).sum_duplicates()`, "
            "`BCSR.from_bcoo` and `jax.experimental.sparse.linalg.spsolve`, whose CPU "
            "implementation calls `scipy.sparse.linalg.spsolve` (SuperLU) for the solve and "
            "again, on the transposed matrix, for the adjoint. The *compliance, SuperLU* row "
            "runs scigrad (`solver='superlu'`) and the hand-written adjoint on SciPy's SuperLU, "
            "JAX's solver.",
            "",
        ]
        header = [
            "elements",
            "free dofs",
            "nnz(K)",
            "loss",
            "SciPy forward",
            "scigrad forward",
            "scigrad value_and_grad",
            "value_and_grad / forward",
            "hand-written adjoint",
            "scigrad / hand-written",
            "JAX jit value_and_grad",
            "JAX / scigrad",
            "target",
        ]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---"] * 4 + ["---:"] * 8 + [":---"]) + "|")
        largest = max(r.nel for r in topo)
        for r in topo:
            c = r.cells
            cells = [
                f"{r.nel}×{r.nel}",
                f"{r.dofs:,}",
                f"{r.nnz:,}",
                r.loss,
                _fmt_s(c.get("scipy_forward", "—")),
                _fmt_s(c.get("forward", "—")),
                _fmt_s(c.get("scigrad", "—")),
                _ratio(c.get("scigrad"), c.get("forward")),
                _fmt_s(c.get("hand", "—")),
                _ratio(c.get("scigrad"), c.get("hand")),
                _fmt_s(c.get("jax", "—")),
                _ratio(c.get("jax"), c.get("scigrad")),
                _targets(r, r.nel == largest),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        notes = []
        for r in topo:
            c = r.cells
            note = (
                f"{r.nel}×{r.nel}, {r.loss}: scigrad's gradient agrees with the hand-written "
                f"one to {c.get('err', float('nan')):.1e} (max relative difference); its first "
                f"call took {_fmt_s(c.get('scigrad_first', '—'))}"
            )
            if "jax_first" in c:
                note += f", JAX's first call (compilation) {_fmt_s(c['jax_first'])}"
            notes.append(f"- {note}.")
        lines += ["", *notes, ""]
    if bil is not None:
        dense = bil.n * bil.n * 8
        lines += [
            f"## (b) Gradient of x^T A(p) y with {bil.nnz:,} nonzeros",
            "",
            f"`A = coo_array((w * p, (row, col)), shape=(n, n)).tocsr()` with {bil.nnz:,} "
            f"random (row, col) pairs (duplicates summed: {bil.stored:,} stored entries), "
            f"n = {bil.n:,}; `f(p) = x @ (A @ y)`, gradient with respect to the {bil.nnz:,} "
            "values p. Peak memory is what tracemalloc sees allocated during one call (NumPy "
            f"buffers included). A dense n×n cotangent would take {_bytes(dense)}; "
            f"scigrad's lives on the pattern. Gradient agrees with the hand-written one to "
            f"{bil.err:.1e}. SciPy's `tocsr()` sorts the triplets on every call; scigrad's "
            "reuses the plan cached on the pattern by its first call.",
            "",
            "| computation | time | peak memory | × forward time | × forward memory |",
            "|:---|---:|---:|---:|---:|",
        ]
        ft, fm = bil.cells["forward"]
        for key, title in (
            ("scipy", "SciPy forward (no derivative)"),
            ("forward", "scigrad forward"),
            ("scigrad", "scigrad value_and_grad"),
            ("hand", "hand-written gradient `w * x[row] * y[col]` (NumPy)"),
        ):
            t, m = bil.cells[key]
            lines.append(
                f"| {title} | {_fmt_s(t)} | {_bytes(m)} | {_ratio(t, ft)} | {m / fm:.2f}× |"
            )
        lines.append("")
    if cgr is not None:
        lines += [
            "## (c) CG with the implicit gradient against the direct solve",
            "",
            f"The demo's losses on a {cgr.nel}×{cgr.nel} mesh ({cgr.dofs:,} free dofs) with "
            f"`cg(K, f, rtol={cgr.rtol:g}, M=jacobi)` (the Jacobi preconditioner a constant "
            "SciPy array computed from the current design) in place of `spsolve`. The gradient "
            "of the cg solve is implicit: one more cg solve with K^T and M, never a pass back "
            "through the iterations. Differences are max |cg − direct| / max |direct|.",
            "",
            "| loss | value rel. diff | gradient rel. diff | cg forward | cg value_and_grad "
            "| spsolve value_and_grad |",
            "|:---|---:|---:|---:|---:|---:|",
        ]
        for name, ve, ge, tf, tc, td in cgr.rows:
            lines.append(
                f"| {name} | {ve:.1e} | {ge:.1e} | {_fmt_s(tf)} | {_fmt_s(tc)} | {_fmt_s(td)} |"
            )
        lines.append("")
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", help="write the Markdown report to this file")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--no-jax", action="store_true", help="do not run JAX")
    ap.add_argument(
        "--no-superlu", dest="superlu", action="store_false", help="skip the SuperLU rows"
    )
    ap.add_argument(
        "--sizes",
        help="comma-separated elements per side for (a) (default 140,280; quick 12,20)",
    )
    ap.add_argument("--nnz", type=int, help="nonzeros for (b) (default 10^6; quick 10^4)")
    ap.add_argument("--repeat", type=int, help="least timed calls after the warm-up (default 2)")
    ap.add_argument("--min-time", type=float, help="seconds per measurement (default 5)")
    ap.add_argument(
        "--only", help="comma-separated parts to run among a,b,c (default: all)", default="a,b,c"
    )
    opts = ap.parse_args(argv)
    opts.parts = {s.strip() for s in opts.only.split(",") if s.strip()}
    if not opts.parts or opts.parts - {"a", "b", "c"}:
        ap.error(f"--only: choose among a, b, c (got {opts.only!r})")
    sizes = opts.sizes or ("12,20" if opts.quick else "140,280")
    try:
        opts.size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes: integers expected, got {sizes!r}")
    if any(s < 2 for s in opts.size_list):
        ap.error("--sizes: at least 2 elements per side")
    if opts.nnz is None:
        opts.nnz = 10_000 if opts.quick else 1_000_000
    if opts.repeat is None:
        opts.repeat = 2
    if opts.min_time is None:
        opts.min_time = 0.05 if opts.quick else 5.0
    opts.cg_size = 10 if opts.quick else 40
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return 1 if a gradient disagreed or failed, else 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    topo: list[TopoRow] = []
    if "a" in opts.parts:
        for nel in opts.size_list:
            topo += run_topopt(nel, opts, log)
    bil = run_bilinear(opts.nnz, opts, log) if "b" in opts.parts else None
    cgr = run_cg(opts.cg_size, opts, log) if "c" in opts.parts else None
    text = render(topo, bil, cgr, argv, opts, time.perf_counter() - start)
    print(text)
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {opts.output}")
    cells = [c for r in topo for c in r.cells.values()]
    if bil is not None:
        cells += [t for t, _ in bil.cells.values()]
    bad = [c for c in cells if isinstance(c, str) and (c == "WRONG" or c.startswith("error"))]
    if cgr is not None:
        bad += [r for r in cgr.rows if r[2] > 1e-5]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
