"""Shape operations: values against NumPy (plain and traced), derivatives against finite
differences (second order, both modes), random shapes, and clear errors for bad input."""

from __future__ import annotations

import numpy as onp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scigrad as sg
import scigrad.numpy as np
from tests.strategies import arrays, shapes

RNG = onp.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4))
M = RNG.standard_normal((3, 4))
S = RNG.standard_normal((4, 4))
V = RNG.standard_normal(3)


def traced_value(f, *args):
    """``f(*args)`` computed on traced values (the primal of a JVP)."""
    return sg.jvp(f, args, tuple(onp.ones_like(a) for a in args))[0]


def check(f, numpy_f, *args):
    """Same value as NumPy on plain and on traced arrays, and correct derivatives."""
    expected = numpy_f(*args)
    for got in (f(*args), traced_value(f, *args)):
        if isinstance(expected, list | tuple):
            assert len(got) == len(expected)
            for g, e in zip(got, expected, strict=True):
                assert onp.shape(g) == onp.shape(e)
                onp.testing.assert_array_equal(g, e)
        else:
            assert onp.shape(got) == onp.shape(expected)
            onp.testing.assert_array_equal(got, expected)
    sg.check_grads(f, args, order=2)


# (name, positional args after the array(s), keyword args, inputs)
CASES = [
    ("reshape", ((4, 6),), {}, (X,)),
    ("reshape", ((-1, 2),), {}, (X,)),
    ("reshape", (), {"shape": (24,)}, (X,)),
    ("transpose", (), {}, (X,)),
    ("transpose", ((1, 2, 0),), {}, (X,)),
    ("transpose", ((-1, 0, 1),), {}, (X,)),
    ("broadcast_to", ((2, 3, 4),), {}, (M[0],)),
    ("broadcast_to", ((5, 3, 4),), {}, (M,)),
    ("expand_dims", (0,), {}, (M,)),
    ("expand_dims", ((-1, 1),), {}, (M,)),
    ("swapaxes", (0, 2), {}, (X,)),
    ("swapaxes", (-1, 1), {}, (X,)),
    ("moveaxis", (0, -1), {}, (X,)),
    ("moveaxis", ((0, 1), (2, 0)), {}, (X,)),
    ("squeeze", (), {}, (X[:1, :, 2:3],)),
    ("squeeze", (), {"axis": 0}, (X[:1],)),
    ("ravel", (), {}, (X,)),
    ("atleast_1d", (), {}, (V,)),
    ("atleast_2d", (), {}, (V,)),
    ("atleast_3d", (), {}, (V,)),
    ("atleast_3d", (), {}, (M,)),
    ("tile", (2,), {}, (V,)),
    ("tile", ((2, 1, 2),), {}, (M,)),
    ("tile", ((3, 1),), {}, (X,)),
    ("repeat", (2,), {}, (M,)),
    ("repeat", (3,), {"axis": 1}, (M,)),
    ("repeat", ([1, 0, 3],), {"axis": 0}, (M,)),
    ("repeat", ([2, 1, 0, 1],), {"axis": -1}, (X,)),
    ("flip", (), {}, (X,)),
    ("flip", (1,), {}, (X,)),
    ("flip", ((0, 2),), {}, (X,)),
    ("fliplr", (), {}, (M,)),
    ("flipud", (), {}, (M,)),
    ("rot90", (), {}, (M,)),
    ("rot90", (3,), {"axes": (2, 0)}, (X,)),
    ("rot90", (2,), {}, (M,)),
    ("roll", (2,), {}, (X,)),
    ("roll", (-1,), {"axis": 1}, (X,)),
    ("roll", ((1, 2),), {"axis": (0, 2)}, (X,)),
    ("roll", ((1, 1),), {"axis": (2, 2)}, (X,)),
    ("diag", (), {}, (V,)),
    ("diag", (1,), {}, (V,)),
    ("diag", (-2,), {}, (V,)),
    ("diag", (), {}, (M,)),
    ("diag", (2,), {}, (M,)),
    ("diag", (-1,), {}, (M,)),
    ("diagflat", (1,), {}, (M[:2, :2],)),
    ("diagonal", (), {}, (M,)),
    ("diagonal", (1,), {}, (M,)),
    ("diagonal", (-1, 2, 0), {}, (X,)),
    ("diagonal", (), {"axis1": 1, "axis2": 2}, (X,)),
    ("triu", (), {}, (S,)),
    ("triu", (1,), {}, (M,)),
    ("triu", (-1,), {}, (X,)),
    ("tril", (), {}, (S,)),
    ("tril", (-1,), {}, (M,)),
    ("tril", (), {}, (V,)),
    ("split", (2,), {}, (X[:, :, :2],)),
    ("split", (2,), {"axis": 2}, (X,)),
    ("split", ([1, 3],), {"axis": -1}, (X,)),
    ("array_split", (3,), {"axis": 2}, (X,)),
    ("array_split", ([2, 1, -1, 10],), {"axis": 1}, (M,)),
    ("hsplit", (2,), {}, (M,)),
    ("vsplit", ([1],), {}, (M,)),
    ("dsplit", (2,), {}, (X,)),
    ("pad", (1,), {}, (M,)),
    ("pad", (((1, 0), (0, 2)),), {"constant_values": 1.5}, (M,)),
    ("pad", ((0, 2),), {"mode": "edge"}, (X,)),
    ("pad", ((2, 3),), {"mode": "reflect"}, (V,)),
    ("pad", (((1, 2), (2, 1)),), {"mode": "symmetric"}, (M,)),
    ("pad", ((1,),), {"mode": "wrap"}, (M,)),
]


def _ids(case):
    name, args, kw, _ = case
    return f"{name}-{args}-{kw}"


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_one_array_ops(case):
    name, args, kw, inputs = case
    f = getattr(np, name)
    g = getattr(onp, name)
    check(lambda *a: f(*a, *args, **kw), lambda *a: g(*a, *args, **kw), *inputs)


JOINS = [
    ("concatenate", {}, (M, M[:1])),
    ("concatenate", {"axis": 1}, (M, M[:, :2], M)),
    ("concatenate", {"axis": -1}, (X, X[..., :1])),
    ("concatenate", {"axis": None}, (M, V)),
    ("stack", {}, (V, V * 2, V + 1)),
    ("stack", {"axis": 1}, (M, M)),
    ("stack", {"axis": -1}, (M, M * 3)),
    ("hstack", {}, (V, V[:2])),
    ("hstack", {}, (M, M[:, :1])),
    ("vstack", {}, (V, V)),
    ("vstack", {}, (M, V[None, :].repeat(4, 1)[:, :4])),
    ("dstack", {}, (M, M)),
    ("dstack", {}, (V, V)),
    ("column_stack", {}, (V, V * 2)),
    ("column_stack", {}, (M, M[:, 0])),
]


@pytest.mark.parametrize("case", JOINS, ids=[f"{n}-{kw}" for n, kw, _ in JOINS])
def test_joins(case):
    name, kw, inputs = case
    f = getattr(np, name)
    g = getattr(onp, name)
    check(lambda *a: f(list(a), **kw), lambda *a: g(list(a), **kw), *inputs)


def test_atleast_several_and_scalars():
    a, b = np.atleast_1d(2.0, V)
    assert a.shape == (1,) and b is V
    assert np.atleast_2d(3.0).shape == (1, 1)
    assert np.atleast_3d(3.0).shape == (1, 1, 1)
    onp.testing.assert_array_equal(np.hstack([1.0, 2.0]), onp.hstack([1.0, 2.0]))
    onp.testing.assert_array_equal(np.column_stack([1.0, 2.0]), onp.column_stack([1.0, 2.0]))


def test_split_returns_list_and_pieces_are_independent_outputs():
    pieces = np.split(M, 2, axis=1)
    assert isinstance(pieces, list) and len(pieces) == 2
    # Only one piece used: the unused one gets a zero cotangent.
    g = sg.grad(lambda m: np.sum(np.split(m, [1, 3], axis=0)[1] ** 2))(M)
    expected = onp.zeros_like(M)
    expected[1:3] = 2 * M[1:3]
    onp.testing.assert_allclose(g, expected)
    # Overlapping pieces (negative indices): cotangents add up.
    f = lambda m: [p * (i + 1.0) for i, p in enumerate(np.array_split(m, [3, 1, 2], axis=1))]  # noqa: E731
    sg.check_grads(f, (M,), order=2)
    g = sg.grad(lambda m: sum(np.sum(p) for p in f(m)))(M)
    onp.testing.assert_allclose(g, onp.tile([1.0, 1.0 + 3.0, 1.0 + 4.0, 4.0], (3, 1)))


def test_broadcast_arrays():
    a, b = np.broadcast_arrays(V[:, None], M[0])
    ea, eb = onp.broadcast_arrays(V[:, None], M[0])
    onp.testing.assert_array_equal(a, ea)
    onp.testing.assert_array_equal(b, eb)
    sg.check_grads(lambda u, w: np.broadcast_arrays(u[:, None], w), (V, M[0]), order=2)


def test_methods_on_traced_values():
    def f(x):
        return (
            x.swapaxes(0, 1).sum()
            + x.squeeze().sum()
            + x.repeat(2, axis=0).sum()
            + x.diagonal().sum()
            + x.mT.sum()
            + x.ravel().sum()
        )

    sg.check_grads(f, (M,), order=2)


def test_shape_rules_agree_with_values():
    fs = [
        lambda x: np.split(x, [1, 3], axis=2),
        lambda x: np.moveaxis(x, 0, 2),
        lambda x: np.tile(x, 2),
        lambda x: np.repeat(x, [1, 2, 0], axis=1),
        lambda x: np.roll(x, 1, axis=1),
        lambda x: np.diagonal(x, 1, 1, 2),
        lambda x: np.triu(x),
        lambda x: np.pad(x, 1, mode="wrap"),
        lambda x: np.pad(x, 1),
        lambda x: np.diag(x[0, 0]),
    ]
    for f in fs:
        avals = sg.eval_shape(f, X)
        outs = f(X)
        if isinstance(outs, list):
            assert [a.shape for a in avals] == [o.shape for o in outs]
        else:
            assert avals.shape == outs.shape and avals.dtype == outs.dtype


# -- hypothesis: random shapes ------------------------------------------------------------------
@given(data=st.data())
def test_hypothesis_reshape_transpose_moveaxis(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    x = data.draw(arrays(shape))
    ndim = len(shape)
    perm = tuple(data.draw(st.permutations(range(ndim))))
    new = tuple(data.draw(st.permutations(shape)))
    src = data.draw(st.integers(-ndim, ndim - 1))
    dst = data.draw(st.integers(-ndim, ndim - 1))

    def f(x):
        return np.reshape(x, new), np.transpose(x, perm), np.moveaxis(x, src, dst)

    def g(x):
        return onp.reshape(x, new), onp.transpose(x, perm), onp.moveaxis(x, src, dst)

    check(f, g, x)


@given(data=st.data())
def test_hypothesis_concatenate_stack(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    other = list(shape)
    other[axis] = data.draw(st.integers(1, 3))
    a = data.draw(arrays(shape))
    b = data.draw(arrays(tuple(other)))
    c = data.draw(arrays(shape))
    sax = data.draw(st.integers(-ndim - 1, ndim))

    def f(a, b, c):
        return np.concatenate([a, b, c], axis=axis), np.stack([a, c], axis=sax)

    def g(a, b, c):
        return onp.concatenate([a, b, c], axis=axis), onp.stack([a, c], axis=sax)

    check(f, g, a, b, c)


@given(data=st.data())
def test_hypothesis_flip_roll_tile_repeat(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3))
    ndim = len(shape)
    x = data.draw(arrays(shape))
    faxis = data.draw(st.one_of(st.none(), hnp.valid_tuple_axes(ndim)))
    raxis = data.draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1)))
    shift = data.draw(st.integers(-5, 5))
    reps = tuple(data.draw(st.lists(st.integers(1, 2), min_size=1, max_size=3)))
    paxis = data.draw(st.integers(0, ndim - 1))
    counts = data.draw(st.lists(st.integers(0, 2), min_size=shape[paxis], max_size=shape[paxis]))

    def f(x):
        return (
            np.flip(x, faxis),
            np.roll(x, shift, raxis),
            np.tile(x, reps),
            np.repeat(x, 2, raxis),
            np.repeat(x, counts, paxis),
        )

    def g(x):
        return (
            onp.flip(x, faxis),
            onp.roll(x, shift, raxis),
            onp.tile(x, reps),
            onp.repeat(x, 2, raxis),
            onp.repeat(x, counts, paxis),
        )

    check(f, g, x)


@given(data=st.data())
def test_hypothesis_diagonal_triangles(data):
    shape = data.draw(shapes(min_dims=2, max_dims=3))
    ndim = len(shape)
    x = data.draw(arrays(shape))
    a1, a2 = data.draw(st.permutations(range(ndim)))[:2]
    k = data.draw(st.integers(-4, 4))

    def f(x):
        return np.diagonal(x, k, a1, a2), np.triu(x, k), np.tril(x, k)

    def g(x):
        return onp.diagonal(x, k, a1, a2), onp.triu(x, k), onp.tril(x, k)

    check(f, g, x)


# -- bad input ----------------------------------------------------------------------------------
def test_bad_axes_raise_axis_errors():
    axis_error = onp.exceptions.AxisError
    for f in [
        lambda: np.swapaxes(X, 0, 3),
        lambda: np.moveaxis(X, 3, 0),
        lambda: np.squeeze(X, 5),
        lambda: np.expand_dims(M, 3),
        lambda: np.flip(M, 2),
        lambda: np.roll(M, 1, axis=2),
        lambda: np.repeat(M, 2, axis=-3),
        lambda: np.diagonal(M, 0, 0, 2),
        lambda: np.concatenate([M, M], axis=2),
        lambda: np.stack([M, M], axis=3),
        lambda: np.split(M, 3, axis=2),
        lambda: np.transpose(M, (0, 2)),
    ]:
        with pytest.raises(axis_error, match="out of bounds"):
            f()
    with pytest.raises(axis_error, match="out of bounds"):
        sg.grad(lambda m: np.sum(np.swapaxes(m, 0, 2)))(M)


def test_bad_shapes_and_arguments():
    with pytest.raises(ValueError, match=r"cannot reshape an array of shape \(3, 4\)"):
        np.reshape(M, (5, 2))
    with pytest.raises(ValueError, match="one unknown dimension"):
        np.reshape(M, (-1, -1))
    with pytest.raises(ValueError, match=r"cannot reshape .* into shape \(5, -1\)"):
        np.reshape(M, (5, -1))
    with pytest.raises(ValueError, match="cannot broadcast an array of shape"):
        np.broadcast_to(M, (4, 3))
    with pytest.raises(ValueError, match="not match except along axis"):
        np.concatenate([M, V], axis=0)
    with pytest.raises(ValueError, match="same shape"):
        np.stack([M, M.T])
    with pytest.raises(ValueError, match="need at least one array"):
        np.concatenate([])
    with pytest.raises(ValueError, match="zero-dimensional"):
        np.concatenate([onp.float64(1.0), onp.float64(2.0)])
    with pytest.raises(ValueError, match="transpose: axes"):
        np.transpose(X, (0, 1))
    with pytest.raises(ValueError, match="repeated axis"):
        np.transpose(X, (0, 1, 1))
    with pytest.raises(ValueError, match="repeated axis in `source`"):
        np.moveaxis(X, (0, 0), (1, 2))
    with pytest.raises(ValueError, match="same number of elements"):
        np.moveaxis(X, (0, 1), (1,))
    with pytest.raises(ValueError, match="squeeze out which has size not equal to one"):
        np.squeeze(M, 0)
    with pytest.raises(ValueError, match="equal division"):
        np.split(M, 2)
    with pytest.raises(ValueError, match="larger than 0"):
        np.array_split(M, 0)
    with pytest.raises(ValueError, match="2 repeat counts given for an axis of length 3"):
        np.repeat(M, [1, 2], axis=0)
    with pytest.raises(ValueError, match="negative"):
        np.repeat(M, -1)
    with pytest.raises(TypeError, match="repeats must be integers"):
        np.repeat(M, 1.5)
    with pytest.raises(ValueError, match="negative repetitions"):
        np.tile(M, (-1, 2))
    with pytest.raises(ValueError, match=">= 2-d"):
        np.fliplr(V)
    with pytest.raises(ValueError, match="1- or 2-d"):
        np.diag(X)
    with pytest.raises(ValueError, match="at least two dimensions"):
        np.diagonal(V)
    with pytest.raises(ValueError, match="cannot be the same"):
        np.diagonal(M, 0, 1, -1)
    with pytest.raises(ValueError, match="should be scalars or 1D"):
        np.roll(M, [[1]], axis=[[0]])
    with pytest.raises(ValueError, match="at least 1-d"):
        np.triu(onp.float64(2.0))
    with pytest.raises(ValueError, match="vsplit only works"):
        np.vsplit(V, 1)
    with pytest.raises(ValueError, match="does not fit an array of 2 dimensions"):
        np.pad(M, [(1, 1)] * 3)
    with pytest.raises(ValueError, match="negative values"):
        np.pad(M, -1)
    with pytest.raises(NotImplementedError, match="mode 'linear_ramp' is not supported"):
        np.pad(M, 1, mode="linear_ramp")
