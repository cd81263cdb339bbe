"""Differentiable sparse arrays, mirroring ``scipy.sparse``.

``data`` (the stored values) is differentiable; the sparsity pattern is static. Cotangents
of sparse matrices live on their pattern (O(nnz)), never as dense ``n x n`` arrays. See
docs/sparse.md for how values, patterns, plans and cotangents fit together.
"""

from . import _construct
from ._array import SparseArray, coo_array, csc_array, csr_array, issparse
from ._construct import *  # noqa: F403

__all__ = ["SparseArray", "coo_array", "csc_array", "csr_array", "issparse", *_construct.__all__]
