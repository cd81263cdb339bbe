"""Differentiable counterparts of SciPy subpackages: ``import scigrad.scipy.special``."""

from . import special

__all__ = ["special"]
