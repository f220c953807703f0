"""Generators made straight from a call's arguments: a direct call from native code to a
generator, coroutine or async generator function whose code starts with its arguments
makes the generator without running any of that code (`generator::start`). The new
generator must be what CPython's RETURN_GENERATOR leaves: its frame's locals (the
arguments, boxed; NULL for the other locals), its line, name, qualname, `cr_origin`, and
every later step. Each case makes many generators in one hot loop, so the call site is
native by the time most are made."""
import sys
import types

import pytest

from harness import cases, check
from tiered import tiered

# --- generator functions called from a hot loop -----------------------------------------


def counts(a, b):
    x = a
    while x < b:
        yield x
        x += 1


def with_default(a, step=2, label="d"):
    total = 0
    for i in range(a):
        total += step
        yield label, total


def extra_locals(a, b):
    c = a * b
    d = [a, b, c]
    yield c
    e = d + [a]
    yield len(e), e[-1]


def of_floats(x, y):
    yield x * y
    yield x + y


def of_bools(flag, other):
    yield flag and other
    yield not flag


def with_a_cell(n):
    # A cell comes before RETURN_GENERATOR: made by running the code, as ever.
    def inner():
        return n * 10

    yield inner()
    yield n


def raises_at_first_step(n):
    if n % 3 == 0:
        raise ValueError(f"bad {n}")
    yield n


def makes_generators(n):
    out = []
    for i in range(n):
        # `i` is an unboxed counter used again after each call (boxed once, shared).
        out.append(sum(counts(i, i + 3)))
        out.append(list(with_default(i % 3)))
        out.append(list(with_default(2, i)))
        out.append(list(with_default(1, label=str(i))))
        out.append(list(extra_locals(i, i + 1)))
        out.append(list(of_floats(i * 0.5, 1.5)))
        out.append(list(of_bools(i % 2 == 0, i > 3)))
        out.append(list(with_a_cell(i)))
        try:
            out.append(list(raises_at_first_step(i)))
        except ValueError as e:
            out.append(("caught", str(e)))
    return out


def fresh_generators_look_like_cpythons(n):
    out = []
    for i in range(n):
        g = extra_locals(i, 7)
        f = g.gi_frame
        out.append((g.__name__, g.__qualname__, g.gi_running, g.gi_suspended, f.f_lineno,
                    f.f_lasti, sorted(f.f_locals.items()), g.gi_code.co_name))
        out.append(next(g))
        out.append((f.f_lineno, sorted(f.f_locals.items(), key=repr)))
        g.close()
        out.append((g.gi_frame, list(g)))
    return out


def left_unstarted(n):
    # Made and dropped before their first step: each releases its arguments.
    keep = []
    for i in range(n):
        g = counts([i], str(i))
        if i % 4 == 0:
            keep.append(g.gi_frame.f_locals["a"])
    return keep


def wrong_calls(n):
    out = []
    for i in range(n):
        try:
            out.append(list(counts(i)))
        except TypeError as e:
            out.append(str(e))
        try:
            out.append(list(counts(i, i + 1, 2)))
        except TypeError as e:
            out.append(str(e))
    return out


def free_variables(n):
    # Generator expressions and nested generator functions take their free variables'
    # cells at their start (COPY_FREE_VARS), before RETURN_GENERATOR.
    out = []
    scale = 3
    for i in range(n):
        base = [i, i + 1, i + 2]
        out.append(tuple(base[k] * scale for k in range(3)))
        out.append(sum(x + i for x in base))

        def offsets(m):
            for k in range(m):
                yield base[k % 3] + scale

        out.append(list(offsets(i % 5)))
        scale += 1
    return out


def free_variable_rebound_after_the_generator_is_made(n):
    out = []
    for i in range(n):
        v = i
        g = (v + k for k in range(2))
        v = -i
        out.append(list(g))
    return out


class Walker:
    def __init__(self, k):
        self.k = k

    def steps(self, n):
        for i in range(n):
            yield self.k + i


def method_generators(n):
    out = []
    w = Walker(100)
    bound = w.steps
    for i in range(n):
        out.append(list(w.steps(i % 4)))
        out.append(list(bound(2)))
    return out


async def doubled(x, y=1):
    return x * 2 + y


async def awaits_fresh_coroutines(n):
    total = 0
    for i in range(n):
        total += await doubled(i)
        total += await doubled(i, y=i)
    return total


async def agen(a, b):
    for x in range(a, b):
        yield x


async def iterates_fresh_async_generators(n):
    out = []
    for i in range(n):
        async for x in agen(i, i + 2):
            out.append(x)
    return out


ROWS = (
    (makes_generators, (40,)),
    (fresh_generators_look_like_cpythons, (30,)),
    (left_unstarted, (40,)),
    (wrong_calls, (30,)),
    (method_generators, (40,)),
    (free_variables, (40,)),
    (free_variable_rebound_after_the_generator_is_made, (40,)),
    (awaits_fresh_coroutines, (60,)),
    (iterates_fresh_async_generators, (40,)),
)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS))
def test_generators_made_from_arguments_agree_with_cpython(f, args, kwargs):
    check(f, *args, **kwargs)


def origins(n, make):
    """The `cr_origin` of the coroutines `make` makes in a hot loop (line numbers
    relative to this function's first line, so CPython's and ours compare)."""
    first = origins.__code__.co_firstlineno
    out = []
    for i in range(n):
        c = make(i)
        out.append([(line - first if name == "origins" else None, name)
                    for _file, line, name in c.cr_origin])
        c.close()
    return out


def test_coroutine_origins_name_the_calling_frame():
    # The origin starts at the frame that called the coroutine function: the native
    # loop's own (a generator made from the arguments has no frame of its own pushed).
    old = sys.get_coroutine_origin_tracking_depth()
    sys.set_coroutine_origin_tracking_depth(3)
    try:
        w = tiered(types.FunctionType(origins.__code__, globals()), strict=True)
        # Called from the same line as CPython's run, so the outer frames agree too.
        got = []
        for f in (origins, w, w, w):
            got.append(f(50, doubled))
        expected = got.pop(0)
    finally:
        sys.set_coroutine_origin_tracking_depth(old)
    assert all(g == expected for g in got), (expected[:2], [g[:2] for g in got])
    assert expected[0][0] == (6, "origins"), expected[0]
