"""`obj.method(...)` on instances of Python classes: LoadMethod's LoadMethodInstance
variant (the method from the class, guarded by the type's version tag and, for instances
with inline values, by the shared keys lacking the name) and the Call after it, a direct
native call into the method's code (or the method emitted inline) with `self` as the
first argument, for plain functions and for `@tiered` methods alike. Every way the site
can stop fitting must send it back to the ordinary path: an instance attribute that
shadows the method, a `__dict__` made, the method replaced on the class or a base, a
receiver of another class, `self` still used after the call, a method that raises."""
import pytest

from harness import REPEAT, assert_same, assert_tier1, cases, check, run
from tiered import tiered

N = 300


class Counter:
    def __init__(self, start):
        self.n = start
        self.on = True
        self.off = False
        self.nothing = None

    def bump(self, k):
        self.n += k
        return self.n

    def total(self, a, b, c):
        return self.n + a * b - c

    def flags(self):
        # True/False/None objects read from attributes, tested for truth.
        return (self.on and not self.off) or self.nothing

    def risky(self, i):
        if i % 50 == 49:
            raise ValueError(i)
        return i

    def with_default(self, k=2):
        return self.n * k


class SlottedCounter:
    __slots__ = ("n",)

    def __init__(self, start):
        self.n = start

    def bump(self, k):
        self.n -= k
        return self.n

    def total(self, a, b, c):
        return a + b + c


class Doubled(Counter):
    def bump(self, k):
        return Counter.bump(self, 2 * k)


def method_calls(n):
    c = Counter(0)
    s = SlottedCounter(100)
    out = 0
    for i in range(n):
        out += c.bump(i) + s.bump(1) + c.total(i, 2, 3) + s.total(i, i, i)
        if c.flags():
            out += 1
    return out, c.n, s.n


def self_used_after(n):
    c = Counter(0)
    out = []
    for i in range(n):
        x = c.bump(1)
        out.append(c.n - x)  # `c` after the call: the call must not take it over
    return sum(out), c.n


def shadowed_and_replaced(n):
    # The classes are made here (the case changes them).
    class A:
        def __init__(self):
            self.n = 0

        def get(self, i):
            return self.n + i

    class B(A):
        pass

    a, a2, b = A(), A(), B()
    out = []
    for i in range(n):
        out.append((a.get(i), a2.get(i), b.get(i)))
        if i == n // 5:
            a.get = lambda i: ("shadowed", i)
        if i == 2 * n // 5:
            a2.__dict__["get"] = lambda i: ("via __dict__", i)
        if i == 3 * n // 5:
            B.get = lambda self, i: ("on B", i)
        if i == 4 * n // 5:
            A.get = lambda self, i: ("on A", i)
    return out


def receivers_change(n):
    objs = [Counter(1)] * (n // 2) + [Doubled(1)] * (n // 4) + [SlottedCounter(1)] * (n // 4)
    return [o.bump(1) for o in objs][-5:], [o.total(1, 2, 3) for o in objs][::37]


def raising_methods(n):
    c = Counter(0)
    caught = 0
    total = 0
    for i in range(n):
        try:
            total += c.risky(i)
        except ValueError as e:
            caught += e.args[0]
    return total, caught


def raising_escapes(n):
    c = Counter(0)
    total = 0
    for i in range(n):
        total += c.risky(i)
    return total


def defaults_and_closures(n):
    k = 3

    class WithClosure:
        def __init__(self):
            self.n = 1

        def scaled(self, x):
            return self.n * x * k

    w, c = WithClosure(), Counter(2)
    out = 0
    for i in range(n):
        out += w.scaled(i) + c.with_default() + c.with_default(i)
    return out


def truth_of_singletons(items):
    t = 0
    for x in items:
        if x:
            t += 1
        if not x:
            t -= 2
    return t


ROWS = (
    (method_calls, (N,)),
    (self_used_after, (N,)),
    (shadowed_and_replaced, (N,)),
    (receivers_change, (N,)),
    (raising_methods, (N,)),
    (raising_escapes, (N,)),
    (defaults_and_closures, (N,)),
    (truth_of_singletons, ([True, False, None, 0, 1, True, "", None] * N,)),
    (truth_of_singletons, ([(), (1,), [], [0], {}, {0: 0}, "", "x", b"", b"\0", -3, 2**70, 0.0,
                            frozenset(), type("L", (list,), {"__bool__": lambda s: True})()] * N,)),
)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS))
def test_method_calls_agree_with_cpython(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS[:5], prefix="tiered-methods-"))
def test_tiered_methods_agree_with_cpython(f, args, kwargs):
    # The methods themselves `@tiered` (CallTiered at the sites), as a program with every
    # def decorated has them; CPython's run first, with the plain methods.
    expected = run(f, args, kwargs)
    saved = {(cls, name): m for cls in (Counter, SlottedCounter, Doubled)
             for name, m in list(vars(cls).items()) if callable(m) and not name.startswith("__")}
    try:
        for (cls, name), m in saved.items():
            setattr(cls, name, tiered(m, strict=True))
        w = tiered(f, strict=True)
        for i in range(REPEAT):
            assert_same(expected, run(w, args, kwargs), f"{f.__qualname__} (tiered call {i + 1})")
        assert_tier1(w, f)
    finally:
        for (cls, name), m in saved.items():
            setattr(cls, name, m)


def make_hierarchy():
    """A base and a subclass of their own (a test changes them)."""

    class Base:
        def __init__(self, n):
            self.n = n

        def get(self, i):
            return self.n + i

    class Sub(Base):
        pass

    return Base, Sub


def calls_get(objs, n, change_at, how):
    out = []
    for i in range(n):
        out.append([o.get(i) for o in objs[:2]] + [objs[0].get(i) + objs[1].get(i)])
        if i == change_at:
            if how == "shadow":
                objs[0].get = lambda i: -1000 - i
            elif how == "dict":
                objs[1].__dict__["get"] = lambda i: -2000 - i
            elif how == "class":
                type(objs[0]).get = lambda self, i: -3000 - i
            elif how == "base":
                type(objs[0]).__mro__[1].get = lambda self, i: -4000 - i
            elif how == "receiver":
                objs[0] = type(objs[0]).__mro__[1](-1)
    return out


@pytest.mark.parametrize("how", ["shadow", "dict", "class", "base", "receiver"])
def test_specialized_method_sites_leave_when_the_method_may_differ(how):
    # Warmed up (quickened, and native where the path compiles) on the unchanged classes,
    # then the change happens mid-loop in the measured call.
    def objs(base, sub):
        return [sub(1), sub(2)]

    expected = calls_get(objs(*make_hierarchy()), 120, 60, how)
    w = tiered(calls_get, strict=True)
    classes = make_hierarchy()
    for _ in range(4):
        w(objs(*classes), 30, 1000, how)
    got = w(objs(*classes), 120, 60, how)
    assert got == expected
    assert_tier1(w, calls_get)
