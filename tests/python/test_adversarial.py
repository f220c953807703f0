"""Adversarial differential tests of the newer native paths: registers cached in machine
registers, inlined callees, the trampoline for calls from CPython, class instantiation
(CallClass) with instance-dict insertion order, quickened subscript stores, dict lookups
and str(). Written by a review that tried to break them; each case must agree with
CPython on every tier."""
import copy
import dataclasses
import pickle
import sys
import traceback

import pytest

from harness import cases, check, check_agrees
from tiered import tiered

N = 3000

# ---------------------------------------------------------------- 1. cached registers

def cached_type_churn(n):
    x = 0
    y = 0
    out = []
    for i in range(n):
        m = i % 5
        if m == 0:
            x = i
        elif m == 1:
            x = i + 0.5
        elif m == 2:
            x = 10 ** 30 + i
        elif m == 3:
            x = str(i)
        else:
            x = None
        if x is not None and not isinstance(x, str):
            y = y + x
        out.append(type(x).__name__)
    return y, out[-7:]


def cached_del(n):
    total = 0
    for i in range(n):
        x = i * 2
        total += x
        if i % 3 == 0:
            del x
        try:
            total += x
        except NameError:
            total -= 1
    return total


def cached_handler_writes(n):
    a = 0
    b = 1.5
    for i in range(n):
        try:
            if i % 7 == 0:
                raise ValueError(i)
            a += i
        except ValueError as e:
            a = e.args[0] * 1.0
            b = b + a
        finally:
            b = b + 1
    return a, b


def cached_unpack(n):
    a, b = 0, 1
    for i in range(n):
        a, b = b, (a + b) % 1000003
        if i % 100 == 0:
            a, b = b, a
    return a, b


def cached_for_target(n):
    s = 0
    x = -1
    for x in range(n):
        s += x
    for x in [1.5, 2.5, "a"]:
        pass
    return s, x


def cached_nested(n):
    acc = 0
    j = 0
    for i in range(n // 30):
        j = 0
        while j < 30:
            acc += i * j
            j += 1
            if j == 15:
                continue
            if acc > 10 ** 9:
                break
        else:
            acc -= 1
    return acc, j


def cached_with(n):
    import contextlib
    acc = 0
    for i in range(n):
        with contextlib.suppress(ZeroDivisionError):
            acc += 10 // (i % 4)
            acc = acc + 0.5
    return acc


def cached_escape(n):
    box = []
    x = 0
    for i in range(n):
        x = x + i
        box.append(x)
        if i % 100 == 0:
            box[-1] = box[-1] + 1
    return x, sum(box), box[-3:]


def cached_identity(n):
    same = 0
    prev = None
    for i in range(n):
        x = i % 300
        if prev is x:
            same += 1
        prev = x
        y = x + 0
        if y is x:
            same += 10
    return same


def cached_identity_float(n):
    c = 0
    keep = []
    x = 0.0
    for i in range(n):
        x = x + 1.0
        keep.append(x)
    return c, keep[-1] is x, len(set(map(id, keep[-5:])))


def cached_generic_op(n, objs):
    acc = 0
    for i in range(n):
        acc = acc + objs[i % len(objs)]
        acc = acc - objs[(i + 1) % len(objs)]
    return acc


class Num:
    def __init__(self, v):
        self.v = v

    def __radd__(self, o):
        return o + self.v

    def __rsub__(self, o):
        return o - self.v


def cached_comprehension(n):
    acc = 0
    for i in range(n // 10):
        acc += sum([acc % 7 + j for j in range(3)])
        acc %= 100000
    return acc


def cached_while_else(n):
    i = 0
    s = 0.0
    while i < n:
        s += i
        i += 1
        if s > 1e12:
            break
    else:
        s = -s
    return i, s


def cached_float_int_mix(n):
    x = 0
    for i in range(n):
        if i == n // 2:
            x = float(x)
        x = x + 1
        if i == n // 2 + 100:
            x = int(x) * 10 ** 20
    return x


def cached_many_regs(n):
    a = b = c = d = e = f = 0
    for i in range(n):
        a += 1
        b += a
        c += b % 7
        d = d + c % 3
        e = e ^ d
        f = f + (e & 1)
    return a, b, c, d, e, f


def cached_swap_types_via_call(n):
    vals = [0]
    x = 0
    for i in range(n):
        x = x + 1
        vals.append(x)
        if i % 500 == 0:
            x = g_convert(x)
    return x, vals[-1]


def g_convert(x):
    return float(x) if isinstance(x, int) else int(x)


def cached_loop_var_str(n):
    s = ""
    k = 0
    for i in range(n):
        k = k + 1
        if i % 1000 == 999:
            k = "k"
            s += k
            k = 0
    return s, k


def cached_exc_var(n):
    e = 5
    c = 0
    for i in range(n):
        try:
            if i % 2:
                raise KeyError(i)
        except KeyError as e:
            c += 1
        c += 1
    try:
        return c, e
    except NameError:
        return c, "unbound"


@pytest.mark.parametrize("f,args,kwargs", cases(
    (cached_type_churn, (N,)),
    (cached_del, (N,)),
    (cached_handler_writes, (N,)),
    (cached_unpack, (N,)),
    (cached_for_target, (N,)),
    (cached_nested, (N,)),
    (cached_with, (N,)),
    (cached_escape, (N,)),
    (cached_identity, (N,)),
    (cached_identity_float, (N,)),
    (cached_generic_op, (N, [1, 2.5, Num(3), 10 ** 20])),
    (cached_comprehension, (N,)),
    (cached_while_else, (N,)),
    (cached_float_int_mix, (N,)),
    (cached_many_regs, (N,)),
    (cached_swap_types_via_call, (N,)),
    (cached_loop_var_str, (N,)),
    (cached_exc_var, (N,)),
))
def test_cached_registers(f, args, kwargs):
    check(f, *args, **kwargs)


# ---------------------------------------------------------------- 2. inlined callees

def small_add(x, y=1):
    return x + y


def inl_defaults_changed(n):
    small_add.__defaults__ = (1,)
    t = 0
    for i in range(n):
        t += small_add(i)
        if i == n // 2:
            small_add.__defaults__ = (1000,)
    small_add.__defaults__ = (1,)
    return t


def small_kw(x, *, k=2):
    return x * k


def inl_kwdefaults_changed(n):
    small_kw.__kwdefaults__ = {"k": 2}
    t = 0
    for i in range(n):
        t += small_kw(i)
        if i == n // 2:
            small_kw.__kwdefaults__ = {"k": 3}
    small_kw.__kwdefaults__ = {"k": 2}
    return t


def small_a(x):
    return x + 1


def small_b(x):
    return x * 100


ORIG_A_CODE = small_a.__code__


def inl_code_replaced(n):
    small_a.__code__ = ORIG_A_CODE
    t = 0
    for i in range(n):
        t += small_a(i)
        if i == n // 2:
            small_a.__code__ = small_b.__code__
    small_a.__code__ = ORIG_A_CODE
    return t


def small_redef_target(x):
    return x - 1


def inl_redefined(n):
    global small_redef_target
    orig = small_redef_target
    t = 0
    try:
        for i in range(n):
            t += small_redef_target(i)
            if i == n // 2:
                def small_redef_target(x):
                    return x * 3
    finally:
        small_redef_target = orig
    return t


def make_counter():
    c = 0

    def bump(k):
        nonlocal c
        c += k
        return c
    return bump


def inl_closure(n):
    bump = make_counter()
    t = 0
    for i in range(n):
        t = bump(i % 3)
    return t


def small_raiser(x):
    if x % 97 == 0:
        raise ValueError("bad %d" % x)
    return x


def inl_raise_caught(n):
    t = 0
    for i in range(n):
        try:
            t += small_raiser(i)
        except ValueError as e:
            t -= len(str(e))
    return t


def inl_raise_escape(n):
    t = 0
    for i in range(1, n):
        t += small_raiser(i)
    return t


def inl_raise_tb(n):
    for i in range(1, n):
        try:
            small_raiser(i)
        except ValueError as e:
            tb = traceback.extract_tb(e.__traceback__)
            return [(fr.name, fr.lineno - small_raiser.__code__.co_firstlineno
                     if fr.name == "small_raiser" else 0, fr.line) for fr in tb], i


def small_catch(x):
    try:
        return 10 // x
    except ZeroDivisionError:
        return -1


def inl_catch_own(n):
    t = 0
    for i in range(n):
        t += small_catch(i % 5)
    return t, sys.exc_info()[0]


def small_calls_other(x):
    return small_add(x, 2) + small_a(x)


def inl_nested_calls(n):
    t = 0
    for i in range(n):
        t += small_calls_other(i)
    return t


def small_builtin(x):
    return len(str(x)) + abs(-x) + max(x, 3)


def inl_builtin(n):
    t = 0
    for i in range(n):
        t += small_builtin(i)
    return t


def rec_fact(k):
    if k <= 1:
        return 1
    return k * rec_fact(k - 1)


def inl_recursive(n):
    t = 0
    for i in range(n // 10):
        t += rec_fact(i % 25)
    return t


def is_even(k):
    return True if k == 0 else is_odd(k - 1)


def is_odd(k):
    return False if k == 0 else is_even(k - 1)


def inl_mutual(n):
    t = 0
    for i in range(n // 10):
        t += is_even(i % 40)
    return t


def small_poly(x):
    if x % 4 == 0:
        return x
    if x % 4 == 1:
        return x / 3
    if x % 4 == 2:
        return None
    return 2 ** 70 + x


def inl_ret_types(n):
    out = []
    t = 0
    for i in range(n):
        r = small_poly(i)
        if r is not None:
            t = t + r
        out.append(type(r).__name__)
    return t, out[-4:]


GV = 1


def small_global(x):
    return x + GV


def rebind_gv(v):
    global GV
    GV = v


def inl_global_rebound(n):
    rebind_gv(1)
    t = 0
    for i in range(n):
        t += small_global(i)
        if i == n // 3:
            rebind_gv(1.5)
        if i == 2 * n // 3:
            rebind_gv(10 ** 25)
    rebind_gv(1)
    return t


def inl_global_deleted(n):
    global GV
    rebind_gv(1)
    t = 0
    try:
        for i in range(n):
            t += small_global(i)
            if i == n // 2:
                del GV
    except NameError as e:
        t = (t, str(e))
    rebind_gv(1)
    return t


def small_builtin_shadow(x):
    return len(x)


def inl_builtin_shadowed(n):
    import builtins
    orig = builtins.len
    t = 0
    try:
        for i in range(n):
            t += small_builtin_shadow("ab")
            if i == n // 2:
                builtins.len = lambda x: 100
    finally:
        builtins.len = orig
    return t


def small_self_mod(x):
    global small_self_mod_target
    return x


def small_ident(x):
    return x


def inl_identity(n):
    objs = [object(), 1.5, 10 ** 30, "s", None]
    c = 0
    for i in range(n):
        o = objs[i % 5]
        if small_ident(o) is o:
            c += 1
    return c


def small_unbound(x):
    if x > 0:
        y = x
    return y


def inl_unbound_local(n):
    t = 0
    for i in range(n, -1, -1):
        t += small_unbound(i)
    return t


def small_args6(a, b, c, d, e, f):
    return a - b + c - d + e - f


def inl_args6(n):
    t = 0
    for i in range(n):
        t += small_args6(i, 1, 2.0, 3, i, 5)
    return t


def small_star(*a, **k):
    return len(a) + len(k)


def inl_star(n):
    t = 0
    for i in range(n):
        t += small_star(i, i, z=i)
    return t


@pytest.mark.parametrize("f,args,kwargs", cases(
    (inl_defaults_changed, (N,)),
    (inl_kwdefaults_changed, (N,)),
    (inl_code_replaced, (N,)),
    (inl_redefined, (N,)),
    (inl_closure, (N,)),
    (inl_raise_caught, (N,)),
    (inl_raise_escape, (N,)),
    (inl_raise_tb, (N,)),
    (inl_catch_own, (N,)),
    (inl_nested_calls, (N,)),
    (inl_builtin, (N,)),
    (inl_recursive, (N,)),
    (inl_mutual, (N,)),
    (inl_ret_types, (N,)),
    (inl_global_rebound, (N,)),
    (inl_global_deleted, (N,)),
    (inl_builtin_shadowed, (N,)),
    (inl_identity, (N,)),
    (inl_unbound_local, (N,)),
    (inl_args6, (N,)),
    (inl_star, (N,)),
))
def test_inline(f, args, kwargs):
    check(f, *args, **kwargs)


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


# ---------------------------------------------------------------- 4. CallClass

class P:
    def __init__(self, x, y=0):
        if x % 2:
            self.b = y
        self.a = x
        if x % 3 == 0:
            self.c = x * 1.5


def cls_dict_order(n):
    out = []
    for i in range(n):
        p = P(i, i + 1)
        out.append(tuple(vars(p)))
        out.append(list(p.__dict__.items()))
    return out[-12:], len(set(map(tuple, out[::2])))


class P2:
    def __init__(self, x):
        self.x = x


def p2_other_init(self, x):
    self.y = -x
    self.x = 0


def p2_code_init(self, x):
    self.z = x * 7


P2_INIT = P2.__init__
P2_CODE = P2.__init__.__code__


def cls_init_code_replaced(n):
    P2.__init__.__code__ = P2_CODE
    out = []
    try:
        for i in range(n):
            p = P2(i)
            out.append(sorted(vars(p).items()))
            if i == n // 2:
                P2.__init__.__code__ = p2_code_init.__code__
    finally:
        P2.__init__.__code__ = P2_CODE
    return out[n // 2 - 2: n // 2 + 3], out[-1]


class P3:
    def __init__(self, x, y=10):
        self.v = x + y


def cls_init_defaults_changed(n):
    P3.__init__.__defaults__ = (10,)
    t = 0
    try:
        for i in range(n):
            t += P3(i).v
            if i == n // 2:
                P3.__init__.__defaults__ = (1000,)
    finally:
        P3.__init__.__defaults__ = (10,)
    return t


def cls_init_reassigned(n):
    P2.__init__ = P2_INIT
    out = []
    try:
        for i in range(n):
            out.append(sorted(vars(P2(i)).items()))
            if i == n // 2:
                P2.__init__ = p2_other_init
    finally:
        P2.__init__ = P2_INIT
    return out[n // 2 - 1: n // 2 + 3]


class Base4:
    def __init__(self, x):
        self.x = x


class Sub4(Base4):
    pass


def cls_base_init_reassigned(n):
    Base4.__init__ = P2_INIT
    out = []
    try:
        for i in range(n):
            out.append(sorted(vars(Sub4(i)).items()))
            if i == n // 2:
                Base4.__init__ = p2_other_init
    finally:
        Base4.__init__ = P2_INIT
    return out[n // 2 - 1: n // 2 + 3]


def cls_new_added(n):
    class C:
        def __init__(self, x):
            self.x = x
    out = []
    for i in range(n):
        out.append(repr(C(i).__dict__))
        if i == n // 2:
            C.__new__ = lambda cls, x: "not an instance"
    return out[n // 2 - 1: n // 2 + 3]


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a):
        self.a = a
        if a % 2:
            self.b = -a


def cls_slots(n):
    out = []
    for i in range(n):
        s = Slotted(i)
        out.append((s.a, getattr(s, "b", None)))
    return out[-5:]


class InitSub:
    seen = []

    def __init_subclass__(cls, **kw):
        InitSub.seen.append(cls.__name__)


class ISChild(InitSub):
    def __init__(self, v):
        self.v = v


def cls_init_subclass(n):
    return sum(ISChild(i).v for i in range(n))


class Cattr:
    k = 1

    def __init__(self, x):
        self.x = x * Cattr.k


def cls_attr_changed(n):
    Cattr.k = 1
    t = 0
    for i in range(n):
        t += Cattr(i).x
        if i == n // 2:
            Cattr.k = 3
    Cattr.k = 1
    return t


class Other:
    def __init__(self, x):
        self.x = x

    def tag(self):
        return "other"


class Mine:
    def __init__(self, x):
        self.x = x
        if x % 10 == 0:
            self.__class__ = Other

    def tag(self):
        return "mine"


def cls_class_reassigned(n):
    out = []
    for i in range(n):
        o = Mine(i)
        out.append(o.tag())
    return out.count("other"), out[-11:]


class Pk:
    def __init__(self, a, b):
        self.b = b
        self.a = a


def cls_pickle_copy(n):
    out = []
    for i in range(n):
        p = Pk(i, str(i))
        if i % 500 == 0:
            q = pickle.loads(pickle.dumps(p))
            r = copy.copy(p)
            out.append((vars(q), vars(r), list(copy.deepcopy(p).__dict__)))
    return out


@dataclasses.dataclass
class DC:
    a: int
    b: float = 0.5


def cls_dataclass(n):
    t = 0
    out = None
    for i in range(n):
        d = DC(i)
        t += d.a + d.b
        out = d
    return t, repr(out), dataclasses.asdict(out)


class Raiser:
    def __init__(self, x):
        self.x = x
        if x % 100 == 7:
            raise ValueError(x)


def cls_init_raises(n):
    c = 0
    for i in range(n):
        try:
            Raiser(i)
        except ValueError as e:
            c += e.args[0]
    return c


def cls_init_raises_tb(n):
    for i in range(n):
        try:
            Raiser(i)
        except ValueError as e:
            return [fr.name for fr in traceback.extract_tb(e.__traceback__)], i


DELLOG = []


class WithDel:
    def __init__(self, x):
        self.x = x

    def __del__(self):
        DELLOG.append(self.x)


def cls_del(n):
    DELLOG.clear()
    for i in range(n):
        w = WithDel(i)
        if i % 2:
            w = None
    del w
    r = (len(DELLOG), DELLOG[:5], DELLOG[-3:])
    DELLOG.clear()
    return r


class SuperExplicit(Base4):
    def __init__(self, x):
        Base4.__init__(self, x)
        self.y = x + 1


class SuperTwoArg(Base4):
    def __init__(self, x):
        super(SuperTwoArg, self).__init__(x)
        self.y = x + 1


def cls_inherit(n):
    t = []
    for i in range(n):
        a = SuperExplicit(i)
        b = SuperTwoArg(i)
        t.append((list(vars(a)), list(vars(b))))
    return t[-1], len(t)


class KwInit:
    def __init__(self, a, *args, k=3, **kw):
        self.a = a
        self.args = args
        self.k = k
        self.kw = kw


def cls_kw(n):
    out = []
    for i in range(n):
        out.append(vars(KwInit(i, 1, 2, k=i, z=1)))
        out.append(vars(KwInit(i)))
    return out[-4:]


class BadInit:
    def __init__(self, x):
        self.x = x
        return x if x % 50 == 49 else None


def cls_bad_return(n):
    c = 0
    for i in range(n):
        try:
            BadInit(i)
        except TypeError as e:
            c += 1
            msg = str(e)
    return c, msg


class Attr1:
    def __init__(self, x):
        self.a = x


def cls_extra_attrs_after(n):
    out = []
    for i in range(n):
        o = Attr1(i)
        if i % 3 == 0:
            o.z = 1
        o.b = 2
        del o.a
        o.a = 3
        out.append(list(vars(o)))
    return out[-3:]


def cls_weakref_gc(n):
    import weakref
    refs = []
    for i in range(n):
        o = Attr1(i)
        refs.append(weakref.ref(o))
    return sum(r() is None for r in refs)


@pytest.mark.parametrize("f,args,kwargs", cases(
    (cls_dict_order, (N,)),
    (cls_init_code_replaced, (N,)),
    (cls_init_defaults_changed, (N,)),
    (cls_init_reassigned, (N,)),
    (cls_base_init_reassigned, (N,)),
    (cls_slots, (N,)),
    (cls_init_subclass, (N,)),
    (cls_attr_changed, (N,)),
    (cls_class_reassigned, (N,)),
    (cls_pickle_copy, (N,)),
    (cls_dataclass, (N,)),
    (cls_init_raises, (N,)),
    (cls_init_raises_tb, (N,)),
    (cls_inherit, (N,)),
    (cls_kw, (N,)),
    (cls_bad_return, (N,)),
    (cls_extra_attrs_after, (N,)),
    (cls_weakref_gc, (N,)),
))
def test_call_class(f, args, kwargs):
    check(f, *args, **kwargs)


def test_del_releases_at_once():
    check(cls_del, N)


@pytest.mark.parametrize("f,args,kwargs", cases((cls_new_added, (N,)),))
def test_call_class_agrees(f, args, kwargs):
    check_agrees(f, *args, **kwargs)


# ---------------------------------------------------------------- 5. StoreSubscr / dict lookups / str()

class LSub(list):
    def __setitem__(self, i, v):
        super(LSub, self).__setitem__(i, v * 2 if isinstance(v, int) else v)

    def __getitem__(self, i):
        return ("got", list.__getitem__(self, i))


class DSub(dict):
    def __missing__(self, k):
        return "missing:%r" % (k,)

    def __setitem__(self, k, v):
        dict.__setitem__(self, k, (v, "sub"))


class Idx:
    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


def sub_store_mix(n, containers):
    out = []
    for i in range(n):
        c = containers[i % len(containers)]
        k = i % 4
        try:
            c[k] = i
        except Exception as e:  # noqa: BLE001
            out.append(type(e).__name__)
    for c in containers:
        try:
            out.append(repr(c))
        except Exception:  # noqa: BLE001
            out.append("?")
    return out[-20:]


def sub_store_indices(n):
    xs = [0] * 5
    out = []
    idxs = [0, -1, -5, 4, True, False, Idx(2), Idx(-2), 5, -6, 2 ** 70, -(2 ** 70), 1.0, "a", Idx(10)]
    for i in range(n):
        k = idxs[i % len(idxs)]
        try:
            xs[k] = i
        except (IndexError, TypeError) as e:
            out.append(str(e))
    return xs, out[-15:]


class H:
    calls = [0, 0]

    def __init__(self, v):
        self.v = v

    def __hash__(self):
        H.calls[0] += 1
        return hash(self.v)

    def __eq__(self, o):
        H.calls[1] += 1
        return isinstance(o, H) and o.v == self.v


def sub_dict_custom_keys(n):
    H.calls[:] = [0, 0]
    d = {}
    keys = [H(i % 10) for i in range(20)]
    for i in range(n):
        k = keys[i % 20]
        d[k] = d.get(k, 0) + 1
        d[k] = d[k] + 1
    r = sorted((k.v, v) for k, v in d.items()), list(H.calls)
    return r


def sub_dict_mixed_keys(n):
    d = {1: "int", 1.0: "float?", "1": "str", (1,): "tuple", True: "bool", None: "none"}
    keys = [1, 1.0, "1", (1,), True, None, 2, "2", 10 ** 20, 2.5, frozenset(), -1]
    out = []
    for i in range(n):
        k = keys[i % len(keys)]
        try:
            out.append(d[k])
        except KeyError as e:
            out.append("KE" + repr(e.args))
        if i % 7 == 0:
            d["x" + str(i % 3)] = i
    return out[-24:], d


def sub_dict_unhashable(n):
    d = {}
    c = 0
    for i in range(n):
        k = [i] if i % 50 == 0 else i
        try:
            d[k] = i
            c += d[k]
        except TypeError as e:
            c -= 1
            msg = str(e)
    return c, msg, len(d)


class StrKey(str):
    def __hash__(self):
        return 42

    def __eq__(self, o):
        return True


def sub_dict_strsub_keys(n):
    d = {"a": 1, "b": 2}
    out = []
    for i in range(n):
        k = "a" if i % 3 else StrKey("zz")
        try:
            out.append(d[k])
        except KeyError:
            out.append(None)
    return out[-6:]


def sub_dict_mutated_in_eq(n):
    class Evil:
        def __hash__(self):
            return 1

        def __eq__(self, o):
            d.clear()
            return False
    d = {}
    out = []
    for i in range(n):
        d[i % 5] = i
        d[1] = i
        if i % 100 == 0:
            try:
                out.append(d[Evil()])
            except KeyError:
                out.append(len(d))
    return out[-5:]


def sub_list_del_during(n):
    log = []

    class Dd:
        def __init__(self, v):
            self.v = v

        def __del__(self):
            log.append(len(xs))
    xs = [Dd(i) for i in range(4)]
    for i in range(n):
        xs[i % 4] = Dd(i)
        if i % 300 == 0:
            xs.append(0)
            xs.pop()
    return len(log), log[-3:]


class WeirdStr:
    def __init__(self, i):
        self.i = i

    def __str__(self):
        if self.i % 4 == 0:
            return "s%d" % self.i
        if self.i % 4 == 1:
            return MyStr("m%d" % self.i)
        if self.i % 4 == 2:
            raise RuntimeError("no str")
        return 5


class MyStr(str):
    pass


def str_weird(n):
    out = []
    for i in range(n):
        try:
            s = str(WeirdStr(i))
            out.append((type(s).__name__, s))
        except Exception as e:  # noqa: BLE001
            out.append((type(e).__name__, str(e)))
    return out[-8:]


def str_various(n):
    vals = [1, 2.5, 10 ** 30, None, True, b"x", (1,), [2], {3: 4}, "s", MyStr("q"), 1j, ..., str, Ellipsis]
    out = []
    for i in range(n):
        out.append(str(vals[i % len(vals)]))
    return out[-15:]


def str_kw_and_multi(n):
    out = []
    for i in range(n):
        out.append(str(b"ab%d" % (i % 10), "ascii"))
        out.append(str(object=i))
        out.append(str())
        if i % 10 == 0:
            try:
                out.append(str(b"\xff", "utf-8"))
            except UnicodeDecodeError as e:
                out.append(e.reason)
    return out[-8:]


def str_shadowed_local(n):
    out = []
    str_ = str
    for i in range(n):
        f = str_ if i % 2 else repr
        out.append(f("a" if i % 3 else i))
    return out[-6:]


def str_rebuilt_builtin(n):
    import builtins
    orig = builtins.str
    out = []
    try:
        for i in range(n):
            out.append(str(i))
            if i == n // 2:
                builtins.str = lambda x: "X"
    finally:
        builtins.str = orig
    return out[n // 2 - 1: n // 2 + 3]


def str_global_shadow(n):
    global str
    out = []
    try:
        for i in range(n):
            out.append(str(i))
            if i == n // 2:
                str = lambda x: "G"  # noqa: E731
    finally:
        del str
    return out[n // 2 - 1: n // 2 + 3]


def builtin_classes_in_loop(n):
    out = []
    for i in range(n):
        out.append(int(str(i)) + len(tuple(range(i % 3))) + float(i) + bool(i % 2))
        out.append(type(i).__name__)
        out.append(len(list(filter(None, [i, 0, 1]))))
        try:
            int("x%d" % i)
        except ValueError:
            out.append(-1)
    return out[-8:], sum(x for x in out if isinstance(x, (int, float)))


def builtin_class_user_code(n):
    class It:
        def __init__(self, k):
            self.k = k

        def __iter__(self):
            return iter(range(self.k))
    t = 0
    for i in range(n):
        t += sum(list(It(i % 5)))
        t += len(dict(zip("abc", It(3))))
    return t


def builtin_class_exception_types(n):
    out = []
    for i in range(n):
        e = ValueError(i)
        k = KeyError("k")
        out.append((str(e), repr(k), str(k)))
    return out[-2:]


@pytest.mark.parametrize("f,args,kwargs", cases(
    (sub_store_mix, (N, [[0] * 4, {}, LSub([0] * 4), DSub(), (0,) * 4, bytearray(4), [0]])),
    (sub_store_indices, (N,)),
    (sub_dict_custom_keys, (N,)),
    (sub_dict_mixed_keys, (N,)),
    (sub_dict_unhashable, (N,)),
    (sub_dict_strsub_keys, (N,)),
    (sub_dict_mutated_in_eq, (N,)),
    (sub_list_del_during, (N,)),
    (str_weird, (N,)),
    (str_various, (N,)),
    (str_kw_and_multi, (N,)),
    (str_shadowed_local, (N,)),
    (str_rebuilt_builtin, (N,)),
    (str_global_shadow, (N,)),
    (builtin_classes_in_loop, (N,)),
    (builtin_class_user_code, (N,)),
    (builtin_class_exception_types, (N,)),
))
def test_subscr_str(f, args, kwargs):
    check(f, *args, **kwargs)


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


# ---------------------------------------------------------------- more CallClass / insertion order

class Ord:
    def __init__(self, x, flag):
        if flag == 0:
            self.a = x
            self.b = x
            self.c = x
        elif flag == 1:
            self.c = x
            self.a = x
            self.b = x
        elif flag == 2:
            self.b = x
            d = self.__dict__
            self.c = len(d)
            self.a = x
        else:
            self.__dict__.update(z=1)
            self.b = x
            self.a = x


def ord_mixed(n):
    out = []
    for i in range(n):
        o = Ord(i, i % 4)
        o.c = 0
        out.append(list(vars(o)))
    pre = Ord(1, 1)
    out.append(list(vars(pre)))
    return out[-5:]


def ord_args_types(n):
    vals = [1, 1.5, "s", None, 10 ** 30, [1], True]
    out = []
    for i in range(n):
        o = Ord(vals[i % len(vals)], i % 3)
        out.append(repr(sorted(vars(o).items())))
    return out[-7:]


class Many:
    def __init__(self, k):
        for j in range(k):
            setattr(self, "a%d" % j, j)
        self.last = k


def ord_many_attrs(n):
    out = []
    for i in range(n // 10):
        o = Many(i % 40)
        o.extra = 1
        out.append(list(vars(o))[-3:])
    return out[-3:]


def ord_dict_replaced(n):
    out = []
    for i in range(n):
        o = Attr1(i)
        if i % 2:
            o.__dict__ = {"q": 1}
        o.b = 2
        out.append(list(vars(o)))
    return out[-2:]


@pytest.mark.parametrize("f,args,kwargs", cases(
    (ord_mixed, (N,)),
    (ord_args_types, (N,)),
    (ord_many_attrs, (N,)),
    (ord_dict_replaced, (N,)),
))
def test_order(f, args, kwargs):
    check(f, *args, **kwargs)


# ---------------------------------------------------------------- refcount leaks through inlined callees / CallClass

def small_hold_raise(o, k):
    t = (o, o)
    if k % 3 == 0:
        raise ValueError(t[0] is o)
    return len(t)


def leak_inline_raise(o, n):
    c = 0
    for i in range(n):
        try:
            c += small_hold_raise(o, i)
        except ValueError:
            c -= 1
    return c


class Holder:
    def __init__(self, o, k):
        self.o = o
        self.p = [o]
        if k % 5 == 0:
            raise KeyError(k)


def leak_class_raise(o, n):
    c = 0
    keep = []
    for i in range(n):
        try:
            h = Holder(o, i)
            if i % 7 == 0:
                keep.append(h)
        except KeyError:
            c += 1
    keep.clear()
    return c


def small_str_of(o):
    return str(o)


def leak_str(o, n):
    t = 0
    for i in range(n):
        t += len(small_str_of(o))
        d = {o: i}
        d[o] = d[o] + 1
        xs = [None]
        xs[0] = o
        xs[-1] = o
    return t


@pytest.mark.parametrize("fn", [leak_inline_raise, leak_class_raise, leak_str])
def test_refleaks(fn):
    w = tiered(fn)
    o = ("leak", "probe", 12345)
    w(o, N)
    before = sys.getrefcount(o)
    for _ in range(3):
        w(o, N)
    assert sys.getrefcount(o) == before
    assert w(o, N) == fn(o, N)


# ---------------------------------------------------------------- f64 view of cached registers

def f64_alternate(n):
    x = 0.0
    out = []
    for i in range(n):
        x = x + 0.5
        if i % 2:
            x = i // 3
        x = x * 1.5 if i % 5 else x - 1
        if i % 7 == 0:
            x = -0.0
        out.append(repr(x))
    return out[-10:]


def f64_bool_mix(n):
    x = 0.0
    c = 0
    for i in range(n):
        b = x > 3.0
        x = x + 1.25
        if b:
            x = b
            c += x
            x = 0.0
    return c, x


def f64_nan_inf(n):
    x = 1.0
    out = []
    for i in range(n):
        x = x * 10.0
        if x == float("inf"):
            y = x - x
            out.append((repr(y), y == y, repr(x)))
            x = 1.0
    return out[-3:], len(out)


def f64_int_float_same_reg(n):
    s = 0
    for i in range(n):
        v = i
        s = s + v
        v = i + 0.25
        s = s + v
        v = 2 ** 64 + i
        s = s - v
    return s


@pytest.mark.parametrize("f,args,kwargs", cases(
    (f64_alternate, (N,)),
    (f64_bool_mix, (N,)),
    (f64_nan_inf, (N,)),
    (f64_int_float_same_reg, (N,)),
))
def test_f64(f, args, kwargs):
    check(f, *args, **kwargs)


# ---------------------------------------------------------------- dict lookups with tricky int/str keys

def dict_int_hash_edges(n):
    M = 2 ** 61 - 1
    ks = [-1, -2, 0, M, M + 1, -M, -M - 1, 2 ** 62 - 1, -(2 ** 62), 2 ** 63 - 1, -(2 ** 63), 1, 2.0]
    d = {k: i for i, k in enumerate(ks)}
    d[True] = "T"
    out = []
    for i in range(n):
        j = i % len(ks)
        k = ks[j] + 0 if isinstance(ks[j], int) else ks[j]
        k2 = (k - 1) + 1 if isinstance(k, int) else k
        try:
            out.append(d[k2])
        except KeyError as e:
            out.append(("KE", e.args))
        try:
            out.append(d[i - i - 1])
            out.append(d[i - i + M])
            out.append(d[i - i + 1])
        except KeyError as e:
            out.append(("KE2", e.args))
    return out[-30:]


def dict_fresh_str_keys(n):
    d = {"a0": 0, "a1": 1, "a2": 2}
    t = 0
    for i in range(n):
        k = "a" + str(i % 4)
        try:
            t += d[k]
        except KeyError:
            t -= 1
        d["b" + str(i % 5)] = i
    return t, sorted(d.items())


def store_index_side_effect(n):
    class Shrink:
        def __index__(self):
            xs.clear()
            return 0
    out = []
    for i in range(n):
        xs = [1, 2, 3]
        try:
            xs[Shrink() if i % 10 == 0 else i % 3] = i
        except IndexError as e:
            out.append(str(e))
        out.append(len(xs))
    return out[-12:]


@pytest.mark.parametrize("f,args,kwargs", cases(
    (dict_int_hash_edges, (N,)),
    (dict_fresh_str_keys, (N,)),
    (store_index_side_effect, (N,)),
))
def test_dict_edges(f, args, kwargs):
    check(f, *args, **kwargs)
