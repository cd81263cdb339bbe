"""Traces: the interpreters that give primitives a meaning beyond evaluation.

Each active transformation owns one ``Trace`` with a nesting ``level``; a value it is
transforming is wrapped in one of its ``Tracer``s. When a primitive is applied to traced
values, the trace of highest level handles it (``Trace.process``): it unwraps its own
tracers, re-applies the primitive to what is underneath (which may be traced by a lower
level, so the call recurses down), and wraps the result together with the extra
information it tracks (a tape entry, a tangent, a graph node, a batch axis, ...).

A new interpreter is a new ``Trace`` subclass; the primitives and their rules are not
touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Trace", "close_trace", "current_level", "new_trace", "open_trace"]

_depth = 0


def current_level() -> int:
    """Number of transformations currently active (the level a new trace gets)."""
    return _depth


class Trace:
    """Base class of the interpreters (reverse, forward, shape, and later jit/vmap)."""

    level: int

    def __init__(self, level: int) -> None:
        self.level = level

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        raise NotImplementedError

    def process_custom_vjp(self, fn: Any, args: tuple) -> Any:
        raise NotImplementedError

    def process_custom_jvp(self, fn: Any, args: tuple) -> Any:
        raise NotImplementedError


def _escaped(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(
        "A traced value escaped the transformation that created it (it was stored in a "
        "global, a closure or an attribute during grad/jvp/vjp and used afterwards). "
        "Return it from the transformed function instead."
    )


def open_trace(cls: type[Trace], *args: Any) -> Any:
    """Start a trace one level above the current ones. Pair with :func:`close_trace`."""
    global _depth
    trace = cls(_depth, *args)
    _depth += 1
    return trace


def close_trace(trace: Trace) -> None:
    """End ``trace``; any later use of its tracers raises a clear error."""
    global _depth
    _depth -= 1
    # Shadowing the methods costs nothing on the hot path yet makes any later use of this
    # trace's tracers fail loudly.
    trace.process = trace.process_custom_vjp = trace.process_custom_jvp = _escaped


@contextmanager
def new_trace(cls: type[Trace], *args: Any) -> Iterator[Any]:
    """``with new_trace(ReverseTrace) as trace: ...`` -- open and close a trace."""
    trace = open_trace(cls, *args)
    try:
        yield trace
    finally:
        close_trace(trace)
