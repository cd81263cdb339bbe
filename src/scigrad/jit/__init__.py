"""Compilation of small fixed-shape functions and their derivatives: ``sg.jit``.

Pipeline: capture (``scigrad.core.graph``) → lowering to symbolic scalars (``_lower``, with
simplification in ``_expr``) → code generation and numba compilation (``_codegen``) → the
cached, signature-keyed callable (``_api``).
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
