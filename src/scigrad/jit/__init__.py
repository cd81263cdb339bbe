"""Compilation of fixed-shape functions and their derivatives: ``sg.jit``.

Pipeline: capture (``scigrad.core.graph``) and array-level simplification (``_simplify``),
then one of two code generators compiled by numba (``_codegen``):

* small functions are lowered to symbolic scalars (``_lower``, simplified in ``_expr``) and
  unrolled into straight-line, allocation-free code;
* larger ones become loops over whole arrays (``_loops``).

Composite primitives are expanded for both (``_expand``); ``_api`` holds the cached,
signature-keyed callable.
"""

from ._api import Compiled, jit
from ._codegen import cache_dir
from ._lower import NotCompilableError, register_lowering

__all__ = [
    "Compiled",
    "NotCompilableError",
    "cache_dir",
    "jit",
    "register_lowering",
]
