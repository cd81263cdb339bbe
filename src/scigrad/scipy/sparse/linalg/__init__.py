"""Differentiable sparse linear solvers, mirroring ``scipy.sparse.linalg``.

Solves are differentiated implicitly: the adjoint of ``x = A^{-1} b`` is one more solve
with ``A^T``, reusing the forward factorization (direct solvers) or the same method and
preconditioner (iterative solvers), never a pass back through iterations.
``expm_multiply`` differentiates the action of the matrix exponential, with the
cotangent of a sparse ``A`` kept on its pattern.
"""

from . import _direct, _expm_multiply, _iterative
from ._direct import *  # noqa: F403
from ._expm_multiply import *  # noqa: F403
from ._iterative import *  # noqa: F403

__all__ = [*_direct.__all__, *_expm_multiply.__all__, *_iterative.__all__]
