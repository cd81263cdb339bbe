"""Differentiable dense linear algebra, mirroring ``scipy.linalg``.

``import scigrad.scipy.linalg as sla`` and call SciPy's functions by their names: solve
(with ``assume_a``), lu_factor/lu_solve, cho_factor/cho_solve, solve_triangular, inv, det,
eigh, svd, qr, cholesky, lu, norm, pinv, expm, ... Factorizations are computed once and
reused by every derivative; see the module docs of :mod:`scigrad.scipy.linalg._dense` for
the conventions (triangles read, degenerate spectra).
"""

from . import _dense, _expm
from ._dense import *  # noqa: F403
from ._expm import *  # noqa: F403

__all__ = [*_dense.__all__, *_expm.__all__]
