"""Adversarial differential tests of the trampoline for calls from CPython into native
code, and of generators, exception state and inlined callees' oddities; split from
test_adversarial.py, written by a review that tried to break these native paths. Each
case must agree with CPython on every tier."""
import sys
import traceback

import pytest

from harness import cases, check
from test_adversarial import small_b, small_raiser
from tiered import tiered


N = 3000

# ---------------------------------------------------------------- 3. trampolines

def t0():
    return 7


def t1(a):
    return a + 1


def t2(a, b):
    return a * b


def t3(a, b, c):
    return (a, b, c)


def t4(a, b, c, d):
    return a + b + c + d


def t5(a, b, c, d, e):
    return [a, b, c, d, e]


def t6(a, b, c, d, e, f):
    x = a + b
    return x if c else f


def t_big(a):
    return a * 2 ** 62


def t_float(a):
    return a / 3


def t_bool(a):
    return a > 3


def t_none(a):
    a + 1


def t_raise(a):
    return 10 // a


def t_cell_arg(a):
    g = lambda: a + 1  # noqa: E731
    a = a * 2
    return g()


def t_gen(a):
    yield a
    yield a + 1


def t_defaults(a, b=5):
    return a - b


def t_loop(a):
    s = 0
    for i in range(a):
        s += i
    return s


def drive_from_cpython(fn, argsets, reps=50):
    w = tiered(fn)
    out = []
    for _ in range(reps):
        for a in argsets:
            try:
                r = w(*a)
                if hasattr(r, "__next__"):
                    r = list(r)
                out.append((type(r).__name__, repr(r)))
            except Exception as e:  # noqa: BLE001
                out.append((type(e).__name__, str(e)))
    exp = []
    for _ in range(reps):
        for a in argsets:
            try:
                r = fn(*a)
                if hasattr(r, "__next__"):
                    r = list(r)
                exp.append((type(r).__name__, repr(r)))
            except Exception as e:  # noqa: BLE001
                exp.append((type(e).__name__, str(e)))
    return out, exp


@pytest.mark.parametrize("fn,argsets", [
    (t0, [()]),
    (t1, [(1,), (2 ** 63 - 1,), (1.5,), (True,)]),
    (t2, [(3, 4), (2 ** 40, 2 ** 40), ("a", 3), (1.5, 2)]),
    (t3, [(1, 2, 3), (None, "x", 1.5)]),
    (t4, [(1, 2, 3, 4), (1.5, 2, 3, 4), (2 ** 62, 2 ** 62, 2 ** 62, 2 ** 62)]),
    (t5, [(1, 2, 3, 4, 5)]),
    (t6, [(1, 2, True, 4, 5, 6), (1, 2, 0, 4, 5, None)]),
    (t_big, [(3,), (-3,), (0,)]),
    (t_float, [(3,), (1.0,), (10 ** 30,)]),
    (t_bool, [(1,), (5,), (3.5,)]),
    (t_none, [(1,), (1.0,)]),
    (t_raise, [(1,), (0,), (0.0,), ("x",)]),
    (t_cell_arg, [(1,), (2.5,)]),
    (t_gen, [(1,), (2.5,)]),
    (t_defaults, [(1,), (1, 2), (1.0,)]),
    (t_loop, [(0,), (10,), (700,)]),
])
def test_trampoline_kinds(fn, argsets):
    out, exp = drive_from_cpython(fn, argsets)
    assert out == exp


def test_trampoline_refcounts():
    w = tiered(t3)
    objs = [object(), [1], "zz" * 50]
    before = [sys.getrefcount(o) for o in objs]
    for _ in range(2000):
        w(*objs)
    after = [sys.getrefcount(o) for o in objs]
    assert before == after
    w2 = tiered(t_raise)
    o = 10 ** 40
    b = sys.getrefcount(o)
    for _ in range(2000):
        w2(o)
    assert sys.getrefcount(o) == b
    w3 = tiered(t_none)
    x = 2 ** 70
    b = sys.getrefcount(x)
    for _ in range(2000):
        w3(x)
    assert sys.getrefcount(x) == b


def deep_key(k):
    return k


def test_trampoline_recursion_via_cpython():
    w = tiered(lambda n: n if n <= 0 else sorted([n], key=lambda k: w(k - 1))[0] + 1)
    f = lambda n: n if n <= 0 else sorted([n], key=lambda k: f(k - 1))[0] + 1  # noqa: E731
    for n in (10, 100, 200):
        assert w(n) == f(n)
    def outcome(g):
        try:
            return g(100000)
        except RecursionError as e:
            return "RecursionError"
    assert outcome(w) == outcome(f) == "RecursionError"
    # still usable afterwards
    assert w(50) == f(50)


def rec_py(n):
    if n == 0:
        return 0
    return 1 + rec_map(n - 1)


def rec_map(n):
    return list(map(W_REC, [n]))[0]


W_REC = None


def test_trampoline_recursion_map():
    global W_REC
    W_REC = tiered(rec_py)
    try:
        assert W_REC(200) == 200
        with pytest.raises(RecursionError):
            W_REC(10 ** 6)
        assert W_REC(100) == 100
    finally:
        W_REC = None


def test_trampoline_exception_traceback():
    w = tiered(t_raise)
    for _ in range(100):
        w(1)
    try:
        w(0)
    except ZeroDivisionError as e:
        names = [fr.name for fr in traceback.extract_tb(e.__traceback__)]
        lines = [fr.lineno for fr in traceback.extract_tb(e.__traceback__)]
    assert names[-1] == "t_raise"
    assert lines[-1] == t_raise.__code__.co_firstlineno + 1
    assert sys.exc_info() == (None, None, None)


# ---------------------------------------------------------------- more: generators, exc state, inline oddities

def small_gen(x):
    yield x
    yield x + 1


async def small_coro(x):
    return x * 2


def inl_gen_callee(n):
    t = 0
    for i in range(n):
        g = small_gen(i)
        t += next(g)
        t += sum(g)
    return t


def inl_coro_callee(n):
    t = 0
    for i in range(n):
        c = small_coro(i)
        try:
            c.send(None)
        except StopIteration as s:
            t += s.value
    return t


def small_reraise(x):
    if x % 3 == 0:
        raise
    return x


def inl_bare_raise_in_handler(n):
    out = []
    for i in range(n):
        try:
            raise KeyError(i)
        except KeyError:
            try:
                out.append(small_reraise(i))
            except KeyError as e:
                out.append(("re", e.args[0]))
    return out[-6:]


def small_raise_new(x):
    raise ValueError(x)


def inl_context_chain(n):
    out = []
    for i in range(n):
        try:
            try:
                1 / 0
            except ZeroDivisionError:
                small_raise_new(i)
        except ValueError as e:
            out.append((type(e.__context__).__name__, e.__suppress_context__))
    return out[-3:]


def small_excinfo(x):
    return sys.exc_info()[0]


def inl_exc_info(n):
    out = []
    for i in range(n):
        if i % 2:
            try:
                raise IndexError
            except IndexError:
                out.append(small_excinfo(i))
        else:
            out.append(small_excinfo(i))
    return [getattr(x, "__name__", x) for x in out[-4:]]


def small_makes_closure(x):
    return lambda: x + 1


def inl_closure_created(n):
    t = 0
    for i in range(n):
        t += small_makes_closure(i)()
    return t


def small_modifies_self(x):
    if x == 1500:
        small_modifies_self.__code__ = small_b.__code__
    return x + 1


SMS_CODE = small_modifies_self.__code__


def inl_self_modify(n):
    small_modifies_self.__code__ = SMS_CODE
    t = 0
    try:
        for i in range(n):
            t += small_modifies_self(i)
    finally:
        small_modifies_self.__code__ = SMS_CODE
    return t


def gen_loop_float(n):
    x = 0.0
    y = 0
    for i in range(n):
        x += 0.5
        y = y + i
        yield x, y


def drive_gen(n):
    t = 0.0
    for a, b in gen_loop_float(n):
        t += a + b
    return t


def gen_loop_send(n):
    acc = 0
    while True:
        v = yield acc
        if v is None:
            return acc
        acc = acc + v


def drive_send(n):
    g = gen_loop_send(n)
    next(g)
    out = 0
    for i in range(n):
        out = g.send(i if i % 3 else float(i))
    try:
        g.send(None)
    except StopIteration as s:
        return out, s.value


def cached_inplace_list(n):
    xs = []
    ys = xs
    for i in range(n):
        xs += [i]
        if i % 1000 == 0:
            xs = xs + []
    return len(xs), len(ys), xs is ys


def cached_self_assign(n):
    o = object()
    x = o
    for i in range(n):
        x = x
        y = x
        x = y
    return x is o


def tiered_small(x):
    return x * 2


TS = tiered(tiered_small)


def inl_tiered_wrapper_callee(n):
    t = 0
    for i in range(n):
        t += TS(i)
    return t


def small_traceback_deep(x):
    return small_raiser(x) + 1


def inl_tb_deep(n):
    for i in range(1, n):
        try:
            small_traceback_deep(i)
        except ValueError as e:
            tb = traceback.extract_tb(e.__traceback__)
            return [(fr.name, fr.line) for fr in tb], i


def small_unpack(t):
    a, b = t
    return a - b


def inl_unpack_fail(n):
    out = 0
    items = [(1, 2), (3, 4, 5), [6, 7], "ab", 5]
    for i in range(n):
        try:
            out += small_unpack(items[i % 5])
        except (ValueError, TypeError) as e:
            out += len(str(e))
    return out


@pytest.mark.parametrize("f,args,kwargs", cases(
    (inl_gen_callee, (N,)),
    (inl_coro_callee, (N,)),
    (inl_bare_raise_in_handler, (N,)),
    (inl_context_chain, (N,)),
    (inl_exc_info, (N,)),
    (inl_closure_created, (N,)),
    (inl_self_modify, (N,)),
    (drive_gen, (N,)),
    (drive_send, (N,)),
    (cached_inplace_list, (N,)),
    (cached_self_assign, (N,)),
    (inl_tiered_wrapper_callee, (N,)),
    (inl_tb_deep, (N,)),
    (inl_unpack_fail, (N,)),
))
def test_more(f, args, kwargs):
    check(f, *args, **kwargs)
