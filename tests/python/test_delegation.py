"""`yield from` and `await` chains. A generator of ours suspended in a delegation takes a
step by stepping its delegate first, its own code not running when the delegate yields
(`generator::delegate`); when the delegate returns or raises, its code resumes at the
Send, which takes the outcome. Each script drives a chain and records what CPython
shows of it meanwhile (values, return values, frames, running states, exception state,
release order, tracebacks); the record must be CPython's, with the chain's functions
tiered (the delegating ones alone, and all of them)."""
import inspect
import sys
import traceback

import pytest

from harness import outcome
from tiered import stats, tiered

# --- the chain's pieces ---------------------------------------------------------------------


def leaf(log, n):
    for i in range(n):
        x = yield i
        log.append(("leaf got", x))
    return "leaf done"


def middle(log, depth, n):
    if depth == 0:
        r = yield from leaf(log, n)
    else:
        r = yield from middle(log, depth - 1, n)
    log.append(("middle", depth, r))
    return r + "!"


def top(log, depth, n):
    r = yield from middle(log, depth, n)
    log.append(("top", r))
    yield "end"


def where(g):
    """What CPython shows of a suspended generator."""
    f = g.gi_frame
    return (inspect.getgeneratorstate(g), g.gi_running, type(g.gi_yieldfrom).__name__,
            f and f.f_lineno, f and f.f_lasti)


def peeks(log, box):
    """Looks at the generator delegating to it (box[0]) from inside each of its steps."""
    for i in range(3):
        f = sys._getframe(1)
        g = box[0]
        log.append((f.f_code.co_name, f.f_lineno, f.f_lasti, g.gi_running,
                    g.gi_yieldfrom, inspect.getgeneratorstate(g),
                    f.f_back is not None and f.f_back.f_code.co_name))
        yield i


def delegates_to_peeks(log, box):
    yield "first"
    r = yield from peeks(log, box)
    yield r


def reports_exc_info(log):
    log.append(repr(sys.exc_info()[1]))
    yield 1
    try:
        raise KeyError("inner")
    except KeyError:
        log.append(repr(sys.exc_info()[1]))
        yield 2
    log.append(repr(sys.exc_info()[1]))
    yield 3


def delegates_in_except(log):
    try:
        raise ValueError("outer's")
    except ValueError:
        yield from reports_exc_info(log)
        log.append(repr(sys.exc_info()[1]))
    yield from reports_exc_info(log)


def raises_later(log, n):
    for i in range(n):
        yield i
    raise ValueError(f"after {n}")


def catches_around_yield_from(log, n):
    try:
        yield from raises_later(log, n)
    except ValueError as e:
        log.append(("caught", str(e), [(t.name, t.lineno) for t in traceback.extract_tb(e.__traceback__)]))
    yield "after"
    yield from raises_later(log, 1)


def chain_that_raises(log, depth):
    if depth == 0:
        yield from raises_later(log, 2)
    else:
        yield from chain_that_raises(log, depth - 1)


class Countdown:
    """An iterator (not a generator) whose StopIteration carries a value; it records its
    release."""

    def __init__(self, n, log):
        self.n, self.log = n, log

    def __iter__(self):
        return self

    def __next__(self):
        if self.n == 0:
            raise StopIteration(("countdown", self.log[-1] if self.log else None))
        self.n -= 1
        if self.n == 1 and self.log and self.log[0] == "raise":
            raise KeyError("countdown")
        return self.n

    def __del__(self):
        self.log.append("countdown released")


def delegates_to_an_iterator(log, n):
    r = yield from Countdown(n, log)
    log.append(("got", r))
    r = yield from [10, 20]
    log.append(("list gave", r))
    yield from range(2)
    yield "end"


# --- coroutines -----------------------------------------------------------------------------


class Suspend:
    """An awaitable that suspends the coroutine stack once, returning what is sent in."""

    def __init__(self, tag):
        self.tag = tag

    def __await__(self):
        x = yield ("suspended", self.tag)
        if x == "raise":
            raise RuntimeError(f"raised in {self.tag}")
        return x


async def c_leaf(log, tag):
    a = await Suspend(tag + "1")
    log.append((tag, "a", a))
    b = await Suspend(tag + "2")
    log.append((tag, "b", b))
    return (a, b)


async def c_middle(log, depth):
    if depth == 0:
        r = await c_leaf(log, "leaf")
    else:
        r = await c_middle(log, depth - 1)
    log.append(("middle", depth, r))
    return r


async def c_catches(log):
    try:
        await c_middle(log, 2)
    except RuntimeError as e:
        log.append(("caught", str(e), [t.name for t in traceback.extract_tb(e.__traceback__)]))
    return await c_leaf(log, "again")


def drive(coro, sends):
    """Steps coroutine `coro` with each of `sends`, recording what each step gave."""
    out = []
    for v in sends:
        out.append(outcome(lambda: coro.send(v)))
        out.append(inspect.getcoroutinestate(coro))
    return out


# --- scripts --------------------------------------------------------------------------------


def s_chain(f):
    log = []
    g = f["top"](log, 3, 3)
    out = [outcome(lambda: next(g)), where(g)]
    for v in ("a", "b", "c", "d"):
        out += [outcome(lambda: g.send(v)), where(g)]
    return out + [outcome(lambda: next(g)), where(g), log]


def s_frames(f):
    log, box = [], []
    g = f["delegates_to_peeks"](log, box)
    box.append(g)
    out = [outcome(lambda: next(g))]
    for _ in range(5):
        out += [outcome(lambda: next(g)), where(g)]
    return out + [log]


def s_exc_info(f):
    log = []
    g = f["delegates_in_except"](log)
    out = []
    for _ in range(8):
        out.append(outcome(lambda: next(g)))
        # The caller's exception shows through a generator that handles none.
        try:
            raise IndexError("the caller's")
        except IndexError:
            out.append(outcome(lambda: next(g)))
    return out + [log]


def s_raises(f):
    log = []
    g = f["catches_around_yield_from"](log, 2)
    out = [outcome(lambda: next(g)) for _ in range(6)]
    h = f["chain_that_raises"](log, 3)
    out += [outcome(lambda: next(h)) for _ in range(4)]
    return out + [log]


def s_traceback(f):
    h = f["chain_that_raises"]([], 2)
    next(h), next(h)
    try:
        next(h)
    except ValueError as e:
        return [(t.name, t.lineno, t.line) for t in traceback.extract_tb(e.__traceback__)]


def s_iterator(f):
    log = []
    g = f["delegates_to_an_iterator"](log, 3)
    out = [outcome(lambda: next(g)) for _ in range(9)] + [list(log)]
    log2 = ["raise"]
    g2 = f["delegates_to_an_iterator"](log2, 3)
    out += [outcome(lambda: next(g2)) for _ in range(3)]
    # An iterator without send(): sending a value is an AttributeError at the Send.
    g3 = f["delegates_to_an_iterator"]([], 3)
    out += [outcome(lambda: next(g3)), outcome(lambda: g3.send(5)), outcome(lambda: next(g3))]
    return out + [log2]


def s_close_throw(f):
    log = []
    g = f["top"](log, 2, 4)
    out = [outcome(lambda: next(g)), outcome(lambda: g.send(1))]
    out.append(outcome(lambda: g.throw(KeyError("in"))))
    out.append(where(g))
    h = f["top"](log, 2, 4)
    out += [outcome(lambda: next(h)), outcome(h.close), where(h)]
    return out + [log]


def s_coroutines(f):
    log = []
    out = drive(f["c_middle"](log, 3), [None, 1, 2, 3])
    out += drive(f["c_middle"](log, 1), [None, "raise", 5])
    out += drive(f["c_catches"](log), [None, 1, "raise", 7, 8, 9])
    return out + [log]


def s_profile_comes_on(f):
    """A profile function set by the delegate sees the delegating generator's steps."""
    log = []
    names = {"top", "middle", "leaf"}

    def prof(frame, event, arg):
        if frame.f_code.co_name in names:
            log.append((frame.f_code.co_name, event))

    g = f["top"](log, 1, 4)
    out = [outcome(lambda: next(g))]
    sys.setprofile(prof)
    try:
        out += [outcome(lambda: g.send(1)), outcome(lambda: g.send(2))]
    finally:
        sys.setprofile(None)
    out += [outcome(lambda: g.send(3)), outcome(lambda: g.send(4))]
    return out + [log]


SCRIPTS = {
    "chain": s_chain,
    "frames": s_frames,
    "exc-info": s_exc_info,
    "raises": s_raises,
    "traceback": s_traceback,
    "iterator": s_iterator,
    "close-throw": s_close_throw,
    "coroutines": s_coroutines,
    "profile-comes-on": s_profile_comes_on,
}

#: The functions that delegate (`yield from`, `await`), and the ones they delegate to.
DELEGATING = ["top", "middle", "delegates_to_peeks", "delegates_in_except",
              "catches_around_yield_from", "chain_that_raises", "delegates_to_an_iterator",
              "c_middle", "c_catches"]
DELEGATES = ["leaf", "peeks", "reports_exc_info", "raises_later", "c_leaf"]

#: Scripts whose steps CPython's loop may take: throw() and close() into a delegating
#: generator, and steps with a profile function set.
CPYTHON_STEPS = {"close-throw", "profile-comes-on"}


def functions(which):
    """The module's functions by name, those in `which` tiered (a fresh wrapper each)."""
    g = globals()
    return {name: tiered(g[name], strict=True) if name in which else g[name]
            for name in DELEGATING + DELEGATES}


@pytest.mark.parametrize("tier_delegates", [False, True], ids=["delegates-plain", "all-tiered"])
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_delegation_agrees_with_cpython(name, tier_delegates):
    script = SCRIPTS[name]
    # The module's globals are what the functions call: swap the tiered ones in.
    g = globals()
    plain = {n: g[n] for n in DELEGATING + DELEGATES}
    expected = script(plain)
    which = DELEGATING + (DELEGATES if tier_delegates else [])
    # (Resumption counters are per code, shared by every wrapper of it: compare deltas.)
    before = {n: stats(tiered(plain[n])) for n in which}
    for _ in range(3):
        f = functions(which)
        g.update(f)
        try:
            got = script(f)
        finally:
            g.update(plain)
        assert repr(got) == repr(expected), f"{name}:\n  CPython: {expected!r}\n  tiered:  {got!r}"
        for n in which:
            s = stats(f[n])
            assert s["fallback_calls"] == 0 and s["unsupported"] == [], (n, s)
    after = {n: stats(tiered(plain[n])) for n in which}
    delta = {n: {k: after[n][k] - before[n][k] for k in ("resumes", "cpython_resumes")}
             for n in which}
    assert sum(d["resumes"] for d in delta.values()) > 0, delta
    if name not in CPYTHON_STEPS:
        assert all(d["cpython_resumes"] == 0 for d in delta.values()), delta


def test_a_long_delegating_chain_counts_its_steps_in_our_tiers():
    """A long chain of tiered generators inside `yield from` gives CPython's values, and
    every level's every step counts as a resumption in our tiers (delegated steps
    included), none as one in CPython's loop. (That the delegating code does not run is
    not observable; callgrind shows it: see the README.)"""
    t_middle = tiered(middle, strict=True)
    g = globals()
    saved = g["middle"]
    g["middle"] = t_middle
    before = stats(t_middle)
    try:
        for _ in range(30):
            log = []
            assert list(t_middle(log, 4, 20)) == list(range(20))
        s = stats(t_middle)
    finally:
        g["middle"] = saved
    assert s["cpython_resumes"] == before["cpython_resumes"], s
    assert s["resumes"] - before["resumes"] >= 30 * 5 * 20, s


def test_delegated_steps_on_threads_that_switch_all_the_time():
    """Four threads drive chains whose delegates return, raise and make the thread
    switch (the GIL changes hands inside delegated steps); each gets CPython's values."""
    import threading

    g = globals()
    plain = {n: g[n] for n in ("middle", "leaf", "chain_that_raises", "raises_later")}

    def chain(n):
        total = 0
        for k in range(n):
            try:
                if k % 3 == 0:
                    yield from g["chain_that_raises"]([], k % 4)
                total += len((yield from g["middle"]([], k % 6, k % 11)))
            except ValueError as e:
                total -= len(str(e))
        return total

    def drive(f, out, i):
        acc = []
        it = f(200)
        try:
            while True:
                acc.append(next(it))
        except StopIteration as e:
            acc.append(("returned", e.value))
        out[i] = acc

    expected = [None]
    drive(chain, expected, 0)
    old = sys.getswitchinterval()
    g.update({n: tiered(f, strict=True) for n, f in plain.items()})
    try:
        sys.setswitchinterval(1e-6)
        t_chain = tiered(chain, strict=True)
        for _ in range(3):
            out = [None] * 4
            threads = [threading.Thread(target=drive, args=(t_chain, out, i)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert all(o == expected[0] for o in out), out
    finally:
        sys.setswitchinterval(old)
        g.update(plain)
