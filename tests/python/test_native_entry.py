"""The wrapper's native entry. Once a function with plain positional parameters has native
code and was called twice in a row with the same argument types, CPython's calls of the
wrapper enter the native trampoline directly (`stats(f)["native_entry"]`), which then makes
every check the Rust entry makes. Each case installs it, changes one thing it depends on,
and must agree with CPython; the entry must be gone where the Rust entry has to decide."""

import os
import sys
import threading

import pytest

from tiered import stats, tiered

pytestmark = pytest.mark.skipif(os.environ.get("TIERED_JIT") == "0", reason="tier 2 is off (TIERED_JIT=0)")


def add1(x):
    return x + 1


def other_add(x):
    return x + 100


def installed(f, *args):
    """Calls `f` until its native entry is in place (a few calls at threshold 0)."""
    for _ in range(3):
        f(*args)
    assert stats(f)["native_entry"], stats(f)
    return f


def test_installed_after_two_calls_with_the_same_types():
    w = tiered(add1, jit_threshold=0)
    # At threshold 0 the first call runs in tier 1 and the second compiles native code,
    # which the third enters through the Rust entry: two calls in a row with these types.
    for i in range(3):
        assert not stats(w)["native_entry"]
        assert w(i) == i + 1
    assert stats(w)["native_entry"]
    for i in range(100):
        assert w(i) == i + 1
    s = stats(w)
    # The native entry counts its calls as the Rust entry does.
    assert s["calls"] == 103 and s["native_calls"] + s["interp_calls"] == 103, s
    assert s["fallback_calls"] == 0 and s["native_calls"] >= 101, s


def test_other_argument_types_leave_it():
    w = installed(tiered(add1, jit_threshold=0), 1)
    assert w(1.5) == 2.5
    assert not stats(w)["native_entry"]
    installed(w, 2.5)  # now for floats
    assert w(10**30) == 10**30 + 1  # an int, too big for the unboxed path
    assert w(3) == 4
    with pytest.raises(TypeError) as ours:
        w("a")
    with pytest.raises(TypeError) as theirs:
        add1("a")
    assert str(ours.value) == str(theirs.value)


def test_alternating_types_stay_in_the_rust_entry():
    w = tiered(add1, jit_threshold=0)
    for i in range(20):
        assert w(i) == i + 1
        assert w(i + 0.5) == i + 1.5
        assert not stats(w)["native_entry"]
    assert stats(w)["native_calls"] == 40


def test_keywords_and_wrong_counts():
    w = installed(tiered(add1, jit_threshold=0), 1)
    assert w(x=4) == 5
    assert w(*(5,)) == 6
    assert w(**{"x": 6}) == 7
    for args, kwargs in [((), {}), ((1, 2), {}), ((1,), {"x": 2}), ((), {"y": 1})]:
        installed(w, 1)
        with pytest.raises(TypeError) as theirs:
            add1(*args, **kwargs)
        with pytest.raises(TypeError) as ours:
            w(*args, **kwargs)
        assert str(ours.value) == str(theirs.value)


def test_new_code_object():
    def f(x):
        return x + 1

    w = installed(tiered(f, jit_threshold=0), 1)
    f.__code__ = other_add.__code__
    assert w(1) == 101
    assert not stats(w)["native_entry"]
    assert installed(w, 2)(2) == 102


def test_trace_function_sees_the_calls():
    w = installed(tiered(add1, jit_threshold=0), 1)
    seen = []

    def tracer(frame, event, arg):
        if frame.f_code is add1.__code__:
            seen.append(event)
        return tracer

    sys.settrace(tracer)
    try:
        assert w(1) == 2
    finally:
        sys.settrace(None)
    assert seen[:1] == ["call"] and "return" in seen, seen
    assert w(2) == 3


def test_recursion_limit():
    # Each level goes through a C function (map), so each is a call from CPython.
    g = {"__builtins__": __builtins__}
    exec(compile("def down(n):\n    return 0 if n == 0 else sum(map(down, [n - 1])) + 1\n", __file__, "exec"), g)
    plain = g["down"]
    depth = sys.getrecursionlimit() * 2
    with pytest.raises(RecursionError):
        plain(depth)
    g["down"] = w = tiered(plain, jit_threshold=0)
    installed(w, 3)
    with pytest.raises(RecursionError):
        w(depth)
    assert w(50) == 50


def test_other_threads():
    w = installed(tiered(add1, jit_threshold=0), 1)
    results = []

    def work(k):
        results.append([w(k * 1000 + i) for i in range(200)])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [[k * 1000 + i + 1 for i in range(200)] for k in range(3)]
    assert w(1) == 2
    s = stats(w)
    assert s["calls"] == 3 + 600 + 1 and s["fallback_calls"] == 0, s


def first_plus_one(xs):
    return xs[0] + 1


def test_replaced_native_code_is_left():
    # Native code specialized on a list of ints fails its guards on floats until it is
    # replaced; the native entry must notice, or every call would keep failing them.
    w = installed(tiered(first_plus_one, jit_threshold=0), [1])
    for i in range(1000):
        assert w([i + 0.5]) == i + 1.5
    s = stats(w)
    assert s["deopts"] < 500, s
    assert s["native_calls"] == s["calls"], s


def test_as_a_method():
    class A:
        m = tiered(lambda self, x: (self.k, x))

        def __init__(self, k):
            self.k = k

    a = A(7)
    for i in range(10):
        assert a.m(i) == (7, i)
    assert A.m(a, 3) == (7, 3)


LAZY = '''
def leaf(n):
    t = 0
    for i in range(n):
        t += i
    return t

def caller(n):
    return leaf(n) + leaf(n + 1)
'''


def test_entries_are_compiled_when_something_first_calls_through_them():
    # `leaf` has a loop, so its callers call it (direct-call entry) instead of copying it.
    # Calls from its native caller alone make only that entry; the trampoline for calls
    # from CPython, and its vectorcall form, come with the first calls from Python.
    # (A loop that tiers up within leaf's first call would make it native while its
    # caller still runs in tier 1, whose next call of it is a call from CPython's side.)
    ns = {}
    exec(LAZY, ns)
    leaf = ns["leaf"] = tiered(ns["leaf"], jit_threshold=0, osr_threshold=10**6)
    caller = ns["caller"] = tiered(ns["caller"], jit_threshold=0)
    for _ in range(3):
        assert caller(5) == 25
    assert stats(caller)["native_calls"] >= 1, stats(caller)
    assert stats(leaf)["native_entries"] == ["direct"], stats(leaf)
    assert leaf(4) == 6 and leaf(5) == 10
    assert stats(leaf)["native_entries"] == ["cpython", "direct", "slot"], stats(leaf)
    assert stats(leaf)["native_entry"]
    assert caller(6) == 36 and leaf(7) == 21


def test_the_trampoline_for_calls_from_cpython_waits_for_many_such_calls():
    # Compiling a small function's trampoline took several times its code's own compile
    # (each entry holds a copy of the body), and calls from a caller still in tier 1 stop
    # once it is native: so calls from CPython run the native code through Rust until
    # they number 50 times the call threshold, and only then is the trampoline made.
    def add2(x):  # a code object of its own: specializations belong to the code
        return x + 2

    w = tiered(add2, jit_threshold=2)
    for i in range(60):
        assert w(i) == i + 2
    s = stats(w)
    assert s["native_calls"] >= 50 and s["native_compiles"] == 1, s
    assert s["native_entries"] == [] and not s["native_entry"], s
    for i in range(60):
        assert w(i) == i + 2
    s = stats(w)
    assert s["native_entries"] == ["cpython", "slot"] and s["native_entry"], s
    assert s["calls"] == 120 and s["fallback_calls"] == 0, s


def test_an_entry_wanted_before_the_callee_is_native_comes_with_its_code():
    # The caller is native first: its direct call finds the callee cold (and runs it
    # through the generic path); the callee's compile then makes the entry with it.
    ns = {}
    exec(LAZY, ns)
    leaf = ns["leaf"] = tiered(ns["leaf"], jit_threshold=50)
    caller = ns["caller"] = tiered(ns["caller"], jit_threshold=0)
    for i in range(60):
        assert caller(i) == i * i
    assert stats(leaf)["native_compiles"] == 1, stats(leaf)
    assert "direct" in stats(leaf)["native_entries"], stats(leaf)
    assert caller(10) == 100
