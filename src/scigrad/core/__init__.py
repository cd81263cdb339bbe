"""The engine: primitives, traces (interpreters) and transformations."""

from .batching import vmap
from .custom import custom_jvp, custom_vjp, stop_gradient
from .primitive import Primitive, ShapeDtype, Tracer, primitives
from .shape import eval_shape
from .trace import Trace, new_trace
from .transforms import grad, hessian, hvp, jacfwd, jacrev, jvp, value_and_grad, vjp

__all__ = [
    "Primitive",
    "ShapeDtype",
    "Trace",
    "Tracer",
    "custom_jvp",
    "custom_vjp",
    "eval_shape",
    "grad",
    "hessian",
    "hvp",
    "jacfwd",
    "jacrev",
    "jvp",
    "new_trace",
    "primitives",
    "stop_gradient",
    "value_and_grad",
    "vjp",
    "vmap",
]
