"""Derivative verification: :func:`check_grads` compares scigrad's derivatives with finite
differences in forward and reverse mode, to any order."""

from ._check_grads import GradientCheckError, check_grads

__all__ = ["GradientCheckError", "check_grads"]
