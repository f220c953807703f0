"""Adversarial differential tests of the wrapper's native entry (the "slot trampoline":
the wrapper's vectorcall slot pointed at JIT code once a plain-positional function was
called twice in a row with the same argument types, see tiers/src/native/trampoline.rs).

Each test runs the same code under plain CPython and through `tiered` wrappers (fresh
namespaces, same names, so error messages agree) and compares results, exception types
and messages, and side effects; where it matters it also asserts whether the native entry
is installed (`stats(w)["native_entry"]`). Tests marked xfail(strict=True) document real
differences from CPython found by this file (see their reasons). Here: trace and profile
hooks, threads, signals and recursion; `__code__` reassigned, argument types, call shapes
and lifetimes are in test_native_entry_shapes.py (the helpers in native_entry_support.py)."""

import cProfile
import ctypes
import os
import pstats
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tiered import UnsupportedError, stats

from native_entry_support import REPEAT, T, entry, free_depth, installed, max_ok, outcome, twins, warmed

pytestmark = pytest.mark.skipif(os.environ.get("TIERED_JIT") == "0", reason="tier 2 is off (TIERED_JIT=0)")


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
