"""The wrapper object: metadata, signature, method binding, decorator stacking,
pickling, counters, threads, and the TIERED_DISABLE / TIERED_STRICT switches."""

import copy
import functools
import inspect
import pickle
import textwrap
import threading
import types

import pytest

from harness import assert_tier1, check, run_python
from tiered import UnsupportedError, stats, tiered
from tiered import dump as tiered_dump


def documented(a, b=2, *args, c, d=4, **kw):
    """Docstring of documented."""
    return (a, b, args, c, d, kw)


def no_doc(x):
    return x


@tiered
def picklable(x):
    return x + 1


@tiered(strict=True)
def decorated_with_options(x):
    """Strict decorated."""
    return x * 2


class Holder:
    @tiered
    def method(self, x):
        return (type(self).__name__, x)

    plain_wrapped = tiered(lambda self, y=0: ("lambda method", y))

    @staticmethod
    @tiered
    def static(x):
        return ("static", x)

    @classmethod
    @tiered
    def klass(cls, x):
        return ("class", cls.__name__, x)


class SubHolder(Holder):
    pass


def test_metadata():
    w = tiered(documented)
    assert w.__name__ == "documented"
    assert w.__qualname__ == documented.__qualname__
    assert w.__doc__ == "Docstring of documented."
    assert w.__module__ == documented.__module__ == __name__
    assert w.__wrapped__ is documented
    assert w.__defaults__ == documented.__defaults__ == (2,)
    assert inspect.signature(w) == inspect.signature(documented)
    assert "documented" in repr(w)
    assert tiered(no_doc).__doc__ is None


def test_metadata_nested_function():
    def outer():
        def inner(q):
            return q
        return inner
    inner = outer()
    w = tiered(inner)
    assert w.__qualname__ == inner.__qualname__ == "test_metadata_nested_function.<locals>.outer.<locals>.inner"
    assert w.__name__ == "inner"
    assert "inner" in repr(w)


def test_decorator_forms():
    assert picklable(1) == 2
    assert decorated_with_options(3) == 6
    assert decorated_with_options.__doc__ == "Strict decorated."
    s = stats(decorated_with_options)
    assert s["interp_calls"] + s["native_calls"] >= 1
    w = tiered(strict=True)(no_doc)
    assert w(5) == 5
    assert_tier1(w)
    w2 = tiered(no_doc, strict=False)
    assert w2("x") == "x"
    assert_tier1(w2)


def test_call_results_match_with_kwargs():
    w = tiered(documented, strict=True)
    assert w(1, c=3) == documented(1, c=3)
    assert w(1, 2, 3, 4, c=5, e=6) == documented(1, 2, 3, 4, c=5, e=6)
    assert w(a=1, c=2) == documented(a=1, c=2)
    assert_tier1(w)


# A function whose code is an interactive statement's (PRINT_EXPR: `sys.displayhook`),
# which runs in CPython.
SHOWS = types.FunctionType(compile("6 * 7", "<stdin>", "single"), {})


@pytest.mark.real_tiering
def test_translation_is_lazy():
    w = tiered(SHOWS, strict=True)  # must not raise: nothing is translated yet
    s = stats(w)
    assert s["calls"] == 0 and s["interp_calls"] == 0 and s["native_calls"] == 0 and s["fallback_calls"] == 0
    with pytest.raises(UnsupportedError):
        w()


def test_stats_shape_and_counts():
    w = tiered(no_doc, strict=True)
    for i in range(7):
        assert w(i) == i
    s = stats(w)
    for key in ("calls", "fallback_calls", "interp_calls", "native_calls", "deopts"):
        assert isinstance(s[key], int) and s[key] >= 0, (key, s)
    assert s["calls"] == 7
    assert s["interp_calls"] + s["native_calls"] == 7
    assert s["fallback_calls"] == 0
    assert s["unsupported"] == []
    assert isinstance(s, dict)
    # stats() returns a snapshot/copy: mutating it does not corrupt the counters
    s["calls"] = -1
    s["unsupported"].append({"op": "x", "reason": "y"})
    assert stats(w)["calls"] == 7 and stats(w)["unsupported"] == []


def _loop(n):
    t = 0
    for i in range(n):
        t += i * 2
    return t


def test_stats_report_compile_time_and_code_size():
    # Tier 2 off, nothing is compiled; on, a hot loop's function is compiled once, and its
    # time and machine code are reported (also per specialization by dump).
    import os

    w = tiered(_loop, strict=True)
    for _ in range(3):
        assert w(3000) == _loop(3000)
    s = stats(w)
    if os.environ.get("TIERED_JIT") == "0":
        assert (s["native_compiles"], s["compile_ms"], s["code_bytes"]) == (0, 0.0, 0), s
        assert s["code_by_kind"] == {}, s
        return
    assert s["native_compiles"] >= 1 and s["compile_ms"] > 0 and s["code_bytes"] > 100, s
    # The function's bytes by kind of instruction, hot and cold: its loop's templates are
    # there, hot, and the kinds add up to no more than the code with its entries.
    by = s["code_by_kind"]
    assert all(hot >= 0 and cold >= 0 for hot, cold in by.values()), by
    assert {"ForIterRange", "BinaryInt", "(rest)"} <= set(by), by
    assert by["ForIterRange"][0] > 0 and by["BinaryInt"][0] > 0, by
    assert 100 < sum(hot + cold for hot, cold in by.values()) <= s["code_bytes"], (by, s)
    text = tiered_dump(w)
    assert "bytes of machine code" in text and "ms in all" in text, text
    assert "bytes by instruction kind, hot+cold: " in text and "BinaryInt " in text, text


def test_method_binding():
    h = Holder()
    assert h.method(1) == ("Holder", 1)
    assert Holder.method(h, 2) == ("Holder", 2)  # via the class, explicit self
    assert SubHolder().method(3) == ("SubHolder", 3)
    bound = h.method
    assert bound.__self__ is h
    assert bound(4) == ("Holder", 4)
    assert h.plain_wrapped() == ("lambda method", 0)
    assert h.plain_wrapped(y=5) == ("lambda method", 5)
    with pytest.raises(TypeError) as ei:
        Holder.method()
    assert "method() missing" in str(ei.value)
    s = stats(Holder.__dict__["method"])
    assert s["interp_calls"] + s["native_calls"] >= 4


def test_method_binding_type_error_matches_cpython():
    def m(self, x):
        return x
    expected = None
    try:
        types.MethodType(m, object())()
    except TypeError as e:
        expected = str(e)
    with pytest.raises(TypeError) as ei:
        types.MethodType(tiered(m), object())()
    assert str(ei.value) == expected


def test_staticmethod_classmethod_stacking():
    assert Holder.static(1) == ("static", 1)
    assert Holder().static(2) == ("static", 2)
    assert Holder.klass(3) == ("class", "Holder", 3)
    assert SubHolder().klass(4) == ("class", "SubHolder", 4)
    for w in (Holder.__dict__["static"].__func__, Holder.__dict__["klass"].__func__):
        s = stats(w)
        assert s["interp_calls"] + s["native_calls"] >= 2


def test_functools_wraps_stacking():
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            return ("deco", fn(*a, **k))
        return wrapper

    decorated = deco(no_doc)
    w = tiered(decorated, strict=True)  # tiering a functools.wraps wrapper
    assert w(1) == ("deco", 1)
    assert w.__name__ == "no_doc"
    assert w.__wrapped__ is decorated
    assert_tier1(w)

    inner = tiered(documented)
    outer = deco(inner)  # functools.wraps copying metadata *from* a tiered wrapper
    assert outer.__name__ == "documented"
    assert outer.__doc__ == "Docstring of documented."
    assert outer.__wrapped__ is inner
    assert outer(1, c=2) == ("deco", documented(1, c=2))
    assert inspect.signature(outer) == inspect.signature(documented)


def test_pickle_by_reference():
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps(picklable, protocol=proto)
        assert pickle.loads(data) is picklable
    assert copy.copy(picklable) is picklable
    assert copy.deepcopy(picklable) is picklable
    assert pickle.loads(pickle.dumps([picklable, picklable]))[1] is picklable


def test_hash_and_equality():
    w = tiered(no_doc)
    assert w == w
    assert {w: 1}[w] == 1
    assert hash(w) == hash(w)


def test_closure_and_kwdefaults():
    def make(k):
        def f(x, *, scale=k):
            return x * scale + k
        return f
    f = make(3)
    check(f, 2)
    check(f, 2, scale=10)
    w = tiered(f)
    assert w(1) == f(1)


def test_defaults_changed_after_wrapping_are_seen():
    def f(a=1):
        return a
    w = tiered(f, strict=True)
    assert w() == 1
    f.__defaults__ = (2,)
    assert w() == f() == 2
    assert_tier1(w)


def test_many_threads():
    def work(n):
        total = 0
        for i in range(n):
            total += i * i
        return total

    w = tiered(work, strict=True)
    results = []
    errors = []

    def runner():
        try:
            for _ in range(200):
                results.append(w(50))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == [work(50)] * 800
    s = stats(w)
    assert s["calls"] == 800
    assert_tier1(w)


def test_wrapper_reentrancy():
    calls = []

    @tiered
    def rec(n):
        calls.append(n)
        return 0 if n == 0 else 1 + rec(n - 1)

    assert rec(20) == 20
    assert calls == list(range(20, -1, -1))
    assert stats(rec)["fallback_calls"] == 0


_ENV_SCRIPT = textwrap.dedent("""
    import types
    from tiered import tiered, stats, UnsupportedError

    def f(x):
        return x + 1

    # An interactive statement's code (PRINT_EXPR) runs in CPython.
    shows = types.FunctionType(compile("6 * 7", "<stdin>", "single"), {})

    def run(r):
        return [r]

    w = tiered(f)
    print("identity", w is f)
    print("decorator", tiered(strict=True)(f) is f)
    print("result", w(1))
    g = tiered(shows)
    try:
        out = run(g())
        print("gen ok", out)
    except UnsupportedError as e:
        print("gen strict")
    try:
        out = run(tiered(shows, strict=False)())
        print("explicit non-strict ok", out)
    except UnsupportedError:
        print("explicit non-strict raised")
""")


def test_tiered_disable_env():
    r = run_python(_ENV_SCRIPT, env={"TIERED_DISABLE": "1"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "identity True" in lines
    assert "decorator True" in lines
    assert "result 2" in lines
    assert "gen ok [None]" in lines


@pytest.mark.real_tiering
def test_tiered_strict_env():
    r = run_python(_ENV_SCRIPT, env={"TIERED_STRICT": "1"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "identity False" in lines
    assert "result 2" in lines
    assert "gen strict" in lines
    assert "explicit non-strict ok [None]" in lines


def test_default_is_not_strict_without_env():
    r = run_python(_ENV_SCRIPT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "identity False" in lines
    assert "gen ok [None]" in lines


def _implicit_methods(deco):
    """Classes whose __new__, __init_subclass__ and __class_getitem__ are decorated with
    ``deco``: class creation makes the first a staticmethod and the others classmethods."""

    class Base:
        @deco
        def __init_subclass__(cls, tag=None, **kw):
            super(Base, cls).__init_subclass__(**kw)
            cls.tag = (cls.__name__, tag)

        @deco
        def __class_getitem__(cls, item):
            return (cls.__name__, item)

        @deco
        def __new__(cls, *args):
            o = object.__new__(cls)
            o.args = args
            return o

    class Sub(Base, tag="x"):
        pass

    class SubSub(Sub):
        pass

    inst = SubSub(1, 2)
    observed = (
        Sub.tag, SubSub.tag, Base[int], Sub[str], inst.args, Sub().args,
        type(Base.__dict__["__new__"]).__name__,
        type(Base.__dict__["__init_subclass__"]).__name__,
        type(Base.__dict__["__class_getitem__"]).__name__,
        inst.__new__(Sub, 5).args,  # through an instance: a staticmethod, not bound
    )
    return observed, Base


def test_implicit_classmethods_and_staticmethods_as_in_cpython():
    expected, _ = _implicit_methods(lambda f: f)
    got, base = _implicit_methods(lambda f: tiered(f, strict=True))
    assert got == expected
    for name in ("__new__", "__init_subclass__", "__class_getitem__"):
        assert_tier1(base.__dict__[name].__func__)


def test_set_name_leaves_other_names_and_rebindings_alone():
    f = tiered(lambda cls, *a: a)

    class A:
        helper = f          # another name: stays a plain (binding) wrapper
        __new__ = f

    assert A.__dict__["helper"] is f
    assert type(A.__dict__["__new__"]) is staticmethod
    # Assigned after class creation: not converted (as for a function).
    A.__init_subclass__ = f
    assert A.__dict__["__init_subclass__"] is f
