"""Generators run in our tiers: the generator object is CPython's own kind (a subtype of
`types.GeneratorType`, its frame in CPython's layout), its body runs in tier 1 or native
code at every `next()`, `send()`, `for` and `yield from`. `throw()`, `close()` and
finalization are CPython's own methods working on the same frame.

Two kinds of case: generator functions the harness drains (every yielded value, the
exception, the side effects must be CPython's), and scripts that drive a generator
through send/throw/close and its attributes, run on CPython's generator and on ours."""
import gc
import inspect
import os
import sys
import traceback
import types
import weakref

import pytest

from harness import cases, check, counted_ops, outcome
from tiered import stats, tiered

# --- generator functions, drained by the harness ------------------------------------------


def simple(n):
    for i in range(n):
        yield i * i


def numbers_live_across_yields(n):
    i, acc, f = 0, 0, 0.5
    while i < n:
        acc += i
        f *= 1.5
        yield acc, f
        i += 1
    yield "end", acc, f


def many_locals(n):
    a, b, c, d, e, f, g, h = range(8)
    s = [a, b, c, d]
    t = (e, f, g, h)
    for i in range(n):
        a, b, c, d, e, f, g, h = b, c, d, e, f, g, h, a + i
        yield a + b + c + d + e + f + g + h, len(s), t[i % 4]
    u, v, w, x, y, z = "uvwxyz"
    yield u + v + w + x + y + z


def yield_inside_expressions(n):
    out = []
    for i in range(n):
        out.append((i, (yield i), i + 1))
        x = [1, (yield "in a list"), 3]
        y = i + ((yield "in a sum") or 0)
        out.append((x, y, max(i, (yield "an argument") or 0)))
    yield out


def yield_in_a_method_call(xs):
    out = []
    for x in xs:
        out.append((yield x))
    yield out


def raises_after_yield(n):
    yield n
    raise ValueError("generator body failed")


def raises_before_first_yield(x):
    yield 10 // x


def stop_iteration_inside(n):
    yield n
    raise StopIteration("PEP 479 makes this a RuntimeError")


def next_on_exhausted_iterator_inside():
    it = iter([1])
    yield next(it)
    yield next(it)


def yield_from_a_list(xs):
    yield from xs
    yield "after"


def yield_from_a_generator(n):
    r = yield from simple(n)
    yield "returned", r
    r = yield from returns_value(n)
    yield "returned", r


def returns_value(n):
    yield n
    return n * 10


def yield_from_a_builtin_iterator(d):
    yield from d.items()
    yield from range(3)
    yield from "ab"


def try_finally_around_yields(log):
    try:
        log.append("start")
        yield 1
        yield 2
    finally:
        log.append("finally")
    yield 3


def yield_inside_except(n):
    for i in range(n):
        try:
            raise KeyError(i)
        except KeyError as e:
            yield ("handling", repr(e), repr(sys.exc_info()[1]))
            yield ("still", repr(sys.exc_info()[1]))
        yield ("after", sys.exc_info()[1])


class Ctx:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def __enter__(self):
        self.log.append(("enter", self.name))
        return self.name

    def __exit__(self, *exc):
        self.log.append(("exit", self.name, exc[0] and exc[0].__name__))
        return False


def yield_inside_with(log, n):
    with Ctx(log, "outer") as o:
        for i in range(n):
            with Ctx(log, i) as name:
                yield o, name


def cells_and_closures(n):
    k = n * 2

    def add(x):
        return x + k

    for i in range(n):
        yield add(i)
        k += 1


def deletes_and_unbound(n):
    x = n
    yield x
    del x
    yield "deleted"
    yield x  # UnboundLocalError


def recursive_tree(depth):
    if depth == 0:
        yield "leaf"
        return
    yield ("node", depth)
    yield from recursive_tree(depth - 1)
    yield from recursive_tree(depth - 1)


def generator_expressions(xs):
    yield sum(x * x for x in xs)
    yield list(x for x in xs if x % 2)
    g = (x + 1 for x in xs)
    yield next(g), list(g)


def nested_generator_function(n):
    def inner(m):
        for i in range(m):
            yield i, m

    for i in range(n):
        yield list(inner(i))


def break_out_of_loop(n):
    for i in range(n):
        if i == 3:
            break
        yield i
    yield "broke"


def infinite(start):
    while True:
        yield start
        start += 1


class IterRaises:
    def __iter__(self):
        raise LookupError("no iterator")


def yield_from_in_a_loop(n):
    # GetYieldFromIter's template in a loop: lists, strs, generators (ours and CPython's),
    # and operands whose iter() raises inside `try`.
    sources = [[1, 2], "ab", 5, IterRaises(), simple(n), cpython_generator(n), (), None]
    for src in sources:
        try:
            r = yield from src
            yield ("returned", r)
        except (TypeError, LookupError) as e:
            yield (type(e).__name__, str(e))


def cpython_generator(n):
    yield from range(n)
    return "done"


def yield_none_and_bare_yield():
    yield
    x = yield None
    yield x


def ints_boxed_at_yields(lo, hi):
    # The loop variable (live across the yield) and the yielded int are unboxed ints
    # boxed at each yield: small ones are CPython's own objects, the rest new ones.
    for i in range(lo, hi):
        yield i
        yield i * 3 - 1, (i + 1) is SMALL, i == 256
        yield -i


SMALL = 7


def values_that_trade_places(n):
    """Locals that trade places between yields: the held values' moves into their
    resume parameters' registers (`generator::held`) may form cycles."""
    a, b, c = 1, 2.5, "x"
    for i in range(n):
        a, b, c = c, a, b
        yield a, b, c
        b, a = a, b
        yield (a, b, c), i
    yield a, b, c


def yields_its_locals(n):
    """The yielded value is also a local, held in its slot (a copy leaves)."""
    out = []
    for i in range(n):
        x = [i]
        got = yield x
        out.append((x, got))
        x.append(i * 2.5)
        f = i / 3
        yield f
        out.append(f)
    yield out


def ignores_what_is_sent(n):
    for i in range(n):
        yield i


def sends_objects_a_generator_ignores(items):
    """Each value sent in dies unused at the yield it resumes: released there once (the
    items' reference counts, which the harness compares, show one kept or lost)."""
    g = ignores_what_is_sent(len(items))
    out = [next(g)]
    for it in items[1:]:
        out.append(g.send(it))
    return out


ROWS = (
    (sends_objects_a_generator_ignores, ([[1], object(), "s", {"k": 2}] * 20,)),
    (values_that_trade_places, (5,)),
    (yields_its_locals, (4,)),
    (simple, (5,)),
    (simple, (0,)),
    (numbers_live_across_yields, (6,)),
    (many_locals, (9,)),
    (yield_inside_expressions, (3,)),
    (yield_in_a_method_call, ([1, 2, 3],)),
    (raises_after_yield, (1,)),
    (raises_before_first_yield, (0,)),
    (raises_before_first_yield, (5,)),
    (stop_iteration_inside, (2,)),
    (next_on_exhausted_iterator_inside, ()),
    (yield_from_a_list, ([7, 8],)),
    (yield_from_a_generator, (3,)),
    (yield_from_a_builtin_iterator, ({"a": 1, "b": 2},)),
    (try_finally_around_yields, ([],)),
    (yield_inside_except, (3,)),
    (yield_inside_with, ([], 3)),
    (cells_and_closures, (4,)),
    (deletes_and_unbound, (3,)),
    (recursive_tree, (3,)),
    (generator_expressions, ([1, 2, 3, 4],)),
    (nested_generator_function, (4,)),
    (break_out_of_loop, (10,)),
    (infinite, (5,)),
    (yield_none_and_bare_yield, ()),
    (yield_from_in_a_loop, (3,)),
    (ints_boxed_at_yields, (-12, 300)),
    (ints_boxed_at_yields, (2**62 - 3, 2**62 + 3)),
)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS))
def test_generator_functions_agree_with_cpython(f, args, kwargs):
    check(f, *args, **kwargs)


# --- scripts: send, throw, close, attributes ------------------------------------------------



def accumulator(log):
    total = 0
    while True:
        try:
            x = yield total
        except ValueError as e:
            log.append(("caught", str(e)))
            x = -1
        except GeneratorExit:
            log.append("exit")
            raise
        if x is None:
            return total
        total += x
        log.append(("added", x))


def delegating(log):
    r = yield from accumulator(log)
    log.append(("delegate got", r))
    yield "last"


def resists_close():
    try:
        yield 1
    except GeneratorExit:
        yield "no"


def runs_itself(box):
    yield next(box[0])


def sees_its_frame():
    f = sys._getframe()
    yield f.f_code.co_name, f.f_back.f_code.co_name
    local = "here"
    yield sorted(sys._getframe().f_locals), local


def handles_its_own(log):
    yield repr(sys.exc_info()[1])
    try:
        raise KeyError("inner")
    except KeyError:
        log.append(repr(sys.exc_info()[1]))
    yield repr(sys.exc_info()[1])
    yield repr(sys.exc_info()[1])


def counts_with_numbers(log):
    """Its values stay in registers while it is suspended (`generator::held`): an int
    and a float that live unboxed, a loop counter, the value sent in."""
    total, scale = 0, 1.5
    for i in range(4):
        total += i
        scale *= 2.0
        x = yield i
        log.append((i, total, scale, x))
    yield "done"


def holds_unboxed_locals(log):
    """Locals that native code keeps unboxed (a range's item, a product, a float)
    suspended at a yield of something else: boxed there all the same, so the collector
    sees the ints and the float CPython's frame holds."""
    for i in range(300, 303):
        y = i * 3
        z = y / 2
        yield "step"
        log.append((i, y, z))


def holds_itself(log):
    me = yield "first"
    try:
        while True:
            yield me is not None
    finally:
        log.append(("finally", type(me).__name__))


def cleans_up_with_locals(log):
    for i in range(10):
        name = "item%d" % (i * 1000)
        try:
            yield name
        finally:
            log.append((i, name))


def referents(g):
    """What the garbage collector sees a suspended generator hold: its frame's objects
    (by type and value, in a stable order; ids differ between runs)."""
    shown = (int, float, str, list, tuple, type(None))
    return sorted((type(o).__name__, repr(o) if type(o) in shown else "")
                  for o in gc.get_referents(g) if not isinstance(o, types.CodeType))


def in_except(step):
    """`step`'s outcome, run while the caller handles an exception."""
    try:
        raise ValueError("the caller's")
    except ValueError:
        return outcome(step)


SCRIPTS = {
    # A generator's own handled-exception level starts empty: the caller's exception shows
    # through it, and is never saved into it.
    "exception-state": (handles_its_own, lambda g, log: [
        in_except(lambda: next(g)), in_except(lambda: next(g)), outcome(lambda: next(g)),
        outcome(lambda: next(g)), log]),
    "send": (accumulator, lambda g, log: [
        outcome(lambda: g.send(1)), outcome(lambda: next(g)), outcome(lambda: g.send(5)),
        outcome(lambda: g.send(7)), outcome(lambda: g.send(None)), outcome(lambda: next(g)),
        outcome(lambda: g.send(3)), log]),
    "send-to-a-new-generator": (accumulator, lambda g, log: [
        outcome(lambda: g.send(1)), outcome(lambda: g.send(None)), log]),
    "throw-caught-inside": (accumulator, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: g.throw(ValueError("boom"))),
        outcome(lambda: g.send(4)), outcome(lambda: g.throw(KeyError("k"))),
        outcome(lambda: next(g)), log]),
    "throw-arguments": (accumulator, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: g.throw()), outcome(lambda: g.throw(1, 2, 3, 4)),
        outcome(lambda: g.throw(1)), outcome(lambda: g.throw(ValueError("v"), "other")),
        outcome(lambda: g.throw(ValueError, None, 5)), outcome(lambda: g.throw(ValueError, "as value")),
        outcome(lambda: g.throw(ValueError, ValueError("inst"), None)),
        outcome(lambda: g.throw(KeyError)), outcome(lambda: g.throw(ValueError)), log]),
    "close-a-new-generator": (accumulator, lambda g, log: [
        outcome(g.close), outcome(lambda: next(g)), log]),
    "throw-into-a-new-generator": (accumulator, lambda g, log: [
        outcome(lambda: g.throw(ValueError("early"))), outcome(lambda: next(g)), log]),
    "close": (accumulator, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: g.send(2)), outcome(g.close),
        outcome(g.close), outcome(lambda: next(g)), log]),
    "yield-from-send-throw-close": (delegating, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: g.send(3)),
        outcome(lambda: g.gi_yieldfrom is not None),
        outcome(lambda: g.throw(ValueError("through"))), outcome(lambda: g.send(2)),
        outcome(lambda: g.send(None)), outcome(lambda: next(g)), log]),
    "yield-from-close": (delegating, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: g.send(3)), outcome(g.close), log]),
    "close-ignored": (lambda log: resists_close(), lambda g, log: [
        outcome(lambda: next(g)), outcome(g.close), outcome(lambda: next(g))]),
    "already-executing": (lambda box: runs_itself(box), lambda g, box: [
        box.append(g), outcome(lambda: next(g)), outcome(lambda: next(g))]),
    "attributes": (accumulator, lambda g, log: [
        inspect.getgeneratorstate(g), g.gi_running, g.gi_suspended, g.gi_frame.f_lineno,
        g.gi_code.co_name, g.__name__, g.__qualname__, isinstance(g, types.GeneratorType),
        inspect.isgenerator(g), iter(g) is g, outcome(lambda: next(g)),
        inspect.getgeneratorstate(g), g.gi_suspended, g.gi_frame.f_lineno,
        sorted(inspect.getgeneratorlocals(g).items()), outcome(lambda: g.send(5)),
        sorted(g.gi_frame.f_locals.items()), outcome(lambda: g.send(None)),
        inspect.getgeneratorstate(g), g.gi_frame, g.gi_suspended]),
    "held-locals-read-between-steps": (counts_with_numbers, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: g.send("a")), referents(g),
        sorted(inspect.getgeneratorlocals(g).items()), outcome(lambda: g.send("b")),
        sorted(g.gi_frame.f_locals.items()), outcome(lambda: g.send("c")),
        outcome(lambda: next(g)), outcome(lambda: next(g)), log]),
    "held-then-frame-object": (counts_with_numbers, lambda g, log: [
        outcome(lambda: next(g)), sorted(g.gi_frame.f_locals.items()),
        outcome(lambda: g.send("a")), sorted(g.gi_frame.f_locals.items()),
        outcome(lambda: g.send("b")), referents(g), outcome(g.close), log]),
    "held-referents-of-unboxed-locals": (holds_unboxed_locals, lambda g, log: [
        outcome(lambda: next(g)), referents(g), outcome(lambda: next(g)), referents(g),
        outcome(lambda: next(g)), referents(g), outcome(lambda: next(g)), log]),
    "held-referents": (counts_with_numbers, lambda g, log: [
        referents(g), outcome(lambda: next(g)), referents(g), outcome(lambda: g.send(2**70)),
        referents(g), outcome(lambda: g.send(1.25)), referents(g), log]),
    "held-close-runs-finally-with-locals": (cleans_up_with_locals, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: next(g)), outcome(lambda: next(g)),
        outcome(g.close), outcome(lambda: next(g)), log]),
    "held-throw-with-locals": (cleans_up_with_locals, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: next(g)),
        outcome(lambda: g.throw(KeyError("k"))), outcome(lambda: next(g)), log]),
    # Left suspended: freed when the script returns, its finalizer runs the finally
    # (from the filled frame) before the log is compared.
    "held-freed-while-suspended": (cleans_up_with_locals, lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: next(g)), log]),
    "frames-inside": (lambda log: sees_its_frame(), lambda g, log: [
        outcome(lambda: next(g)), outcome(lambda: next(g)), outcome(lambda: next(g))]),
}


#: Scripts that throw into or close a generator while it delegates (see the test).
DELEGATING = {"yield-from-send-throw-close", "yield-from-close"}


def run_script(genfunc, script):
    arg = []
    g = genfunc(arg)
    return script(g, arg)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_agree_with_cpython(name):
    genfunc, script = SCRIPTS[name]
    expected = run_script(genfunc, script)
    # The generator function itself tiered (the lambdas make their generator with a
    # tiered function of its own).
    target = genfunc if not genfunc.__name__ == "<lambda>" else None
    if target is None:
        inner = genfunc([]).gi_code.co_name
        target = globals()[inner]
        w = tiered(target, strict=True)
        wrapped = {"resists_close": lambda a: w(), "runs_itself": lambda a: w(a),
                   "sees_its_frame": lambda a: w()}[inner]
    else:
        w = tiered(target, strict=True)
        wrapped = w
    # (Counters are per code, shared by every wrapper of it: compare deltas.)
    before = stats(w)
    for _ in range(3):
        got = run_script(wrapped, script)
        assert repr(got) == repr(expected), f"{name}:\n  CPython: {expected!r}\n  tiered:  {got!r}"
    s = stats(w)
    assert s["fallback_calls"] == 0 and s["unsupported"] == [], s
    assert s["resumes"] > before["resumes"], s
    # throw() and close() of a generator delegating to another (`yield from`) are
    # CPython's: it passes them on and finishes that step in its loop.
    if name not in DELEGATING:
        assert s["cpython_resumes"] == before["cpython_resumes"], s


def test_unfinished_generator_runs_its_finally_when_collected():
    for f in (try_finally_around_yields, tiered(try_finally_around_yields, strict=True)):
        log = []
        g = f(log)
        next(g)
        r = weakref.ref(g)
        del g
        assert r() is None
        assert log == ["start", "finally"], log
        gc.collect()


def test_a_suspended_generator_holding_itself_is_collected():
    """Its values held in registers (`generator::held`): the collector sees the cycle
    through our traversal, and the finalizer closes it from the filled frame."""
    w = tiered(holds_itself, strict=True)
    for f in (holds_itself, w, w, w):
        log = []
        g = f(log)
        next(g)
        g.send(g)
        r = weakref.ref(g)
        del g
        gc.collect()
        assert r() is None
        assert log == [("finally", "generator")], log
    assert stats(w)["resumes"] >= 6


def test_locals_are_released_when_the_generator_finishes():
    events = []

    class D:
        def __init__(self, name):
            self.name = name

        def __del__(self):
            events.append(("del", self.name))

    def gen(n):
        a = D("a")
        b = D("b")
        yield 1
        c = D("c")
        del b
        events.append("deleted b")
        yield 2
        events.append("returning")

    runs = []
    for f in (gen, tiered(gen, strict=True)):
        events.clear()
        events.append(list(f(1)))
        runs.append(list(events))
    assert runs[0] == runs[1], runs


def test_traceback_shows_the_generator_frame():
    def tb_lines(f):
        g = f(1)
        next(g)
        try:
            next(g)
        except ValueError as e:
            return [(fr.name, fr.lineno, fr.line) for fr in traceback.extract_tb(e.__traceback__)]

    assert tb_lines(tiered(raises_after_yield, strict=True)) == tb_lines(raises_after_yield)


def test_generator_methods_are_cpythons_and_the_type_reads_as_generator():
    g = tiered(simple, strict=True)(3)
    assert type(g).__name__ == "generator"
    assert repr(g).startswith("<generator object simple at ")
    assert type(g).__mro__[1] is types.GeneratorType
    assert list(g) == [0, 1, 4]
    with pytest.raises(TypeError):
        type(g)()


def test_a_generator_stays_correct_when_tracing_comes_on_mid_iteration():
    w = tiered(simple, strict=True)
    before = stats(w)
    g = w(6)
    got = [next(g), next(g)]
    seen = []

    def tracer(frame, event, arg):
        if frame.f_code is simple.__code__:
            seen.append(event)
        return tracer

    sys.settrace(tracer)
    try:
        got.append(next(g))
    finally:
        sys.settrace(None)
    got.extend(g)
    assert got == [0, 1, 4, 9, 16, 25]
    assert "call" in seen and "return" in seen, seen
    s = stats(w)
    assert s["cpython_resumes"] - before["cpython_resumes"] == 1, s
    assert s["resumes"] - before["resumes"] >= 4, s


class Held:
    """A local object (not a constant) that a frame's locals show."""

    def __repr__(self):
        return "Held()"


def keeps_locals(p):
    local = Held()
    n = p + 1
    yield n
    yield local


async def keeps_locals_async(p):
    local = Held()
    n = p + 1
    yield n
    yield local


def test_a_frame_in_the_traceback_of_an_exception_thrown_in_keeps_its_locals():
    # The exception raised at the yield leaves the generator: the traceback's frame of it
    # shows its locals at that point (resumed, before anything else ran), as CPython's
    # does; the frame keeps them alive.
    def locals_seen(gen_f, agen_f):
        g = gen_f(1)
        next(g)
        try:
            g.throw(ValueError("thrown"))
        except ValueError as e:
            out = [sorted((k, repr(v)) for k, v in e.__traceback__.tb_next.tb_frame.f_locals.items())]
        a = agen_f(1)
        try:
            a.__anext__().send(None)
        except StopIteration:
            pass
        try:
            a.athrow(ValueError("thrown")).send(None)
        except ValueError as e:
            out.append(sorted((k, repr(v)) for k, v in e.__traceback__.tb_next.tb_frame.f_locals.items()))
        return out

    expected = locals_seen(keeps_locals, keeps_locals_async)
    assert expected[0] == [("local", "Held()"), ("n", "2"), ("p", "1")]
    got = locals_seen(tiered(keeps_locals, strict=True), tiered(keeps_locals_async, strict=True))
    assert got == expected


def test_yield_from_stays_native():
    # GetYieldFromIter has a template: `yield from` in native code calls PyObject_GetIter
    # directly (the generators benchmark makes one per tree node).
    import os

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")

    fresh = types.FunctionType(
        yield_from_a_list.__code__.replace(co_name="yield_from_counted"), yield_from_a_list.__globals__
    )
    w = tiered(fresh, strict=True)

    def warm_up():
        for _ in range(60):
            assert list(w([1, 2])) == list(yield_from_a_list([1, 2]))

    def measured():
        for _ in range(10):
            list(w([1, 2]))

    counts = counted_ops(warm_up, measured)["GetYieldFromIter"]
    assert counts == {"tier1": 0, "tier2": 10, "deopts": 0}, counts


def test_ints_boxed_at_yields_keep_reference_counts():
    # Small ints boxed at a yield are CPython's cached objects, each taken with a new
    # reference (native code does it inline): after the generators are done, every
    # small int's count is what it was. (The counts are kept as big ints: a list of
    # small ones would hold references to the ints measured.)
    def gen(n):
        for i in range(n):
            yield i * 2 - 5

    def drain(times):
        for _ in range(times):
            for _ in w(300):
                pass

    w = tiered(gen, strict=True)
    assert list(w(300)) == list(gen(300))
    drain(60)
    ran = stats(w)
    before = [sys.getrefcount(v) + 10**9 for v in range(-5, 257)]
    drain(20)
    after = [sys.getrefcount(v) + 10**9 for v in range(-5, 257)]
    assert after == before
    # The steps counted ran in our tiers (natively, with tier 2 on), not CPython's loop.
    s = stats(w)
    assert s["resumes"] - ran["resumes"] >= 20 * 300 and s["cpython_resumes"] == ran["cpython_resumes"], s
    if os.environ.get("TIERED_JIT") != "0":
        assert s["native_resumes"] - ran["native_resumes"] >= 20 * 300, s
