"""Code that may run in CPython: class bodies and frame introspection (may fall back, with
a reason; results must be CPython's); calls under sys.settrace / sys.setprofile.
(Generators, coroutines and async generators are ours: test_generators.py,
test_coroutines.py, test_async_generators.py.)"""

import inspect
import sys

import pytest

from harness import assert_tier1, cases, check, check_agrees
from tiered import stats, tiered


# --- may fall back (with a reason): class bodies, frame introspection ---------------

def class_body_in_function(x):
    class Local:
        attr = x * 2

        def method(self):
            return self.attr + 1

        def __repr__(self):
            return f"Local({self.attr})"
    return Local().method(), Local.__qualname__, repr(Local())


def class_body_with_closure(x):
    class K:
        y = x

        def get(self):
            return x
    return K.y, K().get()


def class_body_comprehension_scope(x):
    class K:
        y = x
        try:
            z = [y for _ in range(2)]  # class names are not visible in the comprehension
        except NameError as e:
            z = str(e)
    return K.z


def uses_locals(a):
    b = a + 1
    return sorted(locals().items())


def uses_vars(a):
    c = [a]  # noqa: F841
    return sorted(vars())


def uses_dir(a):
    z = 1  # noqa: F841
    return dir()


def uses_eval(a):
    b = 10  # noqa: F841
    return eval("a + b"), eval("x * 2", {"x": a})


def uses_exec(a):
    ns = {}
    exec("r = a * 3", {"a": a}, ns)
    exec("q = 1")
    return ns["r"]


def uses_globals():
    g = globals()
    return g["__name__"], "uses_globals" in g


def uses_getframe():
    f = sys._getframe()
    return f.f_code.co_name, sys._getframe(0).f_code.co_name, f.f_lineno - uses_getframe.__code__.co_firstlineno


def uses_currentframe():
    fr = inspect.currentframe()
    return fr.f_code.co_name, type(fr.f_locals).__name__


def _caller_name():
    return sys._getframe(1).f_code.co_name


def callee_inspects_caller():
    # the callee looks at *our* frame: it must see this function
    return _caller_name()


class SuperBase:
    def hello(self):
        return "base"


class SuperChild(SuperBase):
    def hello(self):
        return ("child", super().hello())


def zero_arg_super():
    return SuperChild().hello()


def zero_arg_super_direct(obj):
    return type(obj).hello(obj)


def warnings_stacklevel():
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("w", UserWarning, stacklevel=1)
    return [(str(w.message), w.lineno - warnings_stacklevel.__code__.co_firstlineno, w.filename == __file__)
            for w in caught]


MAY_FALL_BACK = cases(
    (class_body_in_function, (3,)), (class_body_with_closure, ("v",)), (class_body_comprehension_scope, (1,)),
)


@pytest.mark.parametrize("f,args,kwargs", MAY_FALL_BACK)
def test_may_fall_back_but_agrees(f, args, kwargs):
    check_agrees(f, *args, **kwargs)


# Code that reads the running frame (its own or its caller's) runs in our tiers: every
# tiered activation is a real CPython frame.
FRAME_READERS = cases(
    (uses_locals, (1,)), (uses_vars, (2,)), (uses_dir, (0,)), (uses_eval, (4,)), (uses_exec, (5,)),
    (uses_globals, ()), (uses_getframe, ()), (uses_currentframe, ()), (callee_inspects_caller, ()),
    (zero_arg_super, ()), (warnings_stacklevel, ()),
)


@pytest.mark.parametrize("f,args,kwargs", FRAME_READERS)
def test_frame_readers_run_in_our_tiers(f, args, kwargs):
    check(f, *args, **kwargs)


def test_zero_arg_super_in_tiered_method():
    class Base:
        def who(self):
            return "base"

    class Child(Base):
        @tiered
        def who(self):
            return ("child", super().who())

    assert Child().who() == ("child", "base")
    s = stats(Child.__dict__["who"])
    assert s["calls"] == 1
    if s["fallback_calls"]:
        assert s["unsupported"], s


# --- tracing and profiling ------------------------------------------------------

def traced_target(n):
    total = 0
    for i in range(n):
        if i % 2:
            total += i
    return total


def _collect(log):
    def tracer(frame, event, arg):
        if frame.f_code.co_filename == __file__:
            log.append((event, frame.f_code.co_name, frame.f_lineno))
        return tracer
    return tracer


def _profile_collect(log):
    def prof(frame, event, arg):
        if frame.f_code.co_filename == __file__:
            log.append((event, frame.f_code.co_name, getattr(arg, "__name__", None)))
    return prof


@pytest.mark.real_tiering
def test_settrace_runs_in_cpython(no_trace):
    w = tiered(traced_target)
    plain_events, tiered_events = [], []
    sys.settrace(_collect(plain_events))
    try:
        r1 = traced_target(6)
    finally:
        sys.settrace(None)
    sys.settrace(_collect(tiered_events))
    try:
        r2 = w(6)
    finally:
        sys.settrace(None)
    assert r1 == r2
    assert tiered_events == plain_events
    assert any(e[0] == "line" for e in plain_events)
    s = stats(w)
    assert s["fallback_calls"] == 1, s
    # without a tracer it runs in tier 1 again
    assert w(6) == r1
    s = stats(w)
    assert s["interp_calls"] + s["native_calls"] >= 1 and s["fallback_calls"] == 1, s


@pytest.mark.real_tiering
def test_setprofile_runs_in_cpython(no_trace):
    w = tiered(traced_target)
    plain_events, tiered_events = [], []
    sys.setprofile(_profile_collect(plain_events))
    try:
        r1 = traced_target(4)
    finally:
        sys.setprofile(None)
    sys.setprofile(_profile_collect(tiered_events))
    try:
        r2 = w(4)
    finally:
        sys.setprofile(None)
    assert r1 == r2
    assert tiered_events == plain_events
    assert stats(w)["fallback_calls"] == 1


@pytest.mark.real_tiering
def test_settrace_non_strict_counts_every_call(no_trace):
    w = tiered(traced_target)
    sys.settrace(lambda *a: None)
    try:
        results = [w(i) for i in range(5)]
    finally:
        sys.settrace(None)
    assert results == [traced_target(i) for i in range(5)]
    assert stats(w)["fallback_calls"] == 5


def test_tier1_after_trace_cleared(no_trace):
    w = tiered(traced_target, strict=True)
    assert w(3) == traced_target(3)
    assert_tier1(w)
