"""Differentiable sparse linear solvers, mirroring ``scipy.sparse.linalg``.

Solves are differentiated implicitly: the adjoint of ``x = A^{-1} b`` is one more solve
with ``A^T``, reusing the forward factorization (direct solvers) or the same method and
preconditioner (iterative solvers), never a pass back through iterations.
"""

from . import _direct, _iterative
from ._direct import *  # noqa: F403
from ._iterative import *  # noqa: F403

__all__ = [*_direct.__all__, *_iterative.__all__]
