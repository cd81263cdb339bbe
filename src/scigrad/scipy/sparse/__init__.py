"""Differentiable sparse arrays, mirroring ``scipy.sparse``.

``data`` (the stored values) is differentiable; the sparsity pattern is static. Cotangents
of sparse matrices live on their pattern (O(nnz)), never as dense ``n x n`` arrays.
"""

from ._array import SparseArray, coo_array, csc_array, csr_array, issparse

__all__ = ["SparseArray", "coo_array", "csc_array", "csr_array", "issparse"]
