"""Async generators (`async def` with `yield`) run in our tiers: the object is a subtype of
`types.AsyncGeneratorType` laid out as CPython's, and the awaitables its `__anext__()`,
`asend()`, `athrow()` and `aclose()` return are ours (subtypes of CPython's), so every
step of the body runs in tier 1 or native code: under `async for` in tiered code or in
CPython, under asyncio (with its firstiter and finalizer hooks) and driven by hand.

The harness drains each one without an event loop (`__anext__()` until
StopAsyncIteration, each awaitable sent None until it finishes); the scripts drive the
awaitables step by step, on CPython's objects and on ours alike."""
import asyncio
import gc
import inspect
import sys
import types

import pytest

from harness import assert_tier1, cases, check, counted_ops, outcome
from test_coroutines import ACM, Suspends, Ticker
from tiered import stats, tiered


async def simple(n):
    for i in range(n):
        yield i * i


async def awaits_between(n):
    for i in range(n):
        got = await Suspends(("await", i), i)
        yield got


async def try_finally(log):
    try:
        yield 1
        await Suspends("in try", None)
        yield 2
    finally:
        log.append("finally")
        await Suspends("in finally", None)


async def raises_after(n):
    yield n
    raise KeyError("async generator failed")


async def raises_stop_iteration():
    yield 1
    raise StopIteration("PEP 479")


async def raises_stop_async_iteration():
    yield 1
    raise StopAsyncIteration("inside")


async def returns_early(n):
    for i in range(n):
        if i == 2:
            return
        yield i


async def locals_across_yields(n):
    a, f, s = 0, 1.5, "s"
    for i in range(n):
        a += i
        f *= 2
        s += str(i)
        yield a, f, s


async def iterates_others(n):
    async for x in simple(n):
        yield x + 1
    async for x in Ticker(n):
        yield ("tick", x)


async def async_with_inside(log):
    async with ACM(log) as v:
        yield v
        yield "in with"
    yield log


async def comprehension_inside(n):
    yield [x async for x in simple(n)]


# A tiered async generator, for `async for` over one of ours (GetAnext's and
# GetAwaitable's templates take its awaitables; CPython's take the generic paths).
tiered_simple = tiered(simple)


async def iterates_ours(n):
    async for x in tiered_simple(n):
        yield x
    try:
        async for x in tiered_simple:
            yield x
    except TypeError as e:
        yield str(e)
    agen = tiered_simple(n)
    yield await agen.__anext__()
    async for x in agen:
        yield ("rest", x)


class Noisy:
    """Logs its release, so the log shows when each yielded value is let go."""

    def __init__(self, log, n):
        self.log, self.n = log, n

    def __del__(self):
        self.log.append(("released", self.n))


async def yields_noisy(log, n):
    for i in range(n):
        yield Noisy(log, i)
        log.append(("resumed", i))


async def drops_each(log, n):
    # Each value passes through the wrapper a yield makes and the awaitable unwraps
    # (ours are reused from a free list): the value must be released exactly when
    # CPython releases it, once nothing but the loop variable holds it. (The callee is
    # plain, so CPython runs it for the reference run; tiered code's calls translate it.)
    async for x in yields_noisy(log, n):
        log.append(("got", x.n))
    del x
    async for x in yields_noisy(log, n):
        log.append(("kept", x.n))
        yield x.n
    yield log


async def in_order(node):
    if node is None:
        return
    left, value, right = node
    async for v in in_order(left):
        yield v
    yield value
    async for v in in_order(right):
        yield v


def tree_of(values):
    if not values:
        return None
    i = len(values) // 2
    return (tree_of(values[:i]), values[i], tree_of(values[i + 1:]))


async def walks_tree(n):
    # async_generators' shape: every value re-yielded by each enclosing generator.
    async for v in in_order(tree_of(list(range(n)))):
        yield v


ROWS = (
    (simple, (4,)),
    (drops_each, ([], 3)),
    (walks_tree, (40,)),
    (iterates_ours, (4,)),
    (awaits_between, (3,)),
    (try_finally, ([],)),
    (raises_after, (5,)),
    (raises_stop_iteration, ()),
    (raises_stop_async_iteration, ()),
    (returns_early, (5,)),
    (locals_across_yields, (4,)),
    (iterates_others, (3,)),
    (async_with_inside, ([],)),
    (comprehension_inside, (3,)),
)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS))
def test_async_generators_agree_with_cpython(f, args, kwargs):
    check(f, *args, **kwargs)


# --- scripts: the awaitables step by step -------------------------------------------


def awaited(aw):
    """Runs awaitable `aw` to its end without an event loop: what it yielded on the way
    and how it ended."""
    it = aw.__await__()
    seen = []
    try:
        while len(seen) < 100:
            seen.append(it.send(None))
    except StopIteration as e:
        return ("value", e.value, seen)
    except BaseException as e:  # noqa: BLE001 - the script compares every exception
        return ("raised", type(e).__name__, str(e), seen)
    return ("unfinished", seen)


async def echo(log):
    try:
        x = yield "first"
        log.append(x)
        y = await Suspends("awaiting", 7)
        log.append(y)
        z = yield "second"
        log.append(z)
    except ValueError as e:
        log.append(("caught", str(e)))
        yield "after catch"
    finally:
        log.append("finally")
    yield "end"


async def ignores_exit(log):
    try:
        yield 1
    except GeneratorExit:
        log.append("ignoring")
        yield 2


def suspended_in_await(g):
    """`g`'s first `__anext__()` left suspended in the await inside it (the generator
    running asynchronously), with its iterator."""
    awaited(g.__anext__())
    it = g.__anext__().__await__()
    return it, it.send(None)


SCRIPTS = {
    "anext-asend": (echo, lambda g, log: [
        awaited(g.__anext__()), awaited(g.asend("sent")), awaited(g.asend("more")),
        awaited(g.__anext__()), awaited(g.__anext__()), log]),
    "just-started-send": (echo, lambda g, log: [
        awaited(g.asend("x")), awaited(g.__anext__()), log]),
    "athrow": (echo, lambda g, log: [
        awaited(g.__anext__()), awaited(g.athrow(ValueError("in"))),
        awaited(g.__anext__()), awaited(g.__anext__()), awaited(g.athrow(KeyError)), log]),
    "athrow-unhandled": (echo, lambda g, log: [
        awaited(g.__anext__()), awaited(g.athrow(KeyError("k"))),
        awaited(g.__anext__()), awaited(g.aclose()), log]),
    "athrow-arguments": (echo, lambda g, log: [
        awaited(g.__anext__()), awaited(g.athrow()), awaited(g.athrow(1)),
        awaited(g.athrow(ValueError, ValueError("x"), 5)), awaited(g.athrow(ValueError, "v")),
        log]),
    "aclose": (echo, lambda g, log: [
        awaited(g.__anext__()), awaited(g.aclose()), awaited(g.aclose()),
        awaited(g.__anext__()), g.ag_frame, log]),
    "aclose-unstarted": (echo, lambda g, log: [
        awaited(g.aclose()), awaited(g.__anext__()), log]),
    "aclose-ignored": (ignores_exit, lambda g, log: [
        awaited(g.__anext__()), awaited(g.aclose()), awaited(g.__anext__()), log]),
    "reuse": (echo, lambda g, log: (lambda a: [
        awaited(a), awaited(a), outcome(lambda: a.send(None)), outcome(lambda: a.throw(KeyError)),
        log])(g.__anext__())),
    "already-running": (echo, lambda g, log: (lambda it_v: [
        it_v[1], g.ag_running, awaited(g.__anext__()), awaited(g.aclose()),
        awaited(g.athrow(KeyError)), outcome(lambda: it_v[0].send("resumed")),
        g.ag_running, log])(suspended_in_await(g))),
    "throw-while-awaiting": (echo, lambda g, log: (lambda it_v: [
        it_v[1], outcome(lambda: it_v[0].throw(ValueError("into the await"))),
        awaited(g.__anext__()), awaited(g.__anext__()), log])(suspended_in_await(g))),
    "close-awaitable": (echo, lambda g, log: (lambda a: [
        outcome(a.close), awaited(a), awaited(g.__anext__()), log])(g.__anext__())),
    "attributes": (echo, lambda g, log: [
        g.ag_running, g.ag_await, g.ag_frame.f_lineno, g.ag_code.co_name, g.__qualname__,
        isinstance(g, types.AsyncGeneratorType), inspect.isasyncgen(g),
        type(g.__anext__()).__name__, type(g.aclose()).__name__,
        awaited(g.__anext__()), g.ag_frame.f_lineno, g.ag_frame.f_locals,
        repr(g).split(" at ")[0], log]),
}


def run_script(make, script):
    log = []
    return script(make(log), log)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_agree_with_cpython(name):
    f, script = SCRIPTS[name]
    expected = run_script(f, script)
    w = tiered(f, strict=True)
    # (Counters are per code, shared by every wrapper of it: compare deltas.)
    before = stats(w)
    for _ in range(3):
        got = run_script(w, script)
        assert repr(got) == repr(expected), f"{name}:\n  CPython: {expected!r}\n  tiered:  {got!r}"
    s = stats(w)
    assert s["fallback_calls"] == 0 and s["unsupported"] == [], s
    assert s["resumes"] > before["resumes"], s
    # An exception thrown into the await leaves the awaited iterator; the step after it
    # starts past the `await` loop, where our code has no resume point: CPython's loop
    # runs that one step.
    if name != "throw-while-awaiting":
        assert s["cpython_resumes"] == before["cpython_resumes"], s


# --- asyncio, hooks, finalization -------------------------------------------------------


async def ticks(log, n):
    try:
        for i in range(n):
            await asyncio.sleep(0)
            yield i
    finally:
        log.append("finally")
        await asyncio.sleep(0)
        log.append("after an await in finally")


async def consumes(make, log, n):
    out = []
    async for x in make(log, n):
        out.append(x)
    async for x in make(log, n):
        if x == 1:
            break
    # (The aclose() task asyncio's finalizer hook made runs meanwhile, to its end.)
    for _ in range(3):
        await asyncio.sleep(0)
    log.append("consumer done")
    return out


def test_asyncio_runs_tiered_async_generators_and_finalizes_abandoned_ones():
    # The second loop abandons its generator: asyncio's finalizer hook schedules its
    # aclose(), which runs the `finally` (with its await) on the loop.
    w = tiered(ticks, strict=True)
    runs = []
    for make in (ticks, w):
        log = []
        runs.append((asyncio.run(consumes(make, log, 4)), log))
    assert runs[0] == runs[1], runs
    s = stats(w)
    assert s["resumes"] >= 8 and s["cpython_resumes"] == 0, s
    assert_tier1(w, ticks)


def hooks_script(make):
    calls = []
    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=lambda g: calls.append(("firstiter", g.__qualname__)),
                           finalizer=lambda g: calls.append(("finalizer", g.__qualname__)))
    try:
        g = make([])
        calls.append(make([]).ag_running)  # never iterated: no hook
        calls.append(awaited(g.__anext__()))
        calls.append(awaited(g.__anext__()))
        del g
        gc.collect()
    finally:
        sys.set_asyncgen_hooks(*old)
    return calls


def test_asyncgen_hooks_see_tiered_async_generators():
    assert hooks_script(tiered(echo, strict=True)) == hooks_script(echo)


def test_unfinished_async_generator_without_a_finalizer_is_closed_when_collected():
    def script(make):
        unraisable = []
        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda u: unraisable.append((type(u.exc_value).__name__, str(u.exc_value)))
        try:
            log = []
            g = make(log)
            awaited(g.__anext__())
            del g
            gc.collect()
            log2 = []
            g = make(log2)
            awaited(g.__anext__())
            awaited(g.__anext__())
            del g
            gc.collect()
        finally:
            sys.unraisablehook = old_hook
        return log, log2, unraisable

    assert sys.get_asyncgen_hooks() == (None, None)
    assert script(tiered(try_finally, strict=True)) == script(try_finally)


def test_a_step_cpython_runs_under_a_tracer_keeps_async_generator_semantics():
    # With a trace function set, steps run in CPython's loop on our object: returns end
    # in StopAsyncIteration, and PEP 479 names the async generator.
    def script(f):
        out = []
        for make in (lambda: f(raises_stop_iteration), lambda: f(returns_early)):
            g = make()
            out.append(awaited(g.__anext__()))
            sys.settrace(lambda *a: None)
            try:
                out.append(awaited(g.__anext__()))
                out.append(awaited(g.__anext__()))
                out.append(awaited(g.__anext__()))
            finally:
                sys.settrace(None)
        return out

    def with_args(fn):
        return fn() if fn is raises_stop_iteration else fn(5)

    def tiered_args(fn):
        w = tiered(fn, strict=True)
        return w() if fn is raises_stop_iteration else w(5)

    before = stats(tiered(returns_early))["cpython_resumes"]
    assert repr(script(tiered_args)) == repr(script(with_args))
    assert stats(tiered(returns_early))["cpython_resumes"] > before


def test_the_type_reads_as_async_generator():
    g = tiered(simple, strict=True)(3)
    assert type(g).__name__ == "async_generator"
    assert type(g).__mro__[1] is types.AsyncGeneratorType
    assert repr(g).startswith("<async_generator object simple at ")
    assert awaited(g.__anext__()) == ("value", 0, [])
    assert awaited(g.aclose()) == ("value", None, [])


def test_async_for_over_ours_stays_native():
    # `async for` over a tiered async generator in native code: the step's awaitable
    # (GetAnext) and the wrapped yield (AsyncGenWrap) take their templates, and so does
    # awaiting one of its awaitables by hand (GetAwaitable).
    import os

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")

    # Both made here, so both are compiled while counting is on.
    inner = tiered(types.FunctionType(simple.__code__.replace(co_name="simple_counted"), globals()))

    async def relay(n):
        async for x in inner(n):
            yield x
        yield await inner(n).__anext__()

    w = tiered(relay, strict=True)

    def drain(agen):
        out = []
        while True:
            aw = agen.__anext__()
            try:
                while True:
                    aw.send(None)
            except StopIteration as e:
                out.append(e.value)
            except StopAsyncIteration:
                return out

    def warm_up():
        for _ in range(60):
            assert drain(w(3)) == [0, 1, 4, 0]

    def measured():
        for _ in range(10):
            drain(w(3))

    counts = counted_ops(warm_up, measured)
    # Per drain: 4 steps of `async for`; 4 yields in relay, 3 + 1 in inner; 1 await.
    for op, runs in (("GetAnext", 40), ("AsyncGenWrap", 80), ("GetAwaitable", 10)):
        assert counts[op]["tier2"] == runs and counts[op]["tier1"] == 0, (op, counts[op])


async def asks(log):
    # An async generator of ours whose `await`s suspend its consumer's driver, and get
    # what the driver sends back.
    got = await Suspends("first await", 1)
    log.append(got)
    x = yield ("yielded", got)
    log.append(x)
    got = await Suspends("second await", 2)
    yield ("again", got)


tiered_asks = tiered(asks)


async def awaits_awaitables(make, log):
    # `await` on an awaitable of ours takes its result as a status, not through the
    # StopIteration its send() raises: the values sent through it, its results, the
    # error of a reused one must stay CPython's.
    agen = make(log)
    first = await agen.__anext__()
    second = await agen.asend("sent in")
    aw = agen.__anext__()
    try:
        await aw
    except StopAsyncIteration:
        log.append("done")
    try:
        await aw
    except RuntimeError as e:
        log.append(str(e))
    return first, second, log


def drive(coro, sends):
    """Steps coroutine `coro`, sending each of `sends` in turn after the first step: what
    it yielded on the way and how it ended."""
    seen = []
    try:
        seen.append(coro.send(None))
        for v in sends:
            seen.append(coro.send(v))
    except StopIteration as e:
        return ("value", e.value, seen)
    except BaseException as e:  # noqa: BLE001 - compared as a whole
        return ("raised", type(e).__name__, str(e), seen)
    return ("unfinished", seen)


def test_awaiting_our_awaitables_sends_and_reports_as_cpython():
    def run(f, make):
        return drive(f(make, []), ["to first", "to second", "to third", "to fourth"])

    expected = run(awaits_awaitables, asks)
    w = tiered(awaits_awaitables, strict=True)
    before = stats(tiered_asks)["resumes"]
    for _ in range(3):
        assert repr(run(w, tiered_asks)) == repr(expected)
    assert stats(w)["fallback_calls"] == 0
    assert stats(tiered_asks)["resumes"] > before
