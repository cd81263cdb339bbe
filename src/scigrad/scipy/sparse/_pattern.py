"""Sparsity patterns: the static half of a sparse matrix, and plans computed from it once.

A sparse matrix in scigrad is ``data`` (the differentiable stored values, a 1-D array that
may be traced) on a :class:`Pattern` (everything else: format, shape, index arrays). A
pattern never changes, so whatever is derived from it — the row of every stored entry, the
map from COO entries to CSR slots that sums duplicates, the entries kept by a row/column
selection, the union with another pattern — is computed once and cached on it. Repeated
assembly with the same index arrays (every iteration of an optimization loop) therefore
costs O(nnz) arithmetic and no sorting.

Every structural operation is expressed as a :class:`Plan`: output entry ``j`` is the sum of
input entries ``k`` with ``target[k] == j``. That single linear map covers format
conversion (a permutation), summing duplicates (a segment sum), selections (a gather) and
reductions to vectors (a row or column sum); one primitive (``sparse_scatter``) with one
pair of rules differentiates them all, and its transpose is a gather: the cotangent of every
input entry is the cotangent of the output slot it went to, so duplicates each receive the
cotangent of their summed entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sps

__all__ = ["Pattern", "Plan", "coo_pattern"]

_INDEX = np.int64


@dataclass(frozen=True, eq=False)
class Plan:
    """``out[target[k]] += in[k]``: a linear map from one entry list to another."""

    target: np.ndarray
    size: int
    #: True when ``target`` is a permutation (no sums): the transpose is then a plain
    #: gather and the map is its own inverse's transpose.
    is_permutation: bool = False


@dataclass(eq=False)
class Pattern:
    """Format (``"coo"``, ``"csr"`` or ``"csc"``), shape and index arrays of a sparse matrix.

    CSR/CSC patterns are canonical (sorted indices, no duplicates); COO patterns keep
    entries as given, duplicates included. Patterns compare by identity; derived data is
    cached in ``cache``.
    """

    format: str
    shape: tuple[int, int]
    #: CSR/CSC: compressed pointer array; COO: None.
    indptr: np.ndarray | None
    #: CSR: column of each entry; CSC: row of each entry; COO: None.
    indices: np.ndarray | None
    #: COO only: row and column of each entry.
    coo_row: np.ndarray | None = None
    coo_col: np.ndarray | None = None
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def nnz(self) -> int:
        if self.format == "coo":
            return int(self.coo_row.shape[0])
        return int(self.indices.shape[0])

    # -- row and column of every stored entry ----------------------------------------------
    @property
    def rows(self) -> np.ndarray:
        if "rows" not in self.cache:
            self.cache["rows"] = self._coordinates()[0]
        return self.cache["rows"]

    @property
    def cols(self) -> np.ndarray:
        if "cols" not in self.cache:
            self.cache["cols"] = self._coordinates()[1]
        return self.cache["cols"]

    def _coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        if self.format == "coo":
            return self.coo_row, self.coo_col
        major = np.repeat(np.arange(len(self.indptr) - 1, dtype=_INDEX), np.diff(self.indptr))
        return (major, self.indices) if self.format == "csr" else (self.indices, major)

    # -- derived patterns --------------------------------------------------------------------
    @property
    def T(self) -> Pattern:
        """The pattern of the transpose, with the same entry order (so the same ``data``):
        a CSR pattern read as CSC, and vice versa."""
        if "T" not in self.cache:
            m, n = self.shape
            if self.format == "coo":
                t = Pattern("coo", (n, m), None, None, self.coo_col, self.coo_row)
            else:
                fmt = "csc" if self.format == "csr" else "csr"
                t = Pattern(fmt, (n, m), self.indptr, self.indices)
            t.cache["T"] = self
            self.cache["T"] = t
        return self.cache["T"]

    def to_scipy(self, data: np.ndarray) -> sps.sparray:
        """A SciPy sparse array of this pattern with the given (concrete) values."""
        if self.format == "coo":
            return sps.coo_array((data, (self.coo_row, self.coo_col)), shape=self.shape)
        cls = sps.csr_array if self.format == "csr" else sps.csc_array
        a = cls((data, self.indices, self.indptr), shape=self.shape)
        a.has_sorted_indices = True
        return a

    def converted(self, fmt: str) -> tuple[Pattern, Plan]:
        """This pattern in format ``fmt`` (canonical), and the plan taking ``data`` there."""
        key = ("to", fmt)
        if key not in self.cache:
            self.cache[key] = self._convert(fmt)
        return self.cache[key]

    def _convert(self, fmt: str) -> tuple[Pattern, Plan]:
        m, n = self.shape
        if fmt == "coo":
            pattern = Pattern("coo", self.shape, None, None, self.rows, self.cols)
            return pattern, Plan(np.arange(self.nnz, dtype=_INDEX), self.nnz, True)
        # Sort entries by (major, minor) and give equal coordinates the same slot.
        major, minor = (self.rows, self.cols) if fmt == "csr" else (self.cols, self.rows)
        n_major = m if fmt == "csr" else n
        n_minor = n if fmt == "csr" else m
        key = major.astype(_INDEX) * max(n_minor, 1) + minor
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        first = np.ones(len(sorted_key), dtype=bool)
        first[1:] = sorted_key[1:] != sorted_key[:-1]
        slot_of_sorted = np.cumsum(first) - 1
        target = np.empty(len(order), dtype=_INDEX)
        target[order] = slot_of_sorted
        unique_keys = sorted_key[first]
        out_major = unique_keys // max(n_minor, 1)
        out_minor = (unique_keys % max(n_minor, 1)).astype(_INDEX)
        indptr = np.zeros(n_major + 1, dtype=_INDEX)
        np.cumsum(np.bincount(out_major, minlength=n_major), out=indptr[1:])
        pattern = Pattern(fmt, self.shape, indptr, out_minor)
        size = int(len(unique_keys))
        return pattern, Plan(target, size, size == len(order))


# COO patterns are cached by the identity of the user's index arrays, so rebuilding a
# matrix from the same (row, col) every iteration finds its plans already computed.
_COO_CACHE: dict[tuple[int, int, tuple[int, int]], tuple[Any, Any, Pattern]] = {}
_COO_CACHE_SIZE = 64


def coo_pattern(row: Any, col: Any, shape: tuple[int, int] | None) -> Pattern:
    """The (cached) COO pattern of entries at ``(row, col)``; validates the indices."""
    key = (id(row), id(col), shape)
    hit = _COO_CACHE.get(key)
    if hit is not None and hit[0] is row and hit[1] is col:
        return hit[2]
    r = np.asarray(row)
    c = np.asarray(col)
    if r.ndim != 1 or c.ndim != 1 or r.shape != c.shape:
        raise ValueError(
            f"row and col must be 1-D index arrays of equal length, got shapes {r.shape} "
            f"and {c.shape}"
        )
    if r.size and (r.dtype.kind not in "iu" or c.dtype.kind not in "iu"):
        raise TypeError(f"row and col must be integer arrays, got {r.dtype} and {c.dtype}")
    r, c = r.astype(_INDEX), c.astype(_INDEX)
    if shape is None:
        shape = (int(r.max()) + 1 if r.size else 0, int(c.max()) + 1 if c.size else 0)
    shape = (int(shape[0]), int(shape[1]))
    if r.size and (r.min() < 0 or c.min() < 0 or r.max() >= shape[0] or c.max() >= shape[1]):
        raise IndexError(
            f"sparse indices out of range for shape {shape}: rows in [{r.min()}, {r.max()}], "
            f"columns in [{c.min()}, {c.max()}]"
        )
    pattern = Pattern("coo", shape, None, None, r, c)
    if len(_COO_CACHE) >= _COO_CACHE_SIZE:
        _COO_CACHE.pop(next(iter(_COO_CACHE)))
    _COO_CACHE[key] = (row, col, pattern)
    return pattern
