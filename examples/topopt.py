"""Topology optimization of a cantilever (SIMP), with the gradient from scigrad.

A classic of structural optimization written as plain array code
(``import scigrad.numpy as np``): a rectangle of ``nelx x nely`` bilinear (Q4) plane-stress
elements, clamped on its left edge and loaded downwards at the middle of its right edge,
distributes a fixed volume of material (``--volfrac``) so as to be as stiff as possible.

* Each element's density ``x_e`` is smoothed by a density filter, a sparse matrix ``H``
  applied with ``@`` (weights ``rmin - distance`` between element centres).
* Young's modulus follows SIMP: ``E = Emin + x^p (E0 - Emin)``, ``p = 3``.
* The stiffness matrix is assembled from triplets exactly as in a SciPy script,
  ``coo_array((sK, (iK, jK)), shape).tocsc()``, and ``u = spsolve(K, f)``; the objective is
  the compliance ``f . u``.
* ``sg.value_and_grad(compliance)`` gives the compliance and its gradient with respect to
  the design through the filter, the assembly and the solve. There is no hand-written
  adjoint: scigrad differentiates the solve implicitly, reusing the forward factorization
  for the adjoint solve, and the stiffness cotangent lives on K's sparsity pattern.
* The design is updated by the optimality criteria (OC) method: bisection on the Lagrange
  multiplier of the volume constraint, move limit 0.2.

Fixed degrees of freedom are handled by assembling only the free ones: each element's
triplets are mapped to free-dof numbers and those touching a fixed dof are dropped (the
index arrays are computed once, so every iteration reuses scigrad's cached assembly plan).

    python examples/topopt.py                          # 60 x 30 elements, ~10 s
    python examples/topopt.py --nelx 120 --nely 60 --iters 200 --out-dir build/big
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import scigrad as sg
import scigrad.numpy as np
import scigrad.scipy.sparse as sp
from scigrad.scipy.sparse.linalg import spsolve

E0 = 1.0  # Young's modulus of solid material
EMIN = 1e-9  # ... and of void (keeps K non-singular)
NU = 0.3  # Poisson's ratio
PENAL = 3.0  # SIMP penalization exponent
MOVE = 0.2  # OC move limit


def element_stiffness(nu: float = NU) -> np.ndarray:
    """The 8 x 8 stiffness matrix of a unit square Q4 plane-stress element (E = 1).

    Degrees of freedom in the order (x, y) of the lower-left, lower-right, upper-right and
    upper-left nodes.
    """
    k = np.array(
        [
            1 / 2 - nu / 6,
            1 / 8 + nu / 8,
            -1 / 4 - nu / 12,
            -1 / 8 + 3 * nu / 8,
            -1 / 4 + nu / 12,
            -1 / 8 - nu / 8,
            nu / 6,
            1 / 8 - 3 * nu / 8,
        ]
    )
    order = np.array(
        [
            [0, 1, 2, 3, 4, 5, 6, 7],
            [1, 0, 7, 6, 5, 4, 3, 2],
            [2, 7, 0, 5, 6, 3, 4, 1],
            [3, 6, 5, 0, 7, 2, 1, 4],
            [4, 5, 6, 7, 0, 1, 2, 3],
            [5, 4, 3, 2, 1, 0, 7, 6],
            [6, 3, 4, 1, 2, 7, 0, 5],
            [7, 2, 1, 4, 3, 6, 5, 0],
        ]
    )
    return k[order] / (1 - nu**2)


def density_filter(nelx: int, nely: int, rmin: float) -> tuple[Any, np.ndarray]:
    """The filter matrix ``H`` (weights ``max(0, rmin - distance)`` between element centres,
    a scigrad sparse array) and its row sums ``Hs``: filtered densities are ``H @ x / Hs``."""
    reach = int(np.ceil(rmin)) - 1
    ex, ey = np.meshgrid(np.arange(nelx), np.arange(nely), indexing="ij")
    ex, ey = ex.ravel(), ey.ravel()
    rows, cols, weights = [], [], []
    for dx in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            w = rmin - np.sqrt(dx * dx + dy * dy)
            nx, ny = ex + dx, ey + dy
            inside = (nx >= 0) & (nx < nelx) & (ny >= 0) & (ny < nely)
            if w <= 0 or not inside.any():
                continue
            rows.append((ey + ex * nely)[inside])
            cols.append((ny + nx * nely)[inside])
            weights.append(np.full(int(inside.sum()), w))
    n = nelx * nely
    h = sp.coo_array(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    ).tocsr()
    hs = h @ np.ones(n)
    return h, hs


class Cantilever:
    """The discretized problem: mesh, supports, load, filter and the assembly triplets.

    Element ``e = ely + elx * nely`` (column by column, ``ely = 0`` at the top); node
    ``(nely + 1) * i + j`` at column ``i``, row ``j``; dofs ``2 n`` (x) and ``2 n + 1`` (y).
    """

    def __init__(
        self,
        nelx: int,
        nely: int,
        volfrac: float = 0.4,
        rmin: float = 1.5,
        penal: float = PENAL,
    ) -> None:
        if nelx < 1 or nely < 1:
            raise ValueError(f"need at least one element each way, got {nelx} x {nely}")
        if not 0 < volfrac <= 1:
            raise ValueError(f"volfrac must be in (0, 1], got {volfrac}")
        if rmin < 1:
            raise ValueError(f"rmin must be at least 1 (no filtering), got {rmin}")
        self.nelx, self.nely, self.volfrac, self.penal = nelx, nely, volfrac, penal
        self.nelem = nelx * nely
        ndof = 2 * (nelx + 1) * (nely + 1)
        # Element dofs, counter-clockwise from the lower-left node (the order of KE).
        elx, ely = np.meshgrid(np.arange(nelx), np.arange(nely), indexing="ij")
        n1 = ((nely + 1) * elx + ely).ravel()  # upper-left node
        n2 = ((nely + 1) * (elx + 1) + ely).ravel()  # upper-right node
        lower_left, lower_right, upper_right, upper_left = 2 * n1 + 2, 2 * n2 + 2, 2 * n2, 2 * n1
        edof = np.stack(
            [lower_left, lower_left + 1, lower_right, lower_right + 1]
            + [upper_right, upper_right + 1, upper_left, upper_left + 1],
            axis=1,
        )
        # Supports: the left edge is clamped. Load: unit force down, middle of the right edge.
        fixed = np.arange(2 * (nely + 1))
        free = np.setdiff1d(np.arange(ndof), fixed)
        load_node = (nely + 1) * nelx + nely // 2
        force = np.zeros(ndof)
        force[2 * load_node + 1] = -1.0
        # Triplets of the free dofs only: number the free dofs 0..nfree-1 and drop every
        # element-matrix entry in a fixed row or column.
        number = np.full(ndof, -1)
        number[free] = np.arange(free.size)
        i_all = np.repeat(edof, 8, axis=1).ravel()  # entry (a, b) of element e: row edof[e, a]
        j_all = np.tile(edof, (1, 8)).ravel()  # ... and column edof[e, b]
        self.kept = np.flatnonzero((number[i_all] >= 0) & (number[j_all] >= 0))
        self.iK = number[i_all[self.kept]]
        self.jK = number[j_all[self.kept]]
        self.ndof, self.nfree = ndof, free.size
        self.edof, self.free = edof, free
        self.force = force[free]
        self.ke = element_stiffness()
        self.ke_flat = self.ke.ravel()
        self.H, self.Hs = density_filter(nelx, nely, rmin)

    # -- the model: plain array code, differentiated by scigrad ------------------------------
    def densities(self, x: Any) -> Any:
        """Filtered ("physical") densities."""
        return (self.H @ x) / self.Hs

    def stiffness(self, x_phys: Any) -> Any:
        """The global stiffness matrix on the free dofs (CSC)."""
        young = EMIN + x_phys**self.penal * (E0 - EMIN)
        sK = (young[:, None] * self.ke_flat[None, :]).reshape(-1)[self.kept]
        shape = (self.nfree, self.nfree)
        return sp.coo_array((sK, (self.iK, self.jK)), shape=shape).tocsc()

    def displacements(self, x: Any) -> Any:
        """Displacements of the free dofs for the design ``x``."""
        return spsolve(self.stiffness(self.densities(x)), self.force)

    def compliance(self, x: Any) -> Any:
        """The objective: ``f . u`` (work done by the load; small = stiff)."""
        return np.dot(self.force, self.displacements(x))

    def volume(self, x: Any) -> Any:
        """Volume fraction of the filtered design."""
        return np.mean(self.densities(x))

    def image(self, x: Any) -> np.ndarray:
        """The filtered design as an ``nely x nelx`` image (row 0 at the top)."""
        return np.asarray(self.densities(x)).reshape(self.nelx, self.nely).T


# -- the optimizer ------------------------------------------------------------------------
def oc_update(
    x: np.ndarray,
    dc: np.ndarray,
    dv: np.ndarray,
    volume: Callable[[np.ndarray], float],
    volfrac: float,
    move: float = MOVE,
) -> np.ndarray:
    """Optimality criteria: ``x * sqrt(-dc / (lambda dv))`` within the move limits and
    [0, 1], with ``lambda`` found by bisection so that the volume constraint holds."""
    ratio = np.sqrt(np.maximum(-dc, 0.0) / dv)
    lower, upper = np.maximum(0.0, x - move), np.minimum(1.0, x + move)
    lo, hi = 0.0, 1e9
    while (hi - lo) / (hi + lo) > 1e-3:
        mid = 0.5 * (lo + hi)
        xnew = np.clip(x * ratio / np.sqrt(mid), lower, upper)
        if volume(xnew) > volfrac:
            lo = mid
        else:
            hi = mid
    return xnew


@dataclass
class Result:
    problem: Cantilever
    x: np.ndarray  # final design variables (unfiltered)
    compliance: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)
    change: list[float] = field(default_factory=list)
    seconds: float = 0.0


def optimize(
    problem: Cantilever, iters: int = 100, tol: float = 0.01, log: Callable[[str], None] = print
) -> Result:
    """Run OC iterations from the uniform design until the largest change of a density is
    below ``tol`` or ``iters`` iterations are done."""
    x = np.full(problem.nelem, problem.volfrac)
    compliance_and_gradient = sg.value_and_grad(problem.compliance)
    dv = sg.grad(problem.volume)(x)  # constant: the filter is linear
    result = Result(problem, x)
    start = time.perf_counter()
    width = len(str(iters))
    for it in range(1, iters + 1):
        c, dc = compliance_and_gradient(x)
        xnew = oc_update(x, dc, dv, problem.volume, problem.volfrac)
        change = float(np.max(np.abs(xnew - x)))
        result.compliance.append(float(c))
        result.volume.append(float(problem.volume(x)))
        result.change.append(change)
        x = xnew
        done = int(20 * it / iters)
        log(
            f"[{'#' * done}{'.' * (20 - done)}] it {it:>{width}}/{iters}  "
            f"compliance {float(c):10.4f}  volume {result.volume[-1]:.3f}  "
            f"change {change:.3f}  {time.perf_counter() - start:6.1f} s"
        )
        if change < tol:
            log(f"converged: largest density change {change:.4f} < {tol}")
            break
    result.x = x
    result.seconds = time.perf_counter() - start
    return result


# -- plots ---------------------------------------------------------------------------------
def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_design(result: Result, path: str) -> str | None:
    """Save the final (filtered) design as a PNG; None if matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return None
    p = result.problem
    fig, ax = plt.subplots(figsize=(8, 8 * p.nely / p.nelx + 0.6))
    ax.imshow(p.image(result.x), cmap="gray_r", vmin=0, vmax=1, interpolation="none")
    ax.set_title(
        f"cantilever {p.nelx} x {p.nely}, volume fraction {p.volfrac:g}: "
        f"compliance {result.compliance[-1]:.3f}"
    )
    ax.set_axis_off()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_convergence(result: Result, path: str) -> str | None:
    """Save compliance and largest density change against iteration as a PNG."""
    plt = _pyplot()
    if plt is None:
        return None
    its = np.arange(1, len(result.compliance) + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(its, result.compliance, color="tab:blue")
    ax.set_xlabel("iteration")
    ax.set_ylabel("compliance", color="tab:blue")
    ax.set_yscale("log")
    right = ax.twinx()
    right.plot(its, result.change, color="tab:orange", lw=1)
    right.set_ylabel("largest density change", color="tab:orange")
    right.set_yscale("log")
    ax.set_title("OC iterations, gradient from sg.value_and_grad")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- command line --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nelx", type=int, default=60, help="elements along x (60)")
    ap.add_argument("--nely", type=int, default=30, help="elements along y (30)")
    ap.add_argument("--iters", type=int, default=100, help="largest number of iterations (100)")
    ap.add_argument("--volfrac", type=float, default=0.4, help="volume fraction (0.4)")
    ap.add_argument("--rmin", type=float, default=1.5, help="filter radius in elements (1.5)")
    ap.add_argument("--tol", type=float, default=0.01, help="stop when no density moves more")
    ap.add_argument("--out-dir", default=os.path.join("build", "topopt"), help="where the PNGs go")
    ap.add_argument("--no-plot", action="store_true", help="do not save the PNGs")
    opts = ap.parse_args(argv)
    if opts.iters < 1:
        ap.error("--iters must be at least 1")
    try:
        problem = Cantilever(opts.nelx, opts.nely, opts.volfrac, opts.rmin)
    except ValueError as e:
        ap.error(str(e))
    print(
        f"cantilever: {opts.nelx} x {opts.nely} Q4 elements, {problem.nfree} free dofs, "
        f"{problem.kept.size} stiffness triplets; volume fraction {opts.volfrac:g}, "
        f"filter radius {opts.rmin:g}; gradient by sg.value_and_grad (no hand-written adjoint)"
    )
    result = optimize(problem, opts.iters, opts.tol)
    print(
        f"done: {len(result.compliance)} iterations in {result.seconds:.1f} s, compliance "
        f"{result.compliance[0]:.4f} -> {result.compliance[-1]:.4f}"
    )
    if not opts.no_plot:
        design = plot_design(result, os.path.join(opts.out_dir, "design.png"))
        if design is None:
            print("matplotlib is not installed: no plots (pip install matplotlib)")
        else:
            curve = plot_convergence(result, os.path.join(opts.out_dir, "convergence.png"))
            print(f"design saved to {design}, convergence plot to {curve}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
