"""Fit Gaussian peaks to noisy data by Newton-CG, with derivatives from scigrad.

The model is ordinary NumPy code (``import scigrad.numpy as np``): a sum of ``K`` Gaussian
peaks on a linear baseline, ``3K + 2`` parameters. The loss is chi-squared / 2. SciPy's
``minimize(method="Newton-CG")`` gets

* ``jac``   - the gradient, from ``sg.value_and_grad`` (one forward and one backward pass,
  shared with ``fun`` through a one-entry cache),
* ``hessp`` - Hessian-vector products from ``sg.hvp`` (forward-over-reverse: the Hessian is
  never formed),

and at the optimum ``sg.hessian`` gives the parameter covariance (inverse Fisher matrix), so
the fitted values can be compared with the truth in units of their standard errors.

    python examples/newton_cg_fit.py                 # 3 peaks, 400 points, saves a plot
    python examples/newton_cg_fit.py --peaks 5 --no-plot
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from scipy.optimize import minimize

import scigrad as sg
import scigrad.numpy as np

T_RANGE = (-5.0, 5.0)
XTOL = 1e-8


# -- the model: plain NumPy code, differentiated by scigrad ---------------------------------
def unpack(theta: Any, k: int) -> tuple[Any, Any, Any, Any, Any]:
    """Amplitudes, centres, log-widths (k each), baseline offset and slope."""
    return theta[:k], theta[k : 2 * k], theta[2 * k : 3 * k], theta[3 * k], theta[3 * k + 1]


def model(theta: Any, t: np.ndarray, k: int) -> Any:
    """Sum of ``k`` Gaussian peaks on a straight line, evaluated at the points ``t``."""
    amp, centre, log_width, offset, slope = unpack(theta, k)
    z = (t[:, None] - centre[None, :]) / np.exp(log_width)[None, :]
    return np.sum(amp * np.exp(-0.5 * z**2), axis=1) + offset + slope * t


def make_loss(t: np.ndarray, y: np.ndarray, sigma: float, k: int):
    def loss(theta):
        """Chi-squared / 2: the negative log-likelihood of Gaussian noise of scale sigma."""
        r = (model(theta, t, k) - y) / sigma
        return 0.5 * np.sum(r * r)

    return loss


# -- synthetic data -------------------------------------------------------------------------
def true_parameters(k: int, rng: np.random.Generator) -> np.ndarray:
    centre = np.linspace(-3.5, 3.5, k) + rng.uniform(-0.3, 0.3, k)
    amp = rng.uniform(0.6, 1.4, k)
    width = rng.uniform(0.35, 0.8, k)
    return np.concatenate([amp, centre, np.log(width), [0.2, 0.03]])


def initial_guess(truth: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A rough starting point, as one would read it off a plot: peaks roughly located."""
    amp, centre, _, _, _ = unpack(truth, k)
    return np.concatenate(
        [
            0.6 * amp + rng.uniform(-0.1, 0.1, k),
            centre + rng.uniform(-0.35, 0.35, k),
            np.full(k, np.log(0.6)),
            [0.0, 0.0],
        ]
    )


def parameter_names(k: int) -> list[str]:
    names = [f"amplitude {i + 1}" for i in range(k)] + [f"centre {i + 1}" for i in range(k)]
    return names + [f"width {i + 1}" for i in range(k)] + ["offset", "slope"]


# -- the fit --------------------------------------------------------------------------------
@dataclass
class Fit:
    t: np.ndarray
    y: np.ndarray
    k: int
    truth: np.ndarray
    theta0: np.ndarray
    theta: np.ndarray
    stderr: np.ndarray  # standard errors of theta (log-widths for the widths)
    z: np.ndarray  # (fitted - true) / stderr
    chi2_dof: float
    result: Any  # scipy's OptimizeResult
    seconds: float
    newton_decrement: float  # g . H^-1 g at the end: the loss decrease still on offer

    @property
    def good(self) -> bool:
        """At a minimum, residuals at the noise level, every parameter within 4 std errors."""
        dof = self.t.size - self.theta.size
        chi2_ok = abs(self.chi2_dof - 1.0) < 5.0 * np.sqrt(2.0 / dof)
        at_minimum = 0.0 <= self.newton_decrement < 1e-6  # also: the Hessian is positive
        return bool(at_minimum and chi2_ok and np.max(np.abs(self.z)) < 4.0)


def fit(
    size: int = 400, peaks: int = 3, noise: float = 0.05, seed: int = 0, verbose: bool = True
) -> Fit:
    say = print if verbose else (lambda *a, **kw: None)
    k = peaks
    rng = np.random.default_rng(seed)
    t = np.linspace(*T_RANGE, size)
    truth = true_parameters(k, rng)
    y = model(truth, t, k) + noise * rng.standard_normal(size)
    theta0 = initial_guess(truth, k, rng)
    loss = make_loss(t, y, noise, k)
    say(
        f"Fitting {k} Gaussian peaks + a linear baseline ({theta0.size} parameters) "
        f"to {size} points with noise sigma = {noise} (seed {seed})."
    )

    # 1. Verify the derivatives once against finite differences, to second order: the
    #    gradient (jac) and Hessian-vector products (hessp) the optimizer will rely on.
    sg.check_grads(loss, (theta0,), order=2)
    say("check_grads: gradient and second derivatives agree with finite differences.")

    # 2. Derivatives for SciPy. fun and jac share one forward+backward pass via a cache.
    value_and_grad = sg.value_and_grad(loss)
    cache: dict[str, Any] = {"x": None}
    counts = {"value_and_grad": 0, "hvp": 0}

    def evaluate(theta: np.ndarray) -> tuple[float, np.ndarray]:
        if cache["x"] is None or not (cache["x"] == theta).all():
            counts["value_and_grad"] += 1
            cache["x"] = theta.copy()
            cache["vg"] = value_and_grad(theta)
        return cache["vg"]

    def fun(theta: np.ndarray) -> float:
        return float(evaluate(theta)[0])

    def jac(theta: np.ndarray) -> np.ndarray:
        return evaluate(theta)[1]

    def hessp(theta: np.ndarray, p: np.ndarray) -> np.ndarray:
        counts["hvp"] += 1
        return sg.hvp(loss, (theta,), (p,))[0]  # one entry per primal

    iteration = [0]

    def report(theta: np.ndarray) -> None:
        value, g = evaluate(theta)
        say(
            f"{iteration[0]:>5}  {value:14.6g}  {np.linalg.norm(g):12.4g}  "
            f"{counts['value_and_grad']:>6}  {counts['hvp']:>6}"
        )
        iteration[0] += 1

    # 3. Minimize.
    say("\nNewton-CG (grads, hvps: scigrad value_and_grad and hvp calls so far)")
    say(f"{'iter':>5}  {'loss':>14}  {'|gradient|':>12}  {'grads':>6}  {'hvps':>6}")
    report(theta0)
    start = time.perf_counter()
    result = minimize(
        fun,
        theta0,
        method="Newton-CG",
        jac=jac,
        hessp=hessp,
        callback=report,
        options={"xtol": XTOL, "maxiter": 200},
    )
    seconds = time.perf_counter() - start
    say(f"\nscipy: {result.message} ({result.nit} iterations, {seconds * 1e3:.0f} ms)")

    # 4. Uncertainties: for chi-squared / 2 the Hessian at the optimum is the Fisher matrix.
    #    g . H^-1 g (the Newton decrement) confirms we stopped at a minimum.
    theta = result.x
    value, g = value_and_grad(theta)
    cov = np.linalg.inv(sg.hessian(loss)(theta))
    decrement = float(g @ cov @ g)
    variance = cov.diagonal()
    stderr = np.sqrt(np.where(variance > 0, variance, np.nan))  # nan: not a minimum
    z = (theta - truth) / stderr
    chi2_dof = 2.0 * float(value) / (size - theta.size)
    out = Fit(t, y, k, truth, theta0, theta, stderr, z, chi2_dof, result, seconds, decrement)
    say(
        f"|gradient| = {np.linalg.norm(g):.3g}, Newton decrement g.H^-1.g = {decrement:.3g} "
        "(about 0 at a minimum)"
    )
    say(f"chi-squared / degree of freedom = {chi2_dof:.3f} (1 expected for a good fit)\n")
    _print_table(out, say)
    verdict = "good fit" if out.good else "POOR FIT"
    say(f"\n{verdict}: largest |fitted - true| = {np.max(np.abs(z)):.2f} standard errors.")
    return out


def _natural(theta: np.ndarray, stderr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widths instead of log-widths (standard errors by the delta method)."""
    value, err = theta.copy(), stderr.copy()
    w = slice(2 * k, 3 * k)
    value[w] = np.exp(theta[w])
    err[w] = value[w] * stderr[w]
    return value, err


def _print_table(f: Fit, say) -> None:
    true_v, _ = _natural(f.truth, f.stderr, f.k)
    init_v, _ = _natural(f.theta0, f.stderr, f.k)
    fit_v, fit_e = _natural(f.theta, f.stderr, f.k)
    say(f"{'parameter':<13} {'true':>9} {'initial':>9} {'fitted':>9} {'± std err':>10} {'z':>6}")
    for i, name in enumerate(parameter_names(f.k)):
        say(
            f"{name:<13} {true_v[i]:9.4f} {init_v[i]:9.4f} {fit_v[i]:9.4f} "
            f"{fit_e[i]:10.4f} {f.z[i]:6.2f}"
        )


def plot(f: Fit, path: str) -> str | None:
    """Save data, initial and fitted models as a PNG; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fine = np.linspace(*T_RANGE, 1000)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(f.t, f.y, ".", color="0.6", ms=3, label="data")
    top.plot(fine, model(f.theta0, fine, f.k), "--", color="tab:orange", label="initial model")
    top.plot(fine, model(f.truth, fine, f.k), ":", color="k", lw=1, label="true model")
    top.plot(fine, model(f.theta, fine, f.k), color="tab:blue", label="fitted (Newton-CG)")
    top.set_ylabel("y")
    top.set_title(f"{f.k} Gaussian peaks, Newton-CG with scigrad gradients and HVPs")
    top.legend()
    bottom.plot(f.t, f.y - model(f.theta, f.t, f.k), ".", color="tab:blue", ms=3)
    bottom.axhline(0.0, color="k", lw=0.8)
    bottom.set_xlabel("t")
    bottom.set_ylabel("residual")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return os.path.abspath(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=400, help="number of data points (400)")
    ap.add_argument("--peaks", type=int, default=3, help="number of Gaussian peaks (3)")
    ap.add_argument("--noise", type=float, default=0.05, help="noise standard deviation")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data")
    ap.add_argument("--no-plot", action="store_true", help="do not save a plot")
    ap.add_argument(
        "--plot-file", default=os.path.join("build", "newton_cg_fit.png"), help="PNG to write"
    )
    opts = ap.parse_args(argv)
    if opts.peaks < 1 or opts.size <= 3 * opts.peaks + 2:
        ap.error("need at least one peak and more data points than parameters")
    f = fit(opts.size, opts.peaks, opts.noise, opts.seed)
    if not opts.no_plot:
        where = plot(f, opts.plot_file)
        print(
            f"plot saved to {where}"
            if where
            else "matplotlib is not installed: no plot (pip install matplotlib)"
        )
    return 0 if f.good else 1


if __name__ == "__main__":
    sys.exit(main())
