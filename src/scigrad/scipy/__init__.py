"""Differentiable counterparts of SciPy subpackages: ``import scigrad.scipy.special``."""

from . import sparse, special

__all__ = ["sparse", "special"]
