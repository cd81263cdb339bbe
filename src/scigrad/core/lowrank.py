"""Low-rank cotangents: a dense ``m x n`` array kept as factors ``u @ v.T``.

The cotangent of a dense matrix ``A`` in ``x @ A @ y``, ``A @ y`` or ``solve(A, b)`` is an
outer product (``x y^T``, ``-lambda x^T``). Forming it costs ``m n`` memory and time for
information of size ``m + n``. Reverse mode therefore returns such cotangents as a
:class:`LowRankArray` and keeps them factored while they are only added, scaled, transposed
or multiplied with vectors; anything else materializes them (they implement NumPy's array
protocols, so every rule and every NumPy function still sees a correct array).

``sg.grad`` with respect to a dense matrix may thus return a ``LowRankArray``: use it like
an array (``numpy.asarray(g)``, ``g.toarray()``, ``g @ v``, ``g * 0.1``, ``W - lr * g``), or
keep its factors ``g.u``, ``g.v`` for a rank-``r`` update. Structured cotangents are only
produced in first-order reverse passes over plain arrays; higher-order derivatives see
ordinary arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LowRankArray"]


def _dense(x: Any) -> Any:
    return x.toarray() if isinstance(x, LowRankArray) else x


class LowRankArray:
    """``u @ v.T`` with ``u`` of shape ``(m, r)`` and ``v`` of shape ``(n, r)``, unmaterialized.

    >>> import numpy as np
    >>> g = LowRankArray(np.array([[1.0], [2.0]]), np.array([[3.0], [4.0], [5.0]]))
    >>> g.shape, g.rank
    ((2, 3), 1)
    >>> np.asarray(g + g)
    array([[ 6.,  8., 10.],
           [12., 16., 20.]])
    """

    __slots__ = ("u", "v")
    __array_priority__ = 3000

    def __init__(self, u: np.ndarray, v: np.ndarray) -> None:
        if u.ndim != 2 or v.ndim != 2 or u.shape[1] != v.shape[1]:
            raise ValueError(f"LowRankArray needs u (m, r) and v (n, r), got {u.shape}, {v.shape}")
        self.u = u
        self.v = v

    @classmethod
    def outer(cls, a: np.ndarray, b: np.ndarray) -> LowRankArray:
        """The rank-one array ``a[:, None] * b[None, :]``."""
        return cls(a.reshape(-1, 1), b.reshape(-1, 1))

    # -- array attributes ----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.u.shape[0], self.v.shape[0])

    ndim = 2

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return np.result_type(self.u, self.v)

    @property
    def rank(self) -> int:
        return self.u.shape[1]

    def toarray(self) -> np.ndarray:
        """The dense array (``m x n``)."""
        return self.u @ self.v.T

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.toarray()
        return a if dtype is None else a.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"LowRankArray(shape={self.shape}, rank={self.rank}, dtype={self.dtype})"

    def astype(self, dtype: Any, copy: bool = True) -> LowRankArray:
        return LowRankArray(self.u.astype(dtype), self.v.astype(dtype))

    def copy(self) -> LowRankArray:
        return LowRankArray(self.u.copy(), self.v.copy())

    # -- operations that keep the factors --------------------------------------------------------
    @property
    def T(self) -> LowRankArray:
        return LowRankArray(self.v, self.u)

    def transpose(self, *axes: Any) -> Any:
        if axes in ((), (None,), ((1, 0),), (1, 0)):
            return self.T
        return self.toarray().transpose(*axes)

    def __neg__(self) -> LowRankArray:
        return LowRankArray(-self.u, self.v)

    def __pos__(self) -> LowRankArray:
        return self

    def _scaled(self, s: Any) -> Any:
        if np.ndim(s) == 0 and not isinstance(s, LowRankArray):
            return LowRankArray(self.u * s, self.v)
        return NotImplemented

    def __mul__(self, other: Any) -> Any:
        out = self._scaled(other)
        return self.toarray() * other if out is NotImplemented else out

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Any:
        if np.ndim(other) == 0 and not isinstance(other, LowRankArray):
            return LowRankArray(self.u / other, self.v)
        return self.toarray() / _dense(other)

    def __add__(self, other: Any) -> Any:
        if isinstance(other, LowRankArray) and other.shape == self.shape:
            rank = self.rank + other.rank
            # Stay factored while that is clearly cheaper than the dense array.
            if rank * (self.shape[0] + self.shape[1]) < self.size // 2:
                return LowRankArray(
                    np.concatenate([self.u, other.u], axis=1),
                    np.concatenate([self.v, other.v], axis=1),
                )
        return self.toarray() + _dense(other)

    def __radd__(self, other: Any) -> Any:
        return _dense(other) + self.toarray()

    def __sub__(self, other: Any) -> Any:
        return self + (-other if isinstance(other, LowRankArray) else -np.asarray(other))

    def __rsub__(self, other: Any) -> Any:
        return _dense(other) - self.toarray()

    def __matmul__(self, other: Any) -> Any:
        other = _dense(other)
        return self.u @ (self.v.T @ other)

    def __rmatmul__(self, other: Any) -> Any:
        return (_dense(other) @ self.u) @ self.v.T

    def sum(self, axis: Any = None, **kwargs: Any) -> Any:
        if kwargs:
            return self.toarray().sum(axis=axis, **kwargs)
        if axis is None:
            return float(self.u.sum(axis=0) @ self.v.sum(axis=0))
        if axis in (0, -2):
            return self.v @ self.u.sum(axis=0)
        return self.u @ self.v.sum(axis=0)

    def __getitem__(self, idx: Any) -> Any:
        return self.toarray()[idx]

    # -- everything else: NumPy on the dense array ------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "__call__" and not kwargs:
            if ufunc is np.negative:
                return -self
            if ufunc is np.multiply and len(inputs) == 2:
                other = inputs[1] if inputs[0] is self else inputs[0]
                scaled = self._scaled(other)
                if scaled is not NotImplemented:
                    return scaled
        inputs = tuple(_dense(x) for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_dense(x) for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        if func is np.shape:
            return self.shape
        if func is np.ndim:
            return 2
        if func is np.transpose:
            axes = args[1] if len(args) > 1 else kwargs.get("axes")
            if axes is None or tuple(axes) in ((1, 0), (-1, -2)):
                return self.T
        args = tuple(_materialize(a) for a in args)
        kwargs = {k: _materialize(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _materialize(x: Any) -> Any:
    if isinstance(x, LowRankArray):
        return x.toarray()
    if isinstance(x, list | tuple):
        return type(x)(_materialize(v) for v in x)
    return x
