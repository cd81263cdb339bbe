"""Helpers shared by the benchmark scripts: optional peers, result checks, memory peaks,
and loading the examples whose code a benchmark times."""

from __future__ import annotations

import gc
import importlib.util
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy

ROOT = Path(__file__).resolve().parents[1]


class NotInstalled(Exception):
    """An optional peer library is missing: its columns are left out."""


def load_jax() -> Any:
    """JAX in float64, or :class:`NotInstalled`."""
    try:
        import jax
    except ImportError as exc:
        raise NotInstalled("jax is not installed") from exc
    jax.config.update("jax_enable_x64", True)
    return jax


def rel_diff(a: Any, b: Any) -> float:
    """max |a - b| / max |b|."""
    a, b = numpy.asarray(a, dtype=float), numpy.asarray(b, dtype=float)
    scale = float(numpy.max(numpy.abs(b), initial=0.0)) or 1.0
    return float(numpy.max(numpy.abs(a - b), initial=0.0)) / scale


def peak_bytes(thunk: Callable[[], Any]) -> int:
    """Peak bytes allocated (tracemalloc, which sees NumPy's buffers) during one call."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        thunk()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def load_example(filename: str) -> ModuleType:
    """``examples/<filename>`` as a module (once): a benchmark times exactly its code."""
    name = f"_scigrad_examples_{Path(filename).stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module
