"""A differentiable drop-in for the ``numpy`` namespace.

``import scigrad.numpy as np`` and write NumPy code: outside transformations every function
returns plain NumPy arrays; inside ``grad``/``jvp``/... the same code is differentiated.
Names that scigrad does not implement fall through to NumPy itself; calling such a function
on a traced value raises an error naming it and saying how to add a rule.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any

import numpy as _np
from numpy import (  # noqa: F401 - re-exported constants and types
    bool_,
    e,
    euler_gamma,
    float32,
    float64,
    inf,
    int32,
    int64,
    intp,
    nan,
    ndarray,
    newaxis,
    pi,
)

from ..core.primitive import Tracer as _Tracer
from ..core.tree import tree_leaves as _tree_leaves
from . import _creation, _elementwise, _indexing, _products, _reductions, _shape, _tracer_methods
from ._creation import *  # noqa: F403
from ._elementwise import *  # noqa: F403
from ._indexing import *  # noqa: F403
from ._products import *  # noqa: F403
from ._reductions import *  # noqa: F403
from ._shape import *  # noqa: F403
from ._tracer_methods import astype as astype

_tracer_methods.install()

from . import linalg as linalg  # noqa: E402 - a submodule, built on the names above


def shape(a: Any) -> tuple[int, ...]:
    return a.shape if isinstance(a, _Tracer) else _np.shape(a)


def ndim(a: Any) -> int:
    return len(shape(a))


def size(a: Any) -> int:
    return int(_np.prod(shape(a)))


def result_type(*args: Any) -> _np.dtype:
    return _np.result_type(*(a.dtype if isinstance(a, _Tracer) else a for a in args))


__all__ = sorted(
    {"astype", "shape", "ndim", "size", "result_type"}
    | set(_creation.__all__)
    | set(_elementwise.__all__)
    | set(_indexing.__all__)
    | set(_products.__all__)
    | set(_reductions.__all__)
    | set(_shape.__all__)
)


def _refuse_traced(f: Any, name: str) -> Any:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # builtins.any: this module's own `any` is NumPy's.
        if builtins.any(isinstance(x, _Tracer) for x in _tree_leaves((args, kwargs))):
            raise _tracer_methods.unsupported(f"scigrad.numpy.{name}")
        return f(*args, **kwargs)

    return wrapper


def __getattr__(name: str) -> Any:
    # NumPy names scigrad does not differentiate: constants, dtypes and submodules pass
    # through; functions work on plain arrays and refuse traced ones with a clear message.
    attr = getattr(_np, name)
    if callable(attr) and not isinstance(attr, type):
        return _refuse_traced(attr, name)
    return attr
