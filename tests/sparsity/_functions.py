"""Random structured test functions for the sparsity tests: sums of terms gathered by index
arrays (banded, arrow and random structures), with weights drawn so that no two terms cancel
and derivatives vanish nowhere structurally nonzero (values kept away from zero)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as onp
from hypothesis import strategies as st

import scigrad.numpy as np

KINDS = ("mul", "sin", "exp", "square", "div", "linear", "band")


@dataclass(frozen=True)
class Term:
    kind: str
    a: tuple[int, ...]
    b: tuple[int, ...]

    def __call__(self, x):
        a, b = onp.array(self.a), onp.array(self.b)
        if self.kind == "mul":
            return x[a] * x[b]
        if self.kind == "sin":
            return np.sin(x[a] + 0.7 * x[b])
        if self.kind == "exp":
            return np.exp(0.7 * x[a]) * x[b]
        if self.kind == "square":
            return (x[a] - 0.7 * x[b]) ** 2
        if self.kind == "div":
            return x[a] / (2.0 + x[b] ** 2)
        if self.kind == "linear":
            return 1.5 * x[a] - 0.5 * x[b]
        k = self.a[0] % (x.shape[0] - 1) + 1  # "band": products at distance k
        return x[k:] * np.cos(x[:-k])


@dataclass(frozen=True)
class Problem:
    n: int
    terms: tuple[Term, ...]
    weights: tuple[float, ...]
    seed: int

    def vector(self, x):
        """A vector function: the terms concatenated."""
        return np.concatenate([t(x) for t in self.terms])

    def scalar(self, x):
        """A scalar function: a weighted sum of the terms' entries."""
        total = 0.0
        for t, w in zip(self.terms, self.weights, strict=True):
            total = total + w * np.sum(t(x))
        return total

    def point(self) -> onp.ndarray:
        rng = onp.random.default_rng(self.seed)
        return rng.uniform(0.5, 1.5, self.n) * rng.choice([-1.0, 1.0], self.n)


@st.composite
def problems(draw, max_n: int = 8, max_terms: int = 4) -> Problem:
    n = draw(st.integers(2, max_n))
    index = st.integers(0, n - 1)
    terms = []
    for _ in range(draw(st.integers(1, max_terms))):
        size = draw(st.integers(1, 4))
        kind = draw(st.sampled_from(KINDS))
        a = tuple(draw(st.lists(index, min_size=size, max_size=size)))
        b = tuple(draw(st.lists(index, min_size=size, max_size=size)))
        terms.append(Term(kind, a, b))
    seed = draw(st.integers(0, 2**16))
    weights = tuple(onp.random.default_rng(seed + 1).uniform(0.5, 2.0, len(terms)).tolist())
    return Problem(n, tuple(terms), weights, seed)


def tridiagonal_energy(x):
    return np.sum((x[1:] - x[:-1]) ** 2) + np.sum(np.cosh(x))


def arrow_energy(x):
    return np.sum(x[0] * x[1:]) + np.sum(x**4)


def grid_energy(x, m: int):
    u = np.reshape(x, (m, m))
    dx = u[1:, :] - u[:-1, :]
    dy = u[:, 1:] - u[:, :-1]
    return 0.5 * np.sum(dx**2) + 0.5 * np.sum(dy**2) + np.sum(np.cosh(u))


def grid_residual(x, m: int):
    u = np.reshape(x, (m, m))
    c = u[1:-1, 1:-1]
    lap = 4.0 * c - u[:-2, 1:-1] - u[2:, 1:-1] - u[1:-1, :-2] - u[1:-1, 2:]
    return np.reshape(lap + np.sin(c), (-1,))
