"""Adversarial differential tests of the wrapper's native entry (the "slot trampoline":
the wrapper's vectorcall slot pointed at JIT code once a plain-positional function was
called twice in a row with the same argument types, see tiers/src/native/trampoline.rs).

Each test runs the same code under plain CPython and through `tiered` wrappers (fresh
namespaces, same names, so error messages agree) and compares results, exception types
and messages, and side effects; where it matters it also asserts whether the native entry
is installed (`stats(w)["native_entry"]`). Tests marked xfail(strict=True) document real
differences from CPython found by this file (see their reasons)."""

import cProfile
import ctypes
import functools
import gc
import operator
import os
import pstats
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import types
import weakref

import pytest

from tiered import UnsupportedError, stats, tiered

pytestmark = pytest.mark.skipif(os.environ.get("TIERED_JIT") == "0", reason="tier 2 is off (TIERED_JIT=0)")

REPEAT = max(2, int(os.environ.get("TIERED_TEST_REPEAT", "2")))


# ---------------------------------------------------------------------------------------
# helpers


def T(f, **kw):
    kw.setdefault("jit_threshold", 0)
    return tiered(f, **kw)


def entry(w):
    return stats(w)["native_entry"]


def installed(w, *args):
    """Calls `w` until its native entry is in place (a few calls at threshold 0)."""
    for _ in range(3):
        w(*args)
    assert entry(w), stats(w)
    return w


def warmed(w, *args):
    """`installed` for calls that raise: the entry is installed after them too."""
    for _ in range(3):
        outcome(w, *args)
    assert entry(w), stats(w)
    return w


def outcome(fn, *args, **kwargs):
    """What a call did, comparably: ("ok", type, repr) or ("err", type, message)."""
    try:
        r = fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - every exception is compared
        return ("err", type(e).__name__, str(e))
    if isinstance(r, types.GeneratorType):
        return ("gen", list(r))
    if isinstance(r, types.CoroutineType):
        try:
            r.send(None)
        except StopIteration as s:
            return ("coro", repr(s.value))
        raise AssertionError("coroutine did not finish")
    return ("ok", type(r).__name__, repr(r))


def twins(src, *names, extra=None, **kw):
    """`src` exec'd twice: a plain namespace and one whose `names` are tiered wrappers (so
    recursion and calls between them go through the wrappers)."""
    plain = {"__builtins__": __builtins__, **(extra or {})}
    exec(compile(textwrap.dedent(src), "<adversarial>", "exec"), plain)
    tier = {"__builtins__": __builtins__, **(extra or {})}
    exec(compile(textwrap.dedent(src), "<adversarial>", "exec"), tier)
    for n in names:
        tier[n] = T(tier[n], **kw)
    return plain, tier


def free_depth():
    """How many more plain Python frames fit below the recursion limit from here: changes
    if a path leaks or over-releases the thread's recursion counter."""

    def r(n):
        try:
            return r(n + 1)
        except RecursionError:
            return n

    return r(0)


def max_ok(fn):
    """The largest n (< 20000) for which fn(n) does not raise RecursionError."""
    lo, hi = 0, 20000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            fn(mid)
            lo = mid
        except RecursionError:
            hi = mid - 1
    return lo


# ---------------------------------------------------------------------------------------
# trace and profile hooks


def add1(x):
    return x + 1


def _profile_events(fn, calls):
    events = []

    def prof(frame, event, arg):
        name = getattr(arg, "__name__", None) if event.startswith("c_") else None
        events.append((event, frame.f_code.co_name, name))

    results = []
    sys.setprofile(prof)
    try:
        for a in calls:
            results.append(outcome(fn, a))
    finally:
        sys.setprofile(None)
    return results, events


def test_setprofile_set_and_unset_between_calls(no_trace):
    w = installed(T(add1), 1)
    for rnd in range(REPEAT):
        calls = [1, 2.5, "x", 10**30]
        p_res, p_ev = _profile_events(add1, calls)
        t_res, t_ev = _profile_events(w, calls)
        assert t_res == p_res
        # The calls were made by `_profile_events` itself: the same frames, the same events.
        assert t_ev == p_ev, (t_ev, p_ev)
        assert any(e[:2] == ("call", "add1") for e in t_ev)
        # The entry had to leave for the profiled calls; without the profiler it comes back.
        assert not entry(w)
        installed(w, rnd)
        assert w(5) == 6


def test_settrace_set_inside_callee_with_entry_installed(no_trace):
    src = """
    import sys
    def sett(tr):
        sys.settrace(tr)
    def h(y):
        z = y * 2
        return z
    def g(x, tr):
        sett(tr)
        y = h(x)
        return y + h(y)
    """
    plain, tier = twins(src, "g")
    w = tier["g"]
    # Installed with a tracer that is set and then cleared between calls.
    for i in range(3):
        w(i, None)
    assert entry(w)

    def run(fn):
        events = []

        def tr(frame, event, arg):
            events.append((event, frame.f_code.co_name, frame.f_lineno - frame.f_code.co_firstlineno))
            return tr

        try:
            r = outcome(fn, 3, tr)
        finally:
            sys.settrace(None)
        return r, events

    p = run(plain["g"])
    for _ in range(REPEAT):
        assert run(w) == p
        for i in range(3):
            w(i, None)
    # A trace set by an earlier call is seen by the next call's checks.
    seen = []

    def tracer(frame, event, arg):
        seen.append((event, frame.f_code.co_name))
        return tracer

    w(1, tracer)  # sets the tracer, returns
    try:
        assert w(1, tracer) == 6
    finally:
        sys.settrace(None)
    assert ("call", "g") in seen and ("return", "g") in seen, seen
    assert not entry(w)


def test_setprofile_set_inside_callee(no_trace):
    src = """
    import sys
    def setp(p):
        sys.setprofile(p)
    def h(y):
        return y * 2
    def g(x, p):
        setp(p)
        y = h(x)
        return y + len([y])
    """
    plain, tier = twins(src, "g")
    w = tier["g"]
    for i in range(3):
        w(i, None)
    assert entry(w)

    def run(fn):
        events = []

        def prof(frame, event, arg):
            events.append((event, frame.f_code.co_name))

        try:
            r = outcome(fn, 1, prof)
        finally:
            sys.setprofile(None)
        return r, events

    p = run(plain["g"])
    t = run(w)
    assert t[0] == p[0]
    # CPython: [('return', 'setp'), ('call', 'h'), ('return', 'h'), ('c_call', 'g'),
    #           ('c_return', 'g'), ('return', 'g'), ('c_call', 'run')]
    # tiered:  [('call', 'h'), ('return', 'h'), ('c_call', 'run')]
    assert t[1] == p[1]


def test_tracer_that_calls_the_wrapper(no_trace):
    w = installed(T(add1), 1)

    def run(fn):
        log = []

        def tr(frame, event, arg):
            if event == "call" and frame.f_code.co_name == "add1":
                # Calls made inside a trace function are not traced (tstate->tracing).
                log.append(("inner", fn(100)))
            log.append((event, frame.f_code.co_name))
            return tr

        sys.settrace(tr)
        try:
            r = fn(1)
        finally:
            sys.settrace(None)
        return r, log

    p = run(add1)
    for _ in range(REPEAT):
        assert run(w) == p
        installed(w, 1)


@pytest.mark.parametrize("hook", ["settrace", "setprofile"])
def test_threading_hooks_reach_new_threads(no_trace, hook):
    w = installed(T(add1), 1)

    def run(fn):
        events = []

        def h(frame, event, arg):
            if frame.f_code is add1.__code__:
                events.append(event)
            return h

        out = []
        getattr(threading, hook)(h)
        try:
            t = threading.Thread(target=lambda: out.append([fn(i) for i in range(3)]))
            t.start()
            t.join()
        finally:
            getattr(threading, hook)(None)
        return out, events

    p = run(add1)
    assert p[1], p
    assert run(w) == p
    # The main thread has no hook: the entry comes back there.
    installed(w, 2)


def test_cprofile_counts_every_call(no_trace):
    src = """
    def inc(x):
        return x + 1
    def caller(n):
        return inc(n) + inc(n + 1)
    """
    plain, tier = twins(src, "inc", "caller")
    installed(tier["caller"], 1)
    installed(tier["inc"], 1)

    def counts(fn):
        p = cProfile.Profile()
        p.enable()
        try:
            r = [fn(i) for i in range(5)]
        finally:
            p.disable()
        st = pstats.Stats(p).stats
        return r, sorted((k[2], v[0], v[1]) for k, v in st.items() if k[2] in ("inc", "caller"))

    assert counts(tier["caller"]) == counts(plain["caller"])
    assert not entry(tier["caller"])
    installed(tier["caller"], 1)


def test_strict_wrapper_still_refuses_traced_calls(no_trace):
    w = installed(T(add1, strict=True), 1)
    sys.settrace(lambda *a: None)
    try:
        with pytest.raises(UnsupportedError, match="trace or profile"):
            w(1)
    finally:
        sys.settrace(None)
    assert w(1) == 2
    installed(w, 1)


# ---------------------------------------------------------------------------------------
# threads


def test_many_threads_with_gil_switches():
    src = """
    def inc(x):
        return x + 1
    def loop(n):
        s = 0
        for i in range(n):
            s += i * i
        return s
    def mixed(xs, k):
        t = xs[0]
        for v in xs[1:]:
            t = t + v
        return t, k
    def nested(x):
        return sum(map(inc, [x, x + 1])) + loop(x % 7)
    """
    plain, tier = twins(src, "inc", "loop", "mixed", "nested")
    P = [plain[n] for n in ("inc", "loop", "mixed", "nested")]
    W = [tier[n] for n in ("inc", "loop", "mixed", "nested")]
    installed(W[0], 1)
    installed(W[1], 10)
    installed(W[2], [1, 2], 0)
    installed(W[3], 1)
    lists = [lambda k: [k, k + 1, 2], lambda k: [k + 0.5, 1.0], lambda k: ["a", str(k)], lambda k: [(k,), ()]]
    errors = []
    per_thread_calls = 0

    def work(k, n):
        try:
            for i in range(n):
                xs = lists[(i + k) % len(lists)](i)
                for p, w, a in ((P[0], W[0], (i,)), (P[1], W[1], (i % 50,)), (P[2], W[2], (xs, k)), (P[3], W[3], (i,))):
                    assert outcome(w, *a) == outcome(p, *a), (w, a)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    depth = free_depth()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        # Long-lived threads running together.
        ts = [threading.Thread(target=work, args=(k, 150)) for k in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        per_thread_calls += 6 * 150
        # Many short-lived threads: thread states come and go (the stack-limit cache is
        # keyed by thread state and id).
        for rnd in range(20):
            ts = [threading.Thread(target=work, args=(rnd, 5)) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            per_thread_calls += 2 * 5
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:3]
    assert free_depth() == depth
    s = stats(W[0])
    # inc is called by work and twice per nested call (through map, from native code).
    assert s["calls"] == 3 + per_thread_calls + 2 * (3 + per_thread_calls), s
    for w, a in ((W[0], (1,)), (W[1], (10,)), (W[3], (1,))):
        installed(w, *a)


def test_thread_with_small_stack():
    w = T(add1)
    installed(w, 1)

    def run(fn):
        out = []

        def body():
            out.append([outcome(fn, i) for i in range(3)])

        old = threading.stack_size(256 * 1024)
        try:
            t = threading.Thread(target=body)
            t.start()
            t.join()
        finally:
            threading.stack_size(old)
        return out

    assert run(add1) == [[("ok", "int", "1"), ("ok", "int", "2"), ("ok", "int", "3")]]
    assert run(w) == run(add1)


def _spin(box, n):
    i = 0
    while i < n:
        i += 1
        box[0] = i
    return i


def _interrupt_spin(fn, n):
    """Runs fn(box, n) in a thread and injects ValueError into it (PyThreadState_SetAsyncExc)
    once the loop is running. Returns (what happened, how far the loop got)."""
    box = [0]
    out = []

    def body():
        try:
            out.append(("returned", fn(box, n)))
        except ValueError:
            out.append(("ValueError", box[0]))

    t = threading.Thread(target=body)
    t.start()
    deadline = time.monotonic() + 10
    while box[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.0005)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident), ctypes.py_object(ValueError))
    t.join()
    return out[0]


def test_async_exception_interrupts_a_native_loop():
    # PyThreadState_SetAsyncExc (timeouts killing worker threads): CPython raises it in the
    # loop at its next eval-breaker check, tiered at its next poll.
    n = 20_000_000
    p = _interrupt_spin(_spin, n)
    assert p[0] == "ValueError" and p[1] < n, p
    w = installed(T(_spin), [0], 10)
    t = _interrupt_spin(w, n)
    assert t[0] == "ValueError" and t[1] < n, t


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_signal_handler_interrupts_a_native_loop():
    w = installed(T(_spin), [0], 10)

    def handler(signum, frame):
        raise KeyError("alarm")

    old = signal.signal(signal.SIGALRM, handler)
    try:
        for fn in (_spin, w):
            box = [0]
            n = 50_000_000
            signal.setitimer(signal.ITIMER_REAL, 0.03)
            try:
                with pytest.raises(KeyError, match="alarm"):
                    fn(box, n)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert 0 < box[0] < n
    finally:
        signal.signal(signal.SIGALRM, old)
    installed(w, [0], 10)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_entry_in_a_forked_child():
    w = installed(T(add1), 1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            ok = [w(i) for i in range(100)] == [add1(i) for i in range(100)] and entry(w)
            t_out = []
            t = threading.Thread(target=lambda: t_out.append(w(41)))
            t.start()
            t.join()
            code = 0 if ok and t_out == [42] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert w(1) == 2


# ---------------------------------------------------------------------------------------
# recursion

RECURSIVE = """
def down(n):
    return 0 if n == 0 else sum(map(down, [n - 1])) + 1
def keyed(n):
    return 0 if n == 0 else sorted([n - 1], key=keyed)[0] + 1
def maxkey(n):
    return 0 if n == 0 else max(n - 1, 0, key=maxkey) + 1
def selfrec(n):
    return 0 if n == 0 else selfrec(n - 1) + 1
"""
REC_NAMES = ("down", "keyed", "maxkey", "selfrec")


@pytest.mark.parametrize("name", REC_NAMES)
def test_recursion_limit_exact_depth(name):
    plain, tier = twins(RECURSIVE, name)
    p, w = plain[name], tier[name]
    installed(w, 3)
    depth = free_depth()
    old = sys.getrecursionlimit()
    try:
        for limit in (old, 300, old + 700):
            sys.setrecursionlimit(limit)
            expect = max_ok(p)
            got = max_ok(w)
            if name == "keyed":
                # sorted() costs tiered one more recursion level per step than warm CPython
                # (see test_recursion_depth_through_sorted_key, xfail): bounded here.
                assert 2 * expect // 3 - 5 <= got <= expect, (limit, expect, got)
            else:
                assert got == expect, (limit, expect, got)
            # The error itself, beyond the limit (for keyed the level that trips differs, and
            # with it the message's suffix: see the xfail below).
            if name == "keyed":
                assert outcome(w, limit * 2)[:2] == outcome(p, limit * 2)[:2] == ("err", "RecursionError")
            else:
                assert outcome(w, limit * 2) == outcome(p, limit * 2)
            # Many RecursionErrors in a row leave the counter where it was.
            for _ in range(20):
                with pytest.raises(RecursionError):
                    w(limit + 50)
            assert outcome(w, 50) == ("ok", "int", "50")
    finally:
        sys.setrecursionlimit(old)
    assert free_depth() == depth
    installed(w, 3)


def test_recursion_depth_through_sorted_key():
    # METH_FASTCALL|METH_KEYWORDS builtins called with keywords (sorted(key=...)) run by
    # their C function too, as PRECALL_BUILTIN_FAST_WITH_KEYWORDS does: same depth.
    plain, tier = twins(RECURSIVE, "keyed")
    installed(tier["keyed"], 3)
    expect = max_ok(plain["keyed"])
    n = expect - 10
    assert outcome(plain["keyed"], n) == ("ok", "int", str(n))
    assert outcome(tier["keyed"], n) == ("ok", "int", str(n))
    # And the RecursionError beyond the limit carries CPython's message.
    assert outcome(tier["keyed"], 5000) == outcome(plain["keyed"], 5000)


def test_recursion_limit_raised_near_the_bottom():
    # The frame that catches RecursionError at the very limit only does dict operations and a
    # bare raise (which builtin calls still fit there is CPython specialization-state
    # dependent); five levels up the limit is raised by 40 and the recursion goes on.
    src = """
    import sys
    def climb(n, st):
        try:
            return next(map(climb, [n + 1], [st]))
        except RecursionError:
            if "bottom" not in st:
                st["bottom"] = n
            if n > st["bottom"] - 5:
                raise
            st["log"].append(st.pop("bottom"))
            if len(st["log"]) < 4:
                sys.setrecursionlimit(sys.getrecursionlimit() + 40)
                return next(map(climb, [n + 1], [st]))
            return n
    """
    plain, tier = twins(src, "climb")
    old = sys.getrecursionlimit()
    # Both warmed the same way: cold CPython code costs extra recursion levels until its
    # calls are specialized. (After a call that ran into the limit through the installed
    # entry, the entry is gone until a call through the Rust entry returns: it alternates.)
    for ns in (plain, tier):
        for _ in range(3):
            try:
                ns["climb"](0, {"log": [0, 0, 0, 0]})
            finally:
                sys.setrecursionlimit(old)
    depth = free_depth()
    results = []
    for ns in (plain, tier):
        st = {"log": []}
        try:
            results.append((outcome(ns["climb"], 0, st), st))
        finally:
            sys.setrecursionlimit(old)
    assert results[1] == results[0]
    assert len(results[0][1]["log"]) == 4, results
    assert free_depth() == depth


def test_setrecursionlimit_inside_callee_sees_the_same_depth():
    src = """
    import sys
    def trylimit(k):
        old = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(k)
            return ("ok", k)
        except RecursionError as e:
            return ("err", str(e))
        finally:
            sys.setrecursionlimit(old)
    def nest(n, k):
        return trylimit(k) if n == 0 else list(map(nest, [n - 1], [k]))[0]
    """
    plain, tier = twins(src, "nest")
    installed(tier["nest"], 1, 10**4)
    # The smallest limit accepted here, then limits around the depths reached below.
    k0 = next(k for k in range(1, 10**4) if plain["trylimit"](k)[0] == "ok")
    ks = [k0 + d for d in (-1, 0, 3, 5, 6, 10, 20, 21, 40)]
    p = [plain["nest"](n, k) for n in (0, 5, 20) for k in ks]
    t = [tier["nest"](n, k) for n in (0, 5, 20) for k in ks]
    assert t == p
    assert any(r[0] == "err" for r in p) and any(r[0] == "ok" for r in p)


def test_recursion_in_another_thread():
    plain, tier = twins(RECURSIVE, "down")
    installed(tier["down"], 3)
    out = {}

    def body():
        out["plain"] = max_ok(plain["down"])
        out["tier"] = max_ok(tier["down"])
        out["after"] = outcome(tier["down"], 40)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert out["tier"] == out["plain"] and out["after"] == ("ok", "int", "40"), out


def test_deep_recursion_with_a_raised_limit_does_not_crash():
    """Tiered-only (CPython itself may overflow the C stack through map): with a huge
    recursion limit the native stack guard must turn runaway recursion into RecursionError,
    on the main thread and on threads with 512 KiB and 32 MiB stacks."""
    script = textwrap.dedent(
        """
        import sys, threading
        from tiered import tiered, stats
        sys.setrecursionlimit(10**6)
        g = {"sys": sys}
        exec('''
        def down(n):
            return 0 if n == 0 else sum(map(down, [n - 1])) + 1
        def selfrec(n):
            return 0 if n == 0 else selfrec(n - 1) + 1
        def viacpy(n):
            sys._getframe()
            return hop(n)
        def hop(n):
            return 0 if n == 0 else viacpy(n - 1) + 1
        ''', g)
        for name in ("down", "selfrec", "hop"):
            w = g[name] = tiered(g[name], jit_threshold=0)
            for _ in range(3):
                w(3)
            assert stats(w)["native_entry"], name
            for stack in (0, 256 * 1024, 512 * 1024, 32 * 1024 * 1024):
                out = []
                def body():
                    try:
                        out.append(w(200000))
                    except RecursionError:
                        out.append("RecursionError")
                    out.append(w(30))
                if stack == 0:
                    body()
                else:
                    threading.stack_size(stack)
                    t = threading.Thread(target=body)
                    t.start()
                    t.join()
                    threading.stack_size(0)
                assert out in (["RecursionError", 30], [200000, 30]), (name, stack, out)
        print("done")
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "done", (r.returncode, r.stdout, r.stderr[-2000:])


def test_recursion_error_and_memory_errors_from_the_body():
    src = """
    def forever(n):
        return forever(n + 1)
    def alloc(n):
        return [0] * n
    def big(n):
        return bytes(n)
    """
    plain, tier = twins(src, "forever", "alloc", "big")
    warmed(tier["forever"], 0)
    assert outcome(tier["forever"], 0) == outcome(plain["forever"], 0)
    installed(tier["alloc"], 3)
    installed(tier["big"], 3)
    depth = free_depth()
    for n in (2**62, 2**63, 10**20, -1, 0, 5):
        for name in ("alloc", "big"):
            assert outcome(tier[name], n) == outcome(plain[name], n), (name, n)
    assert free_depth() == depth


# ---------------------------------------------------------------------------------------
# __code__


def _same_named(src_body, name="f"):
    """Two distinct function objects with the same name and code shape."""
    g1, g2 = {}, {}
    exec(src_body, g1)
    exec(src_body, g2)
    return g1[name], g2[name]


NEW_CODES = {
    "two": "def two(a, b):\n    return a * 10 + b\n",
    "gen": "def gen(x):\n    yield x\n    yield x + 1\n",
    "coro": "async def coro(x):\n    return x + 1\n",
    "kwonly": "def kwonly(x, *, k=5):\n    return x + k\n",
    "varargs": "def varargs(*a):\n    return sum(a)\n",
    "zero": "def zero():\n    return 99\n",
    "float1": "def float1(x):\n    return x * 0.5\n",
}


@pytest.mark.parametrize("kind", sorted(NEW_CODES))
def test_code_reassigned_to_another_shape(kind):
    g = {}
    exec(NEW_CODES[kind], g)
    new = g[kind].__code__
    pf, tf = _same_named("def f(x):\n    return x + 1\n")
    w = installed(T(tf), 1)
    pf.__code__ = new
    w.__code__ = new  # through the wrapper's forwarding setter
    assert tf.__code__ is new
    for _ in range(REPEAT):
        for args in ((1,), (1, 2), (), (2.5,)):
            assert outcome(w, *args) == outcome(pf, *args), args
    # The argument shapes alternate: no two calls in a row with the same types.
    assert not entry(w)
    # Back to the original code: the entry comes back.
    orig, _ = _same_named("def f(x):\n    return x + 1\n")
    w.__code__ = orig.__code__
    assert not entry(w)
    installed(w, 4)
    assert w(4) == 5


def test_code_reassigned_while_running():
    src = """
    def other(x, log):
        log.append(("other", x))
        return -x
    def f(x, log):
        log.append(("f", x))
        if x == 2:
            f.__code__ = other.__code__
            # The running call keeps its code; the next call (through C) sees the new one.
            log.append(("inner", list(map(f, [x + 1], [log]))))
        return x * 2
    """
    plain, tier = twins(src, "f")
    w = tier["f"]
    installed(w, 0, [])
    # `f.__code__` inside the body refers to the wrapper (tier) or the function (plain).
    results = []
    for ns in (plain, tier):
        log = []
        results.append(([outcome(ns["f"], i, log) for i in range(5)], log))
    assert results[1] == results[0]
    assert w.__code__ is tier["other"].__code__
    installed(w, 7, [])
    assert w(7, []) == -7


def test_code_setter_errors():
    pf, tf = _same_named("def f(x):\n    return x + 1\n")
    w = installed(T(tf), 1)

    def closure_code():
        y = 1

        def inner(x):
            return x + y

        return inner.__code__

    for bad in (5, None, closure_code()):
        ours = theirs = None
        try:
            pf.__code__ = bad
        except BaseException as e:  # noqa: BLE001
            theirs = (type(e), str(e))
        try:
            w.__code__ = bad
        except BaseException as e:  # noqa: BLE001
            ours = (type(e), str(e))
        assert ours == theirs and theirs is not None, bad
    with pytest.raises(TypeError) as a:
        del pf.__code__
    with pytest.raises(TypeError) as b:
        del w.__code__
    assert str(a.value) == str(b.value)
    assert entry(w) and w(1) == 2


def test_direct_call_sees_reassigned_callee_code():
    src = """
    def callee(x):
        return x + 1
    def alt(x):
        return x - 1
    def caller(x):
        return callee(x) * 2
    """
    plain, tier = twins(src, "callee", "caller")
    for _ in range(5):
        tier["caller"](1)
    assert entry(tier["caller"])
    for ns in (plain, tier):
        ns["callee"].__code__ = ns["alt"].__code__
    assert tier["caller"](10) == plain["caller"](10) == 18
    for ns in (plain, tier):
        ns["callee"] = ns["alt"]
    assert tier["caller"](10) == plain["caller"](10) == 18
    for _ in range(3):
        assert tier["caller"](10) == 18


# ---------------------------------------------------------------------------------------
# argument types


class _A:
    def __init__(self):
        self.v = 1

    def m(self):
        return "A"


class _B:
    def m(self):
        return "B"

    @property
    def v(self):
        return 100


def _use(o):
    return (o.m(), o.v + 1)


def test_argument_class_changes_between_calls():
    w = T(_use)
    pa, ta = _A(), _A()
    installed(w, ta)
    for cls in (_B, _A, _B, _A):
        pa.__class__ = cls
        ta.__class__ = cls
        assert outcome(w, ta) == outcome(_use, pa)
        # Another exact type than the last call's: never the installed entry's.
        assert not entry(w)
    installed(w, ta)
    # The class itself changes.
    saved = _A.m
    try:
        _A.m = lambda self: "A2"
        assert outcome(w, ta) == outcome(_use, pa)
    finally:
        _A.m = saved
    del pa.v, ta.v
    assert outcome(w, ta) == outcome(_use, pa)
    pa.v = ta.v = 2.5
    assert outcome(w, ta) == outcome(_use, pa)


def test_argument_class_changes_inside_the_call():
    src = """
    class A:
        def m(self):
            return "A"
    class B:
        def m(self):
            return "B"
    def swap(o):
        o.__class__ = B if type(o) is A else A
    def f(o):
        a = o.m()
        swap(o)
        return a + o.m()
    """
    plain, tier = twins(src, "f")
    w = tier["f"]
    objs = {id(ns): ns["A"]() for ns in (plain, tier)}
    for _ in range(3):
        o = tier["A"]()
        w(o)
    res = []
    for ns in (plain, tier):
        o = objs[id(ns)]
        res.append([outcome(ns["f"], o) for _ in range(6)])
    assert res[1] == res[0]


class _I(int):
    def __add__(self, o):
        return ("I.add", int(self), o)

    __radd__ = __add__

    def __mul__(self, o):
        return ("I.mul",)

    def __lt__(self, o):
        return "lt"

    def __neg__(self):
        return "I.neg"


class _F(float):
    def __add__(self, o):
        return ("F.add", float(self), o)

    def __mul__(self, o):
        return ("F.mul",)

    def __lt__(self, o):
        return "flt"


class _PlainI(int):
    pass


def _arith(a, b):
    return (a + b, a * b, a < b, a - b, a == b)


def _unary(a):
    return (-a, +a, not a, a != a)


@pytest.mark.parametrize(
    "args",
    [
        (_I(3), 4),
        (3, _I(4)),
        (_F(1.5), 2.0),
        (2.0, _F(1.5)),
        (_PlainI(5), 6),
        (True, False),
        (True, 2),
        (2**62, 2**62),
        (2**63 - 1, 1),
        (-(2**63), -1),
        (-(2**63), 2**63),
        (10**30, 3),
        (1e308, 1e308),
        (float("nan"), 1.0),
        (-0.0, 0.0),
        (1, 2.5),
        (float("inf"), float("-inf")),
    ],
    ids=repr,
)
def test_number_edges_and_subclasses(args):
    w = installed(T(_arith), 1, 2)
    for _ in range(REPEAT + 1):
        assert outcome(w, *args) == outcome(_arith, *args)
    exact = all(type(a) in (int, float) for a in args)
    # A subclass (or bool) never matches the exact types the entry was made for: after
    # such a call the entry is gone (or moved to these types after two calls in a row).
    if not exact:
        w2 = installed(T(_arith), 1, 2)
        w2(*args)
        assert not entry(w2)
    u = installed(T(_unary), 7)
    for _ in range(REPEAT + 1):
        assert outcome(u, args[0]) == outcome(_unary, args[0])


def test_small_int_identity_and_argument_identity():
    src = """
    def inc(x):
        return x + 1
    def ident(x):
        return x
    def pair(a, b):
        return a is b, a == b
    """
    plain, tier = twins(src, "inc", "ident", "pair")
    installed(tier["inc"], 1)
    installed(tier["ident"], 1)
    installed(tier["pair"], 1, 1)
    for x in (4, 255, 256, 999, -6, -5, 10**20):
        same_p = plain["inc"](x) is plain["inc"](x)
        same_t = tier["inc"](x) is tier["inc"](x)
        assert same_t == same_p, x
        assert tier["ident"](x) is x
        y = x + 0
        assert tier["pair"](x, y) == plain["pair"](x, y)


def test_fifth_argument_type_varies():
    def five(a, b, c, d, e):
        return (a + b + c + d) * e

    w = installed(T(five), 1, 2, 3, 4, 5)
    for e in (1, 2, 1.5, "s", [1], 3, 2.0, (1,), None, 10**40):
        for _ in range(3):
            assert outcome(w, 1, 2, 3, 4, e) == outcome(five, 1, 2, 3, 4, e), e


def test_many_parameters():
    g = {}
    exec("def many(%s):\n    return a0 + a299\n" % ", ".join("a%d" % i for i in range(300)), g)
    exec("def m256(%s):\n    return a0 * a255\n" % ", ".join("a%d" % i for i in range(256)), g)
    for name, n in (("many", 300), ("m256", 256)):
        p = g[name]
        w = installed(T(p), *range(n))
        for k in (n - 1, n, n + 1, 255, 256, 257, 0):
            assert outcome(w, *range(k)) == outcome(p, *range(k)), (name, k)
        installed(w, *range(n))
        assert w(*range(1, n + 1)) == p(*range(1, n + 1))


def test_defaults_and_alternating_arity():
    def f(x, y=2):
        return x * 100 + y

    w = T(f)
    for i in range(20):
        assert w(i) == f(i)
        assert w(i, 5) == f(i, 5)
    installed(w, 1, 2)
    assert w(7) == 702
    f.__defaults__ = (9,)
    assert w(7) == 709 and w(7, 1) == 701
    w.__defaults__ = None
    assert outcome(w, 7) == outcome(f, 7)


def test_zero_argument_function():
    def z():
        return 42

    w = installed(T(z))
    for args, kw in (((), {}), ((1,), {}), ((), {"a": 1}), ((), {})):
        assert outcome(w, *args, **kw) == outcome(z, *args, **kw)
    assert w(*()) == 42 and w(**{}) == 42
    installed(w)


def test_more_specializations_than_kept():
    src = """
    def f(o, k):
        return o.x * k
    """
    plain, tier = twins(src, "f")
    classes = []
    for i in range(12):
        classes.append(type("C%d" % i, (), {"x": i, "__slots__": ()}))
    for rnd in range(3):
        for C in classes:
            for k in (2, 2.5, 2):
                o = C()
                assert outcome(tier["f"], o, k) == outcome(plain["f"], o, k)


def test_type_address_reuse():
    def g(o):
        return (o.x, o.y)

    w = T(g)
    for k in range(40):
        slots = ("x", "y") if k % 2 else ("y", "x")
        C = type("C", (), {"__slots__": slots})
        o = C()
        o.x, o.y = "X%d" % k, "Y%d" % k
        for _ in range(3):
            assert outcome(w, o) == outcome(g, o)
        del C, o
        gc.collect()

    def h(o):
        return o.a + o.b

    w = T(h)
    for k in range(40):
        class D:
            pass

        o = D()
        if k % 2:
            o.a, o.b = 1, 10
        else:
            o.b, o.a = 1000, 100
        for _ in range(3):
            assert outcome(w, o) == outcome(h, o)
        del D, o
        gc.collect()


def test_closures_and_globals_sharing_code():
    def make(k):
        def inner(x):
            return x * k + _K

        return inner

    ws = [installed(T(make(k)), 1) for k in range(4)]
    assert [w(5) for w in ws] == [make(k)(5) for k in range(4)]
    g2 = {"_K": -1, "__builtins__": __builtins__}
    f2 = types.FunctionType(_kfun.__code__, g2, "_kfun")
    w1, w2 = installed(T(_kfun), 1), installed(T(f2), 1)
    assert (w1(1), w2(1)) == (_kfun(1), f2(1))
    g2["_K"] = 7
    assert (w1(1), w2(1)) == (_kfun(1), f2(1))
    del g2["_K"]
    assert outcome(w2, 1) == outcome(f2, 1)
    g3 = {"__builtins__": {"len": lambda x: 42}}
    f3 = types.FunctionType(_blen.__code__, g3, "_blen")
    w3, w4 = installed(T(f3), "ab"), installed(T(_blen), "ab")
    assert (w3("ab"), w4("ab")) == (f3("ab"), _blen("ab")) == (42, 2)


def test_cells_and_shadowed_builtins_change_between_calls():
    src = """
    def outer():
        k = 1
        def get(x):
            return x + k
        def put(v):
            nonlocal k
            k = v
        return get, put
    get, put = outer()
    def size(x):
        return len(x) * 2
    """
    plain, tier = twins(src, "get", "size")
    installed(tier["get"], 1)
    installed(tier["size"], "ab")
    for v in (2, 2.5, "s", 10**30, 3, None):
        for ns in (plain, tier):
            ns["put"](v)
        for a in (1, 1.5, "t"):
            assert outcome(tier["get"], a) == outcome(plain["get"], a), (v, a)
    for ns in (plain, tier):
        ns["len"] = lambda x: -1
    assert outcome(tier["size"], "ab") == outcome(plain["size"], "ab") == ("ok", "int", "-2")
    for ns in (plain, tier):
        del ns["len"]
    assert outcome(tier["size"], "ab") == outcome(plain["size"], "ab") == ("ok", "int", "4")
    for ns in (plain, tier):
        ns["__builtins__"] = {}
    # A function's builtins are fixed when it is created: still the real len.
    assert outcome(tier["size"], "ab") == outcome(plain["size"], "ab")


_K = 1000


def _kfun(x):
    return x + _K


def _blen(x):
    return len(x)


# ---------------------------------------------------------------------------------------
# call shapes


def _lt(self, other):
    return self.k < other.k


def _getitem(self, i):
    return self.k * 10 + i


def _length(self):
    return self.k + 1


def _hash(self):
    return self.k * 7


def _call(self, a, b):
    return (self.k, a, b)


def _make_class(deco):
    class K:
        __lt__ = deco(_lt)
        __getitem__ = deco(_getitem)
        __len__ = deco(_length)
        __hash__ = deco(_hash)
        __call__ = deco(_call)
        m = deco(_call)
        s = staticmethod(deco(_length))

        def __init__(self, k):
            self.k = k

    return K


def _exercise(K):
    xs = [K(k) for k in (5, 3, 9, 1, 7, 2)]
    out = []
    for _ in range(4):
        out.append([x.k for x in sorted(xs)])
        out.append([x[2] for x in xs])
        out.append([len(x) for x in xs])
        out.append([hash(x) for x in xs])
        out.append([x(1, "b") for x in xs])
        out.append([x.m(1, 2.5) for x in xs])
        out.append(list(map(K.m, xs, range(6), "abcdef")))
        out.append([operator.call(x.m, 1, 2) for x in xs])
        out.append([functools.partial(K.m, x, 7)(8) for x in xs])
        out.append([functools.partial(x.m, b=7)(8) for x in xs])
        out.append([K.m(*(x, 1, 2)) for x in xs])
        out.append([K.m(x, *[1], **{"b": 2}) for x in xs])
        out.append([K.m(x, **{"a": 1, "b": 2}) for x in xs])
        out.append([type(K.m).__call__(K.m, x, 1, 2) for x in xs])
        out.append([K.m.__call__(x, 1, 2) for x in xs])
        out.append([K.s(x) for x in xs])
        out.append(list(filter(K.__len__, xs)) == xs)
        out.append(sorted(xs, key=K.__len__)[0].k)
        out.append(min(xs).k)
        out.append([outcome(K.m, x) for x in xs[:2]])
        out.append([outcome(K.m, x, 1, 2, 3) for x in xs[:2]])
        out.append([outcome(K.m, x, 1, c=2) for x in xs[:2]])
    return out


def test_call_shapes():
    plain = _exercise(_make_class(lambda f: f))
    K = _make_class(T)
    assert _exercise(K) == plain
    # The last calls of m were bad keyword calls: they leave the entry.
    assert not entry(K.__dict__["m"])
    x = K(1)
    assert [x.m(1, 2) for _ in range(3)] == [(1, 1, 2)] * 3
    for n in ("__lt__", "__getitem__", "__len__", "__hash__", "__call__", "m"):
        assert entry(K.__dict__[n]), n
    assert _exercise(K) == plain


PY_VECTORCALL_ARGUMENTS_OFFSET = 1 << 63


def _raw_vectorcall(f, args, kwnames, offset):
    vc = ctypes.pythonapi.PyObject_Vectorcall
    vc.restype = ctypes.py_object
    vc.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_size_t, ctypes.py_object]
    n = len(args)
    arr = (ctypes.py_object * (n + 1))(None, *args)
    base = ctypes.addressof(arr) + ctypes.sizeof(ctypes.py_object)
    nargsf = (n - len(kwnames or ())) | (PY_VECTORCALL_ARGUMENTS_OFFSET if offset else 0)
    return outcome(vc, f, base, nargsf, kwnames if kwnames is not None else ctypes.py_object())


def test_raw_vectorcall_arguments():
    """PyObject_Vectorcall through ctypes (pythonapi keeps the GIL): an empty kwnames
    tuple, PY_VECTORCALL_ARGUMENTS_OFFSET, keywords after positionals."""

    def f(x, y):
        return x * 10 + y

    w = T(f)
    cases = [
        ((1, 2), None, False),
        ((1, 2), None, True),
        ((1, 2), (), False),
        ((1, 2), (), True),
        ((1, 2), ("y",), True),
        ((1, 2), ("x",), False),
        ((1, 2, 3), ("y",), False),
        ((1,), None, True),
        ((1, 2.5), None, True),
        ((1, 2), ("y",), False),
    ]
    for args, kw, off in cases:
        installed(w, 1, 2)
        assert _raw_vectorcall(w, args, kw, off) == _raw_vectorcall(f, args, kw, off), (args, kw, off)


# ---------------------------------------------------------------------------------------
# lifetime, exceptions, leaks


def test_wrapper_deleted_while_running():
    src = """
    import gc
    def selfdel(x, key):
        del HOLD[key]
        gc.collect()
        return x + 1
    HOLD = {}
    """
    plain, tier = twins(src, "selfdel")
    for ns in (plain, tier):
        fn = ns["selfdel"]
        for i in range(4):
            ns["HOLD"]["k"] = fn
            assert ns["HOLD"]["k"](i, "k") == i + 1
    del fn
    w = tier["selfdel"]
    assert entry(w)
    # The only references: the dict entry the body deletes, and the caller's stack.
    code = w.__code__
    tier["HOLD"]["k"] = w
    ref = weakref.ref(w)
    del w
    tier["selfdel"] = None
    assert tier["HOLD"]["k"](10, "k") == 11
    gc.collect()
    assert ref() is None
    # Through map, which holds the only reference.
    w = T(types.FunctionType(code, tier, "selfdel"))
    for i in range(3):
        tier["HOLD"]["k"] = w
        w(i, "k")
    assert entry(w)
    tier["HOLD"]["k"] = w
    ref = weakref.ref(w)
    m = map(w, [1], ["k"])
    del w
    assert list(m) == [2]
    del m
    gc.collect()
    assert ref() is None


def _shape(e):
    if e is None:
        return None
    return (
        type(e).__name__,
        str(e),
        _shape(e.__context__),
        _shape(e.__cause__),
        e.__suppress_context__,
        [(fs.name, fs.lineno, fs.line) for fs in traceback.extract_tb(e.__traceback__)],
    )


EXC_SRC = """
import sys
def boom(x):
    if x > 1:
        return 1 // (x - x)
    return x
def info(x):
    return (sys.exc_info()[0], x + 1)
def rewrap(x):
    try:
        return 10 // x
    except ZeroDivisionError as e:
        raise ValueError("bad %r" % x) from (e if x == 0 else None)
def bare(x):
    if x:
        raise
    return 0
def catches(x):
    try:
        return [1][x]
    except IndexError:
        return sys.exc_info()[0]
def attr(x):
    return x.missing
"""


@pytest.mark.parametrize(
    "name,warm,args",
    [
        ("boom", 1, (0, 1, 5, 1)),
        ("info", 1, (1, 2)),
        ("rewrap", 1, (0, 1, 0)),
        ("bare", 0, (0, 1, 0)),
        ("catches", 0, (0, 3, 0)),
        ("attr", 1, (1, 2)),
    ],
)
def test_exceptions_escape_and_are_caught(name, warm, args):
    plain, tier = twins(EXC_SRC, name)
    w = warmed(tier[name], warm)

    def scenario(fn, arg, handled):
        def call():
            try:
                return ("ok", fn(arg))
            except BaseException as e:  # noqa: BLE001
                return ("err", _shape(e))

        if handled:
            try:
                raise KeyError("outer")
            except KeyError:
                r = call()
                return r, sys.exc_info()[0]
        return call(), sys.exc_info()[0]

    for _ in range(REPEAT):
        for a in args:
            for handled in (False, True):
                assert scenario(w, a, handled) == scenario(plain[name], a, handled), (a, handled)
    warmed(w, warm)


def test_refcounts_and_gc_objects_are_stable():
    src = """
    def ident(x):
        return x
    def first(xs):
        return xs[0]
    def pair(a, b):
        return (a, b)
    def boom(x):
        return x.missing
    def rec(n):
        return 0 if n == 0 else sum(map(rec, [n - 1])) + 1
    """
    _, tier = twins(src, "ident", "first", "pair", "boom", "rec")
    o = object()
    s = "str" + str(len(src))
    lst = [o]
    installed(tier["ident"], o)
    installed(tier["first"], lst)
    installed(tier["pair"], o, s)
    for _ in range(3):
        try:
            tier["boom"](o)
        except AttributeError:
            pass
    assert entry(tier["boom"])
    installed(tier["rec"], 3)

    def burst(n):
        for _ in range(n):
            tier["ident"](o)
            tier["first"](lst)
            tier["pair"](o, s)
            try:
                tier["boom"](o)
            except AttributeError:
                pass
        for _ in range(20):
            try:
                tier["rec"](5000)
            except RecursionError:
                pass

    burst(100)
    gc.collect()
    before = (sys.getrefcount(o), sys.getrefcount(s), sys.getrefcount(lst))
    n0 = len(gc.get_objects())
    depth = free_depth()
    burst(5000)
    gc.collect()
    after = (sys.getrefcount(o), sys.getrefcount(s), sys.getrefcount(lst))
    assert after == before
    assert len(gc.get_objects()) - n0 <= 5
    assert free_depth() == depth


def test_del_reenters_the_wrapper():
    src = """
    class D:
        def __init__(self, log, n):
            self.log = log
            self.n = n
        def __del__(self):
            if self.n > 0:
                self.log.append(("del", self.n, F(self.log, self.n - 1)))
    def F(log, n):
        d = D(log, n)
        log.append(("body", n))
        return n * 2
    """
    plain, tier = twins(src, "F")
    for i in range(3):
        tier["F"]([], 0)
    assert entry(tier["F"])
    res = []
    for ns in (plain, tier):
        log = []
        res.append(([ns["F"](log, k) for k in (0, 1, 3, 0, 2)], log))
    assert res[1] == res[0]


def test_element_types_change_until_invalidated():
    src = """
    def idx(xs, i):
        return xs[i] + xs[i - 1]
    def total(xs):
        s = xs[0]
        for v in xs[1:]:
            s = s + v
        return s
    """
    plain, tier = twins(src, "idx", "total")
    kinds = [
        lambda k: [k, k + 1, k + 2],
        lambda k: [k + 0.5, k * 1.5, 2.0],
        lambda k: ["a%d" % k, "b", "c"],
        lambda k: [k, 1.5, "x"],
        lambda k: [True, k, 2**70],
        lambda k: [[k], [1], [2]],
    ]
    for rnd in range(2):
        for kind in kinds:
            for k in range(120):
                xs = kind(k)
                i = 1 + k % 2
                assert outcome(tier["idx"], xs, i) == outcome(plain["idx"], xs, i)
                assert outcome(tier["total"], xs) == outcome(plain["total"], xs)
    # Within one call: a long list whose element type changes half way (the loop's code is
    # invalidated while it runs and must leave for tier 1 at its header).
    for first, second in ((1, 0.5), (0.5, 1), (1, "s"), (2**40, 1)):
        xs = [first] * 700 + [second] * 700
        if isinstance(second, str):
            xs = ["a"] * 700 + ["b"] * 700
        assert outcome(tier["total"], xs) == outcome(plain["total"], xs)
    for _ in range(4):
        tier["total"]([1, 2, 3])
    assert entry(tier["total"])
    s = stats(tier["total"])
    assert s["fallback_calls"] == 0, s


def test_random_operation_sequences():
    """A seeded random walk over argument types, hooks, __code__ reassignments and call
    shapes on one wrapper, each step compared with the plain function."""
    import random

    rng = random.Random(1234)
    codes = {}
    for src in (
        "def f(x, y):\n    return x + y\n",
        "def f(x, y):\n    return (x, y, x * 2)\n",
        "def f(x, y):\n    return [x][0] if y else -x\n",
        "def f(x, y):\n    for i in range(3):\n        x = x + y\n    return x\n",
        "def f(x):\n    return x\n",
        "def f(x, y):\n    yield x\n",
    ):
        g = {}
        exec(src, g)
        codes[src] = g["f"].__code__
    code_list = list(codes.values())
    pf, tf = _same_named("def f(x, y):\n    return x + y\n")
    w = T(tf)
    values = [1, 2.5, "s", [1], (2,), True, _I(3), 10**25, None, -0.0]

    def hook(*a):
        return None

    for step in range(600):
        r = rng.random()
        if r < 0.04:
            c = rng.choice(code_list)
            pf.__code__ = c
            w.__code__ = c
            continue
        if r < 0.06:
            (sys.settrace if rng.random() < 0.5 else sys.setprofile)(hook)
        args = [rng.choice(values) if rng.random() < 0.3 else values[step % 3] for _ in range(rng.choice((2, 2, 2, 1, 3)))]
        shape = rng.random()
        try:
            if shape < 0.7:
                a, b = outcome(w, *args), outcome(pf, *args)
            elif shape < 0.85:
                a, b = outcome(functools.partial(w, *args)), outcome(functools.partial(pf, *args))
            else:
                a, b = list(map(outcome, [w] * 2, *[[x] * 2 for x in args])), list(
                    map(outcome, [pf] * 2, *[[x] * 2 for x in args])
                )
        finally:
            sys.settrace(None)
            sys.setprofile(None)
        assert a == b, (step, args, pf.__code__.co_code)
