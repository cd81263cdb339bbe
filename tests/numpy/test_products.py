"""Products: matmul, dot, vdot, inner, outer, tensordot, einsum, trace, kron, cross.

Values against NumPy, derivatives against finite differences (second order, both modes),
random compatible shapes with hypothesis, and NumPy's errors for bad shapes.
"""

from __future__ import annotations

import warnings

import numpy as onp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scigrad as sg
import scigrad.numpy as snp
from scigrad.numpy import _products as P
from tests.strategies import arrays

# Until scigrad.numpy re-exports the module, the operator/method tests need the export.
_exported = "matmul" in snp.__all__ and "einsum" in snp.__all__
needs_export = pytest.mark.skipif(not _exported, reason="scigrad.numpy does not export _products")


def _r(rng, *shape):
    return rng.standard_normal(shape)


# -- matmul ---------------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (3, 2)),
    ((2, 3), (3, 4)),
    ((4, 2, 3), (3, 2)),
    ((2, 3), (4, 3, 2)),
    ((4, 1, 2, 3), (3, 3, 2)),
    ((3,), (4, 3, 2)),
    ((4, 2, 3), (3,)),
    ((1, 2, 3), (4, 3, 1)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul(sa, sb, rng):
    a, b = _r(rng, *sa), _r(rng, *sb)
    onp.testing.assert_allclose(P.matmul(a, b), onp.matmul(a, b))
    sg.check_grads(P.matmul, (a, b), order=2)


def test_matmul_wrt_one_argument_and_mixed_constants(rng):
    a, b = _r(rng, 3, 4), _r(rng, 4)
    sg.check_grads(lambda a: P.matmul(a, b), (a,), order=2)
    sg.check_grads(lambda b: P.matmul(a, b), (b,), order=2)
    # the second derivative of a bilinear form: mixed partials
    sg.check_grads(lambda a, b: P.matmul(a, b) ** 2, (a, b), order=2)
    ints = onp.arange(12).reshape(3, 4)
    onp.testing.assert_array_equal(P.matmul(ints, ints.T), ints @ ints.T)
    sg.check_grads(lambda b: P.matmul(ints, b), (b,), order=2)


@st.composite
def matmul_operands(draw):
    (batch_a, batch_b), _ = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)
    )
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    vec_a, vec_b = draw(st.booleans()), draw(st.booleans())
    sa = (k,) if vec_a else (*batch_a, m, k)
    sb = (k,) if vec_b else (*batch_b, k, n)
    return draw(arrays(sa)), draw(arrays(sb))


@given(operands=matmul_operands())
def test_matmul_random_shapes(operands):
    a, b = operands
    onp.testing.assert_allclose(P.matmul(a, b), onp.matmul(a, b))
    sg.check_grads(P.matmul, (a, b), order=2)


def test_matmul_errors():
    with pytest.raises(ValueError, match="mismatch"):
        P.matmul(onp.ones((2, 3)), onp.ones((2, 3)))
    with pytest.raises(ValueError, match="mismatch"):
        sg.grad(lambda a: snp.sum(P.matmul(a, onp.ones((2, 3)))))(onp.ones((2, 3)))
    with pytest.raises(ValueError, match="enough dimensions"):
        P.matmul(onp.ones(3), 2.0)
    with pytest.raises(ValueError, match="mismatch"):
        sg.eval_shape(P.matmul, onp.ones((2, 3)), onp.ones(2))


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul_shape_rule(sa, sb):
    out = sg.eval_shape(P.matmul, onp.ones(sa), onp.ones(sb, dtype=onp.float32))
    assert out.shape == onp.matmul(onp.ones(sa), onp.ones(sb)).shape
    assert out.dtype == onp.float64


@needs_export
def test_matmul_operator_on_traced_values(rng):
    w, x = _r(rng, 3, 4), _r(rng, 4)
    sg.check_grads(lambda w, x: snp.tanh(w @ x) @ (x @ w.T), (w, x), order=2)
    # plain array @ traced value goes through NumPy's dispatch
    sg.check_grads(lambda x: w @ x, (x,), order=2)
    g = sg.grad(lambda w: snp.sum(w @ x))(w)
    onp.testing.assert_allclose(g, onp.outer(onp.ones(3), x))


# -- dot, vdot, inner, outer ----------------------------------------------------------------
DOT_SHAPES = [
    ((), ()),
    ((), (3,)),
    ((2, 3), ()),
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (3, 2)),
    ((2, 3), (3, 4)),
    ((4, 2, 3), (3, 2)),
    ((2, 3), (4, 3, 2)),
    ((3,), (4, 3, 2)),
    ((2, 2, 3), (4, 3, 2)),
]


@pytest.mark.parametrize("sa,sb", DOT_SHAPES, ids=str)
def test_dot(sa, sb, rng):
    a, b = _r(rng, *sa), _r(rng, *sb)
    onp.testing.assert_allclose(P.dot(a, b), onp.dot(a, b))
    sg.check_grads(P.dot, (a, b), order=2)


@given(data=st.data())
def test_dot_random_shapes(data):
    na, nb = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    sa = data.draw(hnp.array_shapes(min_dims=na, max_dims=na, min_side=1, max_side=3))
    sb = list(data.draw(hnp.array_shapes(min_dims=nb, max_dims=nb, min_side=1, max_side=3)))
    if na and nb:
        sb[0 if nb == 1 else -2] = sa[-1]
    a, b = data.draw(arrays(sa)), data.draw(arrays(tuple(sb)))
    onp.testing.assert_allclose(P.dot(a, b), onp.dot(a, b), atol=1e-12)
    sg.check_grads(P.dot, (a, b), order=2)


def test_vdot_inner_outer(rng):
    a, b = _r(rng, 2, 3), _r(rng, 3, 2)
    onp.testing.assert_allclose(P.vdot(a, b), onp.vdot(a, b))
    sg.check_grads(P.vdot, (a, b), order=2)
    for sa, sb in [((3,), (3,)), ((2, 3), (4, 3)), ((3,), (2, 3)), ((2, 3), (3,)), ((), (2,))]:
        x, y = _r(rng, *sa), _r(rng, *sb)
        onp.testing.assert_allclose(P.inner(x, y), onp.inner(x, y))
        sg.check_grads(P.inner, (x, y), order=2)
    x, y = _r(rng, 2, 2), _r(rng, 3)
    onp.testing.assert_allclose(P.outer(x, y), onp.outer(x, y))
    sg.check_grads(P.outer, (x, y), order=2)


def test_dot_family_errors():
    with pytest.raises(ValueError, match="not aligned"):
        P.dot(onp.ones((2, 3)), onp.ones((2, 3)))
    with pytest.raises(ValueError, match="not aligned"):
        P.inner(onp.ones((2, 3)), onp.ones((2, 4)))
    with pytest.raises(ValueError, match="different sizes"):
        P.vdot(onp.ones((2, 3)), onp.ones(4))


@needs_export
def test_dot_method_and_numpy_dispatch(rng):
    a, b = _r(rng, 3, 3), _r(rng, 3)
    sg.check_grads(lambda a, b: a.dot(b) + onp.dot(a, b) + onp.einsum("ij,j", a, b), (a, b))
    sg.check_grads(lambda a: a.trace() + onp.trace(a, 1), (a,), order=2)


# -- tensordot --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sa,sb,axes",
    [
        ((3, 4, 2), (4, 2, 3), 2),
        ((3, 2), (2, 3), 1),
        ((2, 3), (4,), 0),
        ((3, 4, 2), (4, 3, 2), ([0, 1], [1, 0])),
        ((3, 4, 2), (2, 4), ([-1], [0])),
        ((3, 2), (2, 3), (1, 0)),
        ((2, 3), (2, 3), ([0, 1], [0, 1])),
    ],
    ids=str,
)
def test_tensordot(sa, sb, axes, rng):
    a, b = _r(rng, *sa), _r(rng, *sb)
    onp.testing.assert_allclose(P.tensordot(a, b, axes), onp.tensordot(a, b, axes))
    sg.check_grads(lambda a, b: P.tensordot(a, b, axes), (a, b), order=2)


@given(data=st.data())
def test_tensordot_random_axes(data):
    sa = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    ncon = data.draw(st.integers(0, len(sa)))
    axes_a = data.draw(st.permutations(range(len(sa))))[:ncon]
    free_b = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    nb = ncon + len(free_b)
    axes_b = data.draw(st.permutations(range(nb)))[:ncon]
    sb = [0] * nb
    for i, j in zip(axes_a, axes_b, strict=True):
        sb[j] = sa[i]
    rest = iter(free_b)
    sb = tuple(s if j in axes_b else next(rest) for j, s in enumerate(sb))
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    axes = (list(axes_a), list(axes_b))
    onp.testing.assert_allclose(P.tensordot(a, b, axes), onp.tensordot(a, b, axes), atol=1e-12)
    sg.check_grads(lambda a, b: P.tensordot(a, b, axes), (a, b), order=2)


def test_tensordot_errors():
    with pytest.raises(ValueError, match="shape-mismatch"):
        P.tensordot(onp.ones((2, 3)), onp.ones((2, 3)), axes=([1], [0]))
    with pytest.raises(ValueError, match="shape-mismatch"):
        P.tensordot(onp.ones((2, 3)), onp.ones((2, 3)), axes=([1], [1, 0]))
    with pytest.raises(onp.exceptions.AxisError):
        P.tensordot(onp.ones((2, 3)), onp.ones((3, 2)), axes=([2], [0]))
    with pytest.raises(ValueError, match="out of range"):
        P.tensordot(onp.ones((2, 3)), onp.ones((3, 2)), axes=3)


# -- einsum ---------------------------------------------------------------------------------
EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ij,ij->", [(2, 3), (2, 3)]),
    ("i,j->ij", [(2,), (3,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ijk->kj", [(2, 3, 2)]),
    ("ij,k->ik", [(2, 3), (4,)]),  # j summed, k broadcast: both absent elsewhere
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iii->i", [(2, 2, 2)]),
    ("iij->j", [(3, 3, 2)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ij,ii->j", [(3, 2), (3, 3)]),
    ("...ij,...jk->...ik", [(4, 2, 3), (3, 2)]),
    ("...ij,...jk", [(2, 1, 2, 3), (3, 3, 2)]),
    ("i...->...", [(2, 3, 2)]),
    ("...,...->...", [(2, 1), (3,)]),
    ("i,i->i", [(1,), (3,)]),
    ("Ab,bC->AC", [(2, 3), (3, 2)]),
    ("bA", [(2, 3)]),
    (",i->i", [(), (3,)]),
]


@pytest.mark.parametrize("subscripts,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(subscripts, shapes, rng):
    ops = [_r(rng, *s) for s in shapes]
    onp.testing.assert_allclose(P.einsum(subscripts, *ops), onp.einsum(subscripts, *ops))
    sg.check_grads(lambda *ops: P.einsum(subscripts, *ops), ops, order=2)
    out = sg.eval_shape(lambda *ops: P.einsum(subscripts, *ops), *ops)
    assert out.shape == onp.einsum(subscripts, *ops).shape


def test_einsum_same_operand_twice_and_optimize(rng):
    x, y, z = _r(rng, 3, 3), _r(rng, 3, 2), _r(rng, 2, 4)
    sg.check_grads(lambda x: P.einsum("ij,jk,ki->", x, x, x), (x,), order=2)
    f = lambda x, y, z: P.einsum("ij,jk,kl->il", x, y, z, optimize=True)  # noqa: E731
    onp.testing.assert_allclose(f(x, y, z), x @ y @ z)
    sg.check_grads(f, (x, y, z), order=2)


def test_einsum_interleaved_form(rng):
    a, b = _r(rng, 2, 3), _r(rng, 3, 4)
    want = onp.einsum(a, [0, 1], b, [1, 2], [0, 2])
    onp.testing.assert_allclose(P.einsum(a, [0, 1], b, [1, 2], [0, 2]), want)
    c = _r(rng, 2, 2, 3)
    onp.testing.assert_allclose(P.einsum(c, [Ellipsis, 1]), onp.einsum(c, [Ellipsis, 1]))
    sg.check_grads(lambda a, b: P.einsum(a, [0, 1], b, [1, 2]), (a, b), order=2)


@st.composite
def einsum_specs(draw):
    """Random subscripts (repeated letters within an operand included, optionally with
    broadcast ``...`` dimensions) and matching random operands."""
    letters = "abcde"
    sizes = {c: draw(st.integers(1, 3)) for c in letters}
    n_ops = draw(st.integers(1, 3))
    terms = ["".join(draw(st.lists(st.sampled_from(letters), max_size=3))) for _ in range(n_ops)]
    used = sorted(set("".join(terms)))
    out = "".join(draw(st.permutations(used))[: draw(st.integers(0, len(used)))])
    batch = [()] * n_ops
    if draw(st.booleans()):
        batch = draw(
            hnp.mutually_broadcastable_shapes(num_shapes=n_ops, max_dims=2, max_side=3)
        ).input_shapes
        terms = ["..." + t for t in terms]
        out = "..." + out
    ops = [
        draw(arrays(b + tuple(sizes[c] for c in t.strip("."))))
        for t, b in zip(terms, batch, strict=True)
    ]
    return ",".join(terms) + "->" + out, ops


@given(spec=einsum_specs())
def test_einsum_random_subscripts(spec):
    subscripts, ops = spec
    onp.testing.assert_allclose(
        P.einsum(subscripts, *ops), onp.einsum(subscripts, *ops), atol=1e-12
    )
    sg.check_grads(lambda *ops: P.einsum(subscripts, *ops), ops, order=2)


@pytest.mark.parametrize(
    "subscripts,shapes,match",
    [
        ("ij,jk->ik", [(2, 3), (4, 4)], "broadcast"),
        ("ij,jk->ii", [(2, 3), (3, 4)], "multiple times"),
        ("ij,jk->iz", [(2, 3), (3, 4)], "never appeared"),
        ("ijk", [(2, 3)], "too many subscripts"),
        ("i", [(2, 3)], "too few subscripts"),
        ("ij,jk", [(2, 3)], "2 operands but 1"),
        ("i->i->i", [(2,)], "more than one"),
        ("i1", [(2, 3)], "invalid"),
        ("...i->i", [(2, 3)], "no '...'"),
    ],
)
def test_einsum_errors(subscripts, shapes, match):
    with pytest.raises(ValueError, match=match):
        P.einsum(subscripts, *[onp.ones(s) for s in shapes])


# -- trace, kron, cross ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,offset,axis1,axis2",
    [
        ((3, 3), 0, 0, 1),
        ((3, 4), 1, 0, 1),
        ((4, 3), -2, 0, 1),
        ((2, 3, 4), 1, 2, 0),
        ((2, 3, 3), 0, -1, 1),
    ],
    ids=str,
)
def test_trace(shape, offset, axis1, axis2, rng):
    a = _r(rng, *shape)
    f = lambda a: P.trace(a, offset, axis1, axis2)  # noqa: E731
    onp.testing.assert_allclose(f(a), onp.trace(a, offset, axis1, axis2))
    sg.check_grads(lambda a: f(a) * f(a), (a,), order=2)
    assert sg.eval_shape(f, a).shape == onp.trace(a, offset, axis1, axis2).shape


def test_trace_errors():
    with pytest.raises(ValueError, match="at least two dimensions"):
        P.trace(onp.ones(3))
    with pytest.raises(ValueError, match="cannot be the same"):
        P.trace(onp.ones((3, 3)), axis1=1, axis2=-1)
    with pytest.raises(onp.exceptions.AxisError):
        P.trace(onp.ones((3, 3)), axis1=2)


@pytest.mark.parametrize("sa,sb", [((2,), (3,)), ((2, 3), (3, 2)), ((2,), (2, 3)), ((), (2,))])
def test_kron(sa, sb, rng):
    a, b = _r(rng, *sa), _r(rng, *sb)
    onp.testing.assert_allclose(P.kron(a, b), onp.kron(a, b))
    sg.check_grads(P.kron, (a, b), order=2)


@pytest.mark.parametrize(
    "sa,sb,kw",
    [
        ((3,), (3,), {}),
        ((4, 3), (3,), {}),
        ((2, 1, 3), (4, 3), {}),
        ((3, 2), (2, 3), {"axisa": 0, "axisc": 0}),
        ((2, 3), (2, 3), {"axis": 1}),
        ((2,), (3,), {}),
        ((3,), (2,), {}),
        ((4, 2), (4, 2), {}),
    ],
    ids=str,
)
def test_cross(sa, sb, kw, rng):
    a, b = _r(rng, *sa), _r(rng, *sb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # NumPy 2 deprecates 2-vectors
        want = onp.cross(a, b, **kw)
    onp.testing.assert_allclose(P.cross(a, b, **kw), want)
    sg.check_grads(lambda a, b: P.cross(a, b, **kw), (a, b), order=2)


def test_cross_errors():
    with pytest.raises(ValueError, match="dimension must be 2 or 3"):
        P.cross(onp.ones(4), onp.ones(3))


# -- higher-order use -------------------------------------------------------------------------
def test_hessian_of_quadratic_form(rng):
    a = _r(rng, 3, 3)
    x = _r(rng, 3)
    h = sg.hessian(lambda x: P.dot(x, P.matmul(a, x)))(x)
    onp.testing.assert_allclose(h, a + a.T, atol=1e-12)
    h = sg.hessian(lambda x: P.einsum("i,ij,j", x, a, x))(x)
    onp.testing.assert_allclose(h, a + a.T, atol=1e-12)
