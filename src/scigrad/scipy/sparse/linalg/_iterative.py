"""Iterative sparse solvers (being written)."""

__all__: list[str] = []
