"""Adversarial differential tests of the wrapper's native entry (see
test_native_entry_adversarial.py): `__code__` reassigned, argument types and classes
that change between and inside calls, call shapes and raw vectorcalls, and lifetimes
(wrappers deleted while running, exceptions, reference counts, `__del__` re-entering).
Each runs under plain CPython and through `tiered` wrappers and compares."""

import ctypes
import functools
import gc
import operator
import os
import sys
import traceback
import types
import weakref

import pytest

from tiered import stats

from native_entry_support import REPEAT, T, entry, free_depth, installed, outcome, twins, warmed

pytestmark = pytest.mark.skipif(os.environ.get("TIERED_JIT") == "0", reason="tier 2 is off (TIERED_JIT=0)")


# ---------------------------------------------------------------------------------------
# __code__


def _same_named(src_body, name="f"):
    """Two distinct function objects with the same name and code shape."""
    g1, g2 = {}, {}
    exec(src_body, g1)
    exec(src_body, g2)
    return g1[name], g2[name]


NEW_CODES = {
    "two": "def two(a, b):\n    return a * 10 + b\n",
    "gen": "def gen(x):\n    yield x\n    yield x + 1\n",
    "coro": "async def coro(x):\n    return x + 1\n",
    "kwonly": "def kwonly(x, *, k=5):\n    return x + k\n",
    "varargs": "def varargs(*a):\n    return sum(a)\n",
    "zero": "def zero():\n    return 99\n",
    "float1": "def float1(x):\n    return x * 0.5\n",
}


@pytest.mark.parametrize("kind", sorted(NEW_CODES))
def test_code_reassigned_to_another_shape(kind):
    g = {}
    exec(NEW_CODES[kind], g)
    new = g[kind].__code__
    pf, tf = _same_named("def f(x):\n    return x + 1\n")
    w = installed(T(tf), 1)
    pf.__code__ = new
    w.__code__ = new  # through the wrapper's forwarding setter
    assert tf.__code__ is new
    for _ in range(REPEAT):
        for args in ((1,), (1, 2), (), (2.5,)):
            assert outcome(w, *args) == outcome(pf, *args), args
    # The argument shapes alternate: no two calls in a row with the same types.
    assert not entry(w)
    # Back to the original code: the entry comes back.
    orig, _ = _same_named("def f(x):\n    return x + 1\n")
    w.__code__ = orig.__code__
    assert not entry(w)
    installed(w, 4)
    assert w(4) == 5


def test_code_reassigned_while_running():
    src = """
    def other(x, log):
        log.append(("other", x))
        return -x
    def f(x, log):
        log.append(("f", x))
        if x == 2:
            f.__code__ = other.__code__
            # The running call keeps its code; the next call (through C) sees the new one.
            log.append(("inner", list(map(f, [x + 1], [log]))))
        return x * 2
    """
    plain, tier = twins(src, "f")
    w = tier["f"]
    installed(w, 0, [])
    # `f.__code__` inside the body refers to the wrapper (tier) or the function (plain).
    results = []
    for ns in (plain, tier):
        log = []
        results.append(([outcome(ns["f"], i, log) for i in range(5)], log))
    assert results[1] == results[0]
    assert w.__code__ is tier["other"].__code__
    installed(w, 7, [])
    assert w(7, []) == -7


def test_code_setter_errors():
    pf, tf = _same_named("def f(x):\n    return x + 1\n")
    w = installed(T(tf), 1)

    def closure_code():
        y = 1

        def inner(x):
            return x + y

        return inner.__code__

    for bad in (5, None, closure_code()):
        ours = theirs = None
        try:
            pf.__code__ = bad
        except BaseException as e:  # noqa: BLE001
            theirs = (type(e), str(e))
        try:
            w.__code__ = bad
        except BaseException as e:  # noqa: BLE001
            ours = (type(e), str(e))
        assert ours == theirs and theirs is not None, bad
    with pytest.raises(TypeError) as a:
        del pf.__code__
    with pytest.raises(TypeError) as b:
        del w.__code__
    assert str(a.value) == str(b.value)
    assert entry(w) and w(1) == 2


def test_direct_call_sees_reassigned_callee_code():
    src = """
    def callee(x):
        return x + 1
    def alt(x):
        return x - 1
    def caller(x):
        return callee(x) * 2
    """
    plain, tier = twins(src, "callee", "caller")
    for _ in range(5):
        tier["caller"](1)
    assert entry(tier["caller"])
    for ns in (plain, tier):
        ns["callee"].__code__ = ns["alt"].__code__
    assert tier["caller"](10) == plain["caller"](10) == 18
    for ns in (plain, tier):
        ns["callee"] = ns["alt"]
    assert tier["caller"](10) == plain["caller"](10) == 18
    for _ in range(3):
        assert tier["caller"](10) == 18


# ---------------------------------------------------------------------------------------
# argument types


class _A:
    def __init__(self):
        self.v = 1

    def m(self):
        return "A"


class _B:
    def m(self):
        return "B"

    @property
    def v(self):
        return 100


def _use(o):
    return (o.m(), o.v + 1)


def test_argument_class_changes_between_calls():
    w = T(_use)
    pa, ta = _A(), _A()
    installed(w, ta)
    for cls in (_B, _A, _B, _A):
        pa.__class__ = cls
        ta.__class__ = cls
        assert outcome(w, ta) == outcome(_use, pa)
        # Another exact type than the last call's: never the installed entry's.
        assert not entry(w)
    installed(w, ta)
    # The class itself changes.
    saved = _A.m
    try:
        _A.m = lambda self: "A2"
        assert outcome(w, ta) == outcome(_use, pa)
    finally:
        _A.m = saved
    del pa.v, ta.v
    assert outcome(w, ta) == outcome(_use, pa)
    pa.v = ta.v = 2.5
    assert outcome(w, ta) == outcome(_use, pa)


def test_argument_class_changes_inside_the_call():
    src = """
    class A:
        def m(self):
            return "A"
    class B:
        def m(self):
            return "B"
    def swap(o):
        o.__class__ = B if type(o) is A else A
    def f(o):
        a = o.m()
        swap(o)
        return a + o.m()
    """
    plain, tier = twins(src, "f")
    w = tier["f"]
    objs = {id(ns): ns["A"]() for ns in (plain, tier)}
    for _ in range(3):
        o = tier["A"]()
        w(o)
    res = []
    for ns in (plain, tier):
        o = objs[id(ns)]
        res.append([outcome(ns["f"], o) for _ in range(6)])
    assert res[1] == res[0]


class _I(int):
    def __add__(self, o):
        return ("I.add", int(self), o)

    __radd__ = __add__

    def __mul__(self, o):
        return ("I.mul",)

    def __lt__(self, o):
        return "lt"

    def __neg__(self):
        return "I.neg"


class _F(float):
    def __add__(self, o):
        return ("F.add", float(self), o)

    def __mul__(self, o):
        return ("F.mul",)

    def __lt__(self, o):
        return "flt"


class _PlainI(int):
    pass


def _arith(a, b):
    return (a + b, a * b, a < b, a - b, a == b)


def _unary(a):
    return (-a, +a, not a, a != a)


@pytest.mark.parametrize(
    "args",
    [
        (_I(3), 4),
        (3, _I(4)),
        (_F(1.5), 2.0),
        (2.0, _F(1.5)),
        (_PlainI(5), 6),
        (True, False),
        (True, 2),
        (2**62, 2**62),
        (2**63 - 1, 1),
        (-(2**63), -1),
        (-(2**63), 2**63),
        (10**30, 3),
        (1e308, 1e308),
        (float("nan"), 1.0),
        (-0.0, 0.0),
        (1, 2.5),
        (float("inf"), float("-inf")),
    ],
    ids=repr,
)
def test_number_edges_and_subclasses(args):
    w = installed(T(_arith), 1, 2)
    for _ in range(REPEAT + 1):
        assert outcome(w, *args) == outcome(_arith, *args)
    exact = all(type(a) in (int, float) for a in args)
    # A subclass (or bool) never matches the exact types the entry was made for: after
    # such a call the entry is gone (or moved to these types after two calls in a row).
    if not exact:
        w2 = installed(T(_arith), 1, 2)
        w2(*args)
        assert not entry(w2)
    u = installed(T(_unary), 7)
    for _ in range(REPEAT + 1):
        assert outcome(u, args[0]) == outcome(_unary, args[0])


def test_small_int_identity_and_argument_identity():
    src = """
    def inc(x):
        return x + 1
    def ident(x):
        return x
    def pair(a, b):
        return a is b, a == b
    """
    plain, tier = twins(src, "inc", "ident", "pair")
    installed(tier["inc"], 1)
    installed(tier["ident"], 1)
    installed(tier["pair"], 1, 1)
    for x in (4, 255, 256, 999, -6, -5, 10**20):
        same_p = plain["inc"](x) is plain["inc"](x)
        same_t = tier["inc"](x) is tier["inc"](x)
        assert same_t == same_p, x
        assert tier["ident"](x) is x
        y = x + 0
        assert tier["pair"](x, y) == plain["pair"](x, y)


def test_fifth_argument_type_varies():
    def five(a, b, c, d, e):
        return (a + b + c + d) * e

    w = installed(T(five), 1, 2, 3, 4, 5)
    for e in (1, 2, 1.5, "s", [1], 3, 2.0, (1,), None, 10**40):
        for _ in range(3):
            assert outcome(w, 1, 2, 3, 4, e) == outcome(five, 1, 2, 3, 4, e), e


def test_many_parameters():
    g = {}
    exec("def many(%s):\n    return a0 + a299\n" % ", ".join("a%d" % i for i in range(300)), g)
    exec("def m256(%s):\n    return a0 * a255\n" % ", ".join("a%d" % i for i in range(256)), g)
    for name, n in (("many", 300), ("m256", 256)):
        p = g[name]
        w = installed(T(p), *range(n))
        for k in (n - 1, n, n + 1, 255, 256, 257, 0):
            assert outcome(w, *range(k)) == outcome(p, *range(k)), (name, k)
        installed(w, *range(n))
        assert w(*range(1, n + 1)) == p(*range(1, n + 1))


def test_defaults_and_alternating_arity():
    def f(x, y=2):
        return x * 100 + y

    w = T(f)
    for i in range(20):
        assert w(i) == f(i)
        assert w(i, 5) == f(i, 5)
    installed(w, 1, 2)
    assert w(7) == 702
    f.__defaults__ = (9,)
    assert w(7) == 709 and w(7, 1) == 701
    w.__defaults__ = None
    assert outcome(w, 7) == outcome(f, 7)


def test_zero_argument_function():
    def z():
        return 42

    w = installed(T(z))
    for args, kw in (((), {}), ((1,), {}), ((), {"a": 1}), ((), {})):
        assert outcome(w, *args, **kw) == outcome(z, *args, **kw)
    assert w(*()) == 42 and w(**{}) == 42
    installed(w)


def test_more_specializations_than_kept():
    src = """
    def f(o, k):
        return o.x * k
    """
    plain, tier = twins(src, "f")
    classes = []
    for i in range(12):
        classes.append(type("C%d" % i, (), {"x": i, "__slots__": ()}))
    for rnd in range(3):
        for C in classes:
            for k in (2, 2.5, 2):
                o = C()
                assert outcome(tier["f"], o, k) == outcome(plain["f"], o, k)


def test_type_address_reuse():
    def g(o):
        return (o.x, o.y)

    w = T(g)
    for k in range(40):
        slots = ("x", "y") if k % 2 else ("y", "x")
        C = type("C", (), {"__slots__": slots})
        o = C()
        o.x, o.y = "X%d" % k, "Y%d" % k
        for _ in range(3):
            assert outcome(w, o) == outcome(g, o)
        del C, o
        gc.collect()

    def h(o):
        return o.a + o.b

    w = T(h)
    for k in range(40):
        class D:
            pass

        o = D()
        if k % 2:
            o.a, o.b = 1, 10
        else:
            o.b, o.a = 1000, 100
        for _ in range(3):
            assert outcome(w, o) == outcome(h, o)
        del D, o
        gc.collect()


def test_closures_and_globals_sharing_code():
    def make(k):
        def inner(x):
            return x * k + _K

        return inner

    ws = [installed(T(make(k)), 1) for k in range(4)]
    assert [w(5) for w in ws] == [make(k)(5) for k in range(4)]
    g2 = {"_K": -1, "__builtins__": __builtins__}
    f2 = types.FunctionType(_kfun.__code__, g2, "_kfun")
    w1, w2 = installed(T(_kfun), 1), installed(T(f2), 1)
    assert (w1(1), w2(1)) == (_kfun(1), f2(1))
    g2["_K"] = 7
    assert (w1(1), w2(1)) == (_kfun(1), f2(1))
    del g2["_K"]
    assert outcome(w2, 1) == outcome(f2, 1)
    g3 = {"__builtins__": {"len": lambda x: 42}}
    f3 = types.FunctionType(_blen.__code__, g3, "_blen")
    w3, w4 = installed(T(f3), "ab"), installed(T(_blen), "ab")
    assert (w3("ab"), w4("ab")) == (f3("ab"), _blen("ab")) == (42, 2)


def test_cells_and_shadowed_builtins_change_between_calls():
    src = """
    def outer():
        k = 1
        def get(x):
            return x + k
        def put(v):
            nonlocal k
            k = v
        return get, put
    get, put = outer()
    def size(x):
        return len(x) * 2
    """
    plain, tier = twins(src, "get", "size")
    installed(tier["get"], 1)
    installed(tier["size"], "ab")
    for v in (2, 2.5, "s", 10**30, 3, None):
        for ns in (plain, tier):
            ns["put"](v)
        for a in (1, 1.5, "t"):
            assert outcome(tier["get"], a) == outcome(plain["get"], a), (v, a)
    for ns in (plain, tier):
        ns["len"] = lambda x: -1
    assert outcome(tier["size"], "ab") == outcome(plain["size"], "ab") == ("ok", "int", "-2")
    for ns in (plain, tier):
        del ns["len"]
    assert outcome(tier["size"], "ab") == outcome(plain["size"], "ab") == ("ok", "int", "4")
    for ns in (plain, tier):
        ns["__builtins__"] = {}
    # A function's builtins are fixed when it is created: still the real len.
    assert outcome(tier["size"], "ab") == outcome(plain["size"], "ab")


_K = 1000


def _kfun(x):
    return x + _K


def _blen(x):
    return len(x)


# ---------------------------------------------------------------------------------------
# call shapes


def _lt(self, other):
    return self.k < other.k


def _getitem(self, i):
    return self.k * 10 + i


def _length(self):
    return self.k + 1


def _hash(self):
    return self.k * 7


def _call(self, a, b):
    return (self.k, a, b)


def _make_class(deco):
    class K:
        __lt__ = deco(_lt)
        __getitem__ = deco(_getitem)
        __len__ = deco(_length)
        __hash__ = deco(_hash)
        __call__ = deco(_call)
        m = deco(_call)
        s = staticmethod(deco(_length))

        def __init__(self, k):
            self.k = k

    return K


def _exercise(K):
    xs = [K(k) for k in (5, 3, 9, 1, 7, 2)]
    out = []
    for _ in range(4):
        out.append([x.k for x in sorted(xs)])
        out.append([x[2] for x in xs])
        out.append([len(x) for x in xs])
        out.append([hash(x) for x in xs])
        out.append([x(1, "b") for x in xs])
        out.append([x.m(1, 2.5) for x in xs])
        out.append(list(map(K.m, xs, range(6), "abcdef")))
        out.append([operator.call(x.m, 1, 2) for x in xs])
        out.append([functools.partial(K.m, x, 7)(8) for x in xs])
        out.append([functools.partial(x.m, b=7)(8) for x in xs])
        out.append([K.m(*(x, 1, 2)) for x in xs])
        out.append([K.m(x, *[1], **{"b": 2}) for x in xs])
        out.append([K.m(x, **{"a": 1, "b": 2}) for x in xs])
        out.append([type(K.m).__call__(K.m, x, 1, 2) for x in xs])
        out.append([K.m.__call__(x, 1, 2) for x in xs])
        out.append([K.s(x) for x in xs])
        out.append(list(filter(K.__len__, xs)) == xs)
        out.append(sorted(xs, key=K.__len__)[0].k)
        out.append(min(xs).k)
        out.append([outcome(K.m, x) for x in xs[:2]])
        out.append([outcome(K.m, x, 1, 2, 3) for x in xs[:2]])
        out.append([outcome(K.m, x, 1, c=2) for x in xs[:2]])
    return out


def test_call_shapes():
    plain = _exercise(_make_class(lambda f: f))
    K = _make_class(T)
    assert _exercise(K) == plain
    # The last calls of m were bad keyword calls: they leave the entry.
    assert not entry(K.__dict__["m"])
    x = K(1)
    assert [x.m(1, 2) for _ in range(3)] == [(1, 1, 2)] * 3
    for n in ("__lt__", "__getitem__", "__len__", "__hash__", "__call__", "m"):
        assert entry(K.__dict__[n]), n
    assert _exercise(K) == plain


PY_VECTORCALL_ARGUMENTS_OFFSET = 1 << 63


def _raw_vectorcall(f, args, kwnames, offset):
    vc = ctypes.pythonapi.PyObject_Vectorcall
    vc.restype = ctypes.py_object
    vc.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_size_t, ctypes.py_object]
    n = len(args)
    arr = (ctypes.py_object * (n + 1))(None, *args)
    base = ctypes.addressof(arr) + ctypes.sizeof(ctypes.py_object)
    nargsf = (n - len(kwnames or ())) | (PY_VECTORCALL_ARGUMENTS_OFFSET if offset else 0)
    return outcome(vc, f, base, nargsf, kwnames if kwnames is not None else ctypes.py_object())


def test_raw_vectorcall_arguments():
    """PyObject_Vectorcall through ctypes (pythonapi keeps the GIL): an empty kwnames
    tuple, PY_VECTORCALL_ARGUMENTS_OFFSET, keywords after positionals."""

    def f(x, y):
        return x * 10 + y

    w = T(f)
    cases = [
        ((1, 2), None, False),
        ((1, 2), None, True),
        ((1, 2), (), False),
        ((1, 2), (), True),
        ((1, 2), ("y",), True),
        ((1, 2), ("x",), False),
        ((1, 2, 3), ("y",), False),
        ((1,), None, True),
        ((1, 2.5), None, True),
        ((1, 2), ("y",), False),
    ]
    for args, kw, off in cases:
        installed(w, 1, 2)
        assert _raw_vectorcall(w, args, kw, off) == _raw_vectorcall(f, args, kw, off), (args, kw, off)


# ---------------------------------------------------------------------------------------
# lifetime, exceptions, leaks


def test_wrapper_deleted_while_running():
    src = """
    import gc
    def selfdel(x, key):
        del HOLD[key]
        gc.collect()
        return x + 1
    HOLD = {}
    """
    plain, tier = twins(src, "selfdel")
    for ns in (plain, tier):
        fn = ns["selfdel"]
        for i in range(4):
            ns["HOLD"]["k"] = fn
            assert ns["HOLD"]["k"](i, "k") == i + 1
    del fn
    w = tier["selfdel"]
    assert entry(w)
    # The only references: the dict entry the body deletes, and the caller's stack.
    code = w.__code__
    tier["HOLD"]["k"] = w
    ref = weakref.ref(w)
    del w
    tier["selfdel"] = None
    assert tier["HOLD"]["k"](10, "k") == 11
    gc.collect()
    assert ref() is None
    # Through map, which holds the only reference.
    w = T(types.FunctionType(code, tier, "selfdel"))
    for i in range(3):
        tier["HOLD"]["k"] = w
        w(i, "k")
    assert entry(w)
    tier["HOLD"]["k"] = w
    ref = weakref.ref(w)
    m = map(w, [1], ["k"])
    del w
    assert list(m) == [2]
    del m
    gc.collect()
    assert ref() is None


def _shape(e):
    if e is None:
        return None
    return (
        type(e).__name__,
        str(e),
        _shape(e.__context__),
        _shape(e.__cause__),
        e.__suppress_context__,
        [(fs.name, fs.lineno, fs.line) for fs in traceback.extract_tb(e.__traceback__)],
    )


EXC_SRC = """
import sys
def boom(x):
    if x > 1:
        return 1 // (x - x)
    return x
def info(x):
    return (sys.exc_info()[0], x + 1)
def rewrap(x):
    try:
        return 10 // x
    except ZeroDivisionError as e:
        raise ValueError("bad %r" % x) from (e if x == 0 else None)
def bare(x):
    if x:
        raise
    return 0
def catches(x):
    try:
        return [1][x]
    except IndexError:
        return sys.exc_info()[0]
def attr(x):
    return x.missing
"""


@pytest.mark.parametrize(
    "name,warm,args",
    [
        ("boom", 1, (0, 1, 5, 1)),
        ("info", 1, (1, 2)),
        ("rewrap", 1, (0, 1, 0)),
        ("bare", 0, (0, 1, 0)),
        ("catches", 0, (0, 3, 0)),
        ("attr", 1, (1, 2)),
    ],
)
def test_exceptions_escape_and_are_caught(name, warm, args):
    plain, tier = twins(EXC_SRC, name)
    w = warmed(tier[name], warm)

    def scenario(fn, arg, handled):
        def call():
            try:
                return ("ok", fn(arg))
            except BaseException as e:  # noqa: BLE001
                return ("err", _shape(e))

        if handled:
            try:
                raise KeyError("outer")
            except KeyError:
                r = call()
                return r, sys.exc_info()[0]
        return call(), sys.exc_info()[0]

    for _ in range(REPEAT):
        for a in args:
            for handled in (False, True):
                assert scenario(w, a, handled) == scenario(plain[name], a, handled), (a, handled)
    warmed(w, warm)


def test_refcounts_and_gc_objects_are_stable():
    src = """
    def ident(x):
        return x
    def first(xs):
        return xs[0]
    def pair(a, b):
        return (a, b)
    def boom(x):
        return x.missing
    def rec(n):
        return 0 if n == 0 else sum(map(rec, [n - 1])) + 1
    """
    _, tier = twins(src, "ident", "first", "pair", "boom", "rec")
    o = object()
    s = "str" + str(len(src))
    lst = [o]
    installed(tier["ident"], o)
    installed(tier["first"], lst)
    installed(tier["pair"], o, s)
    for _ in range(3):
        try:
            tier["boom"](o)
        except AttributeError:
            pass
    assert entry(tier["boom"])
    installed(tier["rec"], 3)

    def burst(n):
        for _ in range(n):
            tier["ident"](o)
            tier["first"](lst)
            tier["pair"](o, s)
            try:
                tier["boom"](o)
            except AttributeError:
                pass
        for _ in range(20):
            try:
                tier["rec"](5000)
            except RecursionError:
                pass

    burst(100)
    gc.collect()
    before = (sys.getrefcount(o), sys.getrefcount(s), sys.getrefcount(lst))
    n0 = len(gc.get_objects())
    depth = free_depth()
    burst(5000)
    gc.collect()
    after = (sys.getrefcount(o), sys.getrefcount(s), sys.getrefcount(lst))
    assert after == before
    assert len(gc.get_objects()) - n0 <= 5
    assert free_depth() == depth


def test_del_reenters_the_wrapper():
    src = """
    class D:
        def __init__(self, log, n):
            self.log = log
            self.n = n
        def __del__(self):
            if self.n > 0:
                self.log.append(("del", self.n, F(self.log, self.n - 1)))
    def F(log, n):
        d = D(log, n)
        log.append(("body", n))
        return n * 2
    """
    plain, tier = twins(src, "F")
    for i in range(3):
        tier["F"]([], 0)
    assert entry(tier["F"])
    res = []
    for ns in (plain, tier):
        log = []
        res.append(([ns["F"](log, k) for k in (0, 1, 3, 0, 2)], log))
    assert res[1] == res[0]


def test_element_types_change_until_invalidated():
    src = """
    def idx(xs, i):
        return xs[i] + xs[i - 1]
    def total(xs):
        s = xs[0]
        for v in xs[1:]:
            s = s + v
        return s
    """
    plain, tier = twins(src, "idx", "total")
    kinds = [
        lambda k: [k, k + 1, k + 2],
        lambda k: [k + 0.5, k * 1.5, 2.0],
        lambda k: ["a%d" % k, "b", "c"],
        lambda k: [k, 1.5, "x"],
        lambda k: [True, k, 2**70],
        lambda k: [[k], [1], [2]],
    ]
    for rnd in range(2):
        for kind in kinds:
            for k in range(120):
                xs = kind(k)
                i = 1 + k % 2
                assert outcome(tier["idx"], xs, i) == outcome(plain["idx"], xs, i)
                assert outcome(tier["total"], xs) == outcome(plain["total"], xs)
    # Within one call: a long list whose element type changes half way (the loop's code is
    # invalidated while it runs and must leave for tier 1 at its header).
    for first, second in ((1, 0.5), (0.5, 1), (1, "s"), (2**40, 1)):
        xs = [first] * 700 + [second] * 700
        if isinstance(second, str):
            xs = ["a"] * 700 + ["b"] * 700
        assert outcome(tier["total"], xs) == outcome(plain["total"], xs)
    for _ in range(4):
        tier["total"]([1, 2, 3])
    assert entry(tier["total"])
    s = stats(tier["total"])
    assert s["fallback_calls"] == 0, s


def test_random_operation_sequences():
    """A seeded random walk over argument types, hooks, __code__ reassignments and call
    shapes on one wrapper, each step compared with the plain function."""
    import random

    rng = random.Random(1234)
    codes = {}
    for src in (
        "def f(x, y):\n    return x + y\n",
        "def f(x, y):\n    return (x, y, x * 2)\n",
        "def f(x, y):\n    return [x][0] if y else -x\n",
        "def f(x, y):\n    for i in range(3):\n        x = x + y\n    return x\n",
        "def f(x):\n    return x\n",
        "def f(x, y):\n    yield x\n",
    ):
        g = {}
        exec(src, g)
        codes[src] = g["f"].__code__
    code_list = list(codes.values())
    pf, tf = _same_named("def f(x, y):\n    return x + y\n")
    w = T(tf)
    values = [1, 2.5, "s", [1], (2,), True, _I(3), 10**25, None, -0.0]

    def hook(*a):
        return None

    for step in range(600):
        r = rng.random()
        if r < 0.04:
            c = rng.choice(code_list)
            pf.__code__ = c
            w.__code__ = c
            continue
        if r < 0.06:
            (sys.settrace if rng.random() < 0.5 else sys.setprofile)(hook)
        args = [rng.choice(values) if rng.random() < 0.3 else values[step % 3] for _ in range(rng.choice((2, 2, 2, 1, 3)))]
        shape = rng.random()
        try:
            if shape < 0.7:
                a, b = outcome(w, *args), outcome(pf, *args)
            elif shape < 0.85:
                a, b = outcome(functools.partial(w, *args)), outcome(functools.partial(pf, *args))
            else:
                a, b = list(map(outcome, [w] * 2, *[[x] * 2 for x in args])), list(
                    map(outcome, [pf] * 2, *[[x] * 2 for x in args])
                )
        finally:
            sys.settrace(None)
            sys.setprofile(None)
        assert a == b, (step, args, pf.__code__.co_code)
