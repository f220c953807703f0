"""Polymorphic call sites: a Call site that calls several `@tiered` functions, or one with
arguments of several types (so several of its specializations), keeps one entry per
callee and specialization (CallPoly), up to four, and native code enters each directly;
a site that meets several plain functions settles generic, as before. Every way an entry
can stop fitting must take the ordinary path: a method replaced on the class or set on
the instance, `__code__` or `__defaults__` reassigned, a fifth callee, a builtin at the
same site, a callee that raises, recursion through the site."""
import types

import pytest

from harness import check, counted_ops, fresh, native_default_only
from tiered import dump, stats, tiered


class Shape:
    def __init__(self, k):
        self.k = k

    def area(self, x):
        return self.k * x


class Square(Shape):
    def area(self, x):
        return self.k * self.k + x


class Circle(Shape):
    def area(self, x):
        return 3 * self.k * self.k - x


class Tri(Shape):
    def area(self, x, half=2):
        # A parameter filled from the defaults at a direct call.
        return self.k * x // half


class Inherits(Square):
    pass


class Slotted:
    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k

    def area(self, x):
        return -self.k * x


class TShape:
    # The same shapes with `@tiered` methods, as a user who tiers a whole module has them.
    def __init__(self, k):
        self.k = k

    @tiered
    def area(self, x):
        return self.k * x


class TSquare(TShape):
    @tiered
    def area(self, x):
        return self.k * self.k + x


class TCircle(TShape):
    pass


class TTri(TShape):
    @tiered
    def area(self, x, half=2):
        return self.k * x // half


class TInherits(TSquare):
    pass


def method_calls(objs, n):
    # One method-call site that sees every receiver class (several functions, and the
    # same function with `self` of several classes).
    total = 0
    for i in range(n):
        for o in objs:
            total += o.area(i)
    return total


RECEIVERS = {
    "1": lambda: [Shape(1)],
    "2": lambda: [Shape(1), Square(2)],
    "4": lambda: [Shape(1), Square(2), Circle(3), Tri(4)],
    "4-inherited": lambda: [Square(1), Inherits(2), Shape(3), Circle(4)],
    "6": lambda: [Shape(1), Square(2), Circle(3), Tri(4), Inherits(5), Slotted(6)],
    "tiered-2": lambda: [TShape(1), TSquare(2)],
    "tiered-4": lambda: [TShape(1), TSquare(2), TCircle(3), TTri(4)],
    "tiered-6": lambda: [TShape(1), TSquare(2), TCircle(3), TTri(4), TInherits(5), Shape(6)],
}


@pytest.mark.parametrize("kinds", sorted(RECEIVERS))
def test_polymorphic_method_call_sites(kinds):
    check(method_calls, RECEIVERS[kinds](), 60)


def double(x):
    return x * 2


def first(x):
    return x[0] if x else None


def negate(x):
    return -x


def describe(x, sep="/"):
    return f"{x}{sep}{type(x).__name__}"


def dispatch(values, n):
    # A plain call site over a table of functions, and one function called with
    # arguments of several types (one specialization per type).
    table = [double, first, describe, negate]
    out = []
    for i in range(n):
        for j, v in enumerate(values):
            f = table[(i + j) % 4]
            try:
                out.append(f(v))
            except TypeError as e:
                out.append(type(e).__name__)
            out.append(double(v))
    return out


def test_polymorphic_function_call_sites():
    check(dispatch, [1, 2.5, "ab", [3, 4], (5,), True], 40)


def tiered_methods(n):
    # `@tiered` methods (entered through their wrappers) at one site: one wrapper with
    # `self` of several classes, and several wrappers.
    class T:
        def __init__(self, k):
            self.k = k

        @tiered
        def step(self, x):
            return self.k + x

    class U(T):
        pass

    class V(T):
        @tiered
        def step(self, x):
            return self.k * x

    class W(T):
        pass

    objs = [T(1), U(2), V(3), W(4), U(5)]
    total = 0
    for i in range(n):
        for o in objs:
            total += o.step(i)
    return total


def test_polymorphic_tiered_callees():
    check(tiered_methods, 80)


def changing_callees(n):
    # The site's callees change mid-loop: a method replaced on the class, one set on an
    # instance, `__code__` and `__defaults__` reassigned, a builtin and a class at the
    # same site, a callee that raises.
    class P:
        def f(self, x):
            return x + 1

    class Q:
        def f(self, x):
            return x + 2

    class R:
        def f(self, x, y=10):
            return x + y

    class S:
        def f(self, x):
            if x % 5 == 3:
                raise ValueError(x)
            return x + 4

    def other(self, x):
        return x * 100

    objs = [P(), Q(), R(), S()]
    out = []
    for i in range(n):
        for o in objs:
            try:
                out.append(o.f(i))
            except (ValueError, TypeError) as e:
                out.append((type(e).__name__, e.args))
        if i == n // 8:
            Q.f = other
        if i == 2 * n // 8:
            objs[0].f = len  # a builtin, on the instance
        if i == 3 * n // 8:
            P.f.__code__ = other.__code__
            del objs[0].f
        if i == 4 * n // 8:
            R.f.__defaults__ = (-1,)
        if i == 5 * n // 8:
            objs[1].f = types.MethodType(lambda self, x: x - 7, objs[1])
        if i == 6 * n // 8:
            objs.append(P())
            objs[2].f = str  # a class
    return out


def test_polymorphic_call_sites_follow_callee_changes():
    check(changing_callees, 160)


def walk(node, depth):
    # Recursion through a polymorphic site: each level calls the next node's method.
    return node.visit(depth)


class Leaf:
    def visit(self, depth):
        return depth


class Pair:
    def __init__(self, left, right):
        self.left = left
        self.right = right

    def visit(self, depth):
        return walk(self.left, depth + 1) + walk(self.right, depth + 1)


class Chain:
    def __init__(self, inner):
        self.inner = inner

    def visit(self, depth):
        return 2 * walk(self.inner, depth + 1)


def tree(n):
    if n == 0:
        return Leaf()
    if n % 3 == 0:
        return Chain(tree(n - 1))
    return Pair(tree(n - 1), tree(n // 2))


def walks(n):
    t = tree(9)
    return [walk(t, i) for i in range(n)]


def test_recursion_through_a_polymorphic_site():
    check(walks, 30)


def test_a_polymorphic_call_site_stays_native():
    # Warmed up with one class, then four (three `@tiered` methods, one of them called
    # with `self` of two classes): the site widens (CallPoly), the code is
    # recompiled with every callee seen, and the calls after enter each callee directly:
    # none runs through the call's tier-1 helper, and nothing deopts.
    native_default_only()
    w = tiered(fresh(method_calls, "method_calls_fresh"), strict=True)
    before = None

    def warm_up():
        nonlocal before
        for _ in range(40):
            w([TShape(1)], 20)
        for _ in range(40):
            assert w(RECEIVERS["tiered-4"](), 20) == method_calls(RECEIVERS["tiered-4"](), 20)
        before = stats(w)

    def measured():
        for _ in range(20):
            w(RECEIVERS["tiered-4"](), 20)

    counts = counted_ops(warm_up, measured)["Call"]
    after = stats(w)
    text = dump(w)
    assert "Call[CallPoly]" in text, text
    assert ":CallPoly" in text.split("tier 2 (native)")[1], text
    assert after["native_calls"] - before["native_calls"] == 20, (before, after)
    assert after["deopts"] == before["deopts"], (before, after)
    assert counts["tier1"] == 0 and counts["tier2"] > 0, counts
