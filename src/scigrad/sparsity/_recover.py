"""Seed matrices and direct recovery of sparse derivatives from compressed products.

With a coloring ``c`` of ``k`` colors, the seed matrix ``S`` (``n x k``) has ``S[j, c(j)] =
1``. Column coloring: ``B = J S``; every nonzero is ``J[i, j] = B[i, c(j)]``. Row coloring:
``B = S^T J``; ``J[i, j] = B[c(i), j]``. Star coloring of a symmetric ``H``: ``B = H S``;
``H[i, i] = B[i, c(i)]`` and, for an edge ``(i, j)``, ``H[i, j] = B[i, c(j)]`` when ``j`` is
``i``'s only neighbor colored ``c(j)``, else ``B[j, c(i)]`` (one of the two always holds in
a star coloring). The recovered arrays keep the pattern's structure: entries that happen to
be zero at the evaluation point are stored.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._coloring import _adjacency, _csr, _neighbor_color_counts

__all__ = ["recover_hessian", "recover_jacobian", "seed_matrix"]


def seed_matrix(colors: np.ndarray, num_colors: int | None = None) -> np.ndarray:
    """The ``(n, k)`` float seed matrix of a coloring: ``S[j, colors[j]] = 1``."""
    colors = np.asarray(colors, dtype=np.int64)
    k = int(colors.max(initial=-1)) + 1 if num_colors is None else num_colors
    seeds = np.zeros((len(colors), k))
    seeds[np.arange(len(colors)), colors] = 1.0
    return seeds


def recover_jacobian(
    pattern: object, colors: np.ndarray, compressed: np.ndarray, mode: str = "fwd"
) -> sp.csr_array:
    """The sparse Jacobian from compressed products: ``compressed = J @ seed_matrix(colors)``
    for a column coloring (``mode="fwd"``), or ``seed_matrix(colors).T @ J`` for a row
    coloring (``mode="rev"``)."""
    p = _csr(pattern)
    rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))
    cols = p.indices
    b = np.asarray(compressed)
    values = b[rows, colors[cols]] if mode == "fwd" else b[colors[rows], cols]
    return sp.csr_array((values.astype(np.float64), cols, p.indptr), shape=p.shape)


def recover_hessian(pattern: object, colors: np.ndarray, compressed: np.ndarray) -> sp.csr_array:
    """The sparse symmetric Hessian from ``compressed = H @ seed_matrix(colors)`` for a star
    coloring ``colors`` of ``pattern`` (symmetrized). The result is exactly symmetric: both
    entries of an off-diagonal pair are read from the same product."""
    p = _csr(pattern)
    p = (p + p.T).tocsr()
    p.sort_indices()
    b = np.asarray(compressed)
    rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))
    cols = p.indices
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    count = _neighbor_color_counts(_adjacency(p).tocoo(), colors)
    off = lo != hi
    values = b[rows, colors[rows]]  # the diagonal
    if np.any(off):
        i, j = lo[off], hi[off]
        i_is_leaf = count(i, colors[j]) == 1
        values[off] = np.where(i_is_leaf, b[i, colors[j]], b[j, colors[i]])
    return sp.csr_array((values, cols, p.indptr), shape=p.shape)
