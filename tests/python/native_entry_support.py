"""Helpers shared by the adversarial tests of the wrapper's native entry
(test_native_entry_adversarial.py, test_native_entry_shapes.py): wrappers at threshold
0, whether the entry is installed, comparable outcomes of a call, twin namespaces (plain
and tiered), and recursion-depth probes."""

import os
import textwrap
import types


from tiered import stats, tiered

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
