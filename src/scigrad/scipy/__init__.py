"""Differentiable counterparts of SciPy subpackages: ``import scigrad.scipy.special``."""

from . import linalg, sparse, special

__all__ = ["linalg", "sparse", "special"]
