"""Smoke test of benchmarks/sparsity.py at tiny sizes: it writes its two tables."""

from __future__ import annotations

from tests._modules import load_script


def test_sparsity_benchmark_quick_writes_its_tables(tmp_path, capsys):
    bench = load_script("benchmarks/sparsity.py", "_scigrad_benchmarks_sparsity")
    out = tmp_path / "sparsity.md"
    assert bench.main(["--quick", "--sizes", "6", "--repeat", "1", "--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text in capsys.readouterr().out
    assert "python benchmarks/sparsity.py --quick --sizes 6 --repeat 1 --output" in text
    assert "## Hessians of 2-D grid energies" in text and "## Jacobians" in text
    rows = [line for line in text.splitlines() if line.startswith("| Dirichlet + cosh | 36 ")]
    assert len(rows) == 1 and "vs dense sg.hessian" in rows[0]
    errors = [float(r.split(" | ")[-1].split()[0]) for r in text.splitlines() if "vs dense" in r]
    assert errors and max(errors) < 1e-12
