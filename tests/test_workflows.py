"""End-to-end: ordinary scientific code, differentiated to second order in both modes."""

from __future__ import annotations

import numpy as onp

import scigrad as sg
import scigrad.numpy as np
from scigrad.scipy.special import logsumexp


def test_logistic_regression_with_l2(rng):
    X, y = rng.standard_normal((50, 4)), (rng.random(50) > 0.5).astype(float)

    def nll(w, lam=0.1):
        z = X @ w
        return np.mean(np.logaddexp(0.0, z) - y * z) + lam * np.linalg.norm(w) ** 2

    sg.check_grads(nll, (rng.standard_normal(4),), order=2)


def test_finite_difference_energy(rng):
    def energy(u, k):
        du = np.diff(u) * (len(u) - 1)
        return 0.5 * np.sum(k * du**2) - np.sum(np.sin(u))

    sg.check_grads(energy, (rng.standard_normal(8), rng.uniform(1, 2, 7)), order=2)


def test_gaussian_process_marginal_likelihood():
    t = np.linspace(0, 1, 6)

    def neg_log_likelihood(theta):
        ell, s2 = np.exp(theta[0]), np.exp(theta[1])
        K = s2 * np.exp(-0.5 * (t[:, None] - t[None, :]) ** 2 / ell**2) + 0.1 * np.eye(6)
        L = np.linalg.cholesky(K)
        y = np.sin(3 * t)
        return 0.5 * y @ np.linalg.solve(K, y) + np.sum(np.log(np.diagonal(L)))

    sg.check_grads(neg_log_likelihood, (onp.array([-0.5, 0.2]),), order=2)


def test_softmax_attention_with_einsum(rng):
    x = onp.arange(12.0).reshape(4, 3) / 10

    def attention(p):
        q, k = x @ p["wq"], x @ p["wk"]
        s = np.einsum("id,jd->ij", q, k) / np.sqrt(2.0)
        a = np.exp(s - logsumexp(s, axis=1, keepdims=True))
        return np.sum((a @ x) ** 2)

    params = {"wq": rng.standard_normal((3, 2)), "wk": rng.standard_normal((3, 2))}
    sg.check_grads(attention, (params,), order=2)


def test_simulation_with_control_flow_and_functional_updates():
    def simulate(v0):
        xs, v = [np.zeros(2)], v0
        for _ in range(5):
            x = xs[-1] + 0.1 * v
            if np.linalg.norm(x) > 0.3:  # branch on a traced value: eager mode just runs it
                v = v * 0.9
            xs.append(x)
        traj = np.at(np.stack(xs))[0].set(v0)
        return np.sum(traj[:, 0] ** 2 + np.cos(traj[:, 1]))

    sg.check_grads(simulate, (onp.array([1.0, 0.5]),), order=2)


def test_code_written_against_plain_numpy():
    def f(x):  # the user forgot to switch imports: NumPy's dispatch routes to scigrad
        return onp.sum(onp.tanh(x) * x.mean()) + (x**3).max() + onp.linalg.norm(x)

    sg.check_grads(f, (onp.array([0.3, -0.7, 1.2]),), order=2)
