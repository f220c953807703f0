"""Calls: Python functions, builtins, methods, classes, partials; every
argument shape; wrong call shapes both into a tiered function and from inside
one (CPython's exact TypeError text); recursion."""

import functools
import os
import textwrap

import pytest

from harness import cases, check, check_call_shape, check_traceback, counted_ops, run_python
from tiered import stats, tiered


# --- callees -------------------------------------------------------------------

def two(a, b):
    return (a, b)


def defaults(a, b=2, c=(3,)):
    return (a, b, c)


def kwonly(a, *, k, j=10):
    return (a, k, j)


def posonly(a, b, /, c, d=4):
    return (a, b, c, d)


def star(*args):
    return args


def starstar(**kwargs):
    return kwargs


def everything(a, b=1, /, c=2, *args, d, e=5, **kwargs):
    return (a, b, c, args, d, e, kwargs)


def many(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11=11, a12=12):
    return [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12]


class Point:
    count_attr = "class attribute"

    def __init__(self, x, y=0):
        self.x = x
        self.y = y

    def norm1(self):
        return abs(self.x) + abs(self.y)

    def scaled(self, k, *, offset=0):
        return Point(self.x * k + offset, self.y * k + offset)

    @classmethod
    def origin(cls):
        return cls(0, 0)

    @staticmethod
    def add(a, b):
        return a + b

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r})"


class Callable_:
    def __init__(self, base):
        self.base = base

    def __call__(self, x, *, mul=1):
        return (self.base + x) * mul

    def __repr__(self):
        return f"Callable_({self.base!r})"


class WithNew:
    def __new__(cls, *args):
        inst = super().__new__(cls)
        inst.args = args
        return inst

    def __repr__(self):
        return f"WithNew{self.args!r}"


# --- cases: calling from inside tiered code ------------------------------------

def call_positional():
    return two(1, 2)


def call_keywords():
    return (two(b=2, a=1), two(1, b=[2]), defaults(1, c=9), defaults(1), defaults(1, 2, 3))


def call_kwonly():
    return (kwonly(1, k=2), kwonly(1, j=3, k=2))


def call_posonly():
    return (posonly(1, 2, 3), posonly(1, 2, c=3, d=5), posonly(1, 2, d=0, c=1))


def call_star():
    a = [1, 2]
    t = (3,)
    return (star(), star(1), star(*a), star(*a, *t), star(0, *a, 9, *t), star(*"ab"), star(*range(3)),
            star(*{"k": 1}))


def call_starstar():
    k = {"x": 1}
    return (starstar(), starstar(**k), starstar(y=2, **k), starstar(**k, **{"z": 3}), starstar(**{}))


def call_everything():
    return (everything(1, d=4), everything(1, 2, 3, 4, 5, d=6, f=7), everything(*[1, 2], c=3, d=4, **{"g": 8}))


def call_many():
    return (many(*range(10)), many(*range(12)), many(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, a12="x"))


def call_star_call_site(a, k):
    return everything(*a, **k)


def call_mutable_default():
    # defaults are evaluated once, at def time: the list accumulates
    def acc(x, seen=[]):
        seen.append(x)
        return list(seen)

    return [acc(1), acc(2), acc(3, []), acc(4)]


def call_default_evaluated_once(log):
    def mk(v):
        log.append(("default evaluated", v))
        return v

    def g(a=mk(1), *, b=mk(2)):
        return a, b

    return g(), g(), g(5, b=6), log


def call_methods():
    p = Point(3, -4)
    m = p.norm1
    return (p.norm1(), m(), Point.norm1(p), p.scaled(2), p.scaled(2, offset=1), Point.origin(), p.origin(),
            Point.add(1, 2), p.add("a", "b"), p.count_attr)


def call_builtin_methods():
    s = "a,b,,c"
    lst = [3, 1, 2]
    d = {"k": 1}
    lst.sort(reverse=True)
    lst.append(0)
    return (s.split(","), s.split(",", 1), ",".join(["x", "y"]), str.upper("q"), d.get("k"), d.get("z", 0),
            d.setdefault("n", []), lst, lst.index(1), "{}-{x}".format(1, x=2), s.count(","), [].copy())


def call_builtins():
    return (len([1, 2]), sorted([3, 1, 2], key=lambda v: -v), max([1, 5, 2]), max([], default="empty"),
            min(3, 1, key=abs), int("ff", 16), int("12", base=8), divmod(7, 2), pow(2, 10, 7), isinstance(1, int),
            isinstance(True, (str, int)), getattr(Point, "nope", "dflt"), sum([1, 2], 10), abs(-2.5),
            round(2.675, 2), list(zip("ab", [1, 2])), dict(a=1, **{"b": 2}), hash(1) == hash(1.0),
            repr("x"), ascii("é"), chr(65), ord("A"), hex(255), bin(-5), any([0, 1]), all([]),
            type(1), type("T", (), {"v": 1}).v, callable(len), iter([1]).__next__())


def call_print(x):
    print(x, 1, sep="|", end="!\n")
    print()
    print("a", "b")
    print(*[1, 2, 3], sep="")


def call_classes():
    return (Point(1), Point(1, y=2), Point(x=5), WithNew(1, 2), ValueError("m").args, list("ab"), dict([(1, 2)]),
            int(), float("1.5"), str(b"x", "ascii"), frozenset([1]), bytes(3), complex(1, 2), object().__class__)


def call_builtin_types_in_a_loop(xs):
    # Static types and builtin functions called at sites that settle on them, so native
    # code calls their vectorcall functions directly (`builtin::fixed_vectorcall`), with
    # a TypeError from the callee at the same sites.
    out = []
    for i in range(len(xs) + 1):
        s = set(xs[:i])
        t = tuple(x * 2 for x in xs[:i])
        r = list(reversed(xs[:i]))
        out.append((len(s), t, r, sorted(frozenset(s)), bytes(i), str.upper("ab"), range(i)))
        src = xs[:i] if i % 3 else i
        try:
            out.append((set(src), tuple(src), list(reversed(src))))
        except TypeError as e:
            out.append(("TypeError", str(e)))
    return out


def call_partial():
    p = functools.partial(everything, 1, d=4)
    q = functools.partial(p, 2, e=0)
    return (p(), p(2, 3, 9), q(f=1), p(d=7), functools.partial(max, default=0)([]))


def call_callable_object():
    c = Callable_(10)
    return (c(1), c(1, mul=3), c.__call__(2))


def call_lambda_and_nested():
    sq = lambda v: v * v  # noqa: E731
    def inner(a, *rest, scale=1):
        return (a + sum(rest)) * scale
    return (sq(5), inner(1, 2, 3), inner(1, scale=2), (lambda *a, **k: (a, k))(1, x=2))


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def call_recursive(n):
    return fib(n)


def call_higher_order(fs, x):
    return [f(x) for f in fs]


def call_bound_method_from_arg(obj):
    return obj.norm1()


def call_getattr_then_call(obj, name, *args):
    return getattr(obj, name)(*args)


class SBase:
    def hello(self, x):
        return ("base", x)


class SChild(SBase):
    def hello(self, x):
        return ("child", super(SChild, self).hello(x + 1))


def call_super_explicit():
    return SChild().hello(1), super(SChild, SChild()).hello(0)


def call_exception_in_callee():
    return two(1, 2) + divide(1, 0)


def divide(a, b):
    return a / b


def call_kwargs_order():
    # keyword argument evaluation order and the resulting dict order
    log = []

    def v(x):
        log.append(x)
        return x

    return starstar(b=v(1), a=v(2), **{"c": v(3)}, d=v(4)), log


def same_object(a, b, keep):
    keep.append(a)
    return a is b


def call_with_local_numbers(n):
    # Direct calls whose arguments are locals holding unboxed numbers used again after
    # the call (a loop's counter, a float): boxed once, in place, so the callee, a second
    # argument and later uses all see the same object, as in CPython.
    kept, out = [], []
    for i in range(1000, 1000 + n):
        x = i * 2.5
        out.append((same_object(i, i, kept), same_object(x, x, kept), kept[-2] is i, kept[-1] is x))
        out.append((same_object(i, i + 0, kept), i + 1, x / 2))
    return out


class LoggedList(list):
    # A list subclass whose release is logged: a bound method of it must keep it alive
    # exactly as long as in CPython (the site keeps no method object).
    def __init__(self, log, name):
        super().__init__()
        self.log, self.name = log, name

    def __del__(self):
        self.log.append(("released", self.name))


def call_bound_builtins_in_locals(n):
    # Builtin methods bound to objects and kept in locals (`app = lst.append; app(x)`:
    # CallBoundBuiltin), made anew for each receiver: METH_O (append, add, join),
    # METH_FASTCALL (get, pop, setdefault), keywords (sort), METH_VARARGS (startswith),
    # METH_NOARGS (copy), a list subclass as `self`, errors raised inside the loop, a site
    # whose definition changes, module functions through locals, and `self` released
    # when the last method object holding it goes.
    log, out = [], []
    seen, d, sep = set(), {"a": 1}, "-"
    add, get, setdefault, join = seen.add, d.get, d.setdefault, sep.join
    _len, _ord = len, ord
    for i in range(n):
        lst = LoggedList(log, i) if i % 4 == 0 else []
        app, pop, srt = lst.append, lst.pop, lst.sort
        app(i)
        app(-i)
        app(_ord("a") + i)
        add(i % 3)
        srt(reverse=True)
        srt(key=lambda v: v % 5)
        copy = lst.copy
        out.append((_len(lst), get("a"), get(i, i * 2), setdefault(i % 2, []), join(["x", str(i)]),
                    "abc".startswith("ab"), str(i).startswith(("1", "2"), 0), copy(), pop(), pop(0)))
        try:
            out.append(pop(10))
        except IndexError as e:
            out.append(("IndexError", e.args))
        try:
            app()
        except TypeError as e:
            out.append(("TypeError", e.args))
        f = app if i % 3 else add
        out.append(f(i))
        del lst, app, pop, srt, copy, f
        log.append(("loop", i))
    return out, sorted(seen), log


def boxed(x):
    return [x]


def same_back(x):
    return x


def paired(a, b):
    return a is b


def call_dying_arguments(items):
    # Temporaries passed to direct calls die at them: each call moves them out, and the
    # release after the call skips their registers on the direct path (emptied); the
    # results nothing reads are released there all the same. Anything kept or released
    # twice changes the items' reference counts, which the harness compares.
    out = []
    for it in items:
        same_back(boxed(it))
        same_back(same_back(boxed(it)))
        out.append(len(same_back(boxed(it))))
        out.append(paired(boxed(it), boxed(it)))
    return out


CALLS = cases(
    (call_dying_arguments, ([object(), [1], "s"] * 10,)),
    (call_with_local_numbers, (20,)),
    (call_bound_builtins_in_locals, (30,)),
    (call_positional, ()), (call_keywords, ()), (call_kwonly, ()), (call_posonly, ()), (call_star, ()),
    (call_starstar, ()), (call_everything, ()), (call_many, ()),
    (call_star_call_site, ([1, 2, 3, 4], {"d": 1, "z": 2})), (call_star_call_site, ((1,), {"d": 1})),
    (call_star_call_site, ([], {"d": 1})), (call_star_call_site, ([1], {})),
    (call_star_call_site, ([1], {"d": 1, "c": 3})), (call_star_call_site, ([1, 2, 3], {"c": 3, "d": 4})),
    (call_mutable_default, ()), (call_default_evaluated_once, ([],)), (call_methods, ()),
    (call_builtin_methods, ()), (call_builtins, ()), (call_print, ("x",)), (call_classes, ()),
    (call_builtin_types_in_a_loop, ([3, 1, 2, 1, 5, 4, 2],)),
    (call_partial, ()), (call_callable_object, ()), (call_lambda_and_nested, ()), (call_recursive, (15,)),
    (call_higher_order, ([abs, str, float, Point, lambda v: v * 2, Callable_(1)], -3)),
    (call_bound_method_from_arg, (Point(1, 2),)), (call_getattr_then_call, ("a-b", "split", "-")),
    (call_getattr_then_call, (Point(1, 2), "scaled", 3)), (call_getattr_then_call, ([], "nope")),
    (call_super_explicit, ()), (call_exception_in_callee, ()), (call_kwargs_order, ()),
)


@pytest.mark.parametrize("f,args,kwargs", CALLS)
def test_calls(f, args, kwargs):
    check(f, *args, **kwargs)


# --- wrong call shapes INTO a tiered function ------------------------------------
# (the harness calls the wrapper with these arguments; CPython's TypeError text
# names the function by its __qualname__)

INTO = cases(
    (two, (1, 2, 3)), (two, (1,)), (two, ()), (two, (1,), {"c": 3}), (two, (1,), {"b": 2, "c": 3}),
    (two, (1, 2), {"a": 1}), (two, (), {"b": 1}), (defaults, ()), (defaults, (1, 2, 3, 4)),
    (kwonly, (1,)), (kwonly, (1, 2)), (kwonly, (1, 2), {"k": 3}), (kwonly, (), {"k": 1}),
    (posonly, (), {"a": 1, "b": 2, "c": 3}), (posonly, (1, 2), {"b": 2, "c": 3}), (posonly, (1,)),
    (star, (), {"x": 1}), (starstar, (1,)), (everything, ()), (everything, (1,)),
    (everything, (1,), {"a": 2, "d": 1}), (everything, (1, 2, 3), {"c": 0, "d": 1}),
    (many, tuple(range(13))), (many, (1, 2)),
    (two, (1, 2)), (kwonly, (1,), {"k": 1}),  # the right shapes, for contrast
)


@pytest.mark.parametrize("f,args,kwargs", INTO)
def test_wrong_shapes_into(f, args, kwargs):
    check_call_shape(f, *args, **kwargs)


def method_called_wrong():
    return Point(1).norm1(2)


def into_class_wrong():
    return Point()


def builtin_wrong():
    return len(1, 2)


def builtin_wrong_kw():
    return len(obj=[])


def not_callable():
    x = 5
    return x()


def none_callable():
    n = None
    return n()


def star_not_iterable():
    return star(*1)


def starstar_not_mapping():
    return starstar(**1)


def starstar_dup():
    return two(1, **{"a": 2, "b": 3})


def starstar_dup_two_maps():
    return starstar(**{"a": 1}, **{"a": 2})


def starstar_nonstr_key():
    return starstar(**{1: 2})


def from_inside(fn, args, kwargs):
    try:
        fn(*args, **kwargs)
    except TypeError as e:
        return str(e)
    return "no error"


FROM = cases(
    (method_called_wrong, ()), (into_class_wrong, ()), (builtin_wrong, ()), (builtin_wrong_kw, ()),
    (not_callable, ()), (none_callable, ()), (star_not_iterable, ()), (starstar_not_mapping, ()),
    (starstar_dup, ()), (starstar_dup_two_maps, ()), (starstar_nonstr_key, ()),
    (from_inside, (two, (1, 2, 3), {})), (from_inside, (two, (1,), {})), (from_inside, (two, (1,), {"x": 2})),
    (from_inside, (two, (1,), {"a": 2})), (from_inside, (kwonly, (1, 2), {})),
    (from_inside, (posonly, (), {"a": 1, "b": 2, "c": 3})), (from_inside, (everything, (), {})),
    (from_inside, (Point, (), {})), (from_inside, (Point.origin, (1,), {})), (from_inside, (int, ("1", 2, 3), {})),
    (from_inside, (sorted, ([],), {"cmp": None})), (from_inside, (functools.partial(two, 1, 2), (3,), {})),
    (from_inside, ((lambda: 0), (1,), {})),
)


@pytest.mark.parametrize("f,args,kwargs", FROM)
def test_wrong_shapes_from_inside(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.parametrize("f", [not_callable, starstar_dup, method_called_wrong, call_exception_in_callee])
def test_call_error_traceback(f):
    check_traceback(f)


def test_into_wrong_shape_traceback():
    # the TypeError raised for a bad call into the wrapper is what CPython raises
    w = tiered(two, strict=True)
    with pytest.raises(TypeError) as ei:
        w(1, 2, 3)
    with pytest.raises(TypeError) as ej:
        two(1, 2, 3)
    assert str(ei.value) == str(ej.value)


# --- tiered -> plain -> tiered ----------------------------------------------------

def _inner_raiser(x):
    if x > 2:
        raise ValueError(f"too big: {x}")
    return x * 10


tiered_inner = tiered(_inner_raiser)


def plain_middle(x):
    return tiered_inner(x) + 1


def outer_calls_through(xs):
    out = []
    for x in xs:
        try:
            out.append(plain_middle(x))
        except ValueError as e:
            out.append(("caught", str(e), type(e.__context__)))
    return out


@pytest.mark.parametrize("f,args,kwargs", cases((outer_calls_through, ([1, 2, 3, 1],)),))
def test_tiered_plain_tiered(f, args, kwargs):
    check(f, *args, **kwargs)
    s = stats(tiered_inner)
    assert s["interp_calls"] + s["native_calls"] >= 1
    assert stats(tiered_inner)["fallback_calls"] == 0


# --- recursion ----------------------------------------------------------------------

@tiered
def t_even(n):
    return True if n == 0 else p_odd(n - 1)


def p_odd(n):
    return False if n == 0 else t_even(n - 1)


def mutual(n):
    return t_even(n), p_odd(n)


@pytest.mark.parametrize("f,args,kwargs", cases((mutual, (0,)), (mutual, (7,)), (mutual, (100,))))
def test_mutual_recursion(f, args, kwargs):
    check(f, *args, **kwargs)
    assert stats(t_even)["fallback_calls"] == 0


def count_down(n):
    return 0 if n == 0 else 1 + count_down(n - 1)


@pytest.mark.parametrize("f,args,kwargs", cases((count_down, (300,)),))
def test_moderate_recursion(f, args, kwargs):
    check(f, *args, **kwargs)


_RECURSION_SCRIPT = textwrap.dedent("""
    import sys
    from tiered import tiered, stats
    LIMIT = {limit}
    if LIMIT:
        sys.setrecursionlimit(LIMIT)

    @tiered
    def down(n):
        return down(n + 1) + 1

    def plain(n):
        return mixed(n + 1) + 1

    @tiered
    def mixed(n):
        return plain(n + 1) + 1

    def undecorated(n):
        return undecorated(n + 1) + 1

    for fn in (down, mixed, tiered(undecorated, strict=True)):
        for attempt in range(2):
            try:
                fn(0)
            except RecursionError as e:
                print("RecursionError", fn.__name__, attempt, "maximum recursion depth exceeded" in str(e))
            else:
                print("no error", fn.__name__)
    # the interpreter is still usable afterwards
    print("after", down.__wrapped__ is not None, sum(range(10)))
""")


@pytest.mark.parametrize("limit", [0, 3000])
def test_runaway_recursion_raises_recursion_error(limit):
    r = run_python(_RECURSION_SCRIPT.format(limit=limit), timeout=120)
    assert r.returncode == 0, f"crashed or failed (rc={r.returncode}):\n{r.stdout}\n{r.stderr}"
    lines = r.stdout.splitlines()
    for name in ("down", "mixed", "undecorated"):
        for attempt in (0, 1):
            assert f"RecursionError {name} {attempt} True" in lines, r.stdout + r.stderr
    assert lines[-1] == "after True 45"


# --- calls that leave parameters to their defaults, in loops (direct native calls) --

def with_defaults(a, b=2, c=[]):
    c.append(a)
    return a + b + len(c)


class Chain:
    def __init__(self, pos, ref=None):
        self.pos = pos
        self.reference = ref if ref is not None else self

    def find(self, update=False, depth=0.5):
        reference = self.reference
        if reference.pos != self.pos:
            reference = reference.find(update)
            if update:
                self.reference = reference
        self.depth = depth
        return reference


def defaults_loop(n):
    with_defaults.__defaults__ = (2, [])  # the same start under each engine
    root = Chain(0)
    links = [root]
    for i in range(1, 6):
        links.append(Chain(i, links[-1]))
    out = []
    for i in range(n):
        found = links[-1].find().pos, links[i % 6].find(i % 2 == 0).pos, links[-1].depth
        out.append((found, with_defaults(i), with_defaults(i, 1)))
    return out, len(with_defaults.__defaults__[1])


def defaults_rebound(n):
    # The defaults tuple replaced mid-loop (new values, then one fewer, then none): each
    # call binds what the function has now.
    out = []
    saved = with_defaults.__defaults__ = (2, [])
    try:
        for i in range(n):
            if i == n // 3:
                with_defaults.__defaults__ = (10, [])
            if i == n // 2:
                with_defaults.__defaults__ = ([],)
            try:
                out.append(with_defaults(i) if i < 2 * n // 3 else with_defaults(i, 3))
            except TypeError as e:
                out.append(str(e))
            if i == 2 * n // 3 + 2:
                with_defaults.__defaults__ = None
                try:
                    with_defaults(i, 3)
                except TypeError as e:
                    out.append(str(e))
                with_defaults.__defaults__ = (5, [])
    finally:
        with_defaults.__defaults__ = saved
    return out


def make_scaled(k):
    def scaled(a, b=k, c=None):
        return a * b if c is None else (a, c)
    return scaled


def closures_with_defaults(n):
    # One code, several function objects each with its own defaults (closures made per
    # call of their parent): the defaults are read from whichever is called.
    fs = [make_scaled(1), make_scaled(2.5), make_scaled("s"), make_scaled(3)]
    fs[3].__defaults__ = (None,)  # now `b` is required
    out = []
    for i in range(n):
        f = fs[i % 4]
        try:
            out.append((f(i), f(i, 2), f(i, 1, [i])))
        except TypeError as e:
            out.append(str(e))
        if i == n // 2:
            fs[0].__defaults__ = (7, 8, 9)  # more defaults than parameters left
            fs[1].__defaults__ = ()
    return out


def keywords(a, b=1, c=2, /, d=3, *, e=4):
    return (a, b, c, d, e)


def kw_params(a, b=2, c=3, d=4):
    return (a, b, c, d)


def keyword_calls(n):
    # Keyword arguments bound by name at direct calls: in order, out of order, with
    # defaults between, to a method and to a closure; and the TypeErrors CPython raises
    # for a positional-only name, an unknown name and a name given twice.
    root = Chain(0)
    link = Chain(1, root)
    scaled = make_scaled(2)
    out = []
    for i in range(n):
        out.append((kw_params(i, d=i), kw_params(i, c=1, b=0), kw_params(a=i), kw_params(d=1, a=i, c=2),
                    link.find(update=i % 2 == 0).pos, link.find(depth=i).pos, link.depth,
                    scaled(i, c=i), scaled(c=0, a=i), keywords(i, d=0, e=1)))
        for bad in (lambda: keywords(i, b=2), lambda: kw_params(i, e=1), lambda: kw_params(i, a=1)):
            try:
                bad()
            except TypeError as e:
                out.append(str(e))
    return out


@pytest.mark.parametrize("f,args,kwargs", cases((defaults_loop, (40,)), (defaults_rebound, (60,)),
                                                (closures_with_defaults, (60,)), (keyword_calls, (40,))))
def test_calls_filling_defaults(f, args, kwargs):
    check(f, *args, **kwargs)


def test_a_call_filling_defaults_is_direct():
    # The differential cases pass through the ordinary call path too: check the calls
    # that leave parameters to their defaults are direct native calls (emitted inline).
    import os
    import types

    from tiered import dump

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    g = dict(defaults_loop.__globals__)
    g["with_defaults"] = tiered(types.FunctionType(with_defaults.__code__, g, "with_defaults", with_defaults.__defaults__))
    find = tiered(types.FunctionType(Chain.find.__code__.replace(co_name="find_fresh"), g, "find", Chain.find.__defaults__))
    g["Chain"] = type("Chain", (Chain,), {"find": find})
    w = tiered(types.FunctionType(defaults_loop.__code__.replace(co_name="loop_fresh"), g))
    for _ in range(30):
        assert w(40) == defaults_loop(40)
    line = next(ln for ln in dump(w).splitlines() if "native templates at" in ln)
    # `Chain(...)`'s `__init__` fills `ref` from its defaults; `find` and `with_defaults`
    # are past the size emitted inline at a call site (`INLINE_AT_CALL_MAX_INSTS`).
    assert line.endswith("calls emitted inline: Chain.__init__"), line


def one_default_short(n):
    # Every call leaves exactly one parameter to its default: one operand short of the
    # parameters, as a method call's operands are.
    out = []
    for i in range(n):
        out.append(with_defaults(i, 1))
    return out


def recursive_one_default(n, acc=0):
    if n == 0:
        return acc
    return recursive_one_default(n - 1) + n


def test_a_call_one_default_short_runs_native_to_native():
    # `f(a, b)` of `def f(a, b, c=[])` is a plain call whose callee fills `c`: its
    # direct call's guards hold at every run, so no call takes the ordinary path in tier
    # 1 (they all did when the operand count was read as a method call's).
    import os
    import types

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    g = dict(one_default_short.__globals__)
    g["with_defaults"] = tiered(types.FunctionType(with_defaults.__code__, g, "with_defaults", (2, [])))
    w = tiered(types.FunctionType(one_default_short.__code__.replace(co_name="short_fresh"), g))
    rec = tiered(types.FunctionType(recursive_one_default.__code__.replace(co_name="rec_fresh"), g,
                                    "rec", (0,)))
    g["recursive_one_default"] = rec

    def warm_up():
        for _ in range(40):
            w(10)
            assert rec(20) == recursive_one_default(20)

    def measured():
        for _ in range(10):
            w(10)
            rec(20)

    counts = counted_ops(warm_up, measured)
    assert counts["Call"]["tier1"] == 0 and counts["Call"]["deopts"] == 0, counts["Call"]
    assert counts["Call"]["tier2"] >= 10 * (10 + 20), counts["Call"]


def scaled_by_defaults(n):
    fs = [make_scaled(1), make_scaled(2.5)]
    out = []
    for i in range(n):
        out.append(fs[i % 2](i))
    return out


def test_a_call_filling_a_closures_defaults_is_direct():
    # Function objects of one code with defaults of their own: read at each call.
    import os
    import types

    from tiered import dump

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    w = tiered(types.FunctionType(scaled_by_defaults.__code__.replace(co_name="scaled_fresh"),
                                  scaled_by_defaults.__globals__))
    for _ in range(30):
        assert w(40) == scaled_by_defaults(40)
    line = next(ln for ln in dump(w).splitlines() if "native templates at" in ln)
    assert "make_scaled.<locals>.scaled" in line.split("calls emitted inline:")[-1], line


def keyword_loop(n):
    out = []
    for i in range(n):
        out.append(kw_params(i, d=i) + kw_params(c=1, a=i))
    return out


def test_a_keyword_call_is_direct():
    import os
    import types

    from tiered import dump

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    w = tiered(types.FunctionType(keyword_loop.__code__.replace(co_name="keyword_fresh"), keyword_loop.__globals__))
    for _ in range(30):
        assert w(40) == keyword_loop(40)
    line = next(ln for ln in dump(w).splitlines() if "native templates at" in ln)
    assert line.endswith("calls emitted inline: kw_params"), line


def bound_appends(lists):
    total = 0
    for lst in lists:
        app = lst.append
        for i in range(5):
            app(i)
        total += len(lst)
    return total


def test_a_bound_builtin_site_stays_native():
    # `app = lst.append` makes a new method object for each list: the site guards the
    # method's definition (CallBoundBuiltin), not the object, so it neither deopts nor
    # settles generic.
    import os
    import types

    from tiered import dump

    fresh = types.FunctionType(bound_appends.__code__.replace(co_name="bound_appends_fresh"),
                               bound_appends.__globals__)
    w = tiered(fresh, strict=True)
    for _ in range(40):
        assert w([[], [1]]) == bound_appends([[], [1]])
    if os.environ.get("TIERED_QUICKEN") != "0":
        assert "Call[CallBoundBuiltin]" in dump(w), dump(w)
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        return  # the op counts below measure the default thresholds' native code
    w2 = tiered(types.FunctionType(bound_appends.__code__.replace(co_name="bound_appends_counted"),
                                   bound_appends.__globals__), strict=True)

    def warm_up():
        for _ in range(40):
            w2([[], [1]])

    def measured():
        for _ in range(10):
            w2([[], [1], []])  # per call: 15 appends, 3 len(), 3 range()

    counts = counted_ops(warm_up, measured)
    assert counts["Call"] == {"tier1": 0, "tier2": 210, "deopts": 0}, counts["Call"]


@pytest.mark.skipif(
    "TIERED_JIT_THRESHOLD" in os.environ or os.environ.get("TIERED_QUICKEN") == "0",
    reason="callees are translated at once under low thresholds, and never without quickening",
)
def test_a_plain_callee_runs_in_cpython_until_it_is_met_again():
    # Translating a callee cost hundreds of times what running it once does: a plain
    # function tiered code calls runs in CPython's own loop when first met, and is
    # translated (specialized on its argument types) only when met again.
    from tiered import dump

    g = {"__builtins__": __builtins__}
    exec(compile("def callee(x):\n    return x + 1\n\ndef caller(x):\n    return callee(x)\n", __file__, "exec"), g)
    caller = tiered(g["caller"])
    assert caller(1) == 2
    assert "not called yet" in dump(g["callee"])
    assert [caller(i) for i in range(6)] == [1, 2, 3, 4, 5, 6]
    assert "specialization for (int)" in dump(g["callee"])


@pytest.mark.skipif(
    "TIERED_JIT_THRESHOLD" in os.environ or os.environ.get("TIERED_QUICKEN") == "0",
    reason="callees are translated at once under low thresholds, and never without quickening",
)
def test_a_site_meeting_cold_callees_looks_again_at_its_next_run():
    # Functions met once each are "not yet", not "no variant fits": the site does not back
    # off (2, 4, 8... runs before it looks again), so a function it then calls is
    # translated as soon as it is warm.
    from tiered import dump

    g = {"__builtins__": __builtins__}
    src = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(7))
    src += "def caller(f, x):\n    return f(x)\n"
    exec(compile(src, __file__, "exec"), g)
    caller = tiered(g["caller"])
    assert [caller(g[f"f{i}"], 1) for i in range(6)] == [1, 2, 3, 4, 5, 6]
    assert [caller(g["f6"], i) for i in range(3)] == [6, 7, 8]
    assert "specialization for (int)" in dump(g["f6"])



def _straight(x):
    return x + 1


def _looped(x):
    return x - 3


def long_caller(n, reps):
    # Long (past `INLINE_CALLER_MAX_INSTS`), with a small callee at a site in straight-line
    # code and one in a loop of `reps` iterations.
    t = _straight(n)
    a, b, c, d = n + 1, n + 2, n + 3, n + 4
    t = t + a * b - c // d
    t = t - a * c + b // d
    t = t + b * d - a // c
    t = t * 3 - (a + b + c + d)
    t = t + (a - b) * (c - d)
    t = t - (a + c) * (b - d)
    t = t + a * a - b * b + c * c - d * d
    t = t % 1000003 + a * b * c
    t = t - (a * d) // (b + 1) + (c * d) % 7
    t = t + (a ^ b) - (c & d) + (a | d)
    for i in range(reps):
        t = t + _looped(t % 97 + i)
    return t


@pytest.mark.parametrize("reps,inlined", [(1, ""), (30, "_looped")])
def test_calls_inline_where_they_run_often(reps, inlined):
    # A small callee is copied into a long caller only at a site in a loop, and only if
    # its loops ran more than once a call before the compile: elsewhere the call runs
    # about once a call of a caller that does much more, and each copy costs compile time
    # (richards' `Richards.run`: 71 ms and 227 KB of code with its twelve calls copied
    # in, one loop iteration a call; 35 ms and 102 KB without).
    import types

    from tiered import dump

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    code = long_caller.__code__.replace(co_name=f"long_caller_{reps}")
    w = tiered(types.FunctionType(code, long_caller.__globals__))
    for _ in range(40):
        assert w(30, reps) == long_caller(30, reps)
    assert stats(w)["native_calls"] > 0
    line = next(ln for ln in dump(w).splitlines() if "native templates at" in ln)
    assert line.split("calls emitted inline: ")[1:] == ([inlined] if inlined else []), line


@pytest.mark.parametrize("f,args,kwargs", cases((long_caller, (30, 1)), (long_caller, (30, 30)),
                                                (long_caller, (0, 0))))
def test_a_long_caller(f, args, kwargs):
    check(f, *args, **kwargs)


def test_a_long_function_needs_more_calls_to_compile():
    # Compile time grows with a function's size, and a long one met a few times is
    # mostly set-up code run once an iteration: past 256 linear instructions the call
    # threshold grows with the size (`Compiled::call_threshold`).
    import os

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds")
    body = "".join(f"    t = (t * {3 + k % 5} + x) % 1000003\n" for k in range(1200))
    ns: dict = {}
    exec(f"def long_straight(x):\n    t = x\n{body}    return t\n", ns)
    plain = ns["long_straight"]
    w = tiered(plain)
    for i in range(60):
        assert w(i) == plain(i)
    assert stats(w)["native_calls"] == 0, stats(w)
    for i in range(600):
        assert w(i) == plain(i)
    assert stats(w)["native_calls"] > 0, stats(w)
