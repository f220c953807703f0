"""Adversarial differential tests of the newer native paths: registers cached in machine
registers (and their f64 view) and inlined callees, with the references they hold.
Written by a review that tried to break them; each case must agree with CPython on every
tier. The trampoline, generators and exception state are in test_adversarial_calls.py;
class instantiation, subscript stores, dict lookups and str() in
test_adversarial_objects.py."""
import sys
import traceback

import pytest

from harness import cases, check
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
