"""Loops of many calls must not grow memory (DESIGN.md §6).

For each category a tiered function is called 100,000 times after a warm-up.
Measured across the loop:

* traced memory (tracemalloc, started after the warm-up) still alive after
  the loop,
* the number of gc-tracked objects,
* the reference counts of the arguments and of the function's constants
  (a leaked reference to a shared object frees no memory but shows here),
* sys.gettotalrefcount() on debug builds.
"""

import gc
import os
import signal
import sys
import tracemalloc
import types

import pytest

from tiered import stats, tiered

N = int(os.environ.get("TIERED_LEAK_CALLS", "100000"))
WARMUP = 2_000
MAX_BYTES = 512 * 1024
MAX_OBJECTS = 100
MAX_REFS = 20


# --- one function per category -------------------------------------------------

def big_arith(a, b):
    return ((a * b + a) // (b - 1) % 1000003, a ** 3 - b, -a, (a << 70) >> 3, a & b | 7, float(a) / b)


def _kw_target(x, y=0, *, z=1, **rest):
    return x + y + z + len(rest)


def kw_calls(x, extra):
    return (_kw_target(x, y=2, **extra), _kw_target(*[x, 1], z=3), _kw_target(x, w=4, v=5), dict(a=x, **extra))


def exc_caught(x):
    out = 0
    try:
        raise ValueError(x)
    except ValueError as e:
        out += len(e.args)
    try:
        try:
            1 / 0
        except ZeroDivisionError as e:
            raise TypeError("chained") from e
    except TypeError as e:
        out += e.__cause__ is not None
    finally:
        out += 1
    return out


def exc_propagates(x):
    try:
        raise KeyError(x)
    except KeyError as e:
        raise ValueError("escaping") from e


def closures(x):
    def make(k):
        def inner(v):
            nonlocal k
            k += v
            return k
        return inner
    f = make(x)
    g = lambda: x * 2  # noqa: E731
    return f(1), f(2), g(), [h() for h in [g, g]]


def comprehensions(x):
    return [i * x for i in range(3)], {i: x for i in range(2)}, {i % 2 for i in range(3)}, [[j for j in [i]] for i in [x]]


def string_building(x):
    s = ""
    for i in range(3):
        s += str(i) + x
    return f"{s!r:>20}|{x!s}|{len(s):04d}", "-".join([s, x])


class _Pt:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm(self):
        return abs(self.x) + abs(self.y)


def objects_and_methods(x):
    p = _Pt(x, -x)
    p.z = p.norm()
    return p.z, getattr(p, "x"), [p][0].y


def _join(s, t):
    return s + t


def _every_third_raises(i, x):
    if i % 3 == 0:
        raise ValueError(x)
    return (i, x)


def _down(n, x):
    return x if n == 0 else _down(n - 1, x)


def direct_calls(x):
    # Loops and recursion get native code that calls its callees' native code directly.
    out = []
    for i in range(30):
        out.append(_join(x, "y"))
        try:
            out.append(_every_third_raises(i, x))
        except ValueError:
            out.append(None)
    return len(out), _down(10, x)


class _Box:
    def __init__(self, v):
        self.v = v


def native_templates(x):
    # Containers built, unpacked and iterated, attributes stored and loaded, builtin
    # methods and functions called, all from native code once warm.
    b = _Box(x)
    pairs = []
    for i in range(20):
        t = (i, x, 1.5 * i, i > 3)
        a, _, f, flag = t
        pairs.append([a, f, flag])
        b.v = b.v + str(i)
    d = {k: v for k, v in enumerate(pairs)}
    n = 0
    for k, v in d.items():
        n += len(v) + k
    return n, len(b.v), (x == "a string argument")


def _gen(x):
    yield x
    yield x + 1


def _gen_unfinished(x):
    # Left suspended: its frame's values are released when it is collected.
    g = _gen(x)
    y = [x, x + 1]
    try:
        yield next(g), y
        yield "never"
    finally:
        y.append(x)


async def _agen(x):
    try:
        yield x
        yield [x, x + 1]
    finally:
        _ = str(x)


async def _agen_unfinished(x):
    try:
        yield x
        yield x + 1
    finally:
        _ = str(x)


def wrong_shape_target(a, b):
    return a + b


def _defaults(a, b=2, *rest, c=3, **kw):
    return a + b + c + len(rest) + len(kw)


@tiered
def _tiered_callee(a, b=1):
    return a * b


class _Shapes:
    def method(self, a, b=0):
        return a + b

    @classmethod
    def cm(cls, a):
        return a

    @staticmethod
    def sm(a, *rest):
        return a + len(rest)


def call_shapes(x):
    o = _Shapes()
    args, kw = (x, 5), {"c": 1, "d": 2}
    return (
        _defaults(x), _defaults(x, 1), _defaults(x, 1, 2, 3), _defaults(x, c=4), _defaults(*args, **kw),
        _tiered_callee(x), _tiered_callee(x, b=3), _tiered_callee(*args),
        o.method(x), o.method(x, b=1), _Shapes.cm(x), o.sm(x, 1, 2), _Shapes(),
        (lambda q, r=2: q - r)(x), max(x, 3, key=abs), sorted([x, 1, 2], reverse=True),
    )


_G = [0]


class _Slots:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 1


class _Prop:
    def __init__(self, v):
        self._v = v

    @property
    def v(self):
        return self._v


def globals_and_attrs(x):
    global _G
    old = _G
    _G = [x]
    s = _Slots()
    s.b = x
    p = _Prop(x)
    p.extra = 1
    del p.extra
    r = (old[0], _G[0], s.a + s.b, p.v, getattr(p, "missing", None), os.sep, _Slots.__name__)
    _G = old
    return r


def subscripts(x):
    lst = list(range(10))
    t = tuple(lst)
    d = {"a": x, 1: [x]}
    s = "abcdef"
    lst[2] = x
    lst[1:3] = [x, x, x]
    del lst[0]
    d["b"] = lst[-1]
    del d["a"]
    return lst[3], t[-2], t[1:4], d[1][0], s[::2], s[-1], lst[::-1][:2], d.get("z", x)


class _Counter:
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return self

    def __next__(self):
        if self.n <= 0:
            raise StopIteration
        self.n -= 1
        return self.n


def iteration(x):
    total = 0
    for a in [1, 2, 3]:
        total += a
    for a in (x, x):
        total += a
    for k, v in {"a": 1, "b": 2}.items():
        total += v
    for i, ch in enumerate("abc"):
        total += i
    for a, b in zip(range(3), range(3, 6)):
        total += a * b
    for a in _Counter(4):
        total += a
    return total, list(reversed(range(x))), sum(i for i in range(5))


def compares(x):
    f, s, b = float(x), str(x), x > 0
    return (x < f, x == f, s != "a", s < "zz", b is True, x in [1, x], s not in {"q"},
            (1, 2) < (1, 3), [x] == [x], None is None, x <= 2**70, f >= -0.0, 1 < x < 10)


class _CM:
    def __init__(self, swallow):
        self.swallow = swallow

    def __enter__(self):
        return self

    def __exit__(self, t, v, tb):
        return self.swallow


def with_blocks(x):
    out = 0
    with _CM(False) as c:
        out += 1
    with _CM(True):
        raise ValueError(x)
    try:
        with _CM(False):
            raise KeyError(x)
    except KeyError:
        out += 2
    return out, c.swallow


def matching(x):
    out = []
    for v in ([1, x], {"k": x}, (x, 2, 3), "s", _Pt(x, 2), 3.5):
        match v:
            case [a, b]:
                out.append(a + b)
            case {"k": k}:
                out.append(k)
            case (a, *rest):
                out.append(len(rest))
            case _Pt(x=px, y=py):
                out.append(px * py)
            case str() | float():
                out.append(v)
    return out


def imports_and_unpacking(x):
    import os.path
    from math import sqrt
    a, *b, c = range(x + 3)
    (d, e), f = (1, 2), 3
    return os.path.basename("/a/b"), sqrt(x), a, b, c, d + e + f


def changing_types(x):
    # The same op sees int, float, str and big ints across iterations: quickened guards
    # fail, native code deopts, and the code is recompiled (bounded).
    out = []
    for v in (x, 1.5, "s", 2**70, True, [1]):
        try:
            out.append(v + v)
        except TypeError:
            out.append(None)
    return out


_TICKS = [0]
_INSIDE = [False]


def _tick(signum, frame):
    _TICKS[0] += 1
    if _INSIDE[0] and _TICKS[0] % 7 == 0:
        raise ArithmeticError("from the signal handler")


def eval_breaker(x):
    # A timer fires every 500 us while this runs: the eval breaker's slow path (a handler,
    # every seventh raising while this runs: caught here, or leaving through the caller)
    # runs many times.
    _INSIDE[0] = True
    caught = 0
    for i in range(50):
        try:
            x = abs((x * 3 + i) % 1000003)
        except ArithmeticError:
            caught += 1
    _INSIDE[0] = False
    return x, caught >= 0


def genexpr_and_generators(x):
    return sum(i * x for i in range(5)), list(_gen(x)), max((i for i in range(3)), default=0)


CATEGORIES = {
    # name: (function, args, expected path: "tier1" / "fallback" / None = don't care)
    "bigint-arith": (big_arith, (2**80 + 13, 3**50), "tier1"),
    "kwargs-calls": (kw_calls, (7, {"z": 9}), "tier1"),
    "exceptions-caught": (exc_caught, ("key",), "tier1"),
    "exceptions-propagating": (exc_propagates, ("key",), "tier1"),
    "closures": (closures, (3,), "tier1"),
    "comprehensions": (comprehensions, (2,), "tier1"),
    "string-building": (string_building, ("ab",), "tier1"),
    "objects-methods": (objects_and_methods, (5,), "tier1"),
    "direct-native-calls": (direct_calls, ("a string argument",), "tier1"),
    "native-templates": (native_templates, ("a string argument",), "tier1"),
    "call-shapes": (call_shapes, (7,), "tier1"),
    "globals-attrs": (globals_and_attrs, (4,), "tier1"),
    "subscripts": (subscripts, (9,), "tier1"),
    "iteration": (iteration, (3,), "tier1"),
    "compares": (compares, (5,), "tier1"),
    "with-blocks": (with_blocks, ("w",), "tier1"),
    "matching": (matching, (4,), "tier1"),
    "imports-unpacking": (imports_and_unpacking, (4,), "tier1"),
    "changing-types": (changing_types, (3,), "tier1"),
    "eval-breaker": (eval_breaker, (11,), "tier1"),
    "genexpr-generators": (genexpr_and_generators, (3,), "tier1"),
    "generator": (_gen, (2**70,), "tier1"),
    "generator-unfinished": (_gen_unfinished, (2**70,), "tier1"),
    "async-generator": (_agen, (2**70,), "tier1"),
    "async-generator-unfinished": (_agen_unfinished, (2**70,), "tier1"),
    "wrong-call-shape": (wrong_shape_target, (1, 2, 3), None),  # TypeError on every call
}


def _shared(c):
    """Objects whose refcount moves with unrelated code (not worth tracking)."""
    return c is None or isinstance(c, bool) or (type(c) is int and -5 <= c <= 256)


def _consts(code):
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _consts(c)
        elif not _shared(c):
            yield c


def _call(w, args):
    _INSIDE[0] = False
    try:
        r = w(*args)
        if isinstance(r, types.GeneratorType):
            r = next(r) if w.__wrapped__ is _gen_unfinished else list(r)
        if isinstance(r, types.AsyncGeneratorType):
            r = _anext_all(r, 1 if w.__wrapped__ is _agen_unfinished else None)
        return r
    except (ValueError, TypeError, ArithmeticError):
        return None


def _anext_all(agen, limit):
    """What `agen` yields (up to `limit` items; then it is dropped unfinished), driven
    without an event loop."""
    out = []
    while limit is None or len(out) < limit:
        try:
            agen.__anext__().send(None)
        except StopIteration as e:
            out.append(e.value)
        except StopAsyncIteration:
            break
    return out


def _measure(w, fn, args, n):
    """Run n calls; return (bytes still allocated, gc object growth, [(obj, refcount growth)], total refcount growth)."""
    for _ in range(WARMUP):
        _call(w, args)
    tracked = [a for a in args if not _shared(a)] + list(_consts(fn.__code__))
    gc.collect()
    refs_before = [sys.getrefcount(o) for o in tracked]
    total_before = sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else None
    objects_before = len(gc.get_objects())
    tracemalloc.start()
    try:
        for _ in range(n):
            _call(w, args)
        gc.collect()
        current, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    gc.collect()
    objects_growth = len(gc.get_objects()) - objects_before
    refs = [(o, sys.getrefcount(o) - b) for o, b in zip(tracked, refs_before)]
    total = sys.gettotalrefcount() - total_before if total_before is not None else None
    return current, objects_growth, refs, total


def _assert_no_growth(label, current, objects_growth, refs, total):
    assert current < MAX_BYTES, f"{label}: {current} bytes still allocated after the loop"
    assert objects_growth < MAX_OBJECTS, f"{label}: gc-tracked objects grew by {objects_growth}"
    for o, growth in refs:
        assert growth < MAX_REFS, f"{label}: refcount of {o!r:.60} grew by {growth}"
    if total is not None:
        assert total < 1000, f"{label}: total refcount grew by {total}"


@pytest.mark.parametrize("category", [
    pytest.param(c, marks=[pytest.mark.real_tiering] if CATEGORIES[c][2] == "fallback" else []) for c in CATEGORIES
])
def test_no_growth(category):
    fn, args, path = CATEGORIES[category]
    w = tiered(fn, strict=path == "tier1")
    if fn is eval_breaker:
        old = signal.signal(signal.SIGALRM, _tick)
        signal.setitimer(signal.ITIMER_REAL, 5e-4, 5e-4)
    try:
        _assert_no_growth(category, *_measure(w, fn, args, N))
    finally:
        if fn is eval_breaker:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    s = stats(w)
    if path == "tier1":
        assert s["calls"] == N + WARMUP, s
        assert s["fallback_calls"] == 0 and s["interp_calls"] + s["native_calls"] == N + WARMUP, s
    elif path == "fallback":
        assert s["calls"] == N + WARMUP, s
        assert s["fallback_calls"] == N + WARMUP, s


_LEAKED = []


def _leaky(x):
    _LEAKED.append([x])
    return x


def test_detector_catches_a_leak():
    # the measurement itself must see a one-object-per-call leak
    w = tiered(_leaky)
    with pytest.raises(AssertionError):
        _assert_no_growth("leaky", *_measure(w, _leaky, ("v",), 20_000))
    _LEAKED.clear()
