"""Class calls (CallClass): `Point(x, y)` for a plain Python class makes the instance as
`object.__new__` does and enters `__init__` in our tiers; native code enters it directly
(or emits a small one inline) once the class's version tag and `__init__`'s code are
checked, and gives the instance back only when `__init__` returned None. Every way that
can go differently must match CPython: `__init__` returning something else, raising,
taking keywords and defaults, a `__del__` seeing the instance released, another class or
other argument types at the site, the class or `__init__` changed mid-loop, a profile
hook coming on inside `__init__`, recursion through class calls."""
import os
import sys

import pytest

from harness import cases, check, counted_ops, fresh, native_default_only
from tiered import dump, stats, tiered


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


class Point3(Point):
    def __init__(self, x, y, z=0.0, *, tag="p"):
        Point.__init__(self, x, y)
        self.z = z
        self.tag = tag


def points(n):
    # Ints, then floats (unboxed in the caller), then mixed: the site's argument types
    # change, so its specialization's type guards fail and the ordinary path runs.
    out = []
    for i in range(n):
        p = Point(i, i + 1)
        q = Point(i * 0.5, 1.5)
        r = Point(str(i), None) if i % 3 == 0 else Point(i, -i)
        out.append((p.x + p.y, q.x * q.y, r.x, r.y))
    return out


def keywords_and_defaults(n):
    out = []
    for i in range(n):
        a = Point3(i, 2)
        b = Point3(i, 2, 3.5)
        c = Point3(y=i, x=1, tag="k")
        d = Point3(i, i, z=i, tag=None)
        out.append((a.z, a.tag, b.z, c.x, c.y, c.tag, d.z, d.tag))
    return out


class Returns:
    def __init__(self, k):
        self.k = k
        if k % 4 == 1:
            return k          # an int: TypeError
        if k % 4 == 2:
            return "no"       # another object: TypeError
        if k % 4 == 3:
            return None       # explicitly None: fine


def init_returns_not_none(n):
    out = []
    for i in range(n):
        try:
            out.append(Returns(i).k)
        except TypeError as e:
            out.append(str(e))
    return out


LOG = []


class Logged:
    def __init__(self, k):
        self.k = k
        LOG.append(("init", k))
        if k % 5 == 4:
            raise ValueError(k)

    def __del__(self):
        LOG.append(("del", self.k))


def init_raises_and_del(n):
    # The instance of an `__init__` that raised is released when the exception is
    # handled (its traceback holds the frame, and the frame the instance), the others
    # when their name is rebound: the log shows the order.
    LOG.clear()
    kept = []
    for i in range(n):
        try:
            o = Logged(i)
            if i % 2:
                kept.append(o)
        except ValueError as e:
            LOG.append(("caught", e.args[0]))
        LOG.append(("end", i))
    del o
    kept.clear()
    return list(LOG)


class Mutable:
    def __init__(self, k):
        self.k = k


def _other_init(self, k):
    self.k = -k


def _code_init(self, k):
    self.k = k * 100


def class_changes(n):
    # The class's `__init__` replaced, its code replaced, `__new__` added and removed, an
    # attribute set on the class: the guards (version tag, code) fail and CPython's
    # behaviour follows.
    out = []
    saved = Mutable.__init__
    saved_code = saved.__code__
    try:
        for i in range(n):
            if i == n // 5:
                Mutable.__init__ = _other_init
            if i == 2 * n // 5:
                Mutable.__init__ = saved
                saved.__code__ = _code_init.__code__
            if i == 3 * n // 5:
                saved.__code__ = saved_code
                Mutable.__new__ = lambda cls, k: object.__new__(cls)
            if i == 4 * n // 5:
                del Mutable.__new__
                Mutable.extra = i
            out.append(Mutable(i).k)
    finally:
        Mutable.__init__ = saved
        saved.__code__ = saved_code
        if "extra" in Mutable.__dict__:
            del Mutable.extra
    return out


class Sub(Mutable):
    pass


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b=7):
        self.a = a
        self.b = b


def many_classes(n):
    # One site over several classes (the first it saw, then others: their calls take
    # the ordinary path), slots, a builtin class.
    kinds = [Mutable, Sub, Mutable, Slotted, int, Mutable]
    out = []
    for i in range(n):
        k = kinds[i % len(kinds)]
        o = k(i)
        out.append(o if k is int else (type(o).__name__, getattr(o, "k", None) or o.a))
    return out


class Node:
    def __init__(self, depth):
        self.depth = depth
        self.kids = [Node(depth - 1), Node(depth - 1)] if depth else []


def count(node):
    return 1 + sum(count(k) for k in node.kids)


def recursive_construction(n):
    # `__init__` calls the class again (a direct call inside a direct call).
    return [count(Node(i % 6)) for i in range(n)]


class Weird:
    def __init__(self, k):
        # The instance changes class inside `__init__`: the call still gives it.
        if k % 2:
            self.__class__ = WeirdOther
        self.k = k


class WeirdOther(Weird):
    pass


def class_reassigned_in_init(n):
    return [(type(o).__name__, o.k) for o in [Weird(i) for i in range(n)]]


@pytest.mark.parametrize("f,args,kwargs", cases(
    (points, (60,)),
    (keywords_and_defaults, (60,)),
    (init_returns_not_none, (60,)),
    (init_raises_and_del, (60,)),
    (class_changes, (100,)),
    (many_classes, (60,)),
    (recursive_construction, (40,)),
    (class_reassigned_in_init, (40,)),
))
def test_class_calls(f, args, kwargs):
    check(f, *args, **kwargs)


class Profiled:
    def __init__(self, k, on):
        self.k = k
        if on:
            sys.setprofile(PROFILE_HOOK)


class ProfiledVarargs:
    # `*rest`: no direct call; the class call runs through the call's helper.
    def __init__(self, k, *rest):
        self.k = k
        if rest[0]:
            sys.setprofile(PROFILE_HOOK)


EVENTS = []


def PROFILE_HOOK(frame, event, arg):
    if frame.f_code.co_name in ("__init__", "profiled_calls", "profiled_calls_fresh"):
        EVENTS.append((event, frame.f_code.co_name))


def profiled_calls(n, cls):
    out = []
    for i in range(n):
        out.append(cls(i, i == n - 3).k)
    sys.setprofile(None)
    return out


@pytest.mark.parametrize("cls", [Profiled, ProfiledVarargs])
def test_a_profile_hook_set_inside_init(cls):
    # The hook comes on inside `__init__`, entered directly or through the helper: the
    # call still gives the instance, and the events after it are CPython's (the
    # `c_call` of `out.append` right after it went missing through the helper: the
    # hook's own code, run by CPython, took the pending call meant for the caller).
    native_default_only()
    EVENTS.clear()
    expected = profiled_calls(40, cls)
    want = list(EVENTS)
    w = tiered(fresh(profiled_calls, "profiled_calls_fresh"), strict=True)
    for _ in range(60):
        w(40, cls)
    EVENTS.clear()
    assert w(40, cls) == expected
    assert [(e, n.replace("_fresh", "")) for e, n in EVENTS] == want


def make_points(n):
    out = 0.0
    for i in range(n):
        p = Point(i * 0.5, 2.0)
        out += p.x * p.y
    return out


def test_a_class_call_stays_native():
    # After warming up, `Point(...)` is a direct native call of `__init__` (emitted
    # inline here): none of its calls runs through the call's tier-1 helper, nothing
    # deopts, and the instances are released (no leak of one reference per call).
    native_default_only()
    w = tiered(fresh(make_points, "make_points_fresh"), strict=True)
    # (Counting is compiled in: it is on from the start.)
    before = refs = None

    def warm_up():
        nonlocal before
        for _ in range(60):
            assert w(50) == make_points(50)
        before = stats(w)

    def measured():
        nonlocal refs
        # Each instance holds a reference to its (heap) class: one leaked a call would
        # show here. (sys.gettotalrefcount exists in debug builds only.)
        refs = sys.getrefcount(Point)
        for _ in range(20):
            assert w(50) == make_points(50)

    counts = counted_ops(warm_up, measured)["Call"]
    after = stats(w)
    text = dump(w, native=True)
    assert "Call[CallClass]" in text, text
    assert ":CallClass" in text.split("tier 2 (native)")[1], text
    assert "calls emitted inline: Point.__init__" in text, text
    assert after["deopts"] == before["deopts"], (before, after)
    assert counts["tier1"] == 0 and counts["tier2"] > 0, counts
    assert sys.getrefcount(Point) == refs


def mixed_points(n):
    # One site, ints and floats alternating (raytrace's `Vector(x, y, z)`).
    out = 0.0
    for i in range(n):
        q = Point(i if i % 2 else i * 0.5, 2)
        out += q.x * q.y
    return out


def test_a_class_call_with_arguments_of_several_types_stays_native():
    # The site takes an entry per argument types (CallPoly of CallClass entries), each a
    # direct call of `__init__`'s specialization for them: no call runs through the
    # tier-1 helper once the code is recompiled with both.
    native_default_only()
    w = tiered(fresh(mixed_points, "mixed_points_fresh"), strict=True)

    def warm_up():
        for _ in range(60):
            assert w(50) == mixed_points(50)

    def measured():
        for _ in range(20):
            assert w(50) == mixed_points(50)

    counts = counted_ops(warm_up, measured)["Call"]
    text = dump(w)
    assert "Call[CallPoly]" in text, text
    assert counts["tier1"] == 0 and counts["deopts"] == 0, counts


@pytest.mark.skipif(
    "TIERED_JIT_THRESHOLD" in os.environ or os.environ.get("TIERED_QUICKEN") == "0",
    reason="callees are translated at once under low thresholds, and never without quickening",
)
def test_a_class_init_runs_in_cpython_until_the_class_is_met_again():
    # As a plain callee (test_calls.py): a class called once from tiered code builds its
    # instance in CPython, and its __init__ is translated when the class is called again.
    g = {"__builtins__": __builtins__}
    src = (
        "class P:\n    def __init__(self, x):\n        self.x = x\n\n"
        "def make(x):\n    return P(x).x\n"
    )
    exec(compile(src, __file__, "exec"), g)
    make = tiered(g["make"])
    assert make(1) == 1
    assert "not called yet" in dump(g["P"].__init__)
    assert [make(i) for i in range(6)] == list(range(6))
    assert "specialization for (" in dump(g["P"].__init__)
