"""Functions whose IR is snapshotted (snapshots/ir/). Each entry of CASES names the IR ops
the function is about, so the snapshot keeps testing what it says (ir_snapshots.rs checks
they appear)."""

import os


def pysum(xs):
    s = 0
    for x in xs:
        s += x
    return s


def add1(x):
    return x + 1


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def branches(a, b):
    if a < b and b is not None:
        return -a
    elif not a or b in (1, 2):
        return ~b
    return a if a else b


def compare_stored(a, b):
    # Comparisons whose results no conditional jump takes at once (Compare's `jump`
    # false), then one a jump takes (true).
    lt = a < b
    both = (a == b, a is b)
    if a >= b:
        return lt, both
    return None


def while_loop(n):
    i = 0
    total = 0
    while i < n:
        i += 1
        if i % 3 == 0:
            continue
        if i > 100:
            break
        total += i
    else:
        total = -total
    return total


def calls(f, xs, **kw):
    f(1, 2, key=3)
    xs.append(4)
    return f(*xs, **kw)


def attrs(o):
    o.x = o.y + 1
    del o.z
    return o.x


def subscripts(d, k):
    d[k] = d[k:] + d[::2]
    del d[0]
    return d[-1]


def builders(a, b):
    t = (a, b)
    lst = [a, *b]
    d = {"a": a, **b}
    s = {a, b}
    return f"{a!r:>{b}} {t}", lst, d, s


def unpacking(seq):
    a, b = seq
    first, *rest, last = seq
    return a, b, first, rest, last


def comprehension(xs):
    return [x * 2 for x in xs if x], {x: x for x in xs}


def closure(n):
    count = 0

    def bump():
        nonlocal count
        count += n
        return count

    bump()
    return bump


def try_except(x):
    try:
        y = 1 / x
    except ZeroDivisionError as e:
        return str(e)
    except (TypeError, ValueError):
        raise
    else:
        return y
    finally:
        x = None


def raise_from(x):
    try:
        return {}[x]
    except KeyError as e:
        raise ValueError(x) from e


def with_block(path):
    with open(path) as f:
        return f.read()


def imports():
    import os.path
    from os import sep
    return os.path.join("a", sep)


def globals_and_del(x):
    global CONST
    CONST = x
    y = x
    del y
    assert x, "needs x"
    return CONST


def match_seq(x):
    match x:
        case [a, *rest, b] if a:
            return a, rest, b
        case {"k": v, **kw}:
            return v, kw
        case complex(real=r):
            return r
    return None


def except_star(f):
    caught = None
    try:
        f()
    except* ValueError as eg:
        caught = eg.exceptions
    return caught


def generator(n):
    x = yield n
    r = yield from range(x)
    return r


def checks_merged(xs):
    # A loop body ending in a call statement (CALL, then JUMP_BACKWARD) and one ending in
    # a yield (RESUME, then JUMP_BACKWARD): one EvalBreaker each, not two.
    for x in xs:
        print(x)
    while xs:
        yield xs.pop()


async def coroutine(n):
    async for x in n:
        n = x
    async with n as v:
        return await v


async def async_generator(n):
    async for x in n:
        got = yield x
        await got


CONST = 1

CASES = [
    (pysum, ["GetIter", "ForIter", "Binary"]),
    (add1, ["Binary"]),
    (fib, ["LoadGlobal", "Call", "Compare"]),
    (branches, ["Truth", "IsNone", "Contains", "Unary"]),
    (while_loop, ["Compare", "Binary"]),
    (compare_stored, ["Compare", "Is", "BuildTuple"]),
    (calls, ["Call", "CallEx", "DictMerge", "LoadMethod"]),
    (attrs, ["LoadAttr", "StoreAttr", "DeleteAttr"]),
    (subscripts, ["Subscr", "StoreSubscr", "DeleteSubscr", "BuildSlice"]),
    (builders, ["BuildTuple", "ListExtend", "DictUpdate", "BuildSet", "FormatValue", "BuildString"]),
    (unpacking, ["UnpackSequence", "UnpackEx"]),
    (comprehension, ["MakeFunction", "Call"]),
    (closure, ["MakeCell", "StoreDeref", "MakeFunction"]),
    (try_except, ["PushExcInfo", "CheckExcMatch", "PopExcept", "Reraise"]),
    (raise_from, ["Raise"]),
    (with_block, ["BeforeWith", "WithExceptStart"]),
    (imports, ["ImportName", "ImportFrom"]),
    (globals_and_del, ["StoreGlobal", "LoadAssertionError", "Raise"]),
    (match_seq, ["MatchSequence", "GetLen", "UnpackEx", "MatchMapping", "MatchKeys", "MatchClass"]),
    (except_star, ["CheckEgMatch", "PrepReraiseStar"]),
    (generator, ["return_generator", "yield", "GetYieldFromIter", "Send"]),
    (checks_merged, ["EvalBreaker", "yield"]),
    (coroutine, ["GetAwaitable", "BeforeAsyncWith", "Send", "yield", "GetAiter", "GetAnext", "EndAsyncFor"]),
    (async_generator, ["return_generator", "GetAiter", "GetAnext", "AsyncGenWrap", "yield", "GetAwaitable", "Send"]),
]

# Nested code objects are snapshotted too (comprehensions, inner functions).
NESTED = [(comprehension, "<listcomp>", ["BuildList", "ListAppend", "ForIter"]),
          (closure, "bump", ["LoadClosure", "LoadDeref", "StoreDeref"])]

assert os  # imported for the `imports` case's module globals
