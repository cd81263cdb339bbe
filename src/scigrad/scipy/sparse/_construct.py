"""Building sparse arrays, as ``scipy.sparse``: ``diags``, ``eye``, ``identity``, ``kron``,
``bmat``, ``hstack``, ``vstack``, ``block_diag``, ``tril`` and ``triu``.

Values (diagonals, blocks, factors) may be traced; structure is static and cached: the
pattern of ``diags`` is cached per (shape, offsets), that of ``kron`` and of block matrices
per tuple of operand patterns, so rebuilding the same matrix every iteration costs O(nnz).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ... import numpy as snp
from ...core.primitive import Tracer
from ...numpy._util import shape_of
from . import _pattern
from ._array import SparseArray, _apply, _sparse_operand, coo_array, scatter_entries_p
from ._pattern import Pattern

__all__ = [
    "block_diag",
    "bmat",
    "diags",
    "diags_array",
    "eye",
    "eye_array",
    "hstack",
    "identity",
    "kron",
    "tril",
    "triu",
    "vstack",
]

_CACHE_SIZE = 64
_DIAG_CACHE: dict[tuple, Pattern] = {}
_BLOCK_CACHE: dict[tuple, tuple[tuple, Pattern]] = {}


def _remember(cache: dict, key: Any, value: Any) -> Any:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def _as_sparse(x: Any) -> SparseArray:
    """A sparse operand: scigrad or SciPy sparse as it is, dense 2-D arrays as COO (their
    nonzero entries, as ``scipy.sparse`` converts them)."""
    s = _sparse_operand(x)
    return s if s is not None else coo_array(x)


def _as_diagonal(d: Any) -> Any:
    if isinstance(d, list | tuple) and any(isinstance(e, Tracer) for e in d):
        d = snp.stack(d)
    if not isinstance(d, Tracer):
        d = np.asarray(d)
        if d.dtype.kind in "iub":
            d = d.astype(float)
    if len(shape_of(d)) > 1:
        raise ValueError(f"each diagonal must be a scalar or a 1-D array, got shape {shape_of(d)}")
    return d


def _diag_pattern(shape: tuple[int, int], offsets: tuple[int, ...]) -> Pattern:
    """The COO pattern of the full diagonals ``offsets`` of an array of ``shape``, one
    diagonal after the other (cached)."""
    key = (shape, offsets)
    hit = _DIAG_CACHE.get(key)
    if hit is not None:
        return hit
    m, n = shape
    rows, cols = [], []
    for k in offsets:
        i = np.arange(min(m + k, n - k, m, n), dtype=np.int64)
        rows.append(i + max(-k, 0))
        cols.append(i + max(k, 0))
    empty = np.zeros(0, np.int64)
    pattern = Pattern(
        "coo",
        shape,
        None,
        None,
        np.concatenate(rows) if rows else empty,
        np.concatenate(cols) if cols else empty,
    )
    return _remember(_DIAG_CACHE, key, pattern)


def diags_array(
    diagonals: Any,
    /,
    *,
    offsets: Any = 0,
    shape: tuple[int, int] | None = None,
    format: str | None = None,  # noqa: A002 - SciPy's name
    dtype: Any = None,
) -> SparseArray:
    """A sparse array from its diagonals, as ``scipy.sparse.diags_array``; the diagonals
    may be traced. Scalars (and length-1 diagonals) are broadcast along their diagonal;
    longer diagonals are truncated, as in SciPy. The result is CSR unless ``format`` says
    otherwise (scigrad has no DIA format); every position on the given diagonals is stored,
    zero or not.

    >>> import scigrad.scipy.sparse as sp
    >>> sp.diags_array([1.0, -2.0, 1.0], offsets=[-1, 0, 1], shape=(3, 3)).toarray()
    array([[-2.,  1.,  0.],
           [ 1., -2.,  1.],
           [ 0.,  1., -2.]])
    """
    if np.ndim(offsets) == 0:
        # One diagonal: a 1-D array, a scalar, or a list of scalars.
        if isinstance(diagonals, Tracer | np.ndarray | np.generic | float | int):
            if len(shape_of(diagonals)) > 1:
                raise ValueError("Different number of diagonals and offsets.")
            diagonals = [diagonals]
        elif len(diagonals) == 0 or np.ndim(_concrete(diagonals[0])) == 0:
            diagonals = [diagonals]
        else:
            raise ValueError("Different number of diagonals and offsets.")
        offsets = [offsets]
    else:
        diagonals = list(diagonals)
    offsets = tuple(operator.index(k) for k in np.asarray(offsets).ravel().tolist())
    if len(diagonals) != len(offsets):
        raise ValueError("Different number of diagonals and offsets.")
    if len(set(offsets)) != len(offsets):
        raise ValueError("offset array contains duplicate values")
    diagonals = [_as_diagonal(d) for d in diagonals]
    if shape is None:
        if not diagonals:
            raise ValueError("diags: shape= is needed when no diagonal is given")
        m = (shape_of(diagonals[0]) or (1,))[0] + abs(offsets[0])
        shape = (m, m)
    m, n = (operator.index(shape[0]), operator.index(shape[1]))
    pieces = []
    for j, (d, k) in enumerate(zip(diagonals, offsets, strict=True)):
        length = min(m + k, n - k, m, n)
        if length < 0:
            raise ValueError(f"Offset {k} (index {j}) out of bounds")
        dshape = shape_of(d)
        given = dshape[0] if dshape else 1
        if given == 1:
            pieces.append(snp.broadcast_to(snp.reshape(d, (1,)), (length,)))
        elif given >= length:
            pieces.append(d if given == length else d[:length])
        else:
            raise ValueError(
                f"Diagonal length (index {j}: {given} at offset {k}) does not agree with "
                f"array size ({m}, {n})."
            )
    if not pieces:
        data: Any = np.zeros(0)
    elif len(pieces) == 1:
        data = pieces[0]
        if not isinstance(data, Tracer):
            data = np.array(data)  # a copy: never a view of the caller's array
    else:
        data = snp.concatenate(pieces)
    if dtype is not None:
        data = snp.astype(data, np.dtype(dtype))
    out = SparseArray(data, _diag_pattern((m, n), offsets))
    return out.asformat(format or "csr")


def _concrete(x: Any) -> Any:
    return x.concrete() if isinstance(x, Tracer) else x


def diags(
    diagonals: Any,
    offsets: Any = 0,
    shape: tuple[int, int] | None = None,
    format: str | None = None,  # noqa: A002 - SciPy's name
    dtype: Any = None,
) -> SparseArray:
    """``scipy.sparse.diags``: :func:`diags_array` with positional ``offsets``."""
    return diags_array(diagonals, offsets=offsets, shape=shape, format=format, dtype=dtype)


def eye_array(
    m: int,
    n: int | None = None,
    *,
    k: int = 0,
    dtype: Any = float,
    format: str | None = None,  # noqa: A002 - SciPy's name
) -> SparseArray:
    """Ones on the ``k``-th diagonal (a constant), as ``scipy.sparse.eye_array``."""
    n = m if n is None else n
    length = max(0, min(m + k, n - k, m, n))
    return diags_array(
        np.ones(length, dtype=dtype), offsets=k, shape=(m, n), format=format, dtype=dtype
    )


def eye(
    m: int,
    n: int | None = None,
    k: int = 0,
    dtype: Any = float,
    format: str | None = None,  # noqa: A002 - SciPy's name
) -> SparseArray:
    """``scipy.sparse.eye``: :func:`eye_array` with positional ``k``."""
    return eye_array(m, n, k=k, dtype=dtype, format=format)


def identity(n: int, dtype: Any = "d", format: str | None = None) -> SparseArray:  # noqa: A002
    """The ``n x n`` identity, as ``scipy.sparse.identity``."""
    return eye_array(n, dtype=dtype, format=format)


def kron(A: Any, B: Any, format: str | None = None) -> SparseArray:  # noqa: A002
    """The Kronecker product, as ``scipy.sparse.kron``: ``data = A.data[ia] * B.data[ib]``
    over every pair of stored entries (COO unless ``format`` says otherwise).

    >>> import numpy, scigrad.scipy.sparse as sp
    >>> sp.kron(sp.eye(2), numpy.array([[1.0, 2.0]])).toarray()
    array([[1., 2., 0., 0.],
           [0., 0., 1., 2.]])
    """
    a, b = _as_sparse(A), _as_sparse(B)
    pattern, ga, gb = a.pattern.paired(
        "kron", b.pattern, lambda: _pattern.kron(a.pattern, b.pattern)
    )
    data = scatter_entries_p.bind(a.data, plan=ga) * scatter_entries_p.bind(b.data, plan=gb)
    return SparseArray(data, pattern).asformat(format)


def _block_sizes(grid: list[list[Any]], axis: int) -> list[int]:
    """Row heights (``axis=0``) or column widths (``axis=1``) of a block grid."""
    count = len(grid) if axis == 0 else len(grid[0])
    sizes = []
    for i in range(count):
        line = grid[i] if axis == 0 else [row[i] for row in grid]
        found = {b.shape[axis] for b in line if b is not None}
        where = f"blocks[{i},:]" if axis == 0 else f"blocks[:,{i}]"
        if not found:
            raise ValueError(f"{where} is all None: its {('height', 'width')[axis]} is unknown")
        if len(found) > 1:
            raise ValueError(
                f"{where} has incompatible {('row', 'column')[axis]} dimensions: {sorted(found)}"
            )
        sizes.append(found.pop())
    return sizes


def bmat(blocks: Any, format: str | None = None, dtype: Any = None) -> SparseArray:  # noqa: A002
    """A sparse array from a 2-D grid of sparse (or dense) blocks, ``None`` for zero blocks,
    as ``scipy.sparse.bmat`` (COO unless ``format`` says otherwise).

    >>> import numpy, scigrad.scipy.sparse as sp
    >>> sp.bmat([[sp.eye(2), None], [None, numpy.array([[3.0]])]]).toarray()
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 3.]])
    """
    try:
        rows = [list(row) for row in blocks]
    except TypeError:
        raise ValueError("blocks must be a 2-D grid (a list of lists of blocks)") from None
    if not rows:
        raise ValueError("blocks must be a non-empty 2-D grid (a list of lists of blocks)")
    grid = [[None if b is None else _as_sparse(b) for b in row] for row in rows]
    if len({len(row) for row in grid}) != 1 or len(grid[0]) == 0:
        raise ValueError("blocks must be a 2-D grid: every row needs the same number of blocks")
    heights, widths = _block_sizes(grid, 0), _block_sizes(grid, 1)
    present = [(i, j, b) for i, row in enumerate(grid) for j, b in enumerate(row) if b is not None]
    patterns = tuple(b.pattern for _, _, b in present)
    key = (tuple((i, j, id(b.pattern)) for i, j, b in present), tuple(heights), tuple(widths))
    hit = _BLOCK_CACHE.get(key)
    if hit is not None and all(p is q for p, q in zip(hit[0], patterns, strict=True)):
        pattern = hit[1]
    else:
        row_start = np.concatenate([[0], np.cumsum(heights)]).astype(np.int64)
        col_start = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        rows = [b.pattern.rows + row_start[i] for i, _, b in present]
        cols = [b.pattern.cols + col_start[j] for _, j, b in present]
        shape = (int(row_start[-1]), int(col_start[-1]))
        pattern = Pattern("coo", shape, None, None, np.concatenate(rows), np.concatenate(cols))
        _remember(_BLOCK_CACHE, key, (patterns, pattern))
    datas = [b.data for _, _, b in present]
    data = snp.concatenate(datas) if len(datas) > 1 else datas[0]
    if dtype is not None:
        data = snp.astype(data, np.dtype(dtype))
    return SparseArray(data, pattern).asformat(format)


def hstack(blocks: Any, format: str | None = None, dtype: Any = None) -> SparseArray:  # noqa: A002
    """Blocks side by side, as ``scipy.sparse.hstack``."""
    return bmat([list(blocks)], format=format, dtype=dtype)


def vstack(blocks: Any, format: str | None = None, dtype: Any = None) -> SparseArray:  # noqa: A002
    """Blocks on top of each other, as ``scipy.sparse.vstack``."""
    return bmat([[b] for b in blocks], format=format, dtype=dtype)


def block_diag(mats: Any, format: str | None = None, dtype: Any = None) -> SparseArray:  # noqa: A002
    """Blocks along the diagonal, as ``scipy.sparse.block_diag``."""
    mats = list(mats)
    grid = [[m if i == j else None for j in range(len(mats))] for i, m in enumerate(mats)]
    return bmat(grid, format=format, dtype=dtype)


def _triangle(A: Any, k: int, format: str | None, lower: bool) -> SparseArray:  # noqa: A002
    a = _as_sparse(A)
    pattern, plan = a.pattern.triangle_plan(int(k), lower)
    return SparseArray(_apply(plan, a.data), pattern).asformat(format)


def tril(A: Any, k: int = 0, format: str | None = None) -> SparseArray:  # noqa: A002
    """The entries on and below the ``k``-th diagonal, as ``scipy.sparse.tril``."""
    return _triangle(A, k, format, lower=True)


def triu(A: Any, k: int = 0, format: str | None = None) -> SparseArray:  # noqa: A002
    """The entries on and above the ``k``-th diagonal, as ``scipy.sparse.triu``."""
    return _triangle(A, k, format, lower=False)
