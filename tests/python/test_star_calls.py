"""Direct native calls to callees that take `*args`, `**kwargs` or keyword-only
parameters: a call giving no more positional arguments than the callee's positional
parameters and no keyword left over gives `*args` the empty tuple, `**kwargs` a new dict
of its own, and each keyword-only parameter no keyword gives its value in
`__kwdefaults__` as it is at the call, as CPython binds them; any other call shape (or a
default missing) takes the ordinary call path. `logging`'s `logger.debug(msg)` and
`json.dumps(obj)` are such calls."""
import os
import types

import pytest

from harness import cases, check, counted_ops, native_default_only
from tiered import tiered

# --- callees -------------------------------------------------------------------------


def star_after(a, b=2, *args, **kwargs):
    return (a, b, args, sorted(kwargs.items()), type(args).__name__, type(kwargs).__name__)


def only_star(*args):
    return args


def only_starstar(**kwargs):
    return kwargs


def mutates_its_kwargs(a, **kwargs):
    # A dict of its own at every call: what one call puts in is gone at the next.
    kwargs.setdefault("seen", 0)
    kwargs["seen"] += 1
    kwargs[str(a)] = a
    return len(kwargs), kwargs["seen"]


def mutates_its_args(a, *args):
    args += (a,)
    return args


def recursive_star(n, *args, **kwargs):
    if n == 0:
        return len(args), len(kwargs)
    return recursive_star(n - 1) + (n,)


def raises_with_star(a, *args, **kwargs):
    if a % 4 == 3:
        raise KeyError(a, args, kwargs)
    return a


def gen_star(a, *args, **kwargs):
    yield a
    yield args
    yield kwargs


def kw_only(a, *, b=1, c=(2,)):
    return (a, b, c)


def kw_required(a, *, b):
    return (a, b)


def dumps_like(obj, *, skipkeys=False, indent=None, sort_keys=False, **kw):
    return (obj, skipkeys, indent, sort_keys, sorted(kw.items()))


def kw_gen(a, *, step=1):
    yield a
    yield a + step


def calls_keyword_only_callees(n):
    out = []
    for i in range(n):
        out.append(kw_only(i))
        out.append(kw_only(i, c=5))
        out.append(kw_only(a=i, b=i, c=i))
        out.append(kw_required(i, b=2))
        try:
            out.append(kw_required(i))
        except TypeError as e:
            out.append(str(e))
        out.append(dumps_like(i))
        out.append(dumps_like(i, indent=4))
        out.append(dumps_like(i, other=1))
        out.append(list(kw_gen(i)))
        out.append(list(kw_gen(i, step=i)))
        if i % 10 == 9:
            # The defaults as they are at each call.
            kw_only.__kwdefaults__["b"] = i
    kw_only.__kwdefaults__["b"] = 1
    return out


def kwdefaults_taken_away(n):
    def f(a, *, b=3):
        return a + b

    out = []
    for i in range(n):
        if i == n // 2:
            f.__kwdefaults__ = None
        try:
            out.append(f(i))
        except TypeError as e:
            out.append(str(e))
    return out


class Sized:
    def __init__(self, x, *, scale=2, **extra):
        self.v = x * scale
        self.extra = extra


def makes_keyword_only_instances(n):
    return [(Sized(i).v, Sized(i, scale=3).v, Sized(i).extra) for i in range(n)]


class Logger:
    def __init__(self, level):
        self.level = level
        self.seen = []

    def is_enabled(self, level):
        return level >= self.level

    def log(self, level, msg, *args, **kwargs):
        if self.is_enabled(level):
            self.seen.append((level, msg, args, kwargs))

    def debug(self, msg, *args, **kwargs):
        if self.is_enabled(10):
            self.log(10, msg, *args, **kwargs)


class Point:
    def __init__(self, x, y=0, *args, **kwargs):
        self.x, self.y, self.args, self.kwargs = x, y, args, kwargs


# --- cases ---------------------------------------------------------------------------


def calls_star_callees(n):
    out = []
    for i in range(n):
        out.append(star_after(i))
        out.append(star_after(i, i + 1))
        out.append(star_after(b=i, a=1))
        # Extra positional arguments, or keywords for `**kwargs`: the ordinary path.
        out.append(star_after(i, 2, 3, 4))
        out.append(star_after(i, c=5))
        out.append(only_star())
        out.append(only_starstar())
        out.append(mutates_its_kwargs(i))
        out.append(mutates_its_args(i))
    return out


def calls_recursively(n):
    return [recursive_star(i % 7) for i in range(n)]


def raises_through_star_callees(n):
    out = []
    for i in range(n):
        try:
            out.append(raises_with_star(i))
        except KeyError as e:
            out.append(("caught", e.args))
    return out


def makes_star_generators(n):
    return [list(gen_star(i)) for i in range(n)]


def calls_star_methods(n):
    quiet, loud = Logger(20), Logger(0)
    debug = loud.debug
    for i in range(n):
        quiet.debug("m")
        loud.debug("m")
        debug(str(i))
        loud.log(30, "x", i, k=i)
    return quiet.seen, loud.seen


def makes_star_instances(n):
    out = []
    for i in range(n):
        p = Point(i)
        q = Point(i, i + 1)
        out.append((p.x, p.y, p.args, p.kwargs, q.y, q.kwargs is p.kwargs))
    return out


ROWS = (
    (calls_star_callees, (40,)),
    (calls_recursively, (40,)),
    (raises_through_star_callees, (40,)),
    (makes_star_generators, (40,)),
    (calls_star_methods, (40,)),
    (makes_star_instances, (40,)),
    (calls_keyword_only_callees, (40,)),
    (kwdefaults_taken_away, (40,)),
    (makes_keyword_only_instances, (40,)),
)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS))
def test_star_callees_agree_with_cpython(f, args, kwargs):
    check(f, *args, **kwargs)


def silent_debug(logger, n):
    for _ in range(n):
        logger.debug("m")
        logger.debug("m")


def json_like(n):
    out = []
    for i in range(n):
        out.append(dumps_like(i))
    return out


def test_calls_of_star_callees_run_native_to_native():
    # Before, each took the ordinary call path through tier 1 (binding `*args` and
    # `**kwargs` in Rust): logging's silent `debug()` cost 1.35x CPython's instructions.
    native_default_only()
    w = tiered(types.FunctionType(silent_debug.__code__.replace(co_name="silent_fresh"), globals()))
    quiet = Logger(20)

    def warm_up():
        for _ in range(40):
            w(quiet, 10)

    def measured():
        w(quiet, 10)

    counts = counted_ops(warm_up, measured)
    assert quiet.seen == []
    # `range(n)`, then 2 x 10 `logger.debug("m")` (and, inside it, `self.is_enabled(10)`
    # unless emitted inline in `debug`'s code), all native; each took the ordinary path
    # in tier 1 before.
    assert counts["Call"]["tier1"] == 0 and counts["Call"]["deopts"] == 0, counts["Call"]
    assert counts["Call"]["tier2"] >= 21, counts["Call"]


def test_calls_of_keyword_only_callees_run_native_to_native():
    native_default_only()
    w = tiered(types.FunctionType(json_like.__code__.replace(co_name="json_like_fresh"), globals()))

    def warm_up():
        for _ in range(40):
            w(10)

    def measured():
        w(10)

    counts = counted_ops(warm_up, measured)
    assert counts["Call"]["tier1"] == 0 and counts["Call"]["deopts"] == 0, counts["Call"]
    assert counts["Call"]["tier2"] >= 11, counts["Call"]


# --- f(*args, **kwargs) calls (CallEx, with the ListExtend/ListToTuple that build the tuple) ---


class Box:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def method(self, *args):
        return len(args)


class NotIterable:
    pass


def star_call_sites(n):
    out = []
    b = Box()
    for i in range(n):
        rv = (i, i + 1)
        out.append(star_after(i, *rv))
        out.append(star_after(*rv))
        out.append(star_after(*[i, 2, 3]))
        out.append(star_after(i, *rv, **{"k": i}))
        out.append(kw_only(*rv[:1], **{"c": i}))
        out.append(only_star(*range(i % 4)))
        out.append(vars(Box(*rv, x=i)))
        out.append(b.method(*rv))
        out.append(max(*rv))
        try:
            out.append(star_after(i, *NotIterable()))
        except TypeError as e:
            out.append(str(e))
        try:
            out.append(star_after(i, **{"a": 1}))
        except TypeError as e:
            out.append(str(e))
        try:
            out.append(raises_with_star(*rv, *rv))
        except KeyError as e:
            out.append(("caught", e.args))
    return out


def test_star_call_sites_agree_with_cpython():
    check(star_call_sites, 40)


def reconstruct_like(xs):
    out = []
    for x in xs:
        rv = (x, x * 2)
        out.append(star_after(x, *rv))
    return out


def test_star_call_sites_run_native():
    # `f(x, *rv)` of a Python function: the tuple built and the call made in native code.
    native_default_only()
    w = tiered(types.FunctionType(reconstruct_like.__code__.replace(co_name="reconstruct_fresh"),
                                  globals()))
    xs = list(range(10))

    def warm_up():
        for _ in range(40):
            assert w(xs) == reconstruct_like(xs)

    def measured():
        w(xs)

    counts = counted_ops(warm_up, measured)
    for op in ("CallEx", "ListExtend", "ListToTuple"):
        assert counts[op] == {"tier1": 0, "tier2": 10, "deopts": 0}, (op, counts[op])
