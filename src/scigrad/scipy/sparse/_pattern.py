"""Sparsity patterns: the static half of a sparse matrix, and plans computed from it once.

A sparse matrix in scigrad is ``data`` (the differentiable stored values, a 1-D array that
may be traced) on a :class:`Pattern` (everything else: format, shape, index arrays). A
pattern never changes, so whatever is derived from it — the row of every stored entry, the
map from COO entries to CSR slots that sums duplicates, the entries kept by a row/column
selection, the union with another pattern — is computed once and cached on it. Repeated
assembly with the same index arrays (every iteration of an optimization loop) therefore
costs O(nnz) arithmetic and no sorting.

Every structural operation is expressed as a :class:`Plan`: output entry ``j`` is the sum of
the input entries ``source[k]`` with ``target[k] == j``. That single linear map covers
format conversion (a permutation), summing duplicates (a segment sum), selections and
intersections (gathers), unions (injective scatters) and reductions to vectors (a row or
column sum); one primitive (``sparse_scatter_entries``) with one pair of rules
differentiates them all. Its transpose is the plan with source and target exchanged — the
cotangent of every input entry is the cotangent of the output slot it went to, so
duplicates each receive the cotangent of their summed entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sps

__all__ = ["Pattern", "Plan", "coo_pattern", "compressed_pattern"]

_INDEX = np.int64
#: At most this many plans pairing a pattern with other patterns (sums, products, ...)
#: and this many row/column selections are cached on one pattern (oldest dropped first).
_PAIR_CACHE_SIZE = 32
_SELECT_CACHE_SIZE = 32


@dataclass(frozen=True, eq=False)
class Plan:
    """``out[target[k]] += in[source[k]]``: a linear map from one entry list to another.

    ``source=None`` reads the input entries in order (``in[k]``); ``target=None`` writes
    entry ``k`` to slot ``k`` (a gather, ``out = in[source]``). ``size`` is the length of
    the output, ``in_size`` that of the input (implied by ``target`` when ``source`` is
    None). The transpose :attr:`T` exchanges source and target: it is the VJP of the map.
    """

    target: np.ndarray | None
    size: int
    #: True when the map is a bijection (a reordering): ``target`` (or ``source``) is a
    #: permutation, so the map needs no sums.
    is_permutation: bool = False
    source: np.ndarray | None = None
    in_size: int = -1

    def __post_init__(self) -> None:
        if self.in_size < 0:
            if self.source is not None or self.target is None:
                raise ValueError("a plan with a source array needs in_size")
            object.__setattr__(self, "in_size", int(self.target.shape[0]))

    @classmethod
    def gather(cls, source: np.ndarray, in_size: int, is_permutation: bool = False) -> Plan:
        """``out = in[source]``."""
        return cls(None, int(source.shape[0]), is_permutation, source, int(in_size))

    @cached_property
    def T(self) -> Plan:
        """The transpose (adjoint) map: ``out[source[k]] += in[target[k]]``."""
        if self.target is None:
            t = Plan(self.source, self.in_size, self.is_permutation, None, self.size)
        elif self.source is None:
            t = Plan(None, self.in_size, self.is_permutation, self.target, self.size)
        else:
            t = Plan(self.source, self.in_size, False, self.target, self.size)
        t.__dict__["T"] = self
        return t

    @cached_property
    def is_identity(self) -> bool:
        """True when the map leaves every entry where it is (no work to do)."""
        if not self.is_permutation or self.size != self.in_size:
            return False
        if self.target is not None and self.source is not None:
            return False
        idx = self.source if self.target is None else self.target
        return bool(np.array_equal(idx, np.arange(self.size)))


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

    @property
    def canonical_format(self) -> str:
        """The format of the canonical form: CSR for COO, the format itself otherwise."""
        return "csr" if self.format == "coo" else self.format

    @property
    def has_canonical_format(self) -> bool:
        """Sorted entries and no duplicates (always true of CSR/CSC patterns)."""
        if self.format != "coo":
            return True
        if "canonical" not in self.cache:
            keys = _keys(self, "csr")
            self.cache["canonical"] = bool(np.all(keys[1:] > keys[:-1]))
        return self.cache["canonical"]

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
        if fmt == "coo":
            pattern = Pattern("coo", self.shape, None, None, self.rows, self.cols)
            return pattern, Plan(np.arange(self.nnz, dtype=_INDEX), self.nnz, True)
        # Sort entries by (major, minor) and give equal coordinates the same slot.
        key = _keys(self, fmt)
        in_order = bool(np.all(key[1:] >= key[:-1]))  # e.g. triplets given row by row
        order = None if in_order else np.argsort(key, kind="stable")
        sorted_key = key if in_order else key[order]
        first = np.ones(len(sorted_key), dtype=bool)
        first[1:] = sorted_key[1:] != sorted_key[:-1]
        slot_of_sorted = np.cumsum(first, dtype=_INDEX) - 1
        if in_order:
            target = slot_of_sorted
        else:
            target = np.empty(len(order), dtype=_INDEX)
            target[order] = slot_of_sorted
        pattern = _from_keys(fmt, self.shape, sorted_key[first])
        size = pattern.nnz
        return pattern, Plan(target, size, size == len(key))

    # -- plans pairing this pattern with another (cached here, keyed by the other) ----------
    def paired(self, kind: str, other: Pattern, build: Callable[[], Any]) -> Any:
        """``build()``, cached on this pattern for ``(kind, other)``: the cache keeps a
        reference to ``other``, so its id cannot be reused while the entry lives."""
        pairs = self.cache.setdefault("pairs", {})
        key = (kind, id(other))
        hit = pairs.get(key)
        if hit is not None and hit[0] is other:
            return hit[1]
        value = build()
        if len(pairs) >= _PAIR_CACHE_SIZE:
            pairs.pop(next(iter(pairs)))
        pairs[key] = (other, value)
        return value

    def sum_plan(self, axis: int) -> Plan:
        """Row sums (``axis=1``) or column sums (``axis=0``) of the stored entries."""
        key = ("sum", axis)
        if key not in self.cache:
            m, n = self.shape
            self.cache[key] = Plan(self.cols, n) if axis == 0 else Plan(self.rows, m)
        return self.cache[key]

    def diagonal_plan(self, k: int) -> Plan:
        """The ``k``-th diagonal as a dense vector: entries on it go to their position along
        it (duplicates summed); positions with no stored entry stay zero."""
        key = ("diagonal", k)
        if key not in self.cache:
            m, n = self.shape
            length = max(0, min(m + min(k, 0), n - max(k, 0)))
            on = np.flatnonzero(self.cols - self.rows == k)
            position = (self.rows if k >= 0 else self.cols)[on]
            self.cache[key] = Plan(position, length, False, on, self.nnz)
        return self.cache[key]

    def triangle_plan(self, k: int, lower: bool) -> tuple[Pattern, Plan]:
        """The entries on or below (``lower``) / above the ``k``-th diagonal, kept in order."""
        key = ("triangle", k, lower)
        if key not in self.cache:
            offset = self.cols - self.rows
            keep = np.flatnonzero(offset <= k if lower else offset >= k)
            self.cache[key] = self.subset(keep)
        return self.cache[key]

    def subset(self, keep: np.ndarray) -> tuple[Pattern, Plan]:
        """The pattern of the entries ``keep`` (increasing), and the gather taking data there."""
        if self.format == "coo":
            pattern = Pattern("coo", self.shape, None, None, self.rows[keep], self.cols[keep])
        else:
            major = self.rows if self.format == "csr" else self.cols
            n_major = self.shape[0] if self.format == "csr" else self.shape[1]
            indptr = np.zeros(n_major + 1, dtype=_INDEX)
            np.cumsum(np.bincount(major[keep], minlength=n_major), out=indptr[1:])
            pattern = Pattern(self.format, self.shape, indptr, self.indices[keep])
        return pattern, Plan.gather(keep.astype(_INDEX, copy=False), self.nnz)

    def selection(self, key: Any) -> tuple[Pattern | None, Plan | int | None]:
        """The result of indexing a canonical (CSR/CSC) pattern with ``key``, as SciPy does.

        Returns ``(pattern, plan)`` for a 2-D result (the plan gathers the surviving entries,
        in the result's canonical order), or ``(None, position)`` for a single element
        (``position`` None when no entry is stored there). Computed by indexing, with SciPy,
        the matrix whose values are the entry positions ``1..nnz``; cached per index.
        """
        cache_key = _index_cache_key(key)
        selections = self.cache.setdefault("selections", {})
        hit = selections.get(cache_key)
        if hit is None:
            hit = self._select(key)
            if len(selections) >= _SELECT_CACHE_SIZE:
                selections.pop(next(iter(selections)))
            selections[cache_key] = hit
        return hit

    def _select(self, key: Any) -> tuple[Pattern | None, Plan | int | None]:
        if self.format == "coo":
            raise ValueError("selections are computed on canonical (CSR/CSC) patterns")
        positions = self.to_scipy(np.arange(1, self.nnz + 1, dtype=np.float64))
        out = positions[key]
        if not sps.issparse(out):
            if np.ndim(out) != 0:
                raise NotImplementedError(
                    "this index gives a dense result; scigrad supports selections that keep "
                    "a 2-D sparse array and single elements A[i, j]"
                )
            pos = int(round(float(out)))
            return None, (pos - 1 if pos > 0 else None)
        if out.ndim != 2:
            raise NotImplementedError(
                "scigrad sparse arrays are 2-D: an integer index would give a 1-D sparse "
                "array. Keep the axis with a list or a slice (A[[i]] or A[i:i + 1]), or "
                "densify the row explicitly (A[[i]].toarray()[0])."
            )
        fmt = out.format if out.format in ("csr", "csc") else self.format
        out = out.asformat(fmt)
        out.sum_duplicates()  # sorts the indices; no duplicates can arise
        source = np.rint(out.data).astype(_INDEX) - 1
        pattern = Pattern(fmt, out.shape, out.indptr.astype(_INDEX), out.indices.astype(_INDEX))
        if (
            fmt == self.format
            and pattern.shape == self.shape
            and source.shape[0] == self.nnz
            and np.array_equal(source, np.arange(self.nnz))
            and np.array_equal(pattern.indptr, self.indptr)
            and np.array_equal(pattern.indices, self.indices)
        ):
            return self, Plan.gather(source, self.nnz, True)
        return pattern, Plan.gather(source, self.nnz)


# -- building patterns ----------------------------------------------------------------------
def _keys(pattern: Pattern, fmt: str) -> np.ndarray:
    """One integer per entry, ordered as the entries of format ``fmt`` (major, minor)."""
    m, n = pattern.shape
    major, minor = (pattern.rows, pattern.cols) if fmt == "csr" else (pattern.cols, pattern.rows)
    n_minor = n if fmt == "csr" else m
    return major.astype(_INDEX) * max(n_minor, 1) + minor


def _from_keys(fmt: str, shape: tuple[int, int], keys: np.ndarray) -> Pattern:
    """The canonical ``fmt`` pattern of the sorted, unique entry keys of :func:`_keys`."""
    m, n = shape
    n_major, n_minor = (m, n) if fmt == "csr" else (n, m)
    major = keys // max(n_minor, 1)
    minor = (keys % max(n_minor, 1)).astype(_INDEX)
    indptr = np.zeros(n_major + 1, dtype=_INDEX)
    np.cumsum(np.bincount(major, minlength=n_major), out=indptr[1:])
    return Pattern(fmt, shape, indptr, minor)


def compressed_pattern(
    fmt: str, shape: tuple[int, int], row: Any, col: Any
) -> tuple[Pattern, Plan]:
    """The canonical ``fmt`` pattern of entries ``(row, col)`` (any order, duplicates
    allowed), and the plan summing values given in that order into it."""
    joint = Pattern("coo", (int(shape[0]), int(shape[1])), None, None, row, col)
    return joint._convert(fmt)


def _arange_plan(target: np.ndarray, size: int) -> Plan | None:
    """None when ``target`` maps entry ``k`` to slot ``k`` (no work), else the scatter."""
    if target.shape[0] == size and np.array_equal(target, np.arange(size)):
        return None
    return Plan(target, size)


def union(p: Pattern, q: Pattern, fmt: str) -> tuple[Pattern, Plan | None, Plan | None]:
    """The canonical ``fmt`` pattern holding the entries of ``p`` and of ``q``, and the plans
    taking each one's data there (None: already in place, nothing to do). When one of the
    two already is that pattern, it is returned itself, so sums keep their operands'
    structure (``K + K`` and ``K + M`` on K's structure stay on K's pattern)."""
    joint, plan = compressed_pattern(
        fmt, p.shape, np.concatenate([p.rows, q.rows]), np.concatenate([p.cols, q.cols])
    )
    size = joint.nnz
    plan_p = _arange_plan(plan.target[: p.nnz], size)
    plan_q = _arange_plan(plan.target[p.nnz :], size)
    if plan_p is None and p.format == fmt:
        joint = p
    elif plan_q is None and q.format == fmt:
        joint = q
    return joint, plan_p, plan_q


def intersection(p: Pattern, q: Pattern) -> tuple[Pattern, Plan | None, Plan | None]:
    """The entries stored in both canonical patterns ``p`` and ``q`` (same format), and the
    gathers taking each one's data there (None: nothing to do)."""
    fmt = p.format
    kp, kq = _keys(p, fmt), _keys(q, fmt)
    common, ip, iq = np.intersect1d(kp, kq, assume_unique=True, return_indices=True)
    full_p = ip.shape[0] == p.nnz
    full_q = iq.shape[0] == q.nnz
    pattern = p if full_p else q if full_q else _from_keys(fmt, p.shape, common)
    plan_p = None if full_p else Plan.gather(ip.astype(_INDEX), p.nnz)
    plan_q = None if full_q else Plan.gather(iq.astype(_INDEX), q.nnz)
    return pattern, plan_p, plan_q


def kron(p: Pattern, q: Pattern) -> tuple[Pattern, Plan, Plan]:
    """The COO pattern of ``kron(A, B)`` (entry ``(a, b)`` in ``a``-major order) and the
    gathers of ``A``'s and ``B``'s entries: ``data = A.data[ia] * B.data[ib]``."""
    (m, n), (r, s) = p.shape, q.shape
    ia = np.repeat(np.arange(p.nnz, dtype=_INDEX), q.nnz)
    ib = np.tile(np.arange(q.nnz, dtype=_INDEX), p.nnz)
    rows = p.rows[ia] * r + q.rows[ib]
    cols = p.cols[ia] * s + q.cols[ib]
    pattern = Pattern("coo", (m * r, n * s), None, None, rows, cols)
    return pattern, Plan.gather(ia, p.nnz), Plan.gather(ib, q.nnz)


def product(p: Pattern, q: Pattern) -> tuple[Pattern, Plan, Plan, Plan]:
    """The CSR pattern of the product ``A @ B`` and its plans: every pair of entries
    ``A[i, k]``, ``B[k, j]`` is gathered (``ia``, ``ib``), multiplied, and summed into slot
    ``(i, j)`` — O(number of such pairs), the cost of SciPy's own product."""
    k = p.shape[1]
    order = np.argsort(q.rows, kind="stable")
    counts = np.bincount(q.rows, minlength=k)
    starts = np.zeros(k, dtype=_INDEX)
    np.cumsum(counts[:-1], out=starts[1:])
    per_entry = counts[p.cols]
    total = int(per_entry.sum())
    ia = np.repeat(np.arange(p.nnz, dtype=_INDEX), per_entry)
    first = np.cumsum(per_entry) - per_entry
    within = np.arange(total, dtype=_INDEX) - np.repeat(first, per_entry)
    ib = order[np.repeat(starts[p.cols], per_entry) + within].astype(_INDEX)
    pattern, plan = compressed_pattern("csr", (p.shape[0], q.shape[1]), p.rows[ia], q.cols[ib])
    return pattern, Plan.gather(ia, p.nnz), Plan.gather(ib, q.nnz), plan


def _index_cache_key(key: Any) -> tuple:
    """A hashable stand-in for a (concrete) NumPy index."""
    parts = key if isinstance(key, tuple) else (key,)
    out: list[Any] = []
    for k in parts:
        if isinstance(k, bool | np.bool_):
            out.append(("b", bool(k)))
        elif isinstance(k, int | np.integer):
            out.append(("i", int(k)))
        elif isinstance(k, slice):
            out.append(("s", k.start, k.stop, k.step))
        elif k is None or k is Ellipsis:
            out.append(("n", k is None))
        else:
            a = np.asarray(k)
            out.append(("a", a.shape, a.dtype.str, a.tobytes()))
    return tuple(out)


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
    if shape[0] < 0 or shape[1] < 0:
        raise ValueError(f"invalid shape {shape}: dimensions must be non-negative")
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
