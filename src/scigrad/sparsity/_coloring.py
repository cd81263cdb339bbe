"""Graph colorings for compressed derivative evaluation.

* :func:`column_coloring`: columns of a Jacobian pattern that share a row get different
  colors (a distance-2 coloring of the bipartite row/column graph, i.e. a coloring of the
  column intersection graph). Each color class is one seed vector of a JVP; every nonzero
  ``J[i, j]`` is read directly from product ``c(j)``. Rows: color the transpose (VJPs).
* :func:`star_coloring`: a symmetric coloring of a Hessian pattern (Gebremedhin, Manne and
  Pothen, "What color is your Jacobian?", SIAM Review 47, 2005, Algorithm 4.1): adjacent
  vertices get different colors and every path on four vertices uses at least three colors,
  so every pair of color classes induces a forest of stars. Each color is one
  Hessian-vector product, and every nonzero is recovered directly (no substitution): from
  the row whose end of the edge is a leaf of its star (:func:`~scigrad.sparsity.recover_hessian`).

Both are greedy over a vertex ordering (smallest-last, largest-first or natural) and run
in Python over CSR index lists: O(sum of squared degrees) for the star coloring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import scipy.sparse as sp

from ._closure import unique_sorted

__all__ = [
    "column_coloring",
    "is_column_coloring",
    "is_star_coloring",
    "row_coloring",
    "star_coloring",
]

Order = Literal["smallest_last", "largest_first", "natural"]


def _csr(pattern: object) -> sp.csr_array:
    p = sp.csr_array(pattern)
    if p.ndim != 2:
        raise ValueError(f"a sparsity pattern must be 2-D, got shape {p.shape}")
    p = p.astype(bool)
    p.eliminate_zeros()
    return p


def _order(indptr: list, indices: list, order: str) -> list[int]:
    """The vertex order of a greedy coloring of the graph in CSR lists."""
    n = len(indptr) - 1
    if order == "largest_first":
        return np.argsort(-np.diff(indptr), kind="stable").tolist()
    if order == "natural":
        return list(range(n))
    if order == "smallest_last":
        return _smallest_last(indptr, indices, n)
    raise ValueError(f"order must be 'smallest_last', 'largest_first' or 'natural', got {order!r}")


def _smallest_last(indptr: list, indices: list, n: int) -> list[int]:
    """Matula and Beck's smallest-last order: repeatedly remove a vertex of least degree
    in what remains, and color in the reverse order of removal (bucket queue, O(n + m))."""
    degree = [indptr[v + 1] - indptr[v] for v in range(n)]
    buckets: list[set] = [set() for _ in range(max(degree, default=0) + 1)]
    for v in range(n):
        buckets[degree[v]].add(v)
    removed = [False] * n
    order = []
    d = 0
    for _ in range(n):
        d = max(d - 1, 0)  # removing a vertex lowers its neighbors' degrees by one at most
        while not buckets[d]:
            d += 1
        v = buckets[d].pop()
        removed[v] = True
        order.append(v)
        for u in indices[indptr[v] : indptr[v + 1]]:
            if not removed[u]:
                du = degree[u]
                buckets[du].discard(u)
                buckets[du - 1].add(u)
                degree[u] = du - 1
    order.reverse()
    return order


def _adjacency(graph: sp.csr_array) -> sp.csr_array:
    """Symmetric adjacency without self-loops, as a canonical CSR array."""
    g = sp.csr_array(graph, dtype=np.int8)
    g = (g + g.T).tocsr()
    g.setdiag(0)
    g.eliminate_zeros()
    g.sort_indices()
    return g


def column_coloring(pattern: object, order: Order = "smallest_last") -> np.ndarray:
    """Colors of the columns of an ``(m, n)`` Jacobian pattern such that no two columns
    with an entry in the same row share a color (greedy, distance-2 in the bipartite graph),
    in smallest-last (default), largest-first or natural vertex order.

    >>> import numpy as np
    >>> from scigrad.sparsity import column_coloring
    >>> column_coloring(np.eye(4, dtype=bool) | np.eye(4, k=1, dtype=bool), "natural")
    array([0, 1, 0, 1])
    """
    p = _csr(pattern).astype(np.int8)
    n = p.shape[1]
    graph = _adjacency(p.T @ p)  # columns sharing a row
    indptr, indices = graph.indptr.tolist(), graph.indices.tolist()
    return _greedy(indptr, indices, _order(indptr, indices, order), n)


def row_coloring(pattern: object, order: Order = "smallest_last") -> np.ndarray:
    """Colors of the rows of a Jacobian pattern such that no two rows with an entry in the
    same column share a color (the column coloring of the transpose; for VJPs)."""
    return column_coloring(_csr(pattern).T, order)


def _greedy(indptr: list, indices: list, order: list, n: int) -> np.ndarray:
    color = [-1] * n
    mark = [-1] * (n + 1)  # mark[c] == v: color c is forbidden for vertex v
    for v in order:
        for u in indices[indptr[v] : indptr[v + 1]]:
            c = color[u]
            if c >= 0:
                mark[c] = v
        c = 0
        while mark[c] == v:
            c += 1
        color[v] = c
    return np.array(color, dtype=np.int64)


def star_coloring(pattern: object, order: Order = "largest_first") -> np.ndarray:
    """A star coloring of the symmetric ``(n, n)`` pattern's adjacency graph (the diagonal
    is ignored; the pattern is symmetrized): adjacent vertices differ and every path on four
    vertices uses at least three colors. Vertices are colored largest degree first by
    default (on grid Hessians it needs fewer colors here than smallest-last).

    >>> import numpy as np
    >>> from scigrad.sparsity import star_coloring
    >>> tridiagonal = sum(np.eye(6, k=k, dtype=bool) for k in (-1, 0, 1))
    >>> star_coloring(tridiagonal, "natural")
    array([0, 1, 0, 2, 0, 1])
    """
    p = _csr(pattern)
    if p.shape[0] != p.shape[1]:
        raise ValueError(f"a Hessian pattern must be square, got shape {p.shape}")
    graph = _adjacency(p)
    n = p.shape[0]
    indptr, indices = graph.indptr.tolist(), graph.indices.tolist()
    color = [-1] * n
    mark = [-1] * (n + 1)
    # count[c * n + u]: neighbors of u colored c
    count: dict[int, int] = {}
    for v in _order(indptr, indices, order):
        nbrs = indices[indptr[v] : indptr[v + 1]]
        for w in nbrs:
            cw = color[w]
            if cw >= 0:
                mark[cw] = v
            key = cw * n
            for x in indices[indptr[w] : indptr[w + 1]]:
                cx = color[x]
                if cx < 0 or x == v:
                    continue
                # v - w - x: with w uncolored, x's color would put two of w's neighbors in
                # one color; with w colored, it would close a bicolored path v-w-x-y
                # (y another neighbor of x colored like w).
                if cw < 0 or count.get(key + x, 0) >= 2:
                    mark[cx] = v
        c = 0
        while mark[c] == v:
            c += 1
        color[v] = c
        key = c * n
        for w in nbrs:
            count[key + w] = count.get(key + w, 0) + 1
    return np.array(color, dtype=np.int64)


def is_column_coloring(pattern: object, colors: np.ndarray) -> bool:
    """True when no row of ``pattern`` has two entries in columns of the same color."""
    p = _csr(pattern)
    colors = np.asarray(colors)
    if colors.shape != (p.shape[1],):
        return False
    rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))
    keys = rows * (int(colors.max(initial=0)) + 1) + colors[p.indices]
    return len(unique_sorted(keys)) == p.nnz


def is_star_coloring(pattern: object, colors: np.ndarray) -> bool:
    """True when ``colors`` is a star coloring of the symmetric pattern's adjacency graph:
    adjacent vertices differ, and for every edge ``(i, j)`` one end has the other as its
    only neighbor of that color (equivalently, no path on four vertices is bicolored)."""
    p = _csr(pattern)
    colors = np.asarray(colors)
    if p.shape[0] != p.shape[1] or colors.shape != (p.shape[0],):
        return False
    g = _adjacency(p).tocoo()
    i, j = g.row, g.col
    if np.any(colors[i] == colors[j]):
        return False
    count = _neighbor_color_counts(g, colors)
    ok = (count(i, colors[j]) == 1) | (count(j, colors[i]) == 1)
    return bool(np.all(ok))


def _neighbor_color_counts(g: sp.coo_array, colors: np.ndarray) -> Callable:
    """``count(u, c)``: the number of entries of row ``u`` of ``g`` in columns colored ``c``
    (vectorized over index arrays)."""
    k = int(colors.max(initial=0)) + 1
    keys, counts = unique_sorted(g.row.astype(np.int64) * k + colors[g.col], True)

    def count(u: np.ndarray, c: np.ndarray) -> np.ndarray:
        q = np.asarray(u, np.int64) * k + c
        pos = np.minimum(np.searchsorted(keys, q), max(len(keys) - 1, 0))
        if not len(keys):
            return np.zeros(q.shape, np.int64)
        return np.where(keys[pos] == q, counts[pos], 0)

    return count
