"""Fit the rates of a linear ODE to data through the matrix exponential, with scigrad.

The model is the one of the forum thread this project started from: states ``u_i`` exchange
mass at rates ``p_ij >= 0``,

    du_i/dt = sum_j p_ij (u_j - u_i),    i.e.  du/dt = A(p) u,  A(p) = p - diag(p.sum(1)),

observed at t = 1, 2, 3, 4 from a known ``u0``. A linear ODE is solved exactly by the matrix
exponential, ``u(t) = expm(A t) u0``, and reverse mode gives the gradient with respect to
every rate for the price of about two forward solves. The rates are kept positive by
fitting ``theta = log p``. SciPy's L-BFGS-B gets ``(loss, gradient)`` from
``sg.value_and_grad`` (``jac=True``).

1. The seed's model: 100 states, all 10^4 rates, through ``scigrad.scipy.linalg.expm``
   (dense). The times are integers, so ``expm(A)`` is computed once and
   ``u_t = expm(A) u_{t-1}``; the gradient flows back through the products and the one
   ``expm`` (its Fréchet-derivative adjoint). For other times write ``expm(A * t) @ u0``.
2. The same model with 10^5 states on a sparse graph (each state exchanges with 4
   neighbours: a ring with links to the states ``+-1`` and ``+-s`` away, ``s ~ sqrt(n)``,
   a twisted torus), the 4 * 10^5 rates on the graph's edges as parameters. ``A`` is a
   ``scigrad.scipy.sparse.csr_array`` built from triplets, and the trajectory is
   ``expm_multiply(A, u0, start=0, stop=4, num=5, endpoint=True)``: its adjoint gives the
   gradient on the pattern of ``A``, O(nnz) values, never an n x n matrix.

Each gradient is checked once against a central finite difference along a random direction,
and the time of a gradient is compared with the time of the loss alone.

    python examples/linear_ode_fit.py                    # 100 and 10^5 states, ~20 s
    python examples/linear_ode_fit.py --quick            # small sizes, a few seconds
    python examples/linear_ode_fit.py --states 50 --sparse-states 20000 --iterations 10
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy
from scipy.optimize import minimize

import scigrad as sg
import scigrad.numpy as np
import scigrad.scipy.sparse as sp
from scigrad.scipy.linalg import expm
from scigrad.scipy.sparse.linalg import expm_multiply

TIMES = (1.0, 2.0, 3.0, 4.0)
#: A finite-difference check passes when the directional derivatives agree to this.
FD_TOLERANCE = 1e-5
NOISE = 1e-3  # standard deviation of the noise added to the synthetic data


# -- the dense model (the seed's): 100 states, 10^4 rates -------------------------------------
def rate_matrix(p: Any) -> Any:
    """``A = p - diag(p.sum(1))``: ``(A u)_i = sum_j p_ij (u_j - u_i)`` (the diagonal of
    ``p`` cancels)."""
    return p - np.diag(np.sum(p, axis=1))


def dense_trajectory(theta: Any, u0: numpy.ndarray) -> Any:
    """``u(t)`` at t = 1, 2, 3, 4 (rows), rates ``p = exp(theta)``: one ``expm``, then
    ``u_t = expm(A) u_{t-1}`` (exact for integer times: ``expm(A t) = expm(A)^t``)."""
    x = expm(rate_matrix(np.exp(theta)))
    u, out = u0, []
    for _ in TIMES:
        u = x @ u
        out.append(u)
    return np.stack(out)


def make_dense_loss(u0: numpy.ndarray, data: numpy.ndarray) -> Callable[[Any], Any]:
    def loss(theta):
        """Sum of squared residuals at t = 1..4; ``theta`` is ``log p``, shape (n, n)."""
        r = dense_trajectory(theta, u0) - data
        return np.sum(r * r)

    return loss


# -- the sparse model: 10^5 states, 4 * 10^5 rates on a graph ---------------------------------
@dataclass
class Graph:
    """Directed edges ``i -> j`` (``p_e`` is the rate at which ``u_i`` moves toward
    ``u_j``) of the ring with links ``+-1`` and ``+-s``, and the triplets of ``A``."""

    n: int
    rows: numpy.ndarray  # edge e: row i ...
    cols: numpy.ndarray  # ... and column j of p
    a_rows: numpy.ndarray  # triplets of A: the edges, then the diagonal
    a_cols: numpy.ndarray

    @classmethod
    def ring(cls, n: int) -> Graph:
        if n < 5:
            raise ValueError(f"the sparse model needs at least 5 states, got {n}")
        s = max(2, math.isqrt(n))
        i = numpy.arange(n)
        rows = numpy.concatenate([i, i, i, i])
        cols = numpy.concatenate([(i + 1) % n, (i - 1) % n, (i + s) % n, (i - s) % n])
        return cls(n, rows, cols, numpy.concatenate([rows, i]), numpy.concatenate([cols, i]))

    @property
    def edges(self) -> int:
        return self.rows.size

    def matrix(self, theta: Any) -> sp.SparseArray:
        """``A(p)`` with ``p = exp(theta)`` on the edges, as a CSR array built from
        triplets (the pattern and its sorting plan are computed once and cached)."""
        p = np.exp(theta)
        P = sp.csr_array((p, (self.rows, self.cols)), shape=(self.n, self.n))
        out_rate = P @ numpy.ones(self.n)  # sum_j p_ij
        data = np.concatenate([p, -out_rate])
        return sp.csr_array((data, (self.a_rows, self.a_cols)), shape=(self.n, self.n))


def sparse_trajectory(graph: Graph, theta: Any, u0: numpy.ndarray) -> Any:
    """``u(t)`` at t = 1, 2, 3, 4 (rows): ``expm_multiply`` on the grid 0, 1, ..., 4."""
    A = graph.matrix(theta)
    u = expm_multiply(A, u0, start=0.0, stop=TIMES[-1], num=len(TIMES) + 1, endpoint=True)
    return u[1:]  # t = 0 is u0 itself


def make_sparse_loss(graph: Graph, u0: numpy.ndarray, data: numpy.ndarray) -> Callable[[Any], Any]:
    def loss(theta):
        """Sum of squared residuals at t = 1..4; ``theta`` is ``log p`` on the edges."""
        r = sparse_trajectory(graph, theta, u0) - data
        return np.sum(r * r)

    return loss


# -- synthetic problems -----------------------------------------------------------------------
@dataclass
class Problem:
    name: str
    loss: Callable[[Any], Any]
    theta_true: numpy.ndarray
    theta0: numpy.ndarray  # the starting point: every rate at the typical value
    u0: numpy.ndarray
    data: numpy.ndarray  # u(t) at t = 1..4 (rows), with noise


def dense_problem(n: int, seed: int = 0) -> Problem:
    """Rates around ``1/n`` (a state's total exchange rate about 1 per unit time, so that
    t = 1..4 shows the mixing), log-normal spread; ``u0`` uniform in [0, 1) as in the seed."""
    rng = numpy.random.default_rng(seed)
    typical = math.log(1.0 / n)
    theta_true = typical + 0.7 * rng.standard_normal((n, n))
    u0 = rng.random(n)
    clean = numpy.asarray(dense_trajectory(theta_true, u0))
    data = clean + NOISE * rng.standard_normal(clean.shape)
    loss = make_dense_loss(u0, data)
    name = f"dense: {n} states, {n * n:,} rates, expm"
    return Problem(name, loss, theta_true, numpy.full((n, n), typical), u0, data)


def sparse_problem(n: int, seed: int = 0) -> tuple[Problem, Graph]:
    """Rates around 1/4 on the graph's edges (total exchange rate about 1 per state)."""
    rng = numpy.random.default_rng(seed)
    graph = Graph.ring(n)
    typical = math.log(0.25)
    theta_true = typical + 0.7 * rng.standard_normal(graph.edges)
    u0 = rng.random(n)
    clean = numpy.asarray(sparse_trajectory(graph, theta_true, u0))
    data = clean + NOISE * rng.standard_normal(clean.shape)
    loss = make_sparse_loss(graph, u0, data)
    name = f"sparse: {n:,} states, {graph.edges:,} rates, expm_multiply"
    problem = Problem(name, loss, theta_true, numpy.full(graph.edges, typical), u0, data)
    return problem, graph


# -- checks, timing and the fit ---------------------------------------------------------------
def directional_check(
    loss: Callable[[Any], Any], theta: numpy.ndarray, grad: numpy.ndarray, seed: int = 1
) -> tuple[float, float, float]:
    """(finite difference, gradient . v, relative difference) along a random direction
    ``v``: the central difference ``(L(theta + h v) - L(theta - h v)) / 2h``."""
    v = numpy.random.default_rng(seed).standard_normal(theta.shape)
    v /= numpy.linalg.norm(v)
    h = 1e-5 * max(1.0, float(numpy.abs(theta).max()))
    fd = (float(loss(theta + h * v)) - float(loss(theta - h * v))) / (2.0 * h)
    exact = float(numpy.vdot(grad, v))
    return fd, exact, abs(fd - exact) / max(abs(exact), 1e-300)


def best_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """The fastest of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@dataclass
class FitResult:
    name: str
    parameters: int
    loss0: float
    loss: float
    iterations: int
    evaluations: int
    forward_s: float  # one loss evaluation
    gradient_s: float  # one value_and_grad
    fit_s: float
    fd: tuple[float, float, float]  # finite difference, gradient . v, relative difference
    history: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.gradient_s / self.forward_s

    @property
    def fd_ok(self) -> bool:
        return self.fd[2] <= FD_TOLERANCE

    @property
    def decreased(self) -> bool:
        return self.loss < self.loss0


def fit(
    problem: Problem, iterations: int, repeat: int = 3, say: Callable[[str], None] = print
) -> FitResult:
    """Check the gradient, time it against the loss, and run ``iterations`` of L-BFGS-B."""
    loss, theta0 = problem.loss, problem.theta0
    shape = theta0.shape
    value_and_grad = sg.value_and_grad(loss)
    say(f"\n== {problem.name}")

    # 1. The gradient, once against a directional finite difference.
    loss0, g0 = value_and_grad(theta0)
    fd = directional_check(loss, theta0, numpy.asarray(g0))
    verdict = "ok" if fd[2] <= FD_TOLERANCE else "FAILED"
    say(
        f"gradient check along a random direction: finite difference {fd[0]:.10g}, "
        f"gradient {fd[1]:.10g}, relative difference {fd[2]:.1e} ({verdict})"
    )

    # 2. The price of the gradient: value_and_grad against the loss alone.
    forward_s = best_time(lambda: loss(theta0), repeat)
    gradient_s = best_time(lambda: value_and_grad(theta0), repeat)
    say(
        f"loss {forward_s * 1e3:.1f} ms, value_and_grad {gradient_s * 1e3:.1f} ms "
        f"({gradient_s / forward_s:.1f}x the loss) for {theta0.size:,} parameters"
    )

    # 3. The fit: SciPy works on flat float vectors; scigrad gives (loss, gradient).
    evaluations = [0]
    last: dict[str, float] = {}

    def fun(x: numpy.ndarray) -> tuple[float, numpy.ndarray]:
        evaluations[0] += 1
        value, grad = value_and_grad(x.reshape(shape))
        last["loss"] = float(value)
        return float(value), numpy.asarray(grad, dtype=float).ravel()

    history = [float(loss0)]

    def report(x: numpy.ndarray) -> None:
        history.append(last["loss"])  # L-BFGS-B's accepted point was its last evaluation
        say(f"  iteration {len(history) - 1:>3}: loss {last['loss']:.6g}")

    say(f"L-BFGS-B, {iterations} iterations, from loss {float(loss0):.6g}")
    start = time.perf_counter()
    result = minimize(
        fun,
        theta0.ravel(),
        jac=True,
        method="L-BFGS-B",
        callback=report,
        options={"maxiter": iterations, "maxcor": 20},
    )
    fit_s = time.perf_counter() - start
    out = FitResult(
        problem.name,
        theta0.size,
        float(loss0),
        float(result.fun),
        int(result.nit),
        evaluations[0],
        forward_s,
        gradient_s,
        fit_s,
        fd,
        history,
    )
    say(
        f"loss {out.loss0:.6g} -> {out.loss:.6g} ({out.loss0 / out.loss:.1f}x lower) in "
        f"{out.iterations} iterations, {out.evaluations} gradients, {fit_s:.1f} s "
        f"(noise floor about {problem.data.size * NOISE**2:.2g})"
    )
    return out


# -- command line -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--states", type=int, help="states of the dense model (100; 0 skips it)")
    ap.add_argument(
        "--sparse-states", type=int, help="states of the sparse model (100000; 0 skips it)"
    )
    ap.add_argument("--iterations", type=int, help="L-BFGS-B iterations per model (20)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data")
    ap.add_argument("--quick", action="store_true", help="small sizes: a run of seconds")
    opts = ap.parse_args(argv)
    quick = opts.quick
    if opts.states is None:
        opts.states = 50 if quick else 100
    if opts.sparse_states is None:
        opts.sparse_states = 10_000 if quick else 100_000
    if opts.iterations is None:
        opts.iterations = 10 if quick else 20
    if opts.states == 1 or opts.states < 0:
        ap.error("--states: at least 2 (or 0 to skip the dense model)")
    if 0 < opts.sparse_states < 5 or opts.sparse_states < 0:
        ap.error("--sparse-states: at least 5 (or 0 to skip the sparse model)")
    if opts.iterations < 1:
        ap.error("--iterations: at least 1")
    return opts


def main(argv: list[str] | None = None) -> int:
    """Fit both models; return 0 if every loss decreased and every gradient check passed."""
    opts = parse_args(argv)
    results = []
    if opts.states:
        results.append(fit(dense_problem(opts.states, opts.seed), opts.iterations))
    if opts.sparse_states:
        problem, _ = sparse_problem(opts.sparse_states, opts.seed)
        results.append(fit(problem, opts.iterations, repeat=2 if opts.sparse_states > 1e4 else 3))
    good = all(r.decreased and r.fd_ok for r in results)
    print("\nsummary")
    for r in results:
        print(
            f"  {r.name}: loss {r.loss0:.4g} -> {r.loss:.4g}, gradient {r.ratio:.1f}x the "
            f"loss, finite-difference check {'passed' if r.fd_ok else 'FAILED'} "
            f"({r.fd[2]:.1e})"
        )
    print("all good" if good else "SOMETHING FAILED")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
