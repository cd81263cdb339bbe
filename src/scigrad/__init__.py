"""scigrad: derivatives of ordinary NumPy/SciPy code at adjoint-method cost.

>>> import scigrad as sg
>>> import scigrad.numpy as np
>>> sg.grad(lambda x: np.sum(np.sin(x) ** 2))(np.array([0.0, 1.0]))
array([0.        , 0.90929743])
"""

from . import numpy  # noqa: F401 - installs the array interface on tracers
from .check import check_grads
from .core import (
    custom_jvp,
    custom_vjp,
    eval_shape,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacrev,
    jvp,
    stop_gradient,
    value_and_grad,
    vjp,
    vmap,
)
from .core.control import cond, fori_loop, scan
from .core.lowrank import LowRankArray
from .core.tree import (
    register_dataclass,
    register_pytree_node,
    tree_flatten,
    tree_map,
    tree_unflatten,
)
from .jit import jit
from .sparsity import hessian_sparsity, jacobian_sparsity, sparse_hessian, sparse_jacobian

__version__ = "0.1.0"

__all__ = [
    "LowRankArray",
    "check_grads",
    "cond",
    "custom_jvp",
    "custom_vjp",
    "eval_shape",
    "fori_loop",
    "grad",
    "hessian",
    "hessian_sparsity",
    "hvp",
    "jacfwd",
    "jacobian_sparsity",
    "jacrev",
    "jit",
    "jvp",
    "register_dataclass",
    "register_pytree_node",
    "scan",
    "sparse_hessian",
    "sparse_jacobian",
    "stop_gradient",
    "tree_flatten",
    "tree_map",
    "tree_unflatten",
    "value_and_grad",
    "vjp",
    "vmap",
]
