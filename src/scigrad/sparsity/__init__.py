"""Sparse Jacobians and Hessians: sparsity detection, coloring and compressed evaluation.

* **Detection** (:func:`jacobian_sparsity`, :func:`hessian_sparsity`): the function is
  captured as a graph and lowered, one scalar at a time, to symbolic domains that record
  which inputs each value depends on (and, for Hessians, which pairs of inputs interact).
  The patterns hold for every input value.
* **Coloring** (:func:`column_coloring`, :func:`row_coloring`, :func:`star_coloring`):
  structurally orthogonal groups of columns (Jacobians) or a star coloring (Hessians).
* **Compressed evaluation** (:func:`sparse_jacobian`, :func:`sparse_hessian`): one JVP,
  VJP or Hessian-vector product per color, then direct recovery
  (:func:`recover_jacobian`, :func:`recover_hessian`) into a ``scipy.sparse.csr_array``.

Layout: inputs are the leaves of the arguments, each flattened in C order, concatenated in
pytree order (columns); outputs likewise (rows).

>>> import scigrad.numpy as np
>>> from scigrad.sparsity import sparse_hessian
>>> f = lambda x: np.sum((x[1:] - x[:-1]) ** 2) + np.sum(np.cos(x))
>>> H = sparse_hessian(f, np.linspace(0.0, 1.0, 1000))
>>> H.shape, H.nnz
((1000, 1000), 2998)
"""

from ._coloring import (
    column_coloring,
    is_column_coloring,
    is_star_coloring,
    row_coloring,
    star_coloring,
)
from ._detect import hessian_sparsity, jacobian_sparsity
from ._evaluate import sparse_hessian, sparse_jacobian
from ._recover import recover_hessian, recover_jacobian, seed_matrix

__all__ = [
    "column_coloring",
    "hessian_sparsity",
    "is_column_coloring",
    "is_star_coloring",
    "jacobian_sparsity",
    "recover_hessian",
    "recover_jacobian",
    "row_coloring",
    "seed_matrix",
    "sparse_hessian",
    "sparse_jacobian",
    "star_coloring",
]
