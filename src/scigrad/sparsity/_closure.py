"""Dependency sets and second-order pairs of recorded nodes, in one pass.

Nodes were recorded operands-first (``_domains``), so creation order is a topological
order. One backward sweep counts, for every node reachable from the outputs, the references
from its consumers; one forward sweep then builds each node's dependency set from its
operands' sets, merging the smaller sets into the largest one (*small-to-large*). An
operand's set is reused in place by its last consumer and copied only while other
consumers still need it, so a reduction chain costs one insertion per step and the peak
memory is that of the sets still needed.

Second-order pairs are emitted at the nodes that create them (``MUL``, ``DIV``, ``NONLIN``)
as blocks built from their operands' sets (:class:`_Pairs`); the all-pairs block of one
node's set is emitted at most once, however many consumers ask for it.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._domains import DIV, EMPTY, LEAF, LIN, MUL, DepNode

__all__ = ["dependency_sets", "rows_to_csr", "unique_sorted"]


class _Pairs:
    """Second-order pairs, kept as blocks rather than one by one: *cliques* (all pairs of a
    set ``U``: one row of an incidence matrix ``C``) and *crosses* (``A x B`` and ``B x A``:
    one row each of ``A`` and ``B``). The pattern is then ``C^T C + A^T B + B^T A``, a
    sparse product computed by SciPy: each block costs its size in Python, its pairs in C.
    """

    def __init__(self) -> None:
        self.clique_idx, self.clique_len = array("q"), array("q")
        self.a_idx, self.a_len = array("q"), array("q")
        self.b_idx, self.b_len = array("q"), array("q")

    def clique(self, u: set) -> None:
        self.clique_idx.extend(u)
        self.clique_len.append(len(u))

    def cross(self, a: set, b: set) -> None:
        self.a_idx.extend(a)
        self.a_len.append(len(a))
        self.b_idx.extend(b)
        self.b_len.append(len(b))

    def pattern(self, n: int) -> sp.csr_array:
        """The symmetric boolean ``n x n`` pattern of all the blocks."""
        c = _incidence(self.clique_idx, self.clique_len, n)
        total = (c.T @ c).tocsr()
        if len(self.a_len):
            a = _incidence(self.a_idx, self.a_len, n)
            b = _incidence(self.b_idx, self.b_len, n)
            cross = (a.T @ b).tocsr()
            total = total + cross + cross.T
        total = sp.csr_array(total)
        total.sum_duplicates()  # canonical: sorted indices, no duplicates
        return _csr(total.indices.astype(np.int64), total.indptr.astype(np.int64), (n, n))


def _incidence(idx: array, lengths: array, n: int) -> sp.csr_array:
    """Rows of ones at the collected indices (counts in int64: they never wrap to zero)."""
    indptr = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(np.frombuffer(lengths, np.int64), out=indptr[1:])
    indices = np.frombuffer(idx, np.int64)
    data = np.ones(len(indices), np.int64)
    return sp.csr_array((data, indices, indptr), shape=(len(lengths), n))


def dependency_sets(
    nodes: Sequence[DepNode], outputs: Sequence[Any], pairs: _Pairs | None = None
) -> list[set]:
    """The dependency set of every output entry (an empty set for constants); with
    ``pairs``, also collect the second-order pairs of every reachable node."""
    for o in outputs:
        if isinstance(o, DepNode) and o.kind != EMPTY:
            o.refs += 1
    for node in reversed(nodes):
        if node.refs:
            for k in node.kids:
                k.refs += 1
    for node in nodes:
        if not node.refs:
            continue
        kind = node.kind
        if kind == LEAF:
            node.deps = {node.index}
            continue
        kids = node.kids
        if pairs is not None and kind != LIN:
            _emit(node, kind, kids, pairs)
        node.deps = _merge(kids)
    return [o.deps if isinstance(o, DepNode) and o.kind != EMPTY else set() for o in outputs]


def _merge(kids: tuple) -> set:
    """Union of the operands' sets, reusing the largest one when no one else needs it."""
    best = None
    best_len = -1
    best_own = False
    others = []
    for k in kids:
        s = k.deps
        k.refs -= 1
        own = k.refs == 0
        if own:
            k.deps = None
        if len(s) > best_len:
            if best is not None:
                others.append(best)
            best, best_len, best_own = s, len(s), own
        else:
            others.append(s)
    base = best if best_own else set(best)
    for s in others:
        base.update(s)
    return base


def _emit(node: DepNode, kind: int, kids: tuple, pairs: _Pairs) -> None:
    if kind == MUL:
        pairs.cross(kids[0].deps, kids[1].deps)
    elif kind == DIV:
        pairs.cross(kids[0].deps, kids[1].deps)
        _clique(kids[1], pairs)
    elif len(kids) == 1:  # NONLIN of one operand
        _clique(kids[0], pairs)
    else:  # NONLIN of several operands
        union: set = set()
        for k in kids:
            union.update(k.deps)
        pairs.clique(union)


def _clique(operand: DepNode, pairs: _Pairs) -> None:
    """All pairs of the operand's set, once however many consumers ask for them."""
    if not operand.paired:
        operand.paired = True
        pairs.clique(operand.deps)


def rows_to_csr(sets: Sequence[set], n: int) -> sp.csr_array:
    """A boolean CSR array whose row ``i`` holds the indices in ``sets[i]``."""
    lengths = np.fromiter((len(s) for s in sets), np.int64, len(sets))
    indptr = np.zeros(len(sets) + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), np.int64)
    for i, s in enumerate(sets):
        if s:
            indices[indptr[i] : indptr[i + 1]] = sorted(s)
    return _csr(indices, indptr, (len(sets), n))


def unique_sorted(keys: np.ndarray, return_counts: bool = False) -> Any:
    """``np.unique`` of integer keys by sorting (NumPy 2's hash-based ``unique`` is many
    times slower on millions of int64 keys)."""
    keys = np.sort(keys)
    first = np.empty(len(keys), bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    if not return_counts:
        return keys[first]
    starts = np.flatnonzero(first)
    return keys[starts], np.diff(np.append(starts, len(keys)))


def _csr(indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]) -> sp.csr_array:
    """A boolean CSR array with sorted ``indices`` (int32 where they fit, as SciPy does)."""
    if max(shape[1], len(indices)) < 2**31 - 1:
        indices, indptr = indices.astype(np.int32), indptr.astype(np.int32)
    data = np.ones(len(indices), bool)
    out = sp.csr_array((data, indices, indptr), shape=shape)
    out.has_sorted_indices = True
    return out
