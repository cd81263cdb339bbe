"""Pytrees: nested tuples, lists, dicts, namedtuples, None and registered classes.

A thin layer over `optree <https://github.com/metaopt/optree>`_ (the C++ pytree library
PyTorch uses) with scigrad's own registry namespace, so registering a class for scigrad
does not affect other libraries. ``None`` is an empty subtree, as in JAX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import optree

__all__ = [
    "register_dataclass",
    "register_pytree_node",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_structure",
    "tree_unflatten",
]

NAMESPACE = "scigrad"
T = TypeVar("T")


def tree_flatten(tree: Any) -> tuple[list[Any], optree.PyTreeSpec]:
    """Leaves of ``tree`` in a fixed order, and the structure to rebuild it."""
    return optree.tree_flatten(tree, namespace=NAMESPACE)


def tree_unflatten(treedef: optree.PyTreeSpec, leaves: Iterable[Any]) -> Any:
    return treedef.unflatten(leaves)


def tree_leaves(tree: Any) -> list[Any]:
    return optree.tree_leaves(tree, namespace=NAMESPACE)


def tree_structure(tree: Any) -> optree.PyTreeSpec:
    return optree.tree_structure(tree, namespace=NAMESPACE)


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply ``f`` leaf-wise over ``tree`` (and trees of the same structure in ``rest``).

    >>> tree_map(lambda x: 2 * x, {"a": 1.0, "b": (2.0, None)})
    {'a': 2.0, 'b': (4.0, None)}
    """
    return optree.tree_map(f, tree, *rest, namespace=NAMESPACE)


def register_pytree_node(
    cls: type,
    flatten: Callable[[Any], tuple[Sequence[Any], Any]],
    unflatten: Callable[[Any, Sequence[Any]], Any],
) -> None:
    """Register ``cls`` as a pytree node: ``flatten(x) -> (children, aux)`` and
    ``unflatten(aux, children) -> x`` (JAX's convention)."""
    optree.register_pytree_node(
        cls,
        lambda x: tuple(flatten(x)),
        lambda aux, children: unflatten(aux, children),
        namespace=NAMESPACE,
    )


def register_dataclass(
    cls: type[T] | None = None,
    *,
    data_fields: Sequence[str] | None = None,
    meta_fields: Sequence[str] = (),
) -> Any:
    """Register a dataclass as a pytree whose ``data_fields`` are differentiable leaves and
    whose ``meta_fields`` are static. Without ``data_fields``, every field that is not a
    meta field is data. Usable as a decorator.

    >>> import dataclasses
    >>> @register_dataclass
    ... @dataclasses.dataclass
    ... class Params:
    ...     w: float
    ...     b: float
    >>> tree_leaves(Params(1.0, 2.0))
    [1.0, 2.0]
    """

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"register_dataclass expects a dataclass, got {cls!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        data = (
            [n for n in names if n not in meta_fields] if data_fields is None else list(data_fields)
        )
        meta = list(meta_fields)

        def flatten(x: Any) -> tuple[list, tuple]:
            return [getattr(x, n) for n in data], tuple(getattr(x, n) for n in meta)

        def unflatten(aux: tuple, children: Sequence[Any]) -> Any:
            return cls(
                **dict(zip(data, children, strict=True)), **dict(zip(meta, aux, strict=True))
            )

        register_pytree_node(cls, flatten, unflatten)
        return cls

    return register if cls is None else register(cls)
