"""Shared test set-up: hypothesis profile, and a record of which primitives check_grads
exercised (see tests/test_rule_coverage.py)."""

from __future__ import annotations

import os

import numpy as onp
import pytest
from hypothesis import HealthCheck, settings

import scigrad.numpy.linalg  # noqa: F401 - register every library primitive
import scigrad.scipy.linalg  # noqa: F401
import scigrad.scipy.sparse.linalg  # noqa: F401
import scigrad.scipy.special  # noqa: F401
from scigrad.check import _check_grads
from scigrad.core.forward import JVPTrace
from scigrad.core.graph import TracedControlFlowError
from scigrad.core.primitive import primitives
from scigrad.core.reverse import ReverseTrace
from scigrad.jit import NotCompilableError
from scigrad.jit._check import check_lowering

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("SCIGRAD_HYPOTHESIS_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("ci")

#: The library's primitives (tests and docstring examples register more later).
LIBRARY_PRIMITIVES = dict(primitives)
#: Names of the primitives differentiated inside check_grads during this session.
CHECKED_PRIMITIVES: set[str] = set()
_inside_check = [0]


def _recording(process):
    def wrapper(self, prim, args, params):
        if _inside_check[0]:
            CHECKED_PRIMITIVES.add(prim.name)
        return process(self, prim, args, params)

    return wrapper


ReverseTrace.process = _recording(ReverseTrace.process)
JVPTrace.process = _recording(JVPTrace.process)
_original_check = _check_grads._check


#: Primitives whose lowering to compiled code (sg.jit) matched eager evaluation, and the
#: reasons the others were not compiled, over every outermost check_grads call.
JIT_CHECKED: set[str] = set()
JIT_NOT_COMPILED: dict[str, str] = {}


def _check_recording(f, args, *rest, **kwargs):
    _inside_check[0] += 1
    try:
        result = _original_check(f, args, *rest, **kwargs)
        if _inside_check[0] == 1 and os.environ.get("SCIGRAD_CHECK_JIT", "1") != "0":
            _check_through_jit(f, args)
        return result
    finally:
        _inside_check[0] -= 1


def _check_through_jit(f, args):
    """Every function checked by check_grads is also lowered for sg.jit and compared."""
    try:
        JIT_CHECKED.update(check_lowering(f, args))
    except (NotCompilableError, TracedControlFlowError) as exc:
        JIT_NOT_COMPILED.setdefault(type(exc).__name__, str(exc))


_check_grads._check = _check_recording


@pytest.fixture
def rng() -> onp.random.Generator:
    return onp.random.default_rng(0)


def pytest_collection_modifyitems(session, config, items):
    """Run the rule-coverage test last, and only judge coverage on a whole-suite run."""
    coverage = [i for i in items if i.name.startswith("test_every_")]
    others = [i for i in items if i not in coverage]
    items[:] = others + coverage
    areas = {str(i.path.parent.name) for i in others}
    session.scigrad_full_suite = {"core", "numpy", "check"} <= areas and not config.option.keyword
