"""Native code (tier 2) meeting what its specializations did not expect. Loops here run long
enough to be compiled mid-call (OSR) under the default thresholds; the whole suite also runs
with thresholds at zero and one. Every case agrees with CPython, and the stats show native
code really ran."""

import os

import pytest

from harness import cases, check, run_python
from tiered import stats, tiered

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


CASES = cases(
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


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


# These look at which tier ran: they need tier 2 on, and (for deopts) the default
# thresholds, under which code is compiled after quickening. Their results are checked on
# every path by the cases above.
needs_jit = pytest.mark.skipif(os.environ.get("TIERED_JIT") == "0", reason="tier 2 is off (TIERED_JIT=0)")
needs_default_thresholds = pytest.mark.skipif(
    "TIERED_JIT_THRESHOLD" in os.environ or "TIERED_OSR_THRESHOLD" in os.environ or os.environ.get("TIERED_JIT") == "0",
    reason="needs the default tier-up thresholds",
)


@needs_jit
def test_recursion_through_native_code():
    g = {"__builtins__": __builtins__}
    exec(compile("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n", __file__, "exec"), g)
    g["fib"] = tiered(g["fib"])
    assert g["fib"](22) == fib(22)
    s = stats(g["fib"])
    assert s["native_calls"] > 0 and s["fallback_calls"] == 0, s


@needs_jit
def test_loop_tiers_up_mid_call():
    w = tiered(nested_loops)
    assert w(50_000) == nested_loops(50_000)
    s = stats(w)
    assert s["native_calls"] == 1 and s["calls"] == 1, s


@needs_default_thresholds
def test_deopts_are_counted_and_code_is_replaced():
    # Same argument types (a list), element types change between calls: the native
    # code specialized on ints keeps failing its guards on floats, is replaced, and the
    # float calls end up in native code again.
    w = tiered(types_change_in_native_loop)
    ints = list(range(N))
    floats = [x + 0.5 for x in ints]
    for _ in range(3):
        assert w(ints) == types_change_in_native_loop(ints)
    for _ in range(3):
        assert w(floats) == types_change_in_native_loop(floats)
    s = stats(w)
    assert s["deopts"] > 0 and s["native_calls"] >= 3, s
    from tiered import dump

    text = dump(w)
    assert "BinaryFloat" in text, text


def test_keyboard_interrupt_reaches_native_loop():
    code = r"""
import _thread, threading, sys
from tiered import tiered, stats

@tiered
def spin():
    n = 0
    while True:
        n += 1

threading.Timer(0.5, _thread.interrupt_main).start()
try:
    spin()
except KeyboardInterrupt:
    s = stats(spin)
    print("interrupted", s["native_calls"] + s["interp_calls"])
"""
    r = run_python(code, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("interrupted 1"), (r.stdout, r.stderr)


def test_decorator_tiering_options():
    def loop(n):
        total = 0
        for i in range(n):
            total += i
        return total

    eager = tiered(loop, jit=True, jit_threshold=0)
    assert eager(100) == loop(100)
    assert stats(eager)["native_calls"] == 1
    tier1_only = tiered(loop, jit=False)
    assert tier1_only(10_000) == loop(10_000)
    s = stats(tier1_only)
    assert s["native_calls"] == 0 and s["interp_calls"] == 1, s
    with pytest.raises(TypeError, match="jit_threshold must be a non-negative int"):
        tiered(loop, jit_threshold=-1)
    with pytest.raises(TypeError, match="quicken must be a bool"):
        tiered(loop, quicken="yes")


def test_threads_share_tiered_code():
    # Long loops hand the GIL over: several threads run the same tiered code (and its
    # specializations and native code) interleaved, each with its own registers.
    import threading

    w = tiered(nested_loops)
    results = {}

    def work(k):
        results[k] = [w(20_000 + k) for _ in range(3)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: [nested_loops(20_000 + k)] * 3 for k in range(4)}
    s = stats(w)
    assert s["calls"] == 12 and s["fallback_calls"] == 0, s
