"""Material tangents at a million quadrature points with sg.jit and sg.vmap.

A finite-element assembly needs, at every quadrature point, the stress P = dW/dF and the
tangent A = d²W/dF² of a hyperelastic strain energy W(F). Here W is a compressible
neo-Hookean law written as plain array code; scigrad derives P and A, ``sg.jit(sg.vmap(...))``
compiles them into one loop over the points, and ``kernel_out`` writes into preallocated
arrays (nothing is allocated per call, as an assembly loop wants).

    python examples/material_tangents.py                 # 10^6 points
    python examples/material_tangents.py --points 20000  # quicker
"""

from __future__ import annotations

import argparse
import time

import numpy

import scigrad as sg
import scigrad.numpy as np

MU, LAMBDA = 80.0, 120.0  # Lamé parameters (GPa)


def strain_energy(f_flat):
    """Compressible neo-Hookean energy density of the deformation gradient (9 entries)."""
    f = f_flat.reshape(3, 3)
    log_j = np.log(np.linalg.det(f))  # by cofactors for 3x3: compiled to scalar code
    first_invariant = np.sum(f * f)
    return 0.5 * MU * (first_invariant - 3.0) - MU * log_j + 0.5 * LAMBDA * log_j**2


def random_deformations(points: int, seed: int = 0) -> numpy.ndarray:
    """Deformation gradients near the identity, one row of 9 entries per point."""
    rng = numpy.random.default_rng(seed)
    return (numpy.eye(3).ravel() + 0.1 * rng.standard_normal((points, 9))).astype(float)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--parallel", action="store_true", help="spread the loop over cores")
    args = parser.parse_args(argv)

    f = random_deformations(args.points)
    stress_and_tangent = sg.jit(
        sg.vmap(lambda x: (sg.grad(strain_energy)(x), sg.hessian(strain_energy)(x))),
        parallel=args.parallel,
    )
    t0 = time.perf_counter()
    compiled = stress_and_tangent.lower(f[:1])
    print(
        f"compiled stress (9) and tangent (81) of W(F): traced in {compiled.trace_time:.2f} s, "
        f"numba {compiled.compile_time:.2f} s (cached on disk for the next run)"
    )
    stress, tangent = compiled.empty_outputs(args.points)
    compiled.kernel_out(f, stress, tangent)  # the first call at this size
    t0 = time.perf_counter()
    compiled.kernel_out(f, stress, tangent)
    seconds = time.perf_counter() - t0
    print(
        f"{args.points:,} quadrature points: {seconds * 1e3:.1f} ms, "
        f"{seconds / args.points * 1e9:.0f} ns per point (stress and tangent, into "
        "preallocated arrays)"
    )

    # The same numbers as eager scigrad, and a symmetric tangent (W is a potential).
    sample = numpy.linspace(0, args.points - 1, 5).astype(int)
    eager_p = numpy.stack([sg.grad(strain_energy)(f[i]) for i in sample])
    eager_a = numpy.stack([sg.hessian(strain_energy)(f[i]) for i in sample])
    error = max(
        numpy.max(numpy.abs(stress[sample] - eager_p)),
        numpy.max(numpy.abs(tangent[sample] - eager_a)),
    )
    asymmetry = numpy.max(numpy.abs(tangent - numpy.swapaxes(tangent, 1, 2)))
    print(f"agreement with eager scigrad: {error:.1e}; tangent asymmetry: {asymmetry:.1e}")
    t0 = time.perf_counter()
    for i in sample:
        sg.hessian(strain_energy)(f[i])
    eager = (time.perf_counter() - t0) / len(sample)
    slower = eager / (seconds / args.points)
    print(f"eager sg.hessian per point: {eager * 1e6:.0f} µs ({slower:,.0f}× slower)")
    return {"error": error, "asymmetry": asymmetry, "ns_per_point": seconds / args.points * 1e9}


if __name__ == "__main__":
    main()
