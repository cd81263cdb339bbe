"""Gradient checking against finite differences, forward and reverse, to any order.

First order: the JVP along a random direction ``v`` is compared with a fourth-order central
finite difference of ``f`` along ``v`` (forward mode), and the VJP of a random output
cotangent ``u`` with ``<u, FD(v)>`` (reverse mode). Higher orders apply the same check to
the functions ``x -> jvp(f, x, v)`` and ``x -> vjp(f, x)(u)``, which is how second
derivatives (forward-over-forward, reverse-over-reverse, and their mixes) are verified.

On a mismatch the error names the mode, the order, the argument and the entry that disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.transforms import jvp, vjp
from ..core.tree import tree_flatten, tree_unflatten

__all__ = ["check_grads", "GradientCheckError"]


class GradientCheckError(AssertionError):
    """A derivative disagrees with finite differences."""


def _leaves(tree: Any) -> list[np.ndarray]:
    return [np.asarray(x, dtype=float) for x in tree_flatten(tree)[0]]


def _random_like(rng: np.random.Generator, tree: Any) -> Any:
    leaves, treedef = tree_flatten(tree)
    return tree_unflatten(treedef, [rng.standard_normal(np.shape(x)) for x in leaves])


def _axpy(a: float, v: Any, x: Any) -> Any:
    xs, treedef = tree_flatten(x)
    return tree_unflatten(
        treedef, [xi + a * vi for xi, vi in zip(xs, tree_flatten(v)[0], strict=True)]
    )


def _fd_directional(f: Callable, args: tuple, v: tuple, eps: float) -> list[np.ndarray]:
    """Fourth-order central difference of f along v: error O(eps^4)."""
    fp2, fp1, fm1, fm2 = (_leaves(f(*_axpy(s * eps, v, args))) for s in (2, 1, -1, -2))
    return [
        (-a + 8 * b - 8 * c + d) / (12 * eps) for a, b, c, d in zip(fp2, fp1, fm1, fm2, strict=True)
    ]


def _vdot(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float:
    return float(
        sum(
            np.vdot(np.asarray(x, float), np.asarray(y, float)) for x, y in zip(xs, ys, strict=True)
        )
    )


def _close(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return np.abs(a - b) <= atol * scale + rtol * np.abs(b)


def _entry_report(
    f: Callable, args: tuple, ad_of_entry: Callable, eps: float, atol: float, rtol: float
) -> str:
    """Find the first argument entry whose derivative disagrees (up to 400 entries)."""
    leaves, treedef = tree_flatten(args)
    checked = 0
    for k, leaf in enumerate(leaves):
        for j in range(int(np.size(leaf))):
            if checked >= 400:
                return "(no single entry found among the first 400 checked)"
            checked += 1
            e = [np.zeros(np.shape(x)) for x in leaves]
            e[k].reshape(-1)[j] = 1.0
            basis = tree_unflatten(treedef, e)
            fd = _fd_directional(f, args, basis, eps)
            ad = ad_of_entry(basis, k, j)
            for out_i, (a, b) in enumerate(zip(ad, fd, strict=True)):
                ok = _close(np.asarray(a, float), b, atol, rtol)
                if not np.all(ok):
                    where = np.unravel_index(j, np.shape(leaf)) if np.ndim(leaf) else ()
                    bad = np.argwhere(~np.atleast_1d(ok))[0]
                    av = np.atleast_1d(np.asarray(a, float))[tuple(bad)]
                    fv = np.atleast_1d(b)[tuple(bad)]
                    return (
                        f"input leaf {k} at entry {tuple(int(i) for i in where)}, output leaf "
                        f"{out_i} at entry {tuple(int(i) for i in bad)}: "
                        f"AD {av:.10g} vs FD {fv:.10g}"
                    )
    return "(the directional check failed but no single entry disagrees: look for cancellation)"


def check_grads(
    f: Callable,
    args: Sequence[Any],
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    *,
    eps: float = 1e-3,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
) -> None:
    """Check the derivatives of ``f`` at ``args`` against finite differences.

    ``modes`` picks forward (``"fwd"``: JVP) and/or reverse (``"rev"``: VJP) mode; ``order``
    checks derivatives of derivatives up to that order in every combination of the modes.
    Arguments and outputs may be pytrees of float arrays. Raises :class:`GradientCheckError`
    naming the mode, the order, and the argument/output entries that disagree. The
    finite differences use a fourth-order central stencil of step ``eps``; the default
    tolerances are JAX's for float64.

    >>> import scigrad as sg, scigrad.numpy as np
    >>> sg.check_grads(lambda x, y: np.sin(x) * y, (np.array([0.3, 1.2]), 2.0), order=2)
    """
    args = tuple(args)
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"check_grads: unknown mode {mode!r} (use 'fwd' and/or 'rev')")
    rng = np.random.default_rng(seed)
    _check(f, args, order, tuple(modes), eps, atol, rtol, rng, depth=1)


def _check(f, args, order, modes, eps, atol, rtol, rng, depth) -> None:
    if order < 1:
        return
    v = _random_like(rng, args)
    fd = _fd_directional(f, args, v, eps)
    out = f(*args)
    if "fwd" in modes:
        _, t = jvp(f, args, v)
        ad = _leaves(t)
        if not all(np.all(_close(a, b, atol, rtol)) for a, b in zip(ad, fd, strict=True)):

            def entry_jvp(basis, k, j):
                return _leaves(jvp(f, args, basis)[1])

            raise GradientCheckError(
                f"forward-mode derivative (order {depth}) disagrees with finite differences: "
                + _entry_report(f, args, entry_jvp, eps, atol, rtol)
            )
        if order > 1:
            v_fixed = v
            _check(
                lambda *a: jvp(f, a, v_fixed)[1], args, order - 1, modes, eps, atol, rtol, rng,
                depth + 1,
            )  # fmt: skip
    if "rev" in modes:
        u = _random_like(rng, out)
        _, pullback = vjp(f, *args)
        ct = pullback(u)
        lhs = _vdot(_leaves(ct), _leaves(v))
        rhs = _vdot(_leaves(u), fd)
        if not _close(np.array(lhs), np.array(rhs), atol, rtol):
            u_leaves = _leaves(u)
            ct_leaves = _leaves(ct)

            def entry_vjp(basis, k, j):
                # <u, J e_j> from reverse mode is the j-th entry of the k-th cotangent leaf;
                # compare it with <u, FD(e_j)> presented as a one-output check.
                return [np.array(ct_leaves[k].reshape(-1)[j])]

            def projected(*a):
                return np.array(_vdot(u_leaves, _leaves(f(*a))))

            raise GradientCheckError(
                f"reverse-mode derivative (order {depth}) disagrees with finite differences "
                f"(<vjp(u), v> = {lhs:.10g} vs <u, FD(v)> = {rhs:.10g}): "
                + _entry_report(projected, args, entry_vjp, eps, atol, rtol)
            )
        if order > 1:
            u_fixed = u
            _check(
                lambda *a: vjp(f, *a)[1](u_fixed), args, order - 1, modes, eps, atol, rtol, rng,
                depth + 1,
            )  # fmt: skip
