"""Native code (tier 2) meeting what its specializations did not expect. Loops here run long
enough to be compiled mid-call (OSR) under the default thresholds; the whole suite also runs
with thresholds at zero and one. Every case agrees with CPython, and the stats show native
code really ran."""

import pytest

from harness import cases, check

N = 3000  # well past the default OSR threshold


def types_change_in_native_loop(items):
    acc = 0
    for x in items:
        acc = acc + x
    return acc


def compare_types_change(items):
    count = 0
    for i in range(len(items) - 1):
        if items[i] < items[i + 1]:
            count += 1
    return count


G = 1


def rebind_g(v):
    global G
    G = v


def global_rebound_in_native_loop(n):
    rebind_g(1)
    total = 0
    for i in range(n):
        total += G
        if i == n // 2:
            rebind_g(1000)
    return total


def exception_caught_inside(n):
    out = 0
    for i in range(n):
        try:
            out += 10 // (i % 7)
        except ZeroDivisionError:
            out -= 1
    return out


def exception_escapes(n):
    total = 0
    for i in range(n):
        total += i
        if i == n - 10:
            raise ValueError(f"stop at {i} with {total}")
    return total


def mutate_while_iterating(n):
    xs = list(range(10))
    seen = 0
    for x in xs:
        seen += x
        if len(xs) < n:
            xs.append(x + 1)
    return seen, len(xs)


def overflow_to_bigint(n):
    x = 1
    for _ in range(n):
        x = x * 2 + 1
    return x


def float_loop(n):
    x = 0.0
    for i in range(n):
        x = x * 0.5 + i / 7.0 - 1.25
        if x != x:
            return "nan"
    return x


def nested_loops(n):
    total = 0
    for i in range(n // 100):
        for j in range(100):
            total += i * j
    return total


def truth_mixed(items):
    c = 0
    for x in items:
        if x:
            c += 1
    return c


# Calls from native code straight into a callee's native code (direct calls): arguments
# moved in unboxed, results coming back unboxed, and everything that must send a call
# back to the ordinary path: an argument still used afterwards, other types, a callee
# rebound or given another __code__, exceptions in the callee, shadowed builtins.


def helper(a, b):
    return a * b + 1


def calls_in_loop(n):
    total = 0
    for i in range(n):
        total += helper(i, 3) + helper(i, i)
    return total


SAVED = []


def keep(x):
    SAVED.append(x)
    return x


def identity_across_call(n):
    same = 0
    for i in range(n):
        x = i * 3 + 100_000  # an unboxed int, also used after the call
        keep(x)
        if SAVED[-1] is x:
            same += 1
        SAVED.clear()
    return same


def mixed_argument_types(n):
    out = []
    for i in range(n):
        v = i if i % 3 else (i + 0.5 if i % 2 else str(i))
        out.append(helper(v, 2))
    return len(out), out[-3:]


def maybe_raise(i):
    if i % 100 == 99:
        raise ValueError(f"bad {i}")
    return i


def callee_raises_caught(n):
    total = 0
    for i in range(n):
        try:
            total += maybe_raise(i)
        except ValueError as e:
            total -= len(str(e))
    return total


def callee_raises_escapes(n):
    total = 0
    for i in range(n):
        total += maybe_raise(i if i < n - 5 else 99)
    return total


def plus_one(x):
    return x + 1


def minus_one(x):
    return x - 1


def callee_code_swapped(n):
    def callee(x):
        return x + 1

    total = 0
    for i in range(n):
        total += callee(i)
        if i == n // 2:
            callee.__code__ = minus_one.__code__
    return total


CALLEE = plus_one


def set_callee(f):
    global CALLEE
    CALLEE = f


def callee_rebound(n):
    set_callee(plus_one)
    total = 0
    for i in range(n):
        total += CALLEE(i)
        if i == n // 2:
            set_callee(minus_one)
    set_callee(plus_one)
    return total


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def mutual_recursion(n):
    return [is_even(i) for i in range(n)].count(True)


def with_default(a, b=2):
    return a * b


def defaults_and_keywords(n):
    total = 0
    for i in range(n):
        total += with_default(i) + with_default(i, 3) + with_default(a=i, b=1)
    return total


def shadow_len(v):
    if v is None:
        globals().pop("len", None)
    else:
        globals()["len"] = v


def builtin_shadowed_mid_loop(items, n):
    total = 0
    try:
        for i in range(n):
            total += len(items)
            if i == n // 3:
                shadow_len(lambda x: 1000)
            if i == 2 * n // 3:
                shadow_len(None)
    finally:
        shadow_len(None)
    return total


def index_everywhere(seq, n):
    # In range from both ends, out of range both ways (IndexError from the generic op),
    # bools and big ints as indices, and the sequence shrinking under the loop.
    total = 0
    errors = 0
    for i in range(-n, n):
        try:
            total += seq[i]
        except IndexError:
            errors += 1
        if i == n // 2 and isinstance(seq, list):
            del seq[len(seq) // 2 :]
    for k in (True, False, 2**70, -(2**70)):
        try:
            total += seq[k]
        except IndexError as e:
            errors += len(str(e))
    return total, errors


def iterate_builtins(d, s, n):
    # dict keys/values/items, str, enumerate, zip, set and generator iterators, with
    # str comparisons and tuple unpacking in the loop bodies.
    total = 0
    for k in d:
        total += k
    for v in d.values():
        total += v
    for k, v in d.items():
        total += k * v
    for c in s:
        total += (c == "a") + (c != "b")
    for i, c in enumerate(s):
        if c == "c":
            total += i
    for a, b in zip(s, s[1:]):
        total += a == b
    for x in {1, 2, 3}:
        total += x
    for x in (i * 2 for i in range(n)):
        total += x
    return total


def dict_changes_size(d, n):
    seen = 0
    try:
        for k in d:
            seen += 1
            if seen == n:
                d[-1] = 0
    except RuntimeError as e:
        return seen, str(e)
    return seen


def unpack_shapes(pairs):
    out = []
    for p in pairs:
        try:
            a, b = p
            out.append(a)
        except (ValueError, TypeError) as e:
            out.append(str(e))
    return out


def str_equality_mixed(xs):
    hits = 0
    for x in xs:
        if x == "ab":
            hits += 1
        if x != "ab":
            hits -= 1
    return hits


def unrelated_equality(xs, ys):
    # == and != between builtin types that do not compare (identity decides), next to
    # ones that do (int and float, set and frozenset) and ones with their own __eq__.
    eq = ne = 0
    for x, y in zip(xs, ys):
        if x == y:
            eq += 1
        if x != y:
            ne += 1
    return eq, ne


class StrSub(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


# Loop-carried values share their loop variable's register when the old value is dead
# (see lower.rs): these read the old value after the new one is made, pass it along
# another edge, or need it in a handler, so they must not share.


def old_value_read_after(xs):
    s = 0
    olds = 0
    for x in xs:
        new = s + x
        olds += s
        s = new
    return s, olds


def fib_iter(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a % 1000003


def binary_raises_in_try(xs):
    s = 0
    for x in xs:
        try:
            s = s + x
        except TypeError:
            s = -s
    return s


def while_bottom_test(n):
    i = 0
    total = 0
    prev = -1
    while i < n:
        prev = total
        total = total + i
        i = i + 1
    return total, prev, i


def handler_after_update(xs):
    s = 0
    for x in xs:
        s = s + x
        try:
            if x % 7 == 0:
                raise KeyError(s)
        except KeyError as e:
            s = e.args[0] - 1
    return s


def constants_keep_identity(n):
    # Small ints and bools may live unboxed in native code: boxing must give back the
    # very objects CPython uses, and other constants stay the code's own objects.
    out = []
    flag = True
    for i in range(n):
        out.append(1000)
        out.append(7)
        out.append(flag)
        out.append(-5 + i % 2)
    return (
        all(x is out[0] for x in out[0::4]),
        all(x is out[1] for x in out[1::4]),
        all(x is True for x in out[2::4]),
        sum(out[3::4]),
    )


def identity_kinds(xs):
    # `is` / `is not` / `is None` on unboxed ints and floats, bools, None and objects:
    # numbers are boxed once, so a value compared with itself stays identical.
    out = []
    prev = None
    for x in xs:
        y = x
        z = x + 0 if type(x) is int else x
        out.append((x is None, x is not None, x is y, x is not prev, x is True, z is x, prev is None))
        if x is None:  # IsNone (a jump), the others are Is
            out.append("none")
        elif x is not None and prev is not None:
            out.append("both")
        prev = x
    return out


class Picky:
    def __contains__(self, x):
        if x == 13:
            raise KeyError(x)
        return x % 2 == 0


def membership_kinds(xs, d, lst, st, text, escape):
    # `in` / `not in` on dicts, lists, sets, strs and a class whose __contains__ raises
    # (caught inside the loop, and once escaping at the end); unboxed ints as items.
    out = []
    picky = Picky()
    for x in xs:
        k = x + 1
        row = [k in d, k not in lst, x in st, str(x) in text]
        try:
            row.append(k in picky)
        except KeyError as e:
            row.append(("raised", e.args))
        if k in d and k not in st:
            row.append("branch")
        out.append(row)
    out.append(1.5 in lst)
    if escape:
        out.append(13 in picky)
    return out


class Neg:
    def __neg__(self):
        return "neg"

    def __invert__(self):
        return "inv"

    def __bool__(self):
        return False


def unary_kinds(xs):
    # -x, +x, ~x and `not x` on values made unboxed right before (ints up to the i64
    # edges, where -x overflows, floats with -0.0, nan and inf), then on bools, None,
    # objects with the methods and without (TypeError, caught) through the generic op.
    out = []
    for x in xs:
        if type(x) is int:
            y = x * 2  # unboxed in native code while it fits in i64
            row = (-y, ~y, +y, not y, y)
        elif type(x) is float:
            y = x * 1.0
            row = (-y, +y, not y, repr(-y))
        else:
            row = []
            for f in (lambda v: -v, lambda v: +v, lambda v: ~v):
                try:
                    row.append(f(x))
                except TypeError as e:
                    row.append(str(e))
            row.append(not x)
        out.append(row)
    return out


class DictSub(dict):
    pass


def builtin_call_kinds(xs):
    # Builtins CPython's specialized CALL runs by their C function (METH_FASTCALL, with
    # and without keywords; method descriptors with exactly their type as self), next
    # to ones it does not (METH_O, METH_VARARGS), and method descriptors given a subclass
    # or another type as self (CPython's generic call accepts or rejects those).
    d = {1: "one", 2: "two"}
    sub = DictSub(d)
    out = []
    for x in xs:
        row = [next(iter([x])), sum([x, 1]), sum([x], 10), divmod(x, 3), isinstance(x, int),
               getattr(x, "real", None), d.get(x, "-"), sub.get(x, "+"), dict.get(d, x),
               dict.get(sub, x, 0), "a,b,c".split(","), str.split("a b"), len([x]),
               abs(-x), min(x, 2), ",".join(["a", str(x)])]
        try:
            row.append(dict.get(x, 1))
        except TypeError as e:
            row.append(str(e))
        try:
            row.append(divmod(x))
        except TypeError as e:
            row.append(str(e))
        out.append(row)
    return out


class StrSub2(str):
    def __format__(self, spec):
        return "fmt:" + str.__format__(self, spec)


class BadFormat:
    def __format__(self, spec):
        raise ValueError("no format " + spec)

    def __repr__(self):
        return "BadFormat()"


class BadStr:
    def __str__(self):
        raise KeyError("no str")


def comprehensions_and_fstrings(xs):
    # Comprehension appends (list, set, dict; unboxed values, an unhashable one raising
    # inside) and f-strings of every kind of value, conversion and spec, some raising.
    out = []
    out.append([x * 2 for x in xs])
    out.append(sorted({x % 7 for x in xs}))
    out.append({x: x * 0.5 for x in xs})
    try:
        out.append({x if x < 5 else [x] for x in xs})
    except TypeError as e:
        out.append(str(e))
    for v in [1, 2**70, -0.5, True, None, "s", StrSub2("t"), (1, 2), BadFormat(), BadStr()] * 3:
        for f in (lambda v: f"{v}", lambda v: f"{v!r}", lambda v: f"{v!s}", lambda v: f"{v!a}",
                  lambda v: f"<{v:>6}>", lambda v: f"{v}{v}{v}"):
            try:
                out.append(f(v))
            except (ValueError, KeyError, TypeError) as e:
                out.append(repr(e))
    for x in xs:
        y = x * 3
        out.append(f"{x}:{y}|{x * 0.5}|{x == 1}|{x!r}")
        out.append(f"{x}" f"{x}" * 2)
    parts = list(range(20))
    out.append(f"{parts[0]}{parts[1]}{parts[2]}{parts[3]}{parts[4]}{parts[5]}{parts[6]}{parts[7]}"
               f"{parts[8]}{parts[9]}{parts[10]}{parts[11]}{parts[12]}{parts[13]}{parts[14]}{parts[15]}-")
    return out


INT_EDGES = [-(2**30) - 1, -(2**30), -(2**30) + 1, -6, -5, -4, -1, 0, 1, 255, 256, 257,
             2**30 - 1, 2**30, 2**30 + 1, 2**62, -(2**63)]


def ints_boxed_at_edges(ks):
    # Ints made unboxed in native code, then boxed: small ints must be CPython's cached
    # objects, one-digit ints are built inline, larger ones by the C API.
    out = []
    for k in ks:
        v = k - 1
        out.append(v + 1)
    small = [x for x in out if -5 <= x <= 256]
    return out, all(x is int(str(x)) for x in small), all(type(x) is int for x in out)


def int_returned(k):
    # Loop-free: the trampoline boxes the result.
    return k - 1 + 1


SCALE = 2


def scaled(x):
    # Small and loop-free: emitted inline at direct calls. Reads a global the caller
    # rebinds, and its + may stop fitting its quickened int form (a deopt inside the
    # inlined body).
    return x * SCALE + 1


def guarded(x):
    try:
        return 10 // x
    except ZeroDivisionError:
        return -1


def failing(x):
    return x.missing_attribute


def inlined_callees(xs):
    global SCALE
    out = []
    try:
        for i, x in enumerate(xs):
            out.append(scaled(x) + guarded(x))
            if i == len(xs) // 2:
                SCALE = 2.5
            if i % 7 == 3:
                try:
                    failing(x)
                except AttributeError as e:
                    tb = e.__traceback__
                    names = []
                    while tb is not None:
                        names.append(tb.tb_frame.f_code.co_name if tb.tb_next else "failing?")
                        tb = tb.tb_next
                    out.append((str(e), len(names)))
    finally:
        SCALE = 2
    return out


def returns_kinds(k):
    # Called from CPython, so through the native trampoline once compiled: each kind of
    # result it boxes (unboxed int and float, bool, an overflowed int, None, an object)
    # and an exception.
    x = k * 0.5
    if k == 0:
        return x + 1.5
    if k == 1:
        return k == 1
    if k == 2:
        return 2**62 + 2**62 + k
    if k == 3:
        return None
    if k == 4:
        raise ValueError(k)
    if k == 5:
        return [k, x]
    return k * 3


def deep(n):
    return 0 if n == 0 else 1 + deep(n - 1)


CASES = cases(
    (calls_in_loop, (N,)),
    (identity_across_call, (N,)),
    (mixed_argument_types, (N,)),
    (callee_raises_caught, (N,)),
    (callee_raises_escapes, (N,)),
    (callee_code_swapped, (N,)),
    (callee_rebound, (N,)),
    (mutual_recursion, (300,)),
    (defaults_and_keywords, (N,)),
    (builtin_shadowed_mid_loop, ([1, 2, 3], N)),
    (deep, (500,)),
    *[(returns_kinds, (k,)) for k in range(7)],
    (inlined_callees, ([1, 0, 3, 2**62, -5, 0, 7] * 6,)),
    (constants_keep_identity, (N,)),
    (ints_boxed_at_edges, (INT_EDGES * 50,)),
    *[(membership_kinds, (list(range(40)) * 60, {i: i for i in range(0, 40, 3)}, list(range(0, 40, 2)),
                          set(range(5, 25)), "0123456789", escape)) for escape in (False, True)],
    (unary_kinds, ([0, 1, -1, 7, 2**61, -(2**62), 2**62, 0.0, -0.0, 1.5, float("nan"), float("inf"), True,
                    False, None, "s", Neg(), 2**70] * 40,)),
    (comprehensions_and_fstrings, (list(range(40)),)),
    (builtin_call_kinds, (list(range(-3, 30)) * 40,)),
    (identity_kinds, ([1, 1000, 2**70, 0.5, True, False, None, "s", (), [], 1000] * 300,)),
    *[(int_returned, (k,)) for k in INT_EDGES],
    (old_value_read_after, (list(range(N)),)),
    (fib_iter, (N,)),
    (binary_raises_in_try, (list(range(N // 2)) + ["x"] + list(range(N // 2)),)),
    (while_bottom_test, (N,)),
    (handler_after_update, (list(range(1, N)),)),
    (iterate_builtins, ({i: i * 2 for i in range(N)}, "abcab" * (N // 5), N)),
    (dict_changes_size, ({i: i for i in range(N)}, N // 2)),
    (unpack_shapes, ([(1, 2)] * N + [(1, 2, 3), [4, 5], "xy", 7, (8,)],)),
    (unrelated_equality, ([1, "a", None, (1,), [1], {1: 2}, 1.0, {1}] * (N // 8) + [1, 2.0, {1}, None],
                          ["a", 1, [], [1], (1,), 1, "1.0", frozenset({1})] * (N // 8) + [1.0, 2, frozenset({1}), None])),
    (str_equality_mixed, (["ab", "a" + "b", "abc", "", "b"] * (N // 5) + [1, None, StrSub("zz"), b"ab"],)),
    (index_everywhere, (list(range(1000)), N // 2)),
    (index_everywhere, (tuple(x * 0.5 for x in range(1000)), N // 2)),
    (types_change_in_native_loop, ([1] * N + [0.5] * 10 + [2**70] + [1] * 10,)),
    (types_change_in_native_loop, ([1] * N + ["no"],)),
    (compare_types_change, ([i % 5 for i in range(N)] + [0.5, 2**80, -1.5, float("nan"), 3],)),
    (global_rebound_in_native_loop, (N,)),
    (exception_caught_inside, (N,)),
    (exception_escapes, (N,)),
    (mutate_while_iterating, (N,)),
    (overflow_to_bigint, (200,)),
    (float_loop, (N,)),
    (nested_loops, (N,)),
    (truth_mixed, ([0, 1, 0.0, 2.5, "", "x", None, [], [0], 2**80, -1] * 400,)),
)


@pytest.mark.parametrize("f,args,kwargs", CASES)
def test_native_agrees(f, args, kwargs):
    check(f, *args, **kwargs)
