"""Smoke tests of `make demo` (examples/newton_cg_fit.py) and `make bench` (benchmarks/run.py),
at tiny sizes: the scripts run, the example's fit is good, the harness writes the table and
refuses to time a wrong derivative."""

from __future__ import annotations

from types import ModuleType

import numpy
import pytest

from tests._modules import load_script


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_script("examples/newton_cg_fit.py", "_scigrad_example_newton_cg_fit")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("benchmarks/run.py", "_scigrad_benchmarks_run")


# -- examples/newton_cg_fit.py --------------------------------------------------------------
def test_example_main_runs_and_reports(example, capsys):
    assert example.main(["--size", "60", "--peaks", "2", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "check_grads: gradient and second derivatives agree" in out
    assert "good fit" in out
    assert "plot saved" not in out


@pytest.mark.parametrize("seed", [0, 1])
def test_example_fit_recovers_the_truth(example, seed):
    f = example.fit(size=80, peaks=2, seed=seed, verbose=False)
    assert f.good
    assert f.theta.shape == (8,)
    assert numpy.all(numpy.abs(f.theta - f.truth) < 4 * f.stderr)
    assert 0 <= f.newton_decrement < 1e-6
    # the fit improved on the starting point by far
    loss = f.result.fun
    start = example.make_loss(f.t, f.y, 0.05, f.k)(f.theta0)
    assert loss < 0.1 * start


def test_example_saves_a_plot(example, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "sub" / "fit.png"
    assert example.main(["--size", "40", "--peaks", "1", "--plot-file", str(path)]) == 0
    assert path.stat().st_size > 1000
    assert f"plot saved to {path}" in capsys.readouterr().out


def test_example_rejects_too_few_points(example):
    with pytest.raises(SystemExit):
        example.main(["--size", "5", "--peaks", "2", "--no-plot"])


# -- benchmarks/run.py ----------------------------------------------------------------------
def test_benchmark_quick_scigrad_only(bench, tmp_path, capsys):
    out = tmp_path / "bench.md"
    rc = bench.main(["--quick", "--only", "scigrad", "--output", str(out)])
    text = out.read_text(encoding="utf-8")
    assert text == capsys.readouterr().out.rstrip("\n") + "\n"
    assert "python benchmarks/run.py --quick --only scigrad --output" in text
    assert f"numpy {numpy.__version__}" in text
    header = (
        "| benchmark | NumPy f(x) only | hand-written NumPy | scigrad | scigrad / hand-written "
        "| autograd / scigrad | target |"
    )
    assert header in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line != header]
    assert [r.split(" | ")[0][2:] for r in rows] == [p.name for p in bench.PROBLEMS]
    for r in rows:
        times = r.split(" | ")[1:4]  # NumPy, hand-written, scigrad: microseconds
        assert all(float(t.replace(",", "")) > 0 for t in times), r
    assert "≤ 20 µs, ≥ 10× autograd" in rows[0]
    assert "specialized by hand" in text  # the pure-Python floor is measured beside it
    assert rc == 0


def test_benchmark_rejects_unknown_library(bench):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--only", "scigrad,tensorflow"])


def test_benchmark_refuses_to_time_a_wrong_or_missing_library(bench):
    def wrong(problem, args):
        return lambda: numpy.zeros_like(args[0])

    def missing(problem, args):
        raise bench.NotInstalled("no module named 'fake'")

    libs = [
        bench.LIBRARIES[0],  # hand-written NumPy: the reference every result is checked against
        bench.Library("wrong", "Wrong", (), wrong),
        bench.Library("missing", "Missing", (), missing),
    ]
    assert libs[0].key == "hand"
    row = bench.run_problem(bench.PROBLEMS[0], libs, 1, 1e-4, lambda msg: None)
    assert isinstance(row.cells["hand"], float)
    assert row.cells["wrong"] == "WRONG"
    assert row.cells["missing"] == "not installed"
    assert any("Wrong disagrees with hand-written NumPy" in n for n in row.notes)
