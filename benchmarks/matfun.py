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

Every gradient is checked against an independent one before it is timed. Times are the
median of calls timed in alternating rounds after a first call (the warm-up: JAX compiles).

    OPENBLAS_NUM_THREADS=1 python benchmarks/matfun.py --output BENCHMARKS_MATFUN.md  # ~30 s
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

import scigrad as sg
import scigrad.numpy as snp
from scigrad.scipy.linalg import expm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_model, version  # noqa: E402 - beside this file

TOLERANCE = 1e-8  # largest relative difference accepted between two gradients
TIMES = (1.0, 2.0, 3.0, 4.0)


class NotInstalled(Exception):
    pass


def load_jax() -> Any:
    try:
        import jax
    except ImportError as exc:
        raise NotInstalled("jax is not installed") from exc
    jax.config.update("jax_enable_x64", True)
    return jax


# -- timing ---------------------------------------------------------------------------------
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


def rel_diff(a: Any, b: Any) -> float:
    """max |a - b| / max |b|."""
    a, b = numpy.asarray(a, dtype=float), numpy.asarray(b, dtype=float)
    scale = float(numpy.max(numpy.abs(b), initial=0.0)) or 1.0
    return float(numpy.max(numpy.abs(a - b), initial=0.0)) / scale


@dataclass
class Section:
    """One benchmark: timed computations (seconds), checks (relative differences), notes."""

    title: str
    params: int = 0
    cells: dict[str, Any] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        bad = [e for e in self.errors.values() if not e <= TOLERANCE]
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
    sec = Section(f"expm of a {n}×{n} matrix")
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
    sec = Section(f"The seed's model: {n} states, {n * n:,} rates", params=n * n)
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


def render(sections: list[Section], argv: Sequence[str], opts: argparse.Namespace, secs: float):
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    dists = ["scigrad", "numpy", "scipy", "jax", "jaxlib"]
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
        lines += render_expm(sec) if sec.title.startswith("expm") else render_seed(sec)
        lines += [f"- {n}" for n in sec.notes]
        lines += ["- Checks: " + "; ".join(f"{k}: {v:.1e}" for k, v in sec.errors.items()) + "."]
        firsts = ", ".join(f"{k} {_fmt_s(v)}" for k, v in sec.first.items() if "jax" in k)
        if firsts:
            lines.append(f"- JAX's first calls (compilation): {firsts}.")
        lines.append("")
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", help="write the Markdown report to this file")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--no-jax", action="store_true", help="do not run JAX")
    ap.add_argument("--n", type=int, help="matrix size / number of states (default 100)")
    ap.add_argument("--repeat", type=int, default=5, help="least timed rounds (default 5)")
    ap.add_argument("--min-time", type=float, help="seconds per measurement (default 5)")
    opts = ap.parse_args(argv)
    if opts.n is None:
        opts.n = 12 if opts.quick else 100
    if opts.n < 2:
        ap.error("--n: at least 2")
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
    text = render(sections, argv, opts, time.perf_counter() - start)
    print(text)
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {opts.output}")
    return 0 if all(s.ok() for s in sections) else 1


if __name__ == "__main__":
    sys.exit(main())
