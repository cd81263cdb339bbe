"""vmap (issue 5, item 4): the batching interpreter against a Python loop over the batch.

Every library primitive is batched through small functions (values, ``vmap(grad(f))`` and
``grad(vmap(f))``), with the batch axis first and last; then in_axes/out_axes and pytrees,
nested transformations, custom rules, the loop fallbacks, the errors, and a check that a
batch costs a fixed number of primitive calls whatever its size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as onp
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scigrad as sg
import scigrad.numpy as np
import scigrad.numpy.linalg as la
import scigrad.scipy.linalg as sla
import scigrad.scipy.sparse as sp
import scigrad.scipy.sparse.linalg as spla
import scigrad.scipy.special as special
from scigrad.core import batching
from scigrad.core.batching import (
    BROADCASTING_SHAPE_RULES,
    BatchTrace,
    BatchTracer,
    vmap,
)
from scigrad.core.primitive import Primitive
from scigrad.core.tree import tree_flatten, tree_map
from tests.conftest import LIBRARY_PRIMITIVES
from tests.strategies import arrays, shapes

B = 3  # batch size of the table-driven cases


# -- the reference: a Python loop ------------------------------------------------------------
def _entry(x: Any, axis: int | None, i: int) -> Any:
    return x if axis is None else onp.take(x, i, axis=axis)


def loop(f: Callable, args: tuple, in_axes: tuple) -> Any:
    """``f`` applied to each batch entry, the results stacked along axis 0."""
    size = next(onp.shape(a)[ax] for a, ax in zip(args, in_axes, strict=True) if ax is not None)
    outs = [
        f(*(_entry(a, ax, i) for a, ax in zip(args, in_axes, strict=True))) for i in range(size)
    ]
    return tree_map(lambda *xs: onp.stack([onp.asarray(x) for x in xs]), *outs)


def assert_close(actual: Any, expected: Any, rtol: float = 1e-9) -> None:
    fa, ta = tree_flatten(actual)
    fe, te = tree_flatten(expected)
    assert ta == te, f"structures differ: {ta} vs {te}"
    for a, e in zip(fa, fe, strict=True):
        a, e = onp.asarray(a), onp.asarray(e)
        assert a.shape == e.shape, f"shapes differ: {a.shape} vs {e.shape}"
        if e.dtype.kind in "biu":
            onp.testing.assert_array_equal(a, e)
        else:
            onp.testing.assert_allclose(a, e, rtol=rtol, atol=1e-9)


def _scalar(out: Any) -> Any:
    """A smooth scalar of every floating output leaf (the cotangents are not all ones)."""
    total = 0.0
    for leaf in tree_flatten(out)[0]:
        if onp.dtype(leaf.dtype).kind == "f":
            total = total + np.sum(np.sin(leaf))
    return total


# -- the cases: one or more per library primitive ----------------------------------------------
@dataclasses.dataclass
class Case:
    name: str
    f: Callable
    args: tuple  # batched args carry the batch axis (first); unbatched ones do not
    in_axes: tuple
    diff: bool = True  # differentiable in the batched float arguments

    def __repr__(self) -> str:
        return self.name


_rng = onp.random.default_rng(20240605)


def U(*shape: int, low: float = 0.2, high: float = 0.8) -> onp.ndarray:
    return _rng.uniform(low, high, shape)


def N(*shape: int) -> onp.ndarray:
    return _rng.standard_normal(shape)


def SPD(*batch: int, n: int = 3) -> onp.ndarray:
    m = _rng.standard_normal((*batch, n, n))
    return m @ onp.swapaxes(m, -1, -2) + n * onp.eye(n)


def GEN(*batch: int, n: int = 3) -> onp.ndarray:
    return _rng.uniform(-1, 1, (*batch, n, n)) + 2 * n * onp.eye(n)


def SEP(*batch: int, n: int = 3) -> onp.ndarray:
    """Symmetric with well separated eigenvalues 1..n."""
    q, _ = onp.linalg.qr(_rng.standard_normal((*batch, n, n)) + 3 * n * onp.eye(n))
    return q @ (onp.arange(1.0, n + 1)[:, None] * onp.swapaxes(q, -1, -2))


def _elementwise_cases() -> list[Case]:
    """Every broadcasting primitive, through ``prim.bind``: unary ones on a batch, binary
    ones batched in one or both operands (with broadcasting against an unbatched one)."""
    cases = []
    domain = {"arccosh": (1.2, 2.0), "arcsin": (-0.8, 0.8)}
    integer = {"bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift", "right_shift"}
    for name, p in sorted(LIBRARY_PRIMITIVES.items()):
        if p.shape_rule not in BROADCASTING_SHAPE_RULES:
            continue
        diff = not p.nondiff
        lo, hi = domain.get(name, (0.2, 0.8))
        if name in integer:
            make = lambda *s: _rng.integers(0, 4, s)  # noqa: E731
            diff = False
        else:
            make = lambda *s, lo=lo, hi=hi: U(*s, low=lo, high=hi)  # noqa: E731
        if name == "where":
            cond = _rng.random((B, 2, 3)) > 0.5
            cases.append(Case("where", p.bind, (cond, U(B, 2, 3), U(3)), (0, 0, None)))
            cases.append(Case("where/cond", p.bind, (U(2, 3) > 0.5, U(B, 3), 0.5), (None, 0, None)))
            continue
        if name in _UNARY:
            cases.append(Case(name, p.bind, (make(B, 2, 3),), (0,), diff))
        else:
            cases.append(Case(name, p.bind, (make(B, 2, 3), make(B, 2, 3)), (0, 0), diff))
            cases.append(
                Case(f"{name}/bcast", p.bind, (make(B, 3), make(4, 1, 3)), (0, None), diff)
            )
    return cases


_UNARY = {
    name
    for name, p in LIBRARY_PRIMITIVES.items()
    if p.shape_rule in BROADCASTING_SHAPE_RULES
    and name
    not in {
        "add",
        "subtract",
        "multiply",
        "divide",
        "power",
        "arctan2",
        "hypot",
        "logaddexp",
        "logaddexp2",
        "maximum",
        "minimum",
        "fmax",
        "fmin",
        "remainder",
        "fmod",
        "equal",
        "not_equal",
        "less",
        "less_equal",
        "greater",
        "greater_equal",
        "logical_and",
        "logical_or",
        "logical_xor",
        "floor_divide",
        "heaviside",
        "bitwise_and",
        "bitwise_or",
        "bitwise_xor",
        "left_shift",
        "right_shift",
        "beta",
        "betaln",
        "xlogy",
        "xlog1py",
        "where",
    }  # fmt: skip
}


def _sparse_matvec(v, x):
    rows, cols = onp.array([0, 1, 2, 2, 0]), onp.array([0, 1, 2, 0, 2])
    return sp.coo_array((v, (rows, cols)), shape=(3, 3)).tocsr() @ x


def _sparse_system(v):
    rows, cols = onp.array([0, 1, 2, 0, 1]), onp.array([0, 1, 2, 1, 0])
    diag = onp.array([1.0, 1.0, 1.0, 0.0, 0.0])
    return sp.coo_array((v + 4.0 * diag, (rows, cols)), shape=(3, 3)).tocsc()


def _op_solve(d, b):
    A = spla.LinearOperator((3, 3), matvec=lambda v, d: v * d, params=d)
    return spla.cg(A, b, rtol=1e-13)[0]


STRUCTURAL = [
    # shapes
    Case("reshape", lambda x: x.reshape(3, 2), (N(B, 2, 3),), (0,)),
    Case("transpose", lambda x: np.transpose(x, (2, 0, 1)), (N(B, 2, 3, 2),), (0,)),
    Case("moveaxis", lambda x: np.moveaxis(x, 0, -1) * 2.0, (N(B, 2, 3),), (0,)),
    Case("broadcast_to", lambda x: np.broadcast_to(x, (4, 2, 3)), (N(B, 3),), (0,)),
    Case("broadcast_to/rank", lambda x: np.broadcast_to(x, (2, 3)), (N(B, 1, 3),), (0,)),
    Case(
        "concatenate",
        lambda x, c: np.concatenate([x, c, x], axis=1),
        (N(B, 2, 3), N(2, 1)),
        (0, None),
    ),
    Case("stack", lambda x, y: np.stack([x, y * 2.0], axis=-1), (N(B, 3), N(B, 3)), (0, 0)),
    Case(
        "split",
        lambda x: np.split(x, [1, 3], axis=1)[2] * np.split(x, 2, axis=0)[0],
        (N(B, 2, 4),),
        (0,),
    ),
    Case(
        "tile/repeat",
        lambda x: np.tile(x, (2, 1)) + np.repeat(x, 2, axis=0)[:2],
        (N(B, 1, 3),),
        (0,),
    ),
    Case(
        "pad/diag", lambda x: np.pad(x, (1, 2), mode="edge") @ np.pad(x, (2, 1)), (N(B, 3),), (0,)
    ),
    Case(
        "diag/tril",
        lambda x: np.diag(x[0]) + np.tril(x) + np.diagonal(x, 1)[0],
        (N(B, 3, 3),),
        (0,),
    ),
    Case("roll/flip", lambda x: np.roll(x, 1, axis=0) * np.flip(x), (N(B, 4),), (0,)),
    # indexing
    Case("getitem/basic", lambda x: x[1:, ::-1] + x[None, 0, ..., 2:3], (N(B, 3, 4),), (0,)),
    Case("getitem/int-array", lambda x: x[[0, 2, 2]] * x[:, [1, 0]].sum(), (N(B, 3, 2),), (0,)),
    Case("getitem/split-advanced", lambda x: x[[0, 1], :, [1, 2]], (N(B, 2, 3, 4),), (0,)),
    Case("getitem/mask", lambda x: x[onp.array([True, False, True])], (N(B, 3, 2),), (0,)),
    Case("getitem/ix", lambda x: x[onp.ix_([0, 2], [1, 1])], (N(B, 3, 2),), (0,)),
    Case(
        "take/along",
        lambda x: np.take_along_axis(x, onp.array([[2, 0, 1]]), 1) + np.take(x, [1], 1),
        (N(B, 2, 3),),
        (0,),
    ),
    Case(
        "unindex",
        lambda x: sg.grad(lambda y: np.sum(y[[0, 0, 2]] ** 2) + y[1] ** 3)(x),
        (N(B, 3),),
        (0,),
    ),
    Case("at/add", lambda x, u: np.at(x)[[0, 0, 2]].add(u), (N(B, 3, 2), N(B, 3, 2)), (0, 0)),
    Case("at/add-bcast", lambda x, u: np.at(x)[:, 1].add(u), (N(B, 3, 2), N(3)), (0, None)),
    Case("at/set", lambda x, u: np.at(x)[1:, [1, 0]].set(u), (N(3, 2), N(B, 2)), (None, 0)),
    Case(
        "at/set-split",
        lambda x, u: np.at(x)[[0, 1], :, [1, 0]].set(u),
        (N(B, 2, 3, 2), N(B, 2, 3)),
        (0, 0),
    ),
    Case("at/multiply", lambda x, u: np.at(x)[[2, 2, 0]].multiply(u), (U(B, 3), U(B, 3)), (0, 0)),
    Case("at/min", lambda x, u: np.at(x)[[1, 1, 0]].min(u), (N(B, 3), N(B, 3)), (0, 0)),
    Case("at/max", lambda x, u: np.at(x)[[0, 2]].max(u), (N(B, 3), N(3, 1)[:2, 0]), (0, None)),
    # reductions
    Case(
        "sum",
        lambda x: np.sum(x, axis=1) + np.sum(x) + np.sum(x, (0, 1), keepdims=True)[0],
        (N(B, 2, 3, 2),),
        (0,),
    ),
    Case("mean/var", lambda x: np.var(x, axis=0) + np.mean(x), (N(B, 3, 2),), (0,)),
    Case("prod", lambda x: np.prod(x, axis=0) * np.prod(x), (U(B, 3, 2),), (0,)),
    Case("cumprod", lambda x: np.cumprod(x, axis=1), (U(B, 2, 3),), (0,)),
    Case("max", lambda x: np.max(x, axis=1) + np.max(x), (N(B, 2, 3),), (0,)),
    Case("min", lambda x: np.min(x, axis=0, keepdims=True) * np.min(x), (N(B, 2, 3),), (0,)),
    Case(
        "cumsum",
        lambda x: np.cumsum(x, axis=0) + np.cumsum(x[:, ::-1], axis=1),
        (N(B, 2, 3),),
        (0,),
    ),
    Case("sort/median", lambda x: np.sort(x, axis=0) + np.median(x, axis=0), (N(B, 3, 2),), (0,)),
    Case("argsort", lambda x: np.argsort(x, axis=0), (N(B, 3, 2),), (0,), False),
    Case("argmax", lambda x: np.argmax(x, axis=1) + np.argmax(x), (N(B, 2, 3),), (0,), False),
    Case("argmin", lambda x: np.argmin(x, keepdims=True), (N(B, 2, 3),), (0,), False),
    Case("all/any", lambda x: np.all(x > 0, axis=1) | np.any(x > 1), (N(B, 2, 3),), (0,), False),
    Case(
        "count_nonzero",
        lambda x: np.count_nonzero(x > 0, axis=0) + np.count_nonzero(x > 0),
        (N(B, 2, 3),),
        (0,),
        False,
    ),
    # products
    Case("matmul/mv", lambda a, x: a @ x, (N(B, 2, 3), N(B, 3)), (0, 0)),
    Case("matmul/m-vs", lambda a, x: a @ x, (N(2, 3), N(B, 3)), (None, 0)),
    Case("matmul/vm", lambda x, a: x @ a, (N(B, 2), N(B, 2, 3)), (0, 0)),
    Case("matmul/vs-m", lambda x, a: x @ a, (N(B, 2), N(2, 3)), (0, None)),
    Case("matmul/v-ms", lambda x, a: x @ a, (N(2), N(B, 4, 2, 3)), (None, 0)),
    Case("matmul/vs-stack", lambda x, a: x @ a, (N(B, 2), N(4, 2, 3)), (0, None)),
    Case("matmul/stack-vs", lambda a, x: a @ x, (N(4, 2, 3), N(B, 3)), (None, 0)),
    Case("matmul/vv", lambda x, y: x @ y + x @ onp.ones(3), (N(B, 3), N(B, 3)), (0, 0)),
    Case("matmul/v-vs", lambda x, y: x @ y, (N(3), N(B, 3)), (None, 0)),
    Case("matmul/mm", lambda a, b: a @ b, (N(B, 2, 3), N(B, 3, 2)), (0, 0)),
    Case("matmul/ms-m", lambda a, b: a @ b, (N(B, 2, 3), N(3, 2)), (0, None)),
    Case("matmul/m-ms", lambda a, b: a @ b, (N(2, 3), N(B, 3, 2)), (None, 0)),
    Case("matmul/stacks", lambda a, b: a @ b, (N(B, 4, 2, 3), N(3, 2)), (0, None)),
    Case("matmul/stack-broadcast", lambda a, b: a @ b, (N(B, 2, 3), N(4, 3, 2)), (0, None)),
    Case("matmul/both-stacks", lambda a, b: a @ b, (N(B, 2, 3), N(B, 4, 3, 2)), (0, 0)),
    Case(
        "dot/tensordot",
        lambda a, b: np.dot(a, b) + np.tensordot(a, b, 1),
        (N(B, 2, 3), N(3, 2)),
        (0, None),
    ),
    Case(
        "einsum",
        lambda a, b: np.einsum("ij,jk->ki", a, b) + np.einsum("ii,jk->kj", a[:, :2], b[:2]),
        (N(B, 2, 3), N(B, 3, 2)),
        (0, 0),
    ),
    Case("einsum/unbatched", lambda a, b: np.einsum("i,ij", a, b), (N(B, 2), N(2, 3)), (0, None)),
    Case("trace", lambda x: np.trace(x) + np.trace(x, 1, 0, 2).sum(), (N(B, 3, 2, 3),), (0,)),
    Case("kron/cross", lambda a, b: np.kron(a, b)[:3] + np.cross(a, b), (N(B, 3), N(3)), (0, None)),
    # conversions and constants
    Case("astype", lambda x: x.astype(onp.float32).astype(onp.float64) * x, (N(B, 3),), (0,)),
    Case("astype/int", lambda x: (x * 3).astype(int), (N(B, 3),), (0,), False),
    Case("round", lambda x: np.round(x, 1), (N(B, 3),), (0,), False),
    Case("stop_gradient", lambda x: sg.stop_gradient(x) * x, (N(B, 3),), (0,)),
    Case("clip/abs", lambda x: np.clip(x, -0.5, 0.5) + np.abs(x), (N(B, 4),), (0,)),
    # numpy.linalg
    Case("solve", lambda a, b: la.solve(a, b), (GEN(B), N(B, 3)), (0, 0)),
    Case("solve/matrix-b", lambda a, b: la.solve(a, b), (GEN(), N(B, 3, 2)), (None, 0)),
    Case("solve/stacks", lambda a, b: la.solve(a, b), (GEN(B, 6), N(3)), (0, None)),
    Case("solve/stack-broadcast", lambda a, b: la.solve(a, b), (GEN(B, 2), N(B, 1, 3, 2)), (0, 0)),
    Case("inv", lambda a: la.inv(a), (GEN(B),), (0,)),
    Case("det", lambda a: la.det(a), (GEN(B, n=4),), (0,)),  # 4x4: LAPACK, not cofactors
    Case("det by cofactors", lambda a: la.det(a), (GEN(B),), (0,)),
    Case("slogdet", lambda a: la.slogdet(a).logabsdet, (GEN(B),), (0,)),
    Case("cholesky", lambda a: la.cholesky(a) + la.cholesky(a, upper=True), (SPD(B),), (0,)),
    Case(
        "eigh", lambda a: la.eigh(a).eigenvalues + la.eigh(a).eigenvectors[0] ** 2, (SEP(B),), (0,)
    ),
    Case("svd", lambda a: la.svd(a).S + la.svd(a)[0][:, 0] ** 2, (SEP(B),), (0,)),
    Case("pinv", lambda a: la.pinv(a), (N(B, 3, 2),), (0,)),
    Case("qr", lambda a: la.qr(a).R ** 2 + la.qr(a).Q[..., :2, :] ** 2, (N(B, 3, 2),), (0,)),
    Case("norm", lambda x: la.norm(x) + la.norm(x, axis=0) + la.norm(x, 1), (N(B, 3, 2),), (0,)),
    Case("norm/matrix", lambda x: la.norm(x, 2) + la.norm(x, "nuc"), (SEP(B),), (0,)),
    Case(
        "matrix_power/multi_dot",
        lambda a: la.matrix_power(a, 3) + la.multi_dot([a, a, a]),
        (N(B, 2, 2),),
        (0,),
    ),
    # scipy.special
    Case(
        "logsumexp",
        lambda x: special.logsumexp(x, axis=1) + special.logsumexp(x),
        (N(B, 2, 3),),
        (0,),
    ),
    Case(
        "logsumexp/b", lambda x, b: special.logsumexp(x, b=b, axis=0), (N(B, 2, 3), U(3)), (0, None)
    ),
    Case("softmax", lambda x: special.softmax(x, axis=0) + special.softmax(x), (N(B, 2, 3),), (0,)),
    Case("log_softmax", lambda x: special.log_softmax(x, axis=1), (N(B, 2, 3),), (0,)),
    Case(
        "polygamma",
        lambda x: special.polygamma(1, x) + special.polygamma(onp.array([0, 2]), x),
        (U(B, 2),),
        (0,),
    ),
    # scipy.linalg
    Case(
        "sla.solve/cho",
        lambda a, b: sla.solve(a, b, assume_a="pos") + sla.cho_solve(sla.cho_factor(a), b),
        (SPD(B), N(B, 3)),
        (0, 0),
    ),
    Case(
        "sla.lu",
        lambda a: sla.lu(a)[2] + sla.lu_solve(sla.lu_factor(a), onp.ones(3)),
        (GEN(B),),
        (0,),
    ),
    Case(
        "sla.eigh",
        lambda a: sla.eigh(a)[0] + sla.eigvalsh(a) + sla.eigh(a)[1][0] ** 2,
        (SEP(B),),
        (0,),
    ),
    Case(
        "sla.svd", lambda a: sla.svd(a)[1] + sla.svdvals(a) + sla.svd(a)[0][0] ** 2, (SEP(B),), (0,)
    ),
    Case("sla.qr/full", lambda a: sla.qr(a)[0] ** 2, (N(B, 3, 2),), (0,)),
    Case("sla.expm", lambda a: sla.expm(0.3 * a), (N(B, 3, 3),), (0,)),
    Case(
        "sla.expm_frechet",
        lambda a, e: sla.expm_frechet(0.3 * a, e)[1],
        (N(B, 3, 3), N(3, 3)),
        (0, None),
    ),
    # scipy.sparse
    Case(
        "sparse matvec/todense",
        lambda v, x: _sparse_matvec(v, x) + _sparse_system(v).toarray()[0],
        (N(B, 5), N(3)),
        (0, None),
    ),
    Case(
        "sparse spsolve",
        lambda v, b: spla.spsolve(_sparse_system(v), b),
        (U(B, 5), N(B, 3)),
        (0, 0),
    ),
    Case(
        "sparse cg",
        lambda v, b: spla.cg(_sparse_system(0.3 * v).T @ _sparse_system(0.3 * v), b, rtol=1e-13)[0],
        (U(B, 5), N(3)),
        (0, None),
    ),
    Case("sparse LinearOperator cg", _op_solve, (U(B, 3, low=1.0, high=2.0), N(3)), (0, None)),
    Case(
        "sparse expm_multiply",
        lambda v, b: spla.expm_multiply(_sparse_system(0.2 * v), b),
        (N(B, 5), N(B, 3)),
        (0, 0),
    ),
]

CASES = _elementwise_cases() + STRUCTURAL
_IDS = [c.name for c in CASES]
assert len(set(_IDS)) == len(_IDS), "case names must be unique"

#: Primitives processed by the batching trace during the table-driven tests, and the names
#: of the cases that ran (the coverage test below judges only a complete run).
BATCHED: set[str] = set()
RAN: set[str] = set()


#: Cases whose function needs concrete per-example values (a public function or rule that
#: inspects values), so vmap maps them by a loop over the batch; no other case may loop.
MAY_LOOP = {
    "sort/median": "median checks for NaNs on concrete values",
    "sla.lu": "scipy.linalg.lu reads its pivots",
    "sla.qr/full": "the completion of Q is computed from the value",
    "sparse spsolve": "the sparse factorization is computed from the values",
}


@pytest.fixture
def recording(monkeypatch):
    """Records the primitives batched; returns the list of whole-function loop fallbacks."""
    original = BatchTrace.process
    loops: list = []
    original_loop = batching._loop_call

    def process(self, prim, args, params):
        BATCHED.add(prim.name)
        return original(self, prim, args, params)

    def loop_call(*args, **kwargs):
        loops.append(1)
        return original_loop(*args, **kwargs)

    monkeypatch.setattr(BatchTrace, "process", process)
    monkeypatch.setattr(batching, "_loop_call", loop_call)
    return loops


def _last(case: Case) -> tuple[tuple, tuple]:
    """The case's arguments with the batch axis moved last, and the matching in_axes."""
    args = tuple(
        a if ax is None else onp.moveaxis(a, ax, -1)
        for a, ax in zip(case.args, case.in_axes, strict=True)
    )
    return args, tuple(None if ax is None else -1 for ax in case.in_axes)


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_vmap_matches_loop(case, recording):
    RAN.add(case.name)
    got = vmap(case.f, in_axes=case.in_axes)(*case.args)
    assert not recording or case.name in MAY_LOOP, "vmap looped over the batch"
    expected = loop(case.f, case.args, case.in_axes)
    assert_close(got, expected)
    args, in_axes = _last(case)
    assert_close(vmap(case.f, in_axes=in_axes)(*args), expected)
    if case.diff:
        _check_derivatives(case)


def _check_derivatives(case: Case) -> None:
    """``vmap(grad(f))`` and ``grad(vmap(f))`` against loops of ``grad(f)``."""
    nums = tuple(
        i
        for i, (a, ax) in enumerate(zip(case.args, case.in_axes, strict=True))
        if onp.asarray(a).dtype.kind == "f" and (ax is not None or i == 0)
    )
    per_entry = sg.grad(lambda *a: _scalar(case.f(*a)), argnums=nums)
    expected = loop(per_entry, case.args, case.in_axes)
    assert_close(vmap(per_entry, in_axes=case.in_axes)(*case.args), expected, rtol=1e-7)
    total = sg.grad(lambda *a: _scalar(vmap(case.f, in_axes=case.in_axes)(*a)), argnums=nums)
    summed = tuple(
        e if case.in_axes[i] is not None else onp.sum(e, axis=0)
        for i, e in zip(nums, expected, strict=True)
    )
    assert_close(total(*case.args), summed, rtol=1e-7)


#: Library primitives exercised by no case above, with the reason.
NOT_EXERCISED = {
    "nonzero": "its output length depends on the values: refused (test_errors)",
    "orth_complement": "scipy.linalg.qr(mode='full') reads values: vmap loops (MAY_LOOP)",
    "sparse_lu_solve": "spsolve factorizes the values: vmap loops (MAY_LOOP)",
}

#: Differentiable primitives batched deliberately by the loop fallback (no rule of their own).
FALLBACK = {
    "cho_solve": "scipy.linalg: rare outside a factorization reused per matrix",
    "expm": "scipy.linalg.expm: one Pade scaling per matrix",
    "expm_frechet": "scipy.linalg.expm_frechet: one Pade scaling per matrix",
    "orth_complement": "scipy.linalg.qr(mode='full') completion: value-dependent",
    "scipy_eigh": "scipy.linalg.eigh: LAPACK driver per matrix",
    "scipy_eigvalsh": "scipy.linalg.eigvalsh: LAPACK driver per matrix",
    "scipy_lu": "scipy.linalg.lu: per matrix",
    "scipy_svd": "scipy.linalg.svd: per matrix",
    "scipy_svdvals": "scipy.linalg.svdvals: per matrix",
    "sparse_matmul": "sparse: a pattern per matrix",
    "sparse_todense": "sparse: a pattern per matrix",
    "sparse_scatter_entries": "sparse: a pattern per matrix",
    "sparse_lu_solve": "sparse: one factorization per matrix",
    "sparse_iterative_solve": "sparse: one iteration per system",
    "operator_iterative_solve": "sparse: one iteration per system",
    "expm_multiply": "sparse: one Krylov/Taylor scaling per system",
    "expm_multiply_adjoint": "sparse: one Krylov/Taylor scaling per system",
}


def test_every_differentiable_primitive_has_a_batching_rule():
    """A rule of its own, the broadcasting rule, or a deliberate fallback entry above."""
    missing = sorted(
        name
        for name, p in LIBRARY_PRIMITIVES.items()
        if not p.nondiff
        and p.batch is None
        and p.shape_rule not in BROADCASTING_SHAPE_RULES
        and name not in FALLBACK
    )
    assert not missing, f"differentiable primitives without a batching rule: {missing}"
    stale = sorted(n for n in FALLBACK if n in LIBRARY_PRIMITIVES and LIBRARY_PRIMITIVES[n].batch)
    assert not stale, f"FALLBACK lists primitives that have a rule now: {stale}"


def test_every_primitive_is_batched_by_a_case():
    if RAN != set(_IDS):
        pytest.skip("run every case of this module to judge coverage")
    missing = sorted(set(LIBRARY_PRIMITIVES) - BATCHED - set(NOT_EXERCISED))
    assert not missing, f"library primitives no vmap case exercises: {missing}"


# -- in_axes, out_axes and pytrees -------------------------------------------------------------
def test_in_axes_none_negative_and_kwargs():
    x, w = N(4, 3), N(3)

    def f(x, w, *, scale):
        return np.sum(x * w) * scale

    out = vmap(f, in_axes=(0, None))(x, w, scale=onp.arange(4.0))
    assert_close(out, onp.array([onp.sum(x[i] * w) * i for i in range(4)]))
    assert_close(vmap(f, in_axes=[-1, None])(x.T, w, scale=onp.ones(4)), onp.sum(x * w, axis=1))


def test_pytree_prefixes_in_and_out():
    params = {"a": N(3, 2), "b": N(2)}
    xs = N(3, 2)

    def f(p, x):
        return {"y": p["a"] * x + p["b"], "n": np.sum(p["b"])}, (x, 2.0)

    out = vmap(f, in_axes=({"a": 0, "b": None}, 0), out_axes=({"y": 1, "n": None}, 0))(params, xs)
    (d, (xx, two)) = out
    assert_close(d["y"], (params["a"] * xs + params["b"]).T)
    assert_close(d["n"], onp.sum(params["b"]))
    assert_close(xx, xs)
    assert_close(two, onp.full(3, 2.0))  # unbatched outputs are broadcast


def test_out_axes_negative_and_unbatched_outputs():
    x = N(4, 2, 3)
    out = vmap(lambda x: (x, np.ones(2)), out_axes=-1)(x)
    assert_close(out[0], onp.moveaxis(x, 0, -1))
    assert_close(out[1], onp.ones((2, 4)))
    out = vmap(lambda x: x.sum(), in_axes=None, axis_size=3)(x)
    assert_close(out, onp.full(3, x.sum()))


def test_none_leaves_and_registered_classes():
    @sg.register_dataclass
    @dataclasses.dataclass
    class P:
        w: Any
        b: Any

    p = P(N(3, 2), N(3))
    out = vmap(lambda p, opt: np.sum(p.w) + p.b if opt is None else 0.0, in_axes=(0, None))(p, None)
    assert_close(out, p.w.sum(axis=1) + p.b)


def test_returned_function_exposes_fun_and_axes():
    def f(x):
        """doc"""
        return x

    g = vmap(f, in_axes=(1,), out_axes=0)
    assert g.__wrapped__ is f and g.in_axes == (1,) and g.out_axes == 0
    assert g.__name__ == "f" and g.__doc__ == "doc"


# -- nested transformations --------------------------------------------------------------------
def _f(x):
    return np.sum(np.sin(x) * x[::-1]) + np.prod(x[:2]) + x[0] ** 3


def test_vmap_of_vmap():
    X = N(3, 4, 5)
    assert_close(vmap(vmap(_f))(X), onp.array([[_f(x) for x in row] for row in X]))
    got = vmap(vmap(lambda a, b: a @ b, in_axes=(None, 0)), in_axes=(0, None))(N(2, 3), N(4, 3))
    assert got.shape == (2, 4)


def test_nested_derivatives_match_loops():
    X = N(3, 4)
    for t in (sg.grad, sg.jacrev, sg.jacfwd, sg.hessian):
        assert_close(vmap(t(_f))(X), loop(t(_f), (X,), (0,)), rtol=1e-8)
    jf = sg.jacfwd(vmap(_f))(X)
    jr = sg.jacrev(vmap(_f))(X)
    full = onp.zeros((3, 3, 4))
    for i, x in enumerate(X):
        full[i, i] = sg.grad(_f)(x)
    assert_close(jf, full)
    assert_close(jr, full)
    assert_close(sg.grad(lambda X: np.sum(vmap(_f)(X)))(X), full.sum(axis=0))
    assert_close(sg.hessian(lambda x: np.sum(vmap(_f)(x)))(X).shape, (3, 4, 3, 4))
    sg.check_grads(vmap(_f), (X,), order=2)
    sg.check_grads(lambda x: vmap(sg.grad(_f))(x), (X,), order=1)


def _scaled(scale: float):
    @sg.custom_vjp
    def f(x, y):
        return np.sin(x) * y

    f.defvjp(
        lambda x, y: (f(x, y), (x, y)),
        lambda r, g: (scale * g * np.cos(r[0]) * r[1], g * np.sin(r[0])),
    )
    return f


def test_custom_vjp_rule_is_used_in_every_order():
    f = _scaled(3.0)
    X, y = N(4, 2), N(2)
    per = sg.grad(lambda x, y: np.sum(f(x, y)), argnums=(0, 1))
    expected = loop(per, (X, y), (0, None))
    assert_close(vmap(per, in_axes=(0, None))(X, y), expected)
    total = sg.grad(lambda X, y: np.sum(vmap(f, in_axes=(0, None))(X, y)), argnums=(0, 1))(X, y)
    assert_close(total, (expected[0], expected[1].sum(axis=0)))
    assert_close(total[0], 3.0 * onp.cos(X) * y)  # the scaled rule, not the function's derivative
    # forward mode differentiates the function itself, batched or not
    assert_close(
        sg.jacfwd(lambda x: vmap(f, in_axes=(0, None))(x, y))(X).sum((0, 1)), onp.cos(X) * y
    )
    assert_close(
        vmap(sg.hessian(lambda x: np.sum(f(x, y))))(X),
        loop(sg.hessian(lambda x: np.sum(f(x, y))), (X,), (0,)),
    )


def test_custom_jvp_rule_is_used_in_every_order():
    @sg.custom_jvp
    def f(x):
        return np.log1p(np.exp(x))

    @f.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), 2.0 * t / (1 + np.exp(-x))  # deliberately doubled

    X = N(3, 2)
    want = 2.0 / (1 + onp.exp(-X))
    assert_close(vmap(sg.grad(lambda x: np.sum(f(x))))(X), want)
    assert_close(sg.grad(lambda x: np.sum(vmap(f)(x)))(X), want)
    assert_close(sg.jacfwd(lambda x: vmap(f)(x))(X).sum((0, 1)), want)
    assert_close(vmap(f)(X), onp.log1p(onp.exp(X)))


# -- fallbacks ------------------------------------------------------------------------------
def test_primitive_without_a_rule_is_looped_with_its_derivatives():
    cube = Primitive("test_vmap_cube", lambda x: x**3 + 0.0 * x.sum(), shape=lambda x: x)
    cube.defjvp(lambda t, ans, x: 3 * x**2 * t)
    cube.defvjp(lambda g, ans, x: 3 * x**2 * g)
    X = N(4, 3)
    assert_close(vmap(cube.bind)(X), X**3)
    assert_close(vmap(sg.grad(lambda x: np.sum(cube.bind(x))))(X), 3 * X**2)
    assert_close(sg.grad(lambda x: np.sum(vmap(cube.bind)(x)))(X), 3 * X**2)
    assert vmap(cube.bind)(onp.zeros((0, 3))).shape == (0, 3)


def test_python_control_flow_on_batched_values_loops():
    def f(x):
        if np.sum(x) > 0:  # a concrete value per entry: vmap loops over the batch
            return x * 2.0
        return -x

    X = N(5, 3)
    assert_close(vmap(f)(X), loop(f, (X,), (0,)))
    assert_close(
        vmap(sg.grad(lambda x: np.sum(f(x))))(X), loop(sg.grad(lambda x: np.sum(f(x))), (X,), (0,))
    )
    # sg.cond needs no loop: both branches, selected per entry
    g = lambda x: sg.cond(np.sum(x) > 0, lambda v: v * 2.0, lambda v: -v, x)  # noqa: E731
    assert_close(vmap(g)(X), loop(f, (X,), (0,)))


def test_batched_indices_and_numpy_conversions_loop():
    X, idx = N(4, 3), onp.array([[0, 1], [3, 3], [2, 0]])
    gather = vmap(lambda x, i: x[i], in_axes=(None, 0))
    assert_close(gather(X, idx), X[idx])
    assert_close(
        sg.grad(lambda X: np.sum(gather(X, idx) ** 2))(X), sg.grad(lambda X: np.sum(X[idx] ** 2))(X)
    )
    # plain NumPy on a mapped value: one entry at a time
    assert_close(vmap(lambda x: float(np.sum(x)) * onp.asarray(x))(X), X.sum(1)[:, None] * X)
    # ... but never at the price of a derivative
    with pytest.raises(TypeError, match="drop its derivative"):
        sg.grad(lambda X: np.sum(vmap(lambda x: float(np.sum(x)) * x)(X)))(X)


def test_batch_cost_does_not_grow_with_the_batch(monkeypatch):
    """One call per primitive for a whole batch (no hidden loop on the hot path)."""

    def rosen(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    calls = []
    original = BatchTrace.process

    def process(self, prim, args, params):
        calls.append(prim.name)
        return original(self, prim, args, params)

    monkeypatch.setattr(BatchTrace, "process", process)
    g = vmap(sg.grad(rosen))
    counts = []
    for n in (2, 50):
        calls.clear()
        X = N(n, 6)
        assert_close(g(X), loop(sg.grad(rosen), (X,), (0,)))
        counts.append(len(calls))
    assert counts[0] == counts[1]


# -- hypothesis: random batch sizes and shapes on core operations ------------------------------
@given(
    shape=shapes(0, 3),
    batch=st.integers(1, 4),
    axis=st.integers(0, 3),
    data=st.data(),
)
def test_random_shapes_elementwise_and_reductions(shape, batch, axis, data):
    axis = min(axis, len(shape))
    full = shape[:axis] + (batch,) + shape[axis:]
    x = data.draw(arrays(full, 0.1, 2.0))
    y = data.draw(arrays(shape[-1:] if shape else (), 0.1, 2.0))

    def f(x, y):
        z = np.exp(-x) * y + np.sqrt(x) / (1.0 + y)
        return np.sum(z, axis=0) if z.ndim else z, np.max(z), z.T

    assert_close(vmap(f, in_axes=(axis, None))(x, y), loop(f, (x, y), (axis, None)))
    g = sg.grad(lambda x, y: np.sum(f(x, y)[0]) + f(x, y)[1])
    assert_close(vmap(g, in_axes=(axis, None))(x, y), loop(g, (x, y), (axis, None)), rtol=1e-8)


@given(
    m=st.integers(1, 3),
    k=st.integers(1, 3),
    n=st.integers(1, 3),
    batch=st.integers(1, 3),
    kinds=st.sampled_from(["mv", "vm", "mm", "vv"]),
    which=st.sampled_from([(0, 0), (0, None), (None, 0)]),
    data=st.data(),
)
def test_random_shapes_matmul(m, k, n, batch, kinds, which, data):
    sa = {"mv": (m, k), "vm": (k,), "mm": (m, k), "vv": (k,)}[kinds]
    sb = {"mv": (k,), "vm": (k, n), "mm": (k, n), "vv": (k,)}[kinds]
    a = data.draw(arrays((batch, *sa) if which[0] == 0 else sa))
    b = data.draw(arrays((batch, *sb) if which[1] == 0 else sb))
    f = lambda a, b: np.matmul(a, b)  # noqa: E731
    assert_close(vmap(f, in_axes=which)(a, b), loop(f, (a, b), which))


@given(shape=shapes(1, 3), batch=st.integers(1, 4), axis=st.integers(0, 3), data=st.data())
def test_random_shapes_structural(shape, batch, axis, data):
    axis = min(axis, len(shape))
    x = data.draw(arrays(shape[:axis] + (batch,) + shape[axis:]))
    c = data.draw(arrays(shape))

    def f(x, c):
        y = np.concatenate([x, c * x], axis=-1).T.reshape(-1)
        z = np.stack([x[..., ::-1], x[..., :1] + c], axis=0)[:, [0, -1]]
        return y[1:] * 2.0, np.moveaxis(z, 0, -1), np.at(z)[0].add(1.0)

    assert_close(vmap(f, in_axes=(axis, None))(x, c), loop(f, (x, c), (axis, None)))
    g = sg.grad(lambda x, c: _scalar(f(x, c)), argnums=(0, 1))
    per = loop(g, (x, c), (axis, None))
    assert_close(vmap(g, in_axes=(axis, None))(x, c), per)


# -- errors --------------------------------------------------------------------------------
def test_errors():
    def f(x, y):
        return x + y

    with pytest.raises(
        ValueError, match=r"(?s)inconsistent sizes.*argument 'x'.*size 3.*argument 'y'"
    ):
        vmap(f)(onp.ones(3), onp.ones(4))
    with pytest.raises(ValueError, match=r"in_axes has 3 entries but .* 2 positional"):
        vmap(f, in_axes=(0, 0, 0))(onp.ones(3), onp.ones(3))
    with pytest.raises(ValueError, match=r"in_axes for argument 'x' must be a tree prefix"):
        vmap(f, in_axes=({"a": 0}, 0))(onp.ones(3), onp.ones(3))
    with pytest.raises(ValueError, match=r"no argument is mapped.*axis_size"):
        vmap(f, in_axes=None)(onp.ones(3), onp.ones(3))
    with pytest.raises(ValueError, match=r"argument 'y' is mapped along axis 1.*shape \(3,\)"):
        vmap(f, in_axes=(0, 1))(onp.ones(3), onp.ones(3))
    with pytest.raises(ValueError, match=r"out_axes is None for the output.*batch axis"):
        vmap(f, out_axes=None)(onp.ones(3), onp.ones(3))
    with pytest.raises(ValueError, match=r"axis_size=5"):
        vmap(f, axis_size=5)(onp.ones(3), onp.ones(3))
    with pytest.raises(TypeError, match=r"argument 'y' is mapped .* not an array \(str\)"):
        vmap(f)(onp.ones(3), "s")
    with pytest.raises(TypeError, match=r"in_axes must be an int, None, or a tuple"):
        vmap(f, in_axes="0")
    with pytest.raises(ValueError, match=r"nonzero .* cannot be batched"):
        vmap(lambda x: np.nonzero(x)[0])(onp.eye(3))
    with pytest.raises(ValueError, match=r"different shapes"):
        vmap(lambda x: x[x > 0] if np.sum(x) > -1e9 else x)(onp.array([[1.0, -1.0], [1.0, 1.0]]))


def test_escaped_batch_tracer_is_refused():
    leaked = []
    vmap(lambda x: leaked.append(x) or x)(onp.ones(3))
    assert isinstance(leaked[0], BatchTracer)
    with pytest.raises(RuntimeError, match="escaped"):
        leaked[0] + 1.0
