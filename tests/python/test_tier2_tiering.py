"""Which tier ran, and when: native code replacing tier 1 mid-call (OSR), deopts counted and
code replaced, direct calls counted, templates for ops first run after compiling, inline
copies, tiering options, eval breaker events reaching native loops, recursion limits, threads.
The results of the functions these run are checked on every path by `test_tier2`'s cases."""

import os
import re

import pytest

from harness import run_python
from test_tier2 import N, nested_loops, types_change_in_native_loop
from tiered import stats, tiered


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
    # The int site met floats: it widened to both kinds (`acc + x` sees int + int, then
    # int + float and float + float).
    assert "BinaryNumber" in text, text


@needs_jit
def test_direct_native_calls_count_as_native_calls():
    g = {"__builtins__": __builtins__}
    exec(compile("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n", __file__, "exec"), g)
    g["fib"] = tiered(g["fib"])
    assert g["fib"](20) == fib(20)
    s = stats(g["fib"])
    # Every call is counted, whether it came through the wrapper or directly from native code.
    assert s["calls"] == 21891 and s["native_calls"] + s["interp_calls"] == s["calls"], s


@needs_default_thresholds
def test_ops_first_run_after_compiling_get_templates():
    # The first calls of fib go down its left spine: the + after the recursive calls has
    # not run when the code is compiled, so native code is recompiled once it has.
    g = {"__builtins__": __builtins__}
    exec(compile("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n", __file__, "exec"), g)
    g["fib"] = tiered(g["fib"])
    g["fib"](20)
    from tiered import dump

    line = next(ln for ln in dump(g["fib"]).splitlines() if "native templates at" in ln)
    assert line.count(":BinaryInt") == 3, line


@needs_default_thresholds
def test_a_branch_reached_after_compiling_recompiles_once_it_is_hot():
    # A branch the calls before compiling never took: running it a few times leaves the
    # code as it is (its ops run their helpers); running it often recompiles the code,
    # with templates for its ops. (Recompiling on its first run cost hexiom 5 compiles.)
    g = {"__builtins__": __builtins__}
    src = "def f(n, rare):\n    s = 0\n    for i in range(n):\n        if rare:\n            s = s + i * 2\n        s = s + 1\n    return s\n"
    exec(compile(src, __file__, "exec"), g)
    f = tiered(g["f"])
    plain = g["f"]

    def calls(n, rare, times):
        for _ in range(times):
            assert f(n, rare) == plain(n, rare)

    calls(1, False, 25)
    assert stats(f)["native_compiles"] == 1
    calls(3, True, 1)
    calls(1, False, 25)
    assert stats(f)["native_compiles"] == 1, stats(f)
    calls(100, True, 1)
    calls(1, False, 25)
    assert stats(f)["native_compiles"] == 2, stats(f)
    from tiered import dump

    line = next(ln for ln in dump(f).splitlines() if "native templates at" in ln)
    assert line.count(":BinaryInt") == 3, line


@needs_default_thresholds
def test_rebinding_globals_costs_no_deopts():
    # Module-level loops rebind globals all the time (`for i in ...`): cached global and
    # builtin loads read the dicts in place, so that costs no deopts.
    g = {"__builtins__": __builtins__}
    src = "def f(xs):\n    return helper(len(xs)) + len(xs)\ndef helper(n):\n    return n + 1\n"
    exec(compile(src, __file__, "exec"), g)
    w = tiered(g["f"])
    for i in range(200):
        g["counter"] = i
        assert w([1, 2, 3]) == 7
    s = stats(w)
    assert s["deopts"] == 0 and s["native_calls"] > 100, s


class _Pt:
    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a


class _Obj:
    def __init__(self, v):
        self.v = v


def _uses_every_template(items, objs, slotted, d):
    import math

    total = 0.0
    out = []
    for x in items:
        total += math.sqrt(x) + math.pi + len(items) + items[-1] + N
        out.append((x, x))
    for i in range(3):
        total += i
    for k, v in d.items():
        a, b = out[k]
        total += a + v + (k == "s") + ("a" == "a")
    for c in "abc":
        total += c == "b"
        total += (c is None) + (c is not out)
        if c is None:  # POP_JUMP_IF_NONE: IsNone
            total -= 1
        total += c in "xbz"
        total += -total + (not c)
    for o in objs:
        o.v = o.v + 1
        total += o.v
    for p in slotted:
        total += p.a
    for t in tuple(out):
        total += t[0]
    counts = {}
    for k in d:
        counts[k] = d[k] + 1
        out[k] = out[-k]
        total += _Obj(k).v
    return total, [1, 2], counts


@needs_default_thresholds
def test_quickened_variants_get_their_templates():
    # The differential cases would still pass if a variant were never chosen (the
    # generic ops give the same answers): check each one reaches native code.
    w = tiered(_uses_every_template)
    args = (list(range(1, 50)), [_Obj(i) for i in range(10)], [_Pt(i) for i in range(10)], {i: i for i in range(20)})
    for _ in range(40):
        w(*args)
    from tiered import dump

    line = next(ln for ln in dump(w).splitlines() if "native templates at" in ln)
    expected = ["AttrModule", "LoadMethodModule", "CallBuiltin", "LoadMethodBuiltin", "SubscrListInt",
                "SubscrTupleInt", "ForIterBuiltin", "ForIterTuple", "ForIterList", "ForIterRange",
                "UnpackSequence", "BuildTuple", "BuildList", "CompareStr", "CompareUnrelated",
                "AttrInstanceValue", "AttrSlot", "LoadGlobalModule", "LoadGlobalBuiltin", "BinaryFloat",
                "SubscrDict", "StoreSubscrDict", "StoreSubscrListInt", "CallClass", "Is", "IsNone",
                "Contains", "UnaryUnboxed"]
    # Whole names: ":Is" must not be found inside ":IsNone".
    missing = [name for name in expected if not re.search(rf":{name}\b", line)]
    assert not missing, (missing, line)


def _comps_and_fstrings(xs):
    a = [x * 2 for x in xs]
    b = {x for x in xs}
    c = {x: x for x in xs}
    return a, b, c, [f"{x}:{x!r}" for x in xs]


@needs_default_thresholds
def test_comprehension_and_fstring_ops_get_their_templates():
    # Comprehensions are nested code objects, compiled on their own once hot: look at
    # their native code through functions made from the same code objects.
    import types

    from tiered import dump

    w = tiered(_comps_and_fstrings)
    for _ in range(40):
        w(list(range(50)))
    lines = []
    for k in _comps_and_fstrings.__code__.co_consts:
        if isinstance(k, types.CodeType):
            f = types.FunctionType(k, globals())
            lines += [ln for ln in dump(f).splitlines() if "native templates at" in ln]
    text = " ".join(lines)
    missing = [n for n in ("ListAppend", "SetAdd", "MapAdd", "FormatValue", "BuildString")
               if not re.search(rf":{n}\b", text)]
    assert not missing, (missing, text)


def _small(x):
    return x * 2 + 1


def _calls_small(n):
    t = 0
    for i in range(n):
        t += _small(i)
    return t


@needs_default_thresholds
def test_small_callees_are_emitted_inline():
    # The differential cases agree whether or not a callee is inlined: check that a
    # small loop-free callee really is.
    w = tiered(_calls_small)
    for _ in range(40):
        assert w(50) == _calls_small(50)
    from tiered import dump

    line = next(ln for ln in dump(w).splitlines() if "native templates at" in ln)
    assert "calls emitted inline: _small" in line, line


def _while_spin(box, n):
    i = 0
    while i < n:  # tested at the bottom in 3.11: the back edge is a conditional jump
        i += 1
        box[0] = i
    return i


@needs_default_thresholds
def test_while_loop_tiers_up_mid_call():
    w = tiered(_while_spin)
    assert w([0], 100_000) == 100_000
    s = stats(w)
    assert s["native_calls"] == 1 and s["calls"] == 1, s


@pytest.mark.parametrize("jit", [False, True])
def test_async_exception_reaches_while_loop(jit):
    # PyThreadState_SetAsyncExc (how timeouts stop worker threads): raised inside the loop
    # at its next poll, in tier 1 and in native code, as CPython raises it at its next
    # eval-breaker check; the traceback has the function, not tiered's machinery.
    import ctypes
    import threading
    import time
    import traceback

    n = 50_000_000
    for f in (_while_spin, tiered(_while_spin, jit=jit)):
        box, out = [0], []

        def run():
            try:
                out.append(("returned", f(box, n)))
            except ValueError as e:
                names = [fr.name for fr in traceback.extract_tb(e.__traceback__)]
                out.append(("ValueError", box[0] < n, names[-1]))

        t = threading.Thread(target=run)
        t.start()
        while box[0] == 0:
            time.sleep(0.0005)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident), ctypes.py_object(ValueError))
        t.join()
        assert out == [("ValueError", True, "_while_spin")], (f, out)


def test_keyboard_interrupt_reaches_native_loop():
    code = r"""
import _thread, signal, threading, sys
from tiered import tiered, stats

# A shell may start this with SIGINT ignored (a background job): interrupt_main is then a
# no-op, so install Python's own handler.
signal.signal(signal.SIGINT, signal.default_int_handler)

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


@pytest.mark.skipif(os.environ.get("TIERED_QUICKEN") == "0", reason="the generic call op counts levels as CPython's unspecialized CALL does")
def test_recursion_through_builtins_reaches_cpythons_depth():
    # CPython's specialized CALL runs METH_FASTCALL builtins (and list.append) without
    # counting a recursion level (other METH_O ones it counts): recursion through them
    # must reach RecursionError at the same depth under tiered.
    src = (
        "def probe(k=0):\n"
        "    try:\n"
        "        return probe(k + 1)\n"
        "    except RecursionError:\n"
        "        return k\n"
        "class A:\n"
        "    def __init__(self, n):\n"
        "        self.n = n\n"
        "    def __abs__(self):\n"
        "        return via_o(self.n - 1)\n"
        "def via_fast(n):\n"
        "    return probe() if n == 0 else next(map(via_fast, [n - 1]))\n"
        "def via_fast_kw(n):\n"
        "    return probe() if n == 0 else sum(map(via_fast_kw, [n - 1]))\n"
        "def via_o(n):\n"
        "    return probe() if n == 0 else abs(A(n))\n"
        # list.append (METH_O) is specialized by CPython (PRECALL_NO_KW_LIST_APPEND): no
        # level counted, so the deepest frame's append never raises.
        "def via_append(n, log=None):\n"
        "    log = [] if log is None else log\n"
        "    log.append(n)\n"
        "    try:\n"
        "        return via_append(n, log)\n"
        "    except RecursionError:\n"
        "        return len(log)\n"
    )
    for name in ("via_fast", "via_fast_kw", "via_o", "via_append"):
        plain = {}
        exec(compile(src, __file__, "exec"), plain)
        ours = {}
        exec(compile(src, __file__, "exec"), ours)
        ours[name] = tiered(ours[name])
        for _ in range(30):  # past CPython's specialization and our tiering up
            plain[name](3)
            ours[name](3)
        assert ours[name](40) == plain[name](40), name


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
