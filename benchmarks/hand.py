"""Hand-written NumPy derivatives: the reference every benchmark row is measured against,
and a hand-specialized pure-Python tape that bounds what any eager Python engine can reach.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rosenbrock_grad(x: np.ndarray) -> np.ndarray:
    d = x[1:] - x[:-1] ** 2
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * d - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * d
    return g


def rosenbrock_hessian(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    h = np.zeros((n, n))
    diag = np.zeros(n)
    diag[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    diag[1:] += 200.0
    off = -400.0 * x[:-1]
    idx = np.arange(n)
    h[idx, idx] = diag
    h[idx[:-1], idx[1:]] = off
    h[idx[1:], idx[:-1]] = off
    return h


def mlp_loss_grad(params: dict, inputs: np.ndarray, targets: np.ndarray) -> dict:
    """Back-propagation by hand for the benchmark's tanh MLP with a mean-squared-error loss."""
    z1 = inputs @ params["W1"] + params["b1"]
    h1 = np.tanh(z1)
    z2 = h1 @ params["W2"] + params["b2"]
    h2 = np.tanh(z2)
    out = h2 @ params["W3"] + params["b3"]
    g_out = 2.0 * (out - targets) / out.size
    g = {"W3": h2.T @ g_out, "b3": g_out.sum(axis=0)}
    g_z2 = (g_out @ params["W3"].T) * (1.0 - h2 * h2)
    g["W2"], g["b2"] = h1.T @ g_z2, g_z2.sum(axis=0)
    g_z1 = (g_z2 @ params["W2"].T) * (1.0 - h1 * h1)
    g["W1"], g["b1"] = inputs.T @ g_z1, g_z1.sum(axis=0)
    return g


class _Var:
    __slots__ = ("value", "id")

    def __init__(self, value: np.ndarray, id: int) -> None:
        self.value, self.id = value, id


def rosenbrock_grad_specialized_tape(x: np.ndarray) -> np.ndarray:
    """Reverse mode on a tape with no dispatch at all: each operation's rule is written
    inline for this one function. A generic engine does strictly more work per operation,
    so this time is a floor for eager differentiation in pure Python."""
    tape: list[tuple[Callable, int]] = []
    count = [1]

    def record(value: np.ndarray, rule: Callable) -> _Var:
        v = _Var(value, count[0])
        count[0] += 1
        tape.append((rule, v.id))
        return v

    shape = x.shape
    a = record(x[1:], lambda g: ((0, ("scatter", slice(1, None), g)),))
    b = record(x[:-1], lambda g: ((0, ("scatter", slice(None, -1), g)),))
    bv = b.value
    c = record(bv * bv, lambda g: ((b.id, g * (2.0 * bv)),))
    d = record(a.value - c.value, lambda g: ((a.id, g), (c.id, -g)))
    dv = d.value
    e = record(dv * dv, lambda g: ((d.id, g * (2.0 * dv)),))
    f = record(100.0 * e.value, lambda g: ((e.id, 100.0 * g),))
    b2 = record(x[:-1], lambda g: ((0, ("scatter", slice(None, -1), g)),))
    h = record(1.0 - b2.value, lambda g: ((b2.id, -g),))
    hv = h.value
    k = record(hv * hv, lambda g: ((h.id, g * (2.0 * hv)),))
    m = record(f.value + k.value, lambda g: ((f.id, g), (k.id, g)))
    mv = m.value
    s = record(np.add.reduce(mv), lambda g: ((m.id, np.full(mv.shape, g)),))
    cts: list = [None] * count[0]
    cts[s.id] = np.array(1.0)
    for rule, i in reversed(tape):
        g = cts[i]
        if g is None:
            continue
        for parent, ct in rule(g):
            if type(ct) is tuple:
                z = np.zeros(shape)
                z[ct[1]] = ct[2]
                ct = z
            prev = cts[parent]
            cts[parent] = ct if prev is None else prev + ct
    return cts[0]
