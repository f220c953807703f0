"""Coroutines (`async def`) run in our tiers: the coroutine object is CPython's own kind
(a subtype of `types.CoroutineType`, its frame in CPython's layout); its body runs in
tier 1 or native code whenever it is resumed: by an `await` in tiered code, by asyncio's
tasks (`PyIter_Send`), by `send()` and by `__await__()`'s iterator. `throw()`, `close()`
and the "never awaited" warning are CPython's own, working on the same frame.

The harness drives each coroutine without an event loop (`send(None)` until it returns);
the asyncio cases run real event loops, tasks and gather."""
import asyncio
import gc
import inspect
import os
import sys
import types
import warnings

import pytest

from harness import assert_tier1, cases, check, counted_ops, outcome
from tiered import stats, tiered


class Suspends:
    """An awaitable that suspends once (yielding `what`) and returns `value`."""

    def __init__(self, what, value):
        self.what, self.value = what, value

    def __await__(self):
        got = yield self.what
        return (self.value, got)


class NotAwaitable:
    pass


class BadAwait:
    def __await__(self):
        return 42


class ACM:
    def __init__(self, log, swallow=False):
        self.log, self.swallow = log, swallow

    async def __aenter__(self):
        self.log.append("enter")
        await Suspends("in aenter", None)
        return "managed"

    async def __aexit__(self, t, e, tb):
        self.log.append(("exit", t and t.__name__))
        await Suspends("in aexit", None)
        return self.swallow


class AEnterNotAwaitable:
    def __aenter__(self):
        return 1

    async def __aexit__(self, *a):
        return False


async def returns(x):
    return x * 2


async def awaits_an_awaitable(log):
    log.append("before")
    v = await Suspends("first", 10)
    log.append(v)
    w = await Suspends("second", 20)
    return v, w


async def raises_after_await():
    await Suspends("once", None)
    raise KeyError("coroutine failed")


async def awaits_coroutines(n):
    async def double(x):
        await Suspends(("double", x), None)
        return x * 2

    total = 0
    for i in range(n):
        total += await double(i)
        total += await returns(i)
    return total


async def async_with(log):
    async with ACM(log) as v:
        log.append(v)
    try:
        async with ACM(log) as v:
            raise ValueError("inside")
    except ValueError as e:
        log.append(repr(e))
    async with ACM(log, swallow=True):
        raise KeyError("swallowed")
    return log


async def awaits_the_unawaitable(which):
    if which == 0:
        await NotAwaitable()
    if which == 1:
        await BadAwait()
    async with AEnterNotAwaitable():
        pass


async def stop_iteration_inside():
    await Suspends("x", None)
    raise StopIteration("PEP 479")


async def locals_across_awaits(n):
    a, f, s = 0, 1.5, "s"
    for i in range(n):
        a += i
        f *= 2
        s += str(i)
        got = await Suspends((a, f, s), i)
        a += got[0]
    return a, f, s


async def try_finally_across_await(log):
    try:
        await Suspends("in try", None)
        return "returned"
    finally:
        log.append("finally")
        await Suspends("in finally", None)


class Ticker:
    """An async iterator counting down from `n`, suspending in each step."""

    def __init__(self, n):
        self.n = n

    def __aiter__(self):
        return self

    async def __anext__(self):
        await Suspends(("tick", self.n), None)
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n


async def countdown(n):
    # An async generator (it runs in CPython) iterated by tiered code.
    for i in range(n):
        yield i
        await Suspends(("agen", i), None)


class NoAnext:
    def __aiter__(self):
        return self


async def async_for(n, which):
    out = []
    if which == 0:
        async for x in Ticker(n):
            out.append(x)
    elif which == 1:
        async for x in countdown(n):
            out.append(x)
            if x == 2:
                break
    elif which == 2:
        async for x in Ticker(n):
            if x == 1:
                raise ValueError("in the loop")
    elif which == 3:
        async for x in 5:
            pass
    else:
        async for x in NoAnext():
            pass
    return out


ROWS = (
    (returns, (21,)),
    (awaits_an_awaitable, ([],)),
    (raises_after_await, ()),
    (awaits_coroutines, (4,)),
    (async_with, ([],)),
    (awaits_the_unawaitable, (0,)),
    (awaits_the_unawaitable, (1,)),
    (awaits_the_unawaitable, (2,)),
    (stop_iteration_inside, ()),
    (locals_across_awaits, (5,)),
    (try_finally_across_await, ([],)),
    (async_for, (4, 0)),
    (async_for, (4, 1)),
    (async_for, (4, 2)),
    (async_for, (4, 3)),
    (async_for, (4, 4)),
)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS))
def test_coroutines_agree_with_cpython(f, args, kwargs):
    check(f, *args, **kwargs)


# --- scripts: send, throw, close, reuse, attributes -----------------------------------------



async def echo(log):
    try:
        a = await Suspends("a", 1)
        log.append(a)
        b = await Suspends("b", 2)
        log.append(b)
    except ValueError as e:
        log.append(("caught", str(e)))
        c = await Suspends("c", 3)
        log.append(c)
    return "done"


SCRIPTS = {
    "send": lambda c, log: [
        outcome(lambda: c.send(1)), outcome(lambda: c.send(None)), outcome(lambda: c.send("x")),
        outcome(lambda: c.send("y")), outcome(lambda: c.send(None)), log],
    "await-iterator": lambda c, log: [
        outcome(lambda: next(c.__await__())), outcome(lambda: c.__await__().send("p")),
        outcome(lambda: c.__await__().send("q")), outcome(lambda: next(c.__await__())), log],
    "throw": lambda c, log: [
        outcome(lambda: c.send(None)), outcome(lambda: c.throw(ValueError("in"))),
        outcome(lambda: c.send("z")), outcome(lambda: c.send(None)), log],
    "close": lambda c, log: [
        outcome(lambda: c.send(None)), outcome(c.close), outcome(lambda: c.send(None)), log],
    "attributes": lambda c, log: [
        c.cr_running, c.cr_await, c.cr_frame.f_lineno, c.cr_code.co_name, c.__qualname__,
        isinstance(c, types.CoroutineType), asyncio.iscoroutine(c),
        outcome(lambda: c.send(None)), c.cr_suspended, type(c.cr_await).__name__,
        c.cr_frame.f_lineno, outcome(lambda: c.send(None)), outcome(lambda: c.send(None)),
        c.cr_frame, log],
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_agree_with_cpython(name):
    script = SCRIPTS[name]
    expected = script(echo([]), [])
    log = []
    expected = script(echo(log), log)
    w = tiered(echo, strict=True)
    # (Counters are per code, shared by every wrapper of it: compare deltas.)
    before = stats(w)
    for _ in range(3):
        log = []
        got = script(w(log), log)
        assert repr(got) == repr(expected), f"{name}:\n  CPython: {expected!r}\n  tiered:  {got!r}"
    s = stats(w)
    assert s["fallback_calls"] == 0 and s["unsupported"] == [], s
    assert s["resumes"] > before["resumes"], s
    # `echo` is always suspended in an await: throw() and close() are CPython's there (it
    # passes them on to the awaited iterator and finishes that step in its loop).
    if name not in ("throw", "close"):
        assert s["cpython_resumes"] == before["cpython_resumes"], s


async def waiter(c):
    return await c


def test_awaiting_a_coroutine_twice_and_reusing_it():
    # (Both sides tiered: an awaiter CPython runs reaches a tiered coroutine through its
    # `__await__` iterator, and CPython checks "being awaited already" for exact
    # coroutines only; README, limits.)
    def script(make, waiter):
        c = make([])
        first = waiter(c)
        out = [outcome(lambda: first.send(None))]
        second = waiter(c)
        out.append(outcome(lambda: second.send(None)))
        out.append(outcome(lambda: first.send(None)))
        out.append(outcome(lambda: first.send(None)))
        out.append(outcome(lambda: waiter(c).send(None)))
        second.close()
        return out

    assert repr(script(tiered(echo, strict=True), tiered(waiter, strict=True))) == repr(
        script(echo, waiter)
    )


async def sleeper(log, n):
    for i in range(n):
        log.append(i)
        await asyncio.sleep(0)
    return sum(log)


async def gathers(n):
    results = await asyncio.gather(*(sleeper([], i) for i in range(n)))
    task = asyncio.ensure_future(sleeper([], 3))
    await asyncio.sleep(0)
    return results, await task


def test_asyncio_runs_tiered_coroutines_and_tasks():
    ws, wg = tiered(sleeper, strict=True), tiered(gathers, strict=True)
    log_a, log_b = [], []
    assert asyncio.run(ws(log_a, 3)) == asyncio.run(sleeper(log_b, 3))
    assert log_a == log_b == [0, 1, 2]
    g = globals()
    g["sleeper"] = ws
    try:
        assert asyncio.run(wg(5)) == asyncio.run(gathers(5))
    finally:
        g["sleeper"] = sleeper
    for w in (ws, wg):
        s = stats(w)
        assert s["resumes"] >= 3 and s["cpython_resumes"] == 0, s
        assert_tier1(w, None)


async def awaits_each(make, n):
    total = 0
    for i in range(n):
        total += await make(i)
    return total


def run_to_end(coro):
    try:
        while True:
            coro.send(None)
    except StopIteration as e:
        return e.value


def test_awaiting_a_fresh_coroutine_of_ours_stays_native():
    # GetAwaitable's template takes a tiered coroutine function's new coroutine as its
    # own awaitable; a started or finished one, or CPython's, takes the generic path
    # (test_awaiting_a_coroutine_twice_and_reusing_it has their errors).
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")

    fresh = types.FunctionType(awaits_each.__code__.replace(co_name="awaits_each_counted"), globals())
    w, make = tiered(fresh, strict=True), tiered(returns, strict=True)

    def warm_up():
        for _ in range(60):
            assert run_to_end(w(make, 5)) == run_to_end(awaits_each(returns, 5)) == 20

    def measured():
        for _ in range(10):
            run_to_end(w(make, 5))

    counts = counted_ops(warm_up, measured)["GetAwaitable"]
    assert counts["tier2"] == 50 and counts["tier1"] == 0 and counts["deopts"] == 0, counts


def test_a_coroutine_never_awaited_warns():
    w = tiered(returns, strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = w(1)
        del c
        gc.collect()
    assert [str(m.message) for m in caught] == ["coroutine 'returns' was never awaited"]


def test_coroutine_origin_tracking():
    w = tiered(returns, strict=True)

    def origins(f):
        c = f(1)
        try:
            return [(line, name) for _file, line, name in c.cr_origin]
        finally:
            c.close()

    old = sys.get_coroutine_origin_tracking_depth()
    sys.set_coroutine_origin_tracking_depth(2)
    try:
        # Called from the same line, so the origins agree exactly.
        a, b = origins(w), origins(returns)
    finally:
        sys.set_coroutine_origin_tracking_depth(old)
    assert a == b and len(a) == 2, (a, b)


class SwallowsInExit:
    """An async context manager whose `__aexit__` awaits, and swallows an exception thrown
    into it there."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        try:
            await Suspends("in aexit", None)
        except IndexError:
            pass
        return False


async def raises_through_async_with():
    async with SwallowsInExit():
        raise KeyError("k")


def test_cpython_finishes_a_coroutine_suspended_in_an_exception_handler():
    # Suspended in `__aexit__`'s await with a handler's lasti on the frame's stack; the
    # throw runs the rest in CPython's loop, whose RERAISE reads that lasti (an int in
    # CPython's frame: a NULL there crashed the process).
    def script(f):
        c = f()
        out = [outcome(lambda: c.send(None))]
        out.append(outcome(lambda: c.throw(IndexError("thrown"))))
        return out

    assert repr(script(tiered(raises_through_async_with, strict=True))) == repr(
        script(raises_through_async_with)
    )


# --- generator-based coroutines (types.coroutine) ----------------------------------------


@types.coroutine
def gen_based(x):
    got = yield ("gen-based", x)
    inner = yield from returns(x)  # a coroutine: allowed in a generator-based coroutine
    return got, inner


async def awaits_gen_based(x):
    a = await gen_based(x)
    b = await gen_based(x + 1)
    return a, b


def test_generator_based_coroutines_run_in_our_tiers():
    check(gen_based, 5)
    w = tiered(gen_based, strict=True)
    assert inspect.isawaitable(w(1)) and asyncio.iscoroutine(w(1))
    g = globals()
    # Awaited by a coroutine CPython runs, and by a tiered one.
    for awaiter in (awaits_gen_based, tiered(awaits_gen_based, strict=True)):
        expected = [outcome(lambda: awaits_gen_based(3).send(None))]
        g["gen_based"] = w
        try:
            got = [outcome(lambda: awaiter(3).send(None))]
            c = awaiter(3)
            got.append(outcome(lambda: c.send(None)))
            got.append(outcome(lambda: c.send("in")))
            got.append(outcome(lambda: c.send(None)))
        finally:
            g["gen_based"] = gen_based
        c = awaits_gen_based(3)
        expected += [outcome(lambda: c.send(None)), outcome(lambda: c.send("in")),
                     outcome(lambda: c.send(None))]
        assert repr(got) == repr(expected)
    s = stats(w)
    assert s["resumes"] >= 4 and s["cpython_resumes"] == 0, s
    assert_tier1(w, gen_based)
