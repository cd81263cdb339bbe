"""The user-facing transformations: grad, value_and_grad, vjp, jvp, jacfwd, jacrev, hessian, hvp.

Names, signatures and pytree semantics follow JAX. Inputs may be any pytree of floating-point
arrays; outside a transformation, functions receive and return plain NumPy values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .forward import JTracer, JVPTrace
from .lowrank import LowRankArray
from .primitive import Tracer, zeros_like
from .reverse import ReverseTrace, backward_pass
from .trace import close_trace, new_trace, open_trace
from .tree import tree_flatten, tree_unflatten

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "hessian", "hvp"]

ArgNums = int | Sequence[int]


# -- input and output checks -------------------------------------------------------------
def _dtype(x: Any) -> np.dtype:
    dt = getattr(x, "dtype", None)
    return dt if isinstance(dt, np.dtype) else np.result_type(x)


def _as_input(x: Any, where: str, i: int) -> Any:
    """Validate one differentiable input leaf; Python numbers become NumPy scalars."""
    if type(x) is np.ndarray and x.dtype.kind == "f":
        return x
    dt = _dtype(x)
    if dt.kind == "f":
        return np.asarray(x)[()] if isinstance(x, _PY_NUMBERS) else x
    if dt.kind == "c":
        raise NotImplementedError(
            f"{where}: input leaf {i} is complex ({dt}); complex differentiation is not "
            "supported yet. Split it into real and imaginary parts."
        )
    raise TypeError(
        f"{where} requires real floating-point inputs, but input leaf {i} has dtype {dt}. "
        "Integer and boolean inputs have no derivative: convert with `x.astype(float)` or "
        "pass them as a non-differentiated argument (see `argnums`)."
    )


_PY_NUMBERS = (float, int)
_HAS_SHAPE = (Tracer, np.ndarray, np.generic, LowRankArray)
_LEAF = (Tracer, np.ndarray, np.generic, float, int)


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, _HAS_SHAPE) else np.shape(x)


def _flatten(args: tuple) -> tuple[list, Any]:
    """Leaves of an argument tuple; plain arrays skip the pytree machinery (hot path)."""
    for a in args:
        if not isinstance(a, _LEAF):
            return tree_flatten(args)
    return list(args), None


def _unflatten(tree: Any, leaves: list) -> tuple:
    return tuple(leaves) if tree is None else tree_unflatten(tree, leaves)


def _argnums_tuple(argnums: ArgNums, nargs: int, where: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for k in nums:
        if not -nargs <= k < nargs:
            raise ValueError(f"{where}: argnums={argnums} but the function got {nargs} arguments")
    return tuple(k % nargs for k in nums)


def _partial(
    fun: Callable, args: tuple, kwargs: dict, argnums: ArgNums, where: str
) -> tuple[Callable, tuple]:
    """``fun`` as a function of the differentiated arguments only, and their values."""
    if argnums == 0 and len(args) == 1 and not kwargs:
        return fun, args  # the common case, without argument shuffling
    nums = _argnums_tuple(argnums, len(args), where)

    def f(*dyn: Any) -> Any:
        full = list(args)
        for k, v in zip(nums, dyn, strict=True):
            full[k] = v
        return fun(*full, **kwargs)

    return f, tuple(args[k] for k in nums)


def _own(x: Any, trace: Any) -> bool:
    return isinstance(x, Tracer) and x._trace is trace


# -- reverse mode ------------------------------------------------------------------------
class _Recording:
    """One recorded forward pass: its tape, inputs and outputs. ``pull`` runs the backward
    pass for any output cotangent, as often as needed."""

    __slots__ = ("trace", "inputs", "flat_in", "in_tree", "flat_out", "out_tree", "out_primals")

    def __init__(self, fun: Callable, primals: tuple, where: str) -> None:
        flat_in, self.in_tree = _flatten(primals)
        self.flat_in = flat_in = [_as_input(x, where, i) for i, x in enumerate(flat_in)]
        self.trace = trace = open_trace(ReverseTrace)
        try:
            self.inputs = [trace.new_var(x) for x in flat_in]
            self.flat_out = fun(*_unflatten(self.in_tree, self.inputs))
        finally:
            close_trace(trace)

    def split_aux(self, where: str) -> Any:
        out = self.flat_out
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"{where}(has_aux=True) needs the function to return (output, aux)")
        self.flat_out, aux = out
        return _unwrap_tree(aux, self.trace)

    def finish(self) -> Any:
        """Flatten the output (call once, after ``split_aux``); returns the output primals."""
        self.flat_out, self.out_tree = _flatten((self.flat_out,))
        trace = self.trace
        self.out_primals = [o.primal if _own(o, trace) else o for o in self.flat_out]
        return _unflatten(self.out_tree, self.out_primals)[0]

    def pull(self, flat_ct: list) -> list:
        """Input cotangents (flat) for output cotangents ``flat_ct`` (flat)."""
        trace = self.trace
        cts: list = [None] * trace.nvars
        for o, c in zip(self.flat_out, flat_ct, strict=True):
            if _own(o, trace):
                prev = cts[o.id]
                cts[o.id] = c if prev is None else prev + c
        backward_pass(trace.tape, cts)
        grads = []
        for x, t in zip(self.flat_in, self.inputs, strict=True):
            g = cts[t.id]
            grads.append(zeros_like(x) if g is None else _project(g, x))
        return grads

    def pullback(self, cotangent: Any) -> tuple:
        """The public VJP function: a cotangent pytree shaped like the output."""
        flat_ct, ct_tree = _flatten((cotangent,))
        if ct_tree != self.out_tree:
            raise ValueError(
                f"vjp: cotangent structure {ct_tree} does not match the output structure "
                f"{self.out_tree}"
            )
        for c, p in zip(flat_ct, self.out_primals, strict=True):
            if _shape(c) != _shape(p):
                raise ValueError(
                    f"vjp: cotangent of shape {_shape(c)} for an output of shape {_shape(p)}"
                )
        return _unflatten(self.in_tree, self.pull(flat_ct))


def _vjp(fun: Callable, primals: tuple, has_aux: bool, where: str):
    rec = _Recording(fun, primals, where)
    aux = rec.split_aux(where) if has_aux else None
    return rec.finish(), rec.pullback, aux


def _project(g: Any, x: Any) -> Any:
    """Keep the cotangent in the primal's space: its dtype (float32 stays float32)."""
    dt = _dtype(x)
    if _dtype(g) != dt:
        g = g.astype(dt)
    return g


def _unwrap_tree(tree: Any, trace: Any) -> Any:
    flat, t = tree_flatten(tree)
    return tree_unflatten(t, [x.primal if _own(x, trace) else x for x in flat])


def vjp(fun: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """Evaluate ``fun(*primals)`` and return ``(out, vjp_fun)`` (and ``aux`` if ``has_aux``).

    ``vjp_fun(ct)`` maps an output cotangent (same structure as ``out``) to a tuple of input
    cotangents, one per primal. It may be called many times; the forward pass is recorded once.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> y, f_vjp = sg.vjp(np.sin, 0.0)
    >>> f_vjp(np.float64(2.0))
    (np.float64(2.0),)
    """
    out, pullback, aux = _vjp(fun, primals, has_aux, "vjp")
    return (out, pullback, aux) if has_aux else (out, pullback)


def value_and_grad(fun: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """Return a function computing ``(fun(*args), gradient)`` with one forward and one
    backward pass. ``fun`` must return a real scalar (or ``(scalar, aux)`` if ``has_aux``;
    then the result is ``((value, aux), gradient)``). With a sequence ``argnums`` the
    gradient is a tuple.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.value_and_grad(lambda x: np.sum(x**2))(np.array([1.0, 2.0]))
    (np.float64(5.0), array([2., 4.]))
    """

    def value_and_grad_fun(*args: Any, **kwargs: Any) -> tuple:
        f, dyn = _partial(fun, args, kwargs, argnums, "value_and_grad")
        rec = _Recording(f, dyn, "grad")
        aux = rec.split_aux("grad") if has_aux else None
        out = rec.finish()
        shape, dt = _shape(out), _dtype(out)
        if shape != () or dt.kind != "f" or len(rec.flat_out) != 1:
            raise TypeError(
                f"grad requires a real scalar output, but the function returned "
                f"{'an array of shape ' + str(shape) if shape else 'a value'} of dtype {dt}. "
                "Use jacrev/jacfwd for a Jacobian, or vjp for a vector-Jacobian product."
            )
        grads = _unflatten(rec.in_tree, rec.pull([np.array(1.0, dt)]))
        g = grads[0] if isinstance(argnums, int) else grads
        return ((out, aux), g) if has_aux else (out, g)

    value_and_grad_fun.__wrapped__ = fun  # type: ignore[attr-defined]
    return value_and_grad_fun


def grad(fun: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """Return a function computing the gradient of the scalar function ``fun``.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.grad(lambda x: np.sum(np.sin(x)))(np.array([0.0, np.pi]))
    array([ 1., -1.])
    """
    vg = value_and_grad(fun, argnums, has_aux)

    def grad_fun(*args: Any, **kwargs: Any) -> Any:
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    grad_fun.__wrapped__ = fun  # type: ignore[attr-defined]
    return grad_fun


# -- forward mode ------------------------------------------------------------------------
def jvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False):
    """Evaluate ``fun(*primals)`` and its directional derivative along ``tangents``:
    returns ``(out, tangent_out)`` (plus ``aux`` if ``has_aux``).

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.jvp(np.exp, (0.0,), (3.0,))
    (np.float64(1.0), np.float64(3.0))
    """
    flat_p, tree_p = tree_flatten(tuple(primals))
    flat_t, tree_t = tree_flatten(tuple(tangents))
    if tree_p != tree_t:
        raise ValueError(f"jvp: tangents structure {tree_t} does not match primals {tree_p}")
    flat_p = [_as_input(x, "jvp", i) for i, x in enumerate(flat_p)]
    for i, (p, t) in enumerate(zip(flat_p, flat_t, strict=True)):
        if _shape(p) != _shape(t):
            raise ValueError(f"jvp: tangent {i} has shape {_shape(t)}, primal has {_shape(p)}")
    with new_trace(JVPTrace) as trace:
        inputs = [JTracer(trace, p, t) for p, t in zip(flat_p, flat_t, strict=True)]
        out = fun(*tree_unflatten(tree_p, inputs))
    aux = None
    if has_aux:
        out, aux = out
        aux = _unwrap_tree(aux, trace)
    flat_out, out_tree = tree_flatten(out)
    primals_out = [o.primal if _own(o, trace) else o for o in flat_out]
    tangents_out = [o.tangent if _own(o, trace) else zeros_like(o) for o in flat_out]
    result = (tree_unflatten(out_tree, primals_out), tree_unflatten(out_tree, tangents_out))
    return (*result, aux) if has_aux else result


# -- Jacobians and Hessians --------------------------------------------------------------
def _stack(xs: list, axis: int, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """Stack Jacobian rows/columns (possibly traced, for nested transforms) into ``shape``."""
    from .. import numpy as snp  # the NumPy layer is built on this module

    if not xs:
        return np.zeros(shape, dtype)
    return snp.reshape(snp.stack(xs, axis=axis), shape)


def _unit_vectors(leaves: list) -> list[tuple[int, int, Any]]:
    """(leaf index, flat index, one-hot pytree-leaf list) for every scalar entry of ``leaves``."""
    basis = []
    for k, x in enumerate(leaves):
        for j in range(int(np.prod(_shape(x)))):
            e = [zeros_like(y) for y in leaves]
            e[k].reshape(-1)[j] = 1.0
            basis.append((k, j, e))
    return basis


def _batched_rows(pullback: Callable, flat_out: list, out_tree: Any, k: int, flat_in: list):
    """The Jacobian blocks of output leaf ``k``, one per input leaf (shape ``out + in``):
    the pullback mapped over the unit cotangents with ``vmap``, so the backward pass runs
    once on a batch of rows. Falls back to one backward pass per row if the pullback cannot
    be batched."""
    from .. import numpy as snp
    from .batching import vmap

    y = flat_out[k]
    m = int(np.prod(_shape(y)))
    targets = [_shape(y) + _shape(x) for x in flat_in]

    def pull(e: Any) -> list:
        cts = [zeros_like(o) for o in flat_out]
        cts[k] = e
        return tree_flatten(pullback(tree_unflatten(out_tree, cts)))[0]

    if m > 1:
        basis = np.eye(m, dtype=_dtype(y)).reshape((m, *_shape(y)))
        try:
            rows = vmap(pull)(basis)
        except Exception:  # a rule that cannot batch: one backward pass per row below
            rows = None
        if rows is not None:
            return [snp.reshape(r, t) for r, t in zip(rows, targets, strict=True)]
    cols = [pull(e[k]) for kk, _, e in _unit_vectors(flat_out) if kk == k]
    return [
        _stack([c[i] for c in cols], 0, t, _dtype(x))
        for i, (x, t) in enumerate(zip(flat_in, targets, strict=True))
    ]


def jacrev(fun: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """Jacobian by reverse mode: one recorded forward pass, then one backward pass mapped
    (``vmap``) over the output entries.

    The result nests the input structure inside the output structure; each leaf has shape
    ``out.shape + in.shape``.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.jacrev(lambda x: x**2)(np.array([1.0, 3.0]))
    array([[2., 0.],
           [0., 6.]])
    """

    def jacfun(*args: Any, **kwargs: Any) -> Any:
        f, dyn = _partial(fun, args, kwargs, argnums, "jacrev")
        out, pullback, aux = _vjp(f, dyn, has_aux, "jacrev")
        flat_out, out_tree = tree_flatten(out)
        flat_in, in_tree = tree_flatten(dyn)
        blocks = []
        for k in range(len(flat_out)):
            per_in = _batched_rows(pullback, flat_out, out_tree, k, flat_in)
            sub = tree_unflatten(in_tree, per_in)
            blocks.append(sub[0] if isinstance(argnums, int) else sub)
        jac = tree_unflatten(out_tree, blocks)
        return (jac, aux) if has_aux else jac

    return jacfun


def jacfwd(fun: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """Jacobian by forward mode: one JVP per input entry (cheaper than ``jacrev`` when there
    are fewer inputs than outputs). Same result layout as :func:`jacrev`.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.jacfwd(lambda x: np.sin(x))(np.zeros(2))
    array([[1., 0.],
           [0., 1.]])
    """

    def jacfun(*args: Any, **kwargs: Any) -> Any:
        f, dyn = _partial(fun, args, kwargs, argnums, "jacfwd")
        flat_in, in_tree = tree_flatten(dyn)
        flat_in = [_as_input(x, "jacfwd", i) for i, x in enumerate(flat_in)]
        cols = [[] for _ in flat_in]
        out = aux = None
        for k, _, e in _unit_vectors(flat_in):
            res = jvp(f, tree_unflatten(in_tree, flat_in), tree_unflatten(in_tree, e), has_aux)
            out, tangent = res[0], res[1]
            aux = res[2] if has_aux else None
            cols[k].append(tree_flatten(tangent)[0])
        if out is None:  # no input entries: evaluate once for the output structure
            out = f(*tree_unflatten(in_tree, flat_in))
            out, aux = out if has_aux else (out, None)
        flat_out, out_tree = tree_flatten(out)
        blocks = []
        for j, y in enumerate(flat_out):
            per_in = [
                _stack([c[j] for c in cols[i]], -1, _shape(y) + _shape(x), _dtype(x))
                for i, x in enumerate(flat_in)
            ]
            sub = tree_unflatten(in_tree, per_in)
            blocks.append(sub[0] if isinstance(argnums, int) else sub)
        jac = tree_unflatten(out_tree, blocks)
        return (jac, aux) if has_aux else jac

    return jacfun


def hessian(fun: Callable, argnums: ArgNums = 0) -> Callable:
    """Hessian of a scalar function, by reverse-over-reverse: the gradient computation is
    recorded once on a tape, whose backward pass then runs once, mapped with ``vmap`` over
    the rows. In eager mode this is many times faster than ``jacfwd(jacrev(fun))`` (which
    re-runs the function per column); the result is the same.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.hessian(lambda x: np.sum(x**3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacrev(jacrev(fun, argnums), argnums)


def hvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """Hessian-vector product of a scalar function by forward-over-reverse, without forming
    the Hessian: the tangent of ``grad(fun)`` at ``primals`` along ``tangents``. The result
    has the structure of ``primals`` (a tuple, one entry per argument).

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.hvp(lambda x: np.sum(x**3), (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
    (array([6., 0.]),)
    """
    primals = tuple(primals)
    g = grad(fun, argnums=tuple(range(len(primals))))
    return jvp(g, primals, tuple(tangents))[1]
