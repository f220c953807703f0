"""Binary, in-place and unary arithmetic, differential against CPython.

Operands are passed as arguments (never constants) so the compiler cannot fold
them: the op really runs in tier 1.
"""

import pytest

from harness import cases, check, counted_ops, fresh, native_default_only
from tiered import tiered

INF = float("inf")
NAN = float("nan")


# --- binary operators ------------------------------------------------------

def op_add(a, b):
    return a + b


def op_sub(a, b):
    return a - b


def op_mul(a, b):
    return a * b


def op_truediv(a, b):
    return a / b


def op_floordiv(a, b):
    return a // b


def op_mod(a, b):
    return a % b


def op_pow(a, b):
    return a ** b


def op_lshift(a, b):
    return a << b


def op_rshift(a, b):
    return a >> b


def op_and(a, b):
    return a & b


def op_or(a, b):
    return a | b


def op_xor(a, b):
    return a ^ b


def op_matmul(a, b):
    return a @ b


# --- in-place operators ----------------------------------------------------

def iop_add(a, b):
    a += b
    return a


def iop_sub(a, b):
    a -= b
    return a


def iop_mul(a, b):
    a *= b
    return a


def iop_truediv(a, b):
    a /= b
    return a


def iop_floordiv(a, b):
    a //= b
    return a


def iop_mod(a, b):
    a %= b
    return a


def iop_pow(a, b):
    a **= b
    return a


def iop_lshift(a, b):
    a <<= b
    return a


def iop_rshift(a, b):
    a >>= b
    return a


def iop_and(a, b):
    a &= b
    return a


def iop_or(a, b):
    a |= b
    return a


def iop_xor(a, b):
    a ^= b
    return a


def iop_matmul(a, b):
    a @= b
    return a


# Operand pairs that are safe (fast, finite memory) for every operator except
# ** and the shifts, which get their own tables below.
COMMON = [
    # small ints, signs, zero divisors
    (7, 3), (-7, 3), (7, -3), (-7, -3), (0, 5), (5, 0), (0, 0), (-1, 1),
    # i64 boundaries and big ints
    (2**63 - 1, 1), (-2**63, 1), (-2**63, -1), (2**63 - 1, 2**63 - 1), (2**62, 4),
    (-2**63, 2**63), (-2**63 - 1, 1), (2**63, -1), (2**100, 3), (-(2**100), 2**64 + 1),
    (3, 2**100), (2**64, 2**64), (-(2**64), 7), (12345678901234567890, 0),
    # bools
    (True, True), (True, False), (False, 3), (True, 2.0), (False, False),
    # floats
    (7.5, 2.0), (-7.5, 2.0), (7.5, -2.0), (1.0, 0.0), (0.0, 0.0), (-0.0, 1.0), (0.0, -1.0),
    (-0.0, -0.0), (INF, 2.0), (-1.0, INF), (INF, INF), (INF, -INF), (NAN, 1.0), (1e308, 10.0),
    (5.0, 0), (-5.5, 0.5), (0.1, 0.2),
    # mixed int/float
    (7, 2.5), (2.5, 7), (2**80, 1.5), (-1, INF), (1, 0.0), (-0.0, 1), (0.0, -1), (2**1100, 1.0),
    # complex
    (1 + 2j, 3), (1j, 1j), (2, 0j),
    # sequences and other objects
    ("ab", "cd"), ("ab", 3), (3, "ab"), ("ab", -1), ([1, 2], [3]), ([1], 2), (0, [1]),
    ((1,), (2, 3)), ((1,), 0), ("ab", None), (None, None), ("%s-%s", ("x", 1)),
    ("%d%%", 5), (b"ab", b"c"), (b"ab", 2), ({1, 2}, {2, 3}), (frozenset({1}), {1, 2}),
    ({1: 2}, {3: 4, 1: 5}), ("ab", [1]), (bytearray(b"x"), b"y"),
]

BINARY = [op_add, op_sub, op_mul, op_truediv, op_floordiv, op_mod, op_and, op_or, op_xor]

POW = [
    (2, 10), (2, 62), (2, 63), (2, 64), (-2, 63), (-2, 64), (3, 40), (0, 0), (0, -1),
    (0.0, -1), (0, -1.5), (2, -1), (-8, 1 / 3), (-8.0, 0.5), (2.0, 0.5), (10, 400),
    (2.0, 1024), (1e308, 2), (NAN, 0), (1, NAN), (-1, INF), (True, True), (2, True),
    (7, 2.5), (2**100, 2), (-2**63, 1), ("a", 2), (1j, 2), (-1, 0.5), (0, 0.0),
    (-0.0, 3), (-0.0, -1), (2, 100), (None, 2), (2**63 - 1, 2),
]

SHIFTS = [
    (1, 0), (1, 62), (1, 63), (1, 64), (-1, 63), (2**62, 1), (-(2**62), 2), (5, -1),
    (2**100, 3), (-7, 1), (7, 100), (-7, 100), (True, 1), (1.0, 1), (1, 1.0), (0, 2**64),
    (1, 200), (-1, 0), (2**63 - 1, 1), (-2**63, 1), (3, True),
    ("a", 1), (5, -2**70),
]


class Mat:
    """Only @ is defined: __matmul__/__rmatmul__/__imatmul__ log their use."""

    def __init__(self, v):
        self.v = v

    def __matmul__(self, other):
        if isinstance(other, Mat):
            return Mat(self.v * other.v)
        if isinstance(other, int):
            return Mat(self.v + other)
        return NotImplemented

    def __rmatmul__(self, other):
        if isinstance(other, int):
            return Mat(other - self.v)
        return NotImplemented

    def __repr__(self):
        return f"Mat({self.v!r})"


class IMat(Mat):
    def __imatmul__(self, other):
        self.v = ("imatmul", self.v, getattr(other, "v", other))
        return self


MATMUL = [
    (Mat(2), Mat(3)), (Mat(2), 5), (5, Mat(2)), (Mat(2), "x"), ("x", Mat(2)), (2, 3),
    (IMat(1), Mat(4)), ([1], [2]), (1.5, Mat(1)),
]

INPLACE = [iop_add, iop_sub, iop_mul, iop_truediv, iop_floordiv, iop_mod, iop_and, iop_or, iop_xor]

INPLACE_PAIRS = [
    (7, 3), (2**63 - 1, 1), (-2**63, -1), (2**100, 7), (7.5, 2.0), (-0.0, 1.0), (1, 0), (1.0, 0.0),
    (True, True), (7, 2.5), ([1, 2], [3]), ([1], "xy"), ([1], (2,)), ([1], 3), ([1, 2], 0),
    ((1,), (2,)), ("ab", "c"), ("ab", 2), ({1, 2}, {2, 3}), ({1: 2}, {3: 4}), ({1: 2}, [(5, 6)]),
    (bytearray(b"a"), b"b"), (NAN, 1.0), (None, 1), ("a", 1),
]


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op, pair) for op in BINARY for pair in COMMON]))
def test_binary(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op_pow, p) for p in POW], *[(iop_pow, p) for p in POW[:12]]))
def test_pow(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op, p) for op in (op_lshift, op_rshift, iop_lshift, iop_rshift)
                                                  for p in SHIFTS]))
def test_shifts(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op, p) for op in (op_matmul, iop_matmul) for p in MATMUL]))
def test_matmul(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op, p) for op in INPLACE for p in INPLACE_PAIRS]))
def test_inplace(f, args, kwargs):
    check(f, *args, **kwargs)


# --- unary -----------------------------------------------------------------

def un_neg(a):
    return -a


def un_pos(a):
    return +a


def un_inv(a):
    return ~a


def un_not(a):
    return not a


class Unary:
    def __neg__(self):
        return "neg"

    def __pos__(self):
        return "pos"

    def __invert__(self):
        return "inv"


UNARY_VALUES = [
    0, 1, -1, 7, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**100, True, False, 0.0, -0.0, 1.5,
    INF, -INF, NAN, 1 + 2j, "s", None, [1], Unary(), 3.0e-320,
]


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op, (v,)) for op in (un_neg, un_pos, un_inv, un_not)
                                                  for v in UNARY_VALUES]))
def test_unary(f, args, kwargs):
    check(f, *args, **kwargs)


# --- overflow inside loops (quickened int op must promote, not wrap) -------

def add_loop(start, step, n):
    x = start
    out = []
    for _ in range(n):
        x = x + step
        out.append(x)
    return out


def mul_loop(start, factor, n):
    x = start
    for _ in range(n):
        x = x * factor
    return x


def sub_loop(start, n):
    x = start
    for _ in range(n):
        x -= 1
    return x


def neg_loop(values):
    return [-v for v in values]


def mixed_loop(pairs):
    # operand types change from one iteration to the next: quickened ops must
    # fall back to the generic op each time the guess is wrong
    out = []
    for a, b in pairs:
        out.append(a + b)
        out.append(a * b)
    return out


def float_accumulate(n):
    acc = 0.0
    for i in range(n):
        acc += i * 0.1
        acc -= 0.05
    return acc


def int_then_float(n):
    x = 0
    for i in range(n):
        if i == n // 2:
            x = x + 0.5
        x = x + i
    return x


def divmod_loop(values, d):
    out = []
    for v in values:
        out.append((v // d, v % d, v / d))
    return out


def collatz(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def bigint_fact(n):
    r = 1
    for i in range(2, n + 1):
        r *= i
    return r


def abs_diff_sum(xs):
    s = 0
    for i in range(len(xs) - 1):
        d = xs[i + 1] - xs[i]
        s += d if d >= 0 else -d
    return s


def bit_tricks(x):
    return (x & -x, x | (x - 1), x ^ (x >> 1), ~x & 0xFF, (x << 3) >> 2)


def float_special(a):
    return (a * 0, 0 * a, a - a, a * -1, -a + 0.0, a / 1, 0.0 * -1, -0.0 * 1, -0.0 + 0.0, -0.0 - 0.0,
            -1 // INF, 1 // -INF, -1 % INF, 1 % -INF, -0.0 % 5, 5.0 % -0.5)


def nan_math(n):
    return (n + 1, n * 0, n - n, n ** 0, 1 ** n, n == n, n != n, n < 1, n >= 1)


LOOPS = cases(
    (add_loop, (2**63 - 5, 1, 10)),
    (add_loop, (-2**63 + 5, -1, 10)),
    (add_loop, (0, 2**62, 5)),
    (add_loop, (0, 0.5, 5)),
    (add_loop, ("", "ab", 3)),
    (mul_loop, (3, 3, 50)),
    (mul_loop, (-2, -2, 70)),
    (mul_loop, (1.5, 1.5, 10)),
    (mul_loop, (2**62, 2, 3)),
    (sub_loop, (-2**63 + 3, 10)),
    (neg_loop, ([1, -2**63, 2**63, 0.0, True],)),
    (mixed_loop, ([(1, 2), (1.5, 2), (2**64, 2), ("a", 2), ([1], 2), (True, False), (1, 2)],)),
    (mixed_loop, ([(1, 2)] * 20 + [(2**62, 4)] + [(1.0, 2)],)),
    (mixed_loop, ([(1, 2), (3, 4), ("x", None)],)),
    (float_accumulate, (1000,)),
    (int_then_float, (10,)),
    (divmod_loop, ([7, -7, 2**70, -(2**70), 7.5, -0.0, True], 3)),
    (divmod_loop, ([7, -7, 0.5], -2)),
    (divmod_loop, ([1, 2], 0)),
    (divmod_loop, ([1.0], 0.0)),
    (collatz, (27,)),
    (collatz, (2**70 + 1,)),
    (bigint_fact, (30,)),
    (abs_diff_sum, ([3, 1, 4, 1, 5, 9, 2, 6, 2**64, -2**64],)),
    (bit_tricks, (12,)),
    (bit_tricks, (-12,)),
    (bit_tricks, (2**64 + 8,)),
    (bit_tricks, (0,)),
    (float_special, (1.0,)),
    (float_special, (-2.5,)),
    (float_special, (0.0,)),
    (nan_math, (NAN,)),
    (nan_math, (INF,)),
    (nan_math, (1.0,)),
)


@pytest.mark.parametrize("f,args,kwargs", LOOPS)
def test_arith_loops(f, args, kwargs):
    check(f, *args, **kwargs)


# --- builtins on numbers ---------------------------------------------------

def numeric_builtins(a, b):
    return (divmod(a, b), pow(a, b, 7) if isinstance(a, int) and isinstance(b, int) and b >= 0 else None,
            abs(a), round(a / b, 3), int(a / b), float(a), a.__add__(b), a.__radd__(b))


def pow3(a, b, m):
    return pow(a, b, m)


BUILTINS = cases(
    (numeric_builtins, (7, 3)),
    (numeric_builtins, (-7, 3)),
    (numeric_builtins, (2**70, 3)),
    (numeric_builtins, (7.0, 2)),
    (numeric_builtins, (7, 0)),
    (pow3, (2, 100, 13)),
    (pow3, (2, -1, 7)),
    (pow3, (2, -1, 4)),
    (pow3, (2, 3, 0)),
    (pow3, (2.0, 3, 5)),
)


@pytest.mark.parametrize("f,args,kwargs", BUILTINS)
def test_numeric_builtins(f, args, kwargs):
    check(f, *args, **kwargs)


# --- one site meeting ints and floats (BinaryNumber) -----------------------

def mixed_site(pairs):
    # Each operator site sees int op int, int op float, float op int and float op float
    # in turn (raytrace's vectors have int and float components): quickened as either
    # kind first, it widens to both.
    out = []
    for a, b in pairs:
        out.append((a + b, a - b, a * b, a / b if b else None))
    return out


MIXED = [
    (3, 4), (3, 0.5), (0.5, 3), (1.5, 2.5),
    (2**62, 2**62), (2**62, 2.0), (-(2**63), -1), (2**53 + 1, 1.0), (2**53 + 1, 3),
    (7, -0.0), (-0.0, 0), (NAN, 1), (1, INF), (INF, -INF), (True, 2.5), (2, False),
    (10**30, 1.5), (3, 10**30), (-5, 2), (5, -2.0),
]


@pytest.mark.parametrize("f,args,kwargs", cases(
    (mixed_site, (MIXED,)), (mixed_site, (MIXED[::-1],)), (mixed_site, ([(1, 2)] * 30 + [(1.0, 2)] * 30 + [(3, 4)] * 5,)),
    (mixed_site, ([(0.5, 0.25)] * 30 + [(2, 3)] * 30 + [(1, "x")],)),
))
def test_sites_mixing_ints_and_floats(f, args, kwargs):
    check(f, *args, **kwargs)


class Vec:
    """A user type's `+` and unary `-`, raising for some operands."""

    def __init__(self, x):
        self.x = x

    def __add__(self, o):
        if o == 0:
            raise ValueError("zero")
        return Vec(self.x + o)

    def __neg__(self):
        if self.x < 0:
            raise ArithmeticError("negative")
        return Vec(-self.x)

    def __repr__(self):
        return f"Vec({self.x})"


def generic_ops_loop(n):
    # Sites no variant fits, in a loop (BinaryGeneric, Unary of objects): strs grown in
    # place and copied, lists, big ints, a user type raising inside `try`.
    out = []
    s = ""
    t = ""
    lst = []
    for i in range(n):
        s += str(i)
        t = s + "!"
        lst = lst + [i]
        big = 2**70 + i
        out.append((-big, ~big, +big, big * big, big - i, big ** 2, divmod(big, 7)))
        try:
            out.append(repr(-Vec(i - 2)))
        except ArithmeticError as e:
            out.append(str(e))
        try:
            out.append(repr(Vec(i) + (i % 3)))
        except ValueError as e:
            out.append(str(e))
    return s, t, lst, out


def test_generic_sites_in_a_loop():
    check(generic_ops_loop, 7)


def test_settled_generic_operators_stay_native():
    # A Binary site that observed its operands and found no variant calls the number
    # protocol directly from native code; Unary of an object likewise.
    import os
    import types

    from tiered import tiered

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")

    def ops(xs, big):
        return xs + [1], big * big, -big, xs * 2

    fresh = types.FunctionType(ops.__code__.replace(co_name="ops_counted"), ops.__globals__)
    w = tiered(fresh, strict=True)

    def warm_up():
        for _ in range(60):
            assert w([0], 2**70) == ops([0], 2**70)

    def measured():
        for _ in range(10):
            w([0], 2**70)

    counts = counted_ops(warm_up, measured)
    assert counts["Binary"] == {"tier1": 0, "tier2": 30, "deopts": 0}, counts["Binary"]
    assert counts["Unary"] == {"tier1": 0, "tier2": 10, "deopts": 0}, counts["Unary"]


class Text(str):
    pass


def str_concatenation_loop(n):
    # Settled generic `+` of strs (BinaryGeneric): temporaries appended to in place (held
    # by nothing else), constants and kept strs copied, `s + s`, non-ASCII widening, a
    # str subclass on either side, and a non-str right operand (TypeError).
    out = []
    kept = []
    for i in range(n):
        tag = "t" + str(i)
        out.append("<" + tag)
        out.append("</" + tag + ">")
        k = str(i) * 2
        kept.append(k)
        out.append(k + "-")
        s = str(i) * 3
        out.append(s + s)
        out.append("é" + str(i) + "ü" + "€")
        out.append(Text("x") + tag)
        out.append(tag + Text("y"))
        try:
            out.append(tag + i)
        except TypeError as e:
            out.append(str(e))
    return out, kept


def test_str_concatenation_in_a_loop():
    check(str_concatenation_loop, 30)


def test_str_concatenation_stays_native():
    # Every str on the left of a settled generic `+` whose left operand was a last use
    # took the tier-1 helper: xml's `"</" + tag + ">"`, constants too.
    native_default_only()

    def concat(tags):
        out = []
        for tag in tags:
            out.append("</" + tag + ">")
        return out

    w = tiered(fresh(concat, "concat_counted"), strict=True)
    tags = [str(i) for i in range(10)]

    def warm_up():
        for _ in range(60):
            assert w(tags) == concat(tags)

    def measured():
        w(tags)

    counts = counted_ops(warm_up, measured)
    assert counts["Binary"] == {"tier1": 0, "tier2": 20, "deopts": 0}, counts["Binary"]


def test_a_site_mixing_ints_and_floats_stays_native():
    # Warmed up on floats, then ints and floats alternate: the site widens to
    # BinaryNumber, the code is recompiled with it once, and no deopt follows.
    import os
    import types

    from tiered import dump, stats, tiered

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    fresh = types.FunctionType(mixed_site.__code__.replace(co_name="mixed_fresh"), mixed_site.__globals__)
    w = tiered(fresh, strict=True)
    floats = [(0.5 * i, 1.5) for i in range(20)]
    both = [(i, 2) if i % 2 else (i * 0.5, 3) for i in range(20)]
    for _ in range(40):
        w(floats)
    for _ in range(40):
        assert w(both) == mixed_site(both)
    before = stats(w)
    for _ in range(20):
        w(both)
    after = stats(w)
    assert "Binary[BinaryNumber] *" in dump(w), dump(w)
    assert after["native_calls"] - before["native_calls"] == 20, (before, after)
    assert after["deopts"] == before["deopts"], (before, after)


I64_MIN = -(2**63)
DIVISION_OPERANDS = [
    (7, 2), (-7, 2), (7, -2), (-7, -2), (6, 3), (-6, 3), (0, 5), (0, -5), (1, 7), (-1, 7),
    (2**62, 3), (-(2**62), 3), (I64_MIN, 2), (I64_MIN, 3), (I64_MIN, -1), (I64_MIN, I64_MIN),
    (2**63 - 1, -1), (2**63 - 1, 2**63 - 1), (5, 0), (-5, 0), (2**64, 3), (7, 2**64), (True, 2),
]


def int_division_loop(pairs, n):
    # `//` and `%` of ints in a loop (BinaryInt's template): every sign combination, the
    # i64 extremes (i64::MIN // -1 is a big int), division by zero caught inside the loop,
    # and big ints and bools through the same sites.
    out = []
    for i in range(n):
        for a, b in pairs:
            try:
                q = a // b
                r = a % b
                a //= 1 if i % 2 else -1
                out.append((q, r, a))
            except ZeroDivisionError as e:
                out.append(str(e))
    return out


def test_int_floor_division_and_modulo_in_a_loop():
    check(int_division_loop, DIVISION_OPERANDS, 4)
