"""`obj.method(...)` on instances of Python classes: LoadMethod's LoadMethodInstance
variant (the method from the class, guarded by the type's version tag and, for instances
with inline values, by the shared keys lacking the name) and the Call after it, a direct
native call into the method's code (or the method emitted inline) with `self` as the
first argument, for plain functions and for `@tiered` methods alike. Every way the site
can stop fitting must send it back to the ordinary path: an instance attribute that
shadows the method, a `__dict__` made, the method replaced on the class or a base, a
receiver of another class, `self` still used after the call, a method that raises."""
import os
import types

import pytest

from harness import REPEAT, assert_same, assert_tier1, cases, check, run
from tiered import dump, stats, tiered

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


BUMP = Counter.bump


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


def dict_backed_receivers(n):
    # Instances whose `__dict__` was made (`vars()`), beside one that keeps inline values,
    # at the same sites: the method is found when the instance's dict lacks its name
    # (LOAD_METHOD_WITH_DICT); a name put in the dict shadows it, a non-str key makes the
    # site look the generic way, a deleted shadow uncovers the method again.
    class P:
        def __init__(self, k):
            self.k = k

        def get(self, i):
            return self.k * i

    a, b, c = P(1), P(2), P(3)
    vars(a)
    b.__dict__["extra"] = 0
    out = []
    for i in range(n):
        out.append(a.get(i) + b.get(i) + c.get(i))
        if i == n // 5:
            a.__dict__["get"] = lambda i: -i
        if i == 2 * n // 5:
            b.__dict__[7] = "not a str key"
        if i == 3 * n // 5:
            del a.__dict__["get"]
            del b.__dict__[7]
        if i == 4 * n // 5:
            P.get = lambda self, i: self.k + i
    return out


def classmethod_calls(n):
    # `Class.method(...)` for classmethods (LoadMethodClassmethod: the function with the
    # class first, no bound method), through the class and a subclass (each its own
    # site's class), then the classmethod replaced, a plain function put in its place,
    # and a staticmethod.
    class S:
        scale = 2

        @classmethod
        def stronger(cls, a, b):
            return (cls.__name__, a * cls.scale > b)

    class T(S):
        scale = 3

    class U:
        @classmethod
        @tiered
        def build(cls, a):  # a tiered function under the classmethod
            return (cls.__name__, a)

    out = []
    for i in range(n):
        out.append((S.stronger(i, 50), T.stronger(i, 50), U.build(i)))
        if i == n // 4:
            T.scale = 10
        if i == n // 2:
            S.stronger = classmethod(lambda cls, a, b: ("replaced", cls.__name__, a))
        if i == 3 * n // 4:
            S.stronger = staticmethod(lambda a, b: ("static", a + b))
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


def bound_methods_in_locals(n):
    # Bound methods kept in locals and called (`get = obj.get; get()`: CallBoundMethod),
    # with defaults, keywords, a closure, a classmethod, a raising one caught in the loop,
    # one whose function is replaced on the class (the bound object keeps the old one),
    # one made by hand with any `self`, and a site that meets a plain function.
    c, k = Counter(1), 5

    class Local:
        def scaled(self, x):
            return x * k

        @classmethod
        def which(cls, x):
            return (cls.__name__, x)

    bump, total, risky, dflt = c.bump, c.total, c.risky, c.with_default
    scaled, which = Local().scaled, Local.which
    by_hand = types.MethodType(lambda self, x: (self, x), "self")
    out = []
    for i in range(n):
        out.append((bump(1), total(i, 2, c=3), dflt(), dflt(k=i), scaled(i), which(i), by_hand(i)))
        try:
            out.append(risky(i))
        except ValueError as e:
            out.append(("ValueError", e.args))
        if i == n // 2:
            Counter.bump = lambda self, k: -k
        f = bump if i % 3 else (lambda k: ("plain", k))
        out.append(f(i))
    Counter.bump = BUMP
    return out, c.n


ROWS = (
    (bound_methods_in_locals, (N,)),
    (method_calls, (N,)),
    (self_used_after, (N,)),
    (shadowed_and_replaced, (N,)),
    (receivers_change, (N,)),
    (dict_backed_receivers, (N,)),
    (classmethod_calls, (N,)),
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


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS[:6], prefix="tiered-methods-"))
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


class Shape:
    def __init__(self, k):
        self.k = k

    def area(self):
        return self.k


class Square(Shape):
    def area(self):
        return self.k * self.k


class Tri(Shape):
    def area(self):
        return self.k * 2


class Circle(Shape):
    def area(self):
        return self.k * 3


class Hexagon(Shape):
    def area(self):
        return self.k * 6


class SlottedShape:
    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k

    def area(self):
        return -self.k


def dict_backed(cls, k):
    o = cls(k)
    vars(o)  # its `__dict__` made: the method is looked up past it
    return o


def areas(objs, n):
    # One LoadMethod site that sees every receiver class (LoadMethodPoly up to 4 classes,
    # the generic lookup past that).
    total = 0
    for i in range(n):
        for o in objs:
            total += o.area() + i
    return total


POLY_RECEIVERS = {
    "1": [Square(2)],
    "2": [Square(2), Tri(3)],
    "4": [Square(2), Tri(3), Circle(4), SlottedShape(5)],
    "4-dict-backed": [dict_backed(Square, 2), Tri(3), dict_backed(Circle, 4), Shape(1)],
    "6": [Square(2), Tri(3), Circle(4), Hexagon(5), Shape(6), SlottedShape(7)],
}


@pytest.mark.parametrize("kinds", sorted(POLY_RECEIVERS))
def test_polymorphic_method_sites(kinds):
    objs = POLY_RECEIVERS[kinds]
    check(areas, objs, 60)


def poly_changes(n):
    # A polymorphic site whose classes change under it: a method replaced on one class, an
    # instance attribute shadowing it, `__class__` reassigned, a base's method replaced
    # (a subclass inheriting it), a class that gets a data descriptor of that name.
    class A:
        def f(self):
            return 1

    class B:
        def f(self):
            return 2

    class C(A):
        pass

    class D:
        def f(self):
            return 4

    objs = [A(), B(), C(), D()]
    out = []
    for i in range(n):
        row = []
        for o in objs:
            row.append(o.f())
        out.append(row)
        if i == n // 6:
            B.f = lambda self: 20
        if i == 2 * n // 6:
            objs[0].f = lambda: 100
        if i == 3 * n // 6:
            objs[1].__class__ = D
        if i == 4 * n // 6:
            A.f = lambda self: 10
        if i == 5 * n // 6:
            D.f = property(lambda self: lambda: 40)
    return out


def test_polymorphic_method_sites_follow_class_changes():
    check(poly_changes, 120)


def test_a_polymorphic_site_stays_native():
    # Warmed up with one class, then four: the site widens (LoadMethodPoly), the code is
    # recompiled with every class seen, and the calls after run in native code without
    # deopting again.
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    # A code object of its own: the others' runs of `areas` quickened the shared one.
    fresh = types.FunctionType(areas.__code__.replace(co_name="areas_fresh"), areas.__globals__)
    w = tiered(fresh, strict=True)
    for _ in range(40):
        w([Square(2)], 20)
    four = POLY_RECEIVERS["4"]
    for _ in range(40):
        assert w(four, 20) == areas(four, 20)
    before = stats(w)
    for _ in range(20):
        w(four, 20)
    after = stats(w)
    assert "LoadMethod[LoadMethodPoly] 'area'" in dump(w), dump(w)
    assert after["native_calls"] - before["native_calls"] == 20, (before, after)
    assert after["deopts"] == before["deopts"], (before, after)


def test_a_bound_method_site_enters_the_function_in_our_tiers():
    # `get = obj.get; get()`: the site quickens to CallBoundMethod and the method's
    # function runs in our tiers (specialized for self's type), not in CPython's loop.
    def loop(n):
        c = Counter(0)
        bump = c.bump
        t = 0
        for i in range(n):
            t += bump(i)
        return t

    fresh = types.FunctionType(loop.__code__.replace(co_name="bound_loop"), loop.__globals__)
    w = tiered(fresh, strict=True)
    for _ in range(REPEAT + 2):
        assert w(50) == loop(50)
    if os.environ.get("TIERED_QUICKEN") != "0":
        assert "Call[CallBoundMethod]" in dump(w), dump(w)
    if os.environ.get("TIERED_PYTEST_DEFAULT") and os.environ.get("TIERED_JIT") != "0":
        # A direct native call (the small method emitted right there), not the helper.
        for _ in range(60):
            w(50)
        native = dump(w, native=True)
        assert "calls emitted inline: Counter.__init__, Counter.bump" in native, native
