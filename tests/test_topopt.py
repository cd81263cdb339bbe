"""Smoke tests of the topology-optimization demo (examples/topopt.py) and of the sparse
benchmarks (benchmarks/sparse.py), at tiny sizes: the demo lowers the compliance, its
automatic gradient is the classic hand-written adjoint, and the benchmark writes its tables."""

from __future__ import annotations

from types import ModuleType

import numpy
import pytest
import scipy.sparse as sps
import scipy.sparse.linalg as spla

import scigrad as sg
from tests._modules import load_script


@pytest.fixture(scope="module")
def topopt() -> ModuleType:
    # The benchmark loads the demo under this name too: one module object for both.
    return load_script("examples/topopt.py", "_scigrad_examples_topopt")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("benchmarks/sparse.py", "_scigrad_benchmarks_sparse")


def scipy_displacements(topopt: ModuleType, problem, x: numpy.ndarray) -> numpy.ndarray:
    """All displacements (zeros at the supports), assembled and solved with plain SciPy."""
    x_phys = (problem.H.to_scipy() @ x) / problem.Hs
    young = topopt.EMIN + x_phys**problem.penal * (topopt.E0 - topopt.EMIN)
    sK = (young[:, None] * problem.ke_flat[None, :]).reshape(-1)[problem.kept]
    n = problem.nfree
    K = sps.coo_array((sK, (problem.iK, problem.jK)), shape=(n, n)).tocsc()
    u = numpy.zeros(problem.ndof)
    u[problem.free] = spla.spsolve(K, problem.force)
    return u


def hand_written_gradient(topopt: ModuleType, problem, x: numpy.ndarray) -> numpy.ndarray:
    """The textbook adjoint of the compliance (self-adjoint: lambda = u):
    dc/dx_phys = -p x_phys^(p-1) (E0 - Emin) u_e^T KE u_e, then through the filter,
    dc/dx = H^T (dc/dx_phys / Hs)."""
    H = problem.H.to_scipy()
    x_phys = (H @ x) / problem.Hs
    ue = scipy_displacements(topopt, problem, x)[problem.edof]  # (nelem, 8)
    energy = numpy.einsum("ea,ab,eb->e", ue, problem.ke, ue)
    p = problem.penal
    dc_phys = -p * x_phys ** (p - 1) * (topopt.E0 - topopt.EMIN) * energy
    return H.T @ (dc_phys / problem.Hs)


# -- the demo -------------------------------------------------------------------------------
def test_demo_lowers_the_compliance(topopt):
    problem = topopt.Cantilever(12, 6, volfrac=0.4, rmin=1.5)
    lines = []
    result = topopt.optimize(problem, iters=5, tol=0.0, log=lines.append)
    assert len(result.compliance) == 5 and len(lines) == 5
    assert result.compliance[-1] < 0.7 * result.compliance[0]
    assert all(b < a for a, b in zip(result.compliance, result.compliance[1:], strict=False))
    assert all(abs(v - 0.4) < 1e-2 for v in result.volume[1:])  # OC keeps the volume
    assert numpy.all((result.x >= 0) & (result.x <= 1))
    assert "it 5/5" in lines[-1] and "compliance" in lines[-1]


def test_demo_gradient_is_the_hand_written_adjoint(topopt):
    problem = topopt.Cantilever(12, 6, volfrac=0.4, rmin=1.5)
    x = numpy.random.default_rng(0).uniform(0.2, 1.0, problem.nelem)
    c, dc = sg.value_and_grad(problem.compliance)(x)
    expected = hand_written_gradient(topopt, problem, x)
    numpy.testing.assert_allclose(dc, expected, rtol=1e-9, atol=1e-12 * abs(expected).max())
    assert numpy.all(dc < 0)  # more material, stiffer everywhere
    # and the compliance itself, against SciPy
    u = scipy_displacements(topopt, problem, x)
    assert c == pytest.approx(float(problem.force @ u[problem.free]), rel=1e-12)


def test_demo_gradient_by_finite_differences(topopt):
    problem = topopt.Cantilever(4, 3, volfrac=0.5, rmin=1.5)
    x = numpy.random.default_rng(1).uniform(0.3, 0.9, problem.nelem)
    sg.check_grads(problem.compliance, (x,), order=1, modes=("rev",))


def test_element_stiffness_is_symmetric_with_rigid_modes(topopt):
    ke = topopt.element_stiffness()
    numpy.testing.assert_allclose(ke, ke.T)
    # Rigid translations of the unit square element store no energy.
    for mode in (numpy.tile([1.0, 0.0], 4), numpy.tile([0.0, 1.0], 4)):
        numpy.testing.assert_allclose(ke @ mode, 0, atol=1e-14)
    assert numpy.linalg.eigvalsh(ke).min() > -1e-12


def test_density_filter_rows_are_averages(topopt):
    h, hs = topopt.density_filter(5, 4, 2.0)
    numpy.testing.assert_allclose(h @ numpy.ones(20) / hs, 1.0)
    dense = h.toarray()
    numpy.testing.assert_allclose(dense, dense.T)
    assert dense[0, 0] == pytest.approx(2.0) and dense[0, 1] == pytest.approx(1.0)


def test_demo_main_writes_plots(topopt, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots"
    assert topopt.main(["--nelx", "8", "--nely", "4", "--iters", "3", "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no hand-written adjoint" in text and "done: 3 iterations" in text
    assert (out / "design.png").stat().st_size > 1000
    assert (out / "convergence.png").stat().st_size > 1000


def test_demo_main_without_plots(topopt, tmp_path, capsys):
    out = tmp_path / "none"
    args = ["--nelx", "6", "--nely", "3", "--iters", "2", "--no-plot", "--out-dir", str(out)]
    assert topopt.main(args) == 0
    assert "saved" not in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [["--nelx", "0"], ["--volfrac", "1.5"], ["--rmin", "0.5"], ["--iters", "0"]],
)
def test_demo_rejects_bad_options(topopt, args):
    with pytest.raises(SystemExit):
        topopt.main([*args, "--no-plot"])


# -- the benchmark --------------------------------------------------------------------------
def test_sparse_benchmark_quick_writes_its_tables(bench, tmp_path, capsys):
    out = tmp_path / "sparse.md"
    rc = bench.main(["--quick", "--no-jax", "--output", str(out)])
    text = out.read_text(encoding="utf-8")
    assert text == capsys.readouterr().out.rstrip("\n") + "\n"
    assert rc == 0
    assert "python benchmarks/sparse.py --quick --no-jax --output" in text
    for section in ("## (a) Topology", "## (b) Gradient of x^T A(p) y", "## (c) CG"):
        assert section in text
    rows = [line for line in text.splitlines() if line.startswith("| 12×12 ")]
    assert [r.split(" | ")[3] for r in rows] == [
        "compliance",
        "squared displacements",
        "compliance, SuperLU",
    ]
    cells = [
        c.strip() for line in text.splitlines() if line.startswith("|") for c in line.split("|")
    ]
    assert "WRONG" not in cells and not any(c.startswith("error") for c in cells)
    assert "| scigrad value_and_grad |" in text  # table (b)


def test_sparse_benchmark_hand_adjoint_matches_scigrad(bench):
    case = bench.TopoCase.make(6)
    hand = bench.HandAdjoint(case, bench.superlu_factorize)
    for name, f in bench.scigrad_losses(case).items():
        value, grad = sg.value_and_grad(f)(case.x)
        ref_value, ref_grad = hand.value_and_grad(case.x, name)
        assert bench.rel_diff(value, ref_value) < 1e-10
        assert bench.rel_diff(grad, ref_grad) < 1e-10


def test_sparse_benchmark_jax_agrees(bench):
    pytest.importorskip("jax")
    case = bench.TopoCase.make(4)
    hand = bench.HandAdjoint(case, bench.superlu_factorize)
    jax_fns = bench.jax_losses(case)
    for name in ("compliance", "squared displacements"):
        value, grad = jax_fns[name](jax_fns["_x"](case.x))
        ref_value, ref_grad = hand.value_and_grad(case.x, name)
        assert bench.rel_diff(value, ref_value) < 1e-10
        assert bench.rel_diff(numpy.asarray(grad), ref_grad) < 1e-10


def test_sparse_benchmark_rejects_bad_options(bench):
    with pytest.raises(SystemExit):
        bench.main(["--only", "d"])
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "1"])
