"""Every primitive is covered: a shape rule each, and each differentiable one exercised by
check_grads (first and second order, both modes) somewhere in the suite.

conftest.py records the primitives that traces process inside check_grads; this test runs
last (see ``pytest_collection_modifyitems``) and only when the whole suite was collected.
"""

from __future__ import annotations

import pytest

from scigrad.jit._lower import is_lowerable
from tests.conftest import CHECKED_PRIMITIVES, JIT_CHECKED, LIBRARY_PRIMITIVES


def _library_primitives():
    return LIBRARY_PRIMITIVES


def test_every_primitive_has_a_shape_rule():
    missing = sorted(n for n, p in _library_primitives().items() if p.shape_rule is None)
    assert not missing, f"primitives without a shape rule: {missing}"


def test_every_differentiable_primitive_is_checked(request):
    if not getattr(request.session, "scigrad_full_suite", False):
        pytest.skip("run the whole suite to check rule coverage")
    unchecked = sorted(
        n for n, p in _library_primitives().items() if not p.nondiff and n not in CHECKED_PRIMITIVES
    )
    assert not unchecked, f"differentiable primitives never run under check_grads: {unchecked}"


def test_every_compilable_primitive_is_checked_through_jit(request):
    """conftest.py lowers every function given to check_grads (value, VJP and JVP) for
    sg.jit and compares with eager evaluation; every primitive that is not deliberately
    left to eager mode must have gone through that comparison."""
    if not getattr(request.session, "scigrad_full_suite", False):
        pytest.skip("run the whole suite to check jit coverage")
    unchecked = sorted(
        n
        for n, p in _library_primitives().items()
        if not p.nondiff and is_lowerable(n) and n not in JIT_CHECKED
    )
    assert not unchecked, f"primitives never compared through sg.jit's lowering: {unchecked}"
