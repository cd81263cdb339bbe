"""Products: matmul, dot, vdot, inner, outer, tensordot, einsum, trace, kron, cross.

Two primitives carry the contractions: ``matmul`` (the hot path: its VJP is two more
matmuls against transposes, with the batch broadcasting and the 1-D promotions of
``numpy.matmul`` undone) and ``einsum`` (whose JVP and VJP are einsums with permuted
subscripts). ``dot``, ``inner``, ``tensordot``, ... are written with them and with the shape
operations, so their derivatives come for free. ``trace`` has its own primitive.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from ..core.batching import move_axis
from ..core.lowrank import LowRankArray
from ..core.primitive import Primitive, ShapeDtype, Tracer
from ._reductions import sum_p
from ._shape import reshape, reshape_p, transpose, transpose_p
from ._util import broadcast_like, dtype_of, shape_of, unbroadcast


def _aval(x: Any) -> ShapeDtype:
    return x if isinstance(x, ShapeDtype) else ShapeDtype.of(x)


_ARRAYS = (Tracer, np.ndarray)
_INTS = (int, np.integer)


def _asarray(x: Any) -> Any:
    return x if isinstance(x, _ARRAYS) else np.asarray(x)


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _swap_last(x: Any) -> Any:
    """``x`` with its last two axes exchanged (the batched transpose)."""
    n = len(shape_of(x))
    return transpose_p.bind(x, axes=(*range(n - 2), n - 1, n - 2))


def _reshape(x: Any, shape: tuple[int, ...]) -> Any:
    # Plain arrays (first-order derivatives) are reshaped directly, traced ones by the primitive.
    return x.reshape(shape) if type(x) is np.ndarray else reshape_p.bind(x, shape=shape)


def _t2(x: Any) -> Any:
    # A plain array is a constant here: its transpose is a free view, no primitive needed.
    return x.T if type(x) is np.ndarray else transpose_p.bind(x, axes=(1, 0))


# -- matmul ---------------------------------------------------------------------------------
def _matmul_shape(a: Any, b: Any) -> ShapeDtype:
    a, b = _aval(a), _aval(b)
    sa, sb = a.shape, b.shape
    for i, s in enumerate((sa, sb)):
        if not s:
            raise ValueError(
                f"matmul: Input operand {i} does not have enough dimensions (has 0, gufunc "
                "core with signature (n?,k),(k,m?)->(n?,m?) requires 1)"
            )
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ValueError(
            f"matmul: Input operand 1 has a mismatch in its core dimension 0 "
            f"(size {kb} is different from {ka})"
        )
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    out = batch + sa[-2:-1] + sb[-1:] if len(sb) >= 2 else batch + sa[-2:-1]
    return ShapeDtype(tuple(out), np.result_type(a.dtype, b.dtype))


def _matmul_vjp_a(g: Any, ans: Any, a: Any, b: Any) -> Any:
    sa, sb = shape_of(a), shape_of(b)
    na, nb = len(sa), len(sb)
    if na == 2 and nb == 2:  # the hot path
        return matmul_p.bind(g, _t2(b))
    if nb == 1:
        if na == 1:  # inner product: g is a scalar
            return g * b
        # a (..., m, k), b (k,), g (..., m): an outer product per batch
        if na == 2 and type(g) is np.ndarray and type(b) is np.ndarray:
            return LowRankArray.outer(g, b)  # kept factored: see core/lowrank.py
        return _reshape(g, (*shape_of(g), 1)) * b
    if na == 1:
        # a (k,), b (..., k, n), g (..., n)
        if nb == 2:
            return matmul_p.bind(b, g)
        r = matmul_p.bind(b, _reshape(g, (*shape_of(g), 1)))  # (..., k, 1)
        return sum_p.bind(r, axis=(*range(nb - 2), nb - 1), keepdims=False)
    return unbroadcast(matmul_p.bind(g, _swap_last(b)), sa)


def _matmul_vjp_b(g: Any, ans: Any, a: Any, b: Any) -> Any:
    sa, sb = shape_of(a), shape_of(b)
    na, nb = len(sa), len(sb)
    if na == 2 and nb == 2:  # the hot path
        return matmul_p.bind(_t2(a), g)
    if na == 1:
        if nb == 1:
            return g * a
        # a (k,), b (..., k, n), g (..., n)
        if nb == 2 and type(g) is np.ndarray and type(a) is np.ndarray:
            return LowRankArray.outer(a, g)  # kept factored: see core/lowrank.py
        gs = shape_of(g)
        return _reshape(a, (sa[0], 1)) * _reshape(g, (*gs[:-1], 1, gs[-1]))
    if nb == 1:
        # a (..., m, k), b (k,), g (..., m)
        if na == 2:
            return matmul_p.bind(g, a)
        gs = shape_of(g)
        r = matmul_p.bind(_reshape(g, (*gs[:-1], 1, gs[-1])), a)  # (..., 1, k)
        return sum_p.bind(r, axis=tuple(range(na - 1)), keepdims=False)
    return unbroadcast(matmul_p.bind(_swap_last(a), g), sb)


matmul_p = Primitive("matmul", np.matmul, shape=_matmul_shape)
matmul_p.defjvp(
    lambda t, ans, a, b: matmul_p.bind(t, b),
    lambda t, ans, a, b: matmul_p.bind(a, t),
)
matmul_p.defvjp(_matmul_vjp_a, _matmul_vjp_b)


def _matmul_batch(vals: list, dims: list) -> tuple[Any, int]:
    (a, b), (da, db) = vals, dims
    if da is not None:
        a = move_axis(a, da, 0)
    if db is not None:
        b = move_axis(b, db, 0)
    sa, sb = shape_of(a), shape_of(b)
    na, nb = len(sa) - (da is not None), len(sb) - (db is not None)
    size = sa[0] if da is not None else sb[0]
    if na == 1 and nb == 1:  # inner products
        if da is None:
            return matmul_p.bind(b, a), 0
        if db is None:
            return matmul_p.bind(a, b), 0
        return sum_p.bind(a * b, axis=(1,), keepdims=False), 0
    if nb == 1:  # matrices times vectors
        if db is None:
            return matmul_p.bind(a, b), 0
        if da is None and na == 2:  # one matrix times a batch of vectors: one product
            return matmul_p.bind(a, _t2(b)), 1
        col = _reshape(b, (size,) + (1,) * (na - 2) + (sb[-1], 1))
        a = _pad_batch(a, na - 2, na - 2) if da is not None else a
        out = matmul_p.bind(a, col)
        return _reshape(out, shape_of(out)[:-1]), 0
    if na == 1:  # vectors times matrices
        if da is None or (db is None and nb == 2):
            return matmul_p.bind(a, b), 0
        row = _reshape(a, (size,) + (1,) * (nb - 2) + (1, sa[-1]))
        b = _pad_batch(b, nb - 2, nb - 2) if db is not None else b
        out = matmul_p.bind(row, b)
        s = shape_of(out)
        return _reshape(out, s[:-2] + s[-1:]), 0
    if db is None and nb == 2:  # a batch of matrices times one matrix: one product
        out = matmul_p.bind(_reshape(a, (_prod(sa[:-1]), sa[-1])), b)
        return _reshape(out, sa[:-1] + sb[-1:]), 0
    nbat = max(na, nb) - 2
    if da is not None:
        a = _pad_batch(a, na - 2, nbat)
    if db is not None:
        b = _pad_batch(b, nb - 2, nbat)
    return matmul_p.bind(a, b), 0


def _pad_batch(x: Any, nbat: int, target: int) -> Any:
    """A batch (axis 0) of stacks with ``nbat`` stack axes, given ``target`` stack axes."""
    if nbat == target:
        return x
    s = shape_of(x)
    return _reshape(x, s[:1] + (1,) * (target - nbat) + s[1:])


matmul_p.defbatch(_matmul_batch)

# The primitive's caller itself: ``A @ x`` is the hot path, so no wrapper around it.
matmul = matmul_p.bind
matmul.__doc__ = """Matrix product of two arrays, as ``numpy.matmul(x1, x2)`` (also ``x1 @ x2``).

1-D operands are promoted to a row (first) or a column (second) vector and the added axis
removed afterwards; leading (batch) dimensions broadcast.

>>> import scigrad.numpy as np
>>> np.matmul(np.ones((2, 3)), np.arange(3.0))
array([3., 3.])
"""


# -- dot, vdot, inner, outer, tensordot ------------------------------------------------------
def dot(a: Any, b: Any, out: None = None) -> Any:
    """Dot product as ``numpy.dot``: a sum product over the last axis of ``a`` and the
    second-to-last of ``b`` (the only axis of a 1-D ``b``); scalars multiply.

    >>> import scigrad.numpy as np
    >>> np.dot(np.ones((2, 3, 4)), np.ones((5, 4, 6))).shape
    (2, 3, 5, 6)
    """
    if out is not None:
        raise TypeError("dot: the out= argument is not supported (scigrad is functional)")
    a, b = _asarray(a), _asarray(b)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        from ._elementwise import multiply

        return multiply(a, b)
    kb_axis = 0 if len(sb) == 1 else len(sb) - 2
    if sa[-1] != sb[kb_axis]:
        raise ValueError(
            f"shapes {sa} and {sb} not aligned: {sa[-1]} (dim {len(sa) - 1}) != "
            f"{sb[kb_axis]} (dim {kb_axis})"
        )
    if len(sb) <= 2 or len(sa) == 1:
        return matmul_p.bind(a, b)
    return tensordot(a, b, axes=([len(sa) - 1], [kb_axis]))


def vdot(a: Any, b: Any) -> Any:
    """Dot product of the flattened arrays (real values: no conjugation needed)."""
    a, b = _asarray(a), _asarray(b)
    na, nb = _prod(shape_of(a)), _prod(shape_of(b))
    if na != nb:
        raise ValueError(f"vdot: the arrays have different sizes ({na} and {nb})")
    return matmul_p.bind(reshape(a, (na,)), reshape(b, (nb,)))


def inner(a: Any, b: Any) -> Any:
    """Sum product over the last axes of ``a`` and ``b`` (as ``numpy.inner``)."""
    a, b = _asarray(a), _asarray(b)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        from ._elementwise import multiply

        return multiply(a, b)
    if sa[-1] != sb[-1]:
        raise ValueError(
            f"shapes {sa} and {sb} not aligned: {sa[-1]} (dim {len(sa) - 1}) != "
            f"{sb[-1]} (dim {len(sb) - 1})"
        )
    if len(sa) == 1 and len(sb) <= 2:
        return matmul_p.bind(b, a)
    if len(sb) == 1:
        return matmul_p.bind(a, b)
    return tensordot(a, b, axes=([len(sa) - 1], [len(sb) - 1]))


def outer(a: Any, b: Any, out: None = None) -> Any:
    """Outer product of the flattened ``a`` and ``b``: ``out[i, j] = a[i] * b[j]``."""
    if out is not None:
        raise TypeError("outer: the out= argument is not supported (scigrad is functional)")
    a, b = _asarray(a), _asarray(b)
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def _axes_list(ax: Any) -> list[int]:
    return [int(ax)] if isinstance(ax, _INTS) else [int(i) for i in ax]


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """Sum products over the axes ``axes[0]`` of ``a`` and ``axes[1]`` of ``b``; an int
    ``N`` pairs the last ``N`` axes of ``a`` with the first ``N`` of ``b``.

    >>> import scigrad.numpy as np
    >>> np.tensordot(np.ones((3, 4, 5)), np.ones((4, 3, 2)), axes=([0, 1], [1, 0])).shape
    (5, 2)
    """
    a, b = _asarray(a), _asarray(b)
    sa, sb = shape_of(a), shape_of(b)
    na, nb = len(sa), len(sb)
    if isinstance(axes, _INTS):
        n = int(axes)
        if n < 0 or n > na or n > nb:
            raise ValueError(f"tensordot: axes={n} is out of range for shapes {sa} and {sb}")
        axes_a, axes_b = list(range(na - n, na)), list(range(n))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise ValueError(
                "tensordot: axes must be an int or a pair of sequences of axes"
            ) from None
        axes_a, axes_b = _axes_list(ax_a), _axes_list(ax_b)
        if len(axes_a) != len(axes_b):
            raise ValueError("shape-mismatch for sum")
        for ax, nd in ((axes_a, na), (axes_b, nb)):
            for i, k in enumerate(ax):
                if not -nd <= k < nd:
                    raise np.exceptions.AxisError(k, nd)
                ax[i] = k % nd
    if len(set(axes_a)) != len(axes_a) or len(set(axes_b)) != len(axes_b):
        raise ValueError("tensordot: repeated axis in axes")
    if any(sa[i] != sb[j] for i, j in zip(axes_a, axes_b, strict=True)):
        raise ValueError("shape-mismatch for sum")
    free_a = [i for i in range(na) if i not in axes_a]
    free_b = [j for j in range(nb) if j not in axes_b]
    k = _prod(tuple(sa[i] for i in axes_a))
    out_a = tuple(sa[i] for i in free_a)
    out_b = tuple(sb[j] for j in free_b)
    a2 = reshape(transpose(a, free_a + axes_a), (_prod(out_a), k))
    b2 = reshape(transpose(b, axes_b + free_b), (k, _prod(out_b)))
    return reshape(matmul_p.bind(a2, b2), out_a + out_b)


# -- einsum ---------------------------------------------------------------------------------
_LETTERS = string.ascii_letters


def _split_subscripts(subscripts: str) -> tuple[list[str], str]:
    ins, out = subscripts.split("->")
    return ins.split(","), out


def _letter_sizes(terms: list[str], shapes: list[tuple[int, ...]]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        for c, n in zip(term, shape, strict=True):
            sizes[c] = n if sizes.get(c, 1) == 1 else sizes[c]
    return sizes


def _einsum_shape(*ops: Any, subscripts: str, optimize: Any) -> ShapeDtype:
    avals = [_aval(o) for o in ops]
    ins, out = _split_subscripts(subscripts)
    sizes = _letter_sizes(ins, [a.shape for a in avals])
    return ShapeDtype(tuple(sizes[c] for c in out), np.result_type(*(a.dtype for a in avals)))


def _einsum_jvp(tangents: list, ans: Any, *ops: Any, subscripts: str, optimize: Any) -> Any:
    out = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        args = list(ops)
        args[i] = t
        term = einsum_p.bind(*args, subscripts=subscripts, optimize=optimize)
        out = term if out is None else out + term
    return out


def _einsum_vjp(g: Any, ans: Any, needs: list, *ops: Any, subscripts: str, optimize: Any):
    ins, out = _split_subscripts(subscripts)
    sizes = _letter_sizes(ins, [shape_of(o) for o in ops])
    dtype = dtype_of(g)
    path = optimize if isinstance(optimize, (bool, str)) else "greedy"
    fresh = [c for c in _LETTERS if c not in subscripts]
    cts: list = []
    for i, need in enumerate(needs):
        if not need:
            cts.append(None)
            continue
        terms = [out] + [t for j, t in enumerate(ins) if j != i]
        args = [g] + [o for j, o in enumerate(ops) if j != i]
        # A letter repeated in operand i (a diagonal, as in 'ii->i') gets a fresh letter in
        # the cotangent's subscripts, tied to the original one by an identity matrix.
        target, seen, k = [], set(), 0
        for c in ins[i]:
            if c in seen:
                f = fresh[k]
                k += 1
                terms.append(c + f)
                args.append(np.eye(sizes[c], dtype=dtype))
                target.append(f)
            else:
                seen.add(c)
                target.append(c)
        # A letter found only in operand i (summed over in the product) is broadcast back.
        present = set("".join(terms))
        for c in seen - present:
            terms.append(c)
            args.append(np.ones(sizes[c], dtype=dtype))
        sub = ",".join(terms) + "->" + "".join(target)
        ct = einsum_p.bind(*args, subscripts=sub, optimize=path)
        if shape_of(ct) != shape_of(ops[i]):  # an operand of length-1 axes, broadcast
            ct = unbroadcast(ct, shape_of(ops[i]))
        cts.append(ct)
    return cts


einsum_p = Primitive(
    "einsum",
    lambda *ops, subscripts, optimize: np.einsum(subscripts, *ops, optimize=optimize),
    shape=_einsum_shape,
)
einsum_p.defjvp_joint(_einsum_jvp)
einsum_p.defvjp_joint(_einsum_vjp)


def _einsum_batch(vals: list, dims: list, *, subscripts: str, optimize: Any) -> tuple[Any, int]:
    # A fresh subscript for the batch axis, placed first in the batched operands and output.
    ins, out = _split_subscripts(subscripts)
    c = next(ch for ch in _LETTERS if ch not in subscripts)
    ops, terms = [], []
    for x, d, term in zip(vals, dims, ins, strict=True):
        if d is None:
            ops.append(x)
            terms.append(term)
        else:
            ops.append(move_axis(x, d, 0))
            terms.append(c + term)
    sub = ",".join(terms) + "->" + c + out
    return einsum_p.bind(*ops, subscripts=sub, optimize=optimize), 0


einsum_p.defbatch(_einsum_batch)


def _interleaved(args: tuple) -> tuple[str, list]:
    """``einsum(op0, sublist0, op1, sublist1, ..., [sublistout])`` as a subscripts string."""

    def term(sub: Any) -> str:
        out = []
        for s in sub:
            if s is Ellipsis:
                out.append("...")
            else:
                s = int(s)
                if not 0 <= s < len(_LETTERS):
                    raise ValueError(f"einsum: subscript {s} is not in [0, {len(_LETTERS)})")
                out.append(_LETTERS[s])
        return "".join(out)

    ops = list(args[0::2])
    subs = [term(s) for s in args[1::2]]
    if len(args) % 2:  # an output sublist closes the argument list
        out = term(ops.pop())
        return ",".join(subs) + "->" + out, ops
    return ",".join(subs), ops


def _parse_einsum(subscripts: str, ops: list) -> tuple[str, list]:
    """Explicit subscripts without ellipses, and the operands with the length-1 axes that
    broadcast against longer ones removed (so the primitive never broadcasts)."""
    subscripts = subscripts.replace(" ", "")
    if subscripts.count("->") > 1:
        raise ValueError("einsum: subscripts string contains more than one '->'")
    explicit = "->" in subscripts
    ins_str, out_str = subscripts.split("->") if explicit else (subscripts, "")
    ins = ins_str.split(",")
    if len(ins) != len(ops):
        raise ValueError(
            f"einsum: the subscripts describe {len(ins)} operands but {len(ops)} were given"
        )
    for t in (*ins, out_str):
        bad = set(t.replace("...", "")) - set(_LETTERS)
        if bad or t.count("...") > 1:
            raise ValueError(f"einsum: invalid subscripts term {t!r}")
    shapes = [shape_of(o) for o in ops]
    ell = []
    for i, (t, s) in enumerate(zip(ins, shapes, strict=True)):
        n = len(s) - len(t.replace("...", ""))
        if n < 0 or (n > 0 and "..." not in t):
            kind = "many" if n < 0 else "few"
            raise ValueError(
                f"einstein sum subscripts string contains too {kind} subscripts for operand {i}"
            )
        ell.append(n)
    used = set(subscripts)
    fresh = [c for c in _LETTERS if c not in used]
    n_ell = max(ell, default=0)
    if len(fresh) < n_ell:
        raise ValueError("einsum: too many dimensions for the available subscript letters")
    ell_letters = "".join(fresh[:n_ell])
    if not explicit:
        counts: dict[str, int] = {}
        for c in "".join(ins).replace("...", ""):
            counts[c] = counts.get(c, 0) + 1
        out_str = "..." * (n_ell > 0) + "".join(sorted(c for c, k in counts.items() if k == 1))
    if "..." in out_str:
        out = out_str.replace("...", ell_letters)
    elif n_ell:
        raise ValueError(
            "output has more dimensions than subscripts given in einstein sum, but no '...' "
            "ellipsis provided to broadcast the extra dimensions."
        )
    else:
        out = out_str
    ins = [
        t.replace("...", ell_letters[n_ell - e :] if e else "")
        for t, e in zip(ins, ell, strict=True)
    ]
    # Sizes, and length-1 axes broadcast against longer ones.
    sizes: dict[str, int] = {}
    for t, s in zip(ins, shapes, strict=True):
        for c, n in zip(t, s, strict=True):
            if n != 1 and sizes.get(c, 1) not in (1, n):
                raise ValueError(
                    f"einsum: operands could not be broadcast together: subscript {c!r} has "
                    f"sizes {sizes[c]} and {n} (shapes {shapes}, subscripts {subscripts!r})"
                )
            if n != 1 or c not in sizes:
                sizes[c] = n
    for c in out:
        if out.count(c) > 1:
            raise ValueError(
                f"einstein sum subscripts string includes output subscript {c!r} multiple times"
            )
        if c not in sizes:
            raise ValueError(
                f"einstein sum subscripts string included output subscript {c!r} which never "
                "appeared in an input"
            )
    new_ops = list(ops)
    for i, (t, s) in enumerate(zip(ins, shapes, strict=True)):
        drop = [k for k, (c, n) in enumerate(zip(t, s, strict=True)) if n == 1 and sizes[c] != 1]
        if drop:
            for c in {t[k] for k in drop}:
                if any(t[k] == c and k not in drop for k in range(len(t))):
                    raise ValueError(
                        f"einsum: subscript {c!r} of operand {i} has inconsistent sizes {s}"
                    )
            new_ops[i] = reshape(ops[i], tuple(n for k, n in enumerate(s) if k not in drop))
            ins[i] = "".join(c for k, c in enumerate(t) if k not in drop)
    return ",".join(ins) + "->" + out, new_ops


def einsum(*operands: Any, optimize: Any = False, out: None = None, dtype: Any = None) -> Any:
    """Einstein summation, as ``numpy.einsum``: explicit (``'ij,jk->ik'``) or implicit
    (``'ij,jk'``) output, ``...`` for broadcast dimensions, repeated subscripts within an
    operand for diagonals (``'ii->i'``, ``'ii'``), and the interleaved form
    ``einsum(a, [0, 1], b, [1, 2])``.

    >>> import scigrad.numpy as np
    >>> float(np.einsum("ii", np.eye(3)))
    3.0
    >>> np.einsum("...ij,...jk->...ik", np.ones((5, 2, 3)), np.ones((3, 4))).shape
    (5, 2, 4)
    """
    if out is not None:
        raise TypeError("einsum: the out= argument is not supported (scigrad is functional)")
    if not operands:
        raise ValueError("einsum: no subscripts given")
    if isinstance(operands[0], str):
        subscripts, ops = operands[0], list(operands[1:])
    else:
        subscripts, ops = _interleaved(operands)
    ops = [_asarray(o) for o in ops]
    subscripts, ops = _parse_einsum(subscripts, ops)
    res = einsum_p.bind(*ops, subscripts=subscripts, optimize=optimize)
    if dtype is not None:
        res = res.astype(dtype)
    return res


# -- trace ----------------------------------------------------------------------------------
def _trace_shape(x: Any, *, offset: int, axis1: int, axis2: int) -> ShapeDtype:
    x = _aval(x)
    return ShapeDtype(tuple(n for i, n in enumerate(x.shape) if i not in (axis1, axis2)), x.dtype)


def _trace_vjp(g: Any, ans: Any, x: Any, *, offset: int, axis1: int, axis2: int) -> Any:
    # Spread g over the (offset) diagonal of the axes (axis1, axis2), placed last, then
    # move those two axes back to where they came from.
    s = shape_of(x)
    nb = len(s) - 2
    mask = np.eye(s[axis1], s[axis2], k=offset, dtype=dtype_of(g))
    spread = reshape(g, (*shape_of(g), 1, 1)) * mask
    perm, k = [], 0
    for d in range(len(s)):
        if d == axis1:
            perm.append(nb)
        elif d == axis2:
            perm.append(nb + 1)
        else:
            perm.append(k)
            k += 1
    return transpose(spread, perm)


trace_p = Primitive(
    "trace",
    lambda x, *, offset, axis1, axis2: np.trace(x, offset, axis1, axis2),
    shape=_trace_shape,
)
trace_p.defjvp(lambda t, ans, x, **p: trace_p.bind(t, **p))
trace_p.defvjp(_trace_vjp)
trace_p.defbatch(
    lambda vals, dims, *, offset, axis1, axis2: (
        trace_p.bind(
            move_axis(vals[0], dims[0], 0), offset=offset, axis1=axis1 + 1, axis2=axis2 + 1
        ),
        0,
    )
)


def trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: None = None
) -> Any:
    """Sum along a diagonal of ``a`` (as ``numpy.trace``); for N-D arrays the diagonal of
    the axes ``axis1`` and ``axis2``."""
    if out is not None:
        raise TypeError("trace: the out= argument is not supported (scigrad is functional)")
    a = _asarray(a)
    nd = len(shape_of(a))
    if nd < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    for ax in (axis1, axis2):
        if not -nd <= ax < nd:
            raise np.exceptions.AxisError(ax, nd)
    axis1, axis2 = int(axis1) % nd, int(axis2) % nd
    if axis1 == axis2:
        raise ValueError("axis1 and axis2 cannot be the same")
    res = trace_p.bind(a, offset=int(offset), axis1=axis1, axis2=axis2)
    return res if dtype is None else res.astype(dtype)


# -- kron, cross ----------------------------------------------------------------------------
def kron(a: Any, b: Any) -> Any:
    """Kronecker product: blocks ``a[i, j] * b`` (as ``numpy.kron``, any dimensions).

    >>> import scigrad.numpy as np
    >>> np.kron(np.array([1.0, 2.0]), np.array([1.0, 10.0]))
    array([ 1., 10.,  2., 20.])
    """
    a, b = _asarray(a), _asarray(b)
    sa, sb = shape_of(a), shape_of(b)
    nd = max(len(sa), len(sb))
    sa = (1,) * (nd - len(sa)) + sa
    sb = (1,) * (nd - len(sb)) + sb
    a2 = reshape(a, tuple(x for n in sa for x in (n, 1)))
    b2 = reshape(b, tuple(x for n in sb for x in (1, n)))
    return reshape(a2 * b2, tuple(m * n for m, n in zip(sa, sb, strict=True)))


def _moveaxis(x: Any, src: int, dst: int) -> Any:
    nd = len(shape_of(x))
    perm = [i for i in range(nd) if i != src]
    perm.insert(dst, src)
    return transpose(x, perm)


def cross(
    a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: int | None = None
) -> Any:
    """Cross product of 3-vectors (or 2-vectors, z = 0) along the given axes (as
    ``numpy.cross``); two 2-vectors give the scalar z component."""
    from ._shape import stack

    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _asarray(a), _asarray(b)
    na, nb = len(shape_of(a)), len(shape_of(b))
    for ax, nd, name in ((axisa, na, "axisa"), (axisb, nb, "axisb")):
        if not -nd <= ax < nd:
            raise np.exceptions.AxisError(f"{name}: axis {ax} is out of bounds for {nd} dims")
    a = _moveaxis(a, int(axisa) % na, na - 1)
    b = _moveaxis(b, int(axisb) % nb, nb - 1)
    da, db = shape_of(a)[-1], shape_of(b)[-1]
    if da not in (2, 3) or db not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n(dimension must be 2 or 3)")
    batch = np.broadcast_shapes(shape_of(a)[:-1], shape_of(b)[:-1])
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    z = a0 * b1 - a1 * b0
    if da == 2 and db == 2:
        return broadcast_like(z, batch)
    if da == 2:
        b2 = b[..., 2]
        comps = [a1 * b2, -(a0 * b2), z]
    elif db == 2:
        a2 = a[..., 2]
        comps = [-(a2 * b1), a2 * b0, z]
    else:
        a2, b2 = a[..., 2], b[..., 2]
        comps = [a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, z]
    res = stack([broadcast_like(c, batch) for c in comps], axis=-1)
    nc = len(batch) + 1
    if not -nc <= axisc < nc:
        raise np.exceptions.AxisError(f"axisc: axis {axisc} is out of bounds for {nc} dims")
    return _moveaxis(res, nc - 1, int(axisc) % nc)


__all__ = [
    "cross",
    "dot",
    "einsum",
    "inner",
    "kron",
    "matmul",
    "outer",
    "tensordot",
    "trace",
    "vdot",
]
